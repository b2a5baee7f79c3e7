//! The checks a script can run (`check NAME`). Each returns `Err(description)` when violated.
//! The Zab properties are those of the Zab paper's problem statement (docs/ZAB-CLAIMS.md says
//! which section states each); the rest are ZooKeeper's own promises.

use std::collections::BTreeMap;

use zkr_core::types::Zxid;

use super::cluster::Env;
use super::fmt::zx;

/// Every check `check all` runs, in order.
pub const ALL: [&str; 9] = [
    "integrity",
    "total-order",
    "agreement",
    "primary-order",
    "primary-integrity",
    "one-leader-per-epoch",
    "epoch-promise",
    "durable-committed",
    "digests",
];

/// Runs one named check.
pub fn run(env: &Env, name: &str) -> Result<(), String> {
    if let Some((_, what)) = env.observer.violations.iter().find(|(n, _)| n == name) {
        return Err(what.clone());
    }
    match name {
        "integrity" => integrity(env),
        "total-order" => total_order(env),
        "agreement" => agreement(env),
        "primary-order" => primary_order(env),
        // Checked as they happen (see `observe`).
        "primary-integrity" | "epoch-promise" => Ok(()),
        "one-leader-per-epoch" => one_leader_per_epoch(env),
        "durable-committed" => durable_committed(env),
        "digests" => digests(env),
        other => panic!("unknown check {other}"),
    }
}

/// Integrity: a server delivers only what some primary broadcast (the same txn at that zxid).
fn integrity(env: &Env) -> Result<(), String> {
    for (id, delivered) in &env.observer.delivered {
        for (zxid, txn) in delivered {
            match env.observer.proposed.get(zxid) {
                Some((_, proposed)) if proposed == txn => {}
                Some((by, _)) => {
                    return Err(format!(
                        "server {id} delivered {} unlike what {by} proposed there",
                        zx(*zxid)
                    ));
                }
                None => return Err(format!("server {id} delivered {} nobody proposed", zx(*zxid))),
            }
        }
    }
    Ok(())
}

/// Total order: each server delivers in zxid order, so any two deliver common txns in the
/// same order.
fn total_order(env: &Env) -> Result<(), String> {
    for (id, delivered) in &env.observer.delivered {
        for pair in delivered.windows(2) {
            if pair[0].0 >= pair[1].0 {
                let (a, b) = (zx(pair[0].0), zx(pair[1].0));
                return Err(format!("server {id} delivered {a} before {b}"));
            }
        }
    }
    Ok(())
}

/// Agreement: of two servers, the one that delivered less delivered a prefix of what the other
/// did (above the snapshots either installed, whose txns were not seen one by one).
fn agreement(env: &Env) -> Result<(), String> {
    let by_server: Vec<(u64, BTreeMap<Zxid, _>)> = env
        .observer
        .delivered
        .iter()
        .map(|(id, d)| (*id, d.iter().map(|(z, t)| (*z, t)).collect()))
        .collect();
    let base = |id: u64| env.observer.snapshot_base.get(&id).copied().unwrap_or_default();
    for (i, (a, da)) in by_server.iter().enumerate() {
        for (b, db) in &by_server[i + 1..] {
            let top = |d: &BTreeMap<Zxid, _>| d.keys().next_back().copied().unwrap_or_default();
            let upto = top(da).min(top(db));
            let from = base(*a).max(base(*b));
            let range = |d: &BTreeMap<Zxid, _>| {
                d.iter()
                    .filter(|(z, _)| **z > from && **z <= upto)
                    .map(|(z, t)| (*z, *t))
                    .collect::<Vec<_>>()
            };
            let (ra, rb) = (range(da), range(db));
            if ra != rb {
                let za: Vec<String> = ra.iter().map(|(z, _)| zx(*z)).collect();
                let zb: Vec<String> = rb.iter().map(|(z, _)| zx(*z)).collect();
                return Err(format!(
                    "servers {a} and {b} delivered different prefixes up to {}: [{}] vs [{}]",
                    zx(upto),
                    za.join(" "),
                    zb.join(" ")
                ));
            }
        }
    }
    Ok(())
}

/// Local primary order: a server delivers a primary's txns in the order it proposed them and
/// without holes: within an epoch its deliveries count up by one.
fn primary_order(env: &Env) -> Result<(), String> {
    for (id, delivered) in &env.observer.delivered {
        let base = env.observer.snapshot_base.get(id).copied().unwrap_or_default();
        for pair in delivered.windows(2) {
            let (a, b) = (pair[0].0, pair[1].0);
            if a.epoch() == b.epoch() && b.counter() != a.counter() + 1 && a > base {
                return Err(format!("server {id} delivered {} right after {}", zx(b), zx(a)));
            }
        }
    }
    Ok(())
}

/// At most one leader is established in any epoch (the paper's "a primary per epoch").
fn one_leader_per_epoch(env: &Env) -> Result<(), String> {
    for (epoch, leaders) in &env.observer.leaders {
        if leaders.len() > 1 {
            return Err(format!("epoch {epoch} had leaders {leaders:?}"));
        }
    }
    Ok(())
}

/// No committed txn is lost: every txn any server delivered is durable, unchanged, on a quorum
/// of voters (in its log, or under its snapshot).
fn durable_committed(env: &Env) -> Result<(), String> {
    let voters: Vec<u64> =
        env.servers.iter().filter(|(_, s)| !s.observer).map(|(id, _)| *id).collect();
    let mut committed: BTreeMap<Zxid, _> = BTreeMap::new();
    for delivered in env.observer.delivered.values() {
        for (zxid, txn) in delivered {
            committed.entry(*zxid).or_insert(txn);
        }
    }
    for (zxid, txn) in committed {
        let holders = voters.iter().filter(|id| {
            let disk = &env.servers[id].disk;
            let logged = disk.durable.iter().any(|t| t == txn);
            logged || disk.snapshot.as_ref().is_some_and(|s| s.zxid >= zxid)
        });
        let holders: Vec<u64> = holders.copied().collect();
        if holders.len() * 2 <= voters.len() {
            return Err(format!("committed {} is durable only on {holders:?}", zx(zxid)));
        }
    }
    Ok(())
}

/// ZooKeeper's digest check: servers that applied up to the same zxid have equal trees.
fn digests(env: &Env) -> Result<(), String> {
    let mut seen: BTreeMap<Zxid, (u64, u64)> = BTreeMap::new();
    for id in env.up() {
        let node = env.node(id).expect("up");
        let (zxid, digest) = (node.last_zxid(), node.tree().digest());
        match seen.get(&zxid) {
            Some((other, d)) if *d != digest => {
                return Err(format!(
                    "servers {other} and {id} applied up to {} with different trees",
                    zx(zxid)
                ));
            }
            _ => {
                seen.insert(zxid, (id, digest));
            }
        }
    }
    Ok(())
}
