//! tokio's readiness API over madsim's TCP, for `client_net` under `--cfg madsim`.
//!
//! madsim's `TcpStream` offers only `AsyncRead`/`AsyncWrite` and sends on `flush`. The client
//! connection task uses tokio's `readable`/`try_read`/`writable`/`try_write`, all on `&self`,
//! so the stream sits behind a mutex (held only inside one poll, never across an await):
//! - `readable` polls one read into a buffer and resolves once bytes (or the end) are there;
//!   `try_read` takes from that buffer. A read completes within one poll, so a `select!` that
//!   drops `readable` never loses bytes.
//! - madsim buffers writes without bound, so `writable` is always ready and `try_write` writes
//!   and flushes everything at once.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const READ_BYTES: usize = 16 * 1024;

/// A simulated listener handing out [`TcpStream`]s.
#[derive(Debug)]
pub struct TcpListener(tokio::net::TcpListener);

impl TcpListener {
    /// Binds `addr` on the current simulated node.
    pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        tokio::net::TcpListener::bind(addr).await.map(TcpListener)
    }

    /// Accepts one connection.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, remote) = self.0.accept().await?;
        Ok((TcpStream::new(stream), remote))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

#[derive(Debug)]
struct Inner {
    stream: tokio::net::TcpStream,
    read: Vec<u8>,
    eof: bool,
}

/// A simulated TCP stream with tokio's readiness methods.
#[derive(Debug)]
pub struct TcpStream(Mutex<Inner>);

impl TcpStream {
    fn new(stream: tokio::net::TcpStream) -> TcpStream {
        TcpStream(Mutex::new(Inner { stream, read: Vec::new(), eof: false }))
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().expect("stream lock")
    }

    /// Nothing to set in the simulation.
    pub fn set_nodelay(&self, _on: bool) -> io::Result<()> {
        Ok(())
    }

    /// Nothing to set in the simulation (a dropped stream closes at once).
    pub fn set_zero_linger(&self) -> io::Result<()> {
        Ok(())
    }

    /// Resolves once `try_read` has bytes or the end to give.
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_fill(cx)).await
    }

    fn poll_fill(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.inner();
        if !inner.read.is_empty() || inner.eof {
            return Poll::Ready(Ok(()));
        }
        let mut chunk = [0u8; READ_BYTES];
        let mut buf = ReadBuf::new(&mut chunk);
        match Pin::new(&mut inner.stream).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let filled = buf.filled().len();
                if filled == 0 {
                    inner.eof = true;
                } else {
                    inner.read.extend_from_slice(&chunk[..filled]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Takes buffered bytes; `Ok(0)` at the end, `WouldBlock` when nothing is buffered.
    pub fn try_read(&self, out: &mut [u8]) -> io::Result<usize> {
        let mut inner = self.inner();
        if inner.read.is_empty() {
            if inner.eof {
                return Ok(0);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = inner.read.len().min(out.len());
        out[..n].copy_from_slice(&inner.read[..n]);
        inner.read.drain(..n);
        Ok(n)
    }

    /// Always ready: the simulated socket buffers without bound.
    pub async fn writable(&self) -> io::Result<()> {
        Ok(())
    }

    /// Writes and sends all of `data`.
    pub fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        let mut inner = self.inner();
        let mut cx = Context::from_waker(Waker::noop());
        let stream = Pin::new(&mut inner.stream);
        let n = match stream.poll_write(&mut cx, data) {
            Poll::Ready(result) => result?,
            Poll::Pending => return Err(io::ErrorKind::WouldBlock.into()),
        };
        match Pin::new(&mut inner.stream).poll_flush(&mut cx) {
            Poll::Ready(result) => result?,
            Poll::Pending => return Err(io::ErrorKind::WouldBlock.into()),
        }
        Ok(n)
    }

    /// Writes and sends all of `data`.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.try_write(data).map(drop)
    }

    /// Everything is sent by `try_write` already.
    pub async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Nothing to do: the peer sees the end when the stream is dropped.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}
