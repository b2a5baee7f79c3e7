//! End-to-end test harness for `zkr-server`.
//!
//! Every test in `tests/tests/*.rs` starts its own server through [`TestServer`] and talks to it
//! over loopback TCP only (127.0.0.1). The server is chosen by the environment variable
//! `ZKR_E2E_TARGET`:
//!
//! - `zkr` (default): spawns our binary (`ZKR_SERVER_BIN`, else `$CARGO_TARGET_DIR/debug/
//!   zkr-server`, else `<workspace>/target/debug/zkr-server`) on a free port, in a fresh temp
//!   dir, with a generated `zoo.cfg`, and waits for `ruok` → `imok`.
//! - `apache`: the real Apache ZooKeeper 3.8 via `/work/shared/tools/apache-zookeeper` (or
//!   `ZKR_APACHE_TOOL`), so that every test can be checked against the reference server.
//!
//! Invariants the harness keeps:
//! - every wait is bounded in time ([`within`], [`wait_until`], the `ruok` poll), and the bounds
//!   are generous (a loaded 2-core machine running debug builds);
//! - a server is stopped when its [`TestServer`] drops (SIGTERM, then SIGKILL; for Apache the
//!   tool's `stop`), and when the test is panicking the server's log tail is printed first;
//! - only processes the harness started are signalled, by pid.
//!
//! Running (from the workspace root):
//!
//! ```text
//! bash tests/setup.sh                                  # zkCli.sh (apt) + kazoo venv, idempotent
//! cargo build -p zkr-server && cargo test -p zkr-tests # against our server
//! ZKR_E2E_TARGET=apache cargo test -p zkr-tests        # against Apache ZooKeeper 3.8
//! ```
//!
//! Version differences are asserted per target: where Apache 3.8 and 3.9 differ we expect 3.9
//! from zkr (watch event zxids, Stat of create inside multi, exists needing READ) and check the
//! 3.8 behaviour, or nothing, against Apache.
//!
//! Modules: [`server`] (targets, start/stop/kill -9/restart), [`fourlw`] (four-letter words),
//! [`client`] (zookeeper-client helpers and bounded waits), [`tools`] (kazoo venv, zkCli.sh, and
//! the skip-or-fail rule for missing external tools), [`raw`] (a hand-written wire client).

pub mod client;
pub mod diffgen;
pub mod ensemble;
pub mod fourlw;
pub mod normalise;
pub mod raw;
pub mod server;
pub mod tools;
pub mod wire;

pub use client::{connect, connect_with, op, op_err, unique_path, wait_until, within};
pub use server::{ServerOptions, Target, TestServer};
