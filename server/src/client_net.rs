//! Client connections: the listener, per-IP connection limits, and one task per connection that
//! frames bytes through `zkr_core::proto::frame`, hands payloads to the driver, and writes back
//! what the driver queues. Four-letter words are answered here (with text the driver computes)
//! and the connection is then closed, as ZooKeeper does.
//!
//! Each connection task owns its socket alone; it never touches the `Node`. It shares with the
//! driver only its outbox (a mutex-guarded byte queue and a `Notify`) and a count of outstanding
//! requests; the per-IP counter map is the only state shared between connections.
//!
//! What a hostile or broken client cannot do (`ConnPolicy`):
//! - hold a connection without a handshake: the ConnectRequest must fully arrive within
//!   `nio.sessionlessCnxnTimeout` (ZooKeeper's NIO factory closes sessionless connections idle
//!   that long; here the deadline runs from accept and is not extended by a trickle of bytes);
//! - make the server buffer its replies without bound: above `output_bytes_max` queued bytes, or
//!   `outstanding_max` unanswered requests, the connection is not read from; a connection that
//!   takes none of its output for `write_stall_timeout` is dropped, and one whose output reaches
//!   `OUTPUT_DROP_FACTOR` times the bound is dropped at once;
//! - cost memory while idle: no buffer is kept between reads or after output is written, so an
//!   idle connection costs its task, its outbox and its socket (docs/RELIABILITY.md has figures).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::net::TcpListener;
use crate::signal;
use crate::tls::ClientStream;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use zkr_core::proto::frame::{Frame, FrameDecoder};
use zkr_core::types::ConnId;

/// What connection tasks tell the driver.
#[derive(Debug)]
pub enum Event {
    /// A connection was accepted; `handle` takes what must be written to it.
    Connected {
        /// The connection id.
        conn: ConnId,
        /// The peer address.
        remote: SocketAddr,
        /// Accepted on `secureClientPort` (TLS).
        secure: bool,
        /// The driver's end of the connection.
        handle: ConnHandle,
    },
    /// A TLS client presented a certificate the trust store accepts; sent once, after the
    /// handshake and before the connection's first `Frame`.
    ClientCertificate {
        /// The connection id.
        conn: ConnId,
        /// The certificate's subject DN (RFC 2253), the connection's `x509:` id.
        subject: String,
    },
    /// One frame payload arrived.
    Frame {
        /// The connection id.
        conn: ConnId,
        /// The payload, without the length prefix.
        payload: Vec<u8>,
    },
    /// The connection is gone.
    Closed {
        /// The connection id.
        conn: ConnId,
    },
    /// A message from another ensemble member (see `peer_net`).
    Peer {
        /// The sender.
        from: zkr_core::types::ServerId,
        /// The message.
        msg: zkr_core::zab::message::ZabMessage,
    },
    /// The connection to another ensemble member broke and could not be re-established at once
    /// (see `peer_net`); the driver reports it to the node as `Input::PeerLost`.
    PeerLost {
        /// The member.
        peer: zkr_core::types::ServerId,
    },
    /// A four-letter word; the driver answers with the text to write before closing.
    FourLetterWord {
        /// The peer address.
        remote: SocketAddr,
        /// The command bytes.
        cmd: [u8; 4],
        /// Where the answer goes.
        reply: oneshot::Sender<String>,
    },
    /// An AdminServer command that reads the node or the counters (see `admin_server`); the
    /// driver answers with `admin::command_json` and applies the `*_reset` commands.
    Admin {
        /// The command's primary name (`admin::ADMIN_COMMANDS`).
        command: &'static str,
        /// Where the answer goes: the JSON fields, or ZooKeeper's error text.
        reply: oneshot::Sender<Result<crate::admin::Map, String>>,
    },
    /// A metrics scrape (see `metrics`): the driver answers with the `mntr` text (whatever the
    /// four-letter-word whitelist allows) and the request latency histogram.
    Metrics {
        /// Where the answer goes.
        reply: oneshot::Sender<(String, crate::admin::OpLatency)>,
    },
}

/// Connection counting for `maxCnxns` (in total) and `maxClientCnxns` (per client IP), checked
/// in that order on accept, as ZooKeeper's NIO and Netty factories do; a refused connection is
/// reset at once, before any byte is read.
#[derive(Debug, Default)]
pub struct ConnLimits {
    max_total: u32,
    max_per_ip: u32,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    per_ip: HashMap<IpAddr, u32>,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `maxCnxns` connections are open.
    Total,
    /// `maxClientCnxns` connections from this address are open.
    PerIp,
}

impl ConnLimits {
    /// `max_total`/`max_per_ip == 0` means unlimited.
    pub fn new(max_total: u32, max_per_ip: u32) -> ConnLimits {
        ConnLimits { max_total, max_per_ip, counts: Mutex::default() }
    }

    /// Counts a new connection from `ip`, or says which limit refuses it.
    pub fn acquire(&self, ip: IpAddr) -> Result<(), Refused> {
        let mut counts = self.counts.lock().expect("limits lock");
        if self.max_total != 0 && counts.total >= self.max_total {
            return Err(Refused::Total);
        }
        let count = counts.per_ip.entry(ip).or_insert(0);
        if self.max_per_ip != 0 && *count >= self.max_per_ip {
            return Err(Refused::PerIp);
        }
        *count += 1;
        counts.total += 1;
        Ok(())
    }

    /// Uncounts a connection from `ip` that `acquire` admitted.
    pub fn release(&self, ip: IpAddr) {
        let mut counts = self.counts.lock().expect("limits lock");
        let count = counts.per_ip.get_mut(&ip).expect("release of an admitted connection");
        *count -= 1;
        if *count == 0 {
            counts.per_ip.remove(&ip);
        }
        assert!(counts.total > 0);
        counts.total -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_drop_bound_aborts_and_frees_the_queue() {
        let handle = ConnHandle { shared: Arc::default(), drop_at_bytes: 100 };
        handle.send(vec![1; 60]);
        {
            let outbox = handle.shared.outbox.lock().unwrap();
            assert_eq!((outbox.queued, outbox.bytes.len(), outbox.abort), (60, 60, false));
        }
        handle.send(vec![2; 60]);
        let outbox = handle.shared.outbox.lock().unwrap();
        assert!(outbox.abort, "120 queued bytes are past the bound of 100");
        assert_eq!(outbox.bytes.capacity(), 0, "the queue is freed, not kept");
        drop(outbox);
        handle.send(vec![3; 10]);
        assert_eq!(handle.shared.outbox.lock().unwrap().bytes.len(), 0, "nothing after abort");
        handle.replied();
        assert_eq!(handle.shared.outstanding.load(Ordering::Acquire), 0, "saturates at 0");
        assert_eq!(handle.shared.in_flight.load(Ordering::Acquire), 0, "and so does the total");
    }

    /// A reply bigger than the drop bound is sent when little else is queued (ZooKeeper sends
    /// any reply whole); a second one behind it drops the connection.
    #[test]
    fn one_reply_over_the_drop_bound_is_queued_but_not_two() {
        let handle = ConnHandle { shared: Arc::default(), drop_at_bytes: 1600 };
        handle.send(vec![1; 50]);
        handle.send(vec![2; 5000]);
        {
            let outbox = handle.shared.outbox.lock().unwrap();
            assert_eq!((outbox.queued, outbox.bytes.len(), outbox.abort), (5050, 5050, false));
        }
        handle.send(vec![3; 10]);
        assert!(handle.shared.outbox.lock().unwrap().abort, "5,050 queued bytes, bound 1,600");
    }

    /// A reply takes one request off the connection's count and off the server's.
    #[test]
    fn replies_count_down_the_connection_and_the_server() {
        let in_flight = Arc::new(AtomicU32::new(5));
        let shared = Arc::new(Shared { in_flight: in_flight.clone(), ..Shared::default() });
        shared.outstanding.store(2, Ordering::Release);
        let handle = ConnHandle { shared, drop_at_bytes: 100 };
        handle.replied();
        assert_eq!(handle.shared.outstanding.load(Ordering::Acquire), 1);
        assert_eq!(in_flight.load(Ordering::Acquire), 4, "another connection still holds 3");
        handle.replied();
        handle.replied();
        assert_eq!(in_flight.load(Ordering::Acquire), 3, "a reply past 0 takes nothing");
    }

    #[test]
    fn total_limit_is_checked_before_the_per_ip_limit_and_released_counts_return() {
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let limits = ConnLimits::new(3, 2);
        assert_eq!(limits.acquire(a), Ok(()));
        assert_eq!(limits.acquire(a), Ok(()));
        assert_eq!(limits.acquire(a), Err(Refused::PerIp));
        assert_eq!(limits.acquire(b), Ok(()));
        assert_eq!(limits.acquire(b), Err(Refused::Total));
        limits.release(a);
        assert_eq!(limits.acquire(b), Ok(()));
        assert_eq!(limits.acquire(a), Err(Refused::Total));
        let unlimited = ConnLimits::new(0, 0);
        for _ in 0..1000 {
            assert_eq!(unlimited.acquire(a), Ok(()));
        }
    }
}

/// What bounds one client connection. Built from zoo.cfg (see `ServerConfig::conn_policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnPolicy {
    /// `jute.maxbuffer`: the longest frame accepted.
    pub max_frame_bytes: usize,
    /// `nio.sessionlessCnxnTimeout`: a connection whose ConnectRequest has not fully arrived
    /// this long after accept is closed.
    pub handshake_timeout: Duration,
    /// `globalOutstandingLimit`: requests read but not yet answered above which a connection
    /// is not read from; and, as ZooKeeper's `shouldThrottle` does, once the whole server has
    /// this many in flight, no connection with a request of its own in flight is read from.
    pub outstanding_max: u32,
    /// `zkr.clientOutputLimitBytes`: reply bytes queued for a connection above which it is not
    /// read from; at `OUTPUT_DROP_FACTOR` times this the connection is dropped at once.
    pub output_bytes_max: usize,
    /// `zkr.clientWriteStallMs`: a connection with queued output that takes none of it for this
    /// long is dropped.
    pub write_stall_timeout: Duration,
}

/// Queued output at this multiple of `output_bytes_max` drops the connection without waiting:
/// reads stop at 1x, so only replies to requests already read (at most `outstanding_max`) and
/// watch events can push it further, and those must not grow without bound either.
pub const OUTPUT_DROP_FACTOR: usize = 16;

/// Bytes read from a socket at once, into a stack buffer (nothing is kept between reads).
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// The driver's end of a connection: queue frames, ask for a close. Cheap to hold: an idle
/// connection keeps no buffers (they are allocated when output is queued and freed once it
/// is written).
#[derive(Debug)]
pub struct ConnHandle {
    shared: Arc<Shared>,
    /// Queued output at which the connection is dropped at once.
    drop_at_bytes: usize,
}

/// State the driver and the connection task share.
#[derive(Debug, Default)]
struct Shared {
    outbox: Mutex<Outbox>,
    wake: Notify,
    /// Requests read (after the ConnectRequest) and not yet answered.
    outstanding: AtomicU32,
    /// The sum of `outstanding` over every connection of the server (one counter shared by
    /// all); each connection takes out what it still holds when it ends.
    in_flight: Arc<AtomicU32>,
}

#[derive(Debug, Default)]
struct Outbox {
    /// Frames not yet taken by the connection task.
    bytes: Vec<u8>,
    /// Bytes queued and not yet written to the socket (`bytes` plus what the task holds).
    queued: usize,
    /// Close once everything queued is written.
    close: bool,
    /// Close now, dropping what is queued (the output bound was exceeded).
    abort: bool,
}

impl ConnHandle {
    /// Queues one frame. A connection whose queued output reaches `OUTPUT_DROP_FACTOR` times
    /// the bound is dropped instead: its client does not read, and the server must not keep
    /// its replies without bound. One frame alone is always queued, however large (a
    /// getChildren of a big node: ZooKeeper sends it whole, whatever its size), as long as what
    /// was queued before it is within the read bound.
    pub fn send(&self, frame: Vec<u8>) {
        let drop_at = self.drop_at_bytes;
        let read_bound = drop_at / OUTPUT_DROP_FACTOR;
        {
            let mut outbox = self.shared.outbox.lock().expect("outbox lock");
            if outbox.close || outbox.abort {
                return;
            }
            let before = outbox.queued;
            outbox.queued += frame.len();
            if outbox.queued > drop_at && before > read_bound {
                tracing::warn!(queued = outbox.queued, "client does not read its replies; dropped");
                outbox.abort = true;
                outbox.bytes = Vec::new();
            } else if outbox.bytes.is_empty() {
                outbox.bytes = frame;
            } else {
                outbox.bytes.extend_from_slice(&frame);
            }
        }
        self.shared.wake.notify_one();
    }

    /// Writes what is queued, then closes.
    pub fn close(&self) {
        self.shared.outbox.lock().expect("outbox lock").close = true;
        self.shared.wake.notify_one();
    }

    /// One request of this connection was answered (the driver matched the reply's xid).
    pub fn replied(&self) {
        let before =
            self.shared
                .outstanding
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_sub(1)));
        if before.is_ok_and(|n| n > 0) {
            self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// What the client listeners of one server share: connection ids, limits and the server-wide
/// count of requests in flight (a secure and a plain port draw from the same ones).
#[derive(Clone, Debug)]
pub struct Listeners {
    next_conn: Arc<std::sync::atomic::AtomicU64>,
    in_flight: Arc<AtomicU32>,
    limits: Arc<ConnLimits>,
}

impl Listeners {
    /// Shared state for the listeners of one server.
    pub fn new(limits: Arc<ConnLimits>) -> Listeners {
        Listeners { next_conn: Arc::new(1.into()), in_flight: Arc::default(), limits }
    }
}

/// Accepts connections until `shutdown` turns true; with `tls`, each speaks TLS first.
pub async fn accept_loop(
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    shared: Listeners,
    tls: Option<Arc<rustls::ServerConfig>>,
    policy: ConnPolicy,
    mut shutdown: signal::Receiver<bool>,
) {
    let Listeners { next_conn, in_flight, limits } = shared;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let admitted = limits.acquire(remote.ip());
        if admitted.is_err() {
            // Reset rather than close, as ZooKeeper does (SO_LINGER 0): a flood of refused
            // connections leaves no TIME_WAIT sockets behind on the server.
            let _ = stream.set_zero_linger();
        }
        match admitted {
            Ok(()) => {}
            Err(Refused::Total) => {
                tracing::warn!(%remote, "too many connections (maxCnxns); refused");
                continue;
            }
            Err(Refused::PerIp) => {
                tracing::warn!(%remote, "too many connections from this address (maxClientCnxns)");
                continue;
            }
        }
        let _ = stream.set_nodelay(true);
        let stream = match &tls {
            None => ClientStream::Plain(stream),
            Some(config) => match ClientStream::tls(stream, config.clone()) {
                Ok(stream) => stream,
                Err(err) => {
                    tracing::warn!(%remote, %err, "cannot start TLS; closed");
                    limits.release(remote.ip());
                    continue;
                }
            },
        };
        let conn = ConnId(next_conn.fetch_add(1, Ordering::Relaxed));
        let events = events.clone();
        let limits = limits.clone();
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            serve_conn(stream, remote, conn, events, policy, in_flight).await;
            limits.release(remote.ip());
        });
    }
}

/// One connection's task: what it holds between wake-ups.
struct Conn {
    stream: ClientStream,
    remote: SocketAddr,
    id: ConnId,
    shared: Arc<Shared>,
    decoder: FrameDecoder,
    /// Output taken from the outbox, and how much of it is written.
    sending: Vec<u8>,
    written: usize,
    /// The ConnectRequest has fully arrived.
    handshake_done: bool,
    /// When the socket last took output (or output became pending).
    write_progress_at: Instant,
}

/// What a connection task does next.
enum Flow {
    Continue,
    Close,
}

async fn serve_conn(
    stream: ClientStream,
    remote: SocketAddr,
    id: ConnId,
    events: mpsc::UnboundedSender<Event>,
    policy: ConnPolicy,
    in_flight: Arc<AtomicU32>,
) {
    let shared = Arc::new(Shared { in_flight, ..Shared::default() });
    let drop_at_bytes = policy.output_bytes_max.saturating_mul(OUTPUT_DROP_FACTOR);
    let handle = ConnHandle { shared: shared.clone(), drop_at_bytes };
    let secure = matches!(stream, ClientStream::Tls(_));
    if events.send(Event::Connected { conn: id, remote, secure, handle }).is_err() {
        return;
    }
    let handshake_deadline = Instant::now() + policy.handshake_timeout;
    let mut conn = Conn {
        stream,
        remote,
        id,
        shared,
        decoder: FrameDecoder::new(policy.max_frame_bytes),
        sending: Vec::new(),
        written: 0,
        handshake_done: false,
        write_progress_at: Instant::now(),
    };
    loop {
        let (queued, close, abort) = conn.take_output();
        if abort {
            break;
        }
        let want_write = conn.written < conn.sending.len() || conn.stream.wants_write();
        if close && !want_write {
            let _ = conn.stream.shutdown().await;
            break;
        }
        // Frames read while the connection was at its outstanding cap wait in the decoder.
        if !close
            && conn.decoder.buffered() > 0
            && conn.may_forward(&policy)
            && let Flow::Close = conn.forward_frames(&events, &policy).await
        {
            break;
        }
        let may_read = !close && queued <= policy.output_bytes_max && conn.may_forward(&policy);
        let deadline = if !conn.handshake_done {
            Some(handshake_deadline)
        } else {
            want_write.then(|| conn.write_progress_at + policy.write_stall_timeout)
        };
        let flow = tokio::select! {
            biased;
            _ = conn.shared.wake.notified() => Flow::Continue,
            ready = conn.stream.writable(), if want_write => match ready {
                Ok(()) => conn.write_some(),
                Err(_) => Flow::Close,
            },
            ready = conn.stream.readable(), if may_read => match ready {
                Ok(()) => conn.read_some(&events, &policy).await,
                Err(_) => Flow::Close,
            },
            _ = sleep_until(deadline.unwrap_or(handshake_deadline)), if deadline.is_some() => {
                conn.deadline_passed();
                Flow::Close
            }
        };
        if matches!(flow, Flow::Close) {
            break;
        }
    }
    // What is still unanswered leaves the server-wide count now (a late `replied` finds 0).
    let left = conn.shared.outstanding.swap(0, Ordering::AcqRel);
    conn.shared.in_flight.fetch_sub(left, Ordering::AcqRel);
    let _ = events.send(Event::Closed { conn: conn.id });
}

impl Conn {
    /// Takes queued output if nothing is being written; returns (queued bytes, close, abort).
    fn take_output(&mut self) -> (usize, bool, bool) {
        let mut outbox = self.shared.outbox.lock().expect("outbox lock");
        if self.written == self.sending.len() && !outbox.bytes.is_empty() {
            if self.sending.is_empty() {
                self.write_progress_at = Instant::now();
            }
            self.sending = std::mem::take(&mut outbox.bytes);
            self.written = 0;
        }
        (outbox.queued, outbox.close, outbox.abort)
    }

    /// Writes what the socket takes without blocking.
    fn write_some(&mut self) -> Flow {
        if self.written == self.sending.len() {
            // Only TLS records (handshake, alerts) are waiting.
            return match self.stream.flush() {
                Err(err) if err.kind() != std::io::ErrorKind::WouldBlock => Flow::Close,
                _ => Flow::Continue,
            };
        }
        match self.stream.try_write(&self.sending[self.written..]) {
            Ok(0) => Flow::Close,
            Ok(n) => {
                self.written += n;
                self.write_progress_at = Instant::now();
                self.shared.outbox.lock().expect("outbox lock").queued -= n;
                if self.written == self.sending.len() {
                    self.sending = Vec::new();
                    self.written = 0;
                }
                Flow::Continue
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => Flow::Continue,
            Err(_) => Flow::Close,
        }
    }

    /// Whether another request may go to the driver: fewer than `outstanding_max` unanswered
    /// here, and either none here or fewer than `outstanding_max` in the whole server
    /// (ZooKeeper's `shouldThrottle`: a connection waiting for nothing may always send one, so
    /// a well-behaved session is never starved; its own reply wakes a throttled one).
    fn may_forward(&self, policy: &ConnPolicy) -> bool {
        if !self.handshake_done {
            return true;
        }
        let mine = self.shared.outstanding.load(Ordering::Acquire);
        let server_wide = self.shared.in_flight.load(Ordering::Acquire);
        mine < policy.outstanding_max && (mine == 0 || server_wide < policy.outstanding_max)
    }

    /// Reads what the socket holds and hands complete frames to the driver.
    async fn read_some(
        &mut self,
        events: &mpsc::UnboundedSender<Event>,
        policy: &ConnPolicy,
    ) -> Flow {
        let read = read_chunk(&mut self.stream, &mut self.decoder);
        if let Some(subject) = self.stream.take_peer_subject()
            && events.send(Event::ClientCertificate { conn: self.id, subject }).is_err()
        {
            return Flow::Close;
        }
        match read {
            Ok(0) => return Flow::Close,
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return Flow::Continue,
            Err(err) => {
                if err.kind() == std::io::ErrorKind::InvalidData {
                    let remote = self.remote;
                    tracing::info!(%remote, %err, "TLS failed; closing");
                }
                return Flow::Close;
            }
        }
        self.forward_frames(events, policy).await
    }

    /// Hands complete frames to the driver until none is left or the outstanding cap is
    /// reached (the rest stays in the decoder until replies come back).
    async fn forward_frames(
        &mut self,
        events: &mpsc::UnboundedSender<Event>,
        policy: &ConnPolicy,
    ) -> Flow {
        while self.may_forward(policy) {
            match self.decoder.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Payload(payload))) => {
                    // Counted as the driver counts them: every frame after the ConnectRequest
                    // with room for an xid gets one reply matched by xid.
                    if self.handshake_done && payload.len() >= 4 {
                        self.shared.outstanding.fetch_add(1, Ordering::AcqRel);
                        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
                    }
                    self.handshake_done = true;
                    if events.send(Event::Frame { conn: self.id, payload }).is_err() {
                        return Flow::Close;
                    }
                }
                Ok(Some(Frame::FourLetterWord { cmd, .. })) => {
                    answer_four_letter_word(&mut self.stream, self.remote, cmd, events).await;
                    return Flow::Close;
                }
                Err(err) => {
                    let remote = self.remote;
                    tracing::info!(%remote, ?err, "bad frame length; closing (Len error)");
                    return Flow::Close;
                }
            }
        }
        self.decoder.release_if_drained();
        Flow::Continue
    }

    fn deadline_passed(&self) {
        let remote = self.remote;
        if self.handshake_done {
            tracing::warn!(%remote, "client took none of its output for too long; dropped");
        } else {
            let buffered = self.decoder.buffered();
            tracing::info!(%remote, buffered, "no ConnectRequest within the deadline; closed");
        }
    }
}

/// One non-blocking read into a stack buffer, pushed into `decoder`. A plain fn, so that the
/// buffer lives on the worker's stack for the call only, never in the connection's future.
fn read_chunk(stream: &mut ClientStream, decoder: &mut FrameDecoder) -> std::io::Result<usize> {
    let mut chunk = [0u8; READ_CHUNK_BYTES];
    let n = stream.try_read(&mut chunk)?;
    decoder.push(&chunk[..n]);
    Ok(n)
}

async fn answer_four_letter_word(
    stream: &mut ClientStream,
    remote: SocketAddr,
    cmd: [u8; 4],
    events: &mpsc::UnboundedSender<Event>,
) {
    let (reply, answer) = oneshot::channel();
    if events.send(Event::FourLetterWord { remote, cmd, reply }).is_err() {
        return;
    }
    if let Ok(text) = answer.await {
        let _ = stream.write_all(text.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}
