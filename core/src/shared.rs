//! `Shared`: the state every role works on (configuration, clocks, the log, the tree, sessions,
//! watches, prepared changes, client connections, epochs, election bookkeeping and the outputs
//! of the step), and the apply path that turns committed txns into tree changes, watch events
//! and replies. A `Node` is this plus its `Role` (see [`crate::zab::Role`]); the client pipeline
//! (`serve`, `read`, `sasl`) and the apply path work on `Shared` alone and reach the role only
//! through [`Upstream`], so none of them needs the `Node`.
//!
//! Why the role is reached through a trait and not through intents returned to the dispatcher:
//! applying a CreateSession replays the frames the client pipelined behind its ConnectRequest,
//! and each may be a write the role must propose or forward *before* the next frame is read
//! (an `auth` reply behind it must follow the write's PROPOSAL, and the next write's `after`
//! must see it logged). Intents collected and run after the call would reorder the outputs, and
//! the output order is part of the contract (`io.rs`). So the pipeline calls the role at the
//! point the old code did, through `Upstream`, and the role answers at once.
//!
//! Invariants: see `Node::check_step`/`Node::check_full`, which check this state; the apply path
//! applies txns in zxid order, exactly once each, and only committed ones.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::conn::Conn;
use crate::io::Output;
use crate::prep::PrepState;
use crate::proto::client::{EventType, Request, STATE_SYNC_CONNECTED, WatcherEvent};
use crate::proto::codec;
use crate::proto::error::ZkError;
use crate::session::SessionTable;
use crate::snapshot::Snapshot;
use crate::tree::{ApplyOutcome, DataTree, WatchTrigger};
use crate::txn::{LoggedTxn, Txn, TxnHeader};
use crate::types::{Acl, ConnId, ServerId, SessionId, Zxid, perms};
use crate::watch::WatchManager;
use crate::zab::log::ZabLog;
use crate::zab::message::{Vote, ZabMessage};
use crate::zab::quorum::Quorum;

/// The state of a node that outlives a role change (see the module doc).
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) now_tick: u64,
    /// The shell's latest wall clock reading (from `Tick`, `ClientFrame` or `PeerMessage`):
    /// the time a txn prepared now is stamped with.
    pub(crate) wall_ms: i64,
    /// Peers heard from since this process started. A lost connection to a peer never heard
    /// from (at start-up, one not started yet) is no reason to stop waiting for its vote.
    pub(crate) peers_heard: BTreeSet<ServerId>,
    pub(crate) tree: DataTree,
    pub(crate) prep: PrepState,
    pub(crate) sessions: SessionTable,
    pub(crate) watches: WatchManager,
    pub(crate) conns: BTreeMap<ConnId, Conn>,
    /// Connections waiting for their CreateSession txn to apply.
    pub(crate) connecting: BTreeMap<SessionId, ConnId>,
    pub(crate) next_session_id: i64,
    pub(crate) log: ZabLog,
    pub(crate) accepted_epoch: u32,
    pub(crate) current_epoch: u32,
    pub(crate) quorum: Quorum,
    pub(crate) rng: ChaCha8Rng,
    /// The last election round this node took part in, and the vote it settled on.
    pub(crate) last_round: u64,
    pub(crate) leader_vote: Option<Vote>,
    pub(crate) outputs: Vec<Output>,
    /// `Output::ReadLog` requests made so far: the next one's name (unique per incarnation).
    pub(crate) log_reads: u64,
    pub(crate) next_container_check_tick: u64,
    /// The watch triggers of the txn being applied: one list for every commit, empty between
    /// them (see `DataTree::apply_into`).
    pub(crate) triggers: Vec<WatchTrigger>,
}

/// What the client pipeline and the apply path hand to the current role, each at the point the
/// request needs it (see the module doc for why these run at once). A leader decides writes
/// itself; a learner forwards them in its session with the leader; a looking server serves no
/// client, so none of these reach it except `conn_closed` and `applied`.
pub(crate) trait Upstream {
    /// The role may serve clients (an established leader, a learner in broadcast).
    fn serving(&self) -> bool;
    /// The role is a learner: writes, new sessions, syncs and reconnects go to the leader.
    fn is_learner(&self) -> bool;
    /// A new session's CreateSession: proposed (leader) or forwarded (learner).
    fn create_session(&mut self, shared: &mut Shared, session: SessionId, timeout_ms: i32);
    /// A client write, queued on `conn`: prepared and proposed, or forwarded.
    fn write(
        &mut self,
        shared: &mut Shared,
        conn: ConnId,
        session: SessionId,
        xid: i32,
        req: Request,
    );
    /// A write that failed before it was decided, as an error txn (leader only).
    fn failed_write(
        &mut self,
        shared: &mut Shared,
        session: SessionId,
        xid: i32,
        err: ZkError,
    ) -> Zxid;
    /// A client's closeSession, queued on `conn`.
    fn close_session(&mut self, shared: &mut Shared, conn: ConnId, session: SessionId, xid: i32);
    /// A client's sync, queued on `conn`.
    fn sync(&mut self, shared: &mut Shared, conn: ConnId, xid: i32);
    /// A learner remembers a reconnect until the leader revalidates it; returns the connection
    /// an earlier reconnect of the same session waited on.
    fn revalidating(
        &mut self,
        session: SessionId,
        waiter: (ConnId, i32, Option<bool>),
    ) -> Option<ConnId>;
    /// A learner asks the leader whether `session` is still alive.
    fn revalidate(&mut self, shared: &mut Shared, session: SessionId);
    /// A local client used `session` (a learner reports it in its next PINGREPLY).
    fn touched(&mut self, session: SessionId);
    /// `conn`, which held or was creating `session`, is gone.
    fn conn_closed(&mut self, conn: ConnId, session: SessionId);
    /// One committed txn was applied (a leader answers the syncs it completes).
    fn applied(&mut self, shared: &mut Shared);
    /// The oldest `upto` of the log reads for a DIFF still pending (leader only): the
    /// in-memory log keeps it until they are answered.
    fn log_read_upto(&self) -> Option<Zxid> {
        None
    }
}

impl Shared {
    /// A consistent snapshot of the applied state (see `Node::snapshot`).
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            zxid: self.tree.last_processed_zxid(),
            tree: self.tree.clone(),
            sessions: self.sessions.snapshot_list(),
        }
    }

    pub(crate) fn send_peer(&mut self, to: ServerId, msg: ZabMessage) {
        assert_ne!(to, self.config.server_id, "never send to self");
        self.outputs.push(Output::PeerSend { to, msg });
    }

    pub(crate) fn persist_epochs(&mut self) {
        assert!(self.current_epoch <= self.accepted_epoch);
        let (accepted_epoch, current_epoch) = (self.accepted_epoch, self.current_epoch);
        self.outputs.push(Output::PersistEpochs { accepted_epoch, current_epoch });
    }

    /// Applies every committed txn not applied yet, in zxid order.
    pub(crate) fn apply_committed(&mut self, role: &mut dyn Upstream) {
        let applied = self.tree.last_processed_zxid();
        let committed = self.log.committed();
        if committed <= applied {
            return;
        }
        // Most calls apply one txn (a COMMIT, an ACK that completes a quorum): it is taken
        // apart, so that the rest, empty then, is collected without an allocation.
        let mut txns = self.log.range_shared(applied, committed).cloned();
        let first = txns.next().expect("a committed txn past the applied one is in the log");
        let rest: Vec<Arc<LoggedTxn>> = txns.collect();
        self.commit(&first, role);
        for txn in rest {
            self.commit(&txn, role);
        }
        assert_eq!(self.tree.last_processed_zxid(), committed, "applied up to committed");
        let keep = if self.config.is_standalone() { 0 } else { self.config.commit_log_count };
        // A pending read for a DIFF ends at its `upto`, which must still be in memory when it
        // is answered, or the learner gets a SNAP: with any commit during the read it was
        // trimmed (issue 14: a rejoin beside a few session expiries took 2.6 s, not 0.1).
        // Held at most `disk_diff_max_txns` past `keep`, so a stuck read holds no more.
        let most = keep.saturating_add(self.config.disk_diff_max_txns as usize);
        let upto = match role.log_read_upto() {
            Some(pinned) if self.log.len() <= most => committed.min(pinned),
            _ => committed,
        };
        self.log.trim(upto, keep);
    }

    /// Applies one committed txn and emits everything that follows from it.
    fn commit(&mut self, txn: &LoggedTxn, role: &mut dyn Upstream) {
        let zxid = txn.header.zxid;
        assert!(zxid > self.tree.last_processed_zxid(), "commit in zxid order");
        let mut triggers = std::mem::take(&mut self.triggers);
        let outcome = self.tree.apply_into(txn, &mut triggers);
        assert_eq!(self.tree.last_processed_zxid(), zxid, "apply moves last processed zxid");
        self.prep.applied(zxid);
        self.fire_watches(zxid, &triggers);
        triggers.clear();
        self.triggers = triggers;
        let owner_conn = self.sessions.get(txn.header.session_id).and_then(|s| s.conn);
        self.apply_session_effects(txn);
        match &txn.txn {
            Txn::CreateSession { .. } => self.on_session_created(txn.header.session_id, role),
            Txn::CloseSession { .. } => self.on_session_closed(owner_conn, &txn.header, &outcome),
            _ => {
                if let Some(conn) = owner_conn {
                    self.complete_write(conn, &txn.header, &outcome);
                }
            }
        }
        role.applied(self);
    }

    fn apply_session_effects(&mut self, txn: &LoggedTxn) {
        match &txn.txn {
            Txn::CreateSession { timeout_ms } => {
                let id = txn.header.session_id;
                self.sessions.add(id, *timeout_ms, self.now_tick);
                #[cfg(feature = "bugs")]
                if self.config.bugs.session_id_from_tree {
                    return;
                }
                let server_id = self.config.server_id.0;
                let rng = &mut self.rng;
                let jump = || rng.random_range(0..crate::session::JUMP_SLOTS);
                let next = crate::session::past_created(server_id, self.next_session_id, id, jump);
                self.next_session_id = next;
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
    /// the txn's zxid; delivery needs READ on the trigger's ACL: the node's, the parent's for
    /// NodeChildrenChanged, a deleted node's included; CVE-2024-23944).
    fn fire_watches(&mut self, zxid: Zxid, triggers: &[WatchTrigger]) {
        let nobody = BTreeSet::new();
        for trigger in triggers {
            let mut previous = BTreeSet::new();
            for (table, suppress_previous) in WatchManager::tables_for(trigger.event) {
                // The connections notified by the earlier tables, borrowed (not copied).
                let suppress = if *suppress_previous { &previous } else { &nobody };
                let notify = self.watches.trigger(*table, &trigger.path, suppress);
                for conn in &notify {
                    let acl = Some(&*trigger.acl);
                    self.send_event(*conn, zxid.0, trigger.event, &trigger.path, acl);
                }
                previous.extend(notify);
            }
        }
    }

    /// Sends one watch notification; with `acl`, only to a connection that may READ under it
    /// (ZooKeeper's `ServerCnxn.process(event, znodeAcl)`: an event is dropped, not delayed).
    /// The events setWatches sends at once are not filtered, as in ZooKeeper.
    pub(crate) fn send_event(
        &mut self,
        conn: ConnId,
        zxid: i64,
        event_type: EventType,
        path: &str,
        acl: Option<&[Acl]>,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if let Some(acl) = acl
            && !crate::tree::acl::check_acl(acl, &c.ids, perms::READ, self.config.skip_acl)
        {
            return;
        }
        let event =
            WatcherEvent { event_type, state: STATE_SYNC_CONNECTED, path: path.to_string() };
        let frame = codec::encode_notification(zxid, &event);
        self.outputs.push(Output::ClientSend { conn, frame });
    }
}
