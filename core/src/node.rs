//! `Node`: owns all server state and is driven only through `step(Input)`; results leave through
//! `take_outputs()`. This file holds the state, recovery, the commit/apply path, session expiry,
//! container cleanup and the node-wide invariants. Zab roles live in [`crate::zab`], the
//! per-connection pipeline in [`crate::serve`].
//!
//! Write path (the same for a standalone server, a leader with a quorum of one, and an ensemble):
//! 1. the leader prepares a request into a `Txn` with the next zxid (`prep`), appends it to the
//!    log (`Output::Persist`) and sends it to its learners (`PROPOSAL`);
//! 2. `Input::Persisted` and learners' cumulative `ACK`s move each voter's durable point; once a
//!    quorum of voters has a proposal durable, it is committed, in zxid order;
//! 3. commit applies the txn to the tree, fires watches (events go out before any reply that can
//!    show the change), updates sessions, and fills the reply of the request that asked for it.
//!
//! Invariants, in two sets:
//! - `check_step` (O(1) in the node's tables; after every step, release builds too):
//!   `current_epoch ≤ accepted_epoch`; `applied ≤ committed ≤ durable-or-logged ≤ last logged`;
//!   log zxids increase; the role's phase is consistent with the epochs and the log (see
//!   `Leader::invariants`, `Learner::invariants`);
//! - `check_full` (walks every table): the above, plus the session table and watch tables are
//!   internally consistent, every connection's pipeline is consistent with its phase (see
//!   `serve`), nobody is served unless the role serves. The simulator runs it at chosen
//!   points (every 16 steps of a node and at the end of a seed); debug builds also run it
//!   amortized inside `step`. Run after every step it made opening 9,000 sessions take 25 s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

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
use crate::zab::election::ElectionAction;
use crate::zab::leader::Leader;
use crate::zab::log::ZabLog;
use crate::zab::message::Vote;
use crate::zab::quorum::Quorum;
use crate::zab::{Role, start_election};

/// What a node starts from: the recovered disk state, the shell's clock and a seed.
#[derive(Clone, Debug, Default)]
pub struct NodeInit {
    /// Wall clock at start, ms since the Unix epoch (seeds session ids as ZooKeeper does).
    pub wall_ms: i64,
    /// Seed for the node's PRNG (election backoff jitter).
    pub seed: u64,
    /// The newest valid snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Logged txns after the snapshot, in zxid order; all of them are durable.
    pub txns: Vec<LoggedTxn>,
    /// The durable `acceptedEpoch` (ensembles only).
    pub accepted_epoch: u32,
    /// The durable `currentEpoch` (ensembles only).
    pub current_epoch: u32,
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

fn check_recovered_order(base: Zxid, txns: &[LoggedTxn]) -> Result<(), RecoveryError> {
    let mut last = base;
    for txn in txns {
        if txn.header.zxid <= last {
            return Err(RecoveryError(format!(
                "recovered txn {} is not after {} (log out of order)",
                txn.header.zxid, last
            )));
        }
        last = txn.header.zxid;
    }
    Ok(())
}

/// The role a node starts in: a standalone server leads at once (epoch 0); an ensemble member
/// elects, with the actions its first election round asks for (run once the node exists).
fn first_role(
    config: &Config,
    quorum: &Quorum,
    rng: &mut ChaCha8Rng,
    last_logged: Zxid,
    current_epoch: u32,
) -> (Role, Vec<ElectionAction>) {
    if config.is_standalone() {
        return (Role::Leading(Box::new(Leader::standalone(last_logged))), Vec::new());
    }
    let own = Vote { leader: config.server_id, zxid: last_logged, peer_epoch: current_epoch };
    let (election, actions) = start_election(config, quorum, rng, own, 0, 0);
    assert!(!actions.is_empty(), "a new round announces our vote");
    (Role::Looking(election), actions)
}

/// A ZooKeeper server's state machine.
pub struct Node {
    pub(crate) config: Config,
    pub(crate) now_tick: u64,
    /// The shell's latest wall clock reading (from `Tick`, `ClientFrame` or `PeerMessage`):
    /// the time a txn prepared now is stamped with.
    pub(crate) wall_ms: i64,
    /// Peers heard from since this process started. A lost connection to a peer never heard
    /// from (at start-up, one not started yet) is no reason to stop waiting for its vote.
    pub(crate) peers_heard: BTreeSet<crate::types::ServerId>,
    pub(crate) tree: DataTree,
    pub(crate) prep: PrepState,
    pub(crate) sessions: SessionTable,
    pub(crate) watches: WatchManager,
    pub(crate) conns: BTreeMap<ConnId, Conn>,
    /// Connections waiting for their CreateSession txn to apply.
    pub(crate) connecting: BTreeMap<SessionId, ConnId>,
    pub(crate) next_session_id: i64,
    pub(crate) log: ZabLog,
    pub(crate) role: Role,
    pub(crate) accepted_epoch: u32,
    pub(crate) current_epoch: u32,
    pub(crate) quorum: Quorum,
    pub(crate) rng: ChaCha8Rng,
    /// The last election round this node took part in, and the vote it settled on.
    pub(crate) last_round: u64,
    pub(crate) leader_vote: Option<crate::zab::message::Vote>,
    pub(crate) outputs: Vec<Output>,
    /// `Output::ReadLog` requests made so far: the next one's name (unique per incarnation).
    pub(crate) log_reads: u64,
    next_container_check_tick: u64,
    /// Steps since the last full [`Node::check_full`] run (debug builds; see [`Node::step`]).
    #[cfg(debug_assertions)]
    steps_since_full_check: usize,
}

/// Debug builds: table entries the per-step checks may walk, on average: with more sessions,
/// connections, watches and outstanding change records than this, the full sweep runs once
/// every `entries / this` steps (so a debug step still costs O(1) checks, amortized).
#[cfg(debug_assertions)]
const INVARIANT_ENTRIES_PER_STEP: usize = 64;

impl Node {
    /// Builds a node from recovered state. Fails if the recovered state is inconsistent.
    pub fn new(config: Config, init: NodeInit) -> Result<Node, RecoveryError> {
        config.validate().map_err(|e| RecoveryError(e.to_string()))?;
        if init.current_epoch > init.accepted_epoch {
            return Err(RecoveryError(format!(
                "currentEpoch {} is newer than acceptedEpoch {}",
                init.current_epoch, init.accepted_epoch
            )));
        }
        let bucket_ticks = config.ms_to_ticks(config.tick_time_ms as u64).max(1);
        let mut sessions = SessionTable::new(bucket_ticks, config.tick_ms as u64);
        let mut tree = match init.snapshot {
            Some(snap) => {
                for (id, timeout_ms) in &snap.sessions {
                    sessions.add(*id, *timeout_ms, 0);
                }
                snap.tree
            }
            None => DataTree::new(),
        };
        if let Some(text) = &config.ensemble_config_text {
            tree.set_config_data(text.as_bytes());
        }
        check_recovered_order(tree.last_processed_zxid(), &init.txns)?;
        let log = ZabLog::recovered(tree.last_processed_zxid(), init.txns);
        let voters = if config.is_standalone() {
            vec![config.server_id]
        } else {
            config.members.iter().filter(|m| !m.observer).map(|m| m.id).collect()
        };
        let check_ticks = config.ms_to_ticks(config.container_check_interval_ms).max(1);
        let quorum = Quorum::new(voters);
        let mut rng = ChaCha8Rng::seed_from_u64(init.seed);
        let (role, election_actions) =
            first_role(&config, &quorum, &mut rng, log.last_logged(), init.current_epoch);
        let last_round = match &role {
            Role::Looking(election) => election.logical_clock(),
            _ => 0,
        };
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
            log,
            role,
            accepted_epoch: init.accepted_epoch,
            current_epoch: init.current_epoch,
            quorum,
            rng,
            last_round,
            leader_vote: None,
            outputs: Vec::new(),
            log_reads: 0,
            next_container_check_tick: check_ticks,
            #[cfg(debug_assertions)]
            steps_since_full_check: 0,
            peers_heard: BTreeSet::new(),
            config,
        };
        node.start(init.wall_ms, election_actions);
        Ok(node)
    }

    fn start(&mut self, wall_ms: i64, election_actions: Vec<ElectionAction>) {
        self.next_session_id = self.first_session_id(wall_ms);
        if self.config.is_standalone() {
            // Standalone: every logged txn was durable, so it is committed: apply it all.
            assert!(election_actions.is_empty(), "standalone servers never elect");
            let last = self.log.last_logged();
            self.log.mark_committed(last);
            self.apply_committed();
            assert!(self.is_established_leader());
        } else {
            // An ensemble member applies its log only once a leader says it is committed.
            assert!(matches!(self.role, Role::Looking(_)), "an ensemble member starts looking");
            self.run_election_actions(election_actions);
        }
        self.check_full();
    }

    fn first_session_id(&self, wall_ms: i64) -> i64 {
        let initial = initial_session_id(self.config.server_id.0, wall_ms).0;
        let prefix = (self.config.server_id.0 << 56) as i64;
        let max_own =
            self.sessions.iter().map(|(id, _)| id.0).filter(|id| id >> 56 == prefix >> 56);
        max_own.map(|m| m + 1).max().unwrap_or(initial).max(initial)
    }

    /// Feeds one input.
    pub fn step(&mut self, input: Input) {
        match input {
            Input::Tick { wall_ms } => self.on_tick(wall_ms),
            Input::ClientConnected { conn, remote_ip } => self.on_client_connected(conn, remote_ip),
            Input::ClientCertificate { conn, subject } => self.on_client_certificate(conn, subject),
            Input::ClientFrame { conn, payload, wall_ms } => {
                self.wall_ms = wall_ms;
                self.on_client_frame(conn, payload)
            }
            Input::ClientClosed { conn } => self.on_client_closed(conn),
            Input::Persisted { upto } => self.on_persisted(upto),
            Input::PeerMessage { from, msg, wall_ms } => {
                self.wall_ms = wall_ms;
                self.peers_heard.insert(from);
                self.on_peer_message(from, msg)
            }
            Input::PeerLost { peer } => self.on_peer_lost(peer),
            Input::LogRead { request, found_after, txns } => {
                if let Role::Leading(_) = self.role {
                    self.leader_on_log_read(request, found_after, txns);
                }
            }
            Input::LogTrimmed { oldest_on_disk } => self.log.disk_trimmed(oldest_on_disk),
        }
        self.send_sync_round();
        self.check_step();
        // The full sweep walks every table; the simulator runs it at chosen points. Debug
        // builds (core's own tests) also run it here, amortized to O(1) checks per step.
        #[cfg(debug_assertions)]
        {
            self.steps_since_full_check += 1;
            let entries =
                self.sessions.len() + self.conns.len() + self.watches.len() + self.prep.len();
            if self.steps_since_full_check * INVARIANT_ENTRIES_PER_STEP >= entries {
                self.steps_since_full_check = 0;
                self.check_full();
            }
        }
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

    /// The last logged zxid.
    pub fn last_logged(&self) -> Zxid {
        self.log.last_logged()
    }

    /// The last zxid known committed.
    pub fn committed(&self) -> Zxid {
        self.log.committed()
    }

    /// A logged txn still held in memory.
    pub fn logged_txn(&self, zxid: Zxid) -> Option<&LoggedTxn> {
        self.log.get(zxid)
    }

    /// `(accepted_epoch, current_epoch)`.
    pub fn epochs(&self) -> (u32, u32) {
        (self.accepted_epoch, self.current_epoch)
    }

    /// Writes proposed but not yet applied.
    pub fn outstanding_proposals(&self) -> usize {
        self.log.range(self.tree.last_processed_zxid(), self.log.last_logged()).count()
    }

    /// A consistent snapshot of the applied state, to be encoded off the hot path. O(sessions):
    /// the tree's clone shares its structure (see `tree/mod.rs`), so the caller is not held for
    /// a time that grows with the tree (issue 16).
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
        self.zab_tick();
        if !self.is_established_leader() {
            return;
        }
        for session in self.expired_sessions() {
            tracing::info!(%session, "session expired");
            self.close_session(session, 0);
        }
        if self.now_tick >= self.next_container_check_tick {
            let interval = self.config.ms_to_ticks(self.config.container_check_interval_ms);
            self.next_container_check_tick = self.now_tick + interval.max(1);
            self.check_containers();
        }
    }

    /// Sessions whose timeout ran out (the deliberate bugs skip expiry or expire at half the
    /// timeout).
    fn expired_sessions(&self) -> Vec<SessionId> {
        let now = self.now_tick;
        if self.config.bugs.skip_session_expiry {
            return Vec::new();
        }
        if self.config.bugs.expire_early {
            let half = |ms: i32| self.config.ms_to_ticks(ms.max(0) as u64) / 2;
            let early = self
                .sessions
                .iter()
                .filter(|(_, s)| !s.closing && s.expiry_tick <= now + half(s.timeout_ms));
            return early.map(|(id, _)| *id).collect();
        }
        let due = self.sessions.expired(now);
        assert!(due.windows(2).all(|w| w[0] < w[1]), "each due session once, in id order");
        due
    }

    fn check_containers(&mut self) {
        let candidates =
            self.tree.expired_containers_and_ttls(self.wall_ms, self.config.extended_types_enabled);
        let per_minute = self.config.container_max_per_minute as u64;
        let interval_ms = self.config.container_check_interval_ms.max(1);
        let budget = (per_minute * interval_ms / 60_000).max(1) as usize;
        for path in candidates.into_iter().take(budget) {
            let zxid = self.next_zxid();
            let txn = self.prep.prepare_delete_container(&self.tree, &path, zxid);
            self.propose(SessionId(0), 0, txn);
        }
    }

    /// Starts closing a session (leader only): marks it and proposes its CloseSession txn.
    pub(crate) fn close_session(&mut self, session: SessionId, cxid: i32) -> Option<Zxid> {
        assert!(self.is_established_leader(), "only the leader closes sessions");
        if !self.sessions.mark_closing(session) {
            return None;
        }
        let zxid = self.next_zxid();
        let txn = self.prep.prepare_close_session(&self.tree, &self.config, session, zxid);
        assert!(matches!(txn, Txn::CloseSession { .. }));
        let proposed = self.propose(session, cxid, txn);
        assert_eq!(proposed, zxid);
        Some(proposed)
    }

    fn on_persisted(&mut self, upto: Zxid) {
        if !self.log.mark_durable(upto) {
            return;
        }
        self.zab_durable();
    }

    /// Applies every committed txn not applied yet, in zxid order.
    pub(crate) fn apply_committed(&mut self) {
        let applied = self.tree.last_processed_zxid();
        let committed = self.log.committed();
        if committed <= applied {
            return;
        }
        let txns: Vec<Arc<LoggedTxn>> =
            self.log.range_shared(applied, committed).cloned().collect();
        for txn in txns {
            self.commit(&txn);
        }
        assert_eq!(self.tree.last_processed_zxid(), committed, "applied up to committed");
        let keep = if self.config.is_standalone() { 0 } else { self.config.commit_log_count };
        self.log.trim(committed, keep);
    }

    /// Applies one committed txn and emits everything that follows from it.
    fn commit(&mut self, txn: &LoggedTxn) {
        let zxid = txn.header.zxid;
        assert!(zxid > self.tree.last_processed_zxid(), "commit in zxid order");
        let applied = self.tree.apply(txn);
        assert_eq!(self.tree.last_processed_zxid(), zxid, "apply moves last processed zxid");
        self.prep.applied(zxid);
        self.fire_watches(zxid, &applied.triggers);
        let owner_conn = self.sessions.get(txn.header.session_id).and_then(|s| s.conn);
        self.apply_session_effects(txn);
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
        self.complete_syncs();
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
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if filter && event_type != EventType::NodeDeleted {
            if let Some(acl) = self.tree.acl(path) {
                let ok =
                    crate::tree::acl::check_acl(acl, &c.ids, perms::READ, self.config.skip_acl);
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

    /// The session a connection holds (or is creating), for admin output.
    pub fn connection_session(&self, conn: ConnId) -> Option<SessionId> {
        self.conns.get(&conn).and_then(|c| c.session())
    }

    /// The core ticks counted since this node started (the clock of every timeout).
    pub fn now_tick(&self) -> u64 {
        self.now_tick
    }

    /// The checks that cost O(1) in the node's tables: run after every step, in release builds
    /// too. Panics when the state is broken.
    pub fn check_step(&self) {
        assert!(self.current_epoch <= self.accepted_epoch, "currentEpoch ≤ acceptedEpoch");
        if !self.config.bugs.ack_before_fsync {
            // That bug commits before the log is durable, which the log's checks forbid.
            self.log.invariants(self.tree.last_processed_zxid());
        }
        self.zab_invariants();
    }

    /// The full sweep: `check_step` plus every table (sessions, watches, prep's change records,
    /// connections). Panics when the state is broken. Costs O(entries): the simulator calls it
    /// at chosen points, not after every step.
    pub fn check_full(&self) {
        self.check_step();
        self.zab_invariants_full();
        self.sessions.invariants();
        self.watches.invariants();
        self.prep.invariants();
        self.prep.check_close_bytes(&self.tree);
        for (id, conn) in &self.conns {
            conn.invariants(*id, &self.sessions);
        }
        for (session, conn) in &self.connecting {
            assert!(self.conns.contains_key(conn), "connecting conn {conn:?} of {session} exists");
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each split check still catches a deliberately broken state: `check_step` the O(1) ones,
    //! `check_full` the table sweeps `check_step` no longer runs.
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::*;
    use crate::config::Member;
    use crate::serve::Phase;
    use crate::types::ServerId;

    fn standalone() -> Node {
        Node::new(Config::default(), NodeInit::default()).expect("a fresh node starts")
    }

    fn ensemble_member() -> Node {
        let members = (1..=3).map(|id| Member { id: ServerId(id), observer: false }).collect();
        let config = Config { server_id: ServerId(1), members, ..Config::default() };
        Node::new(config, NodeInit::default()).expect("a fresh node starts")
    }

    /// The panic message of `check`, or `None` when it passed.
    fn failure(check: impl FnOnce()) -> Option<String> {
        let err = catch_unwind(AssertUnwindSafe(check)).err()?;
        let text = err.downcast_ref::<String>().cloned();
        Some(text.or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default())
    }

    #[test]
    fn fresh_nodes_pass_both_checks() {
        for node in [standalone(), ensemble_member()] {
            assert_eq!(failure(|| node.check_step()), None);
            assert_eq!(failure(|| node.check_full()), None);
        }
    }

    #[test]
    fn step_check_catches_current_epoch_after_accepted() {
        let mut node = ensemble_member();
        node.current_epoch = node.accepted_epoch + 1;
        let message = failure(|| node.check_step()).expect("caught");
        assert!(message.contains("currentEpoch ≤ acceptedEpoch"), "{message}");
    }

    #[test]
    fn step_check_catches_a_broadcasting_leader_whose_history_is_not_committed() {
        let mut node = standalone();
        let Role::Leading(leader) = &mut node.role else { panic!("standalone leads") };
        leader.history_end = Zxid::new(0, 5);
        let message = failure(|| node.check_step()).expect("caught");
        assert!(message.contains("the history is committed"), "{message}");
    }

    #[test]
    fn step_check_catches_a_looking_round_that_went_back() {
        let mut node = ensemble_member();
        node.last_round += 1;
        let message = failure(|| node.check_step()).expect("caught");
        assert!(message.contains("an election round never goes back"), "{message}");
    }

    #[test]
    fn only_the_full_check_catches_a_dangling_connecting_entry() {
        let mut node = standalone();
        node.connecting.insert(SessionId(7), ConnId(9));
        assert_eq!(failure(|| node.check_step()), None, "check_step walks no table");
        let message = failure(|| node.check_full()).expect("caught");
        assert!(message.contains("connecting conn"), "{message}");
    }

    #[test]
    fn only_the_full_check_catches_a_session_served_while_looking() {
        let mut node = ensemble_member();
        node.on_client_connected(ConnId(1), "10.0.0.1".into());
        let conn = node.conns.get_mut(&ConnId(1)).expect("connected");
        conn.phase = Phase::Established { session: SessionId(7) };
        assert_eq!(failure(|| node.check_step()), None, "check_step walks no table");
        let message = failure(|| node.check_full()).expect("caught");
        assert!(message.contains("no sessions served unless serving"), "{message}");
    }

    #[test]
    fn only_the_full_check_catches_a_broken_session_table() {
        let mut node = standalone();
        node.sessions.add(SessionId(7), 4000, 0);
        node.sessions.set_conn(SessionId(7), Some(ConnId(3)));
        node.on_client_connected(ConnId(3), "10.0.0.1".into());
        let conn = node.conns.get_mut(&ConnId(3)).expect("connected");
        // Established on session 7, which names connection 3 as its holder: consistent.
        conn.phase = Phase::Established { session: SessionId(7) };
        assert_eq!(failure(|| node.check_full()), None);
        // The session now names another connection: the pipeline and the table disagree.
        node.sessions.set_conn(SessionId(7), Some(ConnId(4)));
        assert_eq!(failure(|| node.check_step()), None, "check_step walks no table");
        let message = failure(|| node.check_full()).expect("caught");
        assert!(message.contains("established conn holds its session"), "{message}");
    }
}
