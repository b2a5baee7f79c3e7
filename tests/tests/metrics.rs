//! The Prometheus endpoint (`metricsProvider.className=...PrometheusMetricsProvider`,
//! `metricsProvider.httpPort`): scraped over HTTP and parsed by the official Python client's
//! text-format parser (`prometheus_client.parser`, installed into tests/.venv by
//! tests/setup.sh). The scrape must parse, carry ZooKeeper's metric names, and agree with
//! `mntr` about the tree.
//!
//! Skipped with a note when the venv is missing, except in CI (CI=true), where that fails.

use std::process::Command;
use std::time::Duration;

use zkr_tests::client::PERSISTENT;
use zkr_tests::server::free_port;
use zkr_tests::tools::{crate_dir, require, run_bounded};
use zkr_tests::{ServerOptions, TestServer, connect, op};

/// Fetches a URL (argv[1], or parses stdin when argv[1] is `-`) and prints
/// `type name{label=value,...} value` for every sample; exits non-zero when the text does not
/// parse.
const SCRAPE: &str = r#"
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
if sys.argv[1] == "-":
    text = sys.stdin.read()
else:
    text = urllib.request.urlopen(sys.argv[1], timeout=30).read().decode()
for family in text_string_to_metric_families(text):
    for sample in family.samples:
        pairs = sorted(sample.labels.items())
        labels = ",".join(f"{k}={v}" for k, v in pairs)
        name = sample.name + ("{" + labels + "}" if labels else "")
        print(family.type, name, sample.value)
"#;

/// The venv python with `prometheus_client`, if usable.
fn python() -> Option<std::path::PathBuf> {
    let python = crate_dir().join(".venv/bin/python");
    let probe = Command::new(&python).args(["-c", "import prometheus_client"]).output();
    matches!(probe, Ok(o) if o.status.success()).then_some(python)
}

/// Runs the scrape script on `arg` (a URL or `-`): (success, stdout + stderr).
fn scrape(python: &std::path::Path, arg: &str, stdin: &str) -> (bool, String) {
    let mut cmd = Command::new(python);
    cmd.args(["-c", SCRAPE, arg]);
    let out = run_bounded(&mut cmd, stdin, Duration::from_secs(60));
    (out.success(), format!("{}{}", out.stdout, out.stderr))
}

fn sample(parsed: &str, name: &str) -> Option<f64> {
    parsed.lines().find_map(|line| {
        let mut words = line.split(' ');
        let (_, n, v) = (words.next()?, words.next()?, words.next()?);
        if n == name { v.parse().ok() } else { None }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_zookeepers_names_in_prometheus_text_format() {
    let Some(python) = require("tests/.venv with prometheus_client (tests/setup.sh)", python())
    else {
        return;
    };
    // The parser does reject malformed text, so a parse below means something.
    let (parsed, text) = scrape(&python, "-", "# TYPE x gauge\nx{ 1\n");
    assert!(!parsed, "the parser accepted a broken sample:\n{text}");

    let port = free_port();
    let options = ServerOptions::new()
        .set(
            "metricsProvider.className",
            "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider",
        )
        .set("metricsProvider.httpPort", &port.to_string())
        .set("metricsProvider.httpHost", "127.0.0.1");
    let server = TestServer::start_with(options);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let (ok, before) = scrape(&python, &url, "");
    assert!(ok, "scrape failed:\n{before}");
    for name in ["znode_count", "watch_count", "num_alive_connections", "packets_received"] {
        assert!(sample(&before, name).is_some(), "{name} missing:\n{before}");
    }
    assert!(before.lines().any(|l| l.starts_with("gauge znode_count ")), "{before}");

    let zk = connect(&server).await;
    for path in ["/m1", "/m2", "/m3"] {
        op("create", zk.create(path, b"x", &PERSISTENT)).await;
    }
    let (ok, after) = scrape(&python, &url, "");
    assert!(ok, "scrape failed:\n{after}");
    let znodes = |text: &str| sample(text, "znode_count").expect("znode_count");
    assert_eq!(znodes(&after), znodes(&before) + 3.0, "before:\n{before}\nafter:\n{after}");
    let mntr = server.four_letter("mntr");
    let line = format!("zk_znode_count\t{}", znodes(&after));
    assert!(mntr.lines().any(|l| l == line), "mntr disagrees ({line}):\n{mntr}");
    assert_eq!(sample(&after, "num_alive_connections"), Some(1.0), "{after}");
    // The three creates went into the create histogram (connect is not a request).
    let count = |op: &str| sample(&after, &format!("zkr_request_latency_seconds_count{{op={op}}}"));
    let creates = count("create").unwrap_or(0.0) + count("create2").unwrap_or(0.0);
    assert_eq!(creates, 3.0, "{after}");
    let inf = after.lines().find(|l| l.contains("zkr_request_latency_seconds_bucket"));
    assert!(inf.is_some(), "no buckets:\n{after}");
    // Four txns since the first scrape (the session's createSession and three creates) were
    // synced to the log: one to four syncs, and the group-commit histogram counted each once.
    let since = |name: &str| {
        let value = |text: &str| sample(text, name).unwrap_or_else(|| panic!("{name}:\n{text}"));
        value(&after) - value(&before)
    };
    let syncs = since("zkr_fsync_latency_seconds_count");
    assert!((1.0..=4.0).contains(&syncs), "{syncs} syncs:\n{after}");
    assert_eq!(since("zkr_group_commit_records_sum"), 4.0, "{after}");
}
