//! Quorum connections between ensemble members: one listener on this server's quorum port,
//! and one outbound connection per peer that reconnects with backoff. Every connection starts
//! with a handshake (below); then the connecting side sends frames of `u32 length + payload`,
//! the payload being `zkr_core::proto::peer` bytes, and the listening side never writes again.
//!
//! The handshake names the quorum protocol versions each side speaks, so that a member of
//! another release is refused with one log line naming both ranges and what to do, before
//! anything of its connection reaches the core, instead of each side reading the other's bytes
//! out of place (docs/COMPATIBILITY.md, docs/OPERATIONS.md "Quorum protocol versions"). It is
//! one exchange, all integers big-endian:
//! - the connecting side: `"zkrQ"`, the oldest and the newest protocol version it speaks (u16
//!   each), the length of the rest (u16, at least 16), its server id (u64) and its boot nonce
//!   (u64). A later version may append fields; a reader skips what it does not know.
//! - the listening side: `"zkrQ"`, its own oldest and newest version, the version both speak
//!   (the newest in both ranges; 0 if refused), and a refusal code ([`Refusal`]; 0 if
//!   accepted). Then it only reads.
//!
//! What the listener reads first tells the peers it cannot serve apart: the magic `"zkrQ"`
//! (0x7a6b7251), a server id (an older zkr, which sent its id first: ids are below 2^56, so its
//! first byte is 0), or a negative number (ZooKeeper's `QuorumCnxManager`, whose first long is
//! its protocol version, -65536 or -65535; one older than 3.5 sends its id and reads as an older
//! zkr). Any of these, a peer with no version in common, a handshake cut short, or one naming a
//! server that is not a member (or this one), is refused: the listener logs it (at warn once a
//! minute per address and reason, [`RefusalLog`]), answers a zkr handshake with the reason
//! (an older zkr or ZooKeeper reads no answer, and an older zkr would take one for a close),
//! and closes the connection a second later ([`REFUSAL_HOLD`]: an older zkr reconnects at once
//! after a close, so closing at once would make it spin). The connecting side logs the refusal
//! it is answered with, or an answer that is not zkr's, and backs off as from a failed connect.
//! Version 1 is this build's only one: it is what the connections carried before the versions
//! (the nonce and the frames) behind the new opening.
//!
//! Messages go out on our outbound connection and come in on the peer's; so each direction is
//! FIFO while its connection lives, and a broken connection loses what was in flight. Election
//! notifications are resent, so losing them costs nothing. Any other Zab message lost leaves a
//! hole in the stream: the receiver's FIFO channel holds everything after it and waits, while
//! the sender goes on as if it had been heard (tier 2 seed 77338: a cut at a learner, its
//! reconnect within 3 ms, one of its messages to the leader lost; the leader heard none of its
//! session touches after it, dropped it at `syncLimit`, and expired a session the learner had
//! answered a ping of 9 s before). So a connection that breaks after it carried such a message
//! ends the peering on both sides, as the break of ZooKeeper's one learner socket does: the
//! sender reports the peer lost when it sees the break, the receiver when the same run of the
//! peer connects again ([`note_run`]); the core then resyncs (a learner elects, a leader drops
//! the learner). While a peer is unreachable, what is queued for it is dropped rather than
//! kept: old messages would only be stale when it comes back.
//!
//! Lost peers: when our connection to a peer breaks (a write fails, or the peer closes its end,
//! which a read on it shows: the peer never writes there), the outbound task reconnects at
//! once, with a short timeout ([`RECONNECT_PROBE`]); so does a task waiting to retry when the
//! peer's connection to us ends. If that fails, the peer is reported lost (`Event::PeerLost`, the
//! core's `Input::PeerLost`): a follower elects at once instead of waiting `syncLimit` for
//! silence, as ZooKeeper's follower does when its leader's socket closes. Messages dropped
//! because the peer is unreachable are reported the same way (at most once per failed
//! connect), so a learner does not wait `initLimit` on a leader that is not there. One loss is
//! reported once: a failed reconnect after a break already reported, or the peer's connection
//! to us ending meanwhile, reports nothing more until a connection comes up (an election would
//! forget the peer's vote a second time); what was queued at such a break is dropped with it.
//! A peer that is stopped but whose connections stay open is not reported; the core's timeouts
//! find it (but a new connection to it that gets no answer to our handshake is a failed connect).
//!
//! Restarted peers: each server process draws a boot nonce when it starts ([`boot_nonce`]), and
//! the listener remembers the last one each peer sent. A connection whose nonce differs from
//! the peer's last one comes from a new run of its process: the peer restarted, and whatever
//! it was to us (our leader, our learner, a voter in our election) is gone with the old run,
//! however fast the new one came back. The peer is reported lost on the events channel right
//! before the first message of the new run (not at its handshake: the core stops waiting for a
//! lost peer's vote, and the new run is about to cast one; a restarted server speaks at once,
//! its election notifications), and a connection of the old run that is still being read
//! delivers nothing once the new run has connected. Without this, a leader restarted within the
//! reconnect probe was never reported lost, and its learners followed a leader that no longer
//! existed until `syncLimit` of silence (tier 2 seed 56306, docs/TESTING.md); ZooKeeper's
//! learner leaves when its socket to the old process closes.
//!
//! Unacknowledged data: an outbound connection whose data the peer's host has not acknowledged
//! for the core's own silence bound (`syncLimit` ticks, by then the core has given up on the
//! peer) is aborted by the kernel (`TCP_USER_TIMEOUT`) and replaced. Without this, after a
//! partition heals, a connection that retransmitted all through it waits out TCP's backed-off
//! retransmission timer (seconds, doubling) before anything flows again: a cut-off leader took
//! 5 s to rejoin where ZooKeeper, whose election connections were idle, took 1.3 s (issue 17).
//! A stopped peer's kernel still acknowledges, so this does not detect it any sooner.
//!
//! A peer that opens a new connection to us while its old one is still open here gave the old
//! one up (its writes went unacknowledged: the path between us was broken, e.g. a partition
//! that has just healed). The old inbound connection is closed, and our outbound connection
//! to that peer is replaced too if it is at least `syncLimit` old (so it predates a break long
//! enough to make the peer give up; a younger one is itself a replacement, and replacing it in
//! turn would start the peer doing the same): it crossed the same broken path, and may sit in
//! TCP's backed-off retransmission timer for seconds more (issue 17: a cut-off leader's answer
//! from the new leader waited 1.5 s in such a connection after the heal).
//!
//! A peer that connects to us is up: our outbound task, if it is waiting out its backoff to
//! reconnect to that peer, tries at once. Without this a restarted server heard nothing back
//! until the others' next attempt, up to [`MAX_RECONNECT_BACKOFF`] later: its election took
//! 125-350 ms of a rejoin that took 700 in all (issue 14).
//!
//! The last election notification queued for a peer is sent again first on every new
//! connection to it, whether it was dropped while the peer was unreachable or lost with the old
//! connection (ZooKeeper's `QuorumCnxManager` re-sends `lastMessageSent` the same way). A
//! notification is idempotent, and its round tells the receiver if it is stale; without this,
//! a server that went back to election while cut off waits for its next resend, which backs
//! off to seconds (issue 17: 4 s after a partition healed).
//!
//! With quorum TLS (`sslQuorum`, `portUnification`; see `quorum_tls`), the listener hands each
//! accepted socket to `QuorumTls::accept` and the outbound task each connected one to
//! `QuorumTls::connect`; what follows runs unchanged over the TLS stream. A peer refused there
//! (untrusted certificate, wrong host name, not TLS) is logged with its address and closed; our
//! outbound connection to a peer that refuses us counts as a failed connect (backoff, `PeerLost`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::signal;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use zkr_core::proto::peer::{decode_peer_message, encode_peer_message};
use zkr_core::types::ServerId;
use zkr_core::zab::message::{SessionMessage, ZabMessage};

use crate::client_net::Event;
use crate::quorum_tls::QuorumTls;

/// A quorum connection's byte stream: the socket itself, or TLS over it (`quorum_tls`).
pub type PeerStream = Box<dyn PeerIo>;

/// What a quorum connection's stream offers.
pub trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerIo for T {}

/// Largest peer frame accepted (a SNAP carries a whole snapshot).
const MAX_PEER_FRAME: usize = 512 * 1024 * 1024;

/// Read buffer of an inbound quorum connection.
const PEER_READ_BUFFER_BYTES: usize = 64 * 1024;

/// How long the reconnect after a broken connection may take before the peer counts as lost.
pub const RECONNECT_PROBE: Duration = Duration::from_millis(500);

/// The first pause between connect attempts to an unreachable peer; it doubles after each.
const FIRST_RECONNECT_BACKOFF: Duration = Duration::from_millis(50);

/// The longest pause between connect attempts to an unreachable peer. A connect to a host
/// that does not answer takes up to 2 s itself (one SYN retransmission, at 1 s), so attempts
/// send a SYN at least every 1.5 s: a peer is reached within that of a partition healing. An
/// attempt is one SYN: cheap. (It was 2 s, which made SYNs up to 3 s apart: a cut-off
/// leader then rejoined 1.1 to 2.6 s after the heal, ZooKeeper 1.3 s; issue 17.)
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_millis(500);

/// The first four bytes of a quorum handshake and of its answer (see the module doc).
const HANDSHAKE_MAGIC: [u8; 4] = *b"zkrQ";

/// The oldest and the newest quorum protocol version this build speaks. A release that changes
/// what travels on quorum connections raises the newest, and keeps speaking the older ones for
/// one release at least, so that its members and the previous release's can form an ensemble
/// during a rolling upgrade; each connection speaks the newest version both ends have.
pub const PROTOCOL_VERSIONS: (u16, u16) = (1, 1);

/// The handshake's part before the length-prefixed rest: magic, oldest and newest version.
const HELLO_HEAD_BYTES: usize = 8;

/// The rest of the handshake in version 1: server id and boot nonce. Later versions may append.
const HELLO_BODY_BYTES: usize = 16;

/// The longest rest of a handshake accepted (what a later version appends is skipped).
const HELLO_BODY_BYTES_MAX: usize = 1024;

/// The listener's answer: magic, its oldest and newest version, the chosen one, the refusal.
const ANSWER_BYTES: usize = 12;

/// How long a connecting peer may take to send its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a refused connection is held (reading nothing) before the listener closes it. An
/// older zkr reconnects at once when its connection closes; this makes it once a second.
const REFUSAL_HOLD: Duration = Duration::from_secs(1);

/// How often the listener logs one refusal (address and reason) at warn; at debug in between.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Why the listener refused a connection, as its answer says. Wire values: frozen, never
/// reused (0 in the answer means accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
enum Refusal {
    /// No protocol version in both ranges.
    NoCommonVersion = 1,
    /// The id is not that of a member of the listener's ensemble (or is its own).
    NotAMember = 2,
    /// Quorum TLS: the peer's certificate does not name the member it says it is.
    Identity = 3,
    /// Not a zkr handshake, or a malformed one.
    NotZkr = 4,
}

impl Refusal {
    fn from_wire(code: u16) -> Option<Refusal> {
        [Refusal::NoCommonVersion, Refusal::NotAMember, Refusal::Identity, Refusal::NotZkr]
            .into_iter()
            .find(|r| *r as u16 == code)
    }
}

/// What the first 8 bytes of an inbound connection say the peer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opening {
    /// A zkr that speaks protocol versions `versions.0..=versions.1`.
    Zkr { versions: (u16, u16) },
    /// A ZooKeeper server: its first long is its (negative) quorum protocol version.
    ZooKeeper { version: i64 },
    /// A zkr from before the versions (or a ZooKeeper older than 3.5): its server id first.
    Unversioned { id: u64 },
}

/// Tells the peers apart by the first 8 bytes of their handshake (see the module doc).
fn classify(first: [u8; 8]) -> Opening {
    if first[..4] == HANDSHAKE_MAGIC {
        let oldest = u16::from_be_bytes([first[4], first[5]]);
        let newest = u16::from_be_bytes([first[6], first[7]]);
        return Opening::Zkr { versions: (oldest, newest) };
    }
    let long = i64::from_be_bytes(first);
    if long < 0 {
        Opening::ZooKeeper { version: long }
    } else {
        Opening::Unversioned { id: long as u64 }
    }
}

/// The version a connection between `theirs` and `ours` speaks: the newest in both ranges.
fn common_version(theirs: (u16, u16), ours: (u16, u16)) -> Option<u16> {
    let (oldest, newest) = (theirs.0.max(ours.0), theirs.1.min(ours.1));
    (oldest <= newest).then_some(newest)
}

/// The line an operator reads when a zkr peer speaks versions `theirs` and this build none of
/// them: both ranges, and which member to upgrade.
fn no_common_version(theirs: (u16, u16)) -> String {
    let ours = PROTOCOL_VERSIONS;
    let advice = if theirs.1 < ours.0 {
        "the peer runs an older zkr release: upgrade it to this one"
    } else {
        "the peer runs a newer zkr release: upgrade this server to it"
    };
    format!(
        "it speaks quorum protocol {}..={}, this server {}..={}: no version in common; {advice} \
         (docs/OPERATIONS.md, \"Quorum protocol versions\")",
        theirs.0, theirs.1, ours.0, ours.1
    )
}

/// Why an inbound connection whose opening is not this build's handshake is refused.
fn foreign_opening(opening: Opening) -> String {
    let ours = PROTOCOL_VERSIONS;
    match opening {
        Opening::ZooKeeper { version } => format!(
            "the peer is an Apache ZooKeeper server (its quorum protocol version is {version}); \
             zkr speaks its own quorum protocol ({}..={}), and ZooKeeper and zkr servers cannot \
             form one ensemble: take it out of the server.N lines (docs/COMPATIBILITY.md)",
            ours.0, ours.1
        ),
        Opening::Unversioned { id } => format!(
            "the peer sent server id {id} with no quorum protocol version: it runs a zkr release \
             from before the versions (or a ZooKeeper older than 3.5), this server speaks quorum \
             protocol {}..={}; upgrade it to this release (docs/OPERATIONS.md, \"Quorum \
             protocol versions\")",
            ours.0, ours.1
        ),
        Opening::Zkr { versions } => no_common_version(versions),
    }
}

/// The handshake of a connection from `me` (id, boot nonce), speaking `versions`.
fn hello(me: (ServerId, u64), versions: (u16, u16)) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HELLO_HEAD_BYTES + 2 + HELLO_BODY_BYTES);
    bytes.extend_from_slice(&HANDSHAKE_MAGIC);
    bytes.extend_from_slice(&versions.0.to_be_bytes());
    bytes.extend_from_slice(&versions.1.to_be_bytes());
    bytes.extend_from_slice(&(HELLO_BODY_BYTES as u16).to_be_bytes());
    bytes.extend_from_slice(&me.0.0.to_be_bytes());
    bytes.extend_from_slice(&me.1.to_be_bytes());
    assert_eq!(bytes.len(), HELLO_HEAD_BYTES + 2 + HELLO_BODY_BYTES);
    bytes
}

/// The listener's answer: the version chosen, or why it refused.
fn answer(versions: (u16, u16), outcome: Result<u16, Refusal>) -> [u8; ANSWER_BYTES] {
    let (version, refusal) = match outcome {
        Ok(version) => (version, 0),
        Err(refusal) => (0, refusal as u16),
    };
    assert!((version == 0) != (refusal == 0), "either a version or a refusal");
    let mut bytes = [0u8; ANSWER_BYTES];
    bytes[..4].copy_from_slice(&HANDSHAKE_MAGIC);
    bytes[4..6].copy_from_slice(&versions.0.to_be_bytes());
    bytes[6..8].copy_from_slice(&versions.1.to_be_bytes());
    bytes[8..10].copy_from_slice(&version.to_be_bytes());
    bytes[10..].copy_from_slice(&refusal.to_be_bytes());
    bytes
}

/// Reads the listener's answer to our handshake as sent by `answer`: the version to speak, or
/// the log line's reason for the refusal. `me` names this server in it.
fn read_answer(bytes: [u8; ANSWER_BYTES], me: ServerId) -> Result<u16, String> {
    if bytes[..4] != HANDSHAKE_MAGIC {
        return Err("the peer answered our handshake with something else than zkr's answer (is \
                    it an Apache ZooKeeper server, or another service at that address?)"
            .into());
    }
    let word = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    let (theirs, version, refusal) = ((word(4), word(6)), word(8), word(10));
    let expected = common_version(theirs, PROTOCOL_VERSIONS);
    match Refusal::from_wire(refusal) {
        None if refusal == 0 && Some(version) == expected => Ok(version),
        None if refusal == 0 => Err(format!(
            "the peer chose quorum protocol {version}, which is not the newest of both ranges \
             ({}..={} there, {}..={} here)",
            theirs.0, theirs.1, PROTOCOL_VERSIONS.0, PROTOCOL_VERSIONS.1
        )),
        None => Err(format!("the peer refused us for a reason unknown here (code {refusal})")),
        Some(Refusal::NoCommonVersion) => Err(no_common_version(theirs)),
        Some(Refusal::NotAMember) => Err(format!(
            "the peer does not count server {} as a member: check its server.N lines",
            me.0
        )),
        Some(Refusal::Identity) => Err("the peer's host name verification of our certificate \
                                        failed (ssl.quorum.hostnameVerification)"
            .into()),
        Some(Refusal::NotZkr) => Err("the peer did not understand our handshake".into()),
    }
}

/// Refusals the listener logged at warn, by the peer's address and the reason: a peer that
/// keeps connecting (an older zkr does so every [`REFUSAL_HOLD`]) is logged at warn once every
/// [`REFUSAL_LOG_INTERVAL`], at debug in between.
#[derive(Default)]
struct RefusalLog {
    last_warned: std::sync::Mutex<BTreeMap<(std::net::IpAddr, String), tokio::time::Instant>>,
}

impl RefusalLog {
    /// Logs the refusal of the connection from `remote` (naming `peer`, if it said) for `reason`.
    fn refused(&self, remote: SocketAddr, peer: Option<u64>, reason: &str) {
        let now = tokio::time::Instant::now();
        let warn = {
            let mut last = self.last_warned.lock().expect("never poisoned");
            // Bounded: many addresses (a scan) only make some lines warn again early.
            if last.len() > 256 {
                last.clear();
            }
            let key = (remote.ip(), reason.to_string());
            let due = last.get(&key).is_none_or(|at| now - *at >= REFUSAL_LOG_INTERVAL);
            if due {
                last.insert(key, now);
            }
            due
        };
        let peer = peer.map(|id| id.to_string()).unwrap_or_else(|| "?".into());
        if warn {
            tracing::warn!(%remote, peer, "quorum connection refused: {reason}");
        } else {
            tracing::debug!(%remote, peer, "quorum connection refused: {reason}");
        }
    }
}

/// Per peer, counters the accept loop keeps and the outbound task watches.
struct InboundSignals {
    /// Inbound connections from the peer that ended.
    closed: signal::Sender<u64>,
    /// Inbound connections from the peer that were opened (each one supersedes the last).
    opened: signal::Sender<u64>,
    /// Inbound connections superseded while still open (see the module doc).
    replaced: signal::Sender<u64>,
    /// The peer's run: the boot nonce of its last connection (`None` before the first), and
    /// whether its restart is still to be reported. Locked while a connection compares it and
    /// sends to the core, so that the report and the messages of the peer's old run cannot
    /// pass each other (see the module doc).
    run: std::sync::Mutex<Option<PeerRun>>,
}

/// What the listener knows of the peer's current run of its process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PeerRun {
    /// The boot nonce of its last connection.
    boot_nonce: u64,
    /// The run is new and not reported yet: its first message is preceded by `PeerLost`.
    restart_unreported: bool,
    /// The run's current connection handed the core a message other than an election
    /// notification. If the run connects again, what it sent on this connection may have been
    /// lost with it: a hole in the peer's stream (see the module doc).
    carried: bool,
}

/// The nonce a server process announces in every quorum handshake, drawn from the seed of its
/// randomness (`ServerEnv::seed`: the OS's randomness in production; under tier 2 of `sim`, the
/// run's seed and the server's incarnation, so that traces replay). Not the node's own draws:
/// the node takes its sequence from the seed itself.
pub fn boot_nonce(seed: u64) -> u64 {
    use rand::{Rng, SeedableRng};
    rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xb007_b007_0000_0000).random()
}

type InboundClosed = Arc<BTreeMap<ServerId, InboundSignals>>;

/// Handles to the outbound connections.
pub struct PeerNet {
    senders: BTreeMap<ServerId, mpsc::UnboundedSender<Outgoing>>,
}

/// One queued message: its frame, or a frame still being encoded on a blocking thread (a SNAP
/// carries the whole tree: encoding it on the driver would stall every client for a time that
/// grows with the tree, issue 16). The queue keeps the order either way.
enum Outgoing {
    Frame(Vec<u8>),
    /// An election notification (remembered for the next connection, see the module doc).
    Notification(Vec<u8>),
    Encoding(oneshot::Receiver<Vec<u8>>),
}

impl PeerNet {
    /// Listens on `listen` and starts one outbound task per peer in `peers` (`host:port`);
    /// `me` is this server's id and boot nonce ([`boot_nonce`]); `tls` is quorum TLS, when
    /// `sslQuorum` or `portUnification` is on.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        me: (ServerId, u64),
        listen: SocketAddr,
        peers: BTreeMap<ServerId, String>,
        events: mpsc::UnboundedSender<Event>,
        shutdown: signal::Receiver<bool>,
        unacked_limit: Duration,
        cuts: Option<signal::Receiver<u64>>,
        tls: Option<Arc<QuorumTls>>,
    ) -> std::io::Result<PeerNet> {
        let links = (unacked_limit, FIRST_RECONNECT_BACKOFF, MAX_RECONNECT_BACKOFF);
        PeerNet::start_with(me, listen, peers, events, shutdown, links, cuts, tls).await
    }

    /// `start`, with `links` = (`unacked_limit`, the first and the longest reconnect backoff).
    #[allow(clippy::too_many_arguments)]
    async fn start_with(
        me: (ServerId, u64),
        listen: SocketAddr,
        peers: BTreeMap<ServerId, String>,
        events: mpsc::UnboundedSender<Event>,
        shutdown: signal::Receiver<bool>,
        links: (Duration, Duration, Duration),
        cuts: Option<signal::Receiver<u64>>,
        tls: Option<Arc<QuorumTls>>,
    ) -> std::io::Result<PeerNet> {
        let (unacked_limit, first_backoff, max_backoff) = links;
        assert!(!unacked_limit.is_zero(), "zero would mean the kernel's default");
        let listener = TcpListener::bind(listen).await?;
        tracing::info!(%listen, "quorum port listening");
        let mut closed = BTreeMap::new();
        let mut closed_rx = BTreeMap::new();
        for id in peers.keys() {
            let (tx, rx) = signal::channel(0u64);
            let (replaced, replaced_rx) = signal::channel(0u64);
            let (opened, opened_rx) = signal::channel(0u64);
            let run = std::sync::Mutex::new(None);
            closed.insert(*id, InboundSignals { closed: tx, opened, replaced, run });
            closed_rx.insert(*id, (rx, replaced_rx, opened_rx));
        }
        let closed: InboundClosed = Arc::new(closed);
        let accepting = accept_loop(
            me.0,
            listener,
            events.clone(),
            closed,
            shutdown.clone(),
            cuts.clone(),
            tls.clone(),
        );
        tokio::spawn(accepting);
        let mut senders = BTreeMap::new();
        for (id, addr) in peers {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.insert(id, tx);
            let (inbound_closed, inbound_replaced, inbound_opened) =
                closed_rx.remove(&id).expect("one per peer");
            let link = Outbound {
                me,
                peer: id,
                addr,
                queue: rx,
                shutdown: shutdown.clone(),
                events: events.clone(),
                inbound_closed,
                inbound_replaced,
                inbound_opened,
                unacked_limit,
                backoff: (first_backoff, max_backoff),
                last_notification: None,
                cuts: cuts.clone(),
                tls: tls.clone(),
                last_refusal: None,
                awaiting_answer: false,
            };
            tokio::spawn(link.run());
        }
        Ok(PeerNet { senders })
    }

    /// Queues a message for a peer (best effort).
    pub fn send(&self, to: ServerId, msg: &ZabMessage) {
        if let Some(tx) = self.senders.get(&to) {
            let item = if let ZabMessage::Session { msg: SessionMessage::Snap { .. }, .. } = msg {
                // The snapshot's tree is an O(1) clone: cheap to hand over.
                let (done, encoded) = oneshot::channel();
                let msg = msg.clone();
                crate::env::spawn_blocking(move || {
                    let _ = done.send(encode_peer_message(&msg));
                });
                Outgoing::Encoding(encoded)
            } else if let ZabMessage::Notification { .. } = msg {
                Outgoing::Notification(encode_peer_message(msg))
            } else {
                Outgoing::Frame(encode_peer_message(msg))
            };
            let _ = tx.send(item);
        }
    }
}

async fn accept_loop(
    me: ServerId,
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    closed: InboundClosed,
    mut shutdown: signal::Receiver<bool>,
    cuts: Option<signal::Receiver<u64>>,
    tls: Option<Arc<QuorumTls>>,
) {
    let refusals = Arc::new(RefusalLog::default());
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, remote)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let events = events.clone();
        let closed = closed.clone();
        let cuts = cuts.clone();
        let tls = tls.clone();
        let refusals = refusals.clone();
        tokio::spawn(async move {
            let (stream, cert): (PeerStream, _) = match &tls {
                None => (Box::new(stream) as PeerStream, None),
                Some(quorum_tls) => match quorum_tls.accept(stream).await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(%remote, %e, "quorum connection refused");
                        return;
                    }
                },
            };
            let arrival = Arrival { me, remote, tls, cert, refusals };
            let mut from = None;
            if let Err(e) = inbound(stream, arrival, events, &closed, &mut from, cuts).await {
                tracing::debug!(%remote, %e, "quorum connection ended");
            }
            if let Some(signals) = from.and_then(|id| closed.get(&id)) {
                signals.closed.send_modify(|n| *n += 1);
            }
        });
    }
}

/// What the listener knows of an inbound connection before the peer names itself.
struct Arrival {
    /// This server.
    me: ServerId,
    remote: SocketAddr,
    tls: Option<Arc<QuorumTls>>,
    /// The peer's TLS certificate, for host-name verification once its id is known.
    cert: Option<CertificateDer<'static>>,
    refusals: Arc<RefusalLog>,
}

/// What an accepted handshake says: who connected, in which run, speaking which version.
struct Accepted {
    from: ServerId,
    boot_nonce: u64,
    version: u16,
}

/// Reads and checks the handshake of an inbound connection, and answers it. A refusal is
/// logged, answered, and the connection held for [`REFUSAL_HOLD`]; then `None` (the caller
/// closes it), as for a handshake cut short or slower than [`HANDSHAKE_TIMEOUT`].
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    arrival: &Arrival,
    signals: &InboundClosed,
) -> Option<Accepted> {
    let remote = arrival.remote;
    let read = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_hello(stream)).await;
    let (opening, body) = match read {
        Ok(Ok(hello)) => hello,
        Ok(Err(e)) => {
            tracing::info!(%remote, %e, "quorum connection refused: its handshake was cut short");
            return None;
        }
        Err(_) => {
            let limit = HANDSHAKE_TIMEOUT;
            tracing::info!(%remote, "quorum connection refused: no handshake within {limit:?}");
            return None;
        }
    };
    let Opening::Zkr { versions } = opening else {
        // Not answered: neither reads it, and an older zkr takes any byte it reads for a close
        // and reconnects at once; holding the connection makes it do so once a second.
        let claimed = match opening {
            Opening::Unversioned { id } => Some(ServerId(id)),
            _ => None,
        };
        return refuse(stream, arrival, claimed, None, &foreign_opening(opening)).await;
    };
    let Some(body) = body.filter(|b| b.len() >= HELLO_BODY_BYTES) else {
        let reason = "a malformed handshake (the length of its rest)";
        return refuse(stream, arrival, None, Some(Refusal::NotZkr), reason).await;
    };
    let word = |at: usize| u64::from_be_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    let (from, boot_nonce) = (ServerId(word(0)), word(8));
    let Some(version) = common_version(versions, PROTOCOL_VERSIONS) else {
        let reason = no_common_version(versions);
        let refusal = Some(Refusal::NoCommonVersion);
        return refuse(stream, arrival, Some(from), refusal, &reason).await;
    };
    if let Some(tls) = &arrival.tls
        && let Err(e) = tls.check_inbound(arrival.cert.as_ref(), remote, from)
    {
        return refuse(stream, arrival, Some(from), Some(Refusal::Identity), &e).await;
    }
    if !signals.contains_key(&from) || from == arrival.me {
        let reason = "not a peer's id";
        return refuse(stream, arrival, Some(from), Some(Refusal::NotAMember), reason).await;
    }
    let accepted = answer(PROTOCOL_VERSIONS, Ok(version));
    if let Err(e) = write_flushed(stream, &accepted).await {
        tracing::info!(%remote, peer = from.0, %e, "quorum connection ended in its handshake");
        return None;
    }
    assert!(version >= PROTOCOL_VERSIONS.0 && version <= PROTOCOL_VERSIONS.1);
    Some(Accepted { from, boot_nonce, version })
}

/// Reads what a connecting peer sends first: its opening (8 bytes) and, for a zkr handshake,
/// the length-prefixed rest (`None` if the length is out of bounds).
async fn read_hello<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> std::io::Result<(Opening, Option<Vec<u8>>)> {
    let mut first = [0u8; HELLO_HEAD_BYTES];
    stream.read_exact(&mut first).await?;
    let opening = classify(first);
    if !matches!(opening, Opening::Zkr { .. }) {
        return Ok((opening, None));
    }
    let len = stream.read_u16().await? as usize;
    if len > HELLO_BODY_BYTES_MAX {
        return Ok((opening, None));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok((opening, Some(body)))
}

/// Logs the refusal, answers it with `answered` (if a zkr handshake came: only this build's
/// peers read answers), and holds the connection for [`REFUSAL_HOLD`]. Always `None`.
async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    arrival: &Arrival,
    peer: Option<ServerId>,
    answered: Option<Refusal>,
    reason: &str,
) -> Option<Accepted> {
    arrival.refusals.refused(arrival.remote, peer.map(|p| p.0), reason);
    if let Some(refusal) = answered {
        let _ = write_flushed(stream, &answer(PROTOCOL_VERSIONS, Err(refusal))).await;
    }
    tokio::time::sleep(REFUSAL_HOLD).await;
    None
}

async fn write_flushed<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

async fn inbound(
    stream: PeerStream,
    arrival: Arrival,
    events: mpsc::UnboundedSender<Event>,
    signals: &InboundClosed,
    peer: &mut Option<ServerId>,
    mut cuts: Option<signal::Receiver<u64>>,
) -> std::io::Result<()> {
    // Only cuts after this connection opened end it.
    if let Some(rx) = cuts.as_mut() {
        rx.borrow_and_update();
    }
    // Buffered: a leader's burst of PROPOSALs and COMMITs arrives in a few reads, not two
    // syscalls per message (a length, then the payload).
    let mut stream = tokio::io::BufReader::with_capacity(PEER_READ_BUFFER_BYTES, stream);
    let Some(Accepted { from, boot_nonce, version }) =
        handshake(&mut stream, &arrival, signals).await
    else {
        return Ok(());
    };
    let theirs = signals.get(&from).expect("the handshake accepts members only");
    tracing::debug!(remote = %arrival.remote, peer = from.0, version, "quorum connection accepted");
    *peer = Some(from);
    if !note_run(theirs, from, boot_nonce, &events) {
        return Ok(());
    }
    // A later connection from the same peer supersedes this one.
    theirs.opened.send_modify(|n| *n += 1);
    let mut newer = theirs.opened.subscribe();
    newer.borrow_and_update();
    loop {
        let len = tokio::select! {
            biased;
            _ = newer.changed() => {
                let peer = from.0;
                tracing::info!(peer, "peer replaced its quorum connection; closing the old");
                theirs.replaced.send_modify(|n| *n += 1);
                return Ok(());
            }
            _ = cut(&mut cuts) => {
                tracing::info!(peer = from.0, "quorum connection cut (simulation)");
                return Ok(());
            }
            len = stream.read_u32() => len? as usize,
        };
        if len > MAX_PEER_FRAME {
            tracing::warn!(from = from.0, len, "oversized peer frame; dropping the connection");
            return Ok(());
        }
        let mut payload = vec![0; len];
        stream.read_exact(&mut payload).await?;
        match decode_peer_message(&payload) {
            Ok(msg) => {
                if !hand_over(theirs, from, boot_nonce, msg, &events) {
                    return Ok(());
                }
            }
            Err(e) => {
                tracing::warn!(from = from.0, %e, "undecodable peer message; dropping connection");
                return Ok(());
            }
        }
    }
}

/// Records the boot nonce of a new connection from `from`: a nonce other than the peer's last
/// one is a new run of its process, to be reported before its first message; the same run
/// connecting again after its last connection carried Zab messages is reported lost at once
/// (see the module doc). False when the core is gone.
fn note_run(
    theirs: &InboundSignals,
    from: ServerId,
    boot_nonce: u64,
    events: &mpsc::UnboundedSender<Event>,
) -> bool {
    let mut run = theirs.run.lock().expect("never poisoned");
    let fresh = PeerRun { boot_nonce, restart_unreported: false, carried: false };
    let (new, hole) = match *run {
        None => (fresh, false),
        Some(last) if last.boot_nonce == boot_nonce => {
            (PeerRun { carried: false, ..last }, last.carried)
        }
        Some(_) => {
            tracing::info!(peer = from.0, "the peer restarted (a new boot nonce)");
            (PeerRun { restart_unreported: true, ..fresh }, false)
        }
    };
    *run = Some(new);
    assert_eq!(run.map(|r| r.boot_nonce), Some(boot_nonce));
    assert!(!new.carried, "a new connection has carried nothing yet");
    if hole {
        // Under the lock: no message of the new connection reaches the core before the report.
        // At once, not before its first message: a leader that dropped us sends us nothing.
        tracing::info!(
            peer = from.0,
            "the peer reconnected after its last connection carried Zab messages; reporting it \
             lost (what was in flight on that connection may be lost)"
        );
        return events.send(Event::PeerLost { peer: from }).is_ok();
    }
    true
}

/// Hands a message from `from`'s run `boot_nonce` to the core: after reporting the peer lost if
/// this is the first message of a new run, and not at all if a newer run has connected since.
/// False when the connection must end (a newer run, or the core is gone).
fn hand_over(
    theirs: &InboundSignals,
    from: ServerId,
    boot_nonce: u64,
    msg: ZabMessage,
    events: &mpsc::UnboundedSender<Event>,
) -> bool {
    // Held across the sends: a newer run's report cannot come between the check and the send.
    let mut run = theirs.run.lock().expect("never poisoned");
    let Some(current) = run.as_mut().filter(|r| r.boot_nonce == boot_nonce) else {
        tracing::info!(peer = from.0, "a newer run of the peer connected; closing the old");
        return false;
    };
    if current.restart_unreported {
        // Reported with the first message, not at the handshake: until the new run speaks,
        // the core would count it as gone (a lost leader's vote is not waited for), and might
        // decide an election without the restarted server's vote that it is about to cast.
        tracing::info!(peer = from.0, "reporting the restarted peer lost before its first message");
        current.restart_unreported = false;
        if events.send(Event::PeerLost { peer: from }).is_err() {
            return false;
        }
    }
    assert!(!current.restart_unreported, "reported once per run");
    current.carried |= !matches!(msg, ZabMessage::Notification { .. });
    events.send(Event::Peer { from, msg }).is_ok()
}

/// One peer's outbound connection task.
struct Outbound {
    /// This server's id and boot nonce: the handshake.
    me: (ServerId, u64),
    peer: ServerId,
    addr: String,
    queue: mpsc::UnboundedReceiver<Outgoing>,
    shutdown: signal::Receiver<bool>,
    events: mpsc::UnboundedSender<Event>,
    inbound_closed: signal::Receiver<u64>,
    inbound_replaced: signal::Receiver<u64>,
    /// Inbound connections from the peer that were opened: it is up, so a retry waiting out
    /// its backoff goes now.
    inbound_opened: signal::Receiver<u64>,
    /// `TCP_USER_TIMEOUT` of the connection (see the module doc).
    unacked_limit: Duration,
    /// The first and the longest pause between connect attempts ([`FIRST_RECONNECT_BACKOFF`],
    /// [`MAX_RECONNECT_BACKOFF`]).
    backoff: (Duration, Duration),
    /// The last notification taken off the queue, sent or dropped.
    last_notification: Option<Vec<u8>>,
    /// See `cut`.
    cuts: Option<signal::Receiver<u64>>,
    /// Quorum TLS, if on.
    tls: Option<Arc<QuorumTls>>,
    /// The last reason the peer could not be reached, logged once at warn until it changes.
    last_refusal: Option<String>,
    /// Our handshake went out on the connection being opened, and the answer is awaited.
    awaiting_answer: bool,
}

/// Why a connection could not be opened.
enum OpenFailed {
    /// No TCP connection (the peer is down or unreachable), or one that ended before the peer
    /// answered our handshake (a peer that is stopping; see `Outbound::handshake`).
    Connect,
    /// The peer refused us: TLS (the handshake or a certificate check), or its answer to our
    /// handshake (another protocol version, not a member). The reason, for the log.
    Refused(String),
}

/// An opened connection and the protocol version it speaks.
type Opened = (PeerStream, u16);

/// Why the connected loop ended.
enum Ended {
    Shutdown,
    /// The connection broke; `carried`: it took a Zab message other than an election
    /// notification off the queue, which may have been lost with it.
    Broken {
        carried: bool,
    },
    /// The peer could not be reached, or refused us, as a failed connect.
    Unreachable,
}

impl Outbound {
    async fn run(mut self) {
        let mut backoff = self.backoff.0;
        // A connection broke (or the peer's to us ended) and no reconnect has failed since.
        let mut broken = false;
        // The peer was reported lost since our last connection to it came up: a failed
        // reconnect, or the peer's connection to us ending, does not report the same loss
        // again (the core would see one loss twice). Messages dropped meanwhile still are.
        let mut loss_reported = false;
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let limit = if broken { RECONNECT_PROBE } else { Duration::from_secs(2) };
            let ended = match tokio::time::timeout(limit, self.open()).await {
                Ok(Ok(opened)) => {
                    loss_reported = false;
                    self.connected(opened).await
                }
                Ok(Err(OpenFailed::Refused(reason))) => {
                    self.refused(reason);
                    Ended::Unreachable
                }
                Err(_) if self.awaiting_answer => {
                    // A connection that takes our handshake and answers nothing: a process
                    // that is paused or overloaded, or not a zkr member (ZooKeeper answers none).
                    self.refused(format!(
                        "no answer to our handshake within {limit:?} (a paused or overloaded \
                         process, or not a zkr member: an Apache ZooKeeper server answers none)"
                    ));
                    Ended::Unreachable
                }
                Ok(Err(OpenFailed::Connect)) | Err(_) => Ended::Unreachable,
            };
            self.awaiting_answer = false;
            match ended {
                Ended::Shutdown => return,
                Ended::Broken { carried } => {
                    loss_reported = carried;
                    if carried {
                        // A hole in what the peer hears from us: its FIFO channel would hold
                        // everything after it and wait. ZooKeeper's learner and leader both
                        // end the session when their one socket breaks; so do we (tier 2 seed
                        // 77338: a cut left a learner's touches unheard while it served).
                        // What is still queued went in before the report, so the core will
                        // not expect it to arrive: dropped now, it is not reported again when
                        // the reconnect fails (the core ends this peering anyway; the peer's
                        // side of it sees the hole when we reconnect, `note_run`).
                        self.drop_queued();
                        let peer = self.peer.0;
                        tracing::info!(
                            peer,
                            "quorum connection broke after carrying Zab messages; reporting the \
                             peer lost (what was in flight may be lost)"
                        );
                        let _ = self.events.send(Event::PeerLost { peer: self.peer });
                    }
                    broken = true;
                    backoff = self.backoff.0;
                    self.last_refusal = None;
                }
                Ended::Unreachable => {
                    // Queued since the last report (or the last connection): the core sent them
                    // knowing nothing of this loss.
                    let dropped = self.drop_queued();
                    if (broken && !loss_reported) || dropped {
                        let peer = self.peer.0;
                        tracing::info!(peer, "quorum peer unreachable; reporting it lost");
                        let _ = self.events.send(Event::PeerLost { peer: self.peer });
                        loss_reported = true;
                    }
                    broken = false;
                    tokio::select! {
                        biased;
                        _ = self.shutdown.changed() => return,
                        _ = self.inbound_closed.changed() => broken = true,
                        _ = self.inbound_opened.changed() => {
                            backoff = self.backoff.0;
                            continue;
                        }
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.backoff.1);
                }
            }
        }
    }

    /// Empties the queue, keeping the last notification for the next connection; whether
    /// anything was dropped.
    fn drop_queued(&mut self) -> bool {
        let mut dropped = false;
        while let Ok(item) = self.queue.try_recv() {
            if let Outgoing::Notification(frame) = item {
                self.last_notification = Some(frame);
            }
            dropped = true;
        }
        dropped
    }

    /// Connects (TCP, then TLS if `sslQuorum`), with the socket options every connection gets,
    /// and makes the handshake.
    async fn open(&mut self) -> Result<Opened, OpenFailed> {
        let stream = TcpStream::connect(&self.addr).await.map_err(|_| OpenFailed::Connect)?;
        let _ = stream.set_nodelay(true);
        // madsim's simulated sockets have no file descriptor (and no retransmission timer).
        #[cfg(not(madsim))]
        {
            let sock = socket2::SockRef::from(&stream);
            if let Err(e) = sock.set_tcp_user_timeout(Some(self.unacked_limit)) {
                tracing::warn!(peer = self.peer.0, %e, "cannot set TCP_USER_TIMEOUT");
            }
        }
        let stream = match &self.tls {
            Some(tls) if tls.connects_with_tls() => {
                tls.connect(stream, self.peer).await.map_err(OpenFailed::Refused)?
            }
            _ => Box::new(stream),
        };
        self.handshake(stream).await
    }

    /// Sends our handshake and reads the peer's answer (see the module doc). A connection that
    /// cannot carry our handshake, or ends before the answer, never came up: it is a failed
    /// connect (backoff, and the peer reported lost after a break), not a break to retry at
    /// once. As a break, a peer whose process had stopped but whose connect still succeeded (a
    /// dying process's backlog; madsim's stopped server) was retried every 3 ms and never
    /// reported lost: its followers waited for it to restart (tier 2: 47 of the 48 slowest
    /// leader fail-overs of seeds 6000..9000, a leader stopped by a disk fault). Flushed: a no-op
    /// on a real socket, and madsim's TCP sends only on flush.
    async fn handshake(&mut self, mut stream: PeerStream) -> Result<Opened, OpenFailed> {
        let peer = self.peer.0;
        let ours = hello(self.me, PROTOCOL_VERSIONS);
        if let Err(e) = write_flushed(&mut stream, &ours).await {
            tracing::debug!(peer, %e, "quorum connection failed before our handshake went out");
            return Err(OpenFailed::Connect);
        }
        let mut theirs = [0u8; ANSWER_BYTES];
        self.awaiting_answer = true;
        match stream.read_exact(&mut theirs).await {
            Ok(_) => {}
            // A TLS alert: the peer refused our certificate (with TLS 1.3 our handshake
            // completes before the peer has checked it).
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(OpenFailed::Refused(format!("TLS session refused by the peer: {e}")));
            }
            Err(e) => {
                // At info, once until something else happens: every retry meets it again.
                let reason = format!(
                    "the connection ended before the peer answered our handshake ({e}): it is \
                     stopping, or it runs a zkr release from before the quorum protocol \
                     versions, which logs \"not a peer's id\" with peer={} (docs/OPERATIONS.md, \
                     \"Quorum protocol versions\")",
                    u64::from_be_bytes(ours[..8].try_into().expect("8 bytes"))
                );
                if self.last_refusal.as_ref() != Some(&reason) {
                    tracing::info!(peer, addr = %self.addr, %reason, "quorum connection failed");
                    self.last_refusal = Some(reason);
                } else {
                    tracing::debug!(peer, addr = %self.addr, %reason, "quorum connection failed");
                }
                return Err(OpenFailed::Connect);
            }
        }
        let version = read_answer(theirs, self.me.0).map_err(OpenFailed::Refused)?;
        Ok((stream, version))
    }

    /// Logs why the peer refused us (or we it), at warn the first time a reason is seen.
    fn refused(&mut self, reason: String) {
        let (peer, addr) = (self.peer.0, &self.addr);
        if self.last_refusal.as_ref() != Some(&reason) {
            tracing::warn!(peer, %addr, %reason, "quorum connection to the peer refused");
            self.last_refusal = Some(reason);
        } else {
            tracing::debug!(peer, %addr, %reason, "quorum connection to the peer refused");
        }
    }

    /// Writes queued frames until the connection breaks (a write fails, or the peer closes its
    /// end) or shutdown. The peer's connection to us ending does not drop this one: the peer
    /// may only have replaced it, and dropping ours would lose what is in flight.
    async fn connected(&mut self, (mut stream, version): Opened) -> Ended {
        if let Some(rx) = self.cuts.as_mut() {
            rx.borrow_and_update();
        }
        // Flushed after every write: a no-op on a real socket, and madsim's TCP sends only on
        // flush.
        self.inbound_closed.borrow_and_update();
        self.inbound_replaced.borrow_and_update();
        // Openings seen while connected say nothing about a later break.
        self.inbound_opened.borrow_and_update();
        let up_since = tokio::time::Instant::now();
        tracing::info!(peer = self.peer.0, addr = %self.addr, version, "quorum connection up");
        if let Some(frame) = self.last_notification.clone()
            && write_frame(&mut stream, &frame).await.is_err()
        {
            return Ended::Broken { carried: false };
        }
        // The peer never writes on our outbound connection: a read that completes means it
        // closed (or reset) it, e.g. because its process died (a connect that landed in a dying
        // process's backlog ends this way too), or the kernel aborted it (TCP_USER_TIMEOUT).
        let mut probe = [0u8; 1];
        // An item taken while batching that must go out on its own (a snapshot being encoded).
        let mut next: Option<Outgoing> = None;
        // A Zab message other than a notification was taken for this connection.
        let mut carried = false;
        loop {
            let item = if let Some(item) = next.take() {
                item
            } else {
                tokio::select! {
                    biased;
                    _ = self.shutdown.changed() => return Ended::Shutdown,
                    _ = self.inbound_replaced.changed() => {
                        if up_since.elapsed() < self.unacked_limit {
                            continue;
                        }
                        let peer = self.peer.0;
                        tracing::info!(peer, "its old connection to us was broken; replacing ours");
                        return Ended::Broken { carried };
                    }
                    _ = cut(&mut self.cuts) => {
                        tracing::info!(peer = self.peer.0, "quorum connection cut (simulation)");
                        return Ended::Broken { carried };
                    }
                    read = stream.read(&mut probe) => {
                        let peer = self.peer.0;
                        // Not a refusal: the peer answered our handshake before this.
                        match read {
                            Err(e) => tracing::info!(peer, %e, "quorum connection broken"),
                            Ok(_) => tracing::info!(peer, "quorum connection closed by the peer"),
                        }
                        return Ended::Broken { carried };
                    }
                    item = self.queue.recv() => match item {
                        Some(item) => item,
                        None => return Ended::Shutdown,
                    },
                }
            };
            carried |= !matches!(item, Outgoing::Notification(_));
            let frame = match item {
                Outgoing::Frame(frame) => frame,
                Outgoing::Notification(frame) => {
                    self.last_notification = Some(frame.clone());
                    frame
                }
                Outgoing::Encoding(encoded) => match encoded.await {
                    Ok(frame) => frame,
                    Err(_) => continue,
                },
            };
            // Everything already queued goes out in the same write (issue 14: one write per
            // message made a leader's sends about one syscall per follower per txn).
            let mut buf = Vec::with_capacity(frame.len() + 4);
            append_frame(&mut buf, &frame);
            while buf.len() < PEER_BATCH_BYTES {
                match self.queue.try_recv() {
                    Ok(Outgoing::Frame(frame)) => {
                        carried = true;
                        append_frame(&mut buf, &frame);
                    }
                    Ok(Outgoing::Notification(frame)) => {
                        append_frame(&mut buf, &frame);
                        self.last_notification = Some(frame);
                    }
                    Ok(item) => {
                        next = Some(item);
                        break;
                    }
                    Err(_) => break,
                }
            }
            if write_framed(&mut stream, &buf).await.is_err() {
                tracing::info!(peer = self.peer.0, "quorum connection lost; reconnecting");
                return Ended::Broken { carried };
            }
        }
    }
}

/// Writes one `u32 length + payload` frame.
/// Resolves each time the simulator cuts this server's quorum connections mid-stream (tier 2 of
/// `sim`, through `ServerEnv::cuts`); never in production, where there is no such receiver.
async fn cut(cuts: &mut Option<signal::Receiver<u64>>) {
    let cut = match cuts {
        Some(rx) => rx.changed().await.is_ok(),
        None => false,
    };
    if !cut {
        std::future::pending::<()>().await;
    }
}

async fn write_frame(stream: &mut PeerStream, frame: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(frame.len() + 4);
    append_frame(&mut buf, frame);
    write_framed(stream, &buf).await
}

/// Appends one `u32 length + payload` frame to `buf`.
fn append_frame(buf: &mut Vec<u8>, frame: &[u8]) {
    buf.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    buf.extend_from_slice(frame);
}

/// Writes frames already put together by `append_frame`.
async fn write_framed(stream: &mut PeerStream, framed: &[u8]) -> std::io::Result<()> {
    stream.write_all(framed).await?;
    stream.flush().await
}

/// Queued frames put into one write up to about this many bytes.
const PEER_BATCH_BYTES: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use zkr_core::types::Zxid;
    use zkr_core::zab::message::{PeerState, Vote};

    /// The server under test: id 1, and its boot nonce.
    const ME: (ServerId, u64) = (ServerId(1), 11);

    fn notification(round: u64) -> ZabMessage {
        let vote = Vote { leader: ServerId(1), zxid: Zxid(7), peer_epoch: 1 };
        ZabMessage::Notification { vote, election_epoch: round, state: PeerState::Looking }
    }

    /// Reads the handshake of a connection from `PeerNet` and accepts it, as a peer of this
    /// build would; returns the server id and boot nonce it names.
    async fn accept_hello(stream: &mut TcpStream) -> (u64, u64) {
        let mut head = [0u8; HELLO_HEAD_BYTES];
        stream.read_exact(&mut head).await.expect("handshake");
        assert_eq!(classify(head), Opening::Zkr { versions: PROTOCOL_VERSIONS });
        assert_eq!(stream.read_u16().await.expect("length") as usize, HELLO_BODY_BYTES);
        let (id, nonce) = (stream.read_u64().await.unwrap(), stream.read_u64().await.unwrap());
        let version = PROTOCOL_VERSIONS.1;
        stream.write_all(&answer(PROTOCOL_VERSIONS, Ok(version))).await.unwrap();
        (id, nonce)
    }

    /// Reads the handshake and the first frame of a connection from `PeerNet`.
    async fn first_frame(stream: &mut TcpStream) -> (u64, ZabMessage) {
        let (from, nonce) = accept_hello(stream).await;
        assert_eq!(nonce, ME.1);
        let len = stream.read_u32().await.expect("frame length") as usize;
        let mut payload = vec![0; len];
        stream.read_exact(&mut payload).await.expect("frame");
        (from, decode_peer_message(&payload).expect("a peer message"))
    }

    #[test]
    fn a_notification_dropped_while_the_peer_was_unreachable_goes_out_on_reconnect() {
        // Issue 17: a leader cut off by a partition goes back to election and its notifications
        // are dropped; when the network heals, the others must hear from it at once, not after
        // its next resend (backed off to seconds).
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            // A port where nothing listens yet: the peer is unreachable (refused).
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let peer_addr = probe.local_addr().unwrap();
            drop(probe);
            let (events_tx, mut events) = mpsc::unbounded_channel();
            let (_stop, shutdown) = signal::channel(false);
            let peers = BTreeMap::from([(ServerId(2), peer_addr.to_string())]);
            let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let limit = Duration::from_secs(10);
            let net = PeerNet::start(ME, listen, peers, events_tx, shutdown, limit, None, None)
                .await
                .unwrap();
            net.send(ServerId(2), &notification(4));
            // Dropped: the task reports the peer lost once it has thrown the message away.
            let lost = tokio::time::timeout(Duration::from_secs(20), events.recv()).await;
            assert!(matches!(lost, Ok(Some(Event::PeerLost { peer: ServerId(2) }))));
            // The peer comes back (the outbound task retries within its backoff).
            let listener = TcpListener::bind(peer_addr).await.unwrap();
            let accepted = tokio::time::timeout(Duration::from_secs(20), listener.accept()).await;
            let (mut stream, _) = accepted.expect("reconnected").unwrap();
            let first = tokio::time::timeout(Duration::from_secs(5), first_frame(&mut stream));
            let (from, msg) = first.await.expect("the dropped notification is sent again");
            assert_eq!(from, 1);
            assert_eq!(msg, notification(4));
        });
    }

    #[test]
    fn a_peer_that_connects_to_us_is_reconnected_to_at_once() {
        // Issue 14: a restarted follower's election waited for the others' reconnect backoff
        // (their replies go on their connections to it). Here every backoff is a minute: only
        // the peer's own connection to us can make the task retry within the test's 20 s.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let peer_addr = free_port();
            let (events_tx, mut events) = mpsc::unbounded_channel();
            let (_stop, shutdown) = signal::channel(false);
            let peers = BTreeMap::from([(ServerId(2), peer_addr.to_string())]);
            let listen = free_port();
            let minute = Duration::from_secs(60);
            let links = (Duration::from_secs(10), minute, minute);
            let start =
                PeerNet::start_with(ME, listen, peers, events_tx, shutdown, links, None, None);
            let net = start.await.unwrap();
            // The first connect fails and drops the notification: the task reports the peer
            // lost, then waits a minute.
            net.send(ServerId(2), &notification(4));
            let lost = tokio::time::timeout(Duration::from_secs(20), events.recv()).await;
            assert!(matches!(lost, Ok(Some(Event::PeerLost { peer: ServerId(2) }))));
            // The peer comes up and connects to us.
            let listener = TcpListener::bind(peer_addr).await.unwrap();
            let _ours = connect_as_2(listen).await;
            let accepted = tokio::time::timeout(Duration::from_secs(20), listener.accept()).await;
            let (mut stream, _) =
                accepted.expect("reconnected at once, not after the backoff").unwrap();
            let (from, msg) = first_frame(&mut stream).await;
            assert_eq!((from, msg), (1, notification(4)));
        });
    }

    fn free_port() -> SocketAddr {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    }

    /// Starts server 1 listening on a free port, with server 2 at `peer`'s address; returns the
    /// net, its listen address and the connection it opened to `peer`.
    async fn start_with_peer(
        peer: &TcpListener,
        limit: Duration,
    ) -> (PeerNet, SocketAddr, TcpStream, signal::Sender<bool>) {
        let listen = free_port();
        // The events are not read here; the receiver is leaked so sends do not fail.
        let (events_tx, events) = mpsc::unbounded_channel();
        std::mem::forget(events);
        let (stop, shutdown) = signal::channel(false);
        let peers = BTreeMap::from([(ServerId(2), peer.local_addr().unwrap().to_string())]);
        let net = PeerNet::start(ME, listen, peers, events_tx, shutdown, limit, None, None)
            .await
            .unwrap();
        let (mut out, _) = peer.accept().await.unwrap();
        assert_eq!(accept_hello(&mut out).await, (1, ME.1));
        (net, listen, out, stop)
    }

    async fn connect_as_2(listen: SocketAddr) -> TcpStream {
        connect_as(2, 22, listen).await
    }

    /// Connects to `listen` as server `id` in the run of its process with `boot_nonce`.
    async fn connect_as(id: u64, boot_nonce: u64, listen: SocketAddr) -> TcpStream {
        let mut stream = TcpStream::connect(listen).await.unwrap();
        stream.write_all(&hello((ServerId(id), boot_nonce), PROTOCOL_VERSIONS)).await.unwrap();
        let mut theirs = [0u8; ANSWER_BYTES];
        stream.read_exact(&mut theirs).await.expect("an answer");
        assert_eq!(read_answer(theirs, ServerId(id)), Ok(PROTOCOL_VERSIONS.1), "accepted");
        stream
    }

    #[test]
    fn a_peer_that_replaces_an_open_connection_makes_us_replace_ours() {
        // Issue 17: after a partition heals, the peer whose connection timed out connects
        // again; ours to it crossed the same broken path and may wait seconds in TCP's
        // backed-off retransmission timer, so it is replaced too.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let limit = Duration::from_millis(200);
            let (_net, listen, _out, _stop) = start_with_peer(&peer, limit).await;
            let mut old = connect_as_2(listen).await;
            tokio::time::sleep(limit * 2).await;
            let _new = connect_as_2(listen).await;
            let mut byte = [0u8; 1];
            let closed = tokio::time::timeout(Duration::from_secs(5), old.read(&mut byte)).await;
            assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the old inbound is closed");
            let again = tokio::time::timeout(Duration::from_secs(5), peer.accept()).await;
            let (mut out, _) = again.expect("our connection to the peer is replaced").unwrap();
            assert_eq!(accept_hello(&mut out).await, (1, ME.1));
        });
    }

    #[test]
    fn a_young_connection_is_not_replaced_when_the_peer_replaces_its_own() {
        // Our connection may itself be the replacement the peer is reacting to: replacing it
        // again would ping-pong.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let limit = Duration::from_secs(30);
            let (net, listen, mut out, _stop) = start_with_peer(&peer, limit).await;
            let mut old = connect_as_2(listen).await;
            let _new = connect_as_2(listen).await;
            let mut byte = [0u8; 1];
            let closed = tokio::time::timeout(Duration::from_secs(5), old.read(&mut byte)).await;
            assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the old inbound is closed");
            net.send(ServerId(2), &notification(9));
            let (len, msg) = (out.read_u32().await.unwrap() as usize, notification(9));
            let mut payload = vec![0; len];
            out.read_exact(&mut payload).await.unwrap();
            assert_eq!(decode_peer_message(&payload).unwrap(), msg, "still the first connection");
        });
    }

    #[test]
    fn other_messages_dropped_while_unreachable_stay_dropped() {
        // Only the election's notification is repeated: a stale proposal or ping is not.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let peer_addr = probe.local_addr().unwrap();
            drop(probe);
            let (events_tx, mut events) = mpsc::unbounded_channel();
            let (_stop, shutdown) = signal::channel(false);
            let peers = BTreeMap::from([(ServerId(2), peer_addr.to_string())]);
            let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let limit = Duration::from_secs(10);
            let net = PeerNet::start(ME, listen, peers, events_tx, shutdown, limit, None, None)
                .await
                .unwrap();
            let ping =
                ZabMessage::Session { nonce: 1, seq: 0, msg: SessionMessage::Ping { round: 1 } };
            net.send(ServerId(2), &ping);
            let lost = tokio::time::timeout(Duration::from_secs(20), events.recv()).await;
            assert!(matches!(lost, Ok(Some(Event::PeerLost { peer: ServerId(2) }))));
            let listener = TcpListener::bind(peer_addr).await.unwrap();
            let accepted = tokio::time::timeout(Duration::from_secs(20), listener.accept()).await;
            let (mut stream, _) = accepted.expect("reconnected").unwrap();
            net.send(ServerId(2), &notification(5));
            let (_, msg) = first_frame(&mut stream).await;
            assert_eq!(msg, notification(5), "the ping was not kept");
        });
    }

    /// Starts server 1 with server 2 at `peer`'s address, and returns its events.
    async fn start_watched(
        peer: &TcpListener,
    ) -> (PeerNet, SocketAddr, mpsc::UnboundedReceiver<Event>, signal::Sender<bool>) {
        let listen = free_port();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (stop, shutdown) = signal::channel(false);
        let peers = BTreeMap::from([(ServerId(2), peer.local_addr().unwrap().to_string())]);
        let limit = Duration::from_secs(30);
        let net = PeerNet::start(ME, listen, peers, events_tx, shutdown, limit, None, None)
            .await
            .unwrap();
        (net, listen, events, stop)
    }

    /// Sends one framed message on a connection to `PeerNet`.
    async fn send_frame(stream: &mut TcpStream, msg: &ZabMessage) {
        let frame = encode_peer_message(msg);
        stream.write_u32(frame.len() as u32).await.unwrap();
        stream.write_all(&frame).await.unwrap();
    }

    /// What reached the core, in order, as text: `peer 2: round R` or `lost 2`.
    async fn next_event(events: &mut mpsc::UnboundedReceiver<Event>) -> String {
        let event = tokio::time::timeout(Duration::from_secs(20), events.recv()).await;
        match event.expect("an event").expect("the channel is open") {
            Event::Peer { from, msg: ZabMessage::Notification { election_epoch, .. } } => {
                format!("peer {}: round {election_epoch}", from.0)
            }
            Event::PeerLost { peer } => format!("lost {}", peer.0),
            _ => "another event".to_string(),
        }
    }

    /// Two connections from server 2, the first with `first` as its boot nonce and the second
    /// with `second`, each sending one notification; returns what reached the core.
    fn connect_twice(first: u64, second: u64) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (_net, listen, mut events, _stop) = start_watched(&peer).await;
            let mut old = connect_as(2, first, listen).await;
            send_frame(&mut old, &notification(1)).await;
            let mut seen = vec![next_event(&mut events).await];
            // The old connection stays open, as a killed peer's may for a while.
            let mut new = connect_as(2, second, listen).await;
            send_frame(&mut new, &notification(2)).await;
            seen.push(next_event(&mut events).await);
            if seen.last().is_some_and(|e| e.starts_with("lost")) {
                seen.push(next_event(&mut events).await);
            }
            // Anything the core got after that: a loss reported late would show here.
            send_frame(&mut new, &notification(3)).await;
            seen.push(next_event(&mut events).await);
            seen
        })
    }

    #[test]
    fn a_peer_that_restarted_is_reported_lost_before_its_first_message() {
        // Tier 2 seed 56306 and docs/TESTING.md: a leader restarted faster than the reconnect
        // probe was never reported lost, and its learners followed the old run for `syncLimit`.
        let seen = connect_twice(100, 200);
        assert_eq!(seen, ["peer 2: round 1", "lost 2", "peer 2: round 2", "peer 2: round 3"]);
    }

    #[test]
    fn a_peer_that_only_reconnected_is_not_reported_lost() {
        // The same run of the peer replacing its connection (a partition healed) keeps everything.
        let seen = connect_twice(100, 100);
        assert_eq!(seen, ["peer 2: round 1", "peer 2: round 2", "peer 2: round 3"]);
    }

    fn ping() -> ZabMessage {
        ZabMessage::Session { nonce: 1, seq: 0, msg: SessionMessage::Ping { round: 1 } }
    }

    #[test]
    fn a_peer_that_reconnects_after_carrying_zab_messages_is_reported_lost_at_once() {
        // Tier 2 seed 77338: what the peer sent on the old connection may be lost with it; the
        // core's FIFO channel would wait on the hole. Reported at the new connection's
        // handshake: a leader that dropped us would send nothing more to be reported before.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (_net, listen, mut events, _stop) = start_watched(&peer).await;
            let mut old = connect_as(2, 100, listen).await;
            send_frame(&mut old, &notification(1)).await;
            assert_eq!(next_event(&mut events).await, "peer 2: round 1");
            send_frame(&mut old, &ping()).await;
            assert_eq!(next_event(&mut events).await, "another event");
            drop(old);
            let mut new = connect_as(2, 100, listen).await;
            assert_eq!(next_event(&mut events).await, "lost 2", "before any message");
            // Once: a third connection after one that carried only a notification is not.
            send_frame(&mut new, &notification(2)).await;
            assert_eq!(next_event(&mut events).await, "peer 2: round 2");
            drop(new);
            let mut third = connect_as(2, 100, listen).await;
            send_frame(&mut third, &notification(3)).await;
            assert_eq!(next_event(&mut events).await, "peer 2: round 3");
        });
    }

    #[test]
    fn our_connection_that_breaks_after_carrying_zab_messages_reports_the_peer_lost() {
        // The sender's side of the same hole; a break after notifications only costs nothing
        // (the last one is sent again on the next connection).
        for (msg, reported) in [(ping(), true), (notification(4), false)] {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let (net, listen, mut events, _stop) = start_watched(&peer).await;
                let (mut out, _) = peer.accept().await.unwrap();
                net.send(ServerId(2), &msg);
                assert_eq!(first_frame(&mut out).await, (1, msg.clone()));
                drop(out);
                // The reconnect succeeds: only the hole makes the peer lost.
                let again = tokio::time::timeout(Duration::from_secs(20), peer.accept()).await;
                let _again = again.expect("reconnected").unwrap();
                if reported {
                    assert_eq!(next_event(&mut events).await, "lost 2", "{msg:?}");
                }
                // Nothing else reached the core before a message of the peer's.
                let mut inbound = connect_as(2, 5, listen).await;
                send_frame(&mut inbound, &notification(8)).await;
                assert_eq!(next_event(&mut events).await, "peer 2: round 8", "{msg:?}");
            });
        }
    }

    /// Reads what the listener answers a refused connection, until it closes it: the refusal
    /// code and the listener's range (`None` if it answered nothing).
    async fn refusal_of(stream: &mut TcpStream) -> Option<(u16, (u16, u16))> {
        let mut all = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut all));
        assert!(matches!(read.await, Ok(Ok(_)) | Ok(Err(_))), "closed by the listener");
        if all.is_empty() {
            return None;
        }
        assert_eq!(all.len(), ANSWER_BYTES, "an answer, then nothing: {all:?}");
        assert_eq!(all[..4], HANDSHAKE_MAGIC);
        let word = |at: usize| u16::from_be_bytes([all[at], all[at + 1]]);
        assert_eq!(word(8), 0, "no version chosen");
        Some((word(10), (word(4), word(6))))
    }

    /// Connects to a `PeerNet`, sends `bytes`, and returns the refusal it is answered with;
    /// then checks that nothing of it reached the core (a member's next message is the next
    /// event) and that the listener still serves.
    fn refused_with(bytes: Vec<u8>) -> Option<(u16, (u16, u16))> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (_net, listen, mut events, _stop) = start_watched(&peer).await;
            let mut stream = TcpStream::connect(listen).await.unwrap();
            stream.write_all(&bytes).await.unwrap();
            // What an older peer sends next: a frame.
            send_frame(&mut stream, &notification(7)).await;
            let refusal = refusal_of(&mut stream).await;
            let mut good = connect_as(2, 5, listen).await;
            send_frame(&mut good, &notification(8)).await;
            assert_eq!(next_event(&mut events).await, "peer 2: round 8");
            refusal
        })
    }

    /// What a zkr from before the versions sends first: its server id and boot nonce.
    fn unversioned_hello(id: u64, nonce: u64) -> Vec<u8> {
        [id.to_be_bytes(), nonce.to_be_bytes()].concat()
    }

    /// A handshake as this build sends it, but with the protocol range `versions`.
    fn hello_speaking(versions: (u16, u16)) -> Vec<u8> {
        hello((ServerId(2), 5), versions)
    }

    #[test]
    fn an_older_zkr_is_refused_and_reaches_nothing() {
        // Before the versions, it read our handshake as a server id, and we its id as ours.
        // Closed without an answer: it would take any byte for a close and reconnect at once.
        assert_eq!(refused_with(unversioned_hello(2, 5)), None);
        assert_eq!(classify(2u64.to_be_bytes()), Opening::Unversioned { id: 2 });
        let line = foreign_opening(Opening::Unversioned { id: 2 });
        assert!(line.contains("sent server id 2 with no quorum protocol version"), "{line}");
        assert!(line.contains("speaks quorum protocol 1..=1; upgrade it"), "{line}");
    }

    #[test]
    fn a_zookeeper_server_is_refused_and_reaches_nothing() {
        // ZooKeeper 3.6+'s initial message: protocol version -65535, sid, then its election
        // addresses as a length-prefixed string.
        let address = b"127.0.0.1:3888";
        let mut initial = [(-65535i64).to_be_bytes(), 2i64.to_be_bytes()].concat();
        initial.extend_from_slice(&(address.len() as i32).to_be_bytes());
        initial.extend_from_slice(address);
        assert_eq!(refused_with(initial), None, "closed without an answer: it reads none");
        let first = (-65536i64).to_be_bytes();
        assert_eq!(classify(first), Opening::ZooKeeper { version: -65536 });
        let line = foreign_opening(classify(first));
        assert!(line.contains("Apache ZooKeeper server (its quorum protocol version is -65536)"));
        assert!(line.contains("zkr speaks its own quorum protocol (1..=1)"), "{line}");
    }

    #[test]
    fn a_newer_zkr_without_a_common_version_is_refused_with_both_ranges() {
        let refusal = refused_with(hello_speaking((2, 3)));
        assert_eq!(refusal, Some((Refusal::NoCommonVersion as u16, PROTOCOL_VERSIONS)));
        // The line each side logs names both ranges and whom to upgrade.
        let line = no_common_version((2, 3));
        assert!(line.contains("it speaks quorum protocol 2..=3, this server 1..=1"), "{line}");
        assert!(line.contains("upgrade this server"), "{line}");
        let older = no_common_version((0, 0));
        assert!(older.contains("older zkr release: upgrade it"), "{older}");
        let answered = answer((2, 3), Err(Refusal::NoCommonVersion));
        let heard = read_answer(answered, ServerId(1)).unwrap_err();
        assert!(heard.contains("it speaks quorum protocol 2..=3, this server 1..=1"), "{heard}");
    }

    #[test]
    fn a_newer_zkr_that_still_speaks_ours_is_served_in_ours() {
        // A later release speaking 1..=2 during a rolling upgrade: the connection speaks 1, and
        // what it appends to the handshake is skipped.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (_net, listen, mut events, _stop) = start_watched(&peer).await;
            let mut stream = TcpStream::connect(listen).await.unwrap();
            let mut newer = hello_speaking((1, 2));
            let len = HELLO_HEAD_BYTES;
            newer[len..len + 2].copy_from_slice(&(HELLO_BODY_BYTES as u16 + 3).to_be_bytes());
            newer.extend_from_slice(&[9, 9, 9]);
            stream.write_all(&newer).await.unwrap();
            let mut theirs = [0u8; ANSWER_BYTES];
            stream.read_exact(&mut theirs).await.unwrap();
            assert_eq!(theirs, answer(PROTOCOL_VERSIONS, Ok(1)));
            send_frame(&mut stream, &notification(8)).await;
            assert_eq!(next_event(&mut events).await, "peer 2: round 8");
        });
        assert_eq!(common_version((1, 2), (1, 1)), Some(1));
        assert_eq!(common_version((1, 3), (2, 5)), Some(3));
        assert_eq!(common_version((2, 3), (1, 1)), None);
        assert_eq!(common_version((1, 1), (2, 3)), None);
    }

    #[test]
    fn a_short_or_foreign_handshake_is_refused_and_reaches_nothing() {
        // Not a member; ourselves: answered. A handshake without its nonce, half an opening,
        // an oversized rest: closed (the first two without an answer: there is nothing to
        // answer yet).
        let us = hello((ServerId(1), 5), PROTOCOL_VERSIONS);
        for (bytes, code) in [
            (hello((ServerId(9), 5), PROTOCOL_VERSIONS), Some(Refusal::NotAMember)),
            (us.clone(), Some(Refusal::NotAMember)),
            (us[..us.len() - 8].to_vec(), None),
            (vec![0, 0, 0], None),
            ([&us[..8], &4000u16.to_be_bytes()[..]].concat(), Some(Refusal::NotZkr)),
        ] {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let refusal = rt.block_on(async {
                let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let (_net, listen, mut events, _stop) = start_watched(&peer).await;
                let mut stream = TcpStream::connect(listen).await.unwrap();
                stream.write_all(&bytes).await.unwrap();
                stream.shutdown().await.unwrap();
                let refusal = refusal_of(&mut stream).await;
                let mut good = connect_as(2, 5, listen).await;
                send_frame(&mut good, &notification(8)).await;
                assert_eq!(next_event(&mut events).await, "peer 2: round 8");
                refusal
            });
            assert_eq!(refusal, code.map(|c| (c as u16, PROTOCOL_VERSIONS)), "{bytes:?}");
        }
    }

    #[test]
    fn a_refusal_answered_to_us_is_a_failed_connect() {
        // The peer runs a newer release: our task reports it lost (it dropped what was queued)
        // and tries again after its backoff; accepted then, the notification goes out.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (net, _listen, mut events, _stop) = start_watched(&peer).await;
            net.send(ServerId(2), &notification(4));
            let (mut refused, _) = peer.accept().await.unwrap();
            let mut head = [0u8; HELLO_HEAD_BYTES + 2 + HELLO_BODY_BYTES];
            refused.read_exact(&mut head).await.unwrap();
            let answered = answer((2, 3), Err(Refusal::NoCommonVersion));
            refused.write_all(&answered).await.unwrap();
            assert_eq!(next_event(&mut events).await, "lost 2");
            let (mut again, _) = peer.accept().await.unwrap();
            assert_eq!(first_frame(&mut again).await, (1, notification(4)));
        });
        // Each answer the connecting side can get, as it reads it.
        let me = ServerId(1);
        assert_eq!(read_answer(answer(PROTOCOL_VERSIONS, Ok(1)), me), Ok(1));
        let chosen_badly = read_answer(answer((1, 2), Ok(2)), me).unwrap_err();
        assert!(chosen_badly.contains("not the newest of both ranges"), "{chosen_badly}");
        let member = read_answer(answer((1, 1), Err(Refusal::NotAMember)), me).unwrap_err();
        assert!(member.contains("does not count server 1 as a member"), "{member}");
        let mut zookeeper = [0u8; ANSWER_BYTES];
        zookeeper[..8].copy_from_slice(&(-65536i64).to_be_bytes());
        let zookeeper = read_answer(zookeeper, me).unwrap_err();
        assert!(zookeeper.contains("something else than zkr's answer"), "{zookeeper}");
    }

    #[test]
    fn a_broken_connection_whose_reconnect_fails_reports_the_peer_lost_once() {
        // The peer's process died after we sent it a ping: our connection breaks (reported: the
        // ping may be lost), its connection to us ends, and the reconnect is refused. One loss,
        // one report; it was reported a second time after the failed reconnect.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (net, listen, mut events, _stop) = start_watched(&peer).await;
            let inbound = connect_as(2, 5, listen).await;
            let (mut out, _) = peer.accept().await.unwrap();
            net.send(ServerId(2), &ping());
            assert_eq!(first_frame(&mut out).await, (1, ping()));
            drop(peer);
            drop(out);
            assert_eq!(next_event(&mut events).await, "lost 2");
            drop(inbound);
            // Several failed reconnects (backoff from 50 ms), none of them reported.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let mut again = connect_as(2, 5, listen).await;
            send_frame(&mut again, &notification(8)).await;
            assert_eq!(next_event(&mut events).await, "peer 2: round 8", "reported once");
        });
    }
}
