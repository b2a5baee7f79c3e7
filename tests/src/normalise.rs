//! One reply body as a line both differential runs compare (`tests/tests/differential.rs`, the
//! hand-written script, and `diffgen`, the generated one): only what must differ between two
//! servers is normalised. ctime and mtime are zeroed, an ephemeral owner is named by the
//! position of its session id in the run's list ("session #n"), and child, ephemeral and
//! whoAmI lists are sorted (ZooKeeper's come from hash sets).

use zkr_core::proto::client::{MultiResult, Response};
use zkr_core::types::Stat;

/// A Stat with its times zeroed and its ephemeral owner named by `sessions`.
pub fn stat(sessions: &[i64], mut s: Stat) -> String {
    s.ctime = 0;
    s.mtime = 0;
    let owner = match sessions.iter().position(|id| *id == s.ephemeral_owner) {
        Some(i) => format!("session #{i}"),
        None => format!("{:#x}", s.ephemeral_owner),
    };
    s.ephemeral_owner = 0;
    format!("{s:?} owner={owner}")
}

/// A reply body; the Stats in it by [`stat`].
pub fn response(sessions: &[i64], body: Response) -> String {
    let stat = |s| stat(sessions, s);
    match body {
        Response::Create2 { path, stat: s } => format!("Create2({path:?}, {})", stat(s)),
        Response::Create { path } => format!("Create({path:?})"),
        Response::Stat(s) => format!("Stat({})", stat(s)),
        Response::GetData { data, stat: s } => format!("GetData({data:?}, {})", stat(s)),
        Response::GetAcl { acl, stat: s } => format!("GetAcl({acl:?}, {})", stat(s)),
        Response::GetEphemerals { mut paths } => {
            paths.sort();
            format!("GetEphemerals({paths:?})")
        }
        Response::GetChildren { mut children } => {
            children.sort();
            format!("GetChildren({children:?})")
        }
        Response::GetChildren2 { mut children, stat: s } => {
            children.sort();
            format!("GetChildren2({children:?}, {})", stat(s))
        }
        Response::WhoAmI(mut ids) => {
            ids.sort_by_key(|i| format!("{i:?}"));
            format!("WhoAmI({ids:?})")
        }
        Response::Multi(results) => {
            let parts: Vec<String> =
                results.into_iter().map(|r| multi_result(sessions, r)).collect();
            format!("Multi{parts:?}")
        }
        other => format!("{other:?}"),
    }
}

/// One result of a multi or multiRead.
pub fn multi_result(sessions: &[i64], r: MultiResult) -> String {
    let stat = |s| stat(sessions, s);
    match r {
        MultiResult::Create2 { path, stat: s } => format!("Create2({path:?}, {})", stat(s)),
        MultiResult::Create { path } => format!("Create({path:?})"),
        MultiResult::SetData { stat: s } => format!("SetData({})", stat(s)),
        MultiResult::GetData { data, stat: s } => format!("GetData({data:?}, {})", stat(s)),
        MultiResult::GetChildren { mut children } => {
            children.sort();
            format!("GetChildren({children:?})")
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_named_by_session_and_times_dropped() {
        let s = Stat { ctime: 5, mtime: 6, ephemeral_owner: 0x77, ..Stat::default() };
        let line = stat(&[0x10, 0x77], s);
        assert!(line.ends_with("owner=session #1"), "{line}");
        assert!(line.contains("ctime: 0") && line.contains("mtime: 0"), "{line}");
        assert!(stat(&[], s).ends_with("owner=0x77"), "an unknown owner stays a number");
        let children = Response::GetChildren { children: vec!["b".into(), "a".into()] };
        assert_eq!(response(&[], children), r#"GetChildren(["a", "b"])"#);
    }
}
