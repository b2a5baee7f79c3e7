//! What a server takes from its environment besides its configuration: the disk, the clock, the
//! seed of its randomness, and an optional observer. `ServerEnv::production()` is the real machine;
//! tier 2 of `sim` passes a skewable clock, a seed drawn from the run's seed and an observer
//! that checks invariants after every step.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zkr_core::Node;

/// The server's clock: wall time for znode timestamps and the core's ticks, and how long a
/// local duration takes in the time the runtime sleeps by (they differ under simulated drift).
pub trait Clock: Send + Sync + fmt::Debug {
    /// Wall time, ms since the Unix epoch.
    fn wall_ms(&self) -> i64;
    /// How long the runtime must sleep for `local` to pass on this clock.
    fn runtime_duration(&self, local: Duration) -> Duration {
        local
    }
}

/// The machine's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn wall_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

/// Sees the node after every step of the driver (after its outputs are carried out). Tier 2 of
/// `sim` checks its invariants here; production has none.
pub trait Observer: Send + Sync {
    /// Called by the driver after each batch of inputs and the outputs it produced.
    fn stepped(&self, node: &Node);
}

/// The environment a server runs in.
#[derive(Clone)]
pub struct ServerEnv {
    /// Where the data and log directories live.
    pub fs: Arc<dyn crate::fs::Fs>,
    /// Wall time and tick pacing.
    pub clock: Arc<dyn Clock>,
    /// Seeds the node's randomness (session ids, election jitter) and the snapshot threshold.
    pub seed: u64,
    /// Checks after each step (simulation only).
    pub observer: Option<Arc<dyn Observer>>,
    /// Deliberate storage bugs (simulation tests only; refused without the `bugs` feature).
    pub bugs: crate::bugs::ShellBugs,
    /// Each change cuts every quorum connection of this server mid-stream (simulation only:
    /// madsim's network never breaks a connection by itself).
    pub cuts: Option<crate::signal::Receiver<u64>>,
}

impl fmt::Debug for ServerEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerEnv")
            .field("fs", &self.fs)
            .field("clock", &self.clock)
            .field("seed", &self.seed)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl ServerEnv {
    /// The real machine: the OS file system, the wall clock, a random seed, no observer.
    pub fn production() -> ServerEnv {
        ServerEnv {
            fs: Arc::new(crate::fs::OsFs),
            clock: Arc::new(WallClock),
            seed: rand::random(),
            observer: None,
            bugs: Default::default(),
            cuts: None,
        }
    }
}

/// Runs `work` on tokio's blocking pool, off the async workers. Under madsim, which has no
/// threads, it runs as a task of its own (still after the caller returns).
pub fn spawn_blocking<F: FnOnce() + Send + 'static>(work: F) {
    #[cfg(not(madsim))]
    drop(tokio::task::spawn_blocking(work));
    #[cfg(madsim)]
    drop(tokio::spawn(async move { work() }));
}
