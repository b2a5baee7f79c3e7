//! The failing window is small and holds the fault: long generated histories, broken at one
//! point in the middle, must be reported with a window far shorter than the history that
//! contains the broken op.

use zkr_jepsen::generate::{Config, generate};
use zkr_jepsen::{F, History, Kind, Options, Validity, check, report};

fn history(seed: u64, zxids: bool) -> History {
    let config = Config {
        ops: 2000,
        paths: 4,
        sessions: 6,
        info_rate: 0.05,
        seed,
        zxids,
        ..Config::default()
    };
    generate(&config)
}

/// Replaces the data of an acknowledged `get` of `/p0` near the middle with a value nobody
/// wrote; returns the op id of that read.
fn break_a_read(history: &mut History) -> usize {
    let ops = history.ops();
    let middle = history.events.len() / 2;
    let op = (ops.iter())
        .filter(|op| op.f == F::Get && op.invoke > middle)
        .filter(|op| history.request(op).path.as_deref() == Some("/p0"))
        .find(|op| {
            op.complete.is_some_and(|c| {
                history.events[c].kind == Some(Kind::Ok) && history.events[c].data.is_some()
            })
        })
        .expect("a successful read of /p0 after the middle");
    let complete = op.complete.expect("completed");
    history.events[complete].data = Some("ghost".into());
    op.id
}

fn check_window(seed: u64, zxids: bool) {
    let mut history = history(seed, zxids);
    let valid = check(&history, &Options::default()).expect("well formed");
    assert_eq!(valid.validity, Validity::Valid, "seed {seed}: generated histories are valid");
    let broken = break_a_read(&mut history);
    let verdict = check(&history, &Options::default()).expect("well formed");
    assert_eq!(verdict.validity, Validity::Invalid, "seed {seed}: a ghost read is caught");
    let v = (verdict.violations.iter())
        .find(|v| v.ops.contains(&broken) || v.marked.contains(&broken))
        .unwrap_or_else(|| panic!("seed {seed}: no window holds op {broken}: {verdict:#?}"));
    let text = report::text(&history, &verdict);
    assert!(text.contains("smallest failing window"), "{text}");
    assert!(v.marked.contains(&broken), "seed {seed}: the ghost read is marked: {}", v.message);
    // The window ends at the broken read's completion, and is a small part of the history.
    let complete = history.ops()[broken].complete.expect("completed");
    assert_eq!(v.window.1, complete, "seed {seed}: {}", v.message);
    // Without zxids a window can only start where no read may float back across its start
    // (reads may be stale), so it is wider.
    let (span, total) = (v.window.1 - v.window.0, history.events.len());
    let (share, most_ops) = if zxids { (10, 60) } else { (4, total / 4) };
    assert!(span * share < total, "seed {seed}: window {:?} of {total} events", v.window);
    assert!(!v.ops.is_empty() && v.ops.len() < most_ops, "seed {seed}: {} ops", v.ops.len());
}

#[test]
fn window_of_a_ghost_read_with_zxids_is_small() {
    for seed in 1..4 {
        check_window(seed, true);
    }
}

#[test]
fn window_of_a_ghost_read_without_zxids_is_small() {
    for seed in 1..4 {
        check_window(seed, false);
    }
}

/// A window may only start where nothing after it can be ordered before it. A read without a
/// zxid may be stale, so it can go back across any cut: checked from the state after the set,
/// the stale (and allowed) read of "v0" could not be ordered, so no window may start after
/// the set; the invented value is blamed, the stale read is not.
#[test]
fn a_window_never_starts_where_a_read_could_go_back_across_it() {
    let h = [
        r#"{"process":1,"type":"invoke","f":"create","path":"/a","data":"v0"}"#,
        r#"{"process":1,"type":"ok","f":"create","name":"/a"}"#,
        r#"{"process":1,"type":"invoke","f":"set","path":"/a","data":"v1"}"#,
        r#"{"process":1,"type":"ok","f":"set","stat":{"version":1}}"#,
        r#"{"process":2,"type":"invoke","f":"get","path":"/a"}"#,
        r#"{"process":2,"type":"ok","f":"get","data":"v0"}"#,
        r#"{"process":3,"type":"invoke","f":"get","path":"/a"}"#,
        r#"{"process":3,"type":"ok","f":"get","data":"ghost"}"#,
    ];
    let history = History::parse(&h.join("\n")).expect("parses");
    let verdict = check(&history, &Options::default()).expect("well formed");
    assert_eq!(verdict.validity, Validity::Invalid);
    let v = &verdict.violations[0];
    assert!(v.marked.contains(&3), "the invented value is blamed: {}", v.message);
    assert!(!v.marked.contains(&2), "the stale read is allowed: {}", v.message);
    assert_eq!(v.window.0, 0, "{}", v.message);
}

/// Clients without think time: with many sessions some op is always running, so there is
/// (almost) no point where nothing is in flight, and a window that may only start at such a
/// point spans most of the history. Cutting where the ops in flight carry zxids (they join
/// the window) keeps it small.
#[test]
fn window_is_small_without_quiet_points() {
    for seed in 1..3 {
        let config = Config {
            ops: 3000,
            paths: 4,
            sessions: 24,
            info_rate: 0.02,
            seed,
            zxids: true,
            ..Config::default()
        };
        let mut history = generate(&config);
        // Hardly a quiet point: the history is of the kind this test is about.
        let ops = history.ops();
        let mut running = vec![0i32; history.events.len() + 1];
        for op in &ops {
            running[op.invoke] += 1;
            running[op.complete.unwrap_or(history.events.len())] -= 1;
        }
        let mut depth = 0;
        let quiet = (running.iter()).filter(|d| {
            depth += **d;
            depth == 0
        });
        let quiet = quiet.count();
        assert!(quiet * 100 < history.events.len(), "seed {seed}: {quiet} quiet points");
        let broken = break_a_read(&mut history);
        let verdict = check(&history, &Options::default()).expect("well formed");
        assert_eq!(verdict.validity, Validity::Invalid, "seed {seed}: a ghost read is caught");
        let v = (verdict.violations.iter())
            .find(|v| v.marked.contains(&broken))
            .unwrap_or_else(|| panic!("seed {seed}: op {broken} not marked: {verdict:#?}"));
        let (span, total) = (v.window.1 - v.window.0, history.events.len());
        assert!(span * 10 < total, "seed {seed}: window {:?} of {total} events", v.window);
        assert!(v.ops.len() < 100, "seed {seed}: {} ops in the window", v.ops.len());
        assert!(v.ops.contains(&broken), "seed {seed}: the window shows the cause");
        let e = &v.explanation;
        assert!(e.names(broken), "seed {seed}: the explanation names the read: {e:#?}");
    }
}
