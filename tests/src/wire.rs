//! Raw frames over a blocking socket, encoded with zkr-core's codec: the shared plumbing of
//! tools that speak the wire protocol directly (the differential test, `zkbench`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use zkr_core::proto::client::{ConnectRequest, ConnectResponse};
use zkr_core::proto::codec;

/// Reads one length-prefixed frame; `None` when the connection ended.
pub fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut payload = vec![0; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut payload).ok()?;
    Some(payload)
}

/// Opens a new session (30 s timeout requested, readOnly byte sent) and returns the socket and
/// the server's ConnectResponse.
pub fn connect(addr: SocketAddr) -> std::io::Result<(TcpStream, ConnectResponse)> {
    connect_within(addr, Duration::from_secs(30))
}

/// [`connect`] with `timeout` on every read (a probe that must not hang on a starting server).
pub fn connect_within(
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<(TcpStream, ConnectResponse)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 30_000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    };
    stream.write_all(&codec::encode_connect_request(&req))?;
    let payload = read_frame(&mut stream)
        .ok_or_else(|| std::io::Error::other("closed before the ConnectResponse"))?;
    let resp = codec::decode_connect_response(&payload)
        .map_err(|e| std::io::Error::other(format!("bad ConnectResponse: {e}")))?;
    Ok((stream, resp))
}
