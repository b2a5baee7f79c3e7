//! Property tests: histories generated from a correct sequential execution must pass; the
//! same histories mutated so that they break the contract must be caught.
//!
//! Case counts are modest so that `cargo test -p zkr-jepsen` stays fast in debug builds.

use proptest::prelude::*;
use zkr_jepsen::generate::{Config, generate};
use zkr_jepsen::{F, History, Kind, Options, Validity, check};

fn config(seed: u64, zxids: bool) -> Config {
    Config {
        ops: if zxids { 150 } else { 100 },
        paths: 3,
        sessions: 4,
        info_rate: 0.1,
        seed,
        zxids,
        ..Config::default()
    }
}

fn verdict(history: &History) -> Validity {
    let text = history.to_jsonl();
    let parsed = History::parse(&text).expect("generated histories round-trip");
    assert_eq!(&parsed, history);
    check(&parsed, &Options::default()).expect("well formed").validity
}

/// Index of the completion event of the `n`-th acknowledged op with function `f` matching
/// `pred`, together with its invoke index.
fn completions(history: &History, f: F, pred: impl Fn(&zkr_jepsen::Event) -> bool) -> Vec<usize> {
    let mut out = Vec::new();
    for op in history.ops() {
        if op.f != f {
            continue;
        }
        if let Some(c) = op.complete
            && history.events[c].kind == Some(Kind::Ok)
            && pred(&history.events[c])
        {
            out.push(c);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn generated_histories_with_zxids_pass(seed in 0u64..1_000_000) {
        let history = generate(&config(seed, true));
        prop_assert_eq!(verdict(&history), Validity::Valid);
    }

    #[test]
    fn generated_histories_without_zxids_pass(seed in 0u64..1_000_000) {
        let history = generate(&config(seed, false));
        prop_assert_eq!(verdict(&history), Validity::Valid);
    }

    /// A read returning a value no one wrote is caught, with or without zxids.
    #[test]
    fn invented_read_is_caught(seed in 0u64..1_000_000, pick in any::<usize>(), zxids: bool) {
        let mut history = generate(&config(seed, zxids));
        let reads = completions(&history, F::Get, |e| e.data.is_some());
        prop_assume!(!reads.is_empty());
        let at = reads[pick % reads.len()];
        history.events[at].data = Some("never-written".into());
        prop_assert_eq!(verdict(&history), Validity::Invalid);
    }

    /// Two acknowledged writes sharing a zxid are caught.
    #[test]
    fn duplicate_write_zxid_is_caught(seed in 0u64..1_000_000, pick in any::<usize>()) {
        let mut history = generate(&config(seed, true));
        let writes = completions(&history, F::Set, |e| e.zxid.is_some());
        prop_assume!(writes.len() >= 2);
        let a = pick % (writes.len() - 1);
        let zxid = history.events[writes[a]].zxid;
        history.events[writes[a + 1]].zxid = zxid;
        prop_assert_eq!(verdict(&history), Validity::Invalid);
    }

    /// A read served from before what its session had already seen is caught.
    #[test]
    fn read_going_back_is_caught(seed in 0u64..1_000_000, pick in any::<usize>()) {
        let mut history = generate(&config(seed, true));
        // For each read, the highest zxid its session saw before it was invoked.
        let ops = history.ops();
        let mut candidates = Vec::new();
        for op in &ops {
            if op.f != F::Get && op.f != F::Exists {
                continue;
            }
            let Some(c) = op.complete else { continue };
            if history.events[c].kind != Some(Kind::Ok) {
                continue;
            }
            let seen = ops
                .iter()
                .filter(|o| o.process == op.process && o.complete.is_some_and(|oc| oc < op.invoke))
                .filter_map(|o| history.reply(o).and_then(|r| r.zxid))
                .max();
            if let Some(seen) = seen.filter(|s| *s > 0) {
                candidates.push((c, seen));
            }
        }
        prop_assume!(!candidates.is_empty());
        let (at, seen) = candidates[pick % candidates.len()];
        history.events[at].zxid = Some(seen - 1);
        prop_assert_eq!(verdict(&history), Validity::Invalid);
    }

    /// A sequential create handed a name already handed out is caught.
    #[test]
    fn duplicate_sequential_name_is_caught(seed in 0u64..1_000_000, pick in any::<usize>()) {
        let mut history = generate(&config(seed, true));
        let queued =
            |e: &zkr_jepsen::Event| e.name().as_deref().is_some_and(|n| n.starts_with("/q/"));
        let creates = completions(&history, F::Create, queued);
        prop_assume!(creates.len() >= 2);
        let a = pick % (creates.len() - 1);
        let name = history.events[creates[a]].name().clone();
        history.events[creates[a + 1]].rare_mut().name = name;
        prop_assert_eq!(verdict(&history), Validity::Invalid);
    }
}

/// The generator is deterministic: one seed, one history.
#[test]
fn generation_is_deterministic() {
    let a = generate(&config(7, true));
    let b = generate(&config(7, true));
    assert_eq!(a, b);
    assert!(a.events.len() > 200);
}

/// A seed proptest drew for `generated_histories_with_zxids_pass` (2026-12-03) that the
/// checker rejected: a children read of /q showed cversion 6, which needs p3's sequential
/// create of unknown outcome (its node /q/n-0000000002 never seen) and p0's delete of it, also
/// of unknown outcome, to have happened. The checker dropped an indeterminate sequential create
/// whose name nobody saw, as if it could change nothing visible; but the parent's cversion
/// counts it (see `regressions.rs`, `unseen_sequential_create_*`).
#[test]
fn generated_history_of_seed_92606_passes() {
    let history = generate(&config(92606, true));
    assert_eq!(verdict(&history), Validity::Valid);
}
