//! Giving memory freed in a burst back to the OS while the server is idle (issues 14 and 16:
//! RSS after a restart no higher than before it; memory given back after a snapshot).
//!
//! The server binary allocates with mimalloc (v3, `main.rs`). mimalloc returns freed pages to
//! the OS ("purges" them) only `purge_delay` (1 s) after they were freed, and only when some
//! allocator event visits its arenas afterwards: a page of a thread's heap freed, every
//! 10,000th slow-path allocation, or a thread's exit (`mi_theap_collect_ex` in its
//! `theap.c`). A busy server meets such events all the time; an idle one may meet none, so the
//! transient memory of a restart (the txn log files read whole, the log's records copied and
//! then decoded, the pieces of the snapshot, the tree check's tables) stayed resident after it:
//! 380-403 MiB 3 s after a restart against 354-359 after the million-znode load (run 13 and
//! this change's measurements in docs/PERFORMANCE.md). `mi_collect` would do it at once, but
//! it is only reachable through `unsafe` FFI, which the workspace forbids.
//!
//! So after such a burst the server calls [`give_back_freed_memory_soon`]: a thread that sleeps
//! past the purge delay and exits, and its exit is the event that purges what the burst freed.
//! One such thread at a time: a call while one waits pushes its wake-up later. With another
//! allocator the thread does nothing but sleep; nothing depends on it for correctness.

#[cfg(not(madsim))]
use std::sync::Mutex;
#[cfg(not(madsim))]
use std::time::{Duration, Instant};

/// How long after the last call the waiting thread exits: mimalloc's default `purge_delay`
/// (1,000 ms; `arena_purge_mult` 1) and a margin for a loaded machine's scheduling.
#[cfg(not(madsim))]
pub const PURGE_AFTER: Duration = Duration::from_millis(1_500);

/// When the waiting thread should exit; `None` while no thread waits.
#[cfg(not(madsim))]
static EXIT_AT: Mutex<Option<Instant>> = Mutex::new(None);

/// Makes the allocator give back, about [`PURGE_AFTER`] from now, the memory freed until now
/// (see the module doc). Cheap: at most one thread waits, and a call while it waits only moves
/// its exit later.
#[cfg(not(madsim))]
pub fn give_back_freed_memory_soon() {
    let mut exit_at = EXIT_AT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let waiting = exit_at.is_some();
    *exit_at = Some(Instant::now() + PURGE_AFTER);
    if waiting {
        return;
    }
    let spawned = std::thread::Builder::new().name("zkr-memtrim".into()).spawn(wait_then_exit);
    if let Err(e) = spawned {
        // Not fatal: the memory is given back at the next allocator event instead.
        tracing::debug!("cannot start the memory trim thread: {e}");
        *exit_at = None;
    }
}

/// The trim thread: sleeps until the latest exit time asked for, then returns (the thread's
/// exit is the allocator event). Clears `EXIT_AT` under the lock as it decides to exit, so a
/// call after that starts a new thread.
#[cfg(not(madsim))]
fn wait_then_exit() {
    loop {
        let sleep = {
            let mut exit_at = EXIT_AT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let at = exit_at.expect("a time is set while the thread waits");
            let now = Instant::now();
            if now >= at {
                *exit_at = None;
                return;
            }
            at - now
        };
        std::thread::sleep(sleep);
    }
}

/// Under madsim (tier 2 of `sim`) there are no threads and no mimalloc: nothing to do.
#[cfg(madsim)]
pub fn give_back_freed_memory_soon() {}
