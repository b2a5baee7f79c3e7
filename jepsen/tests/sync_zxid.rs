//! What a sync's reply zxid means: exact (zkr, the default) or a lower bound (Apache
//! ZooKeeper, whose leader answers a sync of its own client like a read, at the zxid its
//! commit processor has applied, which may lag COMMITs it already sent: docs/JEPSEN.md "Sync
//! on Apache ZooKeeper's leader"). The lower bound must decide the histories a lagging leader
//! makes, and must still report a read after the sync that misses a write completed before the
//! sync began.

use zkr_jepsen::history::SyncZxid;
use zkr_jepsen::{Guarantee, History, Options, Validity, Verdict, check};

fn verdict(lines: &[&str], options: &Options) -> Verdict {
    let history = History::parse(&lines.join("\n")).expect("test history parses");
    check(&history, options).expect("well formed")
}

fn with(sync_zxid: SyncZxid) -> Options {
    Options { sync_zxid: Some(sync_zxid), ..Options::default() }
}

fn without_read_zxids(sync_zxid: SyncZxid) -> Options {
    Options { use_read_zxids: false, ..with(sync_zxid) }
}

/// The shape of the 200 s Apache run's dead end, in small: p2's create fails with NodeExists
/// (Apache commits it as an error txn with its own zxid, 0x3) on a follower and completes;
/// then p3 syncs on the leader, whose commit processor has not applied 0x3 yet: the sync
/// replies 0x2 and the read after it too. Nothing the read missed changed the tree. A later
/// read of p3's, once the leader caught up, is at 0x3.
const LAGGING_LEADER: [&str; 10] = [
    r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"x"}"#,
    r#"{"process":1,"type":"ok","f":"create","name":"/a","zxid":2}"#,
    r#"{"process":2,"type":"invoke","f":"create","path":"/a","data":"y"}"#,
    r#"{"process":2,"type":"fail","f":"create","error":"NodeExists","zxid":3}"#,
    r#"{"process":3,"type":"invoke","f":"sync","path":"/a"}"#,
    r#"{"process":3,"type":"ok","f":"sync","zxid":2}"#,
    r#"{"process":3,"type":"invoke","f":"get","path":"/a"}"#,
    r#"{"process":3,"type":"ok","f":"get","data":"x","zxid":2}"#,
    r#"{"process":3,"type":"invoke","f":"get","path":"/a"}"#,
    r#"{"process":3,"type":"ok","f":"get","data":"x","zxid":3}"#,
];

#[test]
fn a_sync_below_a_failed_write_completed_before_it_passes_as_a_lower_bound() {
    let v = verdict(&LAGGING_LEADER, &with(SyncZxid::LowerBound));
    assert_eq!(v.validity, Validity::Valid, "{v:#?}");
    // The same history read with zkr's exact meaning fails as before: the sync must come after
    // the failed create (real time) and just after zxid 0x2 (its reply), and no order has both.
    let v = verdict(&LAGGING_LEADER, &with(SyncZxid::Exact));
    assert_eq!(v.validity, Validity::Invalid, "{v:#?}");
    assert_eq!(v.violations[0].guarantee, Guarantee::SyncReads, "{}", v.violations[0].message);
    // Exact is the default: a history without the header field, checked without the option.
    let v = verdict(&LAGGING_LEADER, &Options::default());
    assert_eq!(v.validity, Validity::Invalid);
    // Without read zxids the sync stays in the search, unpinned: still decided.
    let v = verdict(&LAGGING_LEADER, &without_read_zxids(SyncZxid::LowerBound));
    assert_eq!(v.validity, Validity::Valid, "{v:#?}");
}

/// A genuinely stale read after a sync: p1's set (zxid 0x3) was acknowledged before p3's sync
/// began, and the read after the sync still returns the value it replaced. A lagging Apache
/// leader can do this (a sync there does not wait for anything); the contract does not allow
/// it, so the lower bound must report it, by zxid and, without read zxids, by value.
const STALE_AFTER_SYNC: [&str; 8] = [
    r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"old"}"#,
    r#"{"process":1,"type":"ok","f":"create","name":"/a","zxid":2}"#,
    r#"{"process":1,"type":"invoke","f":"set","path":"/a","data":"new"}"#,
    r#"{"process":1,"type":"ok","f":"set","zxid":3,"stat":{"version":1}}"#,
    r#"{"process":3,"type":"invoke","f":"sync","path":"/a"}"#,
    r#"{"process":3,"type":"ok","f":"sync","zxid":2}"#,
    r#"{"process":3,"type":"invoke","f":"get","path":"/a"}"#,
    r#"{"process":3,"type":"ok","f":"get","data":"old","zxid":2}"#,
];

#[test]
fn a_stale_read_after_a_sync_is_reported_with_either_meaning() {
    for sync_zxid in [SyncZxid::LowerBound, SyncZxid::Exact] {
        for options in [with(sync_zxid), without_read_zxids(sync_zxid)] {
            let v = verdict(&STALE_AFTER_SYNC, &options);
            assert_eq!(v.validity, Validity::Invalid, "{options:?}: {v:#?}");
            // Exact may name the sync itself (op 2) first; the lower bound names the read.
            let named = if sync_zxid == SyncZxid::Exact { 2 } else { 3 };
            let sync_reads = |v: &&zkr_jepsen::Violation| v.guarantee == Guarantee::SyncReads;
            let mut found = v.violations.iter().filter(sync_reads);
            let marked = found.any(|v| v.marked.contains(&3) || v.marked.contains(&named));
            assert!(marked, "{options:?}: read after sync, op 3 or {named} marked: {v:#?}");
        }
    }
    // In the lower bound the sync itself is not the violation (its zxid 0x2 only says where
    // the leader was): only the read is named, with the write it missed and the sync.
    let v = verdict(&STALE_AFTER_SYNC, &with(SyncZxid::LowerBound));
    assert_eq!(v.violations.len(), 1, "{v:#?}");
    let sentence = &v.violations[0].explanation.sentence;
    assert!(sentence.contains("after its sync"), "{sentence}");
    assert!(sentence.contains("acknowledged at zxid 0x3"), "{sentence}");
}

/// The stale read may carry a fresh zxid and still return the old value: the search, not the
/// zxid checks, must catch it (the read is pinned at 0x3, after the set).
#[test]
fn an_old_value_read_after_a_sync_is_reported_as_a_lower_bound() {
    let mut lines = STALE_AFTER_SYNC;
    lines[7] = r#"{"process":3,"type":"ok","f":"get","data":"old","zxid":3}"#;
    let v = verdict(&lines, &with(SyncZxid::LowerBound));
    assert_eq!(v.validity, Validity::Invalid, "{v:#?}");
    assert!(v.violations.iter().any(|v| v.marked.contains(&3)), "the read is marked: {v:#?}");
}

/// The sync's zxid is still a floor of what its session sees next: a read below it went back.
#[test]
fn a_read_below_its_sync_reply_is_reported_as_a_lower_bound() {
    let lines = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"old"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/a","zxid":1}"#,
        r#"{"process":2,"type":"invoke","f":"sync","path":"/a"}"#,
        r#"{"process":1,"type":"invoke","f":"set","path":"/a","data":"new"}"#,
        r#"{"process":1,"type":"ok","f":"set","zxid":2,"stat":{"version":1}}"#,
        r#"{"process":2,"type":"ok","f":"sync","zxid":2}"#,
        r#"{"process":2,"type":"invoke","f":"get","path":"/a"}"#,
        r#"{"process":2,"type":"ok","f":"get","data":"old","zxid":1}"#,
    ];
    let v = verdict(&lines, &with(SyncZxid::LowerBound));
    assert_eq!(v.validity, Validity::Invalid, "{v:#?}");
    assert_eq!(v.violations[0].guarantee, Guarantee::SyncReads, "{}", v.violations[0].message);
    assert!(v.violations[0].explanation.sentence.contains("seen zxid 0x2"));
}

/// The history says what its syncs mean (`jepsen test` writes it), the option overrides it,
/// and a header without the field means exact, so zkr's histories are written as before.
#[test]
fn the_header_carries_the_meaning_and_the_option_overrides_it() {
    let header = r#"{"zkr_history":1,"sync_zxid":"lower-bound"}"#;
    let mut lines = vec![header];
    lines.extend(LAGGING_LEADER);
    let history = History::parse(&lines.join("\n")).expect("parses");
    assert_eq!(history.header.sync_zxid, SyncZxid::LowerBound);
    let written = history.to_jsonl();
    assert!(written.lines().next().unwrap().contains(r#""sync_zxid":"lower-bound""#), "{written}");
    assert_eq!(History::parse(&written).expect("parses"), history, "written back as read");
    let valid = check(&history, &Options::default()).expect("well formed");
    assert_eq!(valid.validity, Validity::Valid, "{valid:#?}");
    let strict = check(&history, &with(SyncZxid::Exact)).expect("well formed");
    assert_eq!(strict.validity, Validity::Invalid);
    let plain = History::parse(&LAGGING_LEADER.join("\n")).expect("parses");
    assert_eq!(plain.header.sync_zxid, SyncZxid::Exact);
    assert!(!plain.to_jsonl().contains("sync_zxid"), "{}", plain.to_jsonl());
    let bad = r#"{"zkr_history":1,"sync_zxid":"loose"}"#;
    assert!(History::parse(bad).is_err(), "an unknown meaning is refused");
    assert_eq!("lower-bound".parse::<SyncZxid>(), Ok(SyncZxid::LowerBound));
    assert!("loose".parse::<SyncZxid>().is_err());
}
