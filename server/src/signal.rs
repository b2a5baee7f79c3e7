//! A deterministic replacement for `tokio::sync::watch`: one value with a version number, and
//! receivers that wait for the version to move past the last one they saw.
//!
//! Why not `tokio::sync::watch`: its receivers wait on one of 8 `Notify`s picked by tokio's
//! per-thread RNG (`runtime::context::thread_rng_n(8)`, tokio 1.54 `sync/watch.rs`), whose seed
//! mixes a process-wide counter bumped once per thread. madsim makes `getrandom` deterministic
//! but cannot reset that counter, so under tier 2 of `sim` (each seed on a fresh thread) the
//! order in which a send woke its receivers depended on how many seeds the process had run
//! before: a campaign's seed did not replay alone with `--seed N`. Here every receiver waits on
//! the same single `Notify`, whose waiter list is woken in registration order.
//!
//! Invariants: the version only grows, by one per send; a receiver's `seen` is never ahead of
//! it; `changed` registers with the `Notify` before it reads the version, so a send between the
//! read and the wait cannot be missed. Once every `Sender` is gone the channel is closed: a
//! receiver still gets the changes it has not seen, then `changed` returns `Err(Closed)`.
//!
//! The API is the subset of `watch` the shell uses, with the same meaning.

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// `changed` found every sender gone and no unseen change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("every sender of the signal is gone")
    }
}

impl std::error::Error for Closed {}

struct State<T> {
    value: T,
    version: u64,
    closed: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// The one queue every receiver waits in (see the module doc for why only one).
    notify: Notify,
    senders: AtomicUsize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock (in a `send_modify` closure) is a bug already reported;
        // the value is still a `T`, so later readers go on with it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sending half; dropping the last one closes the channel.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving half: remembers the version it last saw.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    seen: u64,
}

/// A borrow of the current value; holds the lock, so keep it short (never across an `.await`).
pub struct Ref<'a, T> {
    guard: MutexGuard<'a, State<T>>,
}

impl<T> Deref for Ref<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard.value
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Sender")
            .field("value", &state.value)
            .field("version", &state.version)
            .finish()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        let version = state.version;
        f.debug_struct("Receiver")
            .field("value", &state.value)
            .field("version", &version)
            .field("seen", &self.seen)
            .finish()
    }
}

/// A sender and a receiver that has seen `init`.
pub fn channel<T>(init: T) -> (Sender<T>, Receiver<T>) {
    let tx = Sender::new(init);
    let rx = tx.subscribe();
    assert_eq!(rx.seen, 0);
    (tx, rx)
}

impl<T> Sender<T> {
    /// A channel holding `init`, with no receiver yet (see `subscribe`).
    pub fn new(init: T) -> Sender<T> {
        let state = State { value: init, version: 0, closed: false };
        let shared = Shared {
            state: Mutex::new(state),
            notify: Notify::new(),
            senders: AtomicUsize::new(1),
        };
        Sender { shared: Arc::new(shared) }
    }

    /// Stores `value` and wakes every receiver. Unlike `watch::Sender::send` it stores the value
    /// even with no receiver left: a later `subscribe` sees it.
    pub fn send(&self, value: T) {
        self.send_replace(value);
    }

    /// Stores `value`, wakes every receiver and returns the value it replaced.
    pub fn send_replace(&self, value: T) -> T {
        let mut old = None;
        self.send_modify(|current| old = Some(std::mem::replace(current, value)));
        old.expect("send_modify runs its closure")
    }

    /// Changes the value in place and wakes every receiver.
    pub fn send_modify(&self, modify: impl FnOnce(&mut T)) {
        {
            let mut state = self.shared.lock();
            assert!(!state.closed, "a live sender means the channel is open");
            modify(&mut state.value);
            state.version += 1;
        }
        // Outside the lock: the woken receivers take it.
        self.shared.notify.notify_waiters();
    }

    /// The current value.
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref { guard: self.shared.lock() }
    }

    /// A new receiver that has seen the current value.
    pub fn subscribe(&self) -> Receiver<T> {
        let seen = self.shared.lock().version;
        Receiver { shared: self.shared.clone(), seen }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        let before = self.shared.senders.fetch_add(1, Ordering::AcqRel);
        assert!(before > 0, "cloned from a live sender");
        Sender { shared: self.shared.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let before = self.shared.senders.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "one drop per sender");
        if before == 1 {
            self.shared.lock().closed = true;
            self.shared.notify.notify_waiters();
        }
    }
}

impl<T> Receiver<T> {
    /// The current value, without marking it seen.
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref { guard: self.shared.lock() }
    }

    /// The current value, marked seen.
    pub fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let guard = self.shared.lock();
        assert!(self.seen <= guard.version, "a receiver never sees past the version");
        self.seen = guard.version;
        Ref { guard }
    }

    /// Waits until the value changes after the version this receiver last saw, and marks the new
    /// one seen; `Err(Closed)` once every sender is gone and no change is left unseen.
    /// Cancel-safe: dropped before it resolves, it marks nothing seen.
    pub async fn changed(&mut self) -> Result<(), Closed> {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            // Registered first: a send after the check below wakes this waiter.
            notified.as_mut().enable();
            {
                let state = self.shared.lock();
                assert!(self.seen <= state.version, "a receiver never sees past the version");
                if state.version != self.seen {
                    self.seen = state.version;
                    return Ok(());
                }
                if state.closed {
                    return Err(Closed);
                }
            }
            notified.await;
        }
    }
}

impl<T> Clone for Receiver<T> {
    /// A receiver that has seen what this one has.
    fn clone(&self) -> Receiver<T> {
        Receiver { shared: self.shared.clone(), seen: self.seen }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changed_sees_each_send_once() {
        let (tx, mut rx) = channel(0u64);
        tx.send_modify(|n| *n += 1);
        assert_eq!(rx.changed().await, Ok(()));
        assert_eq!(*rx.borrow(), 1);
        // Nothing new: changed must wait (checked with a zero-time poll).
        let pending = tokio::time::timeout(std::time::Duration::ZERO, rx.changed()).await;
        assert!(pending.is_err(), "no change is left unseen");
        assert_eq!(tx.send_replace(5), 1);
        let mut late = tx.subscribe();
        assert_eq!(rx.changed().await, Ok(()));
        assert_eq!(*rx.borrow_and_update(), 5);
        let pending = tokio::time::timeout(std::time::Duration::ZERO, late.changed()).await;
        assert!(pending.is_err(), "subscribe marks the current value seen");
    }

    #[tokio::test]
    async fn closing_delivers_unseen_changes_first() {
        let (tx, mut rx) = channel(false);
        let mut other = rx.clone();
        tx.send(true);
        drop(tx);
        assert_eq!(rx.changed().await, Ok(()));
        assert!(*rx.borrow());
        assert_eq!(rx.changed().await, Err(Closed));
        assert_eq!(other.changed().await, Ok(()));
        assert_eq!(other.changed().await, Err(Closed));
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_send_and_by_close() {
        let (tx, mut rx) = channel(0u32);
        let mut rx2 = rx.clone();
        let waiter = tokio::spawn(async move { rx.changed().await });
        let waiter2 = tokio::spawn(async move {
            let first = rx2.changed().await;
            let second = rx2.changed().await;
            (first, second)
        });
        tokio::task::yield_now().await;
        tx.send(7);
        assert_eq!(waiter.await.expect("no panic"), Ok(()));
        drop(tx);
        assert_eq!(waiter2.await.expect("no panic"), (Ok(()), Err(Closed)));
    }
}
