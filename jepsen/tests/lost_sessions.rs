//! Ops of unknown outcome from abandoned sessions: the search must stay small, and stay sound.
//!
//! `jepsen test` abandons a session whose call timed out, so every fault leaves a burst of
//! `info` ops (one per client) that no later op of their session bounds: each may take effect
//! at any later point, or never, and so may its session's close. A 200 s run with 10 clients
//! (seed 21, issue 10) ended unknown: the search offered each of them before every
//! acknowledged create of the same parent (a create "touched" the parent, so every create and
//! delete under it seemed not to commute with every other) and every `close` before every op
//! (its footprint was unknown), and explored the subsets of some 60 pending ones at each step
//! back from a dead end. Creates of named children only add to their parent's cversion, which
//! commutes, and a close removes only its session's ephemerals (and removes nothing while its
//! session owns none). The history below has that shape in small: it was unknown with the old
//! search after 44 s (2,000,000 configurations); it is decided in a few.

use zkr_jepsen::{Guarantee, History, Options, Validity, Verdict, check};

/// An event of `process`: its `type` and the other fields (JSON, without braces).
fn ev(process: u64, kind: &str, fields: &str) -> String {
    format!(r#"{{"process":{process},"type":"{kind}",{fields}}}"#)
}

/// /r (children observed) with /r/k; p20 sets /r/k to "X" with an outcome unknown, then gets
/// a reply to another op (so the set took effect before then, or never); `lost` abandoned
/// sessions each lose an ephemeral create of their own child of /r and their close; p30
/// creates `creates` children one after another; p31 finally reads /r/k = `read`. Only the
/// set placed before p30's first create explains "X".
fn lost_burst(lost: usize, creates: usize, read: &str) -> String {
    let header = r#"{"zkr_history":1,"initial":[{"path":"/r","data":"","version":0,"cversion":1},
        {"path":"/r/k","data":"","version":0,"cversion":0}]}"#;
    let mut events = vec![header.replace("\n        ", "")];
    events.push(ev(40, "invoke", r#""f":"children","path":"/r""#));
    events.push(ev(40, "ok", r#""f":"children","children":["k"]"#));
    events.push(ev(20, "invoke", r#""f":"set","path":"/r/k","data":"X","version":-1"#));
    events.push(ev(20, "info", r#""f":"set""#));
    for i in 0..lost {
        let p = 1 + i as u64;
        let create = format!(r#""f":"create","path":"/r/x{i}","data":"","mode":"ephemeral""#);
        events.push(ev(p, "invoke", &create));
        events.push(ev(p, "info", r#""f":"create""#));
        events.push(ev(p, "invoke", r#""f":"close""#));
    }
    events.push(ev(20, "invoke", r#""f":"exists","path":"/z""#));
    events.push(ev(20, "ok", r#""f":"exists""#));
    for j in 0..creates {
        let create = format!(r#""f":"create","path":"/r/a{j}","data":"","mode":"persistent""#);
        events.push(ev(30, "invoke", &create));
        let reply = format!(r#""f":"create","name":"/r/a{j}","zxid":{}"#, j + 1);
        events.push(ev(30, "ok", &reply));
    }
    events.push(ev(31, "invoke", r#""f":"get","path":"/r/k""#));
    events.push(ev(31, "ok", &format!(r#""f":"get","data":"{read}","zxid":{creates}"#)));
    events.join("\n") + "\n"
}

fn verdict(text: &str, max_configs: u64) -> Verdict {
    let history = History::parse(text).expect("history parses");
    let options = Options { max_configs, ..Options::default() };
    check(&history, &options).expect("history is well formed")
}

/// The shape that thrashed, decided within a small budget (the old search was unknown with
/// 20 times this one, and with the default).
#[test]
fn a_burst_of_lost_sessions_is_decided() {
    let v = verdict(&lost_burst(10, 20, "X"), 100_000);
    assert_eq!(v.validity, Validity::Valid, "{v:#?}");
    assert!(v.stats.configs < 1_000, "{} configurations", v.stats.configs);
}

/// The same shape hiding a value nobody wrote is still a violation.
#[test]
fn a_burst_of_lost_sessions_does_not_hide_an_invented_value() {
    let v = verdict(&lost_burst(10, 20, "Y"), 100_000);
    assert_eq!(v.validity, Validity::Invalid, "{v:#?}");
    assert_eq!(v.violations[0].guarantee, Guarantee::WriteLinearizability);
    assert!(v.violations[0].message.contains(r#"read "Y" but /r/k holds"#));
}

/// p1 creates the ephemeral /r/e and closes its session, both with outcomes unknown; p2 then
/// reads /r/e again and again, seeing `seen` (true: it exists; its reads never go back).
fn lost_ephemeral(seen: &[bool]) -> String {
    let header =
        r#"{"zkr_history":1,"initial":[{"path":"/r","data":"","version":0,"cversion":0}]}"#;
    let mut events = vec![header.to_string()];
    let create = r#""f":"create","path":"/r/e","data":"d","mode":"ephemeral""#;
    events.push(ev(1, "invoke", create));
    events.push(ev(1, "info", r#""f":"create""#));
    events.push(ev(1, "invoke", r#""f":"close""#));
    for &exists in seen {
        let p = 2;
        events.push(ev(p, "invoke", r#""f":"get","path":"/r/e""#));
        let reply = if exists {
            r#""f":"get","data":"d","stat":{"version":0,"ephemeral_owner":1}"#
        } else {
            r#""f":"get","error":"NoNode""#
        };
        events.push(ev(p, if exists { "ok" } else { "fail" }, reply));
    }
    events.join("\n") + "\n"
}

/// A close of unknown outcome is placed once its session owns something: here after the
/// ephemeral was seen, so that it can be seen gone.
#[test]
fn a_lost_close_removes_its_ephemeral() {
    for seen in [&[false, true, false][..], &[true, false], &[true, true, false, false]] {
        let v = verdict(&lost_ephemeral(seen), 100_000);
        assert_eq!(v.validity, Validity::Valid, "{seen:?}: {v:#?}");
    }
}

/// Created once and removed once: it cannot come back.
#[test]
fn a_lost_ephemeral_cannot_come_back() {
    let v = verdict(&lost_ephemeral(&[true, false, true]), 100_000);
    assert_eq!(v.validity, Validity::Invalid, "{v:#?}");
}

/// p1 loses a create of /r/x; p30 creates /r/a0 and /r/a1; p40 lists /r after each create.
/// Creates of named children commute with each other, not with a listing of their parent.
fn listed(first: &[&str], second: &[&str]) -> String {
    let header =
        r#"{"zkr_history":1,"initial":[{"path":"/r","data":"","version":0,"cversion":0}]}"#;
    let mut events = vec![header.to_string()];
    events.push(ev(1, "invoke", r#""f":"create","path":"/r/x","data":"","mode":"persistent""#));
    events.push(ev(1, "info", r#""f":"create""#));
    for (j, children) in [first, second].iter().enumerate() {
        let create = format!(r#""f":"create","path":"/r/a{j}","data":"","mode":"persistent""#);
        events.push(ev(30, "invoke", &create));
        events.push(ev(30, "ok", &format!(r#""f":"create","name":"/r/a{j}","zxid":{}"#, j + 1)));
        events.push(ev(40, "invoke", r#""f":"children","path":"/r""#));
        let names: Vec<String> = children.iter().map(|c| format!("{c:?}")).collect();
        let reply = format!(r#""f":"children","children":[{}],"zxid":{}"#, names.join(","), j + 1);
        events.push(ev(40, "ok", &reply));
    }
    events.join("\n") + "\n"
}

#[test]
fn a_lost_create_shows_in_the_parents_listing() {
    for (first, second) in [
        (&["a0"][..], &["a0", "a1"][..]),
        (&["a0"], &["a0", "a1", "x"]),
        (&["a0", "x"], &["a0", "a1", "x"]),
    ] {
        let v = verdict(&listed(first, second), 100_000);
        assert_eq!(v.validity, Validity::Valid, "{first:?} {second:?}: {v:#?}");
    }
    // A persistent child does not go away by itself.
    let v = verdict(&listed(&["a0", "x"], &["a0", "a1"]), 100_000);
    assert_eq!(v.validity, Validity::Invalid, "{v:#?}");
}
