//! Client connections: the listener, per-IP connection limits, and one task per connection that
//! frames bytes through `zkr_core::proto::frame`, hands payloads to the driver, and writes back
//! what the driver sends. Four-letter words are answered here (with text the driver computes) and
//! the connection is then closed, as ZooKeeper does.
//!
//! Each connection task owns its socket alone; it never touches the `Node`. The only shared state
//! is the per-IP counter map behind a mutex.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use zkr_core::proto::frame::{Frame, FrameDecoder};
use zkr_core::types::ConnId;

/// What connection tasks tell the driver.
#[derive(Debug)]
pub enum Event {
    /// A connection was accepted; `writer` takes what must be written to it.
    Connected {
        /// The connection id.
        conn: ConnId,
        /// The peer address.
        remote: SocketAddr,
        /// Channel to the connection task.
        writer: mpsc::UnboundedSender<ConnCmd>,
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
}

/// What the driver tells a connection task.
#[derive(Debug)]
pub enum ConnCmd {
    /// Write this frame.
    Send(Vec<u8>),
    /// Flush and close.
    Close,
}

/// Per-IP connection counting for `maxClientCnxns`.
#[derive(Debug, Default)]
pub struct ConnLimits {
    max_per_ip: u32,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
}

impl ConnLimits {
    /// `max_per_ip == 0` means unlimited.
    pub fn new(max_per_ip: u32) -> ConnLimits {
        ConnLimits { max_per_ip, per_ip: Mutex::new(HashMap::new()) }
    }

    fn acquire(&self, ip: IpAddr) -> bool {
        let mut map = self.per_ip.lock().expect("limits lock");
        let count = map.entry(ip).or_insert(0);
        if self.max_per_ip != 0 && *count >= self.max_per_ip {
            return false;
        }
        *count += 1;
        true
    }

    fn release(&self, ip: IpAddr) {
        let mut map = self.per_ip.lock().expect("limits lock");
        if let Some(count) = map.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                map.remove(&ip);
            }
        }
    }
}

/// Accepts connections until `shutdown` turns true.
pub async fn accept_loop(
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    limits: Arc<ConnLimits>,
    max_frame_bytes: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next_conn = 1u64;
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
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if !limits.acquire(remote.ip()) {
            tracing::warn!(%remote, "too many connections from this address (maxClientCnxns)");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let conn = ConnId(next_conn);
        next_conn += 1;
        let events = events.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            serve_conn(stream, remote, conn, events, max_frame_bytes).await;
            limits.release(remote.ip());
        });
    }
}

async fn serve_conn(
    mut stream: TcpStream,
    remote: SocketAddr,
    conn: ConnId,
    events: mpsc::UnboundedSender<Event>,
    max_frame_bytes: usize,
) {
    let (writer, mut commands) = mpsc::unbounded_channel();
    if events.send(Event::Connected { conn, remote, writer }).is_err() {
        return;
    }
    let mut decoder = FrameDecoder::new(max_frame_bytes);
    let mut read_buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    'conn: loop {
        tokio::select! {
            biased;
            cmd = commands.recv() => {
                let mut close = !matches!(cmd, Some(ConnCmd::Send(_)));
                if let Some(ConnCmd::Send(frame)) = cmd {
                    out.extend_from_slice(&frame);
                }
                while !close {
                    match commands.try_recv() {
                        Ok(ConnCmd::Send(frame)) => out.extend_from_slice(&frame),
                        Ok(ConnCmd::Close) => close = true,
                        Err(_) => break,
                    }
                }
                if stream.write_all(&out).await.is_err() {
                    break 'conn;
                }
                out.clear();
                if close {
                    let _ = stream.flush().await;
                    let _ = stream.shutdown().await;
                    break 'conn;
                }
            }
            read = stream.read(&mut read_buf) => {
                let n = match read {
                    Ok(0) | Err(_) => break 'conn,
                    Ok(n) => n,
                };
                decoder.push(&read_buf[..n]);
                loop {
                    match decoder.next_frame() {
                        Ok(None) => break,
                        Ok(Some(Frame::Payload(payload))) => {
                            if events.send(Event::Frame { conn, payload }).is_err() {
                                break 'conn;
                            }
                        }
                        Ok(Some(Frame::FourLetterWord { cmd, .. })) => {
                            answer_four_letter_word(&mut stream, remote, cmd, &events).await;
                            break 'conn;
                        }
                        Err(err) => {
                            tracing::info!(%remote, ?err, "bad frame length; closing (Len error)");
                            break 'conn;
                        }
                    }
                }
            }
        }
    }
    let _ = events.send(Event::Closed { conn });
}

async fn answer_four_letter_word(
    stream: &mut TcpStream,
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
        let _ = stream.flush().await;
    }
    let _ = stream.shutdown().await;
}
