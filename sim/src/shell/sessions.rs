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
//!   the real one).
//! - `follower_expiry` (lower bound, through a follower): a frame answered by a follower F
//!   (or observer) that followed the established leader L of one term from before the send
//!   until the reply reaches L in F's next PINGREPLY (ZooKeeper's `LearnerSessionTracker`
//!   touch table; L pings every half `tickTime`). Once L's tick is past the reply's by the
//!   report delay (`report_ticks`: a ping interval, the round trip, a tick of margin) and L
//!   still holds the session open, the frame counts as heard by L at its tick before the send,
//!   as above, and L must not close the session sooner than its timeout after it. Claimed
//!   only while F kept following L (the same learner state: a rejoin starts an empty touch
//!   table) and no fault touched F or L from the send until the report was due, nor in the
//!   grace after one (`Faults::grace_ns`). A close before the report is due is not bounded by
//!   that frame (the report may still be on its way, a race ZooKeeper has too).
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

/// What a leader heard from one session, on its own connection or reported by a learner.
#[derive(Clone, Copy, Debug)]
struct Heard {
    /// The leader's tick before the frame was sent.
    tick: u64,
    timeout_ms: i32,
    /// The learner slot that answered the frame and reported it, if not the leader itself.
    via: Option<usize>,
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
    /// Per server slot that serves as a learner: what it follows, as last observed.
    following: BTreeMap<usize, Following>,
    /// Learner states seen so far (each new `Following` takes the next number).
    generations: u64,
    /// Frames answered by a learner whose report to the leader is not yet due, in reply order.
    relayed: Vec<Relayed>,
    /// The nemesis faults in force and the graces after them, per server slot.
    pub faults: Faults,
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
    /// Frames answered by a learner whose report was due with nothing in the way: each
    /// counts as heard by the leader (`follower_expiry`).
    pub relayed: u64,
    /// Frames answered by a learner that the bound does not claim (a fault, a rejoin, a new
    /// leader, or the session closing before the report was due).
    pub relayed_unclaimed: u64,
    /// Expiries held against the bound through a learner's report.
    pub follower_expiries: u64,
    /// The least silence beyond the timeout among them, ticks.
    pub follower_slack_ticks_min: Option<u64>,
}

/// A learner serving clients for an established leader, as its observer saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Following {
    /// Which learner state this is: a new one (after a rejoin, a restart, another leader)
    /// starts with an empty touch table, so what the old one had not reported is lost.
    pub generation: u64,
    /// The leader's slot.
    pub leader: usize,
    /// The learner's own term: (incarnation, epoch it follows).
    pub term: Term,
}

/// A learner's view when a client sent it a frame: whom it followed, and the leader's term
/// and tick then.
#[derive(Clone, Copy, Debug)]
pub struct RelayStart {
    following: Following,
    leader_term: Term,
    leader_tick: u64,
    sent_ns: u64,
}

/// A frame answered by a learner, waiting until its report to the leader is due.
#[derive(Clone, Copy, Debug)]
struct Relayed {
    learner: usize,
    start: RelayStart,
    session: i64,
    timeout_ms: i32,
    /// The leader's tick as observed when the reply came.
    reply_tick: u64,
}

/// The nemesis faults as its history marks say: which servers each touches, and until when
/// a server counts as disturbed. Faults come one at a time.
#[derive(Debug, Default)]
pub struct Faults {
    /// Slot → until when it counts as disturbed, ns (`u64::MAX` while a fault is in force).
    disturbed_until_ns: BTreeMap<usize, u64>,
    /// The fault in force: its targets and grace.
    current: Option<(Vec<usize>, u64)>,
}

impl Faults {
    /// The grace after a fault of `kind` ends, ns. Bytes a clogged link held arrive up to
    /// madsim's longest retry backoff after the heal; a paused server catches up on its
    /// ticks, a slow disk finishes the syncs it has begun (up to 1.5 s): 2 s.
    fn grace_ns(kind: &str) -> u64 {
        match kind {
            "isolate" | "split" | "one-way" => super::REDELIVERY_NS,
            _ => 2_000_000_000,
        }
    }

    /// The slots a fault mark `desc` ("kind target...") touches, of `servers`: every server
    /// for a split (conservative: the links within a side stay up), none for a client cut,
    /// else the servers it names ("s3", "s1 -> s2").
    fn targets(desc: &str, servers: usize) -> Vec<usize> {
        let kind = desc.split_whitespace().next().unwrap_or("");
        match kind {
            "split" => (0..servers).collect(),
            "cut" => Vec::new(),
            _ => desc
                .split_whitespace()
                .filter_map(|w| w.strip_prefix('s')?.parse::<usize>().ok())
                .filter(|id| (1..=servers).contains(id))
                .map(|id| id - 1)
                .collect(),
        }
    }

    /// A fault mark: `start` or its end, at `now`.
    pub fn mark(&mut self, desc: &str, start: bool, servers: usize, now: u64) {
        let kind = desc.split_whitespace().next().unwrap_or("");
        if start {
            let targets = Faults::targets(desc, servers);
            for slot in &targets {
                self.disturbed_until_ns.insert(*slot, u64::MAX);
            }
            self.current = Some((targets, Faults::grace_ns(kind)));
        } else if let Some((targets, grace)) = self.current.take() {
            for slot in targets {
                self.disturbed_until_ns.insert(slot, now + grace);
            }
        }
        assert!(start == self.current.is_some(), "one fault at a time");
    }

    /// True if no fault touched `slot` (nor its grace ran) from `since` until now.
    fn quiet(&self, slot: usize, since: u64) -> bool {
        self.disturbed_until_ns.get(&slot).is_none_or(|until| *until < since)
    }
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
        self.heard_via(slot, term, session, (tick, timeout_ms), None);
    }

    /// `heard`, or a learner's report of it (`via`). A report comes later than the frames
    /// the leader heard itself meanwhile: only a later tick replaces what it heard.
    fn heard_via(
        &mut self,
        slot: usize,
        term: Term,
        session: i64,
        (tick, timeout_ms): (u64, i32),
        via: Option<usize>,
    ) {
        // Not yet seen open since this frame: a read answered while the session was already
        // closing must not count as heard before the close.
        let heard = Heard { tick, timeout_ms, via, open_seen: false };
        let last = self.heard.entry((slot, term, session)).or_insert(heard);
        assert!(via.is_some() || last.tick <= tick, "a leader's ticks never go back in a term");
        if last.tick <= tick {
            *last = heard;
        }
        assert!(self.heard[&(slot, term, session)].tick >= tick, "the latest frame kept");
    }

    /// What learner `slot` follows, if it serves clients for an established leader whose
    /// tick is known: the start of a frame it may report (`relayed`).
    pub fn relay_start(&self, slot: usize, now: u64) -> Option<RelayStart> {
        let following = *self.following.get(&slot)?;
        let (leader_term, leader_tick) = self.leading(following.leader)?;
        // The learner follows this very term of the leader (not one it has left).
        (leader_term.1 == following.term.1).then_some(RelayStart {
            following,
            leader_term,
            leader_tick,
            sent_ns: now,
        })
    }

    /// A client got a successful reply from learner `slot` to a frame sent at `start`: if
    /// the learner still follows the same leader's term, its report is awaited.
    pub fn relayed(&mut self, slot: usize, start: RelayStart, session: i64, timeout_ms: i32) {
        let same = self.following.get(&slot) == Some(&start.following);
        let leading = self.leading(start.following.leader);
        match leading {
            Some((term, reply_tick)) if same && term == start.leader_term => {
                assert!(reply_tick >= start.leader_tick, "a leader's ticks never go back");
                let relayed = Relayed { learner: slot, start, session, timeout_ms, reply_tick };
                self.relayed.push(relayed);
            }
            _ => self.counts.relayed_unclaimed += 1,
        }
    }

    /// The ticks by which a learner's report of a frame reaches the leader after the reply:
    /// the leader pings every half `tickTime` (`Leader::on_tick`), the learner answers with
    /// its touch table, and each leg takes milliseconds; 1 tick for a tick the observer had
    /// not seen yet, 2 for the round trip and its processing.
    pub fn report_ticks(config: &zkr_core::config::Config) -> u64 {
        let ping_every = (config.tick_times(1) / 2).max(1);
        assert!(ping_every >= 1, "a ping round at least every tick");
        ping_every + 3
    }

    /// Moves every frame leader `slot` (of `term`) must have had reported by now into what it
    /// heard, if nothing was in the way; frames of another term are dropped.
    fn settle(&mut self, slot: usize, term: Term, node: &Node) {
        let now_tick = node.now_tick();
        let report = Sessions::report_ticks(node.config());
        let (mine, rest): (Vec<Relayed>, Vec<Relayed>) =
            std::mem::take(&mut self.relayed).into_iter().partition(|r| {
                r.start.following.leader == slot
                    && (r.start.leader_term != term || now_tick >= r.reply_tick + report)
            });
        self.relayed = rest;
        for r in mine {
            let kept = self.following.get(&r.learner) == Some(&r.start.following);
            let quiet = self.faults.quiet(r.learner, r.start.sent_ns)
                && self.faults.quiet(slot, r.start.sent_ns);
            // Open now (past the report's due tick): the report found it open and touched it.
            let open = node.sessions().get(SessionId(r.session)).is_some_and(|s| !s.closing);
            if r.start.leader_term != term || !kept || !quiet || !open {
                self.counts.relayed_unclaimed += 1;
                continue;
            }
            self.counts.relayed += 1;
            let heard = (r.start.leader_tick, r.timeout_ms);
            self.heard_via(slot, term, r.session, heard, Some(r.learner));
        }
    }

    /// Records whether learner `slot` (in `term`, its own) serves clients for a leader.
    fn observe_learner(&mut self, slot: usize, term: Term, node: &Node) {
        let serving = node.is_serving() && !node.is_established_leader();
        let leader = node.leader().filter(|_| serving).map(|id| id.0 as usize - 1);
        let Some(leader) = leader else {
            self.following.remove(&slot);
            return;
        };
        let same = |f: &Following| f.leader == leader && f.term == term;
        if !self.following.get(&slot).is_some_and(same) {
            self.generations += 1;
            let following = Following { generation: self.generations, leader, term };
            self.following.insert(slot, following);
        }
        assert!(self.following[&slot].leader != slot, "a learner follows another server");
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
        self.observe_learner(slot, term, node);
        if !node.is_established_leader() {
            self.leading.remove(&slot);
            // Its term is over: no report of a frame answered for it will count.
            let before = self.relayed.len();
            self.relayed.retain(|r| r.start.following.leader != slot);
            self.counts.relayed_unclaimed += (before - self.relayed.len()) as u64;
            return Vec::new();
        }
        self.leading.insert(slot, (term, node.now_tick()));
        self.settle(slot, term, node);
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
            let (count, least) = match heard.via {
                None => (&mut self.counts.expiries, &mut self.counts.expiry_slack_ticks_min),
                Some(_) => {
                    (&mut self.counts.follower_expiries, &mut self.counts.follower_slack_ticks_min)
                }
            };
            *count += 1;
            if let Some(slack) = silent.checked_sub(timeout_ticks) {
                let least = least.get_or_insert(slack);
                *least = (*least).min(slack);
            }
            if silent < timeout_ticks {
                let (invariant, heard_on) = match heard.via {
                    None => ("expiry", "on its own connection".to_string()),
                    Some(learner) => {
                        ("follower_expiry", format!("since s{} answered it", learner + 1))
                    }
                };
                found.push(Violation {
                    invariant,
                    at_ns: now,
                    message: format!(
                        "s{} (epoch {}) expired session {:#x} after at most {silent} ticks of \
                         silence {heard_on}; its timeout is {timeout_ticks} ticks ({} ms)",
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
    fn fault_marks_name_the_servers_they_touch() {
        assert_eq!(Faults::targets("kill s3 (Power)", 5), vec![2]);
        assert_eq!(Faults::targets("one-way s1 -> s4", 5), vec![0, 3]);
        assert_eq!(Faults::targets("slow-disk s2 fsync 300 ms", 3), vec![1]);
        assert_eq!(Faults::targets("clock s2 wall +12 ms, drift -3 ppm", 3), vec![1]);
        assert_eq!(Faults::targets("split [1, 3] | [2]", 3), vec![0, 1, 2], "every server");
        assert!(Faults::targets("cut clients", 3).is_empty(), "a client cut touches none");
        assert!(Faults::targets("pause s9", 3).is_empty(), "no such server");
    }

    #[test]
    fn a_server_is_quiet_only_before_a_fault_and_after_its_grace() {
        let mut f = Faults::default();
        assert!(f.quiet(0, 0), "never touched");
        f.mark("pause s1", true, 3, 1_000);
        assert!(!f.quiet(0, 500), "in force: frames sent before it are not claimed");
        assert!(!f.quiet(0, 5_000), "nor frames sent during it");
        assert!(f.quiet(1, 500), "another server is untouched");
        f.mark("pause s1", false, 3, 3_000);
        assert!(!f.quiet(0, 3_000 + 2_000_000_000), "within the grace");
        assert!(f.quiet(0, 3_001 + 2_000_000_000), "after it");
        f.mark("isolate s2", true, 3, 10);
        f.mark("isolate s2", false, 3, 20);
        assert!(!f.quiet(1, 20 + super::super::REDELIVERY_NS), "a clog's bytes may come late");
        assert!(f.quiet(1, 21 + super::super::REDELIVERY_NS));
    }

    #[test]
    fn a_report_is_due_a_ping_interval_and_a_round_trip_after_the_reply() {
        let mut config = zkr_core::config::Config { tick_ms: 100, ..Default::default() };
        config.tick_time_ms = 2_000;
        assert_eq!(Sessions::report_ticks(&config), 10 + 3, "pings every half tickTime");
        config.tick_time_ms = 100;
        assert_eq!(Sessions::report_ticks(&config), 1 + 3, "at least a ping every tick");
    }

    #[test]
    fn a_later_report_never_replaces_a_later_frame_heard_directly() {
        let mut s = Sessions::default();
        s.heard(0, (0, 1), 7, 50, 4_000);
        s.heard_via(0, (0, 1), 7, (40, 4_000), Some(2));
        assert_eq!(s.heard[&(0, (0, 1), 7)].tick, 50, "the direct frame was later");
        assert_eq!(s.heard[&(0, (0, 1), 7)].via, None);
        s.heard_via(0, (0, 1), 7, (60, 4_000), Some(2));
        assert_eq!(s.heard[&(0, (0, 1), 7)].via, Some(2), "a later report replaces it");
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
