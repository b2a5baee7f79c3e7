//! Fail-over: after a clean crash of the established leader (its connections close, so the
//! survivors get `Input::PeerLost`; every other server up and unpaused; no partition, no
//! datagram loss, no slow peer link; no other fault and no restart until recovery), a new
//! leader is established
//! within [`bound_ns`], which is derived from the election timeouts (finalize wait, resends)
//! and never from `syncLimit`/`initLimit`. A leader that is silent rather than gone (a pause, a
//! partition) is found by those limits instead, and is not bounded here.
//!
//! Also records, for every crash of an established leader (clean or not), the time to the
//! next established leader and to the next committed write (a txn of a newer epoch applied
//! anywhere), for the campaign summary.
//!
//! Source: issue 17 (ZooKeeper's follower treats a closed leader connection as a lost leader
//! and elects at once; fail-over in about a second); ZooKeeper's `FastLeaderElection`
//! (`finalizeWait` 200 ms, notification timeout doubling from 200 ms).

use zkr_core::zab::election::FINALIZE_WAIT_MS;
use zkr_core::zab::learner::FOLLOWER_INFO_RESEND_MS;

use super::Violation;
use crate::swarm::Swarm;

/// One leader crash being measured.
#[derive(Clone, Copy, Debug)]
struct Pending {
    at: u64,
    node: usize,
    epoch: u32,
    clean: bool,
    established: bool,
}

/// Fail-over measurements of one seed.
#[derive(Debug, Default)]
pub struct Failover {
    pending: Option<Pending>,
    /// Leader crashes seen, and how many of them were clean.
    pub crashes: (u64, u64),
    /// Crash → next established leader, ns, per leader crash that got one.
    pub established_ns: Vec<u64>,
    /// Crash → next committed write of a newer epoch, ns.
    pub write_ns: Vec<u64>,
    /// Crash → next established leader, ns, for the crashes that stayed clean.
    pub clean_established_ns: Vec<u64>,
}

/// The longest a clean leader crash may take to a new established leader, ns: detection (one
/// network delay), the election (a finalize wait drawn from `[1, 2] ×` 200 ms, rounded up to
/// ticks, plus one resend round of the same length), FOLLOWERINFO's resend, a few ticks of
/// granularity, all in the slowest clock the seed allows; then the handshake's dozen message
/// delays and four fsyncs, and slack.
pub fn bound_ns(s: &Swarm) -> u64 {
    let tick_ms = s.tick_ms as u64;
    let finalize_ms = 2 * FINALIZE_WAIT_MS.div_ceil(tick_ms) * tick_ms;
    let resend_ms = FOLLOWER_INFO_RESEND_MS.div_ceil(tick_ms) * tick_ms;
    let ms = 2 * finalize_ms + resend_ms + 4 * tick_ms;
    let slowest = 1_000_000 - s.drift_ppm_max.min(500_000) as u64;
    let clock_ns = (ms as u128 * 1_000_000 * 1_000_000 / slowest as u128) as u64;
    clock_ns + 12 * s.net.delay_ns_max + 4 * s.fsync_ns.1 + 100_000_000
}

impl Failover {
    /// The established leader, slot `node` of `epoch`, crashed at `now`.
    pub fn leader_crashed(&mut self, now: u64, node: usize, epoch: u32, clean: bool) {
        assert!(self.pending.is_none_or(|p| p.at <= now), "time never goes back");
        self.crashes.0 += 1;
        self.crashes.1 += u64::from(clean);
        self.pending = Some(Pending { at: now, node, epoch, clean, established: false });
    }

    /// Another fault happened: what is pending is no longer a clean crash.
    pub fn disturbed(&mut self) {
        if let Some(p) = &mut self.pending {
            p.clean = false;
        }
    }

    /// Slot `n` became the established leader of `epoch` at `now`.
    pub fn established(&mut self, now: u64, n: usize, epoch: u32, bound: u64) -> Option<Violation> {
        let p = self.pending.as_mut()?;
        if p.established || epoch <= p.epoch {
            return None;
        }
        p.established = true;
        let took = now - p.at;
        self.established_ns.push(took);
        if p.clean {
            self.clean_established_ns.push(took);
        }
        if !p.clean || took <= bound {
            return None;
        }
        let message = format!(
            "the leader n{} of epoch {} crashed cleanly at {:.3}s; n{n} was established only \
             {:.3}s later (bound {:.3}s from the election timeouts)",
            p.node,
            p.epoch,
            p.at as f64 / 1e9,
            took as f64 / 1e9,
            bound as f64 / 1e9
        );
        Some(Violation { invariant: "failover", at_ns: now, message })
    }

    /// A node applied a txn of `epoch` at `now`: the first of a newer epoch ends the wait.
    pub fn committed(&mut self, now: u64, epoch: u32) {
        if let Some(p) = self.pending.filter(|p| epoch > p.epoch) {
            self.write_ns.push(now - p.at);
            self.pending = None;
        }
    }

    /// Called as time passes: a clean crash with no new leader past the bound is a violation.
    pub fn check(&mut self, now: u64, bound: u64) -> Option<Violation> {
        let p = self.pending?;
        if !p.clean || p.established || now <= p.at + bound {
            return None;
        }
        self.pending = None;
        let message = format!(
            "the leader n{} of epoch {} crashed cleanly at {:.3}s; no leader was established \
             within {:.3}s (bound from the election timeouts)",
            p.node,
            p.epoch,
            p.at as f64 / 1e9,
            bound as f64 / 1e9
        );
        Some(Violation { invariant: "failover", at_ns: now, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_clean_fail_over_is_reported_and_a_disturbed_one_is_not() {
        let mut f = Failover::default();
        f.leader_crashed(1_000, 0, 1, true);
        assert!(f.check(1_500, 1_000).is_none(), "within the bound");
        let v = f.check(2_001, 1_000).expect("past the bound with no leader");
        assert_eq!(v.invariant, "failover");
        f.leader_crashed(3_000, 1, 2, true);
        f.disturbed();
        assert!(f.check(9_000, 1_000).is_none(), "another fault: not a clean crash");
        assert!(f.established(9_000, 2, 3, 1_000).is_none());
        f.committed(9_500, 3);
        assert_eq!(f.established_ns, vec![6_000]);
        assert_eq!(f.write_ns, vec![6_500]);
    }

    #[test]
    fn a_new_leader_of_the_same_epoch_does_not_count() {
        let mut f = Failover::default();
        f.leader_crashed(0, 0, 4, true);
        assert!(f.established(10, 0, 4, 1_000).is_none());
        assert!(f.established_ns.is_empty(), "same epoch: not a new leader");
        assert!(f.established(5_000, 1, 5, 1_000).is_some(), "late and clean: reported");
    }
}
