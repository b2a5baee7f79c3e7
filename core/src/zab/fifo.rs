//! The FIFO sequencer of one leader–learner session, used by both ends (the leader keeps one per
//! learner, the learner one for its leader).
//!
//! Why it exists: Zab assumes FIFO channels between the leader and each follower (Zab paper
//! §III, the system model; ZooKeeper gets them from one TCP connection per learner).
//! Our transport may lose, duplicate, delay or reorder messages, so the channel is rebuilt here:
//! every message of a session travels as `Session { nonce, seq, msg }` (see `zab::message`),
//! numbered per direction from 0. The receiver takes only the next number, drops earlier ones
//! (duplicates) and holds later ones until the hole before them fills. Without it a learner
//! could take NEWLEADER before the DIFF it certifies, or the leader a client's second write
//! before its first (FIFO client order, ZooKeeper paper §2.3; both in `docs/ZAB-CLAIMS.md`).
//!
//! Invariants (checked by `invariants`):
//! - every held message is numbered after the next one expected (`early` keys > `recv_seq`);
//! - the channel holds at most `MAX_EARLY_MESSAGES + 1` messages (the owner gives the session up
//!   when `receive` reports `Overflow`).
//!
//! What a lost message does: its hole never fills, so the session stalls until the peer counts
//! as silent (`syncLimit`/`initLimit`) or the held messages overflow; either way the session is
//! abandoned and started again from FOLLOWERINFO, as a broken TCP connection would be.

use std::collections::BTreeMap;

use crate::zab::message::{SessionMessage, ZabMessage};

/// How many out-of-order session messages a server holds before it gives the session up.
pub const MAX_EARLY_MESSAGES: usize = 4096;

/// What `FifoChannel::receive` did with a numbered message.
#[derive(Debug, PartialEq)]
pub enum Receipt {
    /// Another session's message or a duplicate: dropped.
    Dropped,
    /// Ahead of the next expected number: held until the hole before it fills.
    Held,
    /// Held, and now too many are held: the owner must give the session up.
    Overflow,
    /// The next message in order: handle it, then call `next_ready` until it returns `None`.
    Deliver(SessionMessage),
}

/// One direction pair of a leader–learner session: what we send and what we accept.
#[derive(Clone, Debug)]
pub struct FifoChannel {
    /// The learner incarnation's FOLLOWERINFO nonce: names the session on both ends.
    nonce: u64,
    /// Sequence number of the next message we send.
    send_seq: u64,
    /// Sequence number of the next message we accept.
    recv_seq: u64,
    /// Messages that arrived ahead of `recv_seq`, held until the hole before them fills.
    early: BTreeMap<u64, SessionMessage>,
}

impl FifoChannel {
    /// A fresh session named `nonce`: nothing sent, nothing received.
    pub fn new(nonce: u64) -> FifoChannel {
        let channel = FifoChannel { nonce, send_seq: 0, recv_seq: 0, early: BTreeMap::new() };
        assert_eq!(channel.send_seq, 0);
        assert!(channel.early.is_empty());
        channel
    }

    /// The session's name.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// How many messages this end has sent in the session.
    pub fn sent(&self) -> u64 {
        self.send_seq
    }

    /// Numbers `msg` as the next message of the session.
    pub fn wrap(&mut self, msg: SessionMessage) -> ZabMessage {
        let seq = self.send_seq;
        self.send_seq += 1;
        assert!(self.send_seq > seq, "sequence numbers never wrap");
        ZabMessage::Session { nonce: self.nonce, seq, msg }
    }

    /// The session's first message again (a LEADERINFO the learner never got), while it is the
    /// only one sent: once more went out, the peer will see a gap and start over instead, so a
    /// second copy of message 0 could only be dropped as a duplicate.
    pub fn rewrap_first(&self, msg: SessionMessage) -> Option<ZabMessage> {
        if self.send_seq != 1 {
            return None;
        }
        Some(ZabMessage::Session { nonce: self.nonce, seq: 0, msg })
    }

    /// Takes message `seq` of session `nonce` from the peer.
    pub fn receive(&mut self, nonce: u64, seq: u64, msg: SessionMessage) -> Receipt {
        if nonce != self.nonce || seq < self.recv_seq {
            return Receipt::Dropped;
        }
        if seq > self.recv_seq {
            // A duplicate of a held message replaces it: both copies carry the same content.
            self.early.insert(seq, msg);
            assert!(self.early.keys().next().is_some_and(|first| *first > self.recv_seq));
            if self.early.len() > MAX_EARLY_MESSAGES {
                return Receipt::Overflow;
            }
            return Receipt::Held;
        }
        assert_eq!(seq, self.recv_seq);
        self.recv_seq += 1;
        Receipt::Deliver(msg)
    }

    /// The held message that is next in order now, if any (after a `Deliver` was handled).
    pub fn next_ready(&mut self) -> Option<SessionMessage> {
        // Nearly always nothing is held (messages arrive in order): no search then.
        if self.early.is_empty() {
            return None;
        }
        let first = self.early.keys().next().copied();
        assert!(first.is_some_and(|first| first >= self.recv_seq), "nothing held is stale");
        let msg = self.early.remove(&self.recv_seq)?;
        self.recv_seq += 1;
        assert!(self.early.keys().next().is_none_or(|first| *first >= self.recv_seq));
        Some(msg)
    }

    /// The number of the next message we accept (for logs).
    pub fn expected(&self) -> u64 {
        self.recv_seq
    }

    /// Checks the channel's invariants.
    pub fn invariants(&self) {
        if let Some(first) = self.early.keys().next() {
            assert!(*first > self.recv_seq, "held messages are after the next expected one");
        } else {
            assert!(self.early.is_empty());
        }
        assert!(self.early.len() <= MAX_EARLY_MESSAGES + 1, "the owner gives up on overflow");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(n: u32) -> SessionMessage {
        SessionMessage::Ack { zxid: crate::types::Zxid::new(1, n) }
    }

    #[test]
    fn wrap_numbers_from_zero() {
        let mut c = FifoChannel::new(7);
        assert_eq!(c.wrap(ack(1)), ZabMessage::Session { nonce: 7, seq: 0, msg: ack(1) });
        assert_eq!(c.wrap(ack(2)), ZabMessage::Session { nonce: 7, seq: 1, msg: ack(2) });
        assert_eq!(c.sent(), 2);
    }

    #[test]
    fn in_order_is_delivered_duplicates_and_strangers_dropped() {
        let mut c = FifoChannel::new(7);
        assert_eq!(c.receive(7, 0, ack(1)), Receipt::Deliver(ack(1)));
        assert_eq!(c.receive(7, 0, ack(1)), Receipt::Dropped, "duplicate");
        assert_eq!(c.receive(8, 1, ack(2)), Receipt::Dropped, "another session");
        assert_eq!(c.expected(), 1);
        c.invariants();
    }

    #[test]
    fn early_messages_wait_for_the_hole() {
        let mut c = FifoChannel::new(7);
        assert_eq!(c.receive(7, 2, ack(3)), Receipt::Held);
        assert_eq!(c.receive(7, 1, ack(2)), Receipt::Held);
        assert_eq!(c.next_ready(), None, "the hole at 0 is not filled");
        assert_eq!(c.receive(7, 0, ack(1)), Receipt::Deliver(ack(1)));
        assert_eq!(c.next_ready(), Some(ack(2)));
        assert_eq!(c.next_ready(), Some(ack(3)));
        assert_eq!(c.next_ready(), None);
        assert_eq!(c.expected(), 3);
        c.invariants();
    }

    #[test]
    fn too_many_early_messages_overflow() {
        let mut c = FifoChannel::new(7);
        for seq in 1..=MAX_EARLY_MESSAGES as u64 {
            assert_eq!(c.receive(7, seq, ack(1)), Receipt::Held);
        }
        assert_eq!(c.receive(7, MAX_EARLY_MESSAGES as u64 + 1, ack(1)), Receipt::Overflow);
        c.invariants();
    }

    #[test]
    fn first_message_is_resent_only_while_alone() {
        let mut c = FifoChannel::new(7);
        assert_eq!(c.rewrap_first(ack(1)), None, "nothing sent yet");
        c.wrap(ack(1));
        assert_eq!(
            c.rewrap_first(ack(1)),
            Some(ZabMessage::Session { nonce: 7, seq: 0, msg: ack(1) })
        );
        c.wrap(ack(2));
        assert_eq!(c.rewrap_first(ack(1)), None, "a gap tells the peer to start over");
    }

    #[test]
    #[should_panic(expected = "held messages are after the next expected one")]
    fn invariants_catch_a_held_message_that_is_due() {
        let mut c = FifoChannel::new(7);
        c.early.insert(0, ack(1));
        c.invariants();
    }
}
