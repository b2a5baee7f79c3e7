//! Helpers around the `zookeeper-client` crate: connecting to a [`TestServer`] and bounding every
//! await in time, so that a server that never answers fails the test with a message naming the
//! operation instead of hanging the suite.

use std::future::Future;
use std::time::{Duration, Instant};

use zookeeper_client::{Acls, Client, Connector, CreateMode, CreateOptions};

use crate::server::TestServer;

/// Default bound for one client operation (generous: debug builds on a loaded 2-core box).
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// Awaits `fut` for at most `timeout`; panics naming `what` when it takes longer.
pub async fn within<F: Future>(timeout: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(timeout, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {timeout:?}: {what}"),
    }
}

/// Awaits a client operation within [`OP_TIMEOUT`] and unwraps it, naming `what` on failure.
pub async fn op<T, E: std::fmt::Debug>(what: &str, fut: impl Future<Output = Result<T, E>>) -> T {
    match within(OP_TIMEOUT, what, fut).await {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

/// Awaits a client operation within [`OP_TIMEOUT`] that must fail, and returns the error.
pub async fn op_err<T: std::fmt::Debug, E>(
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> E {
    match within(OP_TIMEOUT, what, fut).await {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

/// Polls `condition` every 50 ms until it returns true; panics naming `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if within(remaining.max(Duration::from_millis(1)), what, condition()).await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("condition not reached within {timeout:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Connects a new session with a 10 s session timeout.
pub async fn connect(server: &TestServer) -> Client {
    connect_with(server, Client::connector().with_session_timeout(Duration::from_secs(10))).await
}

/// Connects with a caller-configured [`Connector`] (session timeout, auth, detached, session).
pub async fn connect_with(server: &TestServer, connector: Connector) -> Client {
    let hosts = server.hosts();
    let what = format!("connect to {hosts}");
    op(&what, connector.connect(&hosts)).await
}

/// A path unique within this test process, e.g. `/e2e-<name>-<n>`: for tests that share a
/// server between several scenarios.
pub fn unique_path(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("/e2e-{name}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Persistent node, world:anyone ALL.
pub const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
/// Ephemeral node, world:anyone ALL.
pub const EPHEMERAL: CreateOptions<'static> = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
/// Persistent sequential node, world:anyone ALL.
pub const PERSISTENT_SEQ: CreateOptions<'static> =
    CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
/// Ephemeral sequential node, world:anyone ALL.
pub const EPHEMERAL_SEQ: CreateOptions<'static> =
    CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
/// Container node, world:anyone ALL.
pub const CONTAINER: CreateOptions<'static> = CreateMode::Container.with_acls(Acls::anyone_all());
