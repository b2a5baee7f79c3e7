//! `zkr-server`: the tokio shell that runs a `zkr_core::Node` against real sockets and disks.
pub mod admin;
#[cfg(not(madsim))]
pub mod admin_server;
pub mod bugs;
pub mod cli;
pub mod client_net;
pub mod config;
pub mod driver;
pub mod env;
pub mod epochs;
pub mod fs;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod peer_net;
pub mod quorum_tls;
pub mod security;
pub mod signal;
pub mod storage;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

/// A running server: its client address and the handle to stop it.
pub struct Server {
    addr: SocketAddr,
    secure_addr: Option<SocketAddr>,
    shutdown: signal::Sender<bool>,
    driver: tokio::task::JoinHandle<Result<(), String>>,
}

/// How many records after a snapshot the txn log rolls (`Storage::roll_soon`): enough for the
/// next file to be made and synced before the append that needs it (issue 16's load ran at
/// ~100,000 creates/s; making a file took up to 44 ms), and at most a quarter of `snapCount`,
/// so the roll comes before the next snapshot (they come at least snapCount/2 + 1 txns apart).
fn roll_ahead_txns(snap_count: u64) -> u64 {
    (snap_count / 4).min(10_000)
}

impl Server {
    /// Recovers the data directory, binds the client port and starts serving.
    pub async fn start(cfg: config::ServerConfig) -> Result<Server, String> {
        let mut env = env::ServerEnv::production();
        // Only a `bugs` build parses the keys that set these (config.rs refuses them).
        env.bugs = cfg.shell_bugs;
        #[cfg(feature = "bugs")]
        if let Some(control) = &cfg.disk_fault_file {
            env.fs = Arc::new(fs::FaultFs::new(control.clone()));
        }
        Server::start_in(cfg, env).await
    }

    /// `start`, in the given environment (clock, seed, observer): tier 2 of `sim` runs servers
    /// this way.
    pub async fn start_in(
        cfg: config::ServerConfig,
        env: env::ServerEnv,
    ) -> Result<Server, String> {
        let began = std::time::Instant::now();
        // Quorum TLS stores are read before anything else starts: a bad one stops the start.
        let quorum_tls = quorum_tls(&cfg)?;
        let (mut storage, recovered) =
            storage::Storage::open_with(env.fs.clone(), &cfg.data_dir, &cfg.data_log_dir, env.bugs)
                .map_err(|e| format!("cannot open the data directory: {e}"))?;
        storage.set_force_sync(cfg.force_sync);
        storage.set_snapshot_pacing(cfg.snapshot_pacing);
        storage.set_prealloc_bytes(cfg.prealloc_bytes);
        storage.set_roll_ahead_txns(roll_ahead_txns(cfg.snap_count));
        let metrics_at = metrics::endpoint(&cfg)?;
        let sync_metrics = metrics::sync_metrics();
        if metrics_at.is_some() {
            storage.set_sync_metrics(sync_metrics.clone());
        }
        let txn_count = recovered.txns.len();
        let read_ms = began.elapsed().as_millis();
        let node = driver::recover_node(&cfg, &env, recovered)?;
        tracing::info!(
            read_ms,
            total_ms = began.elapsed().as_millis(),
            zxid = %node.last_zxid(),
            txns_replayed = txn_count,
            sessions = node.sessions().len(),
            znodes = node.tree().node_count(),
            "recovered"
        );
        // What recovery read, copied and decoded is freed: give it back (`memory`'s doc).
        memory::give_back_freed_memory_soon();
        let bind = SocketAddr::new(cfg.client_port_address, cfg.client_port);
        let listener = net::TcpListener::bind(bind)
            .await
            .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (storage_tx, storage_rx) = mpsc::unbounded_channel();
        let storage = storage::StorageThread::spawn(storage, storage_tx)
            .map_err(|e| format!("cannot start the storage thread: {e}"))?;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = signal::channel(false);
        let limits = Arc::new(client_net::ConnLimits::new(cfg.max_cnxns, cfg.max_client_cnxns));
        let listeners = client_net::Listeners::new(limits);
        let secure_addr = match cfg.security.secure_client_port {
            None => None,
            Some(port) => {
                let tls = tls::server_config(&cfg.security)?;
                let ip = cfg.security.secure_client_port_address.unwrap_or(cfg.client_port_address);
                let bind = SocketAddr::new(ip, port);
                let listener = net::TcpListener::bind(bind)
                    .await
                    .map_err(|e| format!("cannot listen on the secure client port {bind}: {e}"))?;
                let at = listener.local_addr().map_err(|e| e.to_string())?;
                tokio::spawn(client_net::accept_loop(
                    listener,
                    events_tx.clone(),
                    listeners.clone(),
                    Some(tls),
                    cfg.conn_policy(),
                    shutdown_rx.clone(),
                ));
                tracing::info!(%at, "serving TLS clients");
                Some(at)
            }
        };
        tokio::spawn(client_net::accept_loop(
            listener,
            events_tx.clone(),
            listeners,
            None,
            cfg.conn_policy(),
            shutdown_rx.clone(),
        ));
        #[cfg(not(madsim))]
        if let Some(at) = metrics_at {
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .map_err(|e| format!("cannot listen for metrics on {at}: {e}"))?;
            tracing::info!(%at, "serving Prometheus metrics at /metrics");
            let events = events_tx.clone();
            tokio::spawn(metrics::serve(listener, events, sync_metrics, shutdown_rx.clone()));
        }
        #[cfg(madsim)]
        let _ = (metrics_at, sync_metrics);
        #[cfg(not(madsim))]
        if let Some(at) = admin_server::endpoint(&cfg) {
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .map_err(|e| format!("cannot listen for the AdminServer on {at}: {e}"))?;
            let url = &cfg.admin.command_url;
            tracing::info!(%at, url, "serving AdminServer commands");
            let fixed = admin_server::Static::new(&cfg);
            tokio::spawn(admin_server::serve(
                listener,
                events_tx.clone(),
                fixed,
                shutdown_rx.clone(),
            ));
        }
        let peers = if cfg.servers.is_empty() {
            None
        } else {
            let cuts = env.cuts.clone();
            let events = events_tx.clone();
            let nonce =
                if env.bugs.constant_boot_nonce() { 0 } else { peer_net::boot_nonce(env.seed) };
            let me = (cfg.core.server_id, nonce);
            Some(start_peers(&cfg, me, events, shutdown_rx.clone(), cuts, quorum_tls).await?)
        };
        let driver = driver::Driver::new(node, cfg, env, storage, peers);
        let driver = tokio::spawn(driver.run(events_rx, storage_rx, shutdown_rx));
        tracing::info!(%addr, "serving clients");
        Ok(Server { addr, secure_addr, shutdown, driver })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TLS client address (`secureClientPort`), if one is configured.
    pub fn secure_addr(&self) -> Option<SocketAddr> {
        self.secure_addr
    }

    /// Stops accepting, closes connections, flushes storage, and waits for the driver.
    pub async fn stop(self) -> Result<(), String> {
        self.shutdown.send(true);
        self.wait().await
    }

    /// Waits until the server stops by itself (storage failure).
    pub async fn wait(self) -> Result<(), String> {
        match self.driver.await {
            Ok(result) => result,
            Err(e) => Err(format!("driver task failed: {e}")),
        }
    }

    /// Waits for either a shutdown signal (SIGTERM, SIGINT) or a failure, then stops.
    pub async fn run_until_signal(self) -> Result<(), String> {
        let Server { addr, shutdown, mut driver, .. } = self;
        tokio::select! {
            biased;
            _ = shutdown_signal() => {
                tracing::info!(%addr, "shutting down on signal");
                shutdown.send(true);
                driver.await.map_err(|e| e.to_string())?
            }
            result = &mut driver => result.map_err(|e| e.to_string())?,
        }
    }
}

/// Quorum TLS for an ensemble member with `sslQuorum` or `portUnification` on.
fn quorum_tls(cfg: &config::ServerConfig) -> Result<Option<Arc<quorum_tls::QuorumTls>>, String> {
    if cfg.servers.is_empty() || !cfg.security.quorum.enabled() {
        return Ok(None);
    }
    let hosts = cfg
        .servers
        .iter()
        .map(|(id, spec)| (zkr_core::types::ServerId(*id), spec.host.clone()))
        .collect();
    let tls = quorum_tls::QuorumTls::load(&cfg.security.quorum, hosts)?;
    let (ssl_quorum, port_unification) =
        (cfg.security.quorum.ssl_quorum, cfg.security.quorum.port_unification);
    tracing::info!(ssl_quorum, port_unification, "quorum TLS on");
    Ok(Some(Arc::new(tls)))
}

/// Starts the quorum listener and connections for an ensemble member; `me` is its id and boot
/// nonce.
async fn start_peers(
    cfg: &config::ServerConfig,
    me: (zkr_core::types::ServerId, u64),
    events: mpsc::UnboundedSender<client_net::Event>,
    shutdown: signal::Receiver<bool>,
    cuts: Option<signal::Receiver<u64>>,
    tls: Option<Arc<quorum_tls::QuorumTls>>,
) -> Result<peer_net::PeerNet, String> {
    let spec = cfg.servers.get(&me.0.0).ok_or("this server has no server.N line")?;
    let listen = tokio::net::lookup_host((spec.host.as_str(), spec.quorum_port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", spec.host))?
        .next()
        .ok_or_else(|| format!("{} resolves to nothing", spec.host))?;
    let peers = cfg
        .servers
        .iter()
        .filter(|(id, _)| **id != me.0.0)
        .map(|(id, s)| {
            let host = if s.host.contains(':') { format!("[{}]", s.host) } else { s.host.clone() };
            (zkr_core::types::ServerId(*id), format!("{host}:{}", s.quorum_port))
        })
        .collect();
    // The core's silence bound (`syncLimit` tickTimes): see peer_net's module doc.
    let silence_ms = cfg.core.tick_time_ms as u64 * cfg.core.sync_limit as u64;
    let unacked_limit = std::time::Duration::from_millis(silence_ms.max(1));
    peer_net::PeerNet::start(me, listen, peers, events, shutdown, unacked_limit, cuts, tls)
        .await
        .map_err(|e| format!("cannot listen on the quorum port {listen}: {e}"))
}

async fn shutdown_signal() {
    #[cfg(all(unix, not(madsim)))]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            biased;
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(any(not(unix), madsim))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
