//! A fault-injecting TCP proxy between two ensemble members: member `i` reaches member `j`'s
//! quorum or election port through its own proxy port, so a partition is a switch on the
//! proxy. Cutting closes the connections it carries and refuses new ones; healing lets them
//! through again. It works the same for any ZooKeeper, needs no privileges, and touches only
//! loopback.
//!
//! A cut of the `i → j` proxy stops the connections `i` opens to `j` (ZooKeeper's quorum and
//! election connections each carry both directions once open), so a partition between `i` and
//! `j` cuts both proxies of the pair.
//!
//! A one-way partition stalls one direction instead ([`Proxy::set_stalled`]): the proxy stops
//! reading the bytes going that way, so they wait (TCP's flow control holds the sender back,
//! as if its packets were lost and retransmitted) while the other direction flows; healing
//! delivers them late, in order. Dropping bytes instead would break the framing of the stream,
//! which no network does to a TCP connection.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One listening proxy and the connections it carries.
#[derive(Debug)]
pub struct Proxy {
    listen: SocketAddr,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    cut: AtomicBool,
    /// Stalled directions: `[0]` toward the target (what the connecting member sends), `[1]`
    /// back from it.
    stalled: [AtomicBool; 2],
    stop: AtomicBool,
    /// Both ends of every carried connection, by number, to shut them at a cut.
    streams: Mutex<BTreeMap<u64, (TcpStream, TcpStream)>>,
    next: AtomicU64,
}

impl State {
    fn shut_all(&self) {
        let streams = std::mem::take(&mut *self.streams.lock().expect("not poisoned"));
        for (a, b) in streams.into_values() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

impl Proxy {
    /// Listens on `listen` and forwards each accepted connection to `target`.
    pub fn spawn(listen: SocketAddr, target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(listen)?;
        let state = Arc::new(State::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(inbound) = inbound else { continue };
                if shared.cut.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect_timeout(&target, Duration::from_secs(1))
                else {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                };
                carry(&shared, inbound, outbound);
            }
        });
        Ok(Proxy { listen, state })
    }

    /// Stalls (or lets flow again) the bytes going toward the target (`toward: true`) or back
    /// from it, on the connections carried now and later.
    pub fn set_stalled(&self, toward: bool, stalled: bool) {
        self.state.stalled[usize::from(!toward)].store(stalled, Ordering::SeqCst);
    }

    /// Cuts (closing what it carries) or heals the proxy.
    pub fn set_cut(&self, cut: bool) {
        self.state.cut.store(cut, Ordering::SeqCst);
        if cut {
            self.state.shut_all();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.state.shut_all();
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect_timeout(&self.listen, Duration::from_millis(200));
    }
}

/// Pumps bytes both ways until either side closes or the proxy is cut.
fn carry(state: &Arc<State>, a: TcpStream, b: TcpStream) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let clones = (a.try_clone(), b.try_clone(), a.try_clone(), b.try_clone());
    let (Ok(a2), Ok(b2), Ok(a3), Ok(b3)) = clones else { return };
    let id = state.next.fetch_add(1, Ordering::SeqCst);
    state.streams.lock().expect("not poisoned").insert(id, (a3, b3));
    let (s1, s2) = (state.clone(), state.clone());
    std::thread::spawn(move || {
        pump(a, b, &s1, 0);
        s1.streams.lock().expect("not poisoned").remove(&id);
    });
    std::thread::spawn(move || {
        pump(b2, a2, &s2, 1);
        s2.streams.lock().expect("not poisoned").remove(&id);
    });
}

/// Copies `from` to `to` until either closes; while direction `way` is stalled, reads nothing
/// and holds what it had read (a read already waiting when the stall began returns later).
fn pump(mut from: TcpStream, mut to: TcpStream, state: &State, way: usize) {
    let mut buf = [0u8; 16 * 1024];
    let hold = || {
        while state.stalled[way].load(Ordering::SeqCst)
            && !state.cut.load(Ordering::SeqCst)
            && !state.stop.load(Ordering::SeqCst)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    loop {
        hold();
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                hold();
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A free port in 30900..31000 (the range this test may use).
    fn free_port() -> SocketAddr {
        (30_900..31_000)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .find(|a| TcpListener::bind(a).is_ok())
            .expect("a free port")
    }

    fn read_some(stream: &mut TcpStream) -> Option<u8> {
        stream.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(1) => Some(byte[0]),
            _ => None,
        }
    }

    /// A one-way stall holds the bytes going one way, lets the other way flow, and delivers
    /// what it held once healed; the connection stays open throughout.
    #[test]
    fn a_stalled_direction_holds_its_bytes_and_the_other_flows() {
        let target = TcpListener::bind(("127.0.0.1", 0)).expect("target");
        let proxy = Proxy::spawn(free_port(), target.local_addr().expect("addr")).expect("proxy");
        let mut client = TcpStream::connect(proxy.listen).expect("through the proxy");
        let (mut server, _) = target.accept().expect("the proxy connects");
        proxy.set_stalled(true, true);
        client.write_all(b"a").expect("write");
        server.write_all(b"b").expect("write");
        assert_eq!(read_some(&mut client), Some(b'b'), "back from the target flows");
        assert_eq!(read_some(&mut server), None, "toward the target is held");
        proxy.set_stalled(true, false);
        assert_eq!(read_some(&mut server), Some(b'a'), "delivered once healed");
        proxy.set_stalled(false, true);
        server.write_all(b"c").expect("write");
        client.write_all(b"d").expect("write");
        assert_eq!(read_some(&mut server), Some(b'd'), "toward the target flows");
        assert_eq!(read_some(&mut client), None, "back from the target is held");
        proxy.set_stalled(false, false);
        assert_eq!(read_some(&mut client), Some(b'c'), "delivered once healed");
    }
}
