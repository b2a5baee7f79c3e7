//! The same seed gives the same trace, byte for byte; a different seed gives a different one.

use zkr_sim::{RunOptions, run_seed};

#[test]
fn same_seed_same_trace_hash_and_text() {
    let options = RunOptions { trace: true, ..RunOptions::default() };
    let a = run_seed(7, &options);
    let b = run_seed(7, &options);
    assert!(a.events > 100, "the seed did something: {} events", a.events);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.trace, b.trace, "the text is identical too");
    let quiet = run_seed(7, &RunOptions::default());
    assert_eq!(quiet.trace_hash, a.trace_hash, "keeping the text does not change the hash");
    assert!(quiet.trace.is_none());
}

#[test]
fn different_seeds_differ() {
    let options = RunOptions::default();
    let a = run_seed(7, &options);
    let b = run_seed(8, &options);
    assert_ne!(a.trace_hash, b.trace_hash);
}
