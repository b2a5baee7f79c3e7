//! Ephemerals end with their session: once a session is closed, its ephemerals are gone from
//! every server that applied the close; once its client stops talking to the ensemble, they are
//! gone within the session timeout plus a bound, measured in simulated time.
//!
//! Source: ZooKeeper programmer's guide, "Ephemeral Nodes" and "Sessions" (the server expires a
//! session when it has heard nothing for the timeout). The bound (see `sim.rs`,
//! `expiry_budget_ns`) covers the expiry bucket (`tickTime`), clock drift, fsync and network
//! delay. A server that was down or paused restarts the clock: ZooKeeper renews recovered
//! sessions, and a paused server cannot expire anyone.

use std::collections::BTreeMap;

use zkr_core::tree::DataTree;
use zkr_core::types::SessionId;

use super::Violation;

#[derive(Debug, Clone, Copy)]
struct Silent {
    since_ns: u64,
    timeout_ms: i32,
    reported: bool,
}

/// Sessions whose client stopped talking, by id.
#[derive(Debug, Default)]
pub struct Ephemerals {
    silent: BTreeMap<SessionId, Silent>,
}

impl Ephemerals {
    /// The client of `session` stopped talking at `now` (disconnected or gave up on it).
    pub fn silent(&mut self, session: SessionId, timeout_ms: i32, now: u64) {
        self.silent.insert(session, Silent { since_ns: now, timeout_ms, reported: false });
    }

    /// The client sent something for `session` again (a reconnect attempt): the clock restarts.
    pub fn touched(&mut self, session: SessionId, now: u64) {
        if let Some(s) = self.silent.get_mut(&session) {
            s.since_ns = s.since_ns.max(now);
        }
    }

    /// The session is in use again (a reconnect was accepted).
    pub fn resumed(&mut self, session: SessionId) {
        self.silent.remove(&session);
    }

    /// Checks one server. `alive_since` is when it last started or came out of a pause;
    /// `budget(timeout_ms)` is the time allowed after silence begins.
    pub fn check(
        &mut self,
        node: usize,
        tree: &DataTree,
        alive_since: u64,
        budget: impl Fn(i32) -> u64,
        now: u64,
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        for (session, s) in self.silent.iter_mut() {
            let deadline = s.since_ns.max(alive_since) + budget(s.timeout_ms);
            if s.reported || now <= deadline {
                continue;
            }
            let left = tree.ephemerals(*session);
            if !left.is_empty() {
                s.reported = true;
                out.push(Violation {
                    invariant: "ephemerals",
                    at_ns: now,
                    message: format!(
                        "{session} (timeout {} ms) went silent at {:.3}s, yet n{node} still \
                         holds its ephemerals {left:?} at {:.3}s",
                        s.timeout_ms,
                        s.since_ns as f64 / 1e9,
                        now as f64 / 1e9
                    ),
                });
            }
        }
        out
    }

    /// A close of `session` was acknowledged; `tree` is a server that applied it.
    pub fn closed(node: usize, session: SessionId, tree: &DataTree, now: u64) -> Option<Violation> {
        let left = tree.ephemerals(session);
        (!left.is_empty()).then(|| Violation {
            invariant: "ephemerals",
            at_ns: now,
            message: format!("n{node} applied the close of {session} but holds {left:?}"),
        })
    }
}
