//! The driver: the single task that owns the `Node`. It turns socket events, storage events and
//! timer ticks into `Input`s, steps the node, and carries out its `Output`s through
//! `zkr_core::io::ready::Executor`, providing the effects: frames to connection tasks, closes,
//! messages to peers, and txns and disk writes to the storage thread.
//!
//! Group commit: every `Persist` produced while handling one batch of events (up to
//! `MAX_BATCH`) goes to the storage thread as one append; the storage thread syncs once for
//! everything queued, then reports `Durable`, which becomes `Input::Persisted`.
//!
//! `select!` is always `biased` so that the order in which sources are polled is fixed (and the
//! same under madsim): shutdown, then durability, then client events, then timers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::signal;
use tokio::sync::{mpsc, oneshot};
use zkr_core::io::ready::{DiskWrite, Effects, Executor, LogReadRequest, Progress, Written};
use zkr_core::io::{Input, Output};
use zkr_core::node::NodeInit;
use zkr_core::proto::txn::{decode_txn, encode_txn};
use zkr_core::txn::LoggedTxn;
use zkr_core::types::{ConnId, ServerId, Zxid};
use zkr_core::zab::message::ZabMessage;
use zkr_core::{Node, snapshot};

use crate::admin::{self, AdminView, ConnStats, ServerStats};
use crate::client_net::{ConnHandle, Event};
use crate::config::ServerConfig;
use crate::env::ServerEnv;
use crate::storage::{Recovered, StorageEvent, StorageThread, thread_cpu_time};

/// Events handled before outputs are flushed (bounds latency under heavy load).
const MAX_BATCH: usize = 1024;

/// A driver turn (events handled, then outputs flushed) this long is logged.
const SLOW_TURN: Duration = Duration::from_millis(50);

/// A driver turn this long is traced at debug level (the p99 reply of the million-znode load
/// on a quiet machine is ~3 ms).
const TRACED_TURN: Duration = Duration::from_millis(1);

/// Builds the node from what storage recovered; every record is checked again after loading.
pub fn recover_node(
    cfg: &ServerConfig,
    env: &ServerEnv,
    recovered: Recovered,
) -> Result<Node, String> {
    let Recovered { snapshot, txns: records } = recovered;
    let (snapshot, txns) = decode_txns_beside(records, || load_and_check(env, snapshot));
    // A bad snapshot is reported before a bad log record, as when they were read in turn.
    let (snapshot, txns) = (snapshot?, txns?);
    if cfg.core.is_standalone() != cfg.servers.is_empty() {
        return Err("server.N lines were not turned into ensemble members (myid not read)".into());
    }
    let (accepted_epoch, current_epoch) = crate::epochs::read(&*env.fs, &cfg.data_dir)?;
    let init = NodeInit {
        wall_ms: env.clock.wall_ms(),
        seed: env.seed,
        snapshot,
        txns,
        accepted_epoch,
        current_epoch,
    };
    let began = Instant::now();
    let node = Node::new(cfg.core.clone(), init).map_err(|e| e.to_string())?;
    tracing::info!(replay_ms = began.elapsed().as_millis(), "txns replayed");
    Ok(node)
}

/// Decodes the snapshot of `file`, if any, and starts the loaded tree's check.
fn load_and_check(
    env: &ServerEnv,
    file: Option<crate::storage::RecoveredSnapshot>,
) -> Result<Option<snapshot::Snapshot>, String> {
    let Some(file) = file else {
        return Ok(None);
    };
    let began = Instant::now();
    let zxid = file.zxid;
    let snap = load_snapshot(&*env.fs, &file)
        .map_err(|e| format!("snapshot 0x{zxid:x} does not decode: {e}"))?;
    let decode_ms = began.elapsed().as_millis();
    tracing::info!(decode_ms, znodes = snap.tree.node_count(), "snapshot decoded");
    check_tree_in_background(snap.tree.clone())?;
    if snap.zxid.0 != zxid {
        return Err(format!("snapshot file 0x{zxid:x} holds zxid {}", snap.zxid));
    }
    Ok(Some(snap))
}

/// The log records recovery read, decoded as txns; each must hold the zxid it was logged at.
fn decode_txns(records: Vec<(i64, Vec<u8>)>) -> Result<Vec<LoggedTxn>, String> {
    let mut txns = Vec::with_capacity(records.len());
    for (zxid, bytes) in records {
        let txn = decode_txn(&bytes)
            .map_err(|e| format!("log record 0x{zxid:x} does not decode as a txn: {e}"))?;
        if txn.header.zxid.0 != zxid {
            return Err(format!("log record 0x{zxid:x} holds a txn with zxid {}", txn.header.zxid));
        }
        txns.push(txn);
    }
    assert!(txns.windows(2).all(|w| w[0].header.zxid < w[1].header.zxid), "in zxid order");
    Ok(txns)
}

/// `decode_txns(records)` on a thread of its own while `load` runs on this one (issues 14 and
/// 16: RSS after a restart no higher than after the load). The replay copies each txn's path
/// and data into the tree and then frees the txn. Decoded on this thread, the txns' blocks sat
/// in the same allocator pages as the tree's blocks of the same sizes, so once freed they left
/// holes that nothing filled while the server was idle: 6-14 MiB after replaying 42k creates
/// (docs/PERFORMANCE.md, run 16). mimalloc gives each thread its own pages, so the txns now
/// fill pages of their own, which become empty and are given back once the txns are freed.
#[cfg(not(madsim))]
fn decode_txns_beside<T>(
    records: Vec<(i64, Vec<u8>)>,
    load: impl FnOnce() -> T,
) -> (T, Result<Vec<LoggedTxn>, String>) {
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("zkr-txndecode".into())
            .spawn_scoped(scope, move || decode_txns(records));
        let decoder = spawned.map_err(|e| format!("cannot start the txn decoder: {e}"));
        let loaded = load();
        let decoded = decoder.and_then(|d| d.join().expect("the txn decoder does not panic"));
        (loaded, decoded)
    })
}

/// Under madsim there are no threads: the records are decoded after `load`.
#[cfg(madsim)]
fn decode_txns_beside<T>(
    records: Vec<(i64, Vec<u8>)>,
    load: impl FnOnce() -> T,
) -> (T, Result<Vec<LoggedTxn>, String>) {
    let loaded = load();
    (loaded, decode_txns(records))
}

/// Reads the blob of `file` in pieces and decodes it as it comes (`decode_pieces`): the 200 MB
/// blob of a million znodes is never held whole (issue 16: freed after the decode, it stayed in
/// the allocator's pages, and RSS after a restart was 1.5x that after the load).
#[cfg(not(madsim))]
fn load_snapshot(
    fs: &dyn crate::fs::Fs,
    file: &crate::storage::RecoveredSnapshot,
) -> Result<snapshot::Snapshot, String> {
    decode_pieces(file.blob_len, |sink| file.read_blob_in_pieces(fs, sink))
}

/// Under madsim (small trees, no threads) the blob is read whole and decoded in turn.
#[cfg(madsim)]
fn load_snapshot(
    fs: &dyn crate::fs::Fs,
    file: &crate::storage::RecoveredSnapshot,
) -> Result<snapshot::Snapshot, String> {
    let blob = file.read_blob(fs)?;
    snapshot::verify_checksum(&blob).map_err(|e| e.to_string())?;
    snapshot::decode_deferring_checks(&blob).map_err(|e| e.to_string())
}

/// What the parser hands the builder.
#[cfg(not(madsim))]
enum Parsed {
    Head(snapshot::SnapshotHead),
    Nodes(Vec<(std::sync::Arc<str>, zkr_core::tree::ZNode)>),
}

/// `snapshot::decode_deferring_checks` of a blob of `blob_len` bytes that `read` hands over in
/// pieces, on four threads (issue 16: restart time; on a free core each): one reads the pieces,
/// one runs the blob's checksum over them; one parses the node records (jute, allocation of
/// paths, data and ACLs) as the pieces come; this one puts them into the tree in the order
/// read (path order, parents, map inserts), so the tree is the one a sequential decode builds.
/// The snapshot is used only if all three succeed; the errors are reported in the order a
/// sequential decode meets them: reading, checksum, the builder's, the parser's. The stored
/// digest is checked with the tree's invariants, by `check_tree_in_background`.
#[cfg(not(madsim))]
fn decode_pieces(
    blob_len: usize,
    read: impl FnOnce(&mut dyn FnMut(Vec<u8>) -> std::io::Result<()>) -> std::io::Result<()> + Send,
) -> Result<snapshot::Snapshot, String> {
    use std::sync::mpsc::sync_channel;
    /// Nodes handed over at a time, and batches in flight (bounds the memory held twice).
    const BATCH: usize = 4096;
    let mut checksum = snapshot::PieceChecksum::new(blob_len).map_err(|e| e.to_string())?;
    let mut records = snapshot::PieceDecoder::new(blob_len).map_err(|e| e.to_string())?;
    // Up to 16 MiB queued per consumer: on a loaded machine the threads run in turns, and a
    // short queue kept the parser waiting for the reader.
    let (pieces, pieces_in) = sync_channel::<std::sync::Arc<Vec<u8>>>(16);
    let (to_sum, sum_in) = sync_channel::<std::sync::Arc<Vec<u8>>>(16);
    let (parsed, parsed_in) = sync_channel::<Parsed>(8);
    let (read, parse, built) = std::thread::scope(|scope| {
        let summer = scope.spawn(move || {
            sum_in.iter().for_each(|piece| checksum.feed(&piece));
            checksum
        });
        let reader = scope.spawn(move || {
            // After the parser stops (on an error) the rest is still read and summed: a bad
            // checksum is reported first, as in a sequential decode.
            let mut pieces = Some(pieces);
            read(&mut |piece| {
                let piece = std::sync::Arc::new(piece);
                pieces = pieces.take().filter(|p| p.send(piece.clone()).is_ok());
                to_sum.send(piece).map_err(|_| std::io::Error::other("the checksum stopped"))
            })
        });
        let parser = scope.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            for piece in pieces_in.iter() {
                records.feed(&piece);
                drop(piece);
                loop {
                    match records.step()? {
                        snapshot::Step::NeedMore => break,
                        snapshot::Step::Head(head) => {
                            if parsed.send(Parsed::Head(head)).is_err() {
                                return Ok(None);
                            }
                        }
                        snapshot::Step::Node(path, node) => batch.push((path, node)),
                        snapshot::Step::Digest(digest) => {
                            let _ = parsed.send(Parsed::Nodes(batch));
                            return Ok(Some(digest));
                        }
                    }
                    if batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        if parsed.send(Parsed::Nodes(full)).is_err() {
                            // The builder refused a node and stopped: its error is reported.
                            return Ok(None);
                        }
                    }
                }
            }
            // The pieces ended inside a record: the reader's error, or a truncated blob.
            Err(zkr_core::proto::error::DecodeError::Truncated { what: "snapshot" })
        });
        let built = build_tree(parsed_in);
        let parse = parser.join().expect("the parser does not panic");
        let read = reader.join().expect("the reader does not panic");
        let summed = summer.join().expect("the checksum does not panic");
        (read.map(|()| summed.finish()), parse, built)
    });
    read.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    let builder = built.map_err(|e| e.to_string())?;
    match (builder, parse.map_err(|e| e.to_string())?) {
        (Some(builder), Some(digest)) => builder.finish(digest).map_err(|e| e.to_string()),
        _ => unreachable!("a parsed digest follows a head, and the builder took every node"),
    }
}

/// The builder's half of `decode_pieces`: the tree of the nodes parsed, in the order parsed.
/// `None` when the parser stopped before the head.
#[cfg(not(madsim))]
fn build_tree(
    parsed: std::sync::mpsc::Receiver<Parsed>,
) -> Result<Option<snapshot::TreeBuilder>, zkr_core::proto::error::DecodeError> {
    let mut builder = None;
    for message in parsed.iter() {
        match (message, builder.as_mut()) {
            (Parsed::Head(head), None) => {
                builder = Some(snapshot::TreeBuilder::deferring_digest(head));
            }
            (Parsed::Nodes(nodes), Some(b)) => {
                nodes.into_iter().try_for_each(|(path, node)| b.push(path, node))?;
            }
            _ => unreachable!("one head, before the nodes"),
        }
    }
    Ok(builder)
}

/// Under madsim there are no threads: the check runs inline (simulated trees are small).
#[cfg(madsim)]
fn check_tree_in_background(tree: zkr_core::tree::DataTree) -> Result<(), String> {
    tree.invariants();
    Ok(())
}

/// Runs the loaded tree's O(n log n) self-check on its own thread while the server replays the
/// log and starts serving (the clone is O(1) and frozen). It also compares the snapshot's stored
/// digest with its nodes (`snapshot::decode_deferring_checks`); the input passed two checksums
/// (the file's crc32c and the blob's FNV) before, so a failure means a bug in our code, and
/// stops the process, as a panic would.
#[cfg(not(madsim))]
fn check_tree_in_background(tree: zkr_core::tree::DataTree) -> Result<(), String> {
    let check = move || {
        let began = Instant::now();
        let held = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tree.invariants()));
        if held.is_err() {
            tracing::error!("the loaded snapshot's tree breaks its invariants: stopping");
            std::process::exit(70);
        }
        tracing::info!(check_ms = began.elapsed().as_millis(), "loaded tree invariants hold");
        // The check's tables and the tree it held (the replay copied what it changed) are freed.
        drop(tree);
        crate::memory::give_back_freed_memory_soon();
    };
    let spawned = std::thread::Builder::new().name("zkr-treecheck".into()).spawn(check);
    spawned.map(drop).map_err(|e| format!("cannot start the tree check: {e}"))
}

/// Owns the node and everything the shell counts about it.
pub struct Driver {
    node: Node,
    cfg: ServerConfig,
    conf_lines: Vec<(String, String)>,
    writers: HashMap<ConnId, ConnHandle>,
    conns: BTreeMap<ConnId, ConnStats>,
    stats: ServerStats,
    storage: StorageThread,
    peers: Option<crate::peer_net::PeerNet>,
    applied_since_snapshot: u64,
    /// The applied zxid `applied_since_snapshot` counts up to.
    counted_upto: Zxid,
    snapshot_threshold: u64,
    snapshot_running: bool,
    env: ServerEnv,
    /// Draws the snapshot thresholds (seeded from `env`).
    rng: rand_chacha::ChaCha8Rng,
    /// Carries out the node's outputs (`flush`).
    executor: Executor,
    /// Appends of the current flow, handed to the storage thread as one batch.
    appends: Vec<(i64, Vec<u8>)>,
    /// The disk write the executor waits for.
    pending_write: Option<DiskWrite>,
    /// Why the storage thread could not take a command.
    failed: Option<String>,
    /// The txn log's disk is full (`StorageEvent::DiskFull` until `DiskSpaceAvailable`): new
    /// client writes are refused with THROTTLEDOP (`refuse_while_disk_full`).
    disk_full: bool,
    /// Ping replies not to deliver, by connection: the core's answers to the pings that stand
    /// in for refused writes (`refuse_while_disk_full`).
    ping_replies_to_drop: BTreeMap<ConnId, u32>,
    /// The appends handed to the storage thread and not yet durable: per batch, its last zxid
    /// and its bytes (`bound_disk_full_backlog`).
    waiting: VecDeque<(i64, u64)>,
    /// The sum of `waiting`'s bytes.
    waiting_bytes: u64,
    /// Out of the ensemble until the disk has space (`bound_disk_full_backlog`): no peer
    /// message goes to the node or leaves it.
    dropped_out: bool,
}

impl Driver {
    /// A driver for `node`, persisting through `storage`.
    pub fn new(
        node: Node,
        cfg: ServerConfig,
        env: ServerEnv,
        storage: StorageThread,
        peers: Option<crate::peer_net::PeerNet>,
    ) -> Driver {
        use rand::SeedableRng;
        let conf_lines = cfg.to_conf_lines();
        // Not the node's own seed: the node draws its own sequence from it.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(env.seed ^ 0x5eed_5a95);
        let snapshot_threshold = snapshot_threshold(cfg.snap_count, &mut rng);
        let counted_upto = node.last_zxid();
        Driver {
            node,
            cfg,
            conf_lines,
            writers: HashMap::new(),
            conns: BTreeMap::new(),
            stats: ServerStats::new(),
            storage,
            peers,
            applied_since_snapshot: 0,
            counted_upto,
            snapshot_threshold,
            snapshot_running: false,
            env,
            rng,
            executor: Executor::new(),
            appends: Vec::new(),
            pending_write: None,
            failed: None,
            disk_full: false,
            ping_replies_to_drop: BTreeMap::new(),
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            dropped_out: false,
        }
    }

    /// Runs until `shutdown` turns true or storage fails.
    pub async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<Event>,
        mut storage_events: mpsc::UnboundedReceiver<StorageEvent>,
        mut shutdown: signal::Receiver<bool>,
    ) -> Result<(), String> {
        let tick = Duration::from_millis(self.cfg.core.tick_ms as u64);
        let tick = self.env.clock.runtime_duration(tick);
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let purge_hours = self.cfg.autopurge_purge_interval_hours;
        let purge_every = Duration::from_secs(3600 * purge_hours.max(1));
        let mut purge_timer =
            tokio::time::interval_at(tokio::time::Instant::now() + purge_every, purge_every);
        let result = loop {
            let mut handled = 1;
            // With turns traced, the thread's CPU time too: a turn longer in wall time than on
            // the CPU waited for a core (the machine's other load), not for our code.
            let traced = tracing::enabled!(tracing::Level::DEBUG);
            let cpu_woke;
            let (woke, what) = tokio::select! {
                biased;
                _ = shutdown.changed() => break Ok(()),
                event = storage_events.recv() => match event {
                    Some(event) => {
                        let woke = Instant::now();
                        cpu_woke = traced.then(thread_cpu_time);
                        if let Err(e) = self.on_storage_event(event) {
                            break Err(e);
                        }
                        (woke, "a storage event")
                    }
                    None => break Err("storage thread stopped".to_string()),
                },
                event = events.recv() => {
                    let Some(event) = event else { break Ok(()) };
                    let woke = Instant::now();
                    cpu_woke = traced.then(thread_cpu_time);
                    self.on_event(event);
                    while handled < MAX_BATCH {
                        match events.try_recv() {
                            Ok(event) => self.on_event(event),
                            Err(_) => break,
                        }
                        handled += 1;
                    }
                    (woke, "client and peer events")
                }
                _ = ticker.tick() => {
                    let woke = Instant::now();
                    cpu_woke = traced.then(thread_cpu_time);
                    self.node.step(Input::Tick { wall_ms: self.env.clock.wall_ms() });
                    (woke, "a tick")
                }
                _ = purge_timer.tick(), if purge_hours > 0 => {
                    let woke = Instant::now();
                    cpu_woke = traced.then(thread_cpu_time);
                    let _ = self.storage.purge(self.cfg.autopurge_snap_retain_count);
                    (woke, "autopurge")
                }
            };
            let stepped = woke.elapsed();
            if let Err(e) = self.flush().await {
                break Err(e);
            }
            if self.bound_disk_full_backlog()
                && let Err(e) = self.flush().await
            {
                break Err(e);
            }
            if let Err(e) = self.count_applied() {
                break Err(e);
            }
            // Every client waits while the driver works: a long turn is worth a line, saying
            // what it did (issue 16 traced the long replies at a million znodes this way).
            let busy = woke.elapsed();
            if busy >= SLOW_TURN {
                let (busy_ms, step_ms) = (busy.as_millis(), stepped.as_millis());
                tracing::info!(busy_ms, step_ms, handled, what, "slow driver turn");
            }
            if busy >= TRACED_TURN {
                // Off unless RUST_LOG asks for it (`zkr_server::driver=debug`): lines replies
                // slower than 2x the p99 up with the driver's work (issue 16, run 15).
                let (busy_us, step_us) = (busy.as_micros(), stepped.as_micros());
                let cpu_us = cpu_woke.map_or(0, |woke| (thread_cpu_time() - woke).as_micros());
                tracing::debug!(busy_us, step_us, cpu_us, handled, what, "driver turn");
            }
            if let Some(observer) = &self.env.observer {
                observer.stepped(&self.node);
            }
        };
        for writer in self.writers.values() {
            writer.close();
        }
        let storage_result = self.storage.shutdown().map_err(|e| e.to_string());
        result.and(storage_result)
    }

    /// Bounds what an ensemble member whose disk is full keeps in memory. While the disk is
    /// full nothing becomes durable, yet a follower keeps taking the leader's proposals and a
    /// leader keeps proposing the writes its followers forward; each waits in memory (here
    /// and on the storage thread) for the disk. Past `zkr.diskFullBacklogBytes` of such txns
    /// the member drops out: the node is told every peer is lost (a follower elects, a leader
    /// steps down), and no peer message reaches it or leaves it until the disk has space
    /// again, as behind a network partition, which Zab tolerates: the others go on with a
    /// quorum without it (or wait, as for any lost member, if they have none), and nothing it
    /// did not log was acknowledged by it. A standalone server needs no bound: it refuses
    /// writes while the disk is full. Returns whether the node was stepped.
    fn bound_disk_full_backlog(&mut self) -> bool {
        let bound = self.cfg.disk_full_backlog_bytes;
        if !self.disk_full || self.dropped_out || self.waiting_bytes <= bound {
            return false;
        }
        if self.peers.is_none() {
            return false;
        }
        let waiting_bytes = self.waiting_bytes;
        tracing::error!(
            waiting_bytes,
            bound,
            "disk full: the txns waiting for it passed zkr.diskFullBacklogBytes; dropping out \
             of the ensemble until there is space (then rejoining, synced by the leader)"
        );
        self.dropped_out = true;
        let me = self.cfg.core.server_id;
        let peers: Vec<ServerId> =
            self.cfg.core.members.iter().map(|m| m.id).filter(|id| *id != me).collect();
        assert!(!peers.is_empty(), "an ensemble member has peers");
        for peer in peers {
            self.node.step(Input::PeerLost { peer });
        }
        assert!(self.dropped_out && self.disk_full);
        true
    }

    fn on_storage_event(&mut self, event: StorageEvent) -> Result<(), String> {
        match event {
            StorageEvent::Durable { upto } => {
                while let Some(&(zxid, bytes)) = self.waiting.front().filter(|(z, _)| *z <= upto) {
                    assert!(zxid <= upto);
                    self.waiting.pop_front();
                    self.waiting_bytes -= bytes;
                }
                assert_eq!(self.waiting.is_empty(), self.waiting_bytes == 0, "bytes follow");
                self.node.step(self.executor.persisted(Zxid(upto)));
            }
            StorageEvent::SnapshotSaved { zxid } => {
                tracing::info!("snapshot 0x{zxid:x} saved");
                self.snapshot_running = false;
                // The snapshot's pieces and the tree it held (copied where writes came since)
                // are freed: given back even if no request follows (issue 16).
                crate::memory::give_back_freed_memory_soon();
            }
            StorageEvent::SnapshotFailed { zxid, error } => {
                tracing::warn!("snapshot 0x{zxid:x} failed: {error}; older snapshots remain");
                self.snapshot_running = false;
            }
            StorageEvent::Truncated { last_zxid } => {
                tracing::info!("log truncated after 0x{last_zxid:x}");
                self.waiting.retain(|(zxid, _)| *zxid <= last_zxid);
                self.waiting_bytes = self.waiting.iter().map(|(_, bytes)| bytes).sum();
            }
            StorageEvent::Purged(report) => {
                tracing::info!(
                    snapshots = report.snapshots_removed.len(),
                    logs = report.logs_removed.len(),
                    "autopurge removed old files"
                );
                if let Some(oldest) = report.oldest_log_kept {
                    self.node.step(Input::LogTrimmed { oldest_on_disk: Zxid(oldest) });
                }
            }
            StorageEvent::LogRead { request, found_after, txns } => {
                self.node.step(Input::LogRead { request, found_after, txns });
            }
            StorageEvent::DiskFull { error } => {
                tracing::error!(
                    "disk full under the txn log ({error}): client writes are refused with \
                     THROTTLEDOP until space is freed; reads, watches and sessions go on"
                );
                self.disk_full = true;
            }
            StorageEvent::DiskSpaceAvailable => {
                tracing::info!("disk space available again: client writes accepted");
                self.disk_full = false;
                if self.dropped_out {
                    // The node is electing (it was told every peer was lost): it now hears the
                    // others and rejoins, synced by the leader like any returning member.
                    tracing::info!("rejoining the ensemble");
                    self.dropped_out = false;
                }
            }
            StorageEvent::Failed { error } => {
                tracing::error!(
                    "txn log failed, stopping the server: {error}. Nothing after the last \
                     successful sync was acknowledged; a restart recovers every acknowledged \
                     write"
                );
                return Err(format!("txn log failed: {error}"));
            }
        }
        Ok(())
    }

    /// Counts the txns applied since the last call, wherever they were applied: on a leader or
    /// a follower a commit arrives with a peer's message, not with `Persisted` (issue 16: counted
    /// only there, the servers of an ensemble never took a snapshot, so a restarted follower
    /// replayed its whole log and its DIFF rejoin took time growing with the tree). Runs after
    /// `flush`, so the appends of every applied txn are queued before the snapshot.
    fn count_applied(&mut self) -> Result<(), String> {
        let (applied_upto, counted) = (self.node.last_zxid(), self.counted_upto);
        // Within an epoch zxids count txns; a new epoch's counter starts again at 1.
        let applied = match applied_upto.epoch() == counted.epoch() {
            true => applied_upto.counter().saturating_sub(counted.counter()),
            false if applied_upto > counted => applied_upto.counter(),
            false => 0,
        };
        self.counted_upto = applied_upto;
        self.applied_since_snapshot += applied as u64;
        self.maybe_snapshot()
    }

    /// Takes a snapshot once `snapCount` txns (randomised as ZooKeeper does) have applied. The
    /// tree is cloned here (O(1): it shares structure with the live tree) and encoded as it is
    /// written, on the storage's snapshot thread at low priority, so writes keep flowing.
    ///
    /// While the previous snapshot is still being written, the count starts over and no
    /// snapshot is taken, as ZooKeeper's SyncRequestProcessor does ("Too busy to snap,
    /// skipping"). Deferring it instead (as this did before) wrote snapshots back to back
    /// whenever the writes outpaced the snapshot writer, each beside the log's syncs: near a
    /// million znodes a snapshot is ~200 MB and took 0.5-1 s to write, while 135k creates/s
    /// reach the next threshold (50k-100k txns) in 0.4-0.7 s (issue 16).
    fn maybe_snapshot(&mut self) -> Result<(), String> {
        if self.applied_since_snapshot < self.snapshot_threshold {
            return Ok(());
        }
        self.applied_since_snapshot = 0;
        self.snapshot_threshold = snapshot_threshold(self.cfg.snap_count, &mut self.rng);
        if self.snapshot_running {
            tracing::warn!(
                "too busy to snapshot, skipping (the previous one is still being written)"
            );
            return Ok(());
        }
        self.snapshot_running = true;
        let began = Instant::now();
        let snap = self.node.snapshot();
        // The time the driver (and so every client) waits for the snapshot; issue 16.
        let taken_us = began.elapsed().as_micros();
        tracing::info!(zxid = %snap.zxid, znodes = snap.tree.node_count(), taken_us, "snapshot");
        let zxid = snap.zxid.0;
        let saved = self.storage.save_snapshot_of(zxid, Box::new(snap));
        saved.map_err(|_| "storage thread stopped".to_string())
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected { conn, remote, secure, handle } => {
                self.writers.insert(conn, handle);
                self.conns.insert(conn, ConnStats { secure, ..conn_stats(remote) });
                let remote_ip = remote.ip().to_string();
                self.node.step(Input::ClientConnected { conn, remote_ip });
            }
            Event::ClientCertificate { conn, subject } => {
                self.node.step(Input::ClientCertificate { conn, subject });
            }
            Event::Frame { conn, payload } => {
                self.stats.packets_received += 1;
                let mut refuse = None;
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.received += 1;
                    if c.received > 1 && payload.len() >= 8 {
                        let xid = i32::from_be_bytes(payload[..4].try_into().expect("4 bytes"));
                        let op = i32::from_be_bytes(payload[4..8].try_into().expect("4 bytes"));
                        c.in_flight.push_back((xid, op, Instant::now()));
                        // Alone in flight, and after the ConnectResponse (the first frame
                        // sent): a reply then keeps the connection's order.
                        let alone = c.in_flight.len() == 1 && c.sent > 0;
                        refuse = (self.disk_full && alone && refused_when_full(op)).then_some(xid);
                    }
                }
                if let Some(xid) = refuse {
                    return self.refuse_while_disk_full(conn, xid);
                }
                // The time the request arrived stamps its txn, to the ms (issue 12).
                let wall_ms = self.env.clock.wall_ms();
                self.node.step(Input::ClientFrame { conn, payload, wall_ms });
            }
            Event::Closed { conn } => {
                self.writers.remove(&conn);
                self.conns.remove(&conn);
                self.ping_replies_to_drop.remove(&conn);
                self.node.step(Input::ClientClosed { conn });
            }
            Event::FourLetterWord { remote, cmd, reply } => {
                self.four_letter_word(remote, cmd, reply)
            }
            Event::Metrics { reply } => {
                let view = self.admin_view(&|_| true);
                let mntr = admin::answer(*b"mntr", &view);
                let _ = reply.send((mntr, self.stats.op_latency.clone()));
            }
            Event::Admin { command, reply } => {
                let view = self.admin_view(&|_| true);
                let answer = admin::command_json(command, &view);
                if answer.is_ok() {
                    admin::reset(command, &mut self.stats, &mut self.conns);
                }
                let _ = reply.send(answer);
            }
            // Out of the ensemble: as behind a partition (the peer protocol's sessions tell
            // the node about what it missed when it is back).
            Event::Peer { .. } | Event::PeerLost { .. } if self.dropped_out => {}
            Event::Peer { from, msg } => {
                let wall_ms = self.env.clock.wall_ms();
                self.node.step(Input::PeerMessage { from, msg, wall_ms })
            }
            Event::PeerLost { peer } => self.node.step(Input::PeerLost { peer }),
        }
    }

    /// Answers a write request with THROTTLEDOP without handing it to the node: the disk is
    /// full. Only when nothing else of its connection is in flight, so the reply keeps the
    /// connection's order (a write behind other requests goes to the node and waits for the
    /// disk like any other). THROTTLEDOP, because ZooKeeper defines it as "not executed at all,
    /// retry with back-off": the client knows nothing happened (unlike CONNECTIONLOSS) and
    /// that a retry may succeed (unlike QUOTAEXCEEDED); Java maps it to
    /// `KeeperException.ThrottledOpException`.
    fn refuse_while_disk_full(&mut self, conn: ConnId, refused_xid: i32) {
        use zkr_core::proto::client::{OpCode, ReplyHeader, xid};
        use zkr_core::proto::error::ZkError;
        assert!(self.disk_full, "only while the disk is full");
        let err = ZkError::ThrottledOp as i32;
        let header = ReplyHeader { xid: refused_xid, zxid: self.node.last_zxid().0, err };
        let frame = zkr_core::proto::codec::encode_reply(&header, None);
        self.send(conn, frame);
        assert!(self.conns.get(&conn).is_none_or(|c| c.in_flight.is_empty()), "answered");
        // The core never sees the write, but its arrival must still keep the session alive
        // (a client that only writes would otherwise expire while the disk is full): a ping
        // stands in for it. Nothing of the connection is in flight, so the core answers the
        // ping before any later one of the client's, and that first reply is dropped.
        *self.ping_replies_to_drop.entry(conn).or_default() += 1;
        let ping = [xid::PING.to_be_bytes(), (OpCode::Ping as i32).to_be_bytes()].concat();
        let wall_ms = self.env.clock.wall_ms();
        self.node.step(Input::ClientFrame { conn, payload: ping, wall_ms });
    }

    /// What the four-letter words, the AdminServer and the metrics endpoint read.
    fn admin_view<'a>(&'a self, allowed: &'a dyn Fn(&str) -> bool) -> AdminView<'a> {
        AdminView {
            node: &self.node,
            stats: &self.stats,
            conns: &self.conns,
            conf_lines: &self.conf_lines,
            allowed,
            dirs: (&self.cfg.data_dir, &self.cfg.data_log_dir),
        }
    }

    fn four_letter_word(
        &mut self,
        remote: SocketAddr,
        cmd: [u8; 4],
        reply: oneshot::Sender<String>,
    ) {
        tracing::debug!(%remote, cmd = %String::from_utf8_lossy(&cmd), "four-letter word");
        let whitelist = &self.cfg.four_letter_words;
        let allowed = |name: &str| whitelist.allows(name);
        let view = self.admin_view(&allowed);
        let text = admin::answer(cmd, &view);
        if allowed(&String::from_utf8_lossy(&cmd)) {
            match &cmd {
                b"srst" => self.stats.reset(),
                b"crst" => {
                    for c in self.conns.values_mut() {
                        c.latency = Default::default();
                    }
                }
                _ => {}
            }
        }
        let _ = reply.send(text);
    }

    /// Carries out the node's outputs through the one executor of the output contract
    /// (`zkr_core::io::ready`), with this driver as its effects. Appends are batched into one
    /// storage command per flow (group commit: the log thread syncs once for all queued); sends
    /// and frames go to the connection tasks at once, which write them in batches. A disk
    /// write parks the plan: nothing after it goes out until it is durable (the epochs are
    /// written only once every earlier append is synced, so an epoch is never durable over a
    /// log that lacks the txns it was adopted over: ZOOKEEPER-4643).
    async fn flush(&mut self) -> Result<(), String> {
        let outputs = self.node.take_outputs();
        let mut executor = std::mem::take(&mut self.executor);
        let done = self.execute(&mut executor, outputs).await;
        self.executor = executor;
        done
    }

    async fn execute(
        &mut self,
        executor: &mut Executor,
        outputs: Vec<Output>,
    ) -> Result<(), String> {
        let mut progress = executor.run(outputs, self);
        loop {
            if let Some(error) = self.failed.take() {
                return Err(error);
            }
            if progress == Progress::Done {
                return Ok(());
            }
            let write = self.pending_write.take().expect("the executor waits for a write");
            self.write_durably(write).await?;
            executor.written();
            progress = executor.resume(self);
        }
    }

    /// Carries out a disk write the executor parked its plan on; returns once it is durable.
    async fn write_durably(&mut self, write: DiskWrite) -> Result<(), String> {
        let stopped = |_| "storage thread stopped".to_string();
        match write {
            DiskWrite::Epochs { accepted_epoch, current_epoch } => {
                let dir = self.cfg.data_dir.clone();
                self.storage.write_epochs(&dir, accepted_epoch, current_epoch).await
            }
            DiskWrite::Truncate { after } => {
                tracing::info!(%after, "truncating the txn log (leader's TRUNC)");
                self.storage.truncate_after(after.0).map_err(stopped)?;
                self.storage.barrier().await
            }
            DiskWrite::Snapshot(snapshot) => {
                let zxid = snapshot.zxid.0;
                tracing::info!("installing the leader's snapshot 0x{zxid:x}");
                // Encoded on the log thread, not here (issue 16); later outputs still wait
                // until the install is durable (the barrier below).
                self.storage.truncate_after(zxid).map_err(stopped)?;
                self.storage.save_snapshot_of(zxid, snapshot).map_err(stopped)?;
                self.storage.barrier().await?;
                // The install is this server's newest snapshot: count from it.
                self.counted_upto = Zxid(zxid);
                self.applied_since_snapshot = 0;
                Ok(())
            }
        }
    }

    fn send(&mut self, conn: ConnId, frame: Vec<u8>) {
        if frame.len() >= 8
            && frame[4..8] == zkr_core::proto::client::xid::PING.to_be_bytes()
            && let Some(left) = self.ping_replies_to_drop.get_mut(&conn)
        {
            // The reply to a ping that stood in for a refused write: the client sent no ping.
            *left -= 1;
            if *left == 0 {
                self.ping_replies_to_drop.remove(&conn);
            }
            return;
        }
        self.stats.packets_sent += 1;
        self.stats.last_response_size = frame.len();
        self.stats.min_response_size = self.stats.min_response_size.min(frame.len());
        self.stats.max_response_size = self.stats.max_response_size.max(frame.len());
        if let Some(c) = self.conns.get_mut(&conn) {
            c.sent += 1;
            if frame.len() >= 20 {
                let xid = i32::from_be_bytes(frame[4..8].try_into().expect("4 bytes"));
                // A ping is answered with xid -2 whatever xid it was sent with.
                let answers =
                    |&(x, op, _): &(i32, i32, Instant)| x == xid || (xid == -2 && op == 11);
                if let Some(pos) = c.in_flight.iter().position(answers) {
                    let (cxid, op, arrived) = c.in_flight.remove(pos).expect("position is valid");
                    let latency = arrived.elapsed();
                    c.latency.record(latency);
                    self.stats.record_latency(op, latency);
                    let zxid = i64::from_be_bytes(frame[8..16].try_into().expect("8 bytes"));
                    c.last = Some(admin::LastReply {
                        op,
                        cxid,
                        zxid,
                        responded_ms: self.stats.started.elapsed().as_millis(),
                        latency_ms: latency.as_millis(),
                    });
                    if let Some(writer) = self.writers.get(&conn) {
                        writer.replied();
                    }
                }
            }
        }
        if let Some(writer) = self.writers.get(&conn) {
            writer.send(frame);
        }
    }
}

/// The driver's primitive effects. A failure to reach the storage thread halts the plan and
/// stops the driver (`failed`).
impl Effects for Driver {
    fn append(&mut self, txn: Arc<LoggedTxn>) {
        self.appends.push((txn.header.zxid.0, encode_txn(&txn)));
    }

    fn appends_end(&mut self) {
        let batch = std::mem::take(&mut self.appends);
        if let Some(&(last, _)) = batch.last() {
            let bytes: u64 = batch.iter().map(|(_, payload)| payload.len() as u64).sum();
            assert!(self.waiting.back().is_none_or(|(z, _)| *z < last), "appends in zxid order");
            self.waiting.push_back((last, bytes));
            self.waiting_bytes += bytes;
        }
        if !batch.is_empty() && self.storage.append(batch).is_err() {
            self.failed = Some("storage thread stopped".to_string());
        }
    }

    fn write(&mut self, write: DiskWrite) -> Written {
        assert!(self.pending_write.is_none(), "one disk write at a time");
        self.pending_write = Some(write);
        Written::Pending
    }

    fn peer_send(&mut self, to: ServerId, msg: ZabMessage) {
        if self.dropped_out {
            return;
        }
        if let Some(peers) = &self.peers {
            peers.send(to, &msg);
        }
    }

    fn client_send(&mut self, conn: ConnId, frame: Vec<u8>) {
        self.send(conn, frame);
    }

    fn client_close(&mut self, conn: ConnId) {
        if let Some(writer) = self.writers.get(&conn) {
            writer.close();
        }
    }

    fn read_log(&mut self, read: LogReadRequest) {
        // The executor handed this flow's appends over first: the read queues behind them.
        let LogReadRequest { request, after, upto, max_txns } = read;
        if self.storage.read_log(request, after.0, upto.0, max_txns).is_err() {
            self.failed = Some("storage thread stopped".to_string());
        }
    }

    fn halted(&self) -> bool {
        self.failed.is_some()
    }
}

/// Whether a request of opcode `op` is refused while the disk is full: every write but
/// closeSession (a client closing must not be told to retry; its txn waits for the disk, and
/// expiry would log the same txn anyway).
fn refused_when_full(op: i32) -> bool {
    use zkr_core::proto::client::OpCode;
    OpCode::from_i32(op).is_some_and(|op| op.is_write() && op != OpCode::CloseSession)
}

fn conn_stats(remote: SocketAddr) -> ConnStats {
    ConnStats {
        remote,
        secure: false,
        received: 0,
        sent: 0,
        established_ms: admin::now_ms(),
        latency: Default::default(),
        in_flight: Default::default(),
        last: None,
    }
}

/// ZooKeeper snapshots after a random count in `[snapCount/2 + 1, snapCount]`, so that the
/// servers of an ensemble do not all snapshot at once.
fn snapshot_threshold(snap_count: u64, rng: &mut impl rand::Rng) -> u64 {
    let snap_count = snap_count.max(2);
    rng.random_range(snap_count / 2 + 1..=snap_count)
}

#[cfg(test)]
mod tests {
    /// The records are decoded beside `load` (on another thread) and come back in order with
    /// what `load` returned; a record that does not decode, or holds a txn of another zxid, is
    /// an error naming its zxid, while `load`'s result still comes back for the caller to
    /// report first.
    #[test]
    fn records_decode_beside_the_load_and_errors_name_the_record() {
        use zkr_core::txn::{LoggedTxn, Txn, TxnHeader};
        use zkr_core::types::{SessionId, Zxid};
        let txn = |zxid: i64| {
            let header =
                TxnHeader { session_id: SessionId(3), cxid: 1, zxid: Zxid(zxid), time_ms: 7 };
            LoggedTxn { header, txn: Txn::Delete { path: format!("/n{zxid}") } }
        };
        let records: Vec<(i64, Vec<u8>)> =
            (1..=3).map(|z| (z, zkr_core::proto::txn::encode_txn(&txn(z)))).collect();
        let here = std::thread::current().id();
        let (loaded, decoded) =
            super::decode_txns_beside(records.clone(), || std::thread::current().id());
        assert_eq!(loaded, here, "load runs on the caller's thread");
        assert_eq!(decoded.unwrap(), vec![txn(1), txn(2), txn(3)]);
        let mut torn = records.clone();
        torn[1].1.truncate(5);
        let (loaded, decoded) = super::decode_txns_beside(torn, || "snapshot");
        assert_eq!(loaded, "snapshot");
        let err = decoded.unwrap_err();
        assert!(err.starts_with("log record 0x2 does not decode as a txn"), "{err}");
        let mut moved = records;
        moved[2].0 = 4;
        let err = super::decode_txns_beside(moved, || ()).1.unwrap_err();
        assert_eq!(err, "log record 0x4 holds a txn with zxid 0x3");
    }

    /// While the disk is full every write is refused but closeSession; reads, pings, sync and
    /// unknown opcodes go to the core as ever.
    #[test]
    fn writes_but_close_session_are_refused_while_the_disk_is_full() {
        use zkr_core::proto::client::OpCode;
        for op in [OpCode::Create, OpCode::Create2, OpCode::Delete, OpCode::SetData] {
            assert!(super::refused_when_full(op.code()), "{op:?}");
        }
        assert!(super::refused_when_full(OpCode::Multi.code()));
        assert!(super::refused_when_full(OpCode::SetAcl.code()));
        for op in [OpCode::CloseSession, OpCode::GetData, OpCode::Exists, OpCode::Ping] {
            assert!(!super::refused_when_full(op.code()), "{op:?}");
        }
        assert!(!super::refused_when_full(OpCode::Sync.code()));
        assert!(!super::refused_when_full(10), "not an opcode");
    }

    use super::*;
    use zkr_core::proto::error::DecodeError;
    use zkr_core::tree::DataTree;

    /// `decode_pieces` of `blob` cut into pieces of 1,000 bytes (records span pieces).
    #[cfg(not(madsim))]
    fn decode_snapshot(blob: &[u8]) -> Result<snapshot::Snapshot, String> {
        decode_pieces(blob.len(), |sink| blob.chunks(1000).try_for_each(|p| sink(p.to_vec())))
    }

    /// Under madsim, the whole-blob decode `load_snapshot` does there (no threads), so the
    /// same tests hold that path to the same answers.
    #[cfg(madsim)]
    fn decode_snapshot(blob: &[u8]) -> Result<snapshot::Snapshot, String> {
        snapshot::verify_checksum(blob).map_err(|e| e.to_string())?;
        snapshot::decode_deferring_checks(blob).map_err(|e| e.to_string())
    }

    /// The checksum run beside the decode still refuses a snapshot: a flipped byte in the
    /// trailing checksum (the body decodes fine) or in the body.
    #[test]
    fn a_snapshot_is_used_only_when_checksum_and_decode_both_pass() {
        let tree = DataTree::new();
        let blob = snapshot::encode(&tree, &[]);
        let decoded = decode_snapshot(&blob).expect("a fresh snapshot decodes");
        assert_eq!(decoded.tree.digest(), tree.digest());
        let mut bad_sum = blob.clone();
        *bad_sum.last_mut().expect("not empty") ^= 1;
        assert!(snapshot::decode_deferring_checks(&bad_sum).is_ok(), "the body is intact");
        assert_eq!(decode_snapshot(&bad_sum).err(), Some(DecodeError::BadChecksum.to_string()));
        let mut bad_body = blob.clone();
        bad_body[20] ^= 1;
        assert!(decode_snapshot(&bad_body).is_err());
    }

    /// A tree of more nodes than one hand-over batch, with parents whose children come in
    /// several runs ("/p1/c0", "/p1/c0/g", "/p1/c1") and ephemerals, loads on three threads to
    /// the tree a sequential decode builds (child counts included), and is refused the same way
    /// when a node is out of order.
    #[test]
    fn the_threaded_decode_builds_the_sequential_tree() {
        use zkr_core::txn::{CreateKind, LoggedTxn, Txn, TxnHeader};
        use zkr_core::types::{Acl, SessionId};
        let mut tree = DataTree::new();
        let mut create = |path: String, kind| {
            let zxid = Zxid(tree.last_processed_zxid().0 + 1);
            let header = TxnHeader { session_id: SessionId(7), cxid: 0, zxid, time_ms: zxid.0 };
            let data = Some(path.as_bytes().to_vec());
            let txn =
                Txn::Create { path, data, acl: Acl::open_unsafe(), kind, parent_cversion: -1 };
            tree.apply(&LoggedTxn { header, txn });
        };
        for p in 0..3 {
            create(format!("/p{p}"), CreateKind::Persistent);
            for c in 0..3000 {
                create(format!("/p{p}/c{c}"), CreateKind::Persistent);
                if c % 7 == 0 {
                    create(format!("/p{p}/c{c}/g"), CreateKind::Ephemeral);
                }
            }
        }
        let blob = snapshot::encode(&tree, &[(SessionId(7), 30_000)]);
        let sequential = snapshot::decode(&blob).expect("decodes");
        let threaded = decode_snapshot(&blob).expect("decodes");
        assert!(tree.node_count() > 2 * 4096, "more than two batches");
        assert_eq!(threaded, sequential);
        threaded.tree.invariants();
        assert_eq!(threaded.tree.children("/p1").expect("exists").len(), 3000);
        // The last two node records of the file swapped ("/zookeeper/quota" first).
        let at = |needle: &[u8]| blob.windows(needle.len()).rposition(|w| w == needle).unwrap();
        let (config, quota) = (at(b"/zookeeper/config") - 4, at(b"/zookeeper/quota") - 4);
        let mut swapped = blob[..config].to_vec();
        swapped.extend_from_slice(&blob[quota..blob.len() - 16]);
        swapped.extend_from_slice(&blob[config..quota]);
        swapped.extend_from_slice(&blob[blob.len() - 16..blob.len() - 8]);
        let mut sum = zkr_core::tree::digest::Fnv64::default();
        sum.bytes(&swapped);
        swapped.extend_from_slice(&sum.finish().to_be_bytes());
        let refused = snapshot::decode(&swapped).err();
        assert!(refused.is_some(), "out of order");
        assert_eq!(decode_snapshot(&swapped).err(), refused.map(|e| e.to_string()));
    }

    /// A stored digest that does not match the nodes, under a valid checksum, decodes (the
    /// comparison is deferred) and is then caught by the tree's invariants.
    #[test]
    fn a_wrong_stored_digest_is_caught_by_the_deferred_check() {
        let blob = snapshot::encode(&DataTree::new(), &[]);
        let mut bad = blob[..blob.len() - 8].to_vec();
        let digest_at = bad.len() - 8;
        bad[digest_at] ^= 1;
        let mut sum = zkr_core::tree::digest::Fnv64::default();
        sum.bytes(&bad);
        bad.extend_from_slice(&sum.finish().to_be_bytes());
        assert_eq!(snapshot::decode(&bad).err(), Some(DecodeError::BadChecksum));
        let loaded = decode_snapshot(&bad).expect("the digest is checked later");
        let check = std::panic::catch_unwind(|| loaded.tree.invariants());
        assert!(check.is_err(), "the deferred check finds the wrong digest");
    }
}
