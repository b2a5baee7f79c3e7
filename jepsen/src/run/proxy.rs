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
use std::thread::JoinHandle;
use std::time::Duration;

/// One listening proxy and the connections it carries. Dropped, it stops and joins every
/// thread it started, so none is left behind (in a network namespace, a thread left running
/// would keep the namespace alive after its cluster is gone).
#[derive(Debug)]
pub struct Proxy {
    listen: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
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
    /// The pump threads started so far, joined on drop.
    pumps: Mutex<Vec<JoinHandle<()>>>,
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
        let listen = listener.local_addr()?;
        // Polled, not blocked on: a stop is then seen within one poll even when no
        // connection could be made to wake the loop (a namespace dropping every packet).
        listener.set_nonblocking(true)?;
        let state = Arc::new(State::default());
        let shared = state.clone();
        let accept = std::thread::spawn(move || {
            while !shared.stop.load(Ordering::SeqCst) {
                let inbound = match listener.accept() {
                    Ok((inbound, _)) => inbound,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(ACCEPT_POLL);
                        continue;
                    }
                    Err(_) => continue,
                };
                if shared.cut.load(Ordering::SeqCst) || inbound.set_nonblocking(false).is_err() {
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
        Ok(Proxy { listen, state, accept: Some(accept) })
    }

    /// The address it listens on (the port the system chose, if asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.listen
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
        // The accept loop first: once it is gone no pump is started, so the list is final.
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let pumps = std::mem::take(&mut *self.state.pumps.lock().expect("not poisoned"));
        for pump in pumps {
            let _ = pump.join();
        }
        assert!(self.state.streams.lock().expect("not poisoned").is_empty(), "all shut");
    }
}

/// How often the accept loop looks for a connection or a stop.
const ACCEPT_POLL: Duration = Duration::from_millis(10);

/// Pumps bytes both ways until either side closes or the proxy is cut.
fn carry(state: &Arc<State>, a: TcpStream, b: TcpStream) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let clones = (a.try_clone(), b.try_clone(), a.try_clone(), b.try_clone());
    let (Ok(a2), Ok(b2), Ok(a3), Ok(b3)) = clones else { return };
    let id = state.next.fetch_add(1, Ordering::SeqCst);
    {
        // Under the lock, against a drop's shut_all: a connection registered after the stop
        // is shut here, one registered before is shut there, so no pump waits forever.
        let mut streams = state.streams.lock().expect("not poisoned");
        if state.stop.load(Ordering::SeqCst) {
            let _ = a3.shutdown(Shutdown::Both);
            let _ = b3.shutdown(Shutdown::Both);
        } else {
            streams.insert(id, (a3, b3));
        }
    }
    let (s1, s2) = (state.clone(), state.clone());
    let forth = std::thread::spawn(move || {
        pump(a, b, &s1, 0);
        s1.streams.lock().expect("not poisoned").remove(&id);
    });
    let back = std::thread::spawn(move || {
        pump(b2, a2, &s2, 1);
        s2.streams.lock().expect("not poisoned").remove(&id);
    });
    let mut pumps = state.pumps.lock().expect("not poisoned");
    // Finished pumps are joined as new ones come, so a long run keeps a short list.
    let (done, running): (Vec<_>, Vec<_>) =
        std::mem::take(&mut *pumps).into_iter().partition(|p| p.is_finished());
    for pump in done {
        let _ = pump.join();
    }
    *pumps = running;
    pumps.extend([forth, back]);
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

    /// Port 0: the system picks a free one, so tests running at once never meet.
    fn any_port() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
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
        let proxy = Proxy::spawn(any_port(), target.local_addr().expect("addr")).expect("proxy");
        let mut client = TcpStream::connect(proxy.addr()).expect("through the proxy");
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

    /// Dropped while it carries a stalled connection, a proxy closes both ends and returns
    /// (its threads joined); its port takes no connection afterwards.
    #[test]
    fn a_dropped_proxy_closes_what_it_carries_and_returns() {
        let target = TcpListener::bind(("127.0.0.1", 0)).expect("target");
        let proxy = Proxy::spawn(any_port(), target.local_addr().expect("addr")).expect("proxy");
        let listen = proxy.addr();
        let mut client = TcpStream::connect(listen).expect("through the proxy");
        let (mut server, _) = target.accept().expect("the proxy connects");
        proxy.set_stalled(true, true);
        client.write_all(b"a").expect("write");
        let started = std::time::Instant::now();
        drop(proxy);
        assert!(started.elapsed() < Duration::from_secs(5), "the drop returns");
        let mut byte = [0u8; 1];
        client.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        server.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        assert!(matches!(client.read(&mut byte), Ok(0) | Err(_)), "the client's end is closed");
        assert!(matches!(server.read(&mut byte), Ok(0) | Err(_)), "the target's end is closed");
        assert!(TcpStream::connect(listen).is_err(), "nothing listens any more");
    }
}
