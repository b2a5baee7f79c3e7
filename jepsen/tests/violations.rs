//! The checker must be shown to fail: hand-made histories that break each guarantee, with the
//! verdict and the explanation asserted; and valid histories full of concurrency and
//! indeterminate ops that must pass. Each history is written in the documented JSON-lines
//! format, so these double as examples of it.

use zkr_jepsen::{Guarantee, History, Options, Validity, check, report};

fn run(lines: &[&str], options: &Options) -> zkr_jepsen::Verdict {
    let text = lines.join("\n");
    let history = History::parse(&text).expect("test history parses");
    let verdict = check(&history, options).expect("well formed");
    // The reports must render for every verdict.
    let _ = report::text(&history, &verdict);
    let html = report::html(&history, &verdict);
    if !verdict.is_valid() {
        keep_page(&html);
    }
    verdict
}

/// Keeps the HTML page of each violation in `target/tmp/reports/violations/<test>.html`; with
/// `ZKR_SCREENSHOTS=1` and Chromium installed, also its screenshot (`<test>.png`), asserted to
/// be drawn. That renders one page per kind of violation, for a person to look at.
fn keep_page(html: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("reports/violations");
    let name = std::thread::current().name().unwrap_or("page").replace("::", "-");
    std::fs::create_dir_all(&dir).expect("report dir");
    let page = dir.join(format!("{name}.html"));
    std::fs::write(&page, html).expect("write page");
    if std::env::var_os("ZKR_SCREENSHOTS").is_none() {
        return;
    }
    let png = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    let status = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        .arg("--window-size=1200,700")
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("ZKR_SCREENSHOTS needs chromium on PATH");
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "{}: {size} bytes; {status:?}", png.display());
}

fn invalid(lines: &[&str], options: &Options) -> zkr_jepsen::Violation {
    let verdict = run(lines, options);
    assert_eq!(verdict.validity, Validity::Invalid, "expected a violation: {verdict:#?}");
    verdict.violations[0].clone()
}

/// The explanation names each (op, role) and its sentence says each of `words`.
fn explains(v: &zkr_jepsen::Violation, causes: &[(usize, &str)], words: &[&str]) {
    let e = &v.explanation;
    for (op, role) in causes {
        let named = e.causes.iter().any(|c| c.op == *op && c.role.contains(role));
        assert!(named, "op {op} as {role:?} not in {e:#?}");
    }
    for w in words {
        assert!(e.sentence.contains(w), "{w:?} not in {:?}", e.sentence);
    }
}

fn valid(lines: &[&str], options: &Options) {
    let verdict = run(lines, options);
    assert_eq!(verdict.validity, Validity::Valid, "expected valid: {verdict:#?}");
}

fn zxids() -> Options {
    Options::default()
}

fn no_read_zxids() -> Options {
    Options { use_read_zxids: false, ..Options::default() }
}

// ---- lost write ---------------------------------------------------------------------------

/// An acknowledged set is lost: the next set starts from the version before it.
#[test]
fn lost_write_is_caught() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"x"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/a"}"#,
        r#"{"process":1,"type":"invoke","f":"set","path":"/a","data":"y"}"#,
        r#"{"process":1,"type":"ok","f":"set","stat":{"version":1}}"#,
        r#"{"process":2,"type":"invoke","f":"set","path":"/a","data":"z"}"#,
        r#"{"process":2,"type":"ok","f":"set","stat":{"version":1}}"#,
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::WriteLinearizability);
    assert!(v.message.contains("version"), "{}", v.message);
    assert!(!v.marked.is_empty());
    // The overwritten write (p1, version 1) and the one that reused its version.
    explains(&v, &[(1, "overwritten"), (2, "colliding")], &["p1 set /a \"y\"", "version 1"]);
}

/// A delete expecting version 0 succeeds after an acknowledged set made version 1: the set
/// was lost (or the delete's check skipped).
#[test]
fn delete_at_a_lost_version_is_caught() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"x"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/a","zxid":1}"#,
        r#"{"process":2,"type":"invoke","f":"set","path":"/a","data":"y"}"#,
        r#"{"process":2,"type":"ok","f":"set","zxid":2,"stat":{"version":1}}"#,
        r#"{"process":3,"type":"invoke","f":"delete","path":"/a","version":0}"#,
        r#"{"process":3,"type":"ok","f":"delete","zxid":3}"#,
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::WriteLinearizability);
    let words =
        ["p3 delete /a version=0 at zxid 0x3 succeeded", "(acknowledged at zxid 0x2 version 1)"];
    explains(&v, &[(1, "last write of the path"), (2, "the write")], &words);
    assert!(v.explanation.sentence.contains("BadVersion"), "{}", v.explanation.sentence);
}

/// A read returns a value nobody wrote.
#[test]
fn invented_value_is_caught() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"x"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/a"}"#,
        r#"{"process":2,"type":"invoke","f":"get","path":"/a"}"#,
        r#"{"process":2,"type":"ok","f":"get","data":"ghost"}"#,
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::WriteLinearizability);
    assert!(v.message.contains("ghost"), "{}", v.message);
    explains(&v, &[(1, "the read"), (0, "last acknowledged write")], &["\"ghost\"", "no write"]);
}

/// Two acknowledged writes with one zxid.
#[test]
fn duplicate_zxid_is_caught() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"x"}"#,
        r#"{"process":2,"type":"invoke","f":"create","path":"/b","data":"x"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/a","zxid":5}"#,
        r#"{"process":2,"type":"ok","f":"create","name":"/b","zxid":5}"#,
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::WriteLinearizability);
    assert!(v.message.contains("share zxid"), "{}", v.message);
    explains(&v, &[(0, "first"), (1, "same zxid")], &["both acknowledged with zxid 0x5"]);
}

/// A write that began after another completed got a smaller zxid.
#[test]
fn zxid_against_real_time_is_caught() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"x"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/a","zxid":7}"#,
        r#"{"process":2,"type":"invoke","f":"create","path":"/b","data":"x"}"#,
        r#"{"process":2,"type":"ok","f":"create","name":"/b","zxid":6}"#,
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::WriteLinearizability);
    assert!(v.message.contains("before it began"), "{}", v.message);
    explains(&v, &[(0, "completed first"), (1, "lower zxid")], &["yet got zxid 0x6"]);
}

// ---- stale read after sync -----------------------------------------------------------------

const SYNC_STALE: [&str; 10] = [
    r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"old"}"#,
    r#"{"process":1,"type":"ok","f":"create","name":"/a","zxid":1}"#,
    r#"{"process":1,"type":"invoke","f":"set","path":"/a","data":"new"}"#,
    r#"{"process":1,"type":"ok","f":"set","zxid":2,"stat":{"version":1}}"#,
    r#"{"process":2,"type":"invoke","f":"sync","path":"/a"}"#,
    r#"{"process":2,"type":"ok","f":"sync"}"#,
    r#"{"process":2,"type":"invoke","f":"get","path":"/a"}"#,
    r#"{"process":2,"type":"ok","f":"get","data":"old","zxid":1}"#,
    r#"{"process":3,"type":"invoke","f":"get","path":"/a"}"#,
    r#"{"process":3,"type":"ok","f":"get","data":"old","zxid":1}"#,
];

/// With read zxids: the read after sync is below the write completed before the sync.
#[test]
fn stale_read_after_sync_is_caught_by_zxid() {
    let v = invalid(&SYNC_STALE, &zxids());
    assert_eq!(v.guarantee, Guarantee::SyncReads);
    assert!(v.message.contains("sync"), "{}", v.message);
    explains(&v, &[(3, "the read"), (1, "missed"), (2, "sync")], &["acknowledged at zxid 0x2"]);
}

/// Without read zxids: the search finds no order, and the diagnosis names sync.
#[test]
fn stale_read_after_sync_is_caught_by_search() {
    let v = invalid(&SYNC_STALE, &no_read_zxids());
    assert_eq!(v.guarantee, Guarantee::SyncReads);
    assert!(v.message.contains("\"old\""), "{}", v.message);
    // The value read, the write that produced it, the one that replaced it, and the sync.
    let causes = [(3, "the read"), (0, "wrote the value read"), (1, "overwrote"), (2, "sync")];
    explains(&v, &causes, &["p2 read /a = \"old\"", "\"new\" (p1 set", "synced (op 2)"]);
}

/// The sync's own reply zxid is above the read's: no write completed before the sync began,
/// but the sync brought the session's server to zxid 0x2, and the later read is at 0x1. The
/// guarantee is the sync's, not monotonic reads (the session saw 0x2 only through its sync).
#[test]
fn read_below_its_sync_reply_zxid_names_sync() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"old"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/a","zxid":1}"#,
        r#"{"process":2,"type":"invoke","f":"sync","path":"/a"}"#,
        r#"{"process":1,"type":"invoke","f":"set","path":"/a","data":"new"}"#,
        r#"{"process":1,"type":"ok","f":"set","zxid":2,"stat":{"version":1}}"#,
        r#"{"process":2,"type":"ok","f":"sync","zxid":2}"#,
        r#"{"process":2,"type":"invoke","f":"get","path":"/a"}"#,
        r#"{"process":2,"type":"ok","f":"get","data":"old","zxid":1}"#,
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::SyncReads, "{}", v.message);
    explains(&v, &[(1, "sync"), (3, "went back")], &["seen zxid 0x2", "after sync"]);
    // The same read after a plain read at 0x2 (no sync) is still monotonic reads.
    let plain: Vec<String> = h
        .iter()
        .map(|l| {
            l.replace(r#""f":"sync","path":"/a""#, r#""f":"get","path":"/a""#)
                .replace(r#""ok","f":"sync","zxid":2"#, r#""ok","f":"get","data":"new","zxid":2"#)
        })
        .collect();
    let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
    let v = invalid(&plain, &zxids());
    assert_eq!(v.guarantee, Guarantee::MonotonicReads, "{}", v.message);
}

/// The same stale read without the sync is allowed: ZooKeeper reads may be stale.
#[test]
fn stale_read_without_sync_is_allowed() {
    let mut h: Vec<&str> = SYNC_STALE.to_vec();
    h.remove(5);
    h.remove(4);
    valid(&h, &zxids());
    valid(&h, &no_read_zxids());
}

/// ... unless linearizable reads are asked for.
#[test]
fn stale_read_breaks_linearizable_reads_flag() {
    let mut h: Vec<&str> = SYNC_STALE.to_vec();
    h.remove(5);
    h.remove(4);
    let options = Options { linearizable_reads: true, ..no_read_zxids() };
    let v = invalid(&h, &options);
    assert_eq!(v.guarantee, Guarantee::LinearizableReads);
    explains(&v, &[(2, "the read"), (1, "overwrote")], &["--linearizable-reads"]);
    let options = Options { linearizable_reads: true, ..zxids() };
    let v = invalid(&h, &options);
    assert_eq!(v.guarantee, Guarantee::LinearizableReads);
    explains(&v, &[(2, "the read"), (1, "missed")], &["--linearizable-reads"]);
}

// ---- read going back in a session ---------------------------------------------------------

const GOING_BACK: [&str; 8] = [
    r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"v0"}"#,
    r#"{"process":1,"type":"ok","f":"create","name":"/a","zxid":1}"#,
    r#"{"process":1,"type":"invoke","f":"set","path":"/a","data":"v1"}"#,
    r#"{"process":1,"type":"ok","f":"set","zxid":2,"stat":{"version":1}}"#,
    r#"{"process":2,"type":"invoke","f":"get","path":"/a"}"#,
    r#"{"process":2,"type":"ok","f":"get","data":"v1","zxid":2}"#,
    r#"{"process":2,"type":"invoke","f":"get","path":"/a"}"#,
    r#"{"process":2,"type":"ok","f":"get","data":"v0","zxid":1}"#,
];

#[test]
fn read_going_back_is_caught_by_zxid() {
    let v = invalid(&GOING_BACK, &zxids());
    assert_eq!(v.guarantee, Guarantee::MonotonicReads);
    assert!(v.message.contains("already seen"), "{}", v.message);
    explains(&v, &[(2, "earlier"), (3, "went back")], &["already seen zxid 0x2"]);
}

#[test]
fn read_going_back_is_caught_by_search() {
    let v = invalid(&GOING_BACK, &no_read_zxids());
    assert_eq!(v.guarantee, Guarantee::MonotonicReads);
    assert!(v.message.contains("\"v0\""), "{}", v.message);
    let causes = [(3, "the read"), (0, "wrote the value read"), (1, "overwrote"), (2, "earlier")];
    explains(&v, &causes, &["p2 read /a = \"v0\"", "session had already seen it"]);
}

/// Going back across paths is seen only through zxids (the session moved to a server that is
/// behind): each path alone is fine.
#[test]
fn read_going_back_across_paths_is_caught_by_zxid() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"a"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/a","zxid":1}"#,
        r#"{"process":1,"type":"invoke","f":"create","path":"/b","data":"b"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/b","zxid":2}"#,
        r#"{"process":2,"type":"invoke","f":"exists","path":"/b"}"#,
        r#"{"process":2,"type":"ok","f":"exists","stat":{"version":0},"zxid":2}"#,
        r#"{"process":2,"type":"invoke","f":"exists","path":"/a"}"#,
        r#"{"process":2,"type":"ok","f":"exists","zxid":0}"#,
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::MonotonicReads);
    explains(&v, &[(2, "earlier"), (3, "went back")], &["p2 exists /a", "seen zxid 0x2"]);
}

/// Read-your-writes: a session reads the value from before its own acknowledged write.
#[test]
fn read_before_own_write_is_caught() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"v0"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/a"}"#,
        r#"{"process":2,"type":"invoke","f":"set","path":"/a","data":"v1"}"#,
        r#"{"process":2,"type":"ok","f":"set"}"#,
        r#"{"process":2,"type":"invoke","f":"get","path":"/a"}"#,
        r#"{"process":2,"type":"ok","f":"get","data":"v0"}"#,
    ];
    let v = invalid(&h, &no_read_zxids());
    assert_eq!(v.guarantee, Guarantee::MonotonicReads);
    // Its own write is what orders the overwrite before the read.
    explains(&v, &[(2, "the read"), (0, "wrote the value read"), (1, "overwrote")], &["\"v1\""]);
}

// ---- reordered session ops ----------------------------------------------------------------

/// Two pipelined writes of one session took effect in the opposite order.
#[test]
fn reordered_session_writes_are_caught_by_search() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"v0"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/a"}"#,
        r#"{"process":1,"type":"invoke","f":"set","path":"/a","data":"first","xid":1}"#,
        r#"{"process":1,"type":"invoke","f":"set","path":"/a","data":"second","xid":2}"#,
        r#"{"process":1,"type":"ok","f":"set","xid":1,"stat":{"version":2}}"#,
        r#"{"process":1,"type":"ok","f":"set","xid":2,"stat":{"version":1}}"#,
    ];
    let v = invalid(&h, &no_read_zxids());
    assert_eq!(v.guarantee, Guarantee::SessionOrder);
    // The window ends where it first fails: "first" acknowledged at version 2 while "second",
    // issued after it, is still running (so cannot have come before it).
    assert_eq!(v.window, (2, 4), "{}", v.message);
    assert!(v.message.contains("\"first\""), "{}", v.message);
    explains(&v, &[(1, "earlier"), (2, "overtook")], &["version 2 and version 1"]);
}

#[test]
fn reordered_session_writes_are_caught_by_zxid() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"v0","xid":1}"#,
        r#"{"process":1,"type":"invoke","f":"create","path":"/b","data":"v0","xid":2}"#,
        r#"{"process":1,"type":"ok","f":"create","xid":1,"name":"/a","zxid":9}"#,
        r#"{"process":1,"type":"ok","f":"create","xid":2,"name":"/b","zxid":8}"#,
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::SessionOrder);
    explains(&v, &[(0, "earlier"), (1, "went back")], &["took effect at zxid 0x8"]);
}

/// A write whose outcome the client never learned (connection lost) shows up after the
/// session's next acknowledged write: if it took effect, it had to take effect first.
#[test]
fn lost_connection_write_landing_after_the_next_one_is_caught() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"v0"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/a","zxid":1}"#,
        r#"{"process":1,"type":"invoke","f":"set","path":"/a","data":"late","xid":2}"#,
        r#"{"process":1,"type":"info","f":"set","xid":2,"error":"ConnectionLoss"}"#,
        r#"{"process":1,"type":"invoke","f":"create","path":"/b","data":"next","xid":3}"#,
        r#"{"process":1,"type":"ok","f":"create","xid":3,"name":"/b","zxid":2}"#,
        r#"{"process":2,"type":"invoke","f":"set","path":"/a","data":"p2","version":0}"#,
        r#"{"process":2,"type":"ok","f":"set","zxid":3,"stat":{"version":1}}"#,
        r#"{"process":2,"type":"invoke","f":"get","path":"/a"}"#,
        r#"{"process":2,"type":"ok","f":"get","data":"late","zxid":4,"stat":{"version":2}}"#,
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::SessionOrder);
    let causes = [(4, "the read"), (1, "outcome unknown"), (2, "deadline"), (3, "overwrote")];
    explains(&v, &causes, &["p1's next acknowledged op (p1 create /b", "at zxid 0x3 replaced"]);
    // Without the session's later write, the same history is fine: "late" landed at zxid 4.
    let mut free: Vec<&str> = h.to_vec();
    free.drain(4..6);
    valid(&free, &zxids());
}

/// Two writes of unknown outcome that must both have taken effect, in one order only, before
/// an acknowledged write that puts one of them out of time (its session's next write). The
/// other commutes with that write, but not with the first: the search must still try it first.
#[test]
fn indeterminate_writes_ordered_before_a_deadline_pass() {
    let h = [
        // One multi without a zxid: it keeps /c, /d and /e in one key group.
        concat!(
            r#"{"process":1,"type":"invoke","f":"multi","ops":[{"f":"create","path":"/c","#,
            r#""data":"0"},{"f":"create","path":"/d","data":"0"},{"f":"create","path":"/e","#,
            r#""data":"0"}],"xid":1}"#
        ),
        concat!(
            r#"{"process":1,"type":"ok","f":"multi","xid":1,"results":[{"name":"/c"},"#,
            r#"{"name":"/d"},{"name":"/e"}]}"#
        ),
        concat!(
            r#"{"process":2,"type":"invoke","f":"multi","ops":[{"f":"check","path":"/c","#,
            r#""version":0},{"f":"set","path":"/d","data":"x"}],"xid":1}"#
        ),
        r#"{"process":3,"type":"invoke","f":"set","path":"/c","data":"p","xid":1}"#,
        r#"{"process":2,"type":"info","f":"multi","xid":1,"error":"ConnectionLoss"}"#,
        r#"{"process":3,"type":"info","f":"set","xid":1,"error":"ConnectionLoss"}"#,
        r#"{"process":3,"type":"invoke","f":"set","path":"/e","data":"y","xid":2}"#,
        r#"{"process":3,"type":"ok","f":"set","xid":2,"zxid":6,"stat":{"version":1}}"#,
        r#"{"process":1,"type":"invoke","f":"get","path":"/d","xid":4}"#,
        r#"{"process":1,"type":"ok","f":"get","xid":4,"data":"x","zxid":6}"#,
        r#"{"process":1,"type":"invoke","f":"get","path":"/c","xid":5}"#,
        r#"{"process":1,"type":"ok","f":"get","xid":5,"data":"p","zxid":6,"stat":{"version":1}}"#,
    ];
    valid(&h, &zxids());
}

// ---- children version ---------------------------------------------------------------------

/// A queue: ZooKeeper numbers sequential children by creates only (deletes leave the stored
/// cversion alone since 3.4), and shows cversion as 2 * creates - children. The second item,
/// created after the first was consumed, is numbered 1, and the queue shows cversion 3.
fn queue(shown_cversion: i32, second_name: &str) -> Vec<String> {
    let header =
        r#"{"zkr_history":1,"initial":[{"path":"/q","data":"","version":0,"cversion":0}]}"#;
    let mut h = vec![header.to_string()];
    h.extend([
        concat!(
            r#"{"process":1,"type":"invoke","f":"create","path":"/q/n-","data":"a","#,
            r#""mode":"persistent_sequential"}"#
        )
        .to_string(),
        r#"{"process":1,"type":"ok","f":"create","name":"/q/n-0000000000","zxid":1}"#.to_string(),
        r#"{"process":1,"type":"invoke","f":"delete","path":"/q/n-0000000000"}"#.to_string(),
        r#"{"process":1,"type":"ok","f":"delete","zxid":2}"#.to_string(),
        concat!(
            r#"{"process":1,"type":"invoke","f":"create","path":"/q/n-","data":"b","#,
            r#""mode":"persistent_sequential"}"#
        )
        .to_string(),
        format!(r#"{{"process":1,"type":"ok","f":"create","name":"{second_name}","zxid":3}}"#),
        r#"{"process":1,"type":"invoke","f":"exists","path":"/q"}"#.to_string(),
        format!(
            concat!(
                r#"{{"process":1,"type":"ok","f":"exists","zxid":3,"#,
                r#""stat":{{"cversion":{},"num_children":1}}}}"#
            ),
            shown_cversion
        ),
        r#"{"process":1,"type":"invoke","f":"children","path":"/q"}"#.to_string(),
        format!(
            r#"{{"process":1,"type":"ok","f":"children","zxid":3,"children":["{}"]}}"#,
            second_name.trim_start_matches("/q/")
        ),
    ]);
    h
}

#[test]
fn sequential_numbers_count_creates_not_deletes() {
    let h = queue(3, "/q/n-0000000001");
    valid(&h.iter().map(String::as_str).collect::<Vec<_>>(), &zxids());
}

#[test]
fn wrong_children_version_is_caught() {
    let h = queue(2, "/q/n-0000000001");
    let v = invalid(&h.iter().map(String::as_str).collect::<Vec<_>>(), &zxids());
    assert!(v.message.contains("cversion 2"), "{}", v.message);
    // No pattern names ops here: the op that cannot be ordered, with the checker's reason.
    explains(&v, &[(3, "cannot be ordered")], &["cversion 2"]);
}

/// The children counter is a Java int: at the last sequence number it wraps, and what a
/// client sees (2 * creates - children) wraps with it. Such input must not panic the checker.
#[test]
fn children_version_wraps_like_a_java_int() {
    let mut h = queue(3, "/q/n-0000000001");
    h.truncate(1);
    h.extend([
        concat!(
            r#"{"process":1,"type":"invoke","f":"create","path":"/q/n-","data":"a","#,
            r#""mode":"persistent_sequential"}"#
        )
        .to_string(),
        r#"{"process":1,"type":"ok","f":"create","name":"/q/n-2147483647","zxid":1}"#.to_string(),
        r#"{"process":1,"type":"invoke","f":"exists","path":"/q"}"#.to_string(),
        concat!(
            r#"{"process":1,"type":"ok","f":"exists","zxid":1,"#,
            r#""stat":{"cversion":-1,"num_children":1}}"#
        )
        .to_string(),
    ]);
    valid(&h.iter().map(String::as_str).collect::<Vec<_>>(), &zxids());
}

#[test]
fn sequential_number_counting_deletes_is_caught() {
    let h = queue(3, "/q/n-0000000002");
    let v = invalid(&h.iter().map(String::as_str).collect::<Vec<_>>(), &zxids());
    assert_eq!(v.guarantee, Guarantee::SequentialNames, "{}", v.message);
    explains(&v, &[(0, "earlier create"), (2, "misnumbered")], &["number 2", "1 child"]);
}

// ---- watch after data ---------------------------------------------------------------------

const WATCH_LATE: [&str; 9] = [
    r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"v0"}"#,
    r#"{"process":1,"type":"ok","f":"create","name":"/a","zxid":1}"#,
    r#"{"process":2,"type":"invoke","f":"get","path":"/a","watch":true}"#,
    r#"{"process":2,"type":"ok","f":"get","data":"v0","zxid":1,"stat":{"version":0,"mzxid":1}}"#,
    r#"{"process":1,"type":"invoke","f":"set","path":"/a","data":"v1"}"#,
    r#"{"process":1,"type":"ok","f":"set","zxid":2,"stat":{"version":1}}"#,
    r#"{"process":2,"type":"invoke","f":"get","path":"/a"}"#,
    r#"{"process":2,"type":"ok","f":"get","data":"v1","zxid":2,"stat":{"version":1,"mzxid":2}}"#,
    r#"{"process":2,"type":"event","path":"/a","event":"NodeDataChanged","zxid":2}"#,
];

#[test]
fn watch_after_data_is_caught() {
    let v = invalid(&WATCH_LATE, &zxids());
    assert_eq!(v.guarantee, Guarantee::Watches);
    assert!(v.message.contains("before the event"), "{}", v.message);
    let causes = [(1, "left the watch"), (2, "fires it"), (3, "saw the change first")];
    explains(&v, &causes, &["zxid 0x2 (p1 set /a \"v1\")"]);
}

#[test]
fn watch_before_data_is_allowed() {
    let mut h = WATCH_LATE.to_vec();
    let event = h.pop().expect("event");
    h.insert(6, event);
    valid(&h, &zxids());
}

#[test]
fn event_without_watch_is_caught() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"v0"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/a","zxid":1}"#,
        r#"{"process":2,"type":"event","path":"/a","event":"NodeDataChanged","zxid":2}"#,
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::Watches);
    assert!(v.message.contains("without a pending watch"), "{}", v.message);
    explains(&v, &[], &["no watch pending"]);
}

// ---- sequential names ---------------------------------------------------------------------

#[test]
fn duplicate_sequential_name_is_caught() {
    let h = [
        r#"{"zkr_history":1,"initial":[{"path":"/q"}]}"#,
        concat!(
            r#"{"process":1,"type":"invoke","f":"create","path":"/q/n-","#,
            r#""mode":"persistent_sequential"}"#
        ),
        concat!(
            r#"{"process":2,"type":"invoke","f":"create","path":"/q/n-","#,
            r#""mode":"persistent_sequential"}"#
        ),
        r#"{"process":1,"type":"ok","f":"create","name":"/q/n-0000000000"}"#,
        r#"{"process":2,"type":"ok","f":"create","name":"/q/n-0000000000"}"#,
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::SequentialNames);
    assert!(v.message.contains("n-0000000000"), "{}", v.message);
    explains(&v, &[(0, "first"), (1, "colliding")], &["both given /q/n-0000000000"]);
}

#[test]
fn decreasing_sequential_name_is_caught() {
    let h = [
        r#"{"zkr_history":1,"initial":[{"path":"/q"}]}"#,
        concat!(
            r#"{"process":1,"type":"invoke","f":"create","path":"/q/n-","#,
            r#""mode":"persistent_sequential"}"#
        ),
        r#"{"process":1,"type":"ok","f":"create","name":"/q/n-0000000005"}"#,
        concat!(
            r#"{"process":2,"type":"invoke","f":"create","path":"/q/n-","#,
            r#""mode":"persistent_sequential"}"#
        ),
        r#"{"process":2,"type":"ok","f":"create","name":"/q/n-0000000003"}"#,
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::SequentialNames);
    let words = ["got /q/n-0000000003 after p1", "/q/n-0000000005"];
    explains(&v, &[(0, "first"), (1, "colliding")], &words);
}

// ---- multi --------------------------------------------------------------------------------

/// An acknowledged multi took effect on one path only.
#[test]
fn non_atomic_multi_is_caught() {
    let h = [
        concat!(
            r#"{"process":1,"type":"invoke","f":"multi","ops":[{"f":"create","path":"/a","#,
            r#""data":"1"},{"f":"create","path":"/b","data":"2"}]}"#
        ),
        r#"{"process":1,"type":"ok","f":"multi","results":[{"name":"/a"},{"name":"/b"}],"zxid":4}"#,
        r#"{"process":2,"type":"invoke","f":"exists","path":"/a"}"#,
        r#"{"process":2,"type":"ok","f":"exists","stat":{"version":0},"zxid":4}"#,
        r#"{"process":2,"type":"invoke","f":"exists","path":"/b"}"#,
        r#"{"process":2,"type":"ok","f":"exists","zxid":4}"#,
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::MultiAtomicity);
    assert!(v.message.contains("/b"), "{}", v.message);
    let causes = [(0, "the multi"), (1, "read of its paths"), (2, "read of its paths")];
    explains(&v, &causes, &["/a present at zxid 0x4 and /b absent"]);
}

/// A failed multi left part of its effect.
#[test]
fn partial_failed_multi_is_caught() {
    let h = [
        concat!(
            r#"{"process":1,"type":"invoke","f":"multi","ops":[{"f":"create","path":"/a","#,
            r#""data":"1"},{"f":"delete","path":"/missing"}]}"#
        ),
        r#"{"process":1,"type":"fail","f":"multi","error":"NoNode"}"#,
        r#"{"process":1,"type":"invoke","f":"get","path":"/a"}"#,
        r#"{"process":1,"type":"ok","f":"get","data":"1"}"#,
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::MultiAtomicity);
    explains(&v, &[(0, "the multi"), (1, "read of its paths")], &["failed", "/a \"1\""]);
}

/// A failed multi that met a state no order has is a lost or invented write, not a partial
/// multi: its BadVersion says /a existed, and nobody ever created /a. (Seen under leader
/// isolation with `commit-after-one-ack`: the cut-off leader answered from writes the ensemble
/// lost; splitting the multi into pieces of unknown outcome dropped its error and so "passed".)
#[test]
fn failed_multi_against_a_state_no_order_has_is_write_linearizability() {
    let h = [
        concat!(
            r#"{"process":1,"type":"invoke","f":"multi","ops":[{"f":"check","path":"/a","#,
            r#""version":0},{"f":"create","path":"/b","data":"2"}]}"#
        ),
        r#"{"process":1,"type":"fail","f":"multi","error":"BadVersion"}"#,
        r#"{"process":2,"type":"invoke","f":"exists","path":"/a"}"#,
        r#"{"process":2,"type":"ok","f":"exists"}"#,
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::WriteLinearizability, "{}", v.message);
    assert!(v.marked.contains(&0), "the multi is the op no order explains: {}", v.message);
    // The report names the multi, the op of it that fails here, and why.
    let why = "would fail with NoNode at its check /a version 0 (/a is absent), not BadVersion";
    assert!(v.message.contains(why), "names the failing op and why: {}", v.message);
}

/// An acknowledged multi that no order lets succeed: the report names the op of it that
/// would fail and the state it meets (its set of /b, in another key group, is not the cause).
#[test]
fn acknowledged_multi_that_would_fail_names_its_failing_op() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"1"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/a","zxid":1}"#,
        concat!(
            r#"{"process":1,"type":"invoke","f":"multi","ops":[{"f":"set","path":"/b","#,
            r#""data":"2"},{"f":"check","path":"/a","version":3}]}"#
        ),
        r#"{"process":1,"type":"ok","f":"multi","results":[{},{}],"zxid":2}"#,
    ];
    let v = invalid(&h, &zxids());
    assert!(v.marked.contains(&1), "the multi is the op no order explains: {}", v.message);
    assert!(v.message.contains("multi"), "names the multi: {}", v.message);
    let why = "would fail with BadVersion at its check /a version 3 (/a is at version 0)";
    assert!(v.message.contains(why), "names the failing op and why: {}", v.message);
}

// ---- ephemerals ---------------------------------------------------------------------------

/// Another session reads a closed session's ephemeral at a zxid after the close.
#[test]
fn ephemeral_outliving_its_session_is_caught() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/e","data":"x","mode":"ephemeral"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/e","zxid":1}"#,
        r#"{"process":1,"type":"invoke","f":"close"}"#,
        r#"{"process":1,"type":"ok","f":"close","zxid":2}"#,
        r#"{"process":2,"type":"invoke","f":"exists","path":"/e"}"#,
        concat!(
            r#"{"process":2,"type":"ok","f":"exists","stat":{"version":0,"ephemeral_owner":77},"#,
            r#""zxid":3}"#
        ),
    ];
    let v = invalid(&h, &zxids());
    assert_eq!(v.guarantee, Guarantee::Ephemerals);
    let causes = [(2, "the read"), (0, "created the ephemeral"), (1, "the close")];
    explains(&v, &causes, &["ephemeral of p1's session", "p1 close at zxid 0x2"]);
}

// ---- valid histories ----------------------------------------------------------------------

/// Concurrent writes, stale reads, indeterminate writes that did and did not happen.
#[test]
fn concurrent_and_indeterminate_history_passes() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"v0"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/a"}"#,
        r#"{"process":1,"type":"invoke","f":"set","path":"/a","data":"v1"}"#,
        r#"{"process":2,"type":"invoke","f":"set","path":"/a","data":"v2"}"#,
        r#"{"process":3,"type":"invoke","f":"set","path":"/a","data":"v3"}"#,
        r#"{"process":4,"type":"invoke","f":"get","path":"/a"}"#,
        r#"{"process":2,"type":"info","f":"set","error":"ConnectionLoss"}"#,
        r#"{"process":1,"type":"ok","f":"set"}"#,
        r#"{"process":4,"type":"ok","f":"get","data":"v0"}"#,
        r#"{"process":4,"type":"invoke","f":"get","path":"/a"}"#,
        r#"{"process":4,"type":"ok","f":"get","data":"v2"}"#,
        r#"{"process":5,"type":"invoke","f":"get","path":"/a"}"#,
        r#"{"process":5,"type":"ok","f":"get","data":"v1"}"#,
        r#"{"process":3,"type":"info","f":"set"}"#,
        r#"{"process":6,"type":"invoke","f":"sync","path":"/a"}"#,
        r#"{"process":6,"type":"ok","f":"sync"}"#,
        r#"{"process":6,"type":"invoke","f":"get","path":"/a"}"#,
        r#"{"process":6,"type":"ok","f":"get","data":"v2"}"#,
        r#"{"process":7,"type":"invoke","f":"set","path":"/a","data":"v4","version":2}"#,
        r#"{"process":7,"type":"fail","f":"set","error":"BadVersion"}"#,
    ];
    valid(&h, &no_read_zxids());
}

#[test]
fn malformed_input_names_the_line() {
    let err = History::parse(
        "{\"process\":1,\"type\":\"invoke\",\"f\":\"get\",\"path\":\"/a\"}\nnot json",
    )
    .expect_err("bad line");
    assert_eq!(err.line, 2);
    let err =
        History::parse("{\"process\":1,\"type\":\"ok\",\"f\":\"get\"}").expect_err("dangling");
    assert_eq!(err.line, 1);
    assert!(err.message.contains("without invoke"));
    let err =
        History::parse("{\"process\":1,\"type\":\"invoke\",\"f\":\"get\"}").expect_err("no path");
    assert!(err.message.contains("path"));
}

#[test]
fn reports_mark_the_ops_that_cannot_be_ordered() {
    let history = History::parse(&GOING_BACK.join("\n")).expect("parses");
    let verdict = check(&history, &no_read_zxids()).expect("well formed");
    let text = report::text(&history, &verdict);
    assert!(text.contains("cannot be ordered"), "{text}");
    let html = report::html(&history, &verdict);
    assert!(html.contains("class=\"op marked"), "{html}");
    assert!(html.starts_with("<!DOCTYPE html>"));
}
