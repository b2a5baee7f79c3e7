//! `Node`: owns all server state and is driven only through `step(Input)`; results leave through
//! `take_outputs()`. This file holds the write path (propose → persist → commit → apply), session
//! expiry, container cleanup, recovery and the node-wide invariants; the per-connection pipeline is
//! in [`crate::serve`].
//!
//! Write path, standalone (a quorum of one, shaped so Zab slots in):
//! 1. a write request is prepared into a `Txn` with the next zxid (`prep`), appended to
//!    `proposals` and emitted as `Output::Persist`;
//! 2. `Input::Persisted{upto}` marks it durable; durable proposals commit in zxid order;
//! 3. commit applies the txn to the tree, fires watches (events go out before any reply that can
//!    show the change), updates sessions, and fills the reply of the request that asked for it.
//!
//! Invariants (checked by `invariants()` after every step, in release builds too):
//! - `last_persisted ≤ last_proposed`; proposals are consecutive zxids after the tree's last
//!   processed zxid, and none of them is durable-but-uncommitted after a step;
//! - the session table and watch tables are internally consistent;
//! - every connection's pipeline is consistent with its phase (see `serve`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::config::Config;
use crate::io::{Input, Output};
use crate::prep::PrepState;
use crate::proto::client::{EventType, STATE_SYNC_CONNECTED, WatcherEvent};
use crate::proto::codec;
use crate::serve::Conn;
use crate::session::{SessionTable, initial_session_id};
use crate::snapshot::Snapshot;
use crate::tree::{ApplyOutcome, DataTree, WatchTrigger};
use crate::txn::{LoggedTxn, Txn, TxnHeader};
use crate::types::{ConnId, SessionId, Zxid, perms};
use crate::watch::WatchManager;

/// What a node starts from: the recovered disk state and the shell's clock.
#[derive(Clone, Debug, Default)]
pub struct NodeInit {
    /// Wall clock at start, ms since the Unix epoch (seeds session ids as ZooKeeper does).
    pub wall_ms: i64,
    /// The newest valid snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Logged txns after the snapshot, in zxid order; all of them are durable.
    pub txns: Vec<LoggedTxn>,
}

/// Why recovered state cannot be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryError(pub String);

impl std::fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecoveryError {}

/// A ZooKeeper server's state machine.
pub struct Node {
    pub(crate) config: Config,
    pub(crate) now_tick: u64,
    pub(crate) wall_ms: i64,
    pub(crate) tree: DataTree,
    pub(crate) prep: PrepState,
    pub(crate) sessions: SessionTable,
    pub(crate) watches: WatchManager,
    pub(crate) conns: BTreeMap<ConnId, Conn>,
    /// Connections waiting for their CreateSession txn to apply.
    pub(crate) connecting: BTreeMap<SessionId, ConnId>,
    pub(crate) next_session_id: i64,
    pub(crate) last_proposed: Zxid,
    pub(crate) last_persisted: Zxid,
    pub(crate) proposals: VecDeque<LoggedTxn>,
    pub(crate) outputs: Vec<Output>,
    next_container_check_tick: u64,
}

impl Node {
    /// Builds a node from recovered state. Fails if the recovered txns are out of order.
    pub fn new(config: Config, init: NodeInit) -> Result<Node, RecoveryError> {
        config.validate().map_err(|e| RecoveryError(e.to_string()))?;
        let bucket_ticks = config.ms_to_ticks(config.tick_time_ms as u64).max(1);
        let mut sessions = SessionTable::new(bucket_ticks, config.tick_ms as u64);
        let tree = match init.snapshot {
            Some(snap) => {
                for (id, timeout_ms) in &snap.sessions {
                    sessions.add(*id, *timeout_ms, 0);
                }
                snap.tree
            }
            None => DataTree::new(),
        };
        let check_ticks = config.ms_to_ticks(config.container_check_interval_ms).max(1);
        let mut node = Node {
            now_tick: 0,
            wall_ms: init.wall_ms,
            tree,
            prep: PrepState::default(),
            sessions,
            watches: WatchManager::new(),
            conns: BTreeMap::new(),
            connecting: BTreeMap::new(),
            next_session_id: 0,
            last_proposed: Zxid::ZERO,
            last_persisted: Zxid::ZERO,
            proposals: VecDeque::new(),
            outputs: Vec::new(),
            next_container_check_tick: check_ticks,
            config,
        };
        for txn in &init.txns {
            let last = node.tree.last_processed_zxid();
            if txn.header.zxid <= last {
                return Err(RecoveryError(format!(
                    "recovered txn {} is not after {} (log out of order)",
                    txn.header.zxid, last
                )));
            }
            node.apply_recovered(txn);
        }
        node.last_proposed = node.tree.last_processed_zxid();
        node.last_persisted = node.last_proposed;
        node.next_session_id = node.first_session_id(init.wall_ms);
        node.invariants();
        Ok(node)
    }

    fn first_session_id(&self, wall_ms: i64) -> i64 {
        let initial = initial_session_id(self.config.server_id.0, wall_ms).0;
        let prefix = (self.config.server_id.0 << 56) as i64;
        let max_own = self.sessions.iter().map(|(id, _)| id.0).filter(|id| id >> 56 == prefix >> 56);
        max_own.map(|m| m + 1).max().unwrap_or(initial).max(initial)
    }

    fn apply_recovered(&mut self, txn: &LoggedTxn) {
        let applied = self.tree.apply(txn);
        if let ApplyOutcome::Failed(err) = &applied.outcome {
            tracing::debug!(zxid = %txn.header.zxid, ?err, "recovered txn replays as an error");
        }
        self.apply_session_effects(txn);
    }

    /// Feeds one input.
    pub fn step(&mut self, input: Input) {
        match input {
            Input::Tick { wall_ms } => self.on_tick(wall_ms),
            Input::ClientConnected { conn, remote_ip } => self.on_client_connected(conn, remote_ip),
            Input::ClientFrame { conn, payload } => self.on_client_frame(conn, payload),
            Input::ClientClosed { conn } => self.on_client_closed(conn),
            Input::Persisted { upto } => self.on_persisted(upto),
        }
        self.invariants();
    }

    /// Takes everything the node asked the shell to do, in order.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    /// The data tree (read-only; for admin commands, snapshots and the simulator).
    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    /// The session table (read-only).
    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    /// The watch tables (read-only).
    pub fn watches(&self) -> &WatchManager {
        &self.watches
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The last applied zxid.
    pub fn last_zxid(&self) -> Zxid {
        self.tree.last_processed_zxid()
    }

    /// Writes proposed but not yet applied.
    pub fn outstanding_proposals(&self) -> usize {
        self.proposals.len()
    }

    /// A consistent snapshot of the applied state, to be encoded off the hot path.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            zxid: self.tree.last_processed_zxid(),
            tree: self.tree.clone(),
            sessions: self.sessions.snapshot_list(),
        }
    }

    fn on_tick(&mut self, wall_ms: i64) {
        self.now_tick += 1;
        self.wall_ms = wall_ms;
        let expired = if self.config.bugs.skip_session_expiry {
            Vec::new()
        } else {
            self.sessions.expired(self.now_tick)
        };
        for session in expired {
            tracing::info!(%session, "session expired");
            self.close_session(session, 0);
        }
        if self.now_tick >= self.next_container_check_tick {
            let interval = self.config.ms_to_ticks(self.config.container_check_interval_ms);
            self.next_container_check_tick = self.now_tick + interval.max(1);
            self.check_containers();
        }
    }

    fn check_containers(&mut self) {
        let candidates = self
            .tree
            .expired_containers_and_ttls(self.wall_ms, self.config.extended_types_enabled);
        let per_minute = self.config.container_max_per_minute as u64;
        let interval_ms = self.config.container_check_interval_ms.max(1);
        let budget = (per_minute * interval_ms / 60_000).max(1) as usize;
        for path in candidates.into_iter().take(budget) {
            let zxid = self.last_proposed.next();
            let txn = self.prep.prepare_delete_container(&self.tree, &path, zxid);
            self.propose(SessionId(0), 0, txn);
        }
    }

    /// Starts closing a session: marks it and proposes its CloseSession txn.
    pub(crate) fn close_session(&mut self, session: SessionId, cxid: i32) -> Option<Zxid> {
        if !self.sessions.mark_closing(session) {
            return None;
        }
        let zxid = self.last_proposed.next();
        let txn = self.prep.prepare_close_session(&self.tree, session, zxid);
        assert!(matches!(txn, Txn::CloseSession { .. }));
        let proposed = self.propose(session, cxid, txn);
        assert_eq!(proposed, zxid);
        Some(proposed)
    }

    /// Appends a decided txn to the proposal pipeline and asks the shell to persist it.
    pub(crate) fn propose(&mut self, session: SessionId, cxid: i32, txn: Txn) -> Zxid {
        let zxid = self.last_proposed.next();
        let header = TxnHeader { session_id: session, cxid, zxid, time_ms: self.wall_ms };
        let logged = LoggedTxn { header, txn };
        self.last_proposed = zxid;
        self.outputs.push(Output::Persist { txn: logged.clone() });
        self.proposals.push_back(logged);
        assert_eq!(self.proposals.back().map(|t| t.header.zxid), Some(zxid));
        if self.config.bugs.ack_before_fsync {
            let txn = self.proposals.pop_back().expect("just pushed");
            self.commit(txn);
        }
        zxid
    }

    fn on_persisted(&mut self, upto: Zxid) {
        assert!(upto <= self.last_proposed, "persisted {upto} beyond proposed");
        if upto <= self.last_persisted {
            return;
        }
        if self.config.bugs.ack_before_fsync {
            self.last_persisted = upto;
            return;
        }
        self.last_persisted = upto;
        while self.proposals.front().is_some_and(|t| t.header.zxid <= upto) {
            let txn = self.proposals.pop_front().expect("front exists");
            self.commit(txn);
        }
    }

    /// Applies a committed txn and emits everything that follows from it.
    fn commit(&mut self, txn: LoggedTxn) {
        let zxid = txn.header.zxid;
        assert_eq!(zxid, self.tree.last_processed_zxid().next(), "commit in zxid order");
        let applied = self.tree.apply(&txn);
        assert_eq!(self.tree.last_processed_zxid(), zxid, "apply moves last processed zxid");
        self.prep.applied(zxid);
        self.fire_watches(zxid, &applied.triggers);
        let owner_conn = self.sessions.get(txn.header.session_id).and_then(|s| s.conn);
        self.apply_session_effects(&txn);
        match &txn.txn {
            Txn::CreateSession { .. } => self.on_session_created(txn.header.session_id),
            Txn::CloseSession { .. } => {
                self.on_session_closed(owner_conn, &txn.header, &applied.outcome)
            }
            _ => {
                if let Some(conn) = owner_conn {
                    self.complete_write(conn, &txn.header, &applied.outcome);
                }
            }
        }
    }

    fn apply_session_effects(&mut self, txn: &LoggedTxn) {
        match &txn.txn {
            Txn::CreateSession { timeout_ms } => {
                self.sessions.add(txn.header.session_id, *timeout_ms, self.now_tick)
            }
            Txn::CloseSession { .. } => {
                self.sessions.remove(txn.header.session_id);
            }
            _ => {}
        }
    }

    fn on_session_closed(
        &mut self,
        owner_conn: Option<ConnId>,
        header: &TxnHeader,
        outcome: &ApplyOutcome,
    ) {
        let Some(conn) = owner_conn else { return };
        let replied = self.complete_write(conn, header, outcome);
        if !replied {
            // Expired (no closeSession request pending): the connection is just closed.
            self.close_conn(conn);
        }
    }

    /// Sends watch events for the triggers of one applied txn (ZooKeeper 3.9: the event carries
    /// the txn's zxid; delivery needs READ on the node, NodeChildrenChanged on the parent).
    fn fire_watches(&mut self, zxid: Zxid, triggers: &[WatchTrigger]) {
        for trigger in triggers {
            let mut previous = BTreeSet::new();
            for (table, suppress_previous) in WatchManager::tables_for(trigger.event) {
                let suppress = if *suppress_previous { previous.clone() } else { BTreeSet::new() };
                let notify = self.watches.trigger(*table, &trigger.path, &suppress);
                for conn in &notify {
                    self.send_event(*conn, zxid.0, trigger.event, &trigger.path, true);
                }
                previous.extend(notify);
            }
        }
    }

    /// Sends one watch notification, ACL-filtered when `filter` is set (setWatches events are not).
    pub(crate) fn send_event(
        &mut self,
        conn: ConnId,
        zxid: i64,
        event_type: EventType,
        path: &str,
        filter: bool,
    ) {
        let Some(c) = self.conns.get(&conn) else { return };
        if filter && event_type != EventType::NodeDeleted {
            if let Some(acl) = self.tree.acl(path) {
                let ok = crate::tree::acl::check_acl(acl, &c.ids, perms::READ, self.config.skip_acl);
                if !ok {
                    return;
                }
            }
        }
        let event =
            WatcherEvent { event_type, state: STATE_SYNC_CONNECTED, path: path.to_string() };
        let frame = codec::encode_notification(zxid, &event);
        self.outputs.push(Output::ClientSend { conn, frame });
    }

    /// Checks node-wide invariants; panics when the state is broken. Kept on in release builds.
    pub fn invariants(&self) {
        assert!(self.last_persisted <= self.last_proposed, "persisted ≤ proposed");
        let applied = self.tree.last_processed_zxid();
        if self.config.bugs.ack_before_fsync {
            return;
        }
        assert!(applied <= self.last_persisted, "applied ≤ persisted (standalone)");
        let mut expect = applied;
        for p in &self.proposals {
            assert_eq!(p.header.zxid, expect.next(), "proposals are consecutive after applied");
            expect = p.header.zxid;
        }
        assert_eq!(expect, self.last_proposed, "last proposal is last_proposed");
        if let Some(front) = self.proposals.front() {
            assert!(front.header.zxid > self.last_persisted, "no durable proposal left uncommitted");
        }
        self.sessions.invariants();
        self.watches.invariants();
        for (id, conn) in &self.conns {
            conn.invariants(*id, &self.sessions);
        }
        for (session, conn) in &self.connecting {
            assert!(self.conns.contains_key(conn), "connecting conn {conn:?} of {session} exists");
        }
    }
}

impl Node {
    /// The session a connection holds (or is creating), for admin output.
    pub fn connection_session(&self, conn: ConnId) -> Option<SessionId> {
        self.conns.get(&conn).and_then(|c| c.session())
    }
}
