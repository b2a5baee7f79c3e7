//! The channel that carries `StorageEvent`s from the storage threads to the driver, and how
//! the driver is woken for them.
//!
//! A tokio channel woken from a thread outside the runtime (the log thread's `Durable`) wakes
//! the driver through the runtime's remote queue: a parked worker is unparked as a "searching"
//! worker, and a searching worker that finds a task unparks a second one to go on searching.
//! On the 2-core test machine that second worker found nothing to do for nearly every event,
//! and, woken on the same core, it preempted the one that had the work: one futex wake and
//! two context switches per `Durable`, on every member, on the path of every write
//! (docs/PERFORMANCE.md, "one synchronous client").
//!
//! So outside madsim the events still travel on the channel, but the driver never waits on
//! the channel itself (no waker is registered on it, so a send wakes nothing): each send is
//! followed by one byte on a socket pair (`EventSender::send`), and the driver waits for that
//! socket to be readable (`EventReceiver::recv`). Readiness reaches the worker parked on the
//! runtime's I/O driver, the way a peer's message does, and the runtime wakes no second
//! worker for it.
//!
//! Invariants: an event is on the channel before its byte is written, and the receiver
//! empties the socket before it looks at the channel, so no event waits for a byte that was
//! already consumed (a spurious wake-up finds the channel empty and waits again). Under madsim
//! (tier 2 of `sim`) nothing changes: the driver awaits the channel, as before, so the
//! simulation's traces are the same.

use tokio::sync::mpsc::error::SendError;
#[cfg(not(madsim))]
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::StorageEvent;

/// The storage threads' end: `send` as on an `UnboundedSender`, then ring the bell.
#[derive(Clone)]
pub struct EventSender {
    events: UnboundedSender<StorageEvent>,
    /// The socket the driver waits on; `None`: the receiver awaits the channel itself.
    #[cfg(not(madsim))]
    bell: Option<std::sync::Arc<std::os::unix::net::UnixStream>>,
}

impl EventSender {
    /// Queues `event`, then wakes the driver if it waits on the bell. Fails only once the
    /// receiver is gone (the driver stopped).
    pub fn send(&self, event: StorageEvent) -> Result<(), SendError<StorageEvent>> {
        self.events.send(event)?;
        #[cfg(not(madsim))]
        if let Some(bell) = &self.bell {
            use std::io::Write;
            // Non-blocking: a full socket already holds unread bytes, so the driver will wake
            // anyway; an error means the driver's end is gone, which the channel reports.
            let _ = (&**bell).write(&[1]);
        }
        Ok(())
    }
}

/// A channel without a bell: the receiver must await the channel (`EventReceiver::plain`).
impl From<UnboundedSender<StorageEvent>> for EventSender {
    fn from(events: UnboundedSender<StorageEvent>) -> EventSender {
        EventSender {
            events,
            #[cfg(not(madsim))]
            bell: None,
        }
    }
}

/// The driver's end.
pub struct EventReceiver {
    events: UnboundedReceiver<StorageEvent>,
    #[cfg(not(madsim))]
    bell: Option<tokio::net::UnixStream>,
}

impl EventReceiver {
    /// A receiver that awaits the channel itself (the senders have no bell).
    pub fn plain(events: UnboundedReceiver<StorageEvent>) -> EventReceiver {
        EventReceiver {
            events,
            #[cfg(not(madsim))]
            bell: None,
        }
    }

    /// The next event; `None` once every sender is gone. Cancel-safe (it is one branch of the
    /// driver's `select!`): an event is only taken off the channel in the poll that returns it.
    pub async fn recv(&mut self) -> Option<StorageEvent> {
        #[cfg(not(madsim))]
        while let Some(bell) = &self.bell {
            match self.events.try_recv() {
                Ok(event) => return Some(event),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
            if bell.readable().await.is_err() || !drain(bell) {
                // The bell broke (it cannot while its senders live): wait on the channel.
                tracing::warn!("storage event bell failed; waiting on the channel instead");
                self.bell = None;
            }
        }
        self.events.recv().await
    }
}

/// Reads every byte the bell holds, so that it is readable again only after a later ring.
/// False if the socket failed.
#[cfg(not(madsim))]
fn drain(bell: &tokio::net::UnixStream) -> bool {
    let mut bytes = [0u8; 256];
    loop {
        match bell.try_read(&mut bytes) {
            Ok(n) if n > 0 => continue,
            // Every sender dropped its end: the channel says `Disconnected` next.
            Ok(_) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

/// A channel whose receiver is woken through the runtime's I/O driver (see the module doc);
/// under madsim, a plain channel. Called inside the runtime (the socket registers with it).
pub fn channel() -> std::io::Result<(EventSender, EventReceiver)> {
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    #[cfg(not(madsim))]
    {
        let (ring, wait) = std::os::unix::net::UnixStream::pair()?;
        ring.set_nonblocking(true)?;
        wait.set_nonblocking(true)?;
        let wait = tokio::net::UnixStream::from_std(wait)?;
        let sender = EventSender { events: events_tx, bell: Some(std::sync::Arc::new(ring)) };
        Ok((sender, EventReceiver { events: events_rx, bell: Some(wait) }))
    }
    #[cfg(madsim)]
    {
        Ok((EventSender::from(events_tx), EventReceiver::plain(events_rx)))
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A hang guard, not a speed check: a lost wake-up leaves `recv` waiting for ever.
    const HANG: Duration = Duration::from_secs(10);

    fn durable(upto: i64) -> StorageEvent {
        StorageEvent::Durable { upto }
    }

    /// Events sent from a thread outside the runtime (as the log thread sends them) all arrive,
    /// in order, each while the receiver waits, so each is woken by the bell alone; `None`
    /// once the senders are gone. Without the ring in `EventSender::send` the first `recv`
    /// waits for ever (shown by removing it: the hang guard fires).
    #[test]
    fn events_from_another_thread_wake_the_receiver_in_order_and_the_end_is_seen() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (sender, mut receiver) = channel().unwrap();
            let (taken, wait_taken) = std::sync::mpsc::channel();
            let thread = std::thread::spawn(move || {
                for upto in 1..=50 {
                    // The receiver is waiting by now (if not, it finds the event at once).
                    std::thread::sleep(Duration::from_millis(2));
                    sender.send(durable(upto)).unwrap();
                    // The sender stays alive until the event is taken: no close wakes it.
                    wait_taken.recv().unwrap();
                }
            });
            for upto in 1..=50 {
                let event = tokio::time::timeout(HANG, receiver.recv()).await.expect("woken");
                assert!(matches!(event, Some(StorageEvent::Durable { upto: u }) if u == upto));
                taken.send(()).unwrap();
            }
            thread.join().unwrap();
            let end = tokio::time::timeout(HANG, receiver.recv()).await.expect("woken");
            assert!(end.is_none(), "every sender is gone: {end:?}");
        });
    }

    /// A `recv` dropped while it waits (the driver's `select!` took another branch) loses
    /// nothing: the event sent meanwhile is the next one returned.
    #[test]
    fn a_cancelled_recv_loses_no_event() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (sender, mut receiver) = channel().unwrap();
            let waited = tokio::time::timeout(Duration::from_millis(10), receiver.recv()).await;
            assert!(waited.is_err(), "nothing was sent yet");
            sender.send(durable(7)).unwrap();
            sender.send(durable(8)).unwrap();
            for upto in [7, 8] {
                let event = tokio::time::timeout(HANG, receiver.recv()).await.expect("woken");
                assert!(matches!(event, Some(StorageEvent::Durable { upto: u }) if u == upto));
            }
            let waited = tokio::time::timeout(Duration::from_millis(10), receiver.recv()).await;
            assert!(waited.is_err(), "both were taken, nothing more is there");
        });
    }
}
