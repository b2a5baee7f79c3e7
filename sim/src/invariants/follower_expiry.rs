//! Session expiry through a learner, lower bound: a session whose client a serving learner F
//! heard is not expired by F's leader L sooner than its timeout after that frame, once F's
//! report of it was due. (Clients of the leader itself: [`super::expiry`].)
//!
//! Source: ZooKeeper programmer's guide, "ZooKeeper Sessions" (a session lives while the
//! cluster hears from its client, through any server); `LearnerSessionTracker` (a learner
//! reports the sessions it touched in every PING reply, and the leader's `SessionTracker`
//! touches them).
//!
//! The claim. F got a frame on a session's connection while it served (synced, in broadcast)
//! the established leader L of its epoch; L's tick then was `t`. F adds the session to its touch
//! table at once, L pings every half `tickTime`, and F answers the next ping with the table, so
//! L touches the session no later than `report_ticks` after `t` (a ping interval, the ping's
//! and the reply's flight at the fastest clock, one tick because a reply that lands in the tick
//! L expires in comes after the expiry). From then on L must not close the session sooner than
//! its timeout after `t`, counted in L's own ticks as `expiry` does. Bounding on L's receipt of
//! a reply would be circular (a learner may hold its table back); bounding on F's receipt of
//! the client's frame is not, and tier 1 sees it (tier 2, which sees only the client, uses a
//! successful reply from F instead: `sim/src/shell/sessions.rs`).
//!
//! Claimed only where it must hold: when the report is due, L is the same incarnation leading
//! the same epoch and still holds the session open (a close decided earlier is not bounded by
//! a report still on its way), and F is the same incarnation in the same learner state (a
//! rejoin starts an empty touch table). Not claimed when, within the grace before the frame
//! (`grace_ns`, two `syncLimit`s and a tick time) or after it, F or L was paused or restarted,
//! or a message between them was lost, cut by a partition, delayed past the network's normal
//! delay (a slow link) or dropped by a link break: a lost message stalls their FIFO session
//! (`zab::fifo`) until L drops F for `syncLimit` of silence, and F serves on, its reports
//! going nowhere, until its own `syncLimit` runs out; a paused server does the same. The grace
//! starts no earlier than F last left a leader: what came before belongs to an older FIFO
//! session. Clock steps and drift need no exclusion: expiry counts ticks, and `report_ticks`
//! allows the fastest drift. docs/TESTING.md ("What is checked") gives, for each exclusion, a
//! seed that fails without it and with no bug.

use std::collections::{BTreeMap, VecDeque};

use zkr_core::types::SessionId;

use super::Violation;
use crate::sim::NodeSlot;
use crate::swarm::Swarm;

/// A frame a serving learner got, waiting for its report to the leader to be due.
#[derive(Clone, Copy, Debug)]
pub struct Relay {
    /// The learner's slot, incarnation, and when it started serving (its learner state).
    pub learner: (usize, u32, u64),
    /// The leader's incarnation and epoch.
    pub term: (u32, u32),
    /// The session the frame belonged to.
    pub session: SessionId,
    /// The leader's tick when the learner got the frame.
    pub leader_tick: u64,
    /// Simulated time then, ns.
    pub at_ns: u64,
}

/// Why frames were not claimed, for the campaign summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unclaimed {
    /// The leader's term ended before the report was due.
    pub term_ended: u64,
    /// The learner restarted, rejoined or left before the report was due.
    pub rejoined: u64,
    /// The learner or the leader was paused or restarted near the frame.
    pub paused: u64,
    /// A message between them was lost, cut, late or dropped near the frame.
    pub link: u64,
    /// The leader no longer held the session open when the report was due.
    pub closed: u64,
}

impl Unclaimed {
    /// All frames not claimed.
    pub fn total(&self) -> u64 {
        self.term_ended + self.rejoined + self.paused + self.link + self.closed
    }

    /// Adds another seed's counts.
    pub fn add(&mut self, other: &Unclaimed) {
        self.term_ended += other.term_ended;
        self.rejoined += other.rejoined;
        self.paused += other.paused;
        self.link += other.link;
        self.closed += other.closed;
    }
}

/// What the check covered in one seed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Frames whose report was due with nothing in the way: each counts as heard by the leader.
    pub claimed: u64,
    /// Frames not claimed, by reason.
    pub unclaimed: Unclaimed,
    /// Expiries held against a claimed frame.
    pub expiries: u64,
    /// The least silence beyond the timeout among them, ticks.
    pub slack_ticks_min: Option<u64>,
    /// Expiries of sessions with no claimed frame in the leader's term (clients of the leader
    /// itself, or of learners whose frames were not claimed).
    pub expiries_unclaimed: u64,
}

impl Counts {
    /// Adds another seed's counts.
    pub fn add(&mut self, other: &Counts) {
        self.claimed += other.claimed;
        self.unclaimed.add(&other.unclaimed);
        self.expiries += other.expiries;
        self.expiries_unclaimed += other.expiries_unclaimed;
        self.slack_ticks_min = match (self.slack_ticks_min, other.slack_ticks_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// The check's state for one seed.
#[derive(Debug, Default)]
pub struct FollowerExpiry {
    /// Leader ticks from a learner's receipt of a frame until its report is surely in.
    report_ticks: u64,
    /// How long before a frame a disturbance of the learner, the leader or their link still
    /// voids the claim, ns.
    grace_ns: u64,
    /// Servers in the cluster.
    nodes: usize,
    /// Per leader slot, frames waiting for their report to be due, in receipt order.
    pending: Vec<VecDeque<Relay>>,
    /// Claimed frames: `(leader slot, incarnation, session)` → the latest one's leader tick,
    /// learner slot and time (ns).
    heard: BTreeMap<(usize, u32, SessionId), (u64, usize, u64)>,
    /// Per pair of servers (`a * nodes + b`, `a < b`): when a message between them was last
    /// lost, cut, late or dropped, ns.
    disturbed_ns: Vec<Option<u64>>,
    /// Per server: when it last stopped serving, ns.
    left_ns: Vec<u64>,
    /// What was covered.
    pub counts: Counts,
}

impl FollowerExpiry {
    /// The check for a seed's configuration.
    pub fn new(swarm: &Swarm) -> FollowerExpiry {
        let tick_ms = u64::from(swarm.tick_ms);
        let ticks_per_time = u64::from(swarm.tick_time_ms).div_ceil(tick_ms).max(1);
        // `Leader::on_tick`: a ping round every half tickTime.
        let ping_every = (ticks_per_time / 2).max(1);
        // The leader's tick at its fastest: it counts the most ticks over a flight.
        let drift = swarm.drift_ppm_max.unsigned_abs();
        let tick_ns_min = tick_ms * 1_000_000 * 1_000_000 / (1_000_000 + drift);
        let flight_ticks = (2 * swarm.net.delay_ns_max).div_ceil(tick_ns_min);
        let report_ticks = ping_every + flight_ticks + 1;
        // The learner's tick at its slowest: its syncLimit lasts longest.
        let tick_time_ns = u64::from(swarm.tick_time_ms) * 1_000_000;
        let sync_ns = u64::from(swarm.sync_limit) * tick_time_ns;
        let slowest = |ns: u64| ns * 1_000_000 / (1_000_000 - drift.min(500_000));
        let grace_ns = slowest(2 * sync_ns + tick_time_ns);
        assert!(report_ticks > ping_every, "a report needs the flight too");
        assert!(grace_ns > 2 * sync_ns, "the grace covers both syncLimits");
        let nodes = swarm.cluster_size;
        FollowerExpiry {
            report_ticks,
            grace_ns,
            nodes,
            pending: vec![VecDeque::new(); nodes],
            heard: BTreeMap::new(),
            disturbed_ns: vec![None; nodes * nodes],
            left_ns: vec![0; nodes],
            counts: Counts::default(),
        }
    }

    /// A message between servers `a` and `b` was lost, cut, late or dropped at `now`.
    pub fn disturbed(&mut self, a: usize, b: usize, now: u64) {
        assert_ne!(a, b, "a pair of two servers");
        let i = a.min(b) * self.nodes + a.max(b);
        self.disturbed_ns[i] = Some(now);
        assert!(i < self.disturbed_ns.len(), "both are servers");
    }

    /// A serving learner got a frame of `relay.session`; its leader is slot `leader`.
    pub fn relayed(&mut self, leader: usize, relay: Relay) {
        let queue = &mut self.pending[leader];
        assert!(queue.back().is_none_or(|r| r.at_ns <= relay.at_ns), "frames come in time order");
        queue.push_back(relay);
    }

    /// Settles the frames whose report to leader slot `leader` is due by its tick now: each is
    /// claimed or counted as not claimed. `deciding` are the sessions the leader decides to
    /// close in the step just taken (open until it).
    pub(crate) fn settle(&mut self, leader: usize, nodes: &[NodeSlot], deciding: &[SessionId]) {
        if self.pending[leader].is_empty() {
            return;
        }
        let slot = &nodes[leader];
        let term = match &slot.node {
            Some(node) if node.is_established_leader() => Some((node, (slot.inc, node.epochs().1))),
            _ => None,
        };
        while let Some(relay) = self.pending[leader].front().copied() {
            let Some((node, term)) = term.filter(|(_, term)| *term == relay.term) else {
                self.pending[leader].pop_front();
                self.counts.unclaimed.term_ended += 1;
                continue;
            };
            let tick = node.now_tick();
            if relay.leader_tick + self.report_ticks > tick {
                return;
            }
            self.pending[leader].pop_front();
            let session = relay.session;
            let open = deciding.contains(&session)
                || node.sessions().get(session).is_some_and(|s| !s.closing);
            let since = self.window_start(relay);
            let paused = [relay.learner.0, leader].iter().any(|&n| nodes[n].alive_since > since);
            let link = self.disturbed_since(relay.learner.0, leader, since);
            let unclaimed = &mut self.counts.unclaimed;
            let reason = if !open {
                Some(&mut unclaimed.closed)
            } else if !still_serving(nodes, leader, relay, term.1) {
                Some(&mut unclaimed.rejoined)
            } else if paused {
                Some(&mut unclaimed.paused)
            } else if link {
                Some(&mut unclaimed.link)
            } else {
                None
            };
            if let Some(count) = reason {
                *count += 1;
                continue;
            }
            self.counts.claimed += 1;
            let latest = (relay.leader_tick, relay.learner.0, relay.at_ns);
            let heard = self.heard.entry((leader, term.0, session)).or_insert(latest);
            if latest.0 >= heard.0 {
                *heard = latest;
            }
            assert!(heard.0 <= tick, "heard before now");
        }
    }

    /// Server `n` stopped serving at `now` (it left its leader; a crash ends its learner
    /// state too, with a restart after it).
    pub fn left(&mut self, n: usize, now: u64) {
        assert!(self.left_ns[n] <= now, "time goes forward");
        self.left_ns[n] = now;
    }

    /// From when a disturbance voids `relay`'s claim: the grace before the frame, or since
    /// its learner last left a leader (what came before belongs to an older FIFO session).
    fn window_start(&self, relay: Relay) -> u64 {
        // (A learner that left after the frame fails `still_serving` first.)
        relay.at_ns.saturating_sub(self.grace_ns).max(self.left_ns[relay.learner.0])
    }

    /// A message between `a` and `b` was lost, cut, late or dropped after `since`.
    fn disturbed_since(&self, a: usize, b: usize, since: u64) -> bool {
        let i = a.min(b) * self.nodes + a.max(b);
        self.disturbed_ns[i].is_some_and(|d| d >= since)
    }

    /// Leader slot `n` (incarnation `inc`) decided at its tick `tick` that `session` (of
    /// `timeout_ticks`) expired: no claimed frame of it is younger than the timeout.
    pub fn expired(
        &mut self,
        (n, inc): (usize, u32),
        session: SessionId,
        tick: u64,
        timeout_ticks: u64,
        now: u64,
    ) -> Option<Violation> {
        let Some(&(heard, learner, at_ns)) = self.heard.get(&(n, inc, session)) else {
            self.counts.expiries_unclaimed += 1;
            return None;
        };
        assert!(heard <= tick, "heard before the expiry decision");
        let silent = tick - heard;
        self.counts.expiries += 1;
        if let Some(slack) = silent.checked_sub(timeout_ticks) {
            let least = self.counts.slack_ticks_min.get_or_insert(slack);
            *least = (*least).min(slack);
        }
        (silent < timeout_ticks).then(|| Violation {
            invariant: "follower_expiry",
            at_ns: now,
            message: format!(
                "n{n} expired session {session} {silent} ticks after learner n{learner} got a \
                 frame of it at {:.6}s (its report was due after {} ticks); its timeout is \
                 {timeout_ticks} ticks",
                at_ns as f64 / 1e9,
                self.report_ticks
            ),
        })
    }
}

/// The relay's learner is the same incarnation in the same learner state, following `leader`
/// in `epoch`.
fn still_serving(nodes: &[NodeSlot], leader: usize, relay: Relay, epoch: u32) -> bool {
    let (n, inc, since) = relay.learner;
    let slot = &nodes[n];
    let Some(node) = &slot.node else { return false };
    slot.inc == inc
        && slot.serving_since == Some(since)
        && node.leader().is_some_and(|id| id.0 as usize == leader + 1)
        && node.epochs().1 == epoch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> FollowerExpiry {
        let mut swarm = Swarm::of_seed(0);
        swarm.cluster_size = 3;
        FollowerExpiry::new(&swarm)
    }

    #[test]
    fn a_claimed_frame_bounds_the_expiry_and_others_do_not() {
        let mut f = check();
        let s = SessionId(7);
        f.heard.insert((0, 0, s), (20, 1, 0));
        assert_eq!(f.expired((0, 0), s, 50, 30, 0), None, "30 ticks of 30 is fine");
        let v = f.expired((0, 0), s, 49, 30, 0).expect("29 of 30 is too soon");
        assert_eq!(v.invariant, "follower_expiry");
        assert!(v.message.contains("29 ticks after"), "{}", v.message);
        assert_eq!(f.expired((0, 1), s, 21, 30, 0), None, "another incarnation claimed nothing");
        assert_eq!(f.expired((1, 0), s, 21, 30, 0), None, "another leader claimed nothing");
        assert_eq!(f.counts.expiries, 2, "only expiries of claimed frames are held");
        assert_eq!(f.counts.slack_ticks_min, Some(0));
    }

    #[test]
    fn a_disturbance_voids_claims_within_the_grace_unless_the_learner_left_since() {
        let mut f = check();
        let grace = f.grace_ns;
        let relay = |at_ns| Relay {
            learner: (1, 0, 0),
            term: (0, 1),
            session: SessionId(7),
            leader_tick: 0,
            at_ns,
        };
        f.disturbed(2, 1, 10 * grace);
        let start = |f: &FollowerExpiry, at| f.window_start(relay(at));
        assert!(f.disturbed_since(1, 2, start(&f, 10 * grace)), "at the frame");
        assert!(f.disturbed_since(2, 1, start(&f, 11 * grace - 1)), "within the grace after it");
        assert!(!f.disturbed_since(1, 2, start(&f, 11 * grace + 1)), "past the grace");
        assert!(f.disturbed_since(1, 2, start(&f, 9 * grace)), "a frame before it");
        assert!(!f.disturbed_since(0, 1, start(&f, 10 * grace)), "another pair");
        f.left(1, 10 * grace - 1);
        assert!(f.disturbed_since(1, 2, start(&f, 10 * grace + 2)), "in the session after a leave");
        f.left(1, 10 * grace + 1);
        assert!(!f.disturbed_since(1, 2, start(&f, 10 * grace + 2)), "an older session's");
    }

    #[test]
    fn the_report_waits_for_a_ping_and_its_flight() {
        let f = check();
        let swarm = Swarm::of_seed(0);
        let ticks_per_time = u64::from(swarm.tick_time_ms / swarm.tick_ms);
        assert!(f.report_ticks > ticks_per_time / 2, "more than a ping interval");
        assert!(f.report_ticks <= ticks_per_time / 2 + 2, "flights are under a tick");
    }
}
