//! Tier 2's session-timer checks: the real server's leader expires a session neither too soon
//! nor too late, under the `clock` fault's drift, pauses and fail-overs.
//!
//! - `expiry` (lower bound, tier 1's `invariants::expiry`): an established leader never
//!   expires a session sooner than its timeout after it last heard from the session's client
//!   on its own connection, both counted in that leader's own core ticks (so drift, wall-clock
//!   steps and pauses cannot blur it). The leader heard a frame if the client got a successful
//!   reply to it on a connection to that server while it led one epoch, from before the frame
//!   was sent until after the reply came; the tick is the one its observer last saw before
//!   the send (never later than the true one, so the silence measured is never shorter than
//!   the real one). Clients of followers are heard through PING replies, which may be late or
//!   lost: their sessions are not bounded here, as in tier 1.
//! - `ephemerals` (upper bound, tier 1's `invariants::ephemerals`): once the faults are over,
//!   the network healed (and madsim's held bytes delivered) and a write has committed, every
//!   session the clients left is gone from the established leader (no session entry that is
//!   not closing, no ephemerals) within its timeout plus a bound (`budget_ns`) after the
//!   latest of its last frame, that moment, and the leader's establishment (a new leader gives
//!   every session a fresh timeout, as ZooKeeper's does).
//!
//! Source: ZooKeeper programmer's guide, "ZooKeeper Sessions" and "Ephemeral Nodes";
//! `SessionTrackerImpl`/`ExpiryQueue` (expiry at the next bucket boundary after now + timeout).

use std::collections::{BTreeMap, BTreeSet};

use zkr_core::Node;
use zkr_core::types::SessionId;

use crate::invariants::Violation;

/// A leader's term as its observer saw it: (incarnation, epoch).
pub type Term = (u64, u32);

/// What a leader heard from one session on its own connection.
#[derive(Clone, Copy, Debug)]
struct Heard {
    /// The leader's tick before the frame was sent.
    tick: u64,
    timeout_ms: i32,
    /// The observer has seen the session open (not closing) in this term since the frame:
    /// only a later change to closing or gone is this leader's decision to close it.
    open_seen: bool,
}

/// The state of both checks, fed by the clients and the servers' observers.
#[derive(Debug, Default)]
pub struct Sessions {
    /// Per server slot, the term it leads and its tick, as last observed.
    leading: BTreeMap<usize, (Term, u64)>,
    /// (slot, term, session) → what that leader heard last.
    heard: BTreeMap<(usize, Term, i64), Heard>,
    /// Sessions whose client sent a CloseSession: their close is not an expiry.
    close_requested: BTreeSet<i64>,
    /// Every workload session: (when its client last sent a frame for it, ns; timeout ms).
    last_sent: BTreeMap<i64, (u64, i32)>,
    /// Sessions the clients left, not yet checked: set when the upper bound starts to hold.
    silent: BTreeMap<i64, (u64, i32)>,
    /// From when the upper bound holds (ns).
    healthy_since_ns: Option<u64>,
    /// When the established leader last changed (ns).
    pub leader_since_ns: u64,
    /// How long past its timeout a session may take to go (see `budget_ns`), by its timeout.
    pub budget: Budget,
    /// What the checks covered.
    pub counts: Counts,
}

/// What the session-timer checks covered in one seed (so that a clean campaign is seen to
/// have checked something).
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Expiries held against the lower bound (a leader closed a session it heard itself).
    pub expiries: u64,
    /// The least silence beyond the timeout among them, ticks.
    pub expiry_slack_ticks_min: Option<u64>,
    /// Silent sessions held against the upper bound.
    pub silent: u64,
    /// The longest one of them took past its timeout (from its deadline's start) to be gone
    /// from the leader, ns.
    pub silent_late_ns_max: u64,
    /// The least time left before its deadline when one of them was seen gone, ns.
    pub silent_spare_ns_min: Option<u64>,
    /// Silent sessions never checked (their deadline moved past the wait: a new leader).
    pub silent_unchecked: u64,
    /// Kills of the leader held against the fail-over bound.
    pub failovers: u64,
}

/// What the upper bound allows beyond a session's timeout.
#[derive(Clone, Copy, Debug, Default)]
pub struct Budget {
    /// The ensemble's `tickTime`, ms (one expiry bucket).
    pub tick_time_ms: u64,
    /// The slowest a server's tick may run, parts per million (the `clock` fault's drift).
    pub drift_ppm_max: u64,
}

impl Budget {
    /// The time a leader may take to close a silent session of `timeout_ms`, ns: the timeout
    /// in the slowest clock the `clock` fault allows, an expiry bucket and a follower's PING
    /// report (one `tickTime` each), and 1 s for the close's proposal, fsyncs and commit.
    pub fn budget_ns(&self, timeout_ms: i32) -> u64 {
        assert!(self.tick_time_ms > 0, "the budget is set before the seed runs");
        assert!(self.drift_ppm_max < 1_000_000, "a clock never stops");
        let ms = timeout_ms.max(0) as u64;
        let slowest = 1_000_000 - self.drift_ppm_max;
        let ns = (ms as u128 * 1_000_000 * 1_000_000 / slowest as u128) as u64;
        ns + 2 * self.tick_time_ms * 1_000_000 + 1_000_000_000
    }
}

impl Sessions {
    /// The term `slot` leads and its last observed tick, if it leads.
    pub fn leading(&self, slot: usize) -> Option<(Term, u64)> {
        self.leading.get(&slot).copied()
    }

    /// A client is about to send a frame for `session` (`timeout_ms` negotiated).
    pub fn sent(&mut self, session: i64, timeout_ms: i32, now: u64) {
        assert!(self.healthy_since_ns.is_none(), "clients stop before the upper bound holds");
        self.last_sent.insert(session, (now, timeout_ms));
    }

    /// A client is about to send a CloseSession for `session`.
    pub fn close_requested(&mut self, session: i64) {
        self.close_requested.insert(session);
    }

    /// A client got a successful reply on its connection to `slot`, which led `term` from
    /// before the frame (its observer's tick then: `tick`) until now.
    pub fn heard(&mut self, slot: usize, term: Term, session: i64, tick: u64, timeout_ms: i32) {
        // Not yet seen open since this frame: a read answered while the session was already
        // closing must not count as heard before the close.
        let heard = Heard { tick, timeout_ms, open_seen: false };
        let last = self.heard.entry((slot, term, session)).or_insert(heard);
        assert!(last.tick <= tick, "a leader's ticks never go back within a term");
        *last = heard;
    }

    /// The upper bound holds from `at_ns` on: every session the clients left is now silent.
    pub fn healthy_from(&mut self, at_ns: u64) {
        assert!(self.healthy_since_ns.is_none(), "set once");
        self.healthy_since_ns = Some(at_ns);
        self.silent = std::mem::take(&mut self.last_sent);
    }

    /// What the checks covered; the silent sessions not checked yet count as never checked.
    pub fn counts(&self) -> Counts {
        Counts { silent_unchecked: self.silent.len() as u64, ..self.counts }
    }

    /// The latest deadline of the sessions left to check, ns (with the current leader).
    pub fn last_deadline_ns(&self) -> Option<u64> {
        self.silent.values().map(|(since, timeout)| self.deadline_ns(*since, *timeout)).max()
    }

    fn deadline_ns(&self, since: u64, timeout_ms: i32) -> u64 {
        let healthy = self.healthy_since_ns.expect("deadlines only once healthy");
        since.max(healthy).max(self.leader_since_ns) + self.budget.budget_ns(timeout_ms)
    }

    /// After a step of server `slot`: records whether it leads, and if it does, checks the
    /// lower bound against its session table, and if it leads the `latest` epoch seen, the
    /// upper bound against its table and tree.
    pub fn stepped(
        &mut self,
        slot: usize,
        term: Term,
        latest: bool,
        node: &Node,
        now: u64,
    ) -> Vec<Violation> {
        if !node.is_established_leader() {
            self.leading.remove(&slot);
            return Vec::new();
        }
        self.leading.insert(slot, (term, node.now_tick()));
        let mut found = self.lower_bound(slot, term, node, now);
        if latest {
            found.extend(self.upper_bound(slot, node, now));
        }
        found
    }

    /// Every session this leader heard that is now closing or gone after it was seen open:
    /// unless its client asked to close it, it was silent for its whole timeout.
    fn lower_bound(&mut self, slot: usize, term: Term, node: &Node, now: u64) -> Vec<Violation> {
        let mut found = Vec::new();
        let mut done = Vec::new();
        let range = (slot, term, i64::MIN)..=(slot, term, i64::MAX);
        for (key, heard) in self.heard.range_mut(range) {
            let session = key.2;
            let open = node.sessions().get(SessionId(session)).is_some_and(|s| !s.closing);
            if open {
                heard.open_seen = true;
                continue;
            }
            done.push(*key);
            if !heard.open_seen || self.close_requested.contains(&session) {
                continue;
            }
            let tick = node.now_tick();
            assert!(heard.tick <= tick, "heard before the close");
            let silent = tick - heard.tick;
            let timeout_ticks = node.config().ms_to_ticks(heard.timeout_ms.max(0) as u64);
            self.counts.expiries += 1;
            if let Some(slack) = silent.checked_sub(timeout_ticks) {
                let least = self.counts.expiry_slack_ticks_min.get_or_insert(slack);
                *least = (*least).min(slack);
            }
            if silent < timeout_ticks {
                found.push(Violation {
                    invariant: "expiry",
                    at_ns: now,
                    message: format!(
                        "s{} (epoch {}) expired session {:#x} after at most {silent} ticks of \
                         silence on its own connection; its timeout is {timeout_ticks} ticks \
                         ({} ms)",
                        slot + 1,
                        term.1,
                        session,
                        heard.timeout_ms
                    ),
                });
            }
        }
        for key in done {
            self.heard.remove(&key);
        }
        found
    }

    /// Every silent session past its deadline is gone from this leader: no open entry, no
    /// ephemerals. Each is checked once.
    fn upper_bound(&mut self, slot: usize, node: &Node, now: u64) -> Vec<Violation> {
        if self.healthy_since_ns.is_none() {
            return Vec::new();
        }
        // A session gone from the leader (its close applied, no ephemerals) passes now; its
        // time past the timeout is measured, from the same start as its deadline.
        let gone = |id: i64| {
            let id = SessionId(id);
            node.sessions().get(id).is_none() && node.tree().ephemeral_paths(id).next().is_none()
        };
        let passed: Vec<(i64, u64, i32)> = self
            .silent
            .iter()
            .filter(|(id, _)| gone(**id))
            .map(|(id, (since, timeout))| (*id, *since, *timeout))
            .collect();
        for (session, since, timeout_ms) in passed {
            self.silent.remove(&session);
            self.counts.silent += 1;
            let deadline = self.deadline_ns(since, timeout_ms);
            let start = deadline - self.budget.budget_ns(timeout_ms);
            let late = now.saturating_sub(start + timeout_ms.max(0) as u64 * 1_000_000);
            let spare = deadline.saturating_sub(now);
            let c = &mut self.counts;
            c.silent_late_ns_max = c.silent_late_ns_max.max(late);
            c.silent_spare_ns_min = Some(c.silent_spare_ns_min.map_or(spare, |s| s.min(spare)));
        }
        let due: Vec<(i64, u64, i32)> = self
            .silent
            .iter()
            .filter(|(_, (since, timeout))| now > self.deadline_ns(*since, *timeout))
            .map(|(id, (since, timeout))| (*id, *since, *timeout))
            .collect();
        let mut found = Vec::new();
        for (session, since, timeout_ms) in due {
            self.silent.remove(&session);
            self.counts.silent += 1;
            let id = SessionId(session);
            let open = node.sessions().get(id).is_some_and(|s| !s.closing);
            let left = node.tree().ephemerals(id);
            if !open && left.is_empty() {
                continue;
            }
            found.push(Violation {
                invariant: "ephemerals",
                at_ns: now,
                message: format!(
                    "session {session:#x} (timeout {timeout_ms} ms) went silent at {:.3}s, yet \
                     the leader s{} at {:.3}s {} (healthy since {:.3}s, leader since {:.3}s)",
                    since as f64 / 1e9,
                    slot + 1,
                    now as f64 / 1e9,
                    if open {
                        format!("still holds it open, ephemerals {left:?}")
                    } else {
                        format!("holds its ephemerals {left:?}")
                    },
                    self.healthy_since_ns.unwrap_or(0) as f64 / 1e9,
                    self.leader_since_ns as f64 / 1e9,
                ),
            });
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_covers_drift_a_bucket_and_the_commit() {
        let b = Budget { tick_time_ms: 500, drift_ppm_max: 20_000 };
        let ns = b.budget_ns(1_000);
        assert!(ns > 1_020_000_000 + 2_000_000_000, "2% slow: the timeout takes 1.02 s");
        assert_eq!(ns, 1_020_408_163 + 1_000_000_000 + 1_000_000_000);
        let still = Budget { drift_ppm_max: 0, ..b };
        assert_eq!(still.budget_ns(1_000), 3_000_000_000, "no drift: timeout + 2 ticks + 1 s");
    }

    #[test]
    fn deadlines_start_at_the_latest_of_silence_health_and_leader() {
        let mut s = Sessions {
            budget: Budget { tick_time_ms: 1_000, drift_ppm_max: 0 },
            ..Default::default()
        };
        s.sent(1, 2_000, 5);
        s.sent(2, 2_000, 7_000_000_000);
        s.healthy_from(3_000_000_000);
        assert_eq!(s.deadline_ns(5, 2_000), 3_000_000_000 + 5_000_000_000, "health is later");
        assert_eq!(s.last_deadline_ns(), Some(7_000_000_000 + 5_000_000_000), "silence later");
        s.leader_since_ns = 9_000_000_000;
        assert_eq!(s.last_deadline_ns(), Some(9_000_000_000 + 5_000_000_000), "a new leader");
    }
}
