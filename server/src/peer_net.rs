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

use std::collections::BTreeMap;
use std::net::SocketAddr;
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
        tokio::spawn(accept_loop(listener, events, shutdown.clone()));
        let mut senders = BTreeMap::new();
        for (id, addr) in peers {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.insert(id, tx);
            tokio::spawn(outbound(me, id, addr, rx, shutdown.clone()));
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
                tokio::task::spawn_blocking(move || {
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
        tokio::spawn(async move {
            if let Err(e) = inbound(stream, events).await {
                tracing::debug!(%remote, %e, "quorum connection ended");
            }
        });
    }
}

async fn inbound(
    mut stream: TcpStream,
    events: mpsc::UnboundedSender<Event>,
) -> std::io::Result<()> {
    let from = ServerId(stream.read_u64().await?);
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

async fn outbound(
    me: ServerId,
    peer: ServerId,
    addr: String,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let connected =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr.as_str())).await;
        let mut stream = match connected {
            Ok(Ok(stream)) => stream,
            _ => {
                while queue.try_recv().is_ok() {}
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let _ = stream.set_nodelay(true);
        if stream.write_u64(me.0).await.is_err() {
            continue;
        }
        tracing::info!(peer = peer.0, %addr, "quorum connection up");
        loop {
            let item = tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                item = queue.recv() => match item {
                    Some(item) => item,
                    None => return,
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
            if stream.write_all(&buf).await.is_err() {
                tracing::info!(peer = peer.0, "quorum connection lost; reconnecting");
                break;
            }
        }
    }
}
