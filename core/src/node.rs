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

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::io::{Input, Output};
use crate::prep::PrepState;
use crate::session::{JUMP_SLOTS, SessionTable, first_session_id, server_of};
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use crate::tree::DataTree;
use crate::txn::{LoggedTxn, Txn};
use crate::types::{ConnId, SessionId, Zxid};
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

/// A ZooKeeper server's state machine: the state every role shares, and the role.
pub struct Node {
    pub(crate) shared: Shared,
    pub(crate) role: Role,
    /// Steps since the last full [`Node::check_full`] run (debug builds; see [`Node::step`]).
    #[cfg(debug_assertions)]
    steps_since_full_check: usize,
}

/// Debug builds: table entries the per-step checks may walk, on average: with more sessions,
/// connections, watches and outstanding change records than this, the full sweep runs once
/// every `entries / this` steps (so a debug step still costs O(1) checks, amortized).
#[cfg(debug_assertions)]
const INVARIANT_ENTRIES_PER_STEP: usize = 64;

/// The most outputs [`Node::take_outputs`] reserves room for in the next list (a bound on what
/// one unusually large step, such as a SNAP's replies, keeps allocated for every later one).
const OUTPUTS_ROOM_MAX: usize = 4096;

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
        let last_round =
            if let Role::Looking(election) = &role { election.logical_clock() } else { 0 };
        let shared = Shared {
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
            accepted_epoch: init.accepted_epoch,
            current_epoch: init.current_epoch,
            quorum,
            rng,
            last_round,
            leader_vote: None,
            outputs: Vec::new(),
            log_reads: 0,
            next_container_check_tick: check_ticks,
            triggers: Vec::new(),
            peers_heard: BTreeSet::new(),
            config,
        };
        let mut node = Node {
            shared,
            role,
            #[cfg(debug_assertions)]
            steps_since_full_check: 0,
        };
        node.start(init.wall_ms, election_actions);
        Ok(node)
    }

    fn start(&mut self, wall_ms: i64, election_actions: Vec<ElectionAction>) {
        self.shared.next_session_id = self.first_session_id(wall_ms);
        if self.shared.config.is_standalone() {
            // Standalone: every logged txn was durable, so it is committed: apply it all.
            assert!(election_actions.is_empty(), "standalone servers never elect");
            let last = self.shared.log.last_logged();
            self.shared.log.mark_committed(last);
            self.apply_committed();
            assert!(self.is_established_leader());
        } else {
            // An ensemble member applies its log only once a leader says it is committed.
            assert!(matches!(self.role, Role::Looking(_)), "an ensemble member starts looking");
            self.run_election_actions(election_actions);
        }
        self.check_full();
    }

    fn first_session_id(&mut self, wall_ms: i64) -> i64 {
        let server_id = self.shared.config.server_id.0;
        let ours = |id: &SessionId| server_of(*id) == server_id;
        let live: Vec<SessionId> = self.shared.sessions.iter().map(|(id, _)| *id).collect();
        #[cfg(feature = "bugs")]
        if self.shared.config.bugs.session_id_from_tree {
            let newest = live.iter().filter(|id| ours(id)).map(|id| id.0).max();
            let first = crate::session::initial_session_id(server_id, 0).0;
            return newest.map_or(first, |id| id + 1);
        }
        // The creations in the durable log count too, closed or not: an ensemble member applies
        // its log only when a leader commits it, and a SNAP may replace it unapplied (sim seed
        // 69186: such a session of an earlier incarnation had expired by the SNAP, and its id,
        // the slot after an older live one, came back).
        let log = &self.shared.log;
        let created = log.range(log.base(), log.last_logged());
        let created = created.filter(|t| matches!(t.txn, Txn::CreateSession { .. }));
        let created = created.map(|t| t.header.session_id);
        let own: Vec<SessionId> = live.into_iter().chain(created).filter(ours).collect();
        let rng = &mut self.shared.rng;
        first_session_id(server_id, wall_ms, own, || rng.random_range(0..JUMP_SLOTS)).0
    }

    /// Feeds one input.
    pub fn step(&mut self, input: Input) {
        match input {
            Input::Tick { wall_ms } => self.on_tick(wall_ms),
            Input::ClientConnected { conn, remote_ip } => {
                self.shared.on_client_connected(conn, remote_ip)
            }
            Input::ClientCertificate { conn, subject } => {
                self.shared.on_client_certificate(conn, subject)
            }
            Input::ClientFrame { conn, payload, wall_ms } => {
                self.shared.wall_ms = wall_ms;
                self.shared.on_client_frame(conn, payload, &mut self.role)
            }
            Input::ClientClosed { conn } => self.shared.on_client_closed(conn, &mut self.role),
            Input::Persisted { upto } => self.on_persisted(upto),
            Input::PeerMessage { from, msg, wall_ms } => {
                self.shared.wall_ms = wall_ms;
                self.shared.peers_heard.insert(from);
                self.on_peer_message(from, msg)
            }
            Input::PeerLost { peer } => self.on_peer_lost(peer),
            Input::LogRead { request, found_after, txns } => {
                self.on_log_read(request, found_after, txns)
            }
            Input::LogTrimmed { oldest_on_disk } => self.shared.log.disk_trimmed(oldest_on_disk),
        }
        self.end_of_step();
        self.check_step();
        // The full sweep walks every table; the simulator runs it at chosen points. Debug
        // builds (core's own tests) also run it here, amortized to O(1) checks per step.
        #[cfg(debug_assertions)]
        {
            self.steps_since_full_check += 1;
            let entries = self.shared.sessions.len()
                + self.shared.conns.len()
                + self.shared.watches.len()
                + self.shared.prep.len();
            if self.steps_since_full_check * INVARIANT_ENTRIES_PER_STEP >= entries {
                self.steps_since_full_check = 0;
                self.check_full();
            }
        }
    }

    /// Takes everything the node asked the shell to do, in order.
    ///
    /// The next list starts with room for as many outputs as this one holds: a leader's step
    /// that commits a batch emits hundreds (a reply per txn, a `Persist` per proposal), and
    /// growing the list one doubling at a time copied it over and over into fresh pages
    /// (~10% of a create's driver CPU, docs/PERFORMANCE.md, "Where a create's CPU went").
    pub fn take_outputs(&mut self) -> Vec<Output> {
        let room = self.shared.outputs.len().min(OUTPUTS_ROOM_MAX);
        std::mem::replace(&mut self.shared.outputs, Vec::with_capacity(room))
    }

    /// Like [`Node::take_outputs`], for a shell that reuses one list (the simulator): the
    /// outputs are swapped into `spare`, which must be empty, and the node keeps `spare`'s
    /// room for the next step, so a step allocates no list. Room beyond `OUTPUTS_ROOM_MAX`
    /// is given back, as `take_outputs` would not reserve it.
    pub fn swap_outputs(&mut self, spare: &mut Vec<Output>) {
        assert!(spare.is_empty(), "the spare list was carried out before it is reused");
        spare.shrink_to(OUTPUTS_ROOM_MAX);
        std::mem::swap(&mut self.shared.outputs, spare);
        assert!(self.shared.outputs.is_empty(), "the node starts its next step with no outputs");
    }

    /// The data tree (read-only; for admin commands, snapshots and the simulator).
    pub fn tree(&self) -> &DataTree {
        &self.shared.tree
    }

    /// The session table (read-only).
    pub fn sessions(&self) -> &SessionTable {
        &self.shared.sessions
    }

    /// The watch tables (read-only).
    pub fn watches(&self) -> &WatchManager {
        &self.shared.watches
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The last applied zxid.
    pub fn last_zxid(&self) -> Zxid {
        self.shared.tree.last_processed_zxid()
    }

    /// The last logged zxid.
    pub fn last_logged(&self) -> Zxid {
        self.shared.log.last_logged()
    }

    /// The last zxid known committed.
    pub fn committed(&self) -> Zxid {
        self.shared.log.committed()
    }

    /// A logged txn still held in memory.
    pub fn logged_txn(&self, zxid: Zxid) -> Option<&LoggedTxn> {
        self.shared.log.get(zxid)
    }

    /// `(accepted_epoch, current_epoch)`.
    pub fn epochs(&self) -> (u32, u32) {
        (self.shared.accepted_epoch, self.shared.current_epoch)
    }

    /// Writes proposed but not yet applied.
    pub fn outstanding_proposals(&self) -> usize {
        self.shared
            .log
            .range(self.shared.tree.last_processed_zxid(), self.shared.log.last_logged())
            .count()
    }

    /// A consistent snapshot of the applied state, to be encoded off the hot path. O(sessions):
    /// the tree's clone shares its structure (see `tree/mod.rs`), so the caller is not held for
    /// a time that grows with the tree (issue 16).
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    fn on_tick(&mut self, wall_ms: i64) {
        self.shared.now_tick += 1;
        self.shared.wall_ms = wall_ms;
        self.zab_tick();
        self.leader_housekeeping();
    }

    fn on_persisted(&mut self, upto: Zxid) {
        if !self.shared.log.mark_durable(upto) {
            return;
        }
        self.zab_durable();
    }

    /// Applies every committed txn not applied yet, in zxid order (see `Shared::apply_committed`).
    pub(crate) fn apply_committed(&mut self) {
        self.shared.apply_committed(&mut self.role);
    }

    /// The session a connection holds (or is creating), for admin output.
    pub fn connection_session(&self, conn: ConnId) -> Option<SessionId> {
        self.shared.conns.get(&conn).and_then(|c| c.session())
    }

    /// The core ticks counted since this node started (the clock of every timeout).
    pub fn now_tick(&self) -> u64 {
        self.shared.now_tick
    }

    /// The checks that cost O(1) in the node's tables: run after every step, in release builds
    /// too. Panics when the state is broken.
    pub fn check_step(&self) {
        assert!(
            self.shared.current_epoch <= self.shared.accepted_epoch,
            "currentEpoch ≤ acceptedEpoch"
        );
        if !self.shared.config.bugs.ack_before_fsync {
            // That bug commits before the log is durable, which the log's checks forbid.
            self.shared.log.invariants(self.shared.tree.last_processed_zxid());
        }
        self.zab_invariants();
    }

    /// The full sweep: `check_step` plus every table (sessions, watches, prep's change records,
    /// connections). Panics when the state is broken. Costs O(entries): the simulator calls it
    /// at chosen points, not after every step.
    pub fn check_full(&self) {
        self.check_step();
        self.zab_invariants_full();
        self.shared.sessions.invariants();
        self.shared.watches.invariants();
        self.shared.prep.invariants();
        self.shared.prep.check_close_bytes(&self.shared.tree);
        for (id, conn) in &self.shared.conns {
            conn.invariants(*id, &self.shared.sessions);
        }
        for (session, conn) in &self.shared.connecting {
            assert!(
                self.shared.conns.contains_key(conn),
                "connecting conn {conn:?} of {session} exists"
            );
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
    use crate::conn::Phase;
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
        node.shared.current_epoch = node.shared.accepted_epoch + 1;
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

    /// Only synced learners have ACKs counted, whichever learners (before, between or after
    /// the others in id order) hold them; ACKs of a server that is no learner are not this
    /// check's business (the check walks `acked` beside `learners`, both in id order).
    #[test]
    fn step_check_catches_acks_of_an_unsynced_learner() {
        use crate::types::ServerId;
        use crate::zab::fifo::FifoChannel;
        use crate::zab::leader::{HandlerPhase, LearnerHandler};
        let mut node = standalone();
        let Role::Leading(leader) = &mut node.role else { panic!("standalone leads") };
        for (id, phase) in [(2, HandlerPhase::Synced), (4, HandlerPhase::Syncing)] {
            let handler = LearnerHandler {
                observer: false,
                phase,
                last_zxid: Zxid::ZERO,
                last_heard: 0,
                up_to_date: false,
                channel: FifoChannel::new(id),
                acked_round: 0,
            };
            leader.learners.insert(ServerId(id), handler);
        }
        let cases: [(&[u64], bool); 6] = [
            (&[], true),
            (&[2], true),
            (&[2, 3, 5], true),
            (&[4], false),
            (&[2, 4], false),
            (&[3, 4, 5], false),
        ];
        for (acked, passes) in cases {
            let Role::Leading(leader) = &mut node.role else { panic!("standalone leads") };
            leader.acked = acked.iter().map(|id| (ServerId(*id), Zxid::ZERO)).collect();
            let message = failure(|| node.check_step());
            if passes {
                assert_eq!(message, None, "ACKs of {acked:?}");
            } else {
                let message = message.expect("caught");
                assert!(message.contains("only synced learners ack"), "{acked:?}: {message}");
            }
        }
    }

    #[test]
    fn step_check_catches_a_looking_round_that_went_back() {
        let mut node = ensemble_member();
        node.shared.last_round += 1;
        let message = failure(|| node.check_step()).expect("caught");
        assert!(message.contains("an election round never goes back"), "{message}");
    }

    #[test]
    fn only_the_full_check_catches_a_dangling_connecting_entry() {
        let mut node = standalone();
        node.shared.connecting.insert(SessionId(7), ConnId(9));
        assert_eq!(failure(|| node.check_step()), None, "check_step walks no table");
        let message = failure(|| node.check_full()).expect("caught");
        assert!(message.contains("connecting conn"), "{message}");
    }

    #[test]
    fn only_the_full_check_catches_a_session_served_while_looking() {
        let mut node = ensemble_member();
        node.shared.on_client_connected(ConnId(1), "10.0.0.1".into());
        let conn = node.shared.conns.get_mut(&ConnId(1)).expect("connected");
        conn.phase = Phase::Established { session: SessionId(7) };
        assert_eq!(failure(|| node.check_step()), None, "check_step walks no table");
        let message = failure(|| node.check_full()).expect("caught");
        assert!(message.contains("no sessions served unless serving"), "{message}");
    }

    #[test]
    fn only_the_full_check_catches_a_broken_session_table() {
        let mut node = standalone();
        node.shared.sessions.add(SessionId(7), 4000, 0);
        node.shared.sessions.set_conn(SessionId(7), Some(ConnId(3)));
        node.shared.on_client_connected(ConnId(3), "10.0.0.1".into());
        let conn = node.shared.conns.get_mut(&ConnId(3)).expect("connected");
        // Established on session 7, which names connection 3 as its holder: consistent.
        conn.phase = Phase::Established { session: SessionId(7) };
        assert_eq!(failure(|| node.check_full()), None);
        // The session now names another connection: the pipeline and the table disagree.
        node.shared.sessions.set_conn(SessionId(7), Some(ConnId(4)));
        assert_eq!(failure(|| node.check_step()), None, "check_step walks no table");
        let message = failure(|| node.check_full()).expect("caught");
        assert!(message.contains("established conn holds its session"), "{message}");
    }
}
