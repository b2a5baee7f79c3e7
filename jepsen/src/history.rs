//! The history: what clients did and what came back, as Jepsen records it.
//!
//! A history is a sequence of [`Event`]s in real-time order (the order of the lines *is* the
//! order in time; `time` is only shown to people). Each client operation appears as an `invoke`
//! and, later, one completion by the same process: `ok` (it took effect, with the facts
//! ZooKeeper replied), `fail` (it definitely did not take effect) or `info` (unknown: it may
//! have taken effect after its invoke and before its session's next acknowledged op completed,
//! or never). An `event` line records a watch
//! notification received by a process. The on-disk form is JSON lines, described in
//! `docs/HISTORY-FORMAT.md`; [`History::parse`] never panics on bad input and names the line.
//!
//! Invariant kept by [`History::ops`]: every invoke is paired with at most one completion of
//! the same process, replies of one process are matched in FIFO order (ZooKeeper answers a
//! session's requests in the order it sent them) unless both carry an `xid`; an invoke left
//! without completion becomes `info`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The current version of the history format (the `zkr_history` field of the header line).
pub const FORMAT_VERSION: u32 = 1;

/// What one line of the history records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The process sent a request.
    Invoke,
    /// The request took effect; the line carries the reply.
    Ok,
    /// The request definitely did not take effect (the line carries the error).
    Fail,
    /// The outcome is unknown (timeout, connection lost): it may or may not have taken effect.
    Info,
    /// The process received a watch notification.
    Event,
    /// A fault injected by the test (Jepsen's nemesis): a partition, a crash, a pause... Not
    /// an operation: the checker ignores it; reports draw it as a band on the timeline.
    Nemesis,
}

/// Whether a nemesis line starts or ends a fault (absent: a fault at one instant, e.g. a crash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The fault begins.
    Start,
    /// The fault ends (matched with the latest open `start` of the same `fault`).
    Stop,
}

/// The client function an operation calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum F {
    /// `create(path, data, mode)`; the reply carries the created `name`.
    Create,
    /// `delete(path, version)`.
    Delete,
    /// `setData(path, data, version)`; the reply carries the new `stat`.
    Set,
    /// `getData(path, watch)`; the reply carries `data` and `stat`.
    Get,
    /// `exists(path, watch)`; the reply carries `stat` iff the node exists.
    Exists,
    /// `getChildren(path, watch)`; the reply carries `children` (and optionally `stat`).
    Children,
    /// `sync(path)`: later reads of the session see every write completed before it began.
    Sync,
    /// `multi(ops)`: all sub-operations or none.
    Multi,
    /// `check(path, version)`: only inside a multi.
    Check,
    /// The session ends (explicit close or observed expiry); its ephemerals are deleted. An
    /// observed expiry completes `info`: the refusal can precede the closeSession's commit.
    Close,
}

impl F {
    /// True for functions that may change the tree (or, for `Sync`, order the session).
    pub fn is_write(self) -> bool {
        matches!(self, F::Create | F::Delete | F::Set | F::Multi | F::Check | F::Close)
    }
}

/// How `create` makes a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateMode {
    /// A node that lives until deleted.
    #[default]
    Persistent,
    /// A node deleted when its session ends.
    Ephemeral,
    /// Persistent, with a unique increasing 10-digit suffix chosen by the server.
    PersistentSequential,
    /// Ephemeral, with a unique increasing 10-digit suffix chosen by the server.
    EphemeralSequential,
}

impl CreateMode {
    /// True if the node goes away with its session.
    pub fn is_ephemeral(self) -> bool {
        matches!(self, CreateMode::Ephemeral | CreateMode::EphemeralSequential)
    }
    /// True if the server appends a sequence number to the name.
    pub fn is_sequential(self) -> bool {
        matches!(self, CreateMode::PersistentSequential | CreateMode::EphemeralSequential)
    }
}

/// The kind of a watch notification, as ZooKeeper names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WatchType {
    /// An `exists` watch saw the node appear.
    NodeCreated,
    /// The node was deleted.
    NodeDeleted,
    /// The node's data was set.
    NodeDataChanged,
    /// A child was created or deleted.
    NodeChildrenChanged,
}

/// A znode's `Stat` as returned by the server. Every field is optional so that tools which
/// record only some of it can still be checked; absent fields are not checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stat {
    /// zxid of the create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub czxid: Option<i64>,
    /// zxid of the last data change (or the create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mzxid: Option<i64>,
    /// zxid of the last change to the children list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pzxid: Option<i64>,
    /// Number of data changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    /// Number of children changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cversion: Option<i32>,
    /// Session id of the owner of an ephemeral node, 0 for a persistent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_owner: Option<i64>,
    /// Length of the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_length: Option<i32>,
    /// Number of children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_children: Option<i32>,
}

/// One sub-operation of a `multi`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubOp {
    /// `create`, `delete`, `set` or `check`.
    pub f: F,
    /// The znode path.
    pub path: String,
    /// Data for `create` and `set`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Expected version for `delete`, `set`, `check` (absent or -1: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    /// Mode for `create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<CreateMode>,
}

/// The reply to one sub-operation of a `multi`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubResult {
    /// Error of this sub-operation, if the multi failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Created name, for a `create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New stat, for a `set`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<Stat>,
}

/// One line of a history as it is written: every field at the top level. This is the on-disk
/// form of an [`Event`] (see `docs/HISTORY-FORMAT.md` for the fields).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// The client session that did it (Jepsen's process). Required on every line but
    /// `nemesis` ones, where it is optional and ignored ([`History::parse`] checks this;
    /// an [`Event`] written out always has it).
    #[serde(default)]
    pub process: Option<u64>,
    /// What the line records.
    #[serde(rename = "type")]
    pub kind: Option<Kind>,
    /// The function (absent on `event` lines; optional on completions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f: Option<F>,
    /// The znode path (request path; for `event` lines the watched path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Data sent (`create`, `set`) or read (`get` completion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Expected version (`set`, `delete`); absent or -1 means any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    /// Create mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<CreateMode>,
    /// True if the read leaves a watch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub watch: bool,
    /// Sub-operations of a `multi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<Vec<SubOp>>,
    /// Request id, to match replies of pipelined requests (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xid: Option<i64>,
    /// Time in any monotone unit, for people only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
    /// Reply header zxid: a write's own zxid; for a read, the last zxid the serving server had
    /// applied; for an `event`, the zxid of the change that fired it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zxid: Option<i64>,
    /// Stat in the reply (boxed: most lines have none, and a history holds millions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<Box<Stat>>,
    /// Name created by a `create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Children returned by `children`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<String>>,
    /// Error code name (`NoNode`, `NodeExists`, `BadVersion`, `NotEmpty`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Per-sub-operation replies of a `multi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<SubResult>>,
    /// Notification type on an `event` line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<WatchType>,
    /// On a `nemesis` line: what the fault is, free text (`"partition 1,2 | 3"`, `"crash 2"`);
    /// a `stop` names the same text as its `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// On a `nemesis` line: `start` or `stop` of the fault; absent for an instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
}

/// One line of a history, in memory.
///
/// A long history holds millions of these, so the fields most lines lack (a multi's
/// sub-operations and results, a created name, children, an error, a watch event type) live
/// in one optional box, [`Rare`], read through methods of the same names and written through
/// [`Event::rare_mut`]. That halves an event's size. On disk every field is at the top level
/// ([`Line`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Line", into = "Line")]
pub struct Event {
    /// The client session that did it (Jepsen's process). Required on every line but
    /// `nemesis` ones, where it is optional and ignored ([`History::parse`] checks this).
    pub process: u64,
    /// What the line records.
    pub kind: Option<Kind>,
    /// The function (absent on `event` lines; optional on completions).
    pub f: Option<F>,
    /// The znode path (request path; for `event` lines the watched path).
    pub path: Option<String>,
    /// Data sent (`create`, `set`) or read (`get` completion).
    pub data: Option<String>,
    /// Expected version (`set`, `delete`); absent or -1 means any.
    pub version: Option<i32>,
    /// Create mode.
    pub mode: Option<CreateMode>,
    /// True if the read leaves a watch.
    pub watch: bool,
    /// Request id, to match replies of pipelined requests (optional).
    pub xid: Option<i64>,
    /// Time in any monotone unit, for people only.
    pub time: Option<u64>,
    /// Reply header zxid: a write's own zxid; for a read, the last zxid the serving server had
    /// applied; for an `event`, the zxid of the change that fired it.
    pub zxid: Option<i64>,
    /// Stat in the reply (boxed: most lines have none, and a history holds millions).
    pub stat: Option<Box<Stat>>,
    /// On a `nemesis` line: what the fault is, free text (`"partition 1,2 | 3"`, `"crash 2"`);
    /// a `stop` names the same text as its `start`.
    pub fault: Option<String>,
    /// On a `nemesis` line: `start` or `stop` of the fault; absent for an instant.
    pub phase: Option<Phase>,
    /// The fields most lines lack; `None` when all of them are absent.
    pub rare: Option<Box<Rare>>,
}

/// The fields of an [`Event`] that most lines lack (see there).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rare {
    /// Sub-operations of a `multi`.
    pub ops: Option<Vec<SubOp>>,
    /// Name created by a `create`.
    pub name: Option<String>,
    /// Children returned by `children`.
    pub children: Option<Vec<String>>,
    /// Error code name (`NoNode`, `NodeExists`, `BadVersion`, `NotEmpty`, ...).
    pub error: Option<String>,
    /// Per-sub-operation replies of a `multi`.
    pub results: Option<Vec<SubResult>>,
    /// Notification type on an `event` line.
    pub event: Option<WatchType>,
}

static NO_SUB_OPS: Option<Vec<SubOp>> = None;
static NO_STRING: Option<String> = None;
static NO_STRINGS: Option<Vec<String>> = None;
static NO_RESULTS: Option<Vec<SubResult>> = None;

impl Event {
    /// The rare fields, made present (all absent) if they were not. Set one of them, or an
    /// event read back from its line (which has no box when all are absent) compares unequal.
    pub fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }
    /// Sub-operations of a `multi`.
    pub fn ops(&self) -> &Option<Vec<SubOp>> {
        self.rare.as_ref().map_or(&NO_SUB_OPS, |r| &r.ops)
    }
    /// Name created by a `create`.
    pub fn name(&self) -> &Option<String> {
        self.rare.as_ref().map_or(&NO_STRING, |r| &r.name)
    }
    /// Children returned by `children`.
    pub fn children(&self) -> &Option<Vec<String>> {
        self.rare.as_ref().map_or(&NO_STRINGS, |r| &r.children)
    }
    /// Error code name (`NoNode`, `NodeExists`, `BadVersion`, `NotEmpty`, ...).
    pub fn error(&self) -> &Option<String> {
        self.rare.as_ref().map_or(&NO_STRING, |r| &r.error)
    }
    /// Per-sub-operation replies of a `multi`.
    pub fn results(&self) -> &Option<Vec<SubResult>> {
        self.rare.as_ref().map_or(&NO_RESULTS, |r| &r.results)
    }
    /// Notification type on an `event` line.
    pub fn event(&self) -> Option<WatchType> {
        self.rare.as_ref().and_then(|r| r.event)
    }
}

impl From<Line> for Event {
    fn from(l: Line) -> Event {
        let rare = Rare {
            ops: l.ops,
            name: l.name,
            children: l.children,
            error: l.error,
            results: l.results,
            event: l.event,
        };
        Event {
            process: l.process.unwrap_or_default(),
            kind: l.kind,
            f: l.f,
            path: l.path,
            data: l.data,
            version: l.version,
            mode: l.mode,
            watch: l.watch,
            xid: l.xid,
            time: l.time,
            zxid: l.zxid,
            stat: l.stat,
            fault: l.fault,
            phase: l.phase,
            rare: (rare != Rare::default()).then(|| Box::new(rare)),
        }
    }
}

impl From<Event> for Line {
    fn from(e: Event) -> Line {
        let rare = e.rare.map(|r| *r).unwrap_or_default();
        Line {
            process: Some(e.process),
            kind: e.kind,
            f: e.f,
            path: e.path,
            data: e.data,
            version: e.version,
            mode: e.mode,
            watch: e.watch,
            ops: rare.ops,
            xid: e.xid,
            time: e.time,
            zxid: e.zxid,
            stat: e.stat,
            name: rare.name,
            children: rare.children,
            error: rare.error,
            results: rare.results,
            event: rare.event,
            fault: e.fault,
            phase: e.phase,
        }
    }
}

/// A znode that exists before the history starts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialNode {
    /// Its path.
    pub path: String,
    /// Its data.
    #[serde(default)]
    pub data: String,
    /// Its data version.
    #[serde(default)]
    pub version: i32,
    /// Its children version.
    #[serde(default)]
    pub cversion: i32,
}

/// The optional first line: format version and the tree before the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Format version; must be [`FORMAT_VERSION`].
    pub zkr_history: u32,
    /// Nodes existing at the start besides `/` (which always exists).
    #[serde(default)]
    pub initial: Vec<InitialNode>,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What a `sync` reply's zxid says about where the sync took effect (absent: exact).
    #[serde(default, skip_serializing_if = "SyncZxid::is_exact")]
    pub sync_zxid: SyncZxid,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            zkr_history: FORMAT_VERSION,
            initial: Vec::new(),
            description: None,
            sync_zxid: SyncZxid::Exact,
        }
    }
}

/// What the zxid of an acknowledged `sync` reply tells the checker (the header's `sync_zxid`).
///
/// Both meanings keep the guarantee a client relies on: a read issued after the sync sees every
/// write completed before the sync began. They differ in what the sync's own reply says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncZxid {
    /// The sync took effect just after its reply zxid, which is at or above every op completed
    /// before the sync began: a sync whose zxid is below such an op is itself a violation. zkr
    /// answers a sync this way on every member.
    #[default]
    Exact,
    /// The reply zxid is only a lower bound of the state the session sees next; where the sync
    /// took effect is bound by real time alone. Apache ZooKeeper's leader answers a sync of its
    /// own client like a read, at the zxid its commit processor has applied, which may lag
    /// COMMITs it has already sent and followers have already acknowledged to clients
    /// (`Leader.tryToCommit` sends the COMMIT before handing the proposal to its own
    /// `CommitProcessor`, which does not hold syncs: `matchSyncs` is false on the leader).
    LowerBound,
}

impl SyncZxid {
    /// True for the default, [`SyncZxid::Exact`].
    pub fn is_exact(&self) -> bool {
        *self == SyncZxid::Exact
    }
}

impl std::str::FromStr for SyncZxid {
    type Err = String;

    fn from_str(text: &str) -> Result<SyncZxid, String> {
        match text {
            "exact" => Ok(SyncZxid::Exact),
            "lower-bound" => Ok(SyncZxid::LowerBound),
            _ => Err(format!("{text:?}: the sync zxid is `exact` or `lower-bound`")),
        }
    }
}

/// A whole history: header plus events in real-time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The header (defaults when the file has none).
    pub header: Header,
    /// The events, in real-time order.
    pub events: Vec<Event>,
}

/// Why a history could not be read. `line` is 1-based in the file (0 if not about a line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryError {
    /// 1-based line number in the input.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for HistoryError {}

/// How a paired operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Took effect.
    Ok,
    /// Definitely did not take effect.
    Fail,
    /// May or may not have taken effect: after the invoke, and (session order) before the
    /// session's next acknowledged op completed.
    Info,
}

/// A fault recorded by `nemesis` lines: from its start to its stop (event indices).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// What the fault is (the `fault` text).
    pub name: String,
    /// Event index of the start.
    pub from: usize,
    /// Event index of the stop (the last event if it never stopped; `from` for an instant).
    pub to: usize,
}

/// An invoke paired with its completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// Index of this op in [`History::ops`].
    pub id: usize,
    /// The process (session).
    pub process: u64,
    /// The function.
    pub f: F,
    /// Index of the invoke event in `History::events`.
    pub invoke: usize,
    /// Index of the completion event, if any (`None` for an invoke never completed).
    pub complete: Option<usize>,
    /// How it ended.
    pub outcome: Outcome,
}

impl History {
    /// Parses JSON lines. Blank lines are skipped; the first non-blank line may be a header.
    pub fn parse(text: &str) -> Result<History, HistoryError> {
        History::read(text.as_bytes())
    }

    /// [`History::parse`], reading line by line: a history file is never held whole in
    /// memory next to the events made of it (a million-op history is half a gigabyte of text).
    pub fn read(mut input: impl std::io::BufRead) -> Result<History, HistoryError> {
        let mut history = History::default();
        let mut lines: Vec<u32> = Vec::new();
        let mut seen_event = false;
        let mut buffer = String::new();
        for line in 1.. {
            buffer.clear();
            match input.read_line(&mut buffer) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(err(line, &format!("cannot read: {e}"))),
            }
            let raw = buffer.trim();
            if raw.is_empty() {
                continue;
            }
            // `contains` first: a quick scan that rules out nearly every line.
            if raw.contains("zkr_history") && has_key(raw, "zkr_history") {
                if seen_event {
                    return Err(err(line, "header must be the first line"));
                }
                let header: Header = serde_json::from_str(raw)
                    .map_err(|e| err(line, &json_error("bad header", &e)))?;
                if header.zkr_history != FORMAT_VERSION {
                    let m = format!("unsupported format version {}", header.zkr_history);
                    return Err(err(line, &m));
                }
                history.header = header;
                seen_event = true;
                continue;
            }
            seen_event = true;
            let event: Line =
                serde_json::from_str(raw).map_err(|e| err(line, &json_error("bad event", &e)))?;
            if event.kind != Some(Kind::Nemesis) && event.process.is_none() {
                return Err(err(line, "bad event: missing field `process`"));
            }
            let event = Event::from(event);
            validate_event(&event).map_err(|m| err(line, &m))?;
            history.events.push(event);
            lines.push(u32::try_from(line).unwrap_or(u32::MAX));
        }
        history.events.shrink_to_fit();
        // Pairing errors name the line of the offending completion.
        if let Err((index, message)) = history.pair() {
            return Err(err(lines[index] as usize, &message));
        }
        Ok(history)
    }

    /// Writes the history as JSON lines (header first).
    pub fn to_jsonl(&self) -> String {
        let mut out = serde_json::to_string(&self.header).expect("header serializes");
        out.push('\n');
        for event in &self.events {
            out.push_str(&serde_json::to_string(event).expect("event serializes"));
            out.push('\n');
        }
        out
    }

    /// Pairs invokes with completions; `Err((event index, message))` on a dangling completion.
    pub fn pair(&self) -> Result<Vec<Op>, (usize, String)> {
        // About one op per two events (an invoke and its completion): room up front instead
        // of a dozen doublings of the list.
        let mut ops: Vec<Op> = Vec::with_capacity(self.events.len() / 2 + 1);
        // Per session, its ops not yet completed, oldest first (looked up per event).
        let mut pending: crate::model::BySession<Vec<usize>> = Default::default();
        for (index, event) in self.events.iter().enumerate() {
            let kind = event.kind.expect("validated");
            match kind {
                Kind::Event | Kind::Nemesis => {}
                Kind::Invoke => {
                    let f = event.f.expect("validated");
                    let id = ops.len();
                    ops.push(Op {
                        id,
                        process: event.process,
                        f,
                        invoke: index,
                        complete: None,
                        outcome: Outcome::Info,
                    });
                    pending.entry(event.process).or_default().push(id);
                }
                Kind::Ok | Kind::Fail | Kind::Info => {
                    let queue = pending.entry(event.process).or_default();
                    let position = match event.xid {
                        Some(xid) => queue
                            .iter()
                            .position(|&id| self.events[ops[id].invoke].xid == Some(xid)),
                        None => (!queue.is_empty()).then_some(0),
                    };
                    let Some(position) = position else {
                        let m = format!("completion for process {} without invoke", event.process);
                        return Err((index, m));
                    };
                    let id = queue.remove(position);
                    if let Some(f) = event.f
                        && f != ops[id].f
                    {
                        let m = format!("completion {:?} does not match invoke {:?}", f, ops[id].f);
                        return Err((index, m));
                    }
                    ops[id].complete = Some(index);
                    ops[id].outcome = match kind {
                        Kind::Ok => Outcome::Ok,
                        Kind::Fail => Outcome::Fail,
                        _ => Outcome::Info,
                    };
                }
            }
        }
        ops.shrink_to_fit(); // a long history's ops outlive the pairing
        Ok(ops)
    }

    /// The operations, paired (see the module invariant). Panics only if `parse` was bypassed
    /// with an unpaired completion; use [`History::pair`] for unvalidated histories.
    pub fn ops(&self) -> Vec<Op> {
        self.pair().expect("history was validated by History::parse")
    }

    /// The invoke event of an op.
    pub fn request(&self, op: &Op) -> &Event {
        &self.events[op.invoke]
    }

    /// The completion event of an op, if any.
    pub fn reply(&self, op: &Op) -> Option<&Event> {
        op.complete.map(|i| &self.events[i])
    }

    /// The faults the history records (`nemesis` lines), in order of their start: a `start`
    /// is closed by the next `stop` of the same `fault` text (never closed: it runs to the
    /// end); a line without `phase` is a fault at one instant; a `stop` without a `start`
    /// is a fault from the beginning.
    pub fn faults(&self) -> Vec<Fault> {
        let mut out: Vec<Fault> = Vec::new();
        let mut open: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let end = self.events.len().saturating_sub(1);
        for (index, event) in self.events.iter().enumerate() {
            let Some(name) = event.fault.as_deref().filter(|_| event.kind == Some(Kind::Nemesis))
            else {
                continue;
            };
            let fault = |from, to| Fault { name: name.to_string(), from, to };
            match event.phase {
                None => out.push(fault(index, index)),
                Some(Phase::Start) => {
                    open.entry(name).or_default().push(out.len());
                    out.push(fault(index, end));
                }
                Some(Phase::Stop) => match open.get_mut(name).and_then(Vec::pop) {
                    Some(at) => out[at].to = index,
                    None => out.push(fault(0, index)),
                },
            }
        }
        out.sort_by_key(|f| (f.from, f.to));
        out
    }

    /// Validates every event; the error carries the event index (0-based) as `line`.
    pub fn validate(&self) -> Result<(), HistoryError> {
        self.validated_ops().map(|_| ())
    }

    /// [`History::validate`], returning the paired ops (pairing once, not twice).
    pub(crate) fn validated_ops(&self) -> Result<Vec<Op>, HistoryError> {
        for (index, event) in self.events.iter().enumerate() {
            validate_event(event).map_err(|m| err(index, &m))?;
        }
        self.pair().map_err(|(index, m)| err(index, &m))
    }
}

fn err(line: usize, message: &str) -> HistoryError {
    HistoryError { line, message: message.to_string() }
}

/// Whether the JSON object text `raw` has the key `key`: `"key"` followed by `:`. In valid
/// JSON only a key is followed by a colon, and a quote inside a string is escaped, so a value
/// that merely contains the word cannot match.
fn has_key(raw: &str, key: &str) -> bool {
    let quoted = format!("\"{key}\"");
    raw.match_indices(&quoted).any(|(at, m)| raw[at + m.len()..].trim_start().starts_with(':'))
}

/// A serde_json error, as the message of a line that is not JSON at all or is not `what`.
fn json_error(what: &str, e: &serde_json::Error) -> String {
    if e.is_syntax() || e.is_eof() { format!("not JSON: {e}") } else { format!("{what}: {e}") }
}

fn validate_path(path: &str) -> Result<(), String> {
    if path_is_valid(path) { Ok(()) } else { Err(format!("invalid path {path:?}")) }
}

/// `/`, or `/` followed by non-empty names separated by single slashes (no `//`, no `/` at the
/// end), checked in one pass over the bytes: every path of every event goes through this, and
/// the substring search for `//` cost more than the rest of validating an event.
fn path_is_valid(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    let bytes = path.as_bytes();
    // A slash must be followed by a byte that is not a slash (so it cannot end the path).
    let mut after_slash = false;
    for (i, &b) in bytes.iter().enumerate() {
        let slash = b == b'/';
        if (i == 0 && !slash) || (slash && after_slash) {
            return false;
        }
        after_slash = slash;
    }
    !bytes.is_empty() && !after_slash
}

fn validate_event(event: &Event) -> Result<(), String> {
    let Some(kind) = event.kind else { return Err("missing \"type\"".into()) };
    match kind {
        Kind::Event => {
            let path = event.path.as_deref().ok_or("event without path")?;
            validate_path(path)?;
            if event.event().is_none() {
                return Err("event without \"event\" type".into());
            }
        }
        Kind::Invoke => {
            let f = event.f.ok_or("invoke without \"f\"")?;
            match f {
                F::Multi => {
                    let ops = event.ops().as_ref().ok_or("multi without \"ops\"")?;
                    for sub in ops {
                        if !matches!(sub.f, F::Create | F::Delete | F::Set | F::Check) {
                            return Err(format!("{:?} cannot be inside a multi", sub.f));
                        }
                        validate_path(&sub.path)?;
                    }
                }
                F::Close => {}
                F::Check => return Err("check is only allowed inside a multi".into()),
                _ => validate_path(event.path.as_deref().ok_or("invoke without \"path\"")?)?,
            }
            if f == F::Create && event.path.as_deref() == Some("/") {
                return Err("cannot create /".into());
            }
        }
        Kind::Nemesis => {
            if event.fault.is_none() {
                return Err("nemesis without \"fault\"".into());
            }
        }
        Kind::Ok | Kind::Fail | Kind::Info => {}
    }
    if kind != Kind::Nemesis && (event.fault.is_some() || event.phase.is_some()) {
        return Err("\"fault\" and \"phase\" belong on nemesis lines".into());
    }
    Ok(())
}

/// The parent of a path (`None` for `/`).
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let cut = path.rfind('/')?;
    Some(if cut == 0 { "/" } else { &path[..cut] })
}

/// Error codes the tree alone decides; a `fail` with one of these is checked against the model.
/// Any other error (ConnectionLoss, SessionExpired, ...) only says the op did not happen.
pub fn definite_error(code: &str) -> Option<&'static str> {
    Some(match code {
        "NoNode" | "-101" => "NoNode",
        "NodeExists" | "-110" => "NodeExists",
        "BadVersion" | "-103" => "BadVersion",
        "NotEmpty" | "-111" => "NotEmpty",
        "NoChildrenForEphemerals" | "-108" => "NoChildrenForEphemerals",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass path check accepts exactly what the string tests accepted.
    #[test]
    fn path_check_is_the_string_rules() {
        let rules =
            |p: &str| p == "/" || (p.starts_with('/') && !p.ends_with('/') && !p.contains("//"));
        let samples = [
            "",
            "/",
            "//",
            "///",
            "a",
            "a/",
            "/a",
            "/a/",
            "//a",
            "/a//b",
            "/a/b",
            "/a/b/",
            "a/b",
            "/a/b/c",
            "/ab/c//",
            "/é/x",
            "/a/./b",
            " /a",
            "/a/b//c/d",
        ];
        let mut valid = 0;
        for p in samples {
            assert_eq!(path_is_valid(p), rules(p), "{p:?}");
            valid += usize::from(rules(p));
        }
        assert_eq!(valid, 6, "both kinds among the samples");
    }
}
