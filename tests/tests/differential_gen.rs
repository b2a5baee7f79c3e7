//! Generated differential run: seeded request sequences (tests/src/diffgen.rs) replayed in
//! lockstep against Apache ZooKeeper and zkr, every reply compared. CI runs a fixed set of seeds
//! and fails with the seed, the step and the first differing reply pair.
//!
//! By hand (docs/TESTING.md): `ZKR_DIFFGEN_SEEDS=500 ZKR_DIFFGEN_OPS=60 ZKR_DIFFGEN_FIRST=0
//! ZKR_DIFFGEN_KEEP_GOING=1` runs more seeds and lists every difference (one per seed) instead
//! of stopping at the first. Needs Debian's zookeeper package (tests/setup.sh); skipped outside
//! CI when it is missing. Both servers are stopped when their `TestServer`s drop.

use zkr_tests::diffgen;

/// Seeds and steps per seed in CI: 23 s on this machine at load 1 (docs/TESTING.md).
const CI_SEEDS: u64 = 60;
const CI_OPS: usize = 60;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    match std::env::var(key) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{key}={v:?} is not a number")),
        Err(_) => default,
    }
}

#[test]
fn generated_sequences_match_apache_zookeeper() {
    let jar = std::path::Path::new("/usr/share/java/zookeeper.jar");
    let found = jar.exists().then_some(());
    if zkr_tests::tools::require("Debian's zookeeper package (tests/setup.sh)", found).is_none() {
        return;
    }
    let first = env_or("ZKR_DIFFGEN_FIRST", 0u64);
    let seeds = env_or("ZKR_DIFFGEN_SEEDS", CI_SEEDS);
    let ops = env_or("ZKR_DIFFGEN_OPS", CI_OPS);
    let keep_going = std::env::var("ZKR_DIFFGEN_KEEP_GOING").is_ok_and(|v| v == "1");
    let outcome = diffgen::run(first, seeds, ops, keep_going);
    let mut documented = std::collections::BTreeMap::new();
    for (filter, _) in &outcome.documented {
        *documented.entry(format!("{filter:?}")).or_insert(0) += 1;
    }
    eprintln!(
        "diffgen: seeds {first}..{} x {ops} steps: {} reply pairs compared, {} documented \
         differences accepted {documented:?}, {} differences",
        first + seeds,
        outcome.compared,
        outcome.documented.len(),
        outcome.differences.len()
    );
    for d in &outcome.differences {
        eprintln!(
            "DIFF seed {} step {}: {}\n  apache: {}\n  zkr:    {}",
            d.seed, d.step, d.what, d.apache, d.zkr
        );
    }
    assert!(outcome.compared > 0, "nothing compared");
    if let Some(d) = outcome.differences.first() {
        panic!(
            "seed {} step {} differs (replay: ZKR_DIFFGEN_FIRST={} ZKR_DIFFGEN_SEEDS=1 \
             ZKR_DIFFGEN_OPS={ops}):\n{}\n  apache: {}\n  zkr:    {}\n--- the last 40 steps \
             before it ---\n{}",
            d.seed,
            d.step,
            d.seed,
            d.what,
            d.apache,
            d.zkr,
            d.before[d.before.len().saturating_sub(40)..].join("\n")
        );
    }
}
