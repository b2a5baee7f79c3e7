//! The one executor of the output contract: what must be durable before what may be sent is
//! decided here, once, and every shell (the server's driver, the simulator, the core's test
//! harnesses) carries out a node's outputs through it.
//!
//! A step's outputs form a plan of stages, in output order:
//!
//! ```text
//!   Flow ─▶ Write ─▶ Flow ─▶ Write ─▶ Flow
//!   │        │
//!   │        └ PersistEpochs / TruncateLog / InstallSnapshot: durable before any later output
//!   └ Persist appends (async: durability comes back as Input::Persisted, group commit allowed)
//!     and PeerSend / ClientSend / ClientClose, which depend on nothing in their own flow
//! ```
//!
//! Rules the executor keeps, so no shell has to:
//! - A `Write` barrier: once a disk write is handed to the shell, nothing later is carried out
//!   until the shell says it is durable (`Written::Done`, or `Executor::written` after
//!   `Written::Pending`). A shell whose storage is asynchronous (the server) parks the plan
//!   there and resumes it; one whose disk is synchronous (the simulator) never parks.
//! - Appends reach the log in output order, and every append before a `Write` is handed over
//!   (`Effects::appends_end`) before the write starts, so appends after it land after it on
//!   disk. Appends are not awaited: a flow's sends may go out while its appends wait for fsync
//!   (the core emits nothing that depends on an append before `Persisted` covers it), and a
//!   shell may batch appends until `appends_end` (group commit). Nor does a `Write` wait for
//!   earlier appends to be durable: the core does not rely on it (ZOOKEEPER-4643 is handled by
//!   emitting a new currentEpoch only after `Persisted`), and the simulator's disk lets an epoch
//!   write overtake unsynced appends to prove it. The server syncs them first anyway.
//! - Within a flow, outputs are carried out in output order, so frames to one connection keep
//!   their order and a `ClientClose` follows the frames before it. A frame for a connection
//!   after its `ClientClose` in the same plan is a core bug and panics.
//! - Logged zxids increase: every append is above the last one, or above the point a
//!   `TruncateLog`/`InstallSnapshot` moved the log's end to. `Input::Persisted` is built by
//!   `Executor::persisted`, which refuses a zxid that was never handed to `append`.
//! - A `ReadLog` is asynchronous (its answer comes back as `Input::LogRead`), but every append
//!   before it is handed over first (`Effects::appends_end`), so a shell that queues the read
//!   behind its appends reads a log that holds them.
//! - A shell that can do nothing more (the node crashed in the middle of a step, storage
//!   failed) says so with `Effects::halted`; the rest of the plan is dropped, as a crash drops it.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use super::{Input, Output};
use crate::snapshot::Snapshot;
use crate::txn::LoggedTxn;
use crate::types::{ConnId, ServerId, Zxid};
use crate::zab::message::ZabMessage;

/// A synchronous disk write: durable before any later output is carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskWrite {
    /// `Output::PersistEpochs`.
    Epochs {
        /// The accepted epoch.
        accepted_epoch: u32,
        /// The current epoch.
        current_epoch: u32,
    },
    /// `Output::TruncateLog`.
    Truncate {
        /// The last zxid to keep.
        after: Zxid,
    },
    /// `Output::InstallSnapshot`.
    Snapshot(Box<Snapshot>),
}

/// What a shell answers when handed a `DiskWrite`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Durable already: the plan goes on.
    Done,
    /// Started; the shell calls `Executor::written` once it is durable, then `Executor::resume`.
    Pending,
}

/// How far a plan got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Every output was carried out (or dropped because the shell halted).
    Done,
    /// A disk write is pending: nothing more goes out until `Executor::written`.
    Waiting,
}

/// `Output::ReadLog`'s fields, handed to `Effects::read_log`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogReadRequest {
    /// Names the answer (`Input::LogRead::request`).
    pub request: u64,
    /// Records after this zxid are wanted; whether its own record exists is reported.
    pub after: Zxid,
    /// The last record wanted.
    pub upto: Zxid,
    /// More records than this is an error.
    pub max_txns: u64,
}

impl LogReadRequest {
    /// The answer when no log files can be read (a shell without them).
    pub fn unavailable(&self, reason: &str) -> Input {
        Input::LogRead { request: self.request, found_after: false, txns: Err(reason.into()) }
    }

    /// Answers from `txns`, a log (oldest first, strictly increasing zxids) that holds every
    /// record after the point it starts from: the records in `(after, upto]`, checked as the
    /// server's reader checks them. For the shells that keep their log in memory.
    pub fn answer_from(&self, txns: &[LoggedTxn]) -> Input {
        let found_after =
            self.after == Zxid::ZERO || txns.iter().any(|t| t.header.zxid == self.after);
        let start = txns.partition_point(|t| t.header.zxid <= self.after);
        let end = txns.partition_point(|t| t.header.zxid <= self.upto).max(start);
        let range = &txns[start..end];
        let txns = if range.len() as u64 > self.max_txns {
            Err(format!("{} records, more than {}", range.len(), self.max_txns))
        } else if range.last().map(|t| t.header.zxid) != Some(self.upto) {
            Err(format!("the log does not reach {}", self.upto))
        } else {
            Ok(range.to_vec())
        };
        assert!(txns.as_ref().is_err() || start < end, "an answer holds upto");
        Input::LogRead { request: self.request, found_after, txns }
    }
}

/// One stage of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Appends, sends and closes, in output order; none waits for another.
    Flow(Vec<Output>),
    /// A disk write every later stage waits for.
    Write(DiskWrite),
}

/// The primitive effects a shell provides. The executor calls them in an order that keeps the
/// contract; a shell only does each one.
pub trait Effects {
    /// Appends `txn` to the log after everything appended before. Durability is reported later
    /// through `Executor::persisted`. The shell may hold it back to group it with later appends
    /// (group commit), until `appends_end`.
    fn append(&mut self, txn: Arc<LoggedTxn>);
    /// Every append so far must now be on its way to the log, ordered before any later disk
    /// write. Called before each `write` and at the end of each plan. A shell that appends at
    /// once has nothing to do.
    fn appends_end(&mut self) {}
    /// Starts a synchronous disk write (after every append handed over before it).
    fn write(&mut self, write: DiskWrite) -> Written;
    /// Sends a message to another ensemble member (best effort).
    fn peer_send(&mut self, to: ServerId, msg: ZabMessage);
    /// Writes one frame (length prefix included) to a client connection, after the earlier ones.
    fn client_send(&mut self, conn: ConnId, frame: Vec<u8>);
    /// Flushes a connection's frames, then closes it.
    fn client_close(&mut self, conn: ConnId);
    /// Starts reading the log records in `(after, upto]` (`Output::ReadLog`), after every
    /// append handed over before; the answer comes back later as `Input::LogRead`.
    fn read_log(&mut self, read: LogReadRequest);
    /// True once the shell can carry out nothing more (its node crashed in the middle of the
    /// step, its storage failed): the rest of the plan is dropped.
    fn halted(&self) -> bool {
        false
    }
}

/// Groups outputs into stages: a `Write` per synchronous output, flows between them. The
/// executor walks the same stages without building them (one move per output, no allocation).
pub fn plan(outputs: Vec<Output>) -> Vec<Stage> {
    let mut stages = Vec::new();
    let mut flow = Vec::new();
    for output in outputs {
        match disk_write(output) {
            Ok(write) => {
                if !flow.is_empty() {
                    stages.push(Stage::Flow(std::mem::take(&mut flow)));
                }
                stages.push(Stage::Write(write));
            }
            Err(other) => flow.push(other),
        }
    }
    if !flow.is_empty() {
        stages.push(Stage::Flow(flow));
    }
    assert!(stages.windows(2).all(|w| !matches!(w, [Stage::Flow(_), Stage::Flow(_)])));
    stages
}

/// Whether `output` is a synchronous disk write (what `disk_write` turns into a `DiskWrite`).
fn is_disk_write(output: &Output) -> bool {
    matches!(
        output,
        Output::PersistEpochs { .. } | Output::TruncateLog { .. } | Output::InstallSnapshot { .. }
    )
}

/// The disk write a synchronous output asks for, or the output itself if it belongs in a flow.
fn disk_write(output: Output) -> Result<DiskWrite, Output> {
    match output {
        Output::PersistEpochs { accepted_epoch, current_epoch } => {
            assert!(current_epoch <= accepted_epoch, "currentEpoch never passes acceptedEpoch");
            Ok(DiskWrite::Epochs { accepted_epoch, current_epoch })
        }
        Output::TruncateLog { after } => Ok(DiskWrite::Truncate { after }),
        Output::InstallSnapshot { snapshot } => Ok(DiskWrite::Snapshot(snapshot)),
        other => {
            assert!(!is_disk_write(&other), "the two lists of disk writes agree");
            Err(other)
        }
    }
}

/// Carries out one node's plans. Lives as long as the node's incarnation (a restart makes a
/// new one), so that it can check appends and `Persisted` reports across steps.
#[derive(Debug, Default)]
pub struct Executor {
    /// Outputs not carried out yet (non-empty only while `Waiting`), walked as `plan` stages.
    outputs: VecDeque<Output>,
    /// Flow outputs were carried out since the last `appends_end`.
    in_flow: bool,
    /// A disk write was handed to the shell and is not durable yet.
    waiting: bool,
    /// Where the log ends as the shell was told to make it: the last append, or the point a
    /// truncation or snapshot install moved it to. `None` until the first of those.
    log_end: Option<Zxid>,
    /// The highest zxid ever handed to `append` (or installed by a snapshot).
    appended_max: Option<Zxid>,
    /// Connections closed in the plan being carried out.
    closed: BTreeSet<ConnId>,
}

impl Executor {
    /// An executor for a node that just started.
    pub fn new() -> Executor {
        Executor::default()
    }

    /// True while a disk write is pending.
    pub fn is_waiting(&self) -> bool {
        self.waiting
    }

    /// Carries out a step's outputs (`Node::take_outputs`) until they are all done or a disk
    /// write is pending. The previous plan must be finished.
    pub fn run(&mut self, outputs: Vec<Output>, fx: &mut impl Effects) -> Progress {
        self.start();
        self.outputs = outputs.into();
        self.resume(fx)
    }

    /// Like `run`, for a shell whose disk writes are synchronous: every write must be `Done`.
    pub fn run_sync(&mut self, outputs: Vec<Output>, fx: &mut impl Effects) {
        let progress = self.run(outputs, fx);
        assert_eq!(progress, Progress::Done, "a synchronous shell left a disk write pending");
        assert!(self.outputs.is_empty(), "the plan was carried out or dropped");
    }

    /// Like `run_sync`, for a shell that reuses one list (`Node::swap_outputs`): `outputs` is
    /// carried out and left empty with its room, so a step allocates no list. (Its buffer
    /// serves as the queue meanwhile: `VecDeque::from` a `Vec` and back move no element.)
    pub fn run_sync_from(&mut self, outputs: &mut Vec<Output>, fx: &mut impl Effects) {
        self.start();
        let own = std::mem::replace(&mut self.outputs, VecDeque::from(std::mem::take(outputs)));
        let progress = self.resume(fx);
        *outputs = Vec::from(std::mem::replace(&mut self.outputs, own));
        assert_eq!(progress, Progress::Done, "a synchronous shell left a disk write pending");
        assert!(self.outputs.is_empty() && outputs.is_empty(), "the plan was carried out");
    }

    /// A new plan may start: the last one is finished.
    fn start(&mut self) {
        assert!(!self.waiting, "a new plan while a disk write is pending");
        assert!(self.outputs.is_empty(), "a new plan before the last one finished");
        // Nearly every plan closes no connection: leave the empty set alone.
        if !self.closed.is_empty() {
            self.closed.clear();
        }
    }

    /// The pending disk write is durable: the stages after it may go on (`resume`).
    pub fn written(&mut self) {
        assert!(self.waiting, "no disk write is pending");
        self.waiting = false;
    }

    /// Carries out stages until the plan is done or a disk write is pending.
    pub fn resume(&mut self, fx: &mut impl Effects) -> Progress {
        assert!(!self.waiting, "resumed before the pending disk write is durable");
        while let Some(output) = self.outputs.pop_front() {
            if fx.halted() {
                self.outputs.clear();
                self.in_flow = false;
                return Progress::Done;
            }
            if let Output::ReadLog { request, after, upto, max_txns } = output {
                // The appends before it go to the log first: the read must see them.
                self.end_flow(fx);
                if !fx.halted() {
                    fx.read_log(LogReadRequest { request, after, upto, max_txns });
                }
                continue;
            }
            // Asked by reference first: most outputs belong in a flow, and moving each through
            // `disk_write`'s `Result` and back cost more than the flow output's own handling.
            if !is_disk_write(&output) {
                self.in_flow = true;
                self.carry_out(output, fx);
                continue;
            }
            let write = disk_write(output).expect("asked above: a synchronous disk write");
            // The flow before the write ends: its appends go to the log ahead of the write.
            self.end_flow(fx);
            if self.write(write, fx) == Written::Pending {
                self.waiting = true;
                return Progress::Waiting;
            }
        }
        self.end_flow(fx);
        assert!(!self.in_flow, "every flow was ended");
        Progress::Done
    }

    /// The shell found everything appended up to `upto` durable: the input to step the node
    /// with. Refuses a zxid that was never handed to `append` (a shell that reports durability
    /// of records it has not even been given has its bookkeeping wrong).
    pub fn persisted(&self, upto: Zxid) -> Input {
        if let Some(max) = self.appended_max {
            assert!(upto <= max, "Persisted {upto} reported, but appends reached only {max}");
        }
        Input::Persisted { upto }
    }

    /// Ends the current flow, if any: its appends are handed over (unless the shell halted).
    fn end_flow(&mut self, fx: &mut impl Effects) {
        if std::mem::take(&mut self.in_flow) && !fx.halted() {
            fx.appends_end();
        }
    }

    /// One output of a flow.
    fn carry_out(&mut self, output: Output, fx: &mut impl Effects) {
        match output {
            Output::Persist { txn } => self.append(txn, fx),
            Output::PeerSend { to, msg } => fx.peer_send(to, msg),
            Output::ClientSend { conn, frame } => {
                assert!(!self.closed.contains(&conn), "a frame for {conn:?} after its close");
                fx.client_send(conn, frame);
            }
            Output::ClientClose { conn } => {
                // A second close of one connection is harmless (the shell's close is
                // idempotent), so it is passed on rather than refused.
                self.closed.insert(conn);
                fx.client_close(conn);
            }
            other => unreachable!("disk_write takes every synchronous output: {other:?}"),
        }
    }

    fn append(&mut self, txn: Arc<LoggedTxn>, fx: &mut impl Effects) {
        let zxid = txn.header.zxid;
        if let Some(end) = self.log_end {
            assert!(zxid > end, "append {zxid} does not follow the log's end {end}");
        }
        self.log_end = Some(zxid);
        self.appended_max = Some(self.appended_max.map_or(zxid, |max| max.max(zxid)));
        fx.append(txn);
    }

    fn write(&mut self, write: DiskWrite, fx: &mut impl Effects) -> Written {
        match &write {
            DiskWrite::Epochs { .. } => {}
            DiskWrite::Truncate { after } => {
                self.log_end = Some(self.log_end.map_or(*after, |end| end.min(*after)));
            }
            DiskWrite::Snapshot(snapshot) => {
                self.log_end = Some(snapshot.zxid);
                let max = self.appended_max.map_or(snapshot.zxid, |max| max.max(snapshot.zxid));
                self.appended_max = Some(max);
            }
        }
        fx.write(write)
    }
}

#[cfg(test)]
mod tests {
    //! The executor against recording shells: a correct one, and deliberately wrong ones that
    //! each rule must catch.
    use super::*;
    use crate::tree::DataTree;
    use crate::txn::{Txn, TxnHeader};
    use crate::types::SessionId;

    /// One primitive effect, as a shell saw it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Seen {
        Append(Zxid),
        AppendsEnd,
        Write(&'static str),
        Peer(u64),
        Client(u64),
        Close(u64),
        Read(u64),
    }

    /// Records effects; disk writes answer `answer`; halts after `halt_after` effects.
    struct Recorder {
        seen: Vec<Seen>,
        answer: Written,
        halt_after: Option<usize>,
    }

    impl Recorder {
        fn new(answer: Written) -> Recorder {
            Recorder { seen: Vec::new(), answer, halt_after: None }
        }
    }

    impl Effects for Recorder {
        fn append(&mut self, txn: Arc<LoggedTxn>) {
            self.seen.push(Seen::Append(txn.header.zxid));
        }
        fn appends_end(&mut self) {
            self.seen.push(Seen::AppendsEnd);
        }
        fn write(&mut self, write: DiskWrite) -> Written {
            self.seen.push(Seen::Write(match write {
                DiskWrite::Epochs { .. } => "epochs",
                DiskWrite::Truncate { .. } => "truncate",
                DiskWrite::Snapshot(_) => "snapshot",
            }));
            self.answer
        }
        fn peer_send(&mut self, to: ServerId, _msg: ZabMessage) {
            self.seen.push(Seen::Peer(to.0));
        }
        fn client_send(&mut self, conn: ConnId, _frame: Vec<u8>) {
            self.seen.push(Seen::Client(conn.0));
        }
        fn client_close(&mut self, conn: ConnId) {
            self.seen.push(Seen::Close(conn.0));
        }
        fn read_log(&mut self, read: LogReadRequest) {
            self.seen.push(Seen::Read(read.request));
        }
        fn halted(&self) -> bool {
            self.halt_after.is_some_and(|n| self.seen.len() >= n)
        }
    }

    fn persist(epoch: u32, counter: u32) -> Output {
        let zxid = Zxid::new(epoch, counter);
        let header = TxnHeader { session_id: SessionId(1), cxid: 1, zxid, time_ms: 0 };
        let txn = Txn::CloseSession { paths_to_delete: vec![] };
        Output::Persist { txn: Arc::new(LoggedTxn { header, txn }) }
    }

    fn epochs(epoch: u32) -> Output {
        Output::PersistEpochs { accepted_epoch: epoch, current_epoch: epoch }
    }

    fn peer(to: u64) -> Output {
        let msg = crate::zab::message::SessionMessage::Ack { zxid: Zxid::new(1, 0) };
        let msg = ZabMessage::Session { nonce: 1, seq: 0, msg };
        Output::PeerSend { to: ServerId(to), msg }
    }

    fn client(conn: u64) -> Output {
        Output::ClientSend { conn: ConnId(conn), frame: vec![0, 0, 0, 0] }
    }

    fn snapshot_at(zxid: Zxid) -> Output {
        let snapshot = Snapshot { zxid, tree: DataTree::new(), sessions: vec![] };
        Output::InstallSnapshot { snapshot: Box::new(snapshot) }
    }

    /// `is_disk_write` (asked by reference on the executor's hot path) names exactly the
    /// outputs `disk_write` turns into a `DiskWrite`, for every kind of output.
    #[test]
    fn the_reference_test_names_exactly_the_disk_writes() {
        let read = Output::ReadLog {
            request: 1,
            after: Zxid::new(1, 0),
            upto: Zxid::new(1, 2),
            max_txns: 8,
        };
        let outputs = vec![
            persist(1, 1),
            peer(2),
            client(7),
            Output::ClientClose { conn: ConnId(7) },
            read,
            epochs(2),
            Output::TruncateLog { after: Zxid::new(1, 1) },
            snapshot_at(Zxid::new(2, 5)),
        ];
        let mut writes = 0;
        for output in outputs {
            let asked = is_disk_write(&output);
            writes += usize::from(asked);
            assert_eq!(asked, disk_write(output).is_ok(), "the two lists agree");
        }
        assert_eq!(writes, 3, "epochs, truncation and snapshot are the synchronous writes");
    }

    #[test]
    fn a_plan_puts_each_synchronous_output_between_flows() {
        let outputs = vec![persist(1, 1), peer(2), epochs(2), epochs(2), client(7)];
        let stages = plan(outputs);
        let write = Stage::Write(DiskWrite::Epochs { accepted_epoch: 2, current_epoch: 2 });
        let expected = vec![
            Stage::Flow(vec![persist(1, 1), peer(2)]),
            write.clone(),
            write,
            Stage::Flow(vec![client(7)]),
        ];
        assert_eq!(stages, expected);
        assert_eq!(plan(vec![]), vec![]);
    }

    /// The barrier: a PeerSend after PersistEpochs is not carried out while the epoch write is
    /// pending, and earlier appends are handed over before the write starts.
    #[test]
    fn nothing_after_a_pending_disk_write_goes_out_before_it_is_durable() {
        let mut shell = Recorder::new(Written::Pending);
        let mut executor = Executor::new();
        let outputs = vec![persist(1, 1), client(7), epochs(2), peer(3), persist(1, 2)];
        assert_eq!(executor.run(outputs, &mut shell), Progress::Waiting);
        let before = vec![
            Seen::Append(Zxid::new(1, 1)),
            Seen::Client(7),
            Seen::AppendsEnd,
            Seen::Write("epochs"),
        ];
        assert_eq!(shell.seen, before, "the send waits for the epoch write");
        assert!(executor.is_waiting());
        executor.written();
        assert_eq!(executor.resume(&mut shell), Progress::Done);
        let after = [Seen::Peer(3), Seen::Append(Zxid::new(1, 2)), Seen::AppendsEnd];
        assert_eq!(shell.seen[before.len()..], after);
    }

    /// A wrong shell: it resumes the plan before its disk write is durable.
    #[test]
    #[should_panic(expected = "resumed before the pending disk write is durable")]
    fn a_shell_that_resumes_before_the_write_is_durable_is_refused() {
        let mut shell = Recorder::new(Written::Pending);
        let mut executor = Executor::new();
        assert_eq!(executor.run(vec![epochs(1), peer(2)], &mut shell), Progress::Waiting);
        executor.resume(&mut shell);
    }

    /// A wrong shell: it starts the next step's outputs while the last step's write is pending.
    #[test]
    #[should_panic(expected = "a new plan while a disk write is pending")]
    fn a_shell_that_runs_the_next_step_before_the_write_is_durable_is_refused() {
        let mut shell = Recorder::new(Written::Pending);
        let mut executor = Executor::new();
        executor.run(vec![epochs(1)], &mut shell);
        executor.run(vec![peer(2)], &mut shell);
    }

    /// A wrong shell: a synchronous one (simulator, test harness) that leaves a write pending.
    #[test]
    #[should_panic(expected = "a synchronous shell left a disk write pending")]
    fn a_synchronous_shell_must_finish_its_writes() {
        let mut shell = Recorder::new(Written::Pending);
        Executor::new().run_sync(vec![epochs(1), peer(2)], &mut shell);
    }

    /// A wrong shell: it reports durable a txn it was never handed (so a reply to it could be
    /// released before it is on disk).
    #[test]
    fn persisted_is_refused_past_what_was_appended() {
        let mut shell = Recorder::new(Written::Done);
        let mut executor = Executor::new();
        executor.run_sync(vec![persist(1, 1), persist(1, 2)], &mut shell);
        let upto = Zxid::new(1, 2);
        assert_eq!(executor.persisted(upto), Input::Persisted { upto });
        let early = std::panic::catch_unwind(|| executor.persisted(Zxid::new(1, 3)));
        assert!(early.is_err(), "1:3 was never appended");
    }

    /// Appends follow the log's end, which truncations and snapshot installs move.
    #[test]
    fn appends_follow_the_log_end_that_truncation_and_snapshots_set() {
        let mut shell = Recorder::new(Written::Done);
        let mut executor = Executor::new();
        let truncate = Output::TruncateLog { after: Zxid::new(1, 1) };
        let outputs = vec![persist(1, 1), persist(1, 2), truncate, persist(2, 1)];
        executor.run_sync(outputs, &mut shell);
        executor.run_sync(vec![snapshot_at(Zxid::new(2, 5)), persist(2, 6)], &mut shell);
        assert_eq!(shell.seen.iter().filter(|s| matches!(s, Seen::Append(_))).count(), 4);
        let stale = std::panic::catch_unwind(move || {
            executor.run_sync(vec![persist(2, 6)], &mut Recorder::new(Written::Done))
        });
        assert!(stale.is_err(), "2:6 is logged already");
    }

    /// A frame after its connection's close in one step is a core bug.
    #[test]
    #[should_panic(expected = "after its close")]
    fn a_frame_after_its_connections_close_is_refused() {
        let outputs = vec![client(7), Output::ClientClose { conn: ConnId(7) }, client(7)];
        Executor::new().run_sync(outputs, &mut Recorder::new(Written::Done));
    }

    /// A shell that halts (a crash in the middle of a step) gets nothing more, and the
    /// executor is ready for the next incarnation's plans.
    #[test]
    fn a_halted_shell_gets_nothing_more() {
        let mut shell = Recorder::new(Written::Done);
        shell.halt_after = Some(2);
        let mut executor = Executor::new();
        let outputs = vec![persist(1, 1), peer(2), epochs(1), peer(3), client(4)];
        executor.run_sync(outputs, &mut shell);
        assert_eq!(shell.seen, vec![Seen::Append(Zxid::new(1, 1)), Seen::Peer(2)]);
        assert!(!executor.is_waiting());
        shell.halt_after = None;
        executor.run_sync(vec![peer(5)], &mut shell);
        assert_eq!(shell.seen.last(), Some(&Seen::AppendsEnd));
    }

    /// `run_sync_from` carries out what `run_sync` does, in the same order, and leaves the
    /// reused list empty with its room; a crash in the middle drops the rest of the plan
    /// there too, and a pending write is refused as by `run_sync`.
    #[test]
    fn run_sync_from_does_what_run_sync_does_and_keeps_the_list() {
        let plan = || vec![persist(1, 1), peer(2), epochs(1), client(3), persist(1, 2), peer(4)];
        for halt_after in [None, Some(3)] {
            let mut by_value = Recorder::new(Written::Done);
            by_value.halt_after = halt_after;
            Executor::new().run_sync(plan(), &mut by_value);
            let mut reused = Recorder::new(Written::Done);
            reused.halt_after = halt_after;
            let mut list = plan();
            let room = list.capacity();
            let mut executor = Executor::new();
            executor.run_sync_from(&mut list, &mut reused);
            assert_eq!(reused.seen, by_value.seen, "halt after {halt_after:?}");
            assert!(list.is_empty() && list.capacity() == room, "the list keeps its room");
            list.push(peer(5));
            reused.halt_after = None;
            executor.run_sync_from(&mut list, &mut reused);
            assert_eq!(reused.seen.last(), Some(&Seen::AppendsEnd), "the next plan runs");
        }
        let pending = std::panic::catch_unwind(|| {
            let mut list = vec![epochs(1), peer(2)];
            Executor::new().run_sync_from(&mut list, &mut Recorder::new(Written::Pending));
        });
        assert!(pending.is_err(), "a synchronous shell must finish its writes");
    }

    /// A log read follows the appends before it: they are handed over first, so a shell that
    /// queues the read behind them reads a log that holds them.
    #[test]
    fn a_log_read_goes_after_the_appends_before_it() {
        let mut shell = Recorder::new(Written::Done);
        let read = Output::ReadLog {
            request: 9,
            after: Zxid::new(1, 0),
            upto: Zxid::new(1, 1),
            max_txns: 10,
        };
        let outputs = vec![persist(1, 1), read, peer(2), persist(1, 2)];
        Executor::new().run_sync(outputs, &mut shell);
        let expected = vec![
            Seen::Append(Zxid::new(1, 1)),
            Seen::AppendsEnd,
            Seen::Read(9),
            Seen::Peer(2),
            Seen::Append(Zxid::new(1, 2)),
            Seen::AppendsEnd,
        ];
        assert_eq!(shell.seen, expected);
    }

    /// The in-memory answer: the range, `found_after`, and errors for a short log or too many.
    #[test]
    fn an_in_memory_log_answers_a_read_with_the_range_or_an_error() {
        let txns: Vec<LoggedTxn> = (1..=5)
            .map(|c| match persist(1, c) {
                Output::Persist { txn } => (*txn).clone(),
                _ => unreachable!(),
            })
            .collect();
        let read = |after, upto, max_txns| LogReadRequest {
            request: 1,
            after: Zxid::new(1, after),
            upto: Zxid::new(1, upto),
            max_txns,
        };
        let Input::LogRead { found_after, txns: Ok(got), .. } = read(2, 4, 10).answer_from(&txns)
        else {
            panic!("a read inside the log succeeds")
        };
        assert!(found_after);
        assert_eq!(got, txns[2..4].to_vec());
        let Input::LogRead { found_after, txns: Ok(_), .. } =
            read(1, 3, 10).answer_from(&txns[1..])
        else {
            panic!("the range is there")
        };
        assert!(!found_after, "1:1 is not a record of this log");
        let too_many = read(0, 5, 4).answer_from(&txns);
        assert!(matches!(too_many, Input::LogRead { txns: Err(_), .. }));
        let short = read(2, 7, 10).answer_from(&txns);
        assert!(matches!(short, Input::LogRead { txns: Err(_), .. }));
    }
}
