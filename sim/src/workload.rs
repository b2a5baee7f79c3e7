//! The client workload and its history: which request a client issues next (from the seed's
//! op mix over a small path space), and how requests, replies and watch events become lines of
//! the jepsen history format (`zkr_jepsen::history`).
//!
//! Path space: `/k0../k{keys-1}`; under each key, children `c0..c3` and ephemerals `e0..e1`;
//! sequential nodes `/seq/s<k>-…` live under `/seq`, which every client creates first and
//! nobody deletes; ephemeral sequentials `/e<process>/q<k>-…` under a parent of their own
//! session. So no sequential create ever follows a delete under the same parent: ZooKeeper
//! numbers sequentials with the parent's stored cversion, which deletes do not advance and a
//! re-created parent resets, and the checker's model does not follow either (reported).
//! Data values are unique per client op
//! (`p<process>.<n>`), which keeps the checker's search narrow.
//!
//! Recording rules (they follow ZooKeeper's client API, which is what the checker models):
//! - an `exists` answered `NoNode` is an `ok` without a stat;
//! - a `multi` whose results hold errors is a `fail` carrying the first real error;
//! - every completion carries the reply header's zxid (a write's own zxid; for a read, the
//!   serving server's last applied zxid);
//! - a session's end is a `close` op (see `client` for when it is invoked).

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use zkr_core::proto::client::{EventType, MultiResult, OpCode, ReplyHeader, Request, Response};
use zkr_core::proto::error::ZkError;
use zkr_core::types::{Acl, Stat};
use zkr_jepsen::history::{CreateMode, Event, F, Kind, Stat as HStat, SubOp, SubResult, WatchType};

use crate::swarm::{OP_KINDS, OpKind, Swarm};

/// The parent of every sequential node (never deleted).
pub const SEQ_PARENT: &str = "/seq";

/// What a client remembers to aim its versioned ops.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// The client already asked for `/seq`.
    pub seq_parent_requested: bool,
    /// The client already asked for `/e<process>`, the parent of its ephemeral sequentials.
    pub ephemeral_parent_requested: bool,
    /// Last version seen per path.
    pub versions: BTreeMap<String, i32>,
    /// Values written so far (for unique data).
    pub counter: u64,
}

/// Picks the next op kind from the mix.
pub fn pick_kind(swarm: &Swarm, rng: &mut ChaCha8Rng) -> OpKind {
    let total: u32 = swarm.mix.iter().sum();
    assert!(total > 0, "the mix has at least one op kind");
    let mut x = rng.random_range(0..total);
    for (i, w) in swarm.mix.iter().enumerate() {
        if x < *w {
            return OP_KINDS[i];
        }
        x -= w;
    }
    unreachable!("x < total")
}

fn key_index(swarm: &Swarm, rng: &mut ChaCha8Rng) -> u32 {
    rng.random_range(0..swarm.keys)
}

fn key(swarm: &Swarm, rng: &mut ChaCha8Rng) -> String {
    format!("/k{}", rng.random_range(0..swarm.keys))
}

fn child(swarm: &Swarm, rng: &mut ChaCha8Rng) -> String {
    format!("{}/c{}", key(swarm, rng), rng.random_range(0..4))
}

fn any_path(swarm: &Swarm, rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..10) {
        0..=3 => key(swarm, rng),
        4..=7 => child(swarm, rng),
        _ => format!("{}/e{}", key(swarm, rng), rng.random_range(0..2)),
    }
}

fn create(path: String, data: String, flags: i32, rng: &mut ChaCha8Rng) -> Request {
    let op = if rng.random_bool(0.5) { OpCode::Create } else { OpCode::Create2 };
    let acl = Acl::open_unsafe();
    Request::Create { op, path, data: Some(data.into_bytes()), acl, flags, ttl: -1 }
}

fn version(memory: &Memory, path: &str, rng: &mut ChaCha8Rng) -> i32 {
    match memory.versions.get(path) {
        Some(v) if rng.random_bool(0.8) => *v,
        _ => rng.random_range(0..3),
    }
}

/// The next request of a client (never `CloseSession`; the caller handles `OpKind::Close`).
pub fn next_request(
    kind: OpKind,
    swarm: &Swarm,
    memory: &mut Memory,
    process: u64,
    rng: &mut ChaCha8Rng,
) -> Request {
    memory.counter += 1;
    let data = format!("p{process}.{}", memory.counter);
    if !memory.seq_parent_requested {
        memory.seq_parent_requested = true;
        return create(SEQ_PARENT.to_string(), data, 0, rng);
    }
    match kind {
        OpKind::Create => create(key(swarm, rng), data, 0, rng),
        OpKind::CreateChild => create(child(swarm, rng), data, 0, rng),
        OpKind::CreateSequential => {
            create(format!("{SEQ_PARENT}/s{}-", key_index(swarm, rng)), data, 2, rng)
        }
        OpKind::CreateEphemeral => {
            let path = format!("{}/e{}", key(swarm, rng), rng.random_range(0..2));
            create(path, data, 1, rng)
        }
        OpKind::CreateEphemeralSequential => {
            if !memory.ephemeral_parent_requested {
                memory.ephemeral_parent_requested = true;
                return create(format!("/e{process}"), data, 0, rng);
            }
            create(format!("/e{process}/q{}-", key_index(swarm, rng)), data, 3, rng)
        }
        OpKind::Set | OpKind::SetVersioned => {
            let path = if rng.random_bool(0.5) { key(swarm, rng) } else { child(swarm, rng) };
            let v = if kind == OpKind::Set { -1 } else { version(memory, &path, rng) };
            Request::SetData { path, data: Some(data.into_bytes()), version: v }
        }
        OpKind::Delete | OpKind::DeleteVersioned => {
            let path = any_path(swarm, rng);
            let v = if kind == OpKind::Delete { -1 } else { version(memory, &path, rng) };
            Request::Delete { path, version: v }
        }
        OpKind::Multi => multi(swarm, memory, &data, rng),
        OpKind::Get => Request::GetData {
            path: any_path(swarm, rng),
            watch: rng.random_bool(swarm.watch_probability),
        },
        OpKind::Exists => Request::Exists {
            path: any_path(swarm, rng),
            watch: rng.random_bool(swarm.watch_probability),
        },
        OpKind::Children => {
            let op = if rng.random_bool(0.5) { OpCode::GetChildren } else { OpCode::GetChildren2 };
            let watch = rng.random_bool(swarm.watch_probability);
            Request::GetChildren { op, path: key(swarm, rng), watch }
        }
        OpKind::Sync => Request::Sync { path: key(swarm, rng) },
        OpKind::Close => unreachable!("closeSession is issued by the client itself"),
    }
}

fn multi(swarm: &Swarm, memory: &Memory, data: &str, rng: &mut ChaCha8Rng) -> Request {
    let n = rng.random_range(2..=3);
    let mut ops = Vec::new();
    for i in 0..n {
        let path = child(swarm, rng);
        let sub_data = format!("{data}.{i}");
        ops.push(match rng.random_range(0..4) {
            0 => {
                let acl = Acl::open_unsafe();
                let data = Some(sub_data.into_bytes());
                Request::Create { op: OpCode::Create, path, data, acl, flags: 0, ttl: -1 }
            }
            1 => Request::SetData { path, data: Some(sub_data.into_bytes()), version: -1 },
            2 => Request::Delete { path, version: -1 },
            _ => {
                let version = version(memory, &path, rng);
                Request::Check { path, version }
            }
        });
    }
    Request::Multi(ops)
}

fn mode_of(flags: i32) -> CreateMode {
    match flags {
        1 => CreateMode::Ephemeral,
        2 => CreateMode::PersistentSequential,
        3 => CreateMode::EphemeralSequential,
        _ => CreateMode::Persistent,
    }
}

fn text(data: &Option<Vec<u8>>) -> Option<String> {
    data.as_ref().map(|d| String::from_utf8_lossy(d).into_owned())
}

fn sub_op(req: &Request) -> SubOp {
    let mut sub = SubOp { f: F::Check, path: String::new(), data: None, version: None, mode: None };
    match req {
        Request::Create { path, data, flags, .. } => {
            (sub.f, sub.path, sub.data, sub.mode) =
                (F::Create, path.clone(), text(data), Some(mode_of(*flags)));
        }
        Request::SetData { path, data, version } => {
            (sub.f, sub.path, sub.data, sub.version) =
                (F::Set, path.clone(), text(data), Some(*version));
        }
        Request::Delete { path, version } => {
            (sub.f, sub.path, sub.version) = (F::Delete, path.clone(), Some(*version));
        }
        Request::Check { path, version } => {
            (sub.f, sub.path, sub.version) = (F::Check, path.clone(), Some(*version));
        }
        other => unreachable!("not generated inside a multi: {other:?}"),
    }
    sub
}

/// The jepsen function of a request, or `None` for requests that are not recorded (ping).
pub fn function(req: &Request) -> Option<F> {
    Some(match req {
        Request::Create { .. } => F::Create,
        Request::Delete { .. } => F::Delete,
        Request::SetData { .. } => F::Set,
        Request::GetData { .. } => F::Get,
        Request::Exists { .. } => F::Exists,
        Request::GetChildren { .. } => F::Children,
        Request::Sync { .. } => F::Sync,
        Request::Multi(_) => F::Multi,
        Request::CloseSession => F::Close,
        _ => return None,
    })
}

/// The `invoke` line of a request.
pub fn invoke(process: u64, xid: i32, req: &Request, time_us: u64) -> Event {
    let mut e = Event {
        process,
        kind: Some(Kind::Invoke),
        f: function(req),
        xid: Some(xid as i64),
        time: Some(time_us),
        ..Event::default()
    };
    match req {
        Request::Create { path, data, flags, .. } => {
            (e.path, e.data, e.mode) = (Some(path.clone()), text(data), Some(mode_of(*flags)));
        }
        Request::SetData { path, data, version } => {
            (e.path, e.data, e.version) = (Some(path.clone()), text(data), Some(*version));
        }
        Request::Delete { path, version } => {
            (e.path, e.version) = (Some(path.clone()), Some(*version))
        }
        Request::GetData { path, watch }
        | Request::Exists { path, watch }
        | Request::GetChildren { path, watch, .. } => {
            (e.path, e.watch) = (Some(path.clone()), *watch)
        }
        Request::Sync { path } => e.path = Some(path.clone()),
        Request::Multi(ops) => e.ops = Some(ops.iter().map(sub_op).collect()),
        _ => {}
    }
    e
}

/// A `close` invoke for a session that may be ending (not a request on the wire).
pub fn close_invoke(process: u64, time_us: u64) -> Event {
    Event {
        process,
        kind: Some(Kind::Invoke),
        f: Some(F::Close),
        time: Some(time_us),
        ..Event::default()
    }
}

/// A completion line without reply facts (`info` after a timeout, or the end of a `close`).
pub fn bare(
    process: u64,
    kind: Kind,
    f: F,
    xid: Option<i32>,
    error: Option<&str>,
    time_us: u64,
) -> Event {
    Event {
        process,
        kind: Some(kind),
        f: Some(f),
        xid: xid.map(i64::from),
        error: error.map(str::to_string),
        time: Some(time_us),
        ..Event::default()
    }
}

/// Converts a server `Stat` to the history's.
pub fn stat(s: &Stat) -> HStat {
    HStat {
        czxid: Some(s.czxid),
        mzxid: Some(s.mzxid),
        pzxid: Some(s.pzxid),
        version: Some(s.version),
        cversion: Some(s.cversion),
        ephemeral_owner: Some(s.ephemeral_owner),
        data_length: Some(s.data_length),
        num_children: Some(s.num_children),
    }
}

fn error_name(code: i32) -> String {
    ZkError::from_code(code).map_or_else(|| code.to_string(), |e| format!("{e:?}"))
}

/// The completion line of a reply. `memory` learns the versions the reply shows.
pub fn completion(
    process: u64,
    req: &Request,
    header: &ReplyHeader,
    body: Option<&Response>,
    memory: &mut Memory,
    time_us: u64,
) -> Event {
    let f = function(req).expect("recorded requests have a function");
    let mut e = bare(process, Kind::Ok, f, Some(header.xid), None, time_us);
    e.zxid = Some(header.zxid);
    if header.err != 0 {
        if f == F::Exists && header.err == ZkError::NoNode.code() {
            return e;
        }
        e.kind = Some(Kind::Fail);
        e.error = Some(error_name(header.err));
        return e;
    }
    let path = match req {
        Request::SetData { path, .. }
        | Request::GetData { path, .. }
        | Request::Exists { path, .. }
        | Request::GetChildren { path, .. } => Some(path.as_str()),
        _ => None,
    };
    let mut remember = |s: &Stat| {
        if let Some(p) = path {
            memory.versions.insert(p.to_string(), s.version);
        }
        stat(s)
    };
    match body {
        Some(Response::Create { path }) => e.name = Some(path.clone()),
        Some(Response::Create2 { path, stat: s }) => {
            (e.name, e.stat) = (Some(path.clone()), Some(stat(s)));
        }
        Some(Response::Stat(s)) => e.stat = Some(remember(s)),
        Some(Response::GetData { data, stat: s }) => {
            (e.data, e.stat) = (Some(text(data).unwrap_or_default()), Some(remember(s)));
        }
        Some(Response::GetChildren { children }) => e.children = Some(sorted(children)),
        Some(Response::GetChildren2 { children, stat: s }) => {
            (e.children, e.stat) = (Some(sorted(children)), Some(remember(s)));
        }
        Some(Response::Multi(results)) => multi_completion(&mut e, results),
        _ => {}
    }
    e
}

fn sorted(children: &[String]) -> Vec<String> {
    let mut c = children.to_vec();
    c.sort();
    c
}

fn multi_completion(e: &mut Event, results: &[MultiResult]) {
    let mut subs = Vec::new();
    let mut first_error = None;
    for r in results {
        let mut sub = SubResult::default();
        match r {
            MultiResult::Create { path } => sub.name = Some(path.clone()),
            MultiResult::Create2 { path, stat: s } => {
                (sub.name, sub.stat) = (Some(path.clone()), Some(stat(s)))
            }
            MultiResult::SetData { stat: s } => sub.stat = Some(stat(s)),
            MultiResult::Error(err) => {
                sub.error = Some(format!("{err:?}"));
                let real = !matches!(err, ZkError::Ok | ZkError::RuntimeInconsistency);
                if real && first_error.is_none() {
                    first_error = Some(format!("{err:?}"));
                }
            }
            _ => {}
        }
        subs.push(sub);
    }
    if results.iter().any(|r| matches!(r, MultiResult::Error(_))) {
        e.kind = Some(Kind::Fail);
        e.error = Some(first_error.unwrap_or_else(|| "RuntimeInconsistency".into()));
    }
    e.results = Some(subs);
}

/// The `event` line of a watch notification.
pub fn watch_event(process: u64, zxid: i64, event: EventType, path: &str, time_us: u64) -> Event {
    let t = match event {
        EventType::NodeCreated => WatchType::NodeCreated,
        EventType::NodeDeleted => WatchType::NodeDeleted,
        EventType::NodeDataChanged => WatchType::NodeDataChanged,
        EventType::NodeChildrenChanged => WatchType::NodeChildrenChanged,
    };
    Event {
        process,
        kind: Some(Kind::Event),
        path: Some(path.to_string()),
        event: Some(t),
        // -1: no zxid (ZooKeeper sends it for events triggered by setWatches).
        zxid: (zxid >= 0).then_some(zxid),
        time: Some(time_us),
        ..Event::default()
    }
}

/// True if the request changes the tree (its reply zxid is the txn's own).
pub fn is_write(req: &Request) -> bool {
    matches!(
        req,
        Request::Create { .. }
            | Request::Delete { .. }
            | Request::SetData { .. }
            | Request::Multi(_)
            | Request::CloseSession
    )
}
