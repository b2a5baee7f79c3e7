//! A fault-injecting TCP proxy between two ensemble members: member `i` reaches member `j`'s
//! quorum or election port through its own proxy port, so a partition is a switch on the
//! proxy. Cutting closes the connections it carries and refuses new ones; healing lets them
//! through again. It works the same for any ZooKeeper, needs no privileges, and touches only
//! loopback.
//!
//! A cut of the `i → j` proxy stops the connections `i` opens to `j` (ZooKeeper's quorum and
//! election connections each carry both directions once open), so a partition between `i` and
//! `j` cuts both proxies of the pair.

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
        pump(a, b);
        s1.streams.lock().expect("not poisoned").remove(&id);
    });
    std::thread::spawn(move || {
        pump(b2, a2);
        s2.streams.lock().expect("not poisoned").remove(&id);
    });
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
