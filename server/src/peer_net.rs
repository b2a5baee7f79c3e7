//! Quorum connections between ensemble members: one listener on this server's quorum port,
//! and one outbound connection per peer that reconnects with backoff. Every connection starts
//! with the sender's server id (8 bytes, big-endian); then frames of `u32 length + payload`,
//! the payload being `zkr_core::proto::peer` bytes.
//!
//! Messages go out on our outbound connection and come in on the peer's; so each direction is
//! FIFO while its connection lives, and a broken connection loses what was in flight, which
//! Zab tolerates (cumulative ACK/COMMIT, gap detection, resends in election and discovery).
//! While a peer is unreachable, what is queued for it is dropped rather than kept: old messages
//! would only be stale when it comes back.
//!
//! Lost peers: when our connection to a peer breaks (a write fails, or the peer closes its end,
//! which a read on it shows: the peer never writes there), the outbound task reconnects at
//! once, with a short timeout ([`RECONNECT_PROBE`]); so does a task waiting to retry when the
//! peer's connection to us ends. If that fails, the peer is reported lost (`Event::PeerLost`, the
//! core's `Input::PeerLost`): a follower elects at once instead of waiting `syncLimit` for
//! silence, as ZooKeeper's follower does when its leader's socket closes. Messages dropped
//! because the peer is unreachable are reported the same way (at most once per failed
//! connect), so a learner does not wait `initLimit` on a leader that is not there. A peer that
//! is stopped but whose connections stay open is not reported; the core's timeouts find it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use zkr_core::proto::peer::{decode_peer_message, encode_peer_message};
use zkr_core::types::ServerId;
use zkr_core::zab::message::ZabMessage;

use crate::client_net::Event;

/// Largest peer frame accepted (a SNAP carries a whole snapshot).
const MAX_PEER_FRAME: usize = 512 * 1024 * 1024;

/// How long the reconnect after a broken connection may take before the peer counts as lost.
pub const RECONNECT_PROBE: Duration = Duration::from_millis(500);

/// Counts, per peer, the inbound connections from it that ended (the outbound task watches it).
type InboundClosed = Arc<BTreeMap<ServerId, watch::Sender<u64>>>;

/// Handles to the outbound connections.
pub struct PeerNet {
    senders: BTreeMap<ServerId, mpsc::UnboundedSender<Outgoing>>,
}

/// One queued message: its frame, or a frame still being encoded on a blocking thread (a SNAP
/// carries the whole tree: encoding it on the driver would stall every client for a time that
/// grows with the tree, issue 16). The queue keeps the order either way.
enum Outgoing {
    Frame(Vec<u8>),
    Encoding(oneshot::Receiver<Vec<u8>>),
}

impl PeerNet {
    /// Listens on `listen` and starts one outbound task per peer in `peers` (`host:port`).
    pub async fn start(
        me: ServerId,
        listen: SocketAddr,
        peers: BTreeMap<ServerId, String>,
        events: mpsc::UnboundedSender<Event>,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<PeerNet> {
        let listener = TcpListener::bind(listen).await?;
        tracing::info!(%listen, "quorum port listening");
        let mut closed = BTreeMap::new();
        let mut closed_rx = BTreeMap::new();
        for id in peers.keys() {
            let (tx, rx) = watch::channel(0u64);
            closed.insert(*id, tx);
            closed_rx.insert(*id, rx);
        }
        let closed: InboundClosed = Arc::new(closed);
        tokio::spawn(accept_loop(listener, events.clone(), closed, shutdown.clone()));
        let mut senders = BTreeMap::new();
        for (id, addr) in peers {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.insert(id, tx);
            let link = Outbound {
                me,
                peer: id,
                addr,
                queue: rx,
                shutdown: shutdown.clone(),
                events: events.clone(),
                inbound_closed: closed_rx.remove(&id).expect("one per peer"),
            };
            tokio::spawn(link.run());
        }
        Ok(PeerNet { senders })
    }

    /// Queues a message for a peer (best effort).
    pub fn send(&self, to: ServerId, msg: &ZabMessage) {
        if let Some(tx) = self.senders.get(&to) {
            let item = if let ZabMessage::Snap { .. } = msg {
                // The snapshot's tree is an O(1) clone: cheap to hand over.
                let (done, encoded) = oneshot::channel();
                let msg = msg.clone();
                crate::env::spawn_blocking(move || {
                    let _ = done.send(encode_peer_message(&msg));
                });
                Outgoing::Encoding(encoded)
            } else {
                Outgoing::Frame(encode_peer_message(msg))
            };
            let _ = tx.send(item);
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    closed: InboundClosed,
    mut shutdown: watch::Receiver<bool>,
) {
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
        tokio::spawn(async move {
            let mut from = None;
            if let Err(e) = inbound(stream, events, &mut from).await {
                tracing::debug!(%remote, %e, "quorum connection ended");
            }
            if let Some(tx) = from.and_then(|id| closed.get(&id)) {
                tx.send_modify(|n| *n += 1);
            }
        });
    }
}

async fn inbound(
    mut stream: TcpStream,
    events: mpsc::UnboundedSender<Event>,
    peer: &mut Option<ServerId>,
) -> std::io::Result<()> {
    let from = ServerId(stream.read_u64().await?);
    *peer = Some(from);
    loop {
        let len = stream.read_u32().await? as usize;
        if len > MAX_PEER_FRAME {
            tracing::warn!(from = from.0, len, "oversized peer frame; dropping the connection");
            return Ok(());
        }
        let mut payload = vec![0; len];
        stream.read_exact(&mut payload).await?;
        match decode_peer_message(&payload) {
            Ok(msg) => {
                if events.send(Event::Peer { from, msg }).is_err() {
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

/// One peer's outbound connection task.
struct Outbound {
    me: ServerId,
    peer: ServerId,
    addr: String,
    queue: mpsc::UnboundedReceiver<Outgoing>,
    shutdown: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<Event>,
    inbound_closed: watch::Receiver<u64>,
}

/// Why the connected loop ended.
enum Ended {
    Shutdown,
    Broken,
}

impl Outbound {
    async fn run(mut self) {
        let mut backoff = Duration::from_millis(50);
        // A connection broke and the reconnect has not succeeded yet.
        let mut broken = false;
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let limit = if broken { RECONNECT_PROBE } else { Duration::from_secs(2) };
            let connected = tokio::time::timeout(limit, TcpStream::connect(&self.addr)).await;
            let Ok(Ok(stream)) = connected else {
                let mut dropped = false;
                while self.queue.try_recv().is_ok() {
                    dropped = true;
                }
                if broken || dropped {
                    let peer = self.peer.0;
                    tracing::info!(peer, "quorum peer unreachable; reporting it lost");
                    let _ = self.events.send(Event::PeerLost { peer: self.peer });
                    broken = false;
                }
                tokio::select! {
                    biased;
                    _ = self.shutdown.changed() => return,
                    _ = self.inbound_closed.changed() => broken = true,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            };
            backoff = Duration::from_millis(50);
            match self.connected(stream).await {
                Ended::Shutdown => return,
                Ended::Broken => broken = true,
            }
        }
    }

    /// Writes queued frames until the connection breaks (a write fails, or the peer closes its
    /// end) or shutdown. The peer's connection to us ending does not drop this one: the peer
    /// may only have replaced it, and dropping ours would lose what is in flight.
    async fn connected(&mut self, mut stream: TcpStream) -> Ended {
        let _ = stream.set_nodelay(true);
        // Flushed after every write: a no-op on a real socket, and madsim's TCP sends only on
        // flush.
        if stream.write_u64(self.me.0).await.is_err() || stream.flush().await.is_err() {
            return Ended::Broken;
        }
        self.inbound_closed.borrow_and_update();
        tracing::info!(peer = self.peer.0, addr = %self.addr, "quorum connection up");
        // The peer never writes on our outbound connection: a read that completes means it
        // closed (or reset) it, e.g. because its process died (a connect that landed in a dying
        // process's backlog ends this way too).
        let mut probe = [0u8; 1];
        loop {
            let item = tokio::select! {
                biased;
                _ = self.shutdown.changed() => return Ended::Shutdown,
                _ = stream.read(&mut probe) => {
                    tracing::info!(peer = self.peer.0, "quorum connection closed by the peer");
                    return Ended::Broken;
                }
                item = self.queue.recv() => match item {
                    Some(item) => item,
                    None => return Ended::Shutdown,
                },
            };
            let frame = match item {
                Outgoing::Frame(frame) => frame,
                Outgoing::Encoding(encoded) => match encoded.await {
                    Ok(frame) => frame,
                    Err(_) => continue,
                },
            };
            let mut buf = Vec::with_capacity(frame.len() + 4);
            buf.extend_from_slice(&(frame.len() as u32).to_be_bytes());
            buf.extend_from_slice(&frame);
            if stream.write_all(&buf).await.is_err() || stream.flush().await.is_err() {
                tracing::info!(peer = self.peer.0, "quorum connection lost; reconnecting");
                return Ended::Broken;
            }
        }
    }
}
