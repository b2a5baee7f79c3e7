//! The simulated network: endpoints joined by links, generic over the message type so that client
//! frames today and Zab peer messages tomorrow travel the same way.
//!
//! Model (what a TCP-like transport allows, and no more):
//! - A [`LinkKind::Stream`] link is a FIFO session: each direction delivers in send order, each
//!   message after a delay; nothing is lost, duplicated or reordered *within* a session. Loss is
//!   modelled as a session break: [`Network::break_link`] drops everything in flight both ways
//!   and both ends are told (the shell's `ClientClosed` / `PeerDisconnected`).
//! - Messages on different links race freely (reordering across sessions).
//! - A [`LinkKind::Datagram`] link (for transports that allow it) delays each message
//!   independently, may drop it and may duplicate it.
//! - A [`Partition`] blocks directions between endpoints. Opening a link across a blocked
//!   direction fails; a Stream link crossing a newly blocked direction drops what is sent into
//!   the blocked direction until the simulator breaks it (after a detection delay). A Stream
//!   direction that lost a message stays dead even if the partition heals first: TCP never
//!   delivers a later byte after losing an earlier one.
//!
//! Delivery contract with the simulator: every accepted send returns a delivery time; the
//! simulator schedules one deliver event per accepted message at that time and calls
//! [`Network::deliver`], which pops the oldest message of that direction. Invariant: a Stream
//! direction's delivery times never decrease, so the k-th deliver event pops the k-th message.
//! Links are never reused: a [`LinkId`] names one session for its whole life.

use std::collections::{BTreeSet, VecDeque};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A network endpoint (a node or a client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr(pub u32);

/// One session between two endpoints; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u64);

/// Which way a message travels on a link: `Forward` is from the opener to the acceptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dir {
    /// Opener → acceptor.
    #[default]
    Forward,
    /// Acceptor → opener.
    Backward,
}

impl Dir {
    fn index(self) -> usize {
        match self {
            Dir::Forward => 0,
            Dir::Backward => 1,
        }
    }
}

/// What the transport guarantees on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// FIFO, lossless until broken (TCP).
    Stream,
    /// Independent delays, loss and duplication (UDP).
    Datagram,
}

/// Delay and datagram fault rates, chosen per seed.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Smallest one-way delay, ns.
    pub delay_ns_min: u64,
    /// Largest one-way delay, ns (before `slow` links multiply it).
    pub delay_ns_max: u64,
    /// Datagram links: probability a message is lost.
    pub datagram_loss: f64,
    /// Datagram links: probability a message is delivered twice.
    pub datagram_dup: f64,
}

impl Default for NetConfig {
    fn default() -> NetConfig {
        NetConfig {
            delay_ns_min: 50_000,
            delay_ns_max: 2_000_000,
            datagram_loss: 0.0,
            datagram_dup: 0.0,
        }
    }
}

/// Which directions between endpoints are blocked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Partition {
    /// Everyone reaches everyone.
    #[default]
    None,
    /// Two groups of nodes that cannot reach each other; endpoints in neither group (clients)
    /// reach both.
    Halves {
        /// One side.
        left: BTreeSet<Addr>,
        /// The other side.
        right: BTreeSet<Addr>,
    },
    /// One endpoint reaches nobody and nobody reaches it.
    Isolate {
        /// The isolated endpoint.
        addr: Addr,
    },
    /// Messages from `from` to `to` are lost; the other direction works.
    OneWay {
        /// Senders whose messages are lost.
        from: BTreeSet<Addr>,
        /// Receivers that do not get them.
        to: BTreeSet<Addr>,
    },
    /// Two halves that cannot reach each other, and one bridge node that reaches both.
    Bridge {
        /// One side (without the bridge).
        left: BTreeSet<Addr>,
        /// The other side (without the bridge).
        right: BTreeSet<Addr>,
        /// The node in both.
        bridge: Addr,
    },
}

impl Partition {
    /// True if a message from `from` to `to` is lost under this partition.
    #[inline]
    pub fn blocks(&self, from: Addr, to: Addr) -> bool {
        // Most sends happen with no partition: answered without a call.
        if matches!(self, Partition::None) {
            return false;
        }
        self.blocks_slow(from, to)
    }

    /// `blocks` under a partition other than `None`.
    fn blocks_slow(&self, from: Addr, to: Addr) -> bool {
        let across = |l: &BTreeSet<Addr>, r: &BTreeSet<Addr>| {
            (l.contains(&from) && r.contains(&to)) || (r.contains(&from) && l.contains(&to))
        };
        match self {
            Partition::None => false,
            Partition::Halves { left, right } => across(left, right),
            Partition::Isolate { addr } => from != to && (from == *addr || to == *addr),
            Partition::OneWay { from: f, to: t } => f.contains(&from) && t.contains(&to),
            Partition::Bridge { left, right, bridge } => {
                assert!(!left.contains(bridge) && !right.contains(bridge), "bridge is in neither");
                across(left, right)
            }
        }
    }

    /// A short name for the fault counters.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Partition::None => "heal",
            Partition::Halves { .. } => "partition_halves",
            Partition::Isolate { .. } => "partition_isolate",
            Partition::OneWay { .. } => "partition_one_way",
            Partition::Bridge { .. } => "partition_bridge",
        }
    }
}

struct Link<M> {
    ends: [Addr; 2],
    kind: LinkKind,
    /// Per direction: messages in flight with their delivery times.
    queues: [VecDeque<(u64, M)>; 2],
    /// Per direction: the latest delivery time handed out (Stream FIFO).
    last_at: [u64; 2],
    /// Extra delay factor for a slow link (1 = normal).
    slow: u64,
    /// Per direction: a Stream message was lost, so nothing later may arrive.
    dead: [bool; 2],
}

impl<M> Link<M> {
    /// Queues `msg` in direction `dir`, sent at `now` with a drawn `delay` (before the link's
    /// slow factor); returns its delivery time.
    fn enqueue(&mut self, dir: Dir, now: u64, delay: u64, msg: M) -> u64 {
        let mut at = now + delay * self.slow;
        if self.kind == LinkKind::Stream {
            at = at.max(self.last_at[dir.index()]);
            self.last_at[dir.index()] = at;
        }
        let queue = &mut self.queues[dir.index()];
        // Datagrams keep their queue sorted by delivery time (ties in send order). Most
        // messages go last (every Stream message, and a datagram due no earlier than the last
        // in flight): a push, where `insert` shifted nothing but cost its index work.
        if queue.back().is_none_or(|(t, _)| *t <= at) {
            queue.push_back((at, msg));
        } else {
            let pos = queue.iter().rposition(|(t, _)| *t <= at).map_or(0, |p| p + 1);
            queue.insert(pos, (at, msg));
        }
        at
    }
}

/// The deliveries one send scheduled, `(direction, time)`: none, one, or two for a duplicated
/// datagram. A fixed pair rather than a `Vec`: a send is the most frequent thing the simulator
/// does, and this keeps it from allocating.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    items: [(Dir, u64); 2],
    len: usize,
}

impl Sent {
    /// The deliveries in `dir` of a send: the duplicate's at `first` (if any), then the
    /// message's at `last`. Built whole, in one expression: filled in entry by entry (a byte
    /// for the direction, a word for the time), it was then copied out with 16-byte loads
    /// that straddled those stores and stalled at every send.
    fn of(dir: Dir, first: Option<u64>, last: u64) -> Sent {
        match first {
            Some(first) => Sent { items: [(dir, first), (dir, last)], len: 2 },
            None => Sent { items: [(dir, last), (dir, 0)], len: 1 },
        }
    }
}

impl std::ops::Deref for Sent {
    type Target = [(Dir, u64)];

    fn deref(&self) -> &[(Dir, u64)] {
        &self.items[..self.len]
    }
}

impl IntoIterator for Sent {
    type Item = (Dir, u64);
    type IntoIter = std::iter::Take<std::array::IntoIter<(Dir, u64), 2>>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter().take(self.len)
    }
}

/// A delivered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery<M> {
    /// The sender.
    pub from: Addr,
    /// The receiver.
    pub to: Addr,
    /// The message.
    pub msg: M,
}

/// Where link `id` sits in `Network::links`; `None` for the id 0, which is never handed out.
fn slot_index(id: LinkId) -> Option<usize> {
    usize::try_from(id.0.checked_sub(1)?).ok()
}

/// The network state. Iteration is in link id order only, so results never depend on hashing.
pub struct Network<M> {
    config: NetConfig,
    /// Every link ever opened, at index `id - 1` (ids are handed out from 1 and never reused);
    /// `None` once broken. A slot per id rather than a `BTreeMap`: every send and delivery
    /// looks its link up (two searches per peer message), and this makes each an index.
    links: Vec<Option<Link<M>>>,
    next_link: u64,
    partition: Partition,
}

impl<M: Clone> Network<M> {
    /// An empty network.
    pub fn new(config: NetConfig) -> Network<M> {
        Network { config, links: Vec::new(), next_link: 1, partition: Partition::None }
    }

    /// Stops datagram loss and duplication (the liveness phase runs on a clean network).
    pub fn quiet(&mut self) {
        self.config.datagram_loss = 0.0;
        self.config.datagram_dup = 0.0;
    }

    /// The current partition.
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// Opens a session from `from` to `to`; `None` if the partition blocks either direction
    /// (a TCP handshake needs both).
    pub fn open(&mut self, from: Addr, to: Addr, kind: LinkKind) -> Option<LinkId> {
        if kind == LinkKind::Stream
            && (self.partition.blocks(from, to) || self.partition.blocks(to, from))
        {
            return None;
        }
        let id = LinkId(self.next_link);
        self.next_link += 1;
        let link = Link {
            ends: [from, to],
            kind,
            queues: [VecDeque::new(), VecDeque::new()],
            last_at: [0, 0],
            slow: 1,
            dead: [false, false],
        };
        assert_eq!(self.links.len() as u64, id.0 - 1, "link ids are handed out in order");
        self.links.push(Some(link));
        assert!(self.link(id).is_some());
        Some(id)
    }

    /// The open link `id`, if any.
    fn link(&self, id: LinkId) -> Option<&Link<M>> {
        self.links.get(slot_index(id)?)?.as_ref()
    }

    /// The open link `id`, if any, to change.
    fn link_mut(&mut self, id: LinkId) -> Option<&mut Link<M>> {
        self.links.get_mut(slot_index(id)?)?.as_mut()
    }

    /// The open links with their ids, in id order.
    fn open_links(&self) -> impl Iterator<Item = (LinkId, &Link<M>)> {
        let ids = (1u64..).map(LinkId);
        ids.zip(&self.links).filter_map(|(id, l)| Some((id, l.as_ref()?)))
    }

    /// True while the link is open.
    pub fn is_open(&self, link: LinkId) -> bool {
        self.link(link).is_some()
    }

    /// The two ends of an open link: (opener, acceptor).
    pub fn ends(&self, link: LinkId) -> Option<(Addr, Addr)> {
        self.link(link).map(|l| (l.ends[0], l.ends[1]))
    }

    /// Sends `msg` from `from` on `link`. Returns the delivery times to schedule (none if the
    /// link is closed or the message is lost, two for a duplicated datagram).
    pub fn send(
        &mut self,
        link: LinkId,
        from: Addr,
        msg: M,
        now: u64,
        rng: &mut ChaCha8Rng,
    ) -> Sent {
        let (lo, hi) = (self.config.delay_ns_min, self.config.delay_ns_max.max(1));
        let partition = &self.partition;
        let Some(l) = slot_index(link).and_then(|i| self.links.get_mut(i)?.as_mut()) else {
            return Sent::default();
        };
        let dir = if l.ends[0] == from { Dir::Forward } else { Dir::Backward };
        assert!(l.ends.contains(&from), "{from:?} is not an end of {link:?}");
        let to = l.ends[1 - dir.index()];
        let blocked = partition.blocks(from, to);
        if l.kind == LinkKind::Stream && (l.dead[dir.index()] || blocked) {
            l.dead[dir.index()] = true;
            return Sent::default();
        }
        if blocked {
            return Sent::default();
        }
        let copies = match l.kind {
            LinkKind::Stream => 1,
            LinkKind::Datagram if rng.random_bool(self.config.datagram_loss) => 0,
            LinkKind::Datagram if rng.random_bool(self.config.datagram_dup) => 2,
            LinkKind::Datagram => 1,
        };
        if copies == 0 {
            return Sent::default();
        }
        // Only a duplicated datagram is cloned: the clone is the first copy (its delay drawn
        // first), the message itself the last. The message moves once, into the queue: kept
        // in an `Option` and taken out, it was copied through the stack in pieces whose
        // reloads stalled.
        let first = (copies == 2)
            .then(|| l.enqueue(dir, now, rng.random_range(lo..=hi.max(lo)), msg.clone()));
        let last = l.enqueue(dir, now, rng.random_range(lo..=hi.max(lo)), msg);
        Sent::of(dir, first, last)
    }

    /// Pops the next message of `dir` on `link` at time `now`, or `None` if the link was broken
    /// meanwhile. Panics if the message is not due: that would break the delivery contract.
    ///
    /// Inlined into the simulator's delivery (every message passes here): returned from a
    /// call, the delivery was copied out of the queue onto the stack and read back in
    /// overlapping pieces, a stall at every message.
    #[inline(always)]
    pub fn deliver(&mut self, link: LinkId, dir: Dir, now: u64) -> Option<Delivery<M>> {
        let l = self.link_mut(link)?;
        let (at, msg) = l.queues[dir.index()].pop_front()?;
        assert!(at <= now, "message due at {at} delivered early at {now}");
        let (from, to) = match dir {
            Dir::Forward => (l.ends[0], l.ends[1]),
            Dir::Backward => (l.ends[1], l.ends[0]),
        };
        Some(Delivery { from, to, msg })
    }

    /// Breaks a session: everything in flight is dropped. Returns its ends, or `None` if it was
    /// already closed.
    pub fn break_link(&mut self, link: LinkId) -> Option<(Addr, Addr)> {
        let slot = self.links.get_mut(slot_index(link)?)?;
        slot.take().map(|l| (l.ends[0], l.ends[1]))
    }

    /// Makes a link slow: later messages take `factor` times longer (FIFO still holds).
    pub fn slow_link(&mut self, link: LinkId, factor: u64) {
        if let Some(l) = self.link_mut(link) {
            l.slow = factor.max(1);
        }
    }

    /// The delay factor of a link (1 = normal; 1 for a link that is gone).
    pub fn slow_factor(&self, link: LinkId) -> u64 {
        self.link(link).map_or(1, |l| l.slow)
    }

    /// Every open link touching `addr`, in id order.
    pub fn links_of(&self, addr: Addr) -> Vec<LinkId> {
        self.open_links().filter(|(_, l)| l.ends.contains(&addr)).map(|(id, _)| id).collect()
    }

    /// Every open link, in id order.
    pub fn all_links(&self) -> Vec<LinkId> {
        self.open_links().map(|(id, _)| id).collect()
    }

    /// Installs a partition. Returns the Stream links that now cross a blocked direction: the
    /// simulator breaks them after a detection delay (messages sent into the blocked direction
    /// are lost meanwhile). In-flight messages already sent are still delivered: they left
    /// before the cut.
    pub fn set_partition(&mut self, partition: Partition) -> Vec<LinkId> {
        self.partition = partition;
        let p = &self.partition;
        self.open_links()
            .filter(|(_, l)| l.kind == LinkKind::Stream)
            .filter(|(_, l)| p.blocks(l.ends[0], l.ends[1]) || p.blocks(l.ends[1], l.ends[0]))
            .map(|(id, _)| id)
            .collect()
    }

    /// Messages in flight on a link (both directions).
    pub fn in_flight(&self, link: LinkId) -> usize {
        self.link(link).map_or(0, |l| l.queues[0].len() + l.queues[1].len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn net(min: u64, max: u64) -> Network<u32> {
        Network::new(NetConfig { delay_ns_min: min, delay_ns_max: max, ..NetConfig::default() })
    }

    const A: Addr = Addr(1);
    const B: Addr = Addr(2);
    const C: Addr = Addr(3);

    /// Delivers every scheduled message in time order (ties by schedule order).
    fn drain(n: &mut Network<u32>, mut due: Vec<(u64, usize, LinkId, Dir)>) -> Vec<(LinkId, u32)> {
        due.sort();
        let mut out = Vec::new();
        for (at, _, link, dir) in due {
            if let Some(d) = n.deliver(link, dir, at) {
                out.push((link, d.msg));
            }
        }
        out
    }

    #[test]
    fn stream_delivers_in_order_with_delay() {
        let mut n = net(1, 1_000);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let l = n.open(A, B, LinkKind::Stream).unwrap();
        let mut due = Vec::new();
        for i in 0..200u32 {
            let now = i as u64 * 3;
            let sent = n.send(l, A, i, now, &mut rng);
            assert_eq!(sent.len(), 1, "a stream neither drops nor duplicates");
            assert!(sent[0].1 > now, "every message takes some time");
            due.push((sent[0].1, due.len(), l, sent[0].0));
        }
        let got: Vec<u32> = drain(&mut n, due).into_iter().map(|(_, m)| m).collect();
        assert_eq!(got, (0..200).collect::<Vec<_>>(), "FIFO within a session");
    }

    #[test]
    fn sessions_reorder_against_each_other() {
        let mut n = net(1, 1_000);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let l1 = n.open(A, B, LinkKind::Stream).unwrap();
        let l2 = n.open(C, B, LinkKind::Stream).unwrap();
        let mut due = Vec::new();
        for i in 0..100u32 {
            let (link, from) = if i % 2 == 0 { (l1, A) } else { (l2, C) };
            let s = n.send(link, from, i, i as u64, &mut rng);
            due.push((s[0].1, due.len(), link, s[0].0));
        }
        let got = drain(&mut n, due);
        let order: Vec<u32> = got.iter().map(|(_, m)| *m).collect();
        assert_ne!(order, (0..100).collect::<Vec<_>>(), "two sessions interleave freely");
        for link in [l1, l2] {
            let mine: Vec<u32> = got.iter().filter(|(l, _)| *l == link).map(|(_, m)| *m).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "but each stays FIFO");
        }
    }

    #[test]
    fn breaking_a_session_drops_what_is_in_flight() {
        let mut n = net(10, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let l = n.open(A, B, LinkKind::Stream).unwrap();
        let s = n.send(l, A, 1, 0, &mut rng);
        n.send(l, B, 2, 0, &mut rng);
        assert_eq!(n.in_flight(l), 2);
        assert_eq!(n.break_link(l), Some((A, B)));
        assert_eq!(n.deliver(l, s[0].0, 100), None, "dropped with the session");
        assert!(n.send(l, A, 3, 1, &mut rng).is_empty(), "a broken session carries nothing");
        assert_eq!(n.break_link(l), None, "breaking twice reports nothing");
        let again = n.open(A, B, LinkKind::Stream).unwrap();
        assert_ne!(again, l, "link ids are never reused");
    }

    /// Links live in a slot per id: a broken one is gone from every listing, the others stay
    /// in id order, and ids never handed out (0, past the last) name no link.
    #[test]
    fn broken_links_leave_the_listings_and_unknown_ids_name_nothing() {
        let mut n = net(10, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let ab = n.open(A, B, LinkKind::Stream).unwrap();
        let bc = n.open(B, C, LinkKind::Datagram).unwrap();
        let ca = n.open(C, A, LinkKind::Stream).unwrap();
        assert_eq!(n.all_links(), vec![ab, bc, ca]);
        assert_eq!(n.break_link(bc), Some((B, C)));
        assert_eq!(n.all_links(), vec![ab, ca], "a broken link is no longer listed");
        assert_eq!(n.links_of(B), vec![ab]);
        assert_eq!(n.links_of(A), vec![ab, ca], "in id order");
        for unknown in [LinkId(0), bc, LinkId(ca.0 + 1)] {
            assert!(!n.is_open(unknown), "{unknown:?} is not open");
            assert_eq!(n.ends(unknown), None);
            assert!(n.send(unknown, A, 1, 0, &mut rng).is_empty(), "{unknown:?} carries nothing");
            assert_eq!(n.break_link(unknown), None);
        }
        assert_eq!(n.ends(ca), Some((C, A)), "later links are untouched");
    }

    #[test]
    fn partition_kinds_block_the_right_directions() {
        let set = |v: &[u32]| v.iter().map(|x| Addr(*x)).collect::<BTreeSet<_>>();
        let client = Addr(100);
        let halves = Partition::Halves { left: set(&[1]), right: set(&[2, 3]) };
        assert!(halves.blocks(A, B) && halves.blocks(C, A));
        assert!(!halves.blocks(B, C) && !halves.blocks(client, A), "clients reach both sides");
        let iso = Partition::Isolate { addr: B };
        assert!(iso.blocks(A, B) && iso.blocks(B, client));
        assert!(!iso.blocks(A, C));
        let one = Partition::OneWay { from: set(&[1]), to: set(&[2]) };
        assert!(one.blocks(A, B));
        assert!(!one.blocks(B, A), "only one direction");
        let bridge = Partition::Bridge { left: set(&[1]), right: set(&[3]), bridge: B };
        assert!(bridge.blocks(A, C) && bridge.blocks(C, A));
        assert!(!bridge.blocks(A, B) && !bridge.blocks(B, C), "the bridge reaches both sides");
    }

    #[test]
    fn partition_refuses_new_sessions_and_names_the_ones_to_break() {
        let mut n = net(5, 5);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let ab = n.open(A, B, LinkKind::Stream).unwrap();
        let ac = n.open(A, C, LinkKind::Stream).unwrap();
        let cut = n.set_partition(Partition::OneWay {
            from: [B].into_iter().collect(),
            to: [A].into_iter().collect(),
        });
        assert_eq!(cut, vec![ab], "one blocked direction is enough to break a stream");
        assert!(n.send(ab, B, 9, 0, &mut rng).is_empty(), "lost into the blocked direction");
        assert_eq!(n.send(ab, A, 8, 0, &mut rng).len(), 1, "the other direction still works");
        assert!(n.open(A, B, LinkKind::Stream).is_none(), "a handshake needs both directions");
        assert!(n.set_partition(Partition::None).is_empty());
        assert!(
            n.send(ab, B, 10, 1, &mut rng).is_empty(),
            "a stream that lost a message stays dead"
        );
        assert!(n.open(A, B, LinkKind::Stream).is_some());
        assert!(n.is_open(ac));
    }

    #[test]
    fn datagrams_may_drop_duplicate_and_reorder() {
        let config = NetConfig {
            delay_ns_min: 1,
            delay_ns_max: 1_000,
            datagram_loss: 0.2,
            datagram_dup: 0.2,
        };
        let mut n: Network<u32> = Network::new(config);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let l = n.open(A, B, LinkKind::Datagram).unwrap();
        let mut due = Vec::new();
        for i in 0..300u32 {
            for (dir, at) in n.send(l, A, i, i as u64, &mut rng) {
                due.push((at, due.len(), l, dir));
            }
        }
        let got: Vec<u32> = drain(&mut n, due).into_iter().map(|(_, m)| m).collect();
        let distinct: BTreeSet<u32> = got.iter().copied().collect();
        assert!(distinct.len() < 300, "some datagrams are lost");
        assert!(got.len() > distinct.len(), "some are duplicated");
        assert!(got.windows(2).any(|w| w[0] > w[1]), "and they arrive out of order");
    }

    /// A datagram direction hands its messages out by delivery time, ties in send order, as the
    /// simulator's deliver events (ordered by time, then scheduling order) pop them: whether a
    /// send went last in the queue (a push) or had to be inserted before later ones.
    #[test]
    fn datagrams_come_out_by_due_time_then_send_order() {
        let config =
            NetConfig { delay_ns_min: 1, delay_ns_max: 6, datagram_loss: 0.1, datagram_dup: 0.2 };
        let mut n: Network<u32> = Network::new(config);
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let l = n.open(A, B, LinkKind::Datagram).unwrap();
        let mut sent = Vec::new();
        for i in 0..600u32 {
            // Two sends per nanosecond at times, so many copies tie and many overtake.
            for (dir, at) in n.send(l, A, i, u64::from(i / 2), &mut rng) {
                assert_eq!(dir, Dir::Forward);
                sent.push((at, i));
            }
        }
        // Overtaking happened (not every send was a push) and so did ties.
        assert!(sent.windows(2).any(|w| w[1].0 < w[0].0), "some sends overtake");
        assert!(sent.windows(2).any(|w| w[1].0 == w[0].0), "some tie");
        let mut expected = sent.clone();
        expected.sort_by_key(|(at, _)| *at);
        for (at, msg) in expected {
            let d = n.deliver(l, Dir::Forward, at).expect("one message per deliver event");
            assert_eq!(d.msg, msg, "due at {at}");
        }
        assert_eq!(n.in_flight(l), 0);
    }

    #[test]
    fn slow_link_keeps_fifo() {
        let mut n = net(10, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let l = n.open(A, B, LinkKind::Stream).unwrap();
        let first = n.send(l, A, 1, 0, &mut rng)[0];
        n.slow_link(l, 100);
        let second = n.send(l, A, 2, 1, &mut rng)[0];
        assert_eq!(first.1, 10);
        assert_eq!(second.1, 1 + 1_000, "slowed by the factor");
        n.slow_link(l, 1);
        let third = n.send(l, A, 3, 2, &mut rng)[0];
        assert_eq!(third.1, second.1, "a fast message does not overtake a slow one");
    }
}
