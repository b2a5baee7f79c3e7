//! Recording: how ZooKeeper client requests, replies and watch notifications (as `zkr-core`'s
//! wire codec decodes them) become lines of the history format. Used by the simulator's
//! clients and by `jepsen test`'s clients over real sockets, so both record alike.
//!
//! Rules (they follow ZooKeeper's client API, which is what the checker models):
//! - an `exists` answered `NoNode` is an `ok` without a stat;
//! - a `multi` whose results hold errors is a `fail` carrying the first real error;
//! - every completion carries the reply header's zxid (a write's own zxid; for a read, the
//!   serving server's last applied zxid).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use zkr_core::proto::client::{EventType, MultiResult, ReplyHeader, Request, Response};
use zkr_core::proto::error::ZkError;
use zkr_core::types::Stat;

use crate::history::{
    CreateMode, Event, F, Kind, Rare, Stat as HStat, SubOp, SubResult, WatchType,
};

/// The history's create mode for ZooKeeper's create flags.
pub fn mode_of(flags: i32) -> CreateMode {
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
        other => unreachable!("recorders build multis of create/set/delete/check only: {other:?}"),
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
        Request::Multi(ops) => e.rare_mut().ops = Some(ops.iter().map(sub_op).collect()),
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
        rare: error.map(|e| Box::new(Rare { error: Some(e.to_string()), ..Rare::default() })),
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

/// ZooKeeper's name of an error code (`NoNode`), or the number of a code it does not define.
/// Each defined code's name is formatted once (`{:?}` through the formatter for every failed
/// reply was two fifths of recording a completion) and copied from the table after.
fn error_name(code: i32) -> String {
    static NAMES: OnceLock<Vec<(i32, String)>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let named = (ERROR_CODE_MIN..=0).filter_map(|c| ZkError::from_code(c).map(|e| (c, e)));
        let names: Vec<(i32, String)> = named.map(|(c, e)| (c, format!("{e:?}"))).collect();
        assert!(names.is_sorted_by_key(|(c, _)| *c), "codes ascending, for the search");
        names
    });
    match names.binary_search_by_key(&code, |(c, _)| *c) {
        Ok(i) => names[i].1.clone(),
        Err(_) => code.to_string(),
    }
}

/// Below every code ZooKeeper defines (its lowest is -127); `error_names_are_the_debug_names`
/// fails if one falls outside the table.
const ERROR_CODE_MIN: i32 = -1000;

/// The completion line of a reply. `versions` learns the versions the reply shows.
pub fn completion(
    process: u64,
    req: &Request,
    header: &ReplyHeader,
    body: Option<&Response>,
    versions: &mut BTreeMap<String, i32>,
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
        e.rare_mut().error = Some(error_name(header.err));
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
            versions.insert(p.to_string(), s.version);
        }
        stat(s)
    };
    match body {
        Some(Response::Create { path }) => e.rare_mut().name = Some(path.clone()),
        Some(Response::Create2 { path, stat: s }) => {
            (e.rare_mut().name, e.stat) = (Some(path.clone()), Some(Box::new(stat(s))));
        }
        Some(Response::Stat(s)) => e.stat = Some(Box::new(remember(s))),
        Some(Response::GetData { data, stat: s }) => {
            (e.data, e.stat) = (Some(text(data).unwrap_or_default()), Some(Box::new(remember(s))));
        }
        Some(Response::GetChildren { children }) => e.rare_mut().children = Some(sorted(children)),
        Some(Response::GetChildren2 { children, stat: s }) => {
            (e.rare_mut().children, e.stat) = (Some(sorted(children)), Some(Box::new(remember(s))));
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
                sub.error = Some(error_name(err.code()));
                let real = !matches!(err, ZkError::Ok | ZkError::RuntimeInconsistency);
                if real && first_error.is_none() {
                    first_error = Some(error_name(err.code()));
                }
            }
            _ => {}
        }
        subs.push(sub);
    }
    if results.iter().any(|r| matches!(r, MultiResult::Error(_))) {
        e.kind = Some(Kind::Fail);
        e.rare_mut().error = Some(first_error.unwrap_or_else(|| "RuntimeInconsistency".into()));
    }
    e.rare_mut().results = Some(subs);
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
        rare: Some(Box::new(Rare { event: Some(t), ..Rare::default() })),
        // -1: no zxid (ZooKeeper sends it for events triggered by setWatches).
        zxid: (zxid >= 0).then_some(zxid),
        time: Some(time_us),
        ..Event::default()
    }
}

/// True if the request changes the tree (its reply zxid is the txn's own): the server's own
/// definition ([`zkr_core::proto::client::OpCode::is_write`]), so the history checks exactly
/// the writes the server logs (this list once left out setACL).
pub fn is_write(req: &Request) -> bool {
    zkr_core::proto::codec::request_op(req).is_write()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A code's recorded name is the name `{:?}` gives it, for every code ZooKeeper defines
    /// (and the number for one it does not), however often asked.
    #[test]
    fn error_names_are_the_debug_names() {
        let mut named = 0;
        for code in (-5000..=5000).chain([i32::MIN, i32::MAX]) {
            let want =
                ZkError::from_code(code).map_or_else(|| code.to_string(), |e| format!("{e:?}"));
            assert_eq!(error_name(code), want, "code {code}");
            assert_eq!(error_name(code), want, "code {code}, asked again");
            named += usize::from(ZkError::from_code(code).is_some());
        }
        assert_eq!(named, 32, "every defined code seen");
    }
}
