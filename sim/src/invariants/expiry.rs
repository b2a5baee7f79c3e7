//! Session expiry, lower bound: the leader never expires a session sooner than the session's
//! timeout after it last heard from the client itself. (The upper bound, that a dead client's
//! session does end, is [`super::ephemerals`].)
//!
//! Source: ZooKeeper programmer's guide, "ZooKeeper Sessions" (a session expires when the
//! cluster has not heard from the client within the timeout); `SessionTrackerImpl`
//! (expiration = the next bucket boundary after now + timeout, so never sooner).
//!
//! Both times are counted in the leader's own core ticks, so clock drift and pauses cannot
//! blur the bound: `close_tick - heard_tick >= ceil(timeout_ms / tick_ms)`. Only frames the
//! leader received on the session's own connection count as heard; a client of a follower is
//! heard through PING replies, which may be lost, duplicated or late, so its sessions are not
//! bounded here.

use std::collections::BTreeMap;

use zkr_core::types::SessionId;

use super::Violation;

/// When each leader incarnation last heard from each session: `(slot, incarnation, session)`
/// → that node's tick.
#[derive(Debug, Default)]
pub struct Expiry {
    heard: BTreeMap<(usize, u32, SessionId), u64>,
}

impl Expiry {
    /// Node `n` (incarnation `inc`), leading, got a frame of `session` at its tick `tick`.
    pub fn heard(&mut self, n: usize, inc: u32, session: SessionId, tick: u64) {
        let last = self.heard.entry((n, inc, session)).or_insert(tick);
        assert!(*last <= tick, "a node's ticks never go back");
        *last = tick;
    }

    /// Node `n` decided at its tick `tick` that `session` (of `timeout_ticks`) expired.
    pub fn expired(
        &self,
        (n, inc): (usize, u32),
        session: SessionId,
        tick: u64,
        timeout_ticks: u64,
        now: u64,
    ) -> Option<Violation> {
        let heard = *self.heard.get(&(n, inc, session))?;
        assert!(heard <= tick, "heard before the expiry decision");
        let silent = tick - heard;
        (silent < timeout_ticks).then(|| Violation {
            invariant: "expiry",
            at_ns: now,
            message: format!(
                "n{n} expired session {session} after {silent} ticks of silence; its timeout \
                 is {timeout_ticks} ticks"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_before_the_timeout_is_reported_and_after_it_is_not() {
        let mut e = Expiry::default();
        let s = SessionId(7);
        e.heard(0, 0, s, 10);
        e.heard(0, 0, s, 20);
        assert_eq!(e.expired((0, 0), s, 50, 30, 0), None, "30 silent ticks of 30 is fine");
        let v = e.expired((0, 0), s, 49, 30, 0).expect("29 of 30 is too soon");
        assert_eq!(v.invariant, "expiry");
        assert!(v.message.contains("after 29 ticks"), "{}", v.message);
        assert_eq!(e.expired((0, 1), s, 21, 30, 0), None, "another incarnation never heard it");
        assert_eq!(e.expired((1, 0), s, 21, 30, 0), None, "another node never heard it");
    }
}
