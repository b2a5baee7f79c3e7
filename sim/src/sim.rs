//! The discrete-event simulator: one seed's world (nodes, disks, clocks, network, clients) and
//! the event loop that drives it.
//!
//! ```text
//!   queue: BinaryHeap of u128 keys (time ns, seq, slot), ties broken by seq (insertion
//!          order); events in a slab (`EventQueue`)
//!     │ pop
//!     ▼
//!   handle(Ev) ──▶ Node::step(Input) ──▶ swap_outputs() ──▶ run_outputs: io::ready::Executor
//!     │                                     over SimShell: network sends, disk appends + fsyncs
//!     ├─ after every node step: commit/digest hooks (invariants::agreement, ::digest)
//!     ├─ crash: disk loses its unsynced tail, links break (invariants::durability, ::acked)
//!     └─ clients (client.rs) and the nemesis (nemesis.rs) schedule more events
//! ```
//!
//! Determinism: all randomness comes from one ChaCha8 stream seeded by the seed; maps are
//! `BTreeMap`s; the queue orders equal times by a sequence number. Every handled event is
//! hashed into the trace.
//!
//! Nodes: slot `n` is server id `n + 1` at address `Addr(n)`. A node has an incarnation number
//! (`inc`) that a crash bumps, so events meant for an earlier incarnation (ticks, fsyncs,
//! deferred inputs) are dropped. A paused node receives nothing: its deliveries and inputs are
//! deferred to the end of the pause, in their original order.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use zkr_core::config::Bugs;
use zkr_core::config::Member;
use zkr_core::io::ready::{DiskWrite, Effects, Executor, LogReadRequest, Written};
use zkr_core::io::{Input, Output};
use zkr_core::txn::{LoggedTxn, Txn};
use zkr_core::types::{ConnId, ServerId, Zxid};
use zkr_core::zab::message::{SessionMessage, ZabMessage};
use zkr_core::{Config, Node, NodeInit};
use zkr_jepsen::history::Event;

use crate::client::Client;
use crate::disk::SimDisk;
use crate::invariants::follower_expiry::{FollowerExpiry, Relay};
use crate::invariants::{Checks, Violation, durability};
use crate::net::{Addr, Dir, LinkId, LinkKind, Network};
use crate::swarm::{FAULT_KINDS, FAULT_PHASE_NS, FaultKind, Swarm};
use crate::trace::Trace;

/// Wall clock at simulated time zero, ms since the Unix epoch.
pub const START_MS: i64 = 1_700_000_000_000;

/// First address given to clients (nodes take `0..n`).
pub const CLIENT_ADDR_BASE: u32 = 1_000;

/// A node's full invariant sweep (`Node::check_full`: sessions, watches, connections, prep)
/// runs after every this many of its steps and at the end of the seed; `step` itself runs only
/// the O(1) checks.
const FULL_CHECK_EVERY_STEPS: u64 = 16;

/// Room reserved for a seed's history (events), about twice a 3-server seed's.
const HISTORY_CAPACITY: usize = 8_192;

/// Most crashes per seed in the delicate windows (see `Sim::crash_at_point`).
const DELICATE_CRASHES_MAX: u32 = 8;

/// What travels on a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// Connection established (delivered to the acceptor first).
    Open,
    /// One frame payload without its length prefix.
    Frame(Vec<u8>),
    /// The sender flushed and closed its side (`Output::ClientClose`).
    Close,
    /// A Zab message between servers. Not boxed: a `ZabMessage` is at most 64 bytes (asserted in
    /// core's `io.rs`), and a box was one allocation and one free per peer message.
    Peer(ZabMessage),
}

impl Msg {
    /// A frame's payload: `frame` (length prefix included) without its prefix, in place.
    pub(crate) fn payload(mut frame: Vec<u8>) -> Msg {
        assert!(frame.len() >= 4, "a frame starts with its length");
        frame.drain(..4);
        Msg::Frame(frame)
    }
}

/// Everything that can happen.
#[derive(Debug)]
pub(crate) enum Ev {
    Tick {
        node: usize,
        inc: u32,
    },
    Fsync {
        node: usize,
        inc: u32,
    },
    Deliver {
        link: LinkId,
        dir: Dir,
    },
    BreakLink {
        link: LinkId,
    },
    /// An input for later (a deferred delivery, a log read's answer, a lost peer); boxed, as
    /// it is rare and an `Input` is large, so that every other event stays small.
    NodeInput {
        node: usize,
        inc: u32,
        input: Box<Input>,
    },
    ClientWake {
        client: usize,
    },
    Nemesis {
        kind: FaultKind,
    },
    Restart {
        node: usize,
        inc: u32,
    },
    Heal {
        generation: u64,
    },
    Liveness,
    End,
}

/// The event queue: a binary heap of small keys, the events themselves in a slab. A key is one
/// `u128`, `at << 64 | seq << SLOT_BITS | slot`, so sifting moves and compares 16 bytes, never
/// an event; slots are reused, so a seed's events live in a few pages. `seq` is unique, so
/// comparing keys orders by `(at, seq)` alone: the slot in the low bits never decides anything.
#[derive(Default)]
struct EventQueue {
    heap: BinaryHeap<Reverse<u128>>,
    slots: Vec<Option<Ev>>,
    free: Vec<u32>,
}

/// Bits of a key that name the slot (at most 16M pending events); `seq` takes the 40 above
/// (10^12 events per seed, about ten million times what a seed schedules).
const SLOT_BITS: u32 = 24;

impl EventQueue {
    /// Inlined into `Sim::schedule` (see there).
    #[inline(always)]
    fn push(&mut self, at: u64, seq: u64, ev: Ev) {
        let slot = match self.free.pop() {
            Some(slot) => {
                assert!(self.slots[slot as usize].is_none(), "a free slot is empty");
                self.slots[slot as usize] = Some(ev);
                slot
            }
            None => {
                self.slots.push(Some(ev));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 pending events")
            }
        };
        assert!(slot < 1 << SLOT_BITS, "fewer than 2^24 pending events");
        assert!(seq < 1 << (64 - SLOT_BITS), "fewer than 2^40 events per seed");
        let low = seq << SLOT_BITS | u64::from(slot);
        self.heap.push(Reverse(u128::from(at) << 64 | u128::from(low)));
    }

    /// The earliest event and its time.
    fn pop(&mut self) -> Option<(u64, Ev)> {
        let Reverse(key) = self.heap.pop()?;
        let at = (key >> 64) as u64;
        let slot = (key as u64 & ((1 << SLOT_BITS) - 1)) as u32;
        let ev = self.slots[slot as usize].take().expect("a queued key names a full slot");
        self.free.push(slot);
        Some((at, ev))
    }
}

/// A node's clock: a drift rate for its ticks and an offset for its wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Clock {
    /// Parts per million faster (positive) or slower (negative) than simulated time.
    pub drift_ppm: i64,
    /// Wall clock offset, ms (clock steps).
    pub offset_ms: i64,
}

impl Clock {
    pub(crate) fn wall_ms(&self, now: u64) -> i64 {
        let rate = 1_000_000 + self.drift_ppm;
        // In i64 while the product fits (simulated runs shorter than about 2.5 hours), else in
        // i128: both truncate alike, so the value is the same; an i128 division is a library
        // call, and this runs at every event.
        let ms = match i64::try_from(now).ok().and_then(|now| now.checked_mul(rate)) {
            Some(product) => product / 1_000_000 / 1_000_000,
            None => (now as i128 * rate as i128 / 1_000_000 / 1_000_000) as i64,
        };
        START_MS + self.offset_ms + ms
    }

    pub(crate) fn tick_interval_ns(&self, tick_ms: u32) -> u64 {
        let nominal = tick_ms as u128 * 1_000_000;
        (nominal * 1_000_000 / (1_000_000 + self.drift_ppm) as u128) as u64
    }
}

/// The txns a node logged and has not applied yet, in zxid order: a map from zxid to txn, kept
/// as a queue because a node logs in zxid order (its log's appends strictly increase) and
/// applies from the oldest. A `BTreeMap` did the same with a search and a node's rebalancing
/// for every insert and removal (both at the ends, about 300 instructions per txn); here they
/// are a push at the back and a pop at the front. An insert out of order (none is known: the
/// log asserts its order) still goes to its place, and one at a zxid held replaces it, as the
/// map's insert did.
#[derive(Debug, Default)]
pub(crate) struct Logged {
    txns: VecDeque<Arc<LoggedTxn>>,
}

impl Logged {
    /// Holds `txn` under its zxid (replacing a txn held at that zxid).
    pub(crate) fn insert(&mut self, txn: Arc<LoggedTxn>) {
        let z = txn.header.zxid;
        if self.txns.back().is_none_or(|last| last.header.zxid < z) {
            self.txns.push_back(txn);
            return;
        }
        match self.txns.binary_search_by_key(&z, |t| t.header.zxid) {
            Ok(at) => self.txns[at] = txn,
            Err(at) => self.txns.insert(at, txn),
        }
        debug_assert!(
            self.txns
                .iter()
                .zip(self.txns.iter().skip(1))
                .all(|(a, b)| { a.header.zxid < b.header.zxid })
        );
    }

    /// Whether a txn at `zxid` is held.
    pub(crate) fn contains(&self, zxid: Zxid) -> bool {
        self.txns.binary_search_by_key(&zxid, |t| t.header.zxid).is_ok()
    }

    /// Takes the oldest txn held if its zxid is at most `upto`.
    pub(crate) fn pop_upto(&mut self, upto: Zxid) -> Option<Arc<LoggedTxn>> {
        if self.txns.front()?.header.zxid > upto {
            return None;
        }
        self.txns.pop_front()
    }

    /// Drops every txn after `after` (a truncated log).
    pub(crate) fn keep_upto(&mut self, after: Zxid) {
        while self.txns.back().is_some_and(|t| t.header.zxid > after) {
            self.txns.pop_back();
        }
        assert!(self.txns.back().is_none_or(|t| t.header.zxid <= after), "kept up to {after}");
    }

    /// Drops every txn held.
    pub(crate) fn clear(&mut self) {
        self.txns.clear();
    }

    /// The zxids held, oldest first.
    #[cfg(test)]
    fn zxids(&self) -> Vec<Zxid> {
        self.txns.iter().map(|t| t.header.zxid).collect()
    }
}

/// One server slot: the node (when up), its disk and clock.
pub(crate) struct NodeSlot {
    pub addr: Addr,
    pub config: Config,
    pub node: Option<Node>,
    pub disk: SimDisk,
    pub inc: u32,
    pub clock: Clock,
    pub paused_until: u64,
    /// When it last started or came out of a pause.
    pub alive_since: u64,
    /// When it last started serving clients (became an established leader or a synced learner).
    pub serving_since: Option<u64>,
    /// The applied zxid after its last step (commit detection).
    pub applied: Zxid,
    /// Txns it logged and has not applied yet.
    pub logged: Logged,
    /// A crash is armed for the middle of its next step's outputs.
    pub crash_mid_step: bool,
    /// Carries out the node's outputs (a crash replaces it for the next incarnation). Boxed
    /// and taken out for each step's outputs (`run_outputs`): taking and putting back a
    /// pointer, where the executor itself (a hundred bytes) was moved out, replaced by a
    /// default one and moved back at every step. `None` only while a step's outputs run.
    pub executor: Option<Box<Executor>>,
    /// Steps taken (all incarnations): paces the full invariant sweep.
    pub steps: u64,
}

/// The datagram link between each pair of servers: a flat list in pair order, `(0, 1), (0, 2),
/// ..., (1, 2), ...` (the order a `BTreeMap` of pairs would list them in), looked up by the
/// pair's index. Every peer message looks its link up; a map search was three compares of
/// pairs down a tree.
pub(crate) struct PeerLinks {
    nodes: usize,
    links: Vec<((usize, usize), LinkId)>,
}

impl PeerLinks {
    /// From every pair `a < b` in pair order.
    fn new(nodes: usize, links: Vec<((usize, usize), LinkId)>) -> PeerLinks {
        assert_eq!(links.len(), nodes * nodes.saturating_sub(1) / 2, "one link per pair");
        let peer_links = PeerLinks { nodes, links };
        for (i, &((a, b), _)) in peer_links.links.iter().enumerate() {
            assert_eq!(peer_links.index(a, b), i, "pairs in order");
        }
        peer_links
    }

    /// Where the pair of `n` and `m` (either order, `n != m`) sits.
    fn index(&self, n: usize, m: usize) -> usize {
        let (a, b) = (n.min(m), n.max(m));
        assert!(a < b && b < self.nodes, "a pair of two servers");
        // Pairs `(x, _)` for `x < a` come first: `nodes - 1 - x` of each.
        a * (2 * self.nodes - a - 1) / 2 + (b - a - 1)
    }

    /// The link between `n` and `m`.
    pub(crate) fn get(&self, n: usize, m: usize) -> LinkId {
        self.links[self.index(n, m)].1
    }

    /// The pair `link` joins, if it is a peer link.
    pub(crate) fn pair_of(&self, link: LinkId) -> Option<(usize, usize)> {
        self.links.iter().find(|(_, l)| *l == link).map(|(pair, _)| *pair)
    }

    /// Puts `link` between `a` and `b` (after a break).
    fn replace(&mut self, a: usize, b: usize, link: LinkId) {
        let i = self.index(a, b);
        self.links[i].1 = link;
    }

    /// Every peer link, in pair order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &LinkId> {
        self.links.iter().map(|(_, link)| link)
    }
}

/// Which phase the run is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Faults,
    Liveness,
}

/// One seed's world.
pub struct Sim {
    pub(crate) now: u64,
    seq: u64,
    queue: EventQueue,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) swarm: Swarm,
    pub(crate) nodes: Vec<NodeSlot>,
    pub(crate) net: Network<Msg>,
    pub(crate) clients: Vec<Client>,
    pub(crate) history: Vec<Event>,
    /// `close` invokes to merge into `history` at the end, each before the event it names (so
    /// indices into `history` held during the run stay valid).
    pub(crate) close_inserts: Vec<(usize, Event)>,
    pub(crate) trace: Trace,
    pub(crate) checks: Checks,
    pub(crate) violations: Vec<Violation>,
    pub(crate) faults: BTreeMap<&'static str, u64>,
    pub(crate) phase: Phase,
    pub(crate) healed_at: Option<u64>,
    pub(crate) liveness_acked: Option<u64>,
    pub(crate) next_process: u64,
    pub(crate) partition_generation: u64,
    /// The datagram link between each pair of servers.
    pub(crate) peer_links: PeerLinks,
    /// When the current (or last) leader was established, and which node it is (if still).
    pub(crate) leader_established_at: (u64, Option<usize>),
    /// Established leaders seen, by epoch.
    pub(crate) leaders: crate::invariants::leaders::Leaders,
    /// The partition in force, as its `nemesis` band in the history (to close at its end).
    pub(crate) open_partition: Option<String>,
    /// Crashes injected at protocol points so far (`Swarm::point_crash`): routine and delicate.
    pub(crate) point_crashes: (u32, u32),
    /// The outputs list every step reuses (`Node::swap_outputs`); empty between steps. Boxed,
    /// so that taking it out for a step and putting it back moves a pointer: moved as a
    /// `Vec`, its three words were read back at the end of the step as a 16-byte load over
    /// the length the executor had just stored, a failed store forward at every step. (Hence
    /// the box clippy warns of: it is allocated once per seed.)
    #[allow(clippy::box_collection)]
    spare_outputs: Option<Box<Vec<Output>>>,
    /// Node steps by kind of input (`sim --mix`); never in the trace.
    pub(crate) mix: StepMix,
}

/// Node steps of one seed by kind of input, and the ticks that did nothing (`sim --mix`): the
/// measurement behind "are idle ticks worth skipping?" (docs/TIER1-SPEED.md, seventh pass);
/// and the traced events before the heal and up to the liveness ack, behind "how much of a
/// seed comes after its liveness verdict is known?" (fifteenth pass).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepMix {
    /// Steps per input kind, in the order of [`StepMix::KINDS`].
    pub steps: [u64; StepMix::KINDS.len()],
    /// Tick steps with no output at all (no timeout fired that needed anything sent,
    /// persisted or closed).
    pub idle_ticks: u64,
    /// Traced events before the fault phase ended (the heal); all of them if it never did.
    pub events_to_heal: u64,
    /// Traced events up to the fresh client's acknowledged write that decides liveness (the
    /// reply's own event included); all of them if none was acknowledged.
    pub events_to_liveness_ack: u64,
}

impl StepMix {
    /// The input kinds, as `sim --mix` names them.
    pub const KINDS: [&'static str; 10] = [
        "tick",
        "client_connected",
        "client_certificate",
        "client_frame",
        "client_closed",
        "persisted",
        "peer_message",
        "peer_lost",
        "log_read",
        "log_trimmed",
    ];

    fn kind(input: &Input) -> usize {
        match input {
            Input::Tick { .. } => 0,
            Input::ClientConnected { .. } => 1,
            Input::ClientCertificate { .. } => 2,
            Input::ClientFrame { .. } => 3,
            Input::ClientClosed { .. } => 4,
            Input::Persisted { .. } => 5,
            Input::PeerMessage { .. } => 6,
            Input::PeerLost { .. } => 7,
            Input::LogRead { .. } => 8,
            Input::LogTrimmed { .. } => 9,
        }
    }

    /// Counts one step of `kind` that produced `outputs` outputs.
    fn count(&mut self, kind: usize, outputs: usize) {
        self.steps[kind] += 1;
        if kind == 0 && outputs == 0 {
            self.idle_ticks += 1;
        }
        assert!(self.idle_ticks <= self.steps[0], "idle ticks are ticks");
    }

    /// All steps.
    pub fn total(&self) -> u64 {
        self.steps.iter().sum()
    }

    /// Adds another seed's counts.
    pub fn add(&mut self, other: &StepMix) {
        for (mine, theirs) in self.steps.iter_mut().zip(other.steps) {
            *mine += theirs;
        }
        self.idle_ticks += other.idle_ticks;
        self.events_to_heal += other.events_to_heal;
        self.events_to_liveness_ack += other.events_to_liveness_ack;
    }
}

/// A point in Zab where a crash tests the durability argument: right after the output that
/// names it was carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CrashPoint {
    /// `PersistEpochs` of a new acceptedEpoch (discovery).
    AcceptedEpoch,
    /// `PersistEpochs` of a new currentEpoch (a learner synced by NEWLEADER, a leader whose
    /// epoch a quorum acknowledged).
    CurrentEpoch,
    /// `TruncateLog` (the leader's TRUNC).
    Truncate,
    /// `InstallSnapshot` (the leader's SNAP).
    Snapshot,
    /// A learner's ACKEPOCH left.
    AckEpoch,
    /// A learner's ACK of NEWLEADER left (it now counts for establishment; UPTODATE is next).
    AckNewLeader,
    /// The leader sent NEWLEADER (a learner's sync is complete on the leader's side).
    NewLeader,
    /// The leader sent UPTODATE.
    UpToDate,
    /// A learner's ACK of a proposal left.
    Ack,
    /// The leader sent a COMMIT.
    Commit,
}

impl CrashPoint {
    /// The point a disk write is at.
    pub(crate) fn of_write(write: &DiskWrite) -> CrashPoint {
        match write {
            DiskWrite::Epochs { accepted_epoch, current_epoch }
                if accepted_epoch == current_epoch =>
            {
                CrashPoint::CurrentEpoch
            }
            DiskWrite::Epochs { .. } => CrashPoint::AcceptedEpoch,
            DiskWrite::Truncate { .. } => CrashPoint::Truncate,
            DiskWrite::Snapshot(_) => CrashPoint::Snapshot,
        }
    }

    /// The point a peer message is at, if any.
    pub(crate) fn of_message(msg: &ZabMessage) -> Option<CrashPoint> {
        let ZabMessage::Session { msg, .. } = msg else { return None };
        match *msg {
            SessionMessage::AckEpoch { .. } => Some(CrashPoint::AckEpoch),
            SessionMessage::Ack { zxid } if zxid.counter() == 0 => Some(CrashPoint::AckNewLeader),
            SessionMessage::Ack { .. } => Some(CrashPoint::Ack),
            SessionMessage::NewLeader { .. } => Some(CrashPoint::NewLeader),
            SessionMessage::UpToDate => Some(CrashPoint::UpToDate),
            SessionMessage::Commit { .. } => Some(CrashPoint::Commit),
            _ => None,
        }
    }

    /// The points where ZOOKEEPER-4643 and ZOOKEEPER-3911 live (given unsynced records).
    fn is_delicate(self) -> bool {
        matches!(self, CrashPoint::CurrentEpoch | CrashPoint::AckNewLeader)
    }

    /// Relative probability: the epoch write and the NEWLEADER acknowledgement are where
    /// ZOOKEEPER-4643 and ZOOKEEPER-3911 live; per-write points are frequent, so rare.
    fn weight(self) -> f64 {
        match self {
            CrashPoint::CurrentEpoch | CrashPoint::AckNewLeader => 1.0,
            CrashPoint::Truncate | CrashPoint::Snapshot => 0.5,
            CrashPoint::AckEpoch | CrashPoint::NewLeader | CrashPoint::UpToDate => 0.2,
            CrashPoint::AcceptedEpoch => 0.1,
            CrashPoint::Ack | CrashPoint::Commit => 0.02,
        }
    }

    /// The fault counter's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            CrashPoint::AcceptedEpoch => "crash_at_accepted_epoch",
            CrashPoint::CurrentEpoch => "crash_at_current_epoch",
            CrashPoint::Truncate => "crash_at_truncate",
            CrashPoint::Snapshot => "crash_at_snapshot",
            CrashPoint::AckEpoch => "crash_at_ackepoch",
            CrashPoint::AckNewLeader => "crash_at_ack_newleader",
            CrashPoint::NewLeader => "crash_at_newleader",
            CrashPoint::UpToDate => "crash_at_uptodate",
            CrashPoint::Ack => "crash_at_ack",
            CrashPoint::Commit => "crash_at_commit",
        }
    }
}

impl Sim {
    /// Builds the world of `seed`: the swarm configuration is the first thing drawn.
    pub fn new(seed: u64, bugs: Bugs, keep_trace: bool) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut swarm = Swarm::draw(&mut rng);
        swarm.draw_sync_knobs(seed);
        let mut nodes = Vec::new();
        let members: Vec<Member> = if swarm.cluster_size == 1 {
            Vec::new()
        } else {
            (1..=swarm.cluster_size as u64)
                .map(|id| Member { id: ServerId(id), observer: false })
                .collect()
        };
        for n in 0..swarm.cluster_size {
            let config = Config {
                server_id: ServerId(n as u64 + 1),
                tick_ms: swarm.tick_ms,
                tick_time_ms: swarm.tick_time_ms,
                session_timeout_ms_min: 2 * swarm.tick_time_ms as i32,
                session_timeout_ms_max: 20 * swarm.tick_time_ms as i32,
                bugs: bugs.clone(),
                members: members.clone(),
                init_limit: swarm.init_limit,
                sync_limit: swarm.sync_limit,
                commit_log_count: swarm.commit_log_count,
                disk_diff_max_txns: swarm.disk_diff_max_txns,
                ..Config::default()
            };
            let drift = swarm.drift_ppm_max;
            let clock = Clock {
                drift_ppm: if drift == 0 { 0 } else { rng.random_range(-drift..=drift) },
                offset_ms: rng.random_range(-5_000..5_000),
            };
            let init =
                NodeInit { wall_ms: clock.wall_ms(0), seed: rng.random(), ..NodeInit::default() };
            let node = Node::new(config.clone(), init).expect("a fresh node starts");
            nodes.push(NodeSlot {
                addr: Addr(n as u32),
                config,
                node: Some(node),
                disk: SimDisk::new(),
                inc: 0,
                clock,
                paused_until: 0,
                alive_since: 0,
                serving_since: None,
                applied: Zxid::ZERO,
                logged: Logged::default(),
                crash_mid_step: false,
                executor: Some(Box::new(Executor::new())),
                steps: 0,
            });
        }
        let clients = (0..swarm.clients)
            .map(|c| Client::new(Addr(CLIENT_ADDR_BASE + c as u32), false, &swarm, &mut rng))
            .collect();
        let mut net = Network::new(swarm.net.clone());
        let mut pairs = Vec::new();
        for a in 0..swarm.cluster_size {
            for b in a + 1..swarm.cluster_size {
                let link = net.open(Addr(a as u32), Addr(b as u32), LinkKind::Datagram);
                pairs.push(((a, b), link.expect("datagram links always open")));
            }
        }
        let peer_links = PeerLinks::new(swarm.cluster_size, pairs);
        let mut trace = Trace::new(keep_trace);
        let describe = swarm.describe();
        trace.event(0, "seed", &[seed], describe.as_bytes(), || format!("{seed} {describe}"));
        let follower_expiry = FollowerExpiry::new(&swarm);
        Sim {
            now: 0,
            seq: 0,
            queue: EventQueue::default(),
            rng,
            net,
            swarm,
            nodes,
            clients,
            // A 3-server seed records about 4,600 events: growing to that by doubling copied
            // the history a dozen times.
            history: Vec::with_capacity(HISTORY_CAPACITY),
            close_inserts: Vec::new(),
            trace,
            checks: Checks { follower_expiry, ..Checks::default() },
            violations: Vec::new(),
            faults: BTreeMap::new(),
            phase: Phase::Faults,
            healed_at: None,
            liveness_acked: None,
            next_process: 1,
            partition_generation: 0,
            peer_links,
            leader_established_at: (0, None),
            leaders: Default::default(),
            point_crashes: (0, 0),
            open_partition: None,
            spare_outputs: Some(Box::default()),
            mix: StepMix::default(),
        }
    }

    /// Inlined into every caller, and `EventQueue::push` into it: the event's fields go into
    /// its slot from registers. Called, it read the caller's event from the stack as 16-byte
    /// words over the narrower stores that had just written it (a third of `schedule`'s
    /// samples on that load); inlining `schedule` alone moved the same load into `push`.
    #[inline(always)]
    pub(crate) fn schedule(&mut self, at: u64, ev: Ev) {
        assert!(at >= self.now, "events are never scheduled in the past");
        self.seq += 1;
        self.queue.push(at, self.seq, ev);
    }

    pub(crate) fn count_fault(&mut self, kind: &'static str) {
        // Restarts and lost writes come with crashes (which count); a broken or slow peer link
        // counts where it happens (`break_link`, the nemesis); a client link's do not slow a
        // fail-over.
        let harmless = [
            "client_reconnect",
            "client_silence",
            "clock_step",
            "clock_drift",
            "link_break",
            "slow_link",
            "restart",
            "torn_write",
            "unsynced_lost",
        ];
        if !harmless.contains(&kind) {
            self.checks.failover.disturbed();
        }
        *self.faults.entry(kind).or_default() += 1;
    }

    pub(crate) fn violation(&mut self, v: Violation) {
        let message = v.message.clone();
        let tag = v.invariant;
        self.trace
            .event(self.now, "VIOLATION", &[], tag.as_bytes(), || format!("{tag}: {message}"));
        self.violations.push(v);
    }

    /// Runs the seed to its end (or its first violation).
    pub fn run(&mut self) {
        for n in 0..self.nodes.len() {
            let first = self.rng.random_range(0..self.tick_interval(n));
            let inc = self.nodes[n].inc;
            self.schedule(first, Ev::Tick { node: n, inc });
        }
        for c in 0..self.clients.len() {
            let at = self.rng.random_range(0..10_000_000);
            self.schedule(at, Ev::ClientWake { client: c });
        }
        for kind in FAULT_KINDS {
            if let Some(mean) = self.swarm.fault_mean(kind) {
                let at = self.rng.random_range(0..2 * mean);
                self.schedule(at, Ev::Nemesis { kind });
            }
        }
        self.schedule(FAULT_PHASE_NS, Ev::Liveness);
        self.schedule(FAULT_PHASE_NS + self.swarm.liveness_bound_ns(), Ev::End);
        while let Some((at, ev)) = self.queue.pop() {
            assert!(at >= self.now, "time never goes back");
            self.now = at;
            if matches!(ev, Ev::End) {
                break;
            }
            self.handle(ev);
            if !self.violations.is_empty() {
                self.finish_mix();
                return;
            }
        }
        self.finish_mix();
        for node in self.nodes.iter().filter_map(|slot| slot.node.as_ref()) {
            node.check_full();
        }
        let bound = self.swarm.liveness_bound_ns();
        let healed = self.healed_at.expect("the liveness phase started before the end");
        if let Some(v) =
            crate::invariants::liveness::check(healed, self.liveness_acked, bound, self.now)
        {
            self.violation(v);
        }
    }

    /// A seed that ended before its heal or its liveness ack counts all its events there.
    fn finish_mix(&mut self) {
        let events = self.trace.events();
        if self.healed_at.is_none() {
            self.mix.events_to_heal = events;
        }
        if self.liveness_acked.is_none() {
            self.mix.events_to_liveness_ack = events;
        }
        assert!(self.mix.events_to_heal <= self.mix.events_to_liveness_ack, "the ack follows");
    }

    /// Inlined into `run`, its one caller: the match reads the event's fields from its slot
    /// into registers. Called, it took the event as a copy on the stack, written as two
    /// overlapping words (bytes 1..9 and 8..16: the fields after the tag byte), and the match's
    /// first load (the link id at offset 8) straddled both stores: a failed store forward, a
    /// stall of about a dozen cycles at every event (the hottest instructions of `handle` and
    /// `run` in a `perf annotate`).
    #[inline(always)]
    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Tick { node, inc } => self.on_tick(node, inc),
            Ev::Fsync { node, inc } => self.on_fsync(node, inc),
            Ev::Deliver { link, dir } => self.on_deliver(link, dir),
            Ev::BreakLink { link } => self.break_link(link, "partition detected"),
            Ev::NodeInput { node, inc, input } => {
                if self.nodes[node].inc == inc {
                    self.node_input(node, *input);
                }
            }
            Ev::ClientWake { client } => self.client_wake(client),
            Ev::Nemesis { kind } => self.nemesis(kind),
            Ev::Restart { node, inc } => self.restart(node, inc),
            Ev::Heal { generation } => self.heal(generation),
            Ev::Liveness => self.start_liveness(),
            Ev::End => unreachable!("handled by the loop"),
        }
    }

    pub(crate) fn tick_interval(&self, n: usize) -> u64 {
        self.nodes[n].clock.tick_interval_ns(self.swarm.tick_ms)
    }

    fn on_tick(&mut self, n: usize, inc: u32) {
        if self.nodes[n].inc != inc || self.nodes[n].node.is_none() {
            return;
        }
        let next = self.now + self.tick_interval(n);
        self.schedule(next, Ev::Tick { node: n, inc });
        let wall_ms = self.nodes[n].clock.wall_ms(self.now);
        self.node_input(n, Input::Tick { wall_ms });
        self.checks.follower_expiry.settle(n, &self.nodes, &[]);
        self.check_ephemerals(n);
        self.check_failover();
    }

    fn on_fsync(&mut self, n: usize, inc: u32) {
        if self.nodes[n].inc != inc || self.nodes[n].node.is_none() {
            return;
        }
        let (upto, more) = self.nodes[n].disk.finish_fsync();
        if more {
            self.start_fsync(n);
        }
        if let Some(upto) = upto {
            let executor = self.nodes[n].executor.as_mut().expect("no step is running");
            let persisted = executor.persisted(upto);
            self.node_input(n, persisted);
        }
    }

    fn start_fsync(&mut self, n: usize) {
        assert!(self.nodes[n].disk.start_fsync(), "an fsync starts only with work to do");
        let (lo, hi) = self.swarm.fsync_ns;
        let at = self.now + self.rng.random_range(lo..=hi);
        let inc = self.nodes[n].inc;
        self.schedule(at, Ev::Fsync { node: n, inc });
    }

    /// Feeds an input to node `n`: dropped if it is down, deferred while it is paused.
    pub(crate) fn node_input(&mut self, n: usize, input: Input) {
        let slot = &self.nodes[n];
        if slot.node.is_none() {
            return;
        }
        if slot.paused_until > self.now {
            let (at, inc) = (slot.paused_until, slot.inc);
            self.schedule(at, Ev::NodeInput { node: n, inc, input: Box::new(input) });
            return;
        }
        self.trace_input(n, &input);
        let conn = match &input {
            Input::ClientFrame { conn, .. } => Some(*conn),
            _ => None,
        };
        let kind = StepMix::kind(&input);
        if let Some(conn) = conn {
            self.heard_by_learner(n, conn);
        }
        self.heard_by_leader(n, conn);
        let slot = &mut self.nodes[n];
        let node = slot.node.as_mut().expect("checked above");
        node.step(input);
        slot.steps += 1;
        if slot.steps.is_multiple_of(FULL_CHECK_EVERY_STEPS) {
            node.check_full();
        }
        // One list serves every step (`spare_outputs`): a nested step (none today) would
        // find it taken and use a new one.
        let mut outputs = self.spare_outputs.take().unwrap_or_default();
        node.swap_outputs(&mut outputs);
        self.mix.count(kind, outputs.len());
        self.heard_by_leader(n, conn);
        self.check_expiries(n, &outputs);
        self.run_outputs(n, &mut outputs);
        self.spare_outputs = Some(outputs);
        self.after_step(n);
    }

    /// A leading node that gets a frame on a session's connection hears from the session (and
    /// so does one that attached the session to the connection in this step).
    fn heard_by_leader(&mut self, n: usize, conn: Option<ConnId>) {
        let slot = &self.nodes[n];
        let (Some(conn), Some(node)) = (conn, &slot.node) else { return };
        if !node.is_established_leader() {
            return;
        }
        if let Some(session) = node.connection_session(conn) {
            self.checks.expiry.heard(n, slot.inc, session, node.now_tick());
        }
    }

    /// A serving learner that gets a frame on a session's connection touches the session and
    /// owes its leader a report of it (`invariants::follower_expiry`).
    fn heard_by_learner(&mut self, n: usize, conn: ConnId) {
        let slot = &self.nodes[n];
        let Some(node) = &slot.node else { return };
        let (Some(since), Some(leader)) = (slot.serving_since, node.leader()) else { return };
        let l = leader.0 as usize - 1;
        if l == n {
            return;
        }
        let Some(session) = node.connection_session(conn) else { return };
        let Some(leading) = &self.nodes[l].node else { return };
        let epoch = node.epochs().1;
        if !leading.is_established_leader() || leading.epochs().1 != epoch {
            return;
        }
        let relay = Relay {
            learner: (n, slot.inc, since),
            term: (self.nodes[l].inc, epoch),
            session,
            leader_tick: leading.now_tick(),
            at_ns: self.now,
        };
        self.checks.follower_expiry.relayed(l, relay);
    }

    /// Every session a leader decided to expire in this step (a CloseSession it proposes with
    /// no client request behind it, cxid 0) was silent for its whole timeout, on its own
    /// connection and through its learners.
    fn check_expiries(&mut self, n: usize, outputs: &[Output]) {
        let slot = &self.nodes[n];
        let Some(node) = &slot.node else { return };
        if !node.is_established_leader() {
            return;
        }
        let mut expired = Vec::new();
        for output in outputs {
            let Output::Persist { txn } = output else { continue };
            let header = &txn.header;
            if header.cxid != 0 || !matches!(txn.txn, Txn::CloseSession { .. }) {
                continue;
            }
            let session = header.session_id;
            let Some(timeout_ms) = node.sessions().get(session).map(|s| s.timeout_ms) else {
                continue;
            };
            expired.push((session, node.config().ms_to_ticks(timeout_ms.max(0) as u64)));
        }
        if expired.is_empty() {
            return;
        }
        let deciding: Vec<_> = expired.iter().map(|(session, _)| *session).collect();
        self.checks.follower_expiry.settle(n, &self.nodes, &deciding);
        let (at, tick) = ((n, slot.inc), node.now_tick());
        let mut found = Vec::new();
        for (session, timeout_ticks) in expired {
            let checks = &mut self.checks;
            found.extend(checks.expiry.expired(at, session, tick, timeout_ticks, self.now));
            let follower = &mut checks.follower_expiry;
            found.extend(follower.expired(at, session, tick, timeout_ticks, self.now));
        }
        for v in found {
            self.violation(v);
        }
    }

    fn trace_input(&mut self, n: usize, input: &Input) {
        let ids = |code: u64, conn: u64| [n as u64, code, conn];
        match input {
            Input::Tick { wall_ms } => {
                let w = *wall_ms;
                self.trace.event(self.now, "tick", &ids(0, w as u64), &[], || format!("n{n} {w}"))
            }
            Input::ClientConnected { conn, .. } => {
                self.trace
                    .event(self.now, "accept", &ids(1, conn.0), &[], || format!("n{n} c{}", conn.0))
            }
            Input::ClientCertificate { conn, subject } => {
                self.trace.event(self.now, "cert", &ids(8, conn.0), subject.as_bytes(), || {
                    format!("n{n} c{} {subject}", conn.0)
                })
            }
            Input::ClientFrame { conn, payload, .. } => {
                let len = payload.len();
                self.trace.event(self.now, "recv", &ids(2, conn.0), payload, || {
                    format!("n{n} c{} frame {len}B", conn.0)
                })
            }
            Input::ClientClosed { conn } => {
                self.trace
                    .event(self.now, "closed", &ids(3, conn.0), &[], || format!("n{n} c{}", conn.0))
            }
            Input::Persisted { upto } => {
                let z = upto.0;
                self.trace
                    .event(self.now, "persisted", &ids(4, z as u64), &[], || format!("n{n} {z:#x}"))
            }
            Input::PeerMessage { from, msg, .. } => {
                let f = from.0;
                self.trace
                    .event(self.now, "peer", &ids(5, f), &[], || format!("n{n} <- s{f} {msg:?}"))
            }
            Input::PeerLost { peer } => {
                let p = peer.0;
                let text = || format!("n{n} lost s{p}");
                self.trace.event(self.now, "peer_lost", &ids(6, p), &[], text)
            }
            Input::LogRead { request, found_after, txns } => {
                let (r, found) = (*request, *found_after);
                let read = match txns {
                    Ok(txns) => txns.len() as u64,
                    Err(_) => u64::MAX,
                };
                let text = || format!("n{n} log read {r} found_after {found} records {read}");
                self.trace.event(self.now, "log_read", &ids(9, r), &[], text)
            }
            Input::LogTrimmed { oldest_on_disk } => {
                let z = oldest_on_disk.0;
                let text = || format!("n{n} log trimmed to {z:#x}");
                self.trace.event(self.now, "log_trimmed", &ids(10, z as u64), &[], text)
            }
        }
    }

    /// Carries out a step's outputs through the one executor of the output contract
    /// (`zkr_core::io::ready`); a crash armed for mid-step cuts them short before a random one.
    fn run_outputs(&mut self, n: usize, outputs: &mut Vec<Output>) {
        let cut = if self.nodes[n].crash_mid_step && !outputs.is_empty() {
            Some(self.rng.random_range(0..outputs.len()))
        } else {
            None
        };
        let inc = self.nodes[n].inc;
        let mut executor = self.nodes[n].executor.take().expect("one step's outputs at a time");
        let mut shell = SimShell { sim: self, n, next: 0, cut, halted: false };
        executor.run_sync_from(outputs, &mut shell);
        // A crash gave the slot a fresh executor for its next incarnation: keep that one.
        if self.nodes[n].inc == inc {
            assert!(self.nodes[n].executor.is_none(), "the slot waited for its executor");
            self.nodes[n].executor = Some(executor);
        } else {
            assert!(self.nodes[n].executor.is_some(), "a crash left a fresh executor");
        }
    }

    /// Buggify: maybe crash node `n` right after it carried out an output at a protocol point.
    /// More likely while its disk holds unsynced records (the window the durability argument
    /// must cover). Returns true if it crashed.
    fn crash_at_point(&mut self, n: usize, point: CrashPoint) -> bool {
        let Some(config) = self.swarm.point_crash else { return false };
        if self.phase != Phase::Faults || self.nodes[n].node.is_none() {
            return false;
        }
        // The windows that matter most (an epoch adopted or NEWLEADER acknowledged while txns
        // wait for fsync) get their own, larger budget, so routine points cannot use it up.
        let unsynced = self.nodes[n].disk.unsynced_len() > 0;
        let delicate = unsynced && point.is_delicate();
        let (used, cap) = if delicate {
            (&mut self.point_crashes.1, DELICATE_CRASHES_MAX)
        } else {
            (&mut self.point_crashes.0, config.budget)
        };
        if *used >= cap {
            return false;
        }
        let p = config.probability * point.weight() * if unsynced { 1.0 } else { 0.1 };
        if !self.rng.random_bool(p.min(1.0)) {
            return false;
        }
        *used += 1;
        let leader = self.nodes[n].node.as_ref().and_then(|node| node.leader());
        self.crash(n, point.name());
        assert!(self.nodes[n].node.is_none(), "the node is down");
        let partner = leader.map(|id| id.0 as usize - 1).filter(|m| *m != n);
        if let Some(m) = partner
            && self.rng.random_bool(config.with_leader)
        {
            self.crash(m, "with_learner");
        }
        true
    }

    fn client_close(&mut self, n: usize, conn: ConnId) {
        self.trace
            .event(self.now, "close", &[n as u64, conn.0], &[], || format!("n{n} c{}", conn.0));
        let from = self.nodes[n].addr;
        self.send(LinkId(conn.0), from, Msg::Close);
    }

    /// A synchronous disk write: durable at once on the simulated disk. An epoch write does
    /// not sync earlier appends: it may overtake them (see `disk`), as the contract allows.
    fn disk_write(&mut self, n: usize, write: DiskWrite) {
        match write {
            DiskWrite::Epochs { accepted_epoch, current_epoch } => {
                self.trace.event(
                    self.now,
                    "epochs",
                    &[n as u64, accepted_epoch as u64],
                    &[],
                    || format!("n{n} accepted {accepted_epoch} current {current_epoch}"),
                );
                self.nodes[n].disk.persist_epochs(accepted_epoch, current_epoch);
            }
            DiskWrite::Truncate { after } => {
                let slot = &mut self.nodes[n];
                let dropped = slot.disk.truncate(after);
                slot.logged.keep_upto(after);
                self.trace.event(self.now, "truncate", &[n as u64, after.0 as u64], &[], || {
                    format!("n{n} after {after} ({dropped} durable records dropped)")
                });
                self.check_durability();
            }
            DiskWrite::Snapshot(snapshot) => {
                let z = snapshot.zxid;
                self.trace.event(self.now, "snapshot", &[n as u64, z.0 as u64], &[], || {
                    format!("n{n} installs a snapshot at {z}")
                });
                let slot = &mut self.nodes[n];
                slot.logged.clear();
                slot.disk.install_snapshot(*snapshot);
                self.check_durability();
            }
        }
    }

    fn node_send(&mut self, n: usize, conn: ConnId, frame: Vec<u8>) {
        let prefix = frame.get(..4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")));
        if prefix != Some(frame.len() as u32 - 4) {
            let message = format!("n{n} sent a frame whose length prefix is wrong: {prefix:?}");
            self.violation(Violation { invariant: "session_fifo", at_ns: self.now, message });
            return;
        }
        self.trace.event(self.now, "send", &[n as u64, conn.0], &frame, || {
            format!("n{n} c{} frame {}B", conn.0, frame.len() - 4)
        });
        let from = self.nodes[n].addr;
        let link = LinkId(conn.0);
        if self.net.ends(link).is_some_and(|(a, b)| a != from && b != from) {
            let message = format!("n{n} sent to connection {} it does not hold", conn.0);
            self.violation(Violation { invariant: "session_fifo", at_ns: self.now, message });
            return;
        }
        self.send(link, from, Msg::payload(frame));
    }

    fn peer_send(&mut self, n: usize, to: ServerId, msg: ZabMessage) {
        let Some(m) = (to.0 as usize).checked_sub(1).filter(|m| *m < self.nodes.len() && *m != n)
        else {
            let message = format!("n{n} sent a peer message to unknown server {}", to.0);
            return self.violation(Violation { invariant: "agreement", at_ns: self.now, message });
        };
        if self.nodes[m].node.is_none() {
            // The shell cannot connect to a server that is down: it drops the message and
            // reports the server lost (server/src/peer_net.rs).
            return self.report_peer_lost(m, n);
        }
        let link = self.peer_links.get(n, m);
        let from = self.nodes[n].addr;
        // A message lost, cut off or slowed past the normal delay voids the claims of
        // `invariants::follower_expiry` for the pair.
        let on_time = self.now + self.swarm.net.delay_ns_max;
        let mut arrives = false;
        for (dir, at) in self.net.send(link, from, Msg::Peer(msg), self.now, &mut self.rng) {
            arrives |= at <= on_time;
            self.schedule(at, Ev::Deliver { link, dir });
        }
        if !arrives {
            self.checks.follower_expiry.disturbed(n, m, self.now);
        }
    }

    /// `Output::ReadLog`: answered from the records the disk holds now (as the server's
    /// storage thread reads its files), after a delay; as a fault, late (commits may trim the
    /// range out of the leader's memory meanwhile) or failed (a damaged or purged file).
    fn read_log(&mut self, n: usize, read: LogReadRequest) {
        let records = self.nodes[n].disk.records(read.after, read.upto);
        let (delay, answer) = match self.rng.random_range(0..10) {
            0 => {
                self.count_fault("log_read_error");
                (self.rng.random_range(0..5_000_000), read.unavailable("simulated read error"))
            }
            1 => {
                self.count_fault("log_read_late");
                (self.rng.random_range(50_000_000..500_000_000), read.answer_from(&records))
            }
            _ => (self.rng.random_range(0..5_000_000), read.answer_from(&records)),
        };
        let (r, after, upto) = (read.request, read.after, read.upto);
        self.trace.event(self.now, "read_log", &[n as u64, r, upto.0 as u64], &[], || {
            format!("n{n} read {r} after {after} upto {upto} answered in {delay}ns")
        });
        let inc = self.nodes[n].inc;
        let input = Box::new(answer);
        self.schedule(self.now + delay, Ev::NodeInput { node: n, inc, input });
    }

    fn persist(&mut self, n: usize, txn: Arc<LoggedTxn>) {
        let z = txn.header.zxid;
        self.trace.event(self.now, "log", &[n as u64, z.0 as u64], &[], || format!("n{n} {z}"));
        let slot = &mut self.nodes[n];
        slot.logged.insert(Arc::clone(&txn));
        if slot.disk.append(txn) {
            self.start_fsync(n);
        }
    }

    /// Sends on a link and schedules the deliveries.
    pub(crate) fn send(&mut self, link: LinkId, from: Addr, msg: Msg) {
        for (dir, at) in self.net.send(link, from, msg, self.now, &mut self.rng) {
            self.schedule(at, Ev::Deliver { link, dir });
        }
    }

    /// Commit and digest hooks after node `n` stepped.
    fn after_step(&mut self, n: usize) {
        let now = self.now;
        let mut failover = None;
        let slot = &mut self.nodes[n];
        let Some(node) = &slot.node else { return };
        match (node.is_serving(), slot.serving_since) {
            (true, None) => slot.serving_since = Some(now),
            (false, Some(_)) => {
                slot.serving_since = None;
                self.checks.follower_expiry.left(n, now);
            }
            _ => {}
        }
        if node.is_established_leader() && self.leader_established_at.1 != Some(n) {
            self.leader_established_at = (now, Some(n));
            let bound = crate::invariants::failover::bound_ns(&self.swarm);
            failover = self.checks.failover.established(now, n, node.epochs().1, bound);
        } else if !node.is_established_leader() && self.leader_established_at.1 == Some(n) {
            self.leader_established_at.1 = None;
        }
        // Violations in the order they are found; an empty `Vec` does not allocate, and
        // nearly every step finds none.
        let mut found: Vec<Violation> = failover.into_iter().collect();
        found.extend(self.leaders.observe(n, node, now));
        let current = node.committed().min(node.last_zxid());
        if current > slot.applied {
            self.checks.failover.committed(now, current.epoch());
        }
        if current <= slot.applied {
            for v in found {
                self.violation(v);
            }
            return;
        }
        let digest = (node.last_zxid() == current).then(|| node.tree().digest());
        let covered = current <= slot.disk.snapshot_zxid();
        if !slot.logged.contains(current) && !covered {
            found.push(crate::invariants::agreement::Agreement::unlogged(n, current, now));
        }
        while let Some(txn) = slot.logged.pop_upto(current) {
            if txn.header.zxid > slot.applied {
                found.extend(self.checks.agreement.committed(n, &txn, now));
                found.extend(self.checks.session_ids.committed(n, &txn, now));
            }
        }
        slot.applied = current;
        if let Some(digest) = digest {
            found.extend(self.checks.digest.observe(n, current, digest, now));
        }
        for v in found {
            self.violation(v);
        }
    }

    fn on_deliver(&mut self, link: LinkId, dir: Dir) {
        let Some((a, b)) = self.net.ends(link) else {
            return;
        };
        let to = if dir == Dir::Forward { b } else { a };
        if let Some(n) = self.node_of(to)
            && self.nodes[n].paused_until > self.now
        {
            let at = self.nodes[n].paused_until;
            self.schedule(at, Ev::Deliver { link, dir });
            return;
        }
        let Some(d) = self.net.deliver(link, dir, self.now) else {
            return;
        };
        let conn = ConnId(link.0);
        match (self.node_of(to), d.msg) {
            (Some(n), Msg::Open) => {
                let remote_ip = format!("10.0.{}.{}", d.from.0 / 250, d.from.0 % 250);
                self.node_input(n, Input::ClientConnected { conn, remote_ip });
            }
            (Some(n), Msg::Frame(payload)) => {
                let wall_ms = self.nodes[n].clock.wall_ms(self.now);
                self.node_input(n, Input::ClientFrame { conn, payload, wall_ms })
            }
            (Some(_), Msg::Close) => unreachable!("clients never send Close"),
            (Some(n), Msg::Peer(msg)) => {
                let from = ServerId(d.from.0 as u64 + 1);
                let wall_ms = self.nodes[n].clock.wall_ms(self.now);
                self.node_input(n, Input::PeerMessage { from, msg, wall_ms });
            }
            (None, Msg::Peer(_)) => unreachable!("clients get no peer messages"),
            (None, Msg::Frame(payload)) => {
                let c = self.client_of(to);
                self.client_frame(c, link, payload);
            }
            (None, Msg::Close) => self.break_link(link, "server closed"),
            (None, Msg::Open) => unreachable!("nodes never open links to clients"),
        }
    }

    pub(crate) fn node_of(&self, addr: Addr) -> Option<usize> {
        ((addr.0 as usize) < self.nodes.len()).then_some(addr.0 as usize)
    }

    pub(crate) fn client_of(&self, addr: Addr) -> usize {
        assert!(addr.0 >= CLIENT_ADDR_BASE, "{addr:?} is a client");
        (addr.0 - CLIENT_ADDR_BASE) as usize
    }

    /// Breaks a link and tells both ends.
    pub(crate) fn break_link(&mut self, link: LinkId, why: &str) {
        let peer = self.peer_links.pair_of(link);
        if let Some((a, b)) = peer {
            // A peer link is a datagram path: breaking it drops what is in flight, and the
            // path itself is there again at once (a new link replaces it).
            self.net.break_link(link);
            let fresh = self.net.open(Addr(a as u32), Addr(b as u32), LinkKind::Datagram);
            self.peer_links.replace(a, b, fresh.expect("datagram links always open"));
            self.trace.event(self.now, "break", &[link.0], why.as_bytes(), || {
                format!("peer n{a}-n{b} {why}: in-flight messages dropped")
            });
            // Each end's shell sees its connection close (and, in this model, fail to come
            // back at once): both report the other lost.
            self.report_peer_lost(a, b);
            self.report_peer_lost(b, a);
            self.checks.failover.disturbed();
            self.checks.follower_expiry.disturbed(a, b, self.now);
            return;
        }
        let Some((a, b)) = self.net.break_link(link) else {
            return;
        };
        self.trace
            .event(self.now, "break", &[link.0], why.as_bytes(), || format!("c{} {why}", link.0));
        for end in [a, b] {
            match self.node_of(end) {
                Some(n) => self.node_input(n, Input::ClientClosed { conn: ConnId(link.0) }),
                None => {
                    let c = self.client_of(end);
                    self.client_disconnected(c, link);
                }
            }
        }
    }

    /// Crashes node `n`: its process state is gone, its disk keeps only what was durable (and
    /// maybe a prefix of the rest), its links break.
    pub(crate) fn crash(&mut self, n: usize, why: &'static str) {
        if self.nodes[n].node.is_none() {
            return;
        }
        let tear = self.swarm.tear_probability;
        let slot = &mut self.nodes[n];
        slot.node = None;
        slot.inc += 1;
        slot.paused_until = 0;
        slot.crash_mid_step = false;
        slot.logged.clear();
        slot.executor = Some(Box::new(Executor::new()));
        let loss = slot.disk.crash(&mut self.rng, tear);
        self.nemesis_line(&format!("crash n{n} ({why})"), None);
        self.count_fault(match why {
            "mid-step" => "crash_mid_step",
            "nemesis" | "liveness" => "crash",
            "with_learner" => "crash_leader_with_learner",
            point => point,
        });
        if loss.torn {
            self.count_fault("torn_write");
        }
        if loss.lost > 0 {
            self.count_fault("unsynced_lost");
        }
        self.trace.event(
            self.now,
            "crash",
            &[n as u64, loss.kept as u64, loss.lost as u64],
            &[],
            || {
                format!(
                    "n{n} {why} unsynced kept {} lost {} torn {}",
                    loss.kept, loss.lost, loss.torn
                )
            },
        );
        let peer: Vec<LinkId> = self.peer_links.values().copied().collect();
        for link in self.net.links_of(self.nodes[n].addr) {
            if !peer.contains(&link) {
                self.break_link(link, "node crashed");
            }
        }
        self.check_durability();
        self.crash_seen_by_peers(n);
        let down = match self.phase {
            Phase::Faults => self.rng.random_range(50_000_000..3_000_000_000),
            Phase::Liveness => 1_000_000,
        };
        let inc = self.nodes[n].inc;
        self.schedule(self.now + down, Ev::Restart { node: n, inc });
    }

    /// Durability and acknowledged-write checks over every server's disk.
    fn check_durability(&mut self) {
        let logs: Vec<durability::Log<'_>> = self
            .nodes
            .iter()
            .map(|s| durability::Log { txns: s.disk.durable(), snapshot: s.disk.snapshot_zxid() })
            .collect();
        let mut found = durability::check(self.checks.agreement.all(), &logs, self.now);
        found.extend(self.checks.acked.check(&logs, self.now));
        for v in found {
            self.violation(v);
        }
    }

    /// Restarts node `n` from its durable log.
    pub(crate) fn restart(&mut self, n: usize, inc: u32) {
        let slot = &self.nodes[n];
        if slot.node.is_some() || slot.inc != inc {
            return;
        }
        let (accepted_epoch, current_epoch) = slot.disk.epochs();
        // A server coming back during a fail-over joins the election with its own log (the
        // crashed leader may hold a txn nobody else has, making the elected leader abdicate):
        // no longer the single clean crash the fail-over bound is derived for.
        self.checks.failover.disturbed();
        let slot = &self.nodes[n];
        let init = NodeInit {
            wall_ms: slot.clock.wall_ms(self.now),
            seed: self.rng.random(),
            snapshot: slot.disk.snapshot().cloned(),
            txns: slot.disk.durable().iter().map(|t| LoggedTxn::clone(t)).collect(),
            accepted_epoch,
            current_epoch,
        };
        let node = match Node::new(slot.config.clone(), init) {
            Ok(node) => node,
            Err(e) => {
                let message = format!("n{n} cannot recover its durable log: {e}");
                self.violation(Violation { invariant: "durability", at_ns: self.now, message });
                return;
            }
        };
        let recovered = node.committed().min(node.last_zxid());
        let digest = node.tree().digest();
        let standalone = self.nodes.len() == 1;
        self.count_fault("restart");
        self.trace.event(self.now, "restart", &[n as u64, recovered.0 as u64, digest], &[], || {
            format!("n{n} recovered {recovered} digest {digest:#018x}")
        });
        let mut found = Vec::new();
        for txn in self.nodes[n].disk.durable().iter().filter(|t| t.header.zxid <= recovered) {
            found.push(self.checks.agreement.committed(n, txn, self.now));
            found.push(self.checks.session_ids.committed(n, txn, self.now));
        }
        if standalone || node.last_zxid() == recovered {
            found.push(self.checks.digest.observe(n, node.last_zxid(), digest, self.now));
        }
        let slot = &mut self.nodes[n];
        // Durable txns past the commit point may be committed later (Zab); they count as logged.
        let pending = slot.disk.durable().iter().filter(|t| t.header.zxid > recovered);
        slot.logged.clear();
        for txn in pending {
            slot.logged.insert(Arc::clone(txn));
        }
        slot.node = Some(node);
        slot.applied = recovered;
        slot.alive_since = self.now;
        for v in found.into_iter().flatten() {
            self.violation(v);
        }
        let first = self.now + self.tick_interval(n);
        self.schedule(first, Ev::Tick { node: n, inc });
    }

    fn check_ephemerals(&mut self, n: usize) {
        let slot = &self.nodes[n];
        let Some(node) = &slot.node else { return };
        if slot.paused_until > self.now {
            return;
        }
        // Only a serving server can have applied the close. A new leader gives every session
        // a fresh timeout (ZooKeeper's SessionTracker starts over), so in an ensemble the clock
        // also restarts at the last establishment.
        let Some(serving_since) = slot.serving_since else { return };
        let mut since = slot.alive_since.max(serving_since);
        if self.swarm.cluster_size > 1 {
            // Under faults an ensemble may have no working quorum (a one-way partition can
            // leave a leader that still pings but cannot commit): nothing can expire then. So
            // expiry is demanded only once the network is healed.
            let Some(healed) = self.healed_at else { return };
            since = since.max(self.leader_established_at.0).max(healed);
        }
        let swarm = &self.swarm;
        // A follower cut off from its leader serves what it has until it notices (syncLimit)
        // and re-syncs (initLimit): ZooKeeper lets it lag that long.
        let lag_ns = if swarm.cluster_size > 1 {
            (swarm.sync_limit + swarm.init_limit) as u64 * swarm.tick_time_ms as u64 * 1_000_000
        } else {
            0
        };
        let budget = |timeout_ms: i32| expiry_budget_ns(swarm, timeout_ms) + lag_ns;
        let found = self.checks.ephemerals.check(n, node.tree(), since, budget, self.now);
        for v in found {
            self.violation(v);
        }
    }

    fn start_liveness(&mut self) {
        self.phase = Phase::Liveness;
        self.healed_at = Some(self.now);
        self.mix.events_to_heal = self.trace.events();
        self.end_partition_band();
        self.trace.event(self.now, "liveness", &[], &[], || "faults stop; heal all".into());
        self.net.quiet();
        for link in self.net.all_links() {
            self.net.slow_link(link, 1);
        }
        for link in self.net.set_partition(crate::net::Partition::None) {
            debug_assert!(self.net.is_open(link));
        }
        for n in 0..self.nodes.len() {
            self.nodes[n].crash_mid_step = false;
            if self.nodes[n].node.is_none() {
                let inc = self.nodes[n].inc;
                self.restart(n, inc);
            }
        }
        let addr = Addr(CLIENT_ADDR_BASE + self.clients.len() as u32);
        let client = Client::new(addr, true, &self.swarm, &mut self.rng);
        self.clients.push(client);
        let c = self.clients.len() - 1;
        self.schedule(self.now, Ev::ClientWake { client: c });
    }
}

impl Sim {
    /// Node `to`'s shell reports server `lost` (slot) gone, after a network delay: its
    /// connection closed and did not come back at once.
    fn report_peer_lost(&mut self, lost: usize, to: usize) {
        let (lo, hi) = (self.swarm.net.delay_ns_min, self.swarm.net.delay_ns_max);
        let at = self.now + self.rng.random_range(lo..=hi);
        let (inc, peer) = (self.nodes[to].inc, ServerId(lost as u64 + 1));
        let input = Box::new(Input::PeerLost { peer });
        self.schedule(at, Ev::NodeInput { node: to, inc, input });
    }

    /// Node `n` crashed: its process's connections close, so the other servers' shells
    /// report it lost, except in one crash in five, which is silent (a host that vanished:
    /// only the timeouts find it). A crash of the established leader starts a fail-over
    /// measurement (`invariants::failover`).
    fn crash_seen_by_peers(&mut self, n: usize) {
        let announced = self.rng.random_bool(0.8);
        if !announced {
            self.checks.failover.crashed_silently(self.now, n);
        }
        if announced {
            let up: Vec<usize> = (0..self.nodes.len())
                .filter(|m| *m != n && self.nodes[*m].node.is_some())
                .collect();
            for m in up {
                self.report_peer_lost(n, m);
            }
        }
        if self.leader_established_at.1 != Some(n) || self.nodes.len() == 1 {
            return;
        }
        let epoch = self.leaders.last_epoch_of(n);
        let others_up = (0..self.nodes.len())
            .filter(|m| *m != n)
            .all(|m| self.nodes[m].node.is_some() && self.nodes[m].paused_until <= self.now);
        // The survivors' leaders: one that crashed silently may still hold its followers.
        let followed: Vec<usize> = (0..self.nodes.len())
            .filter(|m| *m != n)
            .filter_map(|m| {
                let leader = self.nodes[m].node.as_ref()?.leader()?.0 as usize - 1;
                (leader != m).then_some(leader)
            })
            .collect();
        let wait = crate::invariants::failover::stale_wait_ns(&self.swarm);
        let clean = announced
            && others_up
            && !self.checks.failover.stale_wait(self.now, &followed, wait)
            && self.phase == Phase::Faults
            && matches!(self.net.partition(), crate::net::Partition::None)
            && self.swarm.net.datagram_loss == 0.0
            && self.peer_links.values().all(|l| self.net.slow_factor(*l) == 1);
        self.checks.failover.leader_crashed(self.now, n, epoch, clean);
    }

    /// The fail-over check as time passes (after every step).
    fn check_failover(&mut self) {
        let bound = crate::invariants::failover::bound_ns(&self.swarm);
        if let Some(v) = self.checks.failover.check(self.now, bound) {
            self.violation(v);
        }
    }
}

/// The time a server may take to expire a silent session of `timeout_ms`, ns: the timeout and
/// one expiry bucket (`tickTime`) in the slowest clock the seed allows, a few ticks, two fsyncs
/// (the close txn may wait behind one) and slack.
pub(crate) fn expiry_budget_ns(s: &Swarm, timeout_ms: i32) -> u64 {
    let ms = timeout_ms as u64 + s.tick_time_ms as u64 + 3 * s.tick_ms as u64;
    let slowest = 1_000_000 - s.drift_ppm_max.min(500_000);
    let ns = ms as u128 * 1_000_000 * 1_000_000 / slowest as u128;
    ns as u64 + 2 * s.fsync_ns.1 + 100_000_000
}

/// The simulator's primitive effects for node `n`, as the executor calls them (one call per
/// output, in output order). It also injects crashes: before the `cut`-th output (a crash in
/// the middle of a step) and after an output at a protocol point (`Sim::crash_at_point`).
struct SimShell<'a> {
    sim: &'a mut Sim,
    n: usize,
    /// The index of the next output.
    next: usize,
    /// Crash before this output.
    cut: Option<usize>,
    /// The node crashed: the rest of the step's outputs are lost.
    halted: bool,
}

impl SimShell<'_> {
    /// Before output `next`: crashes there if armed to. True if the output may be carried out.
    fn enter(&mut self) -> bool {
        assert!(!self.halted, "the executor stops at a halted shell");
        let at = self.next;
        self.next += 1;
        if self.cut == Some(at) {
            self.sim.crash(self.n, "mid-step");
            self.halted = true;
        }
        !self.halted
    }

    /// After an output at a protocol point: maybe crash there.
    fn after(&mut self, point: Option<CrashPoint>) {
        if let Some(point) = point {
            self.halted = self.sim.crash_at_point(self.n, point);
        }
    }
}

impl Effects for SimShell<'_> {
    fn append(&mut self, txn: Arc<LoggedTxn>) {
        if self.enter() {
            self.sim.persist(self.n, txn);
        }
    }

    fn write(&mut self, write: DiskWrite) -> Written {
        if self.enter() {
            let point = CrashPoint::of_write(&write);
            self.sim.disk_write(self.n, write);
            self.after(Some(point));
        }
        Written::Done
    }

    fn peer_send(&mut self, to: ServerId, msg: ZabMessage) {
        if self.enter() {
            let point = CrashPoint::of_message(&msg);
            self.sim.peer_send(self.n, to, msg);
            self.after(point);
        }
    }

    fn client_send(&mut self, conn: ConnId, frame: Vec<u8>) {
        if self.enter() {
            self.sim.node_send(self.n, conn, frame);
        }
    }

    fn client_close(&mut self, conn: ConnId) {
        if self.enter() {
            self.sim.client_close(self.n, conn);
        }
    }

    fn read_log(&mut self, read: LogReadRequest) {
        if self.enter() {
            self.sim.read_log(self.n, read);
        }
    }

    fn halted(&self) -> bool {
        self.halted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `wall_ms` in i64 gives what the i128 formula gives, near the point where the product
    /// stops fitting and beyond it, for fast and slow clocks.
    #[test]
    fn wall_ms_matches_the_i128_formula() {
        let reference = |clock: &Clock, now: u64| {
            let ms = now as i128 * (1_000_000 + clock.drift_ppm as i128) / 1_000_000 / 1_000_000;
            START_MS + clock.offset_ms + ms as i64
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut both_paths = [false, false];
        for drift_ppm in [-200_000, -1, 0, 1, 150, 200_000] {
            let clock = Clock { drift_ppm, offset_ms: -7 };
            let limit = (i64::MAX / (1_000_000 + drift_ppm)) as u64;
            let edges = [0, 1, 999_999, 27_000_000_000, limit - 1, limit, limit + 1, u64::MAX];
            let random = (0..200).map(|_| rng.random_range(0..limit.saturating_mul(2)));
            for now in edges.into_iter().chain(random) {
                both_paths[usize::from(now > limit)] = true;
                assert_eq!(clock.wall_ms(now), reference(&clock, now), "{drift_ppm} ppm at {now}");
            }
        }
        assert_eq!(both_paths, [true, true], "both the i64 and the i128 path were taken");
    }

    /// `sim --mix` counts every node step once, under the kind of its input: the counts equal
    /// the trace's lines of each input kind (every step traces its input first), and the idle
    /// ticks are ticks.
    #[test]
    fn step_mix_counts_each_step_under_its_input_kind() {
        let trace_kinds =
            ["tick", "accept", "cert", "recv", "closed", "persisted", "peer", "peer_lost"];
        for seed in [6, 10] {
            let mut sim = Sim::new(seed, Bugs::default(), true);
            sim.run();
            let text = sim.trace.clone().into_text().expect("the trace was kept");
            for (i, kind) in trace_kinds.iter().enumerate() {
                let lines = text.lines().filter(|l| l.split(' ').nth(1) == Some(kind)).count();
                assert_eq!(sim.mix.steps[i], lines as u64, "seed {seed}: {kind} steps");
            }
            assert!(sim.mix.steps[0] > 0 && sim.mix.steps[6] > 0, "ticks and peer messages");
            assert!(sim.mix.idle_ticks > 0, "seed {seed}: some ticks do nothing");
            assert!(sim.mix.idle_ticks < sim.mix.steps[0], "seed {seed}: some ticks do something");
            let mut twice = sim.mix;
            twice.add(&sim.mix);
            assert_eq!(twice.total(), 2 * sim.mix.total(), "add sums every kind");
        }
    }

    /// `--mix`'s phase counts split the trace where the seed heals (the events before its
    /// `liveness` line) and where the fresh client's write is acknowledged (up to and with
    /// that reply's line), and sum over seeds.
    #[test]
    fn step_mix_splits_the_events_at_the_heal_and_the_liveness_ack() {
        for seed in [6, 10, 21] {
            let mut sim = Sim::new(seed, Bugs::default(), true);
            sim.run();
            let text = sim.trace.clone().into_text().expect("the trace was kept");
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len() as u64, sim.trace.events(), "one line per event");
            let heal = lines.iter().position(|l| l.split(' ').nth(1) == Some("liveness"));
            let heal = heal.expect("the seed heals");
            assert_eq!(sim.mix.events_to_heal, heal as u64, "seed {seed}: events before the heal");
            let fresh = format!("reply client {} ", sim.clients.len() - 1);
            let acked = lines.iter().position(|l| {
                l.split_once(' ').is_some_and(|(_, rest)| rest.starts_with(&fresh))
                    && l.contains(" err 0 ")
                    && l.contains("Create {")
            });
            let acked = acked.expect("the fresh client's write was acknowledged");
            assert!(acked > heal, "seed {seed}: acknowledged after the heal");
            assert_eq!(sim.mix.events_to_liveness_ack, acked as u64 + 1, "seed {seed}: to the ack");
            let mut twice = sim.mix;
            twice.add(&sim.mix);
            assert_eq!(twice.events_to_heal, 2 * sim.mix.events_to_heal, "add sums the heal");
            assert_eq!(
                twice.events_to_liveness_ack,
                2 * sim.mix.events_to_liveness_ack,
                "add sums the ack"
            );
        }
    }

    /// The peer links list answers as the map of pairs it replaced: each pair (either order)
    /// has its own link, the listing is in pair order, and a link names its pair.
    #[test]
    fn peer_links_answer_as_a_map_of_pairs() {
        for nodes in 1..=7 {
            let mut map = BTreeMap::new();
            let mut pairs = Vec::new();
            for a in 0..nodes {
                for b in a + 1..nodes {
                    let link = LinkId(100 + (a * 10 + b) as u64);
                    map.insert((a, b), link);
                    pairs.push(((a, b), link));
                }
            }
            let mut links = PeerLinks::new(nodes, pairs);
            for (&(a, b), &link) in &map {
                assert_eq!(links.get(a, b), link, "{nodes} nodes: ({a}, {b})");
                assert_eq!(links.get(b, a), link, "{nodes} nodes: ({b}, {a})");
                assert_eq!(links.pair_of(link), Some((a, b)));
            }
            assert!(links.values().copied().eq(map.values().copied()), "in pair order");
            assert_eq!(links.pair_of(LinkId(7)), None, "a client link is no peer link");
            if nodes >= 3 {
                links.replace(2, 1, LinkId(5));
                assert_eq!((links.get(1, 2), links.pair_of(LinkId(5))), (LinkId(5), Some((1, 2))));
                assert_eq!(links.get(0, 2), map[&(0, 2)], "the other pairs keep theirs");
            }
        }
    }

    /// The queue pops by `(at, seq)` whatever slots the events sit in: slots freed by early
    /// pops are reused by later pushes, and the order is still the one a plain heap of whole
    /// events gives.
    #[test]
    fn event_queue_pops_by_time_then_insertion_order_across_slot_reuse() {
        let mut queue = EventQueue::default();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut expected = Vec::new();
        let mut popped = Vec::new();
        let mut seq = 0;
        for round in 0..50u64 {
            for _ in 0..rng.random_range(0..8) {
                seq += 1;
                let at = round * 10 + rng.random_range(0..30);
                queue.push(at, seq, Ev::ClientWake { client: seq as usize });
                expected.push((at, seq));
            }
            for _ in 0..rng.random_range(0..6) {
                let Some((at, Ev::ClientWake { client })) = queue.pop() else { break };
                popped.push((at, client as u64));
            }
        }
        while let Some((at, ev)) = queue.pop() {
            let Ev::ClientWake { client } = ev else { unreachable!("only wakes were pushed") };
            popped.push((at, client as u64));
        }
        assert_eq!(popped.len(), expected.len(), "every event comes out once");
        assert!(queue.slots.len() < expected.len(), "slots were reused");
        // Replay the same pushes and pops against the order a heap of (at, seq) defines.
        let mut reference = std::collections::BTreeSet::new();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut again = Vec::new();
        let mut seq = 0;
        for round in 0..50u64 {
            for _ in 0..rng.random_range(0..8) {
                seq += 1;
                reference.insert((round * 10 + rng.random_range(0..30), seq));
            }
            for _ in 0..rng.random_range(0..6) {
                let Some(first) = reference.pop_first() else { break };
                again.push(first);
            }
        }
        again.extend(std::mem::take(&mut reference));
        assert_eq!(popped, again, "the order is (time, insertion) and nothing else");
    }

    /// `Logged` answers as the map from zxid to txn it replaces, for the operations the
    /// simulator uses: inserts mostly in order, some out of order or at a zxid held (replaced),
    /// truncations, pops of the applied prefix, and membership.
    #[test]
    fn logged_txns_answer_as_a_map_of_zxids() {
        use zkr_core::txn::TxnHeader;
        use zkr_core::types::SessionId;
        let txn = |z: i64, cxid: i32| {
            let header = TxnHeader { session_id: SessionId(1), cxid, zxid: Zxid(z), time_ms: 0 };
            Arc::new(LoggedTxn { header, txn: Txn::Delete { path: format!("/{z}") } })
        };
        let mut logged = Logged::default();
        let mut map: BTreeMap<Zxid, Arc<LoggedTxn>> = BTreeMap::new();
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        let (mut next, mut out_of_order, mut replaced) = (1i64, 0, 0);
        for round in 0..4000 {
            match rng.random_range(0..10) {
                0..=4 => {
                    next += rng.random_range(1..3);
                    let t = txn(next, round);
                    logged.insert(Arc::clone(&t));
                    map.insert(t.header.zxid, t);
                }
                5 => {
                    let z = rng.random_range(next.saturating_sub(6).max(1)..=next);
                    let t = txn(z, round);
                    out_of_order += usize::from(!map.contains_key(&t.header.zxid));
                    replaced += usize::from(map.contains_key(&t.header.zxid));
                    logged.insert(Arc::clone(&t));
                    map.insert(t.header.zxid, t);
                }
                6 => {
                    let after = Zxid(rng.random_range(next.saturating_sub(4)..=next));
                    logged.keep_upto(after);
                    map.retain(|z, _| *z <= after);
                }
                7 | 8 => {
                    let upto = Zxid(rng.random_range(next.saturating_sub(8)..=next));
                    let mut popped = Vec::new();
                    while let Some(t) = logged.pop_upto(upto) {
                        popped.push(t);
                    }
                    let mut want = Vec::new();
                    while let Some(entry) = map.first_entry()
                        && *entry.key() <= upto
                    {
                        want.push(entry.remove_entry().1);
                    }
                    assert_eq!(popped, want, "the same txns, oldest first, up to {upto}");
                }
                _ => {
                    let z = Zxid(rng.random_range(next.saturating_sub(8).max(0)..=next + 1));
                    assert_eq!(logged.contains(z), map.contains_key(&z), "holds {z}?");
                }
            }
            assert_eq!(logged.zxids(), map.keys().copied().collect::<Vec<_>>(), "round {round}");
            for (t, want) in logged.txns.iter().zip(map.values()) {
                assert!(Arc::ptr_eq(t, want), "the txn inserted last at {}", want.header.zxid);
            }
        }
        assert!(out_of_order > 50 && replaced > 50, "{out_of_order} out of order, {replaced} held");
        logged.clear();
        assert!(logged.zxids().is_empty() && !logged.contains(Zxid(next)), "cleared");
    }
}
