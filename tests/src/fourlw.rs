//! Four-letter words over a raw TCP connection: write the 4 ASCII bytes, read until the server
//! closes the socket. Every step has a timeout, so a silent server fails the test rather than
//! hanging it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Sends `cmd` (e.g. `"ruok"`) to `addr` and returns everything the server wrote before closing.
pub fn four_letter(addr: SocketAddr, cmd: &str, timeout: Duration) -> std::io::Result<String> {
    assert_eq!(cmd.len(), 4, "a four-letter word has 4 bytes: {cmd:?}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(cmd.as_bytes())?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// True when `ruok` gets `imok` within `timeout`.
pub fn is_ok(addr: SocketAddr, timeout: Duration) -> bool {
    matches!(four_letter(addr, "ruok", timeout), Ok(answer) if answer == "imok")
}
