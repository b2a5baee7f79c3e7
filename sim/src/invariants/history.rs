//! The client-visible history, checked at the end of each seed by `zkr-jepsen`: writes are
//! linearizable, each session's ops take effect in FIFO order, reads never go back within a
//! session, a read after `sync` sees what completed before it, and a watch event reaches the
//! client before the change is visible to it.
//!
//! Source: ZooKeeper's guarantees (programmer's guide, "ZooKeeper guarantees"); the checker's
//! own docs (`jepsen/src/check/mod.rs`). The simulator records every invoke, completion and
//! watch event in the jepsen history format (`zkr_jepsen::history`), see `workload.rs`.

use zkr_jepsen::history::{Event, Header, History, InitialNode};
use zkr_jepsen::{Options, Validity};

use super::Violation;

/// What the checker said about one history.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Violations found.
    pub violations: Vec<Violation>,
    /// Ops checked.
    pub ops: usize,
    /// True if some partition ran out of search budget (neither valid nor invalid).
    pub unknown: bool,
}

/// Builds the history of a seed. The header lists the nodes a fresh tree starts with
/// (`/` and `/zookeeper...`, with their versions), so the checker knows every child of `/` and
/// can check the sequence numbers of sequential nodes created there.
pub fn history(events: Vec<Event>, seed: u64) -> History {
    let tree = zkr_core::tree::DataTree::new();
    let initial = tree
        .nodes()
        .filter_map(|(path, _)| {
            let stat = tree.stat(path)?;
            let data = tree.get(path)?.data.as_ref().map(|d| String::from_utf8_lossy(d).into());
            Some(InitialNode {
                path: path.to_string(),
                data: data.unwrap_or_default(),
                version: stat.version,
                cversion: stat.cversion,
            })
        })
        .collect();
    let description = Some(format!("zkr-sim seed {seed}"));
    History { header: Header { initial, description, ..Header::default() }, events }
}

/// Checks a history.
pub fn check(history: &History, now: u64) -> Outcome {
    let options = Options { max_configs: 200_000, ..Options::default() };
    let verdict = match zkr_jepsen::check(history, &options) {
        Ok(v) => v,
        Err(e) => {
            let message = format!("the simulator recorded a malformed history: {e}");
            let violations = vec![Violation { invariant: "history", at_ns: now, message }];
            return Outcome { violations, ops: 0, unknown: false };
        }
    };
    let violations = verdict
        .violations
        .iter()
        .map(|v| Violation {
            invariant: "history",
            at_ns: now,
            message: format!("{}: {}", v.guarantee, v.message),
        })
        .collect();
    Outcome { violations, ops: verdict.stats.ops, unknown: verdict.validity == Validity::Unknown }
}
