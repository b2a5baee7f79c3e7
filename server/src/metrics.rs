//! Prometheus metrics: ZooKeeper's `PrometheusMetricsProvider` endpoint, `GET /metrics` on
//! `metricsProvider.httpHost:metricsProvider.httpPort` (0.0.0.0:7000 by default), enabled by
//! `metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider`.
//!
//! Each scrape asks the driver for the `mntr` values (the same numbers the four-letter word
//! prints, whatever the 4lw whitelist says) and encodes every numeric one as a gauge named as
//! ZooKeeper's provider names it: the mntr key without its `zk_` prefix (`znode_count`,
//! `watch_count`, `num_alive_connections`, ...). Encoding is `prometheus-client`'s text format.
//! The HTTP side is deliberately tiny: one request per connection, `Connection: close`.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
#[cfg(not(madsim))]
use tokio::sync::{mpsc, oneshot};

#[cfg(not(madsim))]
use crate::client_net::Event;
use crate::config::ServerConfig;
#[cfg(not(madsim))]
use crate::http::{Request, Response};
#[cfg(not(madsim))]
use crate::signal;
use crate::storage::SyncMetrics;
// tokio's sockets directly: the endpoint is never started under madsim (see `lib.rs`).
#[cfg(not(madsim))]
use tokio::net::TcpListener;

/// The class name that switches the endpoint on, as in ZooKeeper's zoo.cfg.
pub const PROMETHEUS_PROVIDER: &str =
    "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";
/// ZooKeeper's default `metricsProvider.httpPort`.
pub const DEFAULT_HTTP_PORT: u16 = 7000;

/// Where to serve metrics, if zoo.cfg asks for the Prometheus provider.
pub fn endpoint(cfg: &ServerConfig) -> Result<Option<SocketAddr>, String> {
    match cfg.extra.get("metricsProvider.className").map(String::as_str) {
        Some(PROMETHEUS_PROVIDER) => {}
        Some(other) => {
            tracing::warn!("metricsProvider.className={other}: only {PROMETHEUS_PROVIDER} serves");
            return Ok(None);
        }
        None => return Ok(None),
    }
    let port = match cfg.extra.get("metricsProvider.httpPort") {
        Some(p) => p.trim().parse().map_err(|_| format!("metricsProvider.httpPort={p}"))?,
        None => DEFAULT_HTTP_PORT,
    };
    let host = cfg.extra.get("metricsProvider.httpHost").map_or("0.0.0.0", |h| h.trim());
    let ip = host.parse().map_err(|_| format!("metricsProvider.httpHost={host}: not an IP"))?;
    Ok(Some(SocketAddr::new(ip, port)))
}

/// Encodes `mntr` text (`zk_key<TAB>value` lines) as Prometheus text. Non-numeric values
/// (version, server_state) are left out; `0x` values (zxids) are read as hex.
pub fn encode_mntr(mntr: &str) -> String {
    encode_registry(mntr_registry(mntr))
}

/// `mntr`'s gauges plus `zkr_request_latency_seconds{op}`, histograms of each request's time
/// from arrival to reply by opcode (ours; ZooKeeper's provider reports summaries instead).
pub fn encode_scrape(mntr: &str, latency: crate::admin::OpLatency, sync: SyncMetrics) -> String {
    let mut registry = mntr_registry(mntr);
    registry.register(
        "zkr_fsync_latency_seconds",
        "Txn log sync (flush and fdatasync) latency",
        sync.latency,
    );
    registry.register(
        "zkr_group_commit_records",
        "Txns made durable by one txn log sync",
        sync.batch_records,
    );
    registry.register(
        "zkr_request_latency_seconds",
        "Client request latency, arrival to reply",
        latency,
    );
    encode_registry(registry)
}

fn encode_registry(registry: Registry) -> String {
    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

fn mntr_registry(mntr: &str) -> Registry {
    let mut registry = Registry::default();
    for line in mntr.lines() {
        let Some((key, value)) = line.split_once('\t') else {
            continue;
        };
        let name = key.strip_prefix("zk_").unwrap_or(key);
        let number = match value.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16).ok().map(|v| v as f64),
            None => value.parse::<f64>().ok(),
        };
        let Some(number) = number else {
            continue;
        };
        let gauge = Gauge::<f64, AtomicU64>::default();
        gauge.set(number);
        registry.register(name, format!("mntr {key}"), gauge);
    }
    registry
}

/// The log-sync histograms: latency (100 µs to about 13 s) and records per sync (1 to 32768).
pub fn sync_metrics() -> SyncMetrics {
    SyncMetrics {
        latency: crate::admin::latency_histogram(),
        batch_records: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
    }
}

/// Accepts scrapes until shutdown.
#[cfg(not(madsim))]
pub async fn serve(
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    sync: SyncMetrics,
    shutdown: signal::Receiver<bool>,
) {
    crate::http::serve(listener, shutdown, move |request| {
        answer(request, events.clone(), sync.clone())
    })
    .await
}

#[cfg(not(madsim))]
async fn answer(
    request: Request,
    events: mpsc::UnboundedSender<Event>,
    sync: SyncMetrics,
) -> Option<Response> {
    let text = |status, body: &str| Response {
        status,
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        body: body.to_string(),
    };
    if request.method != "GET" {
        return Some(text("405 Method Not Allowed", "only GET\n"));
    }
    if request.path != "/metrics" {
        return Some(text("404 Not Found", "try /metrics\n"));
    }
    let (reply, answer) = oneshot::channel();
    events.send(Event::Metrics { reply }).ok()?;
    let (mntr, latency) = answer.await.ok()?;
    Some(text("200 OK", &encode_scrape(&mntr, latency, sync)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_mntr_rows_become_gauges_named_without_the_zk_prefix() {
        let text = encode_mntr(
            "zk_version\t3.9.3-zkr\nzk_znode_count\t5\nzk_avg_latency\t0.5000\n\
             zk_last_proposal_zxid\t0x10\n",
        );
        assert!(text.contains("# TYPE znode_count gauge\nznode_count 5"), "{text}");
        assert!(text.contains("\navg_latency 0.5\n"), "{text}");
        assert!(text.contains("\nlast_proposal_zxid 16"), "{text}");
        assert!(!text.contains("version"), "{text}");
    }
}
