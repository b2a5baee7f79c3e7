//! Session FIFO: a server answers a session's requests in the order they were sent.
//!
//! Source: ZooKeeper's "Sequential Consistency" guarantee and its client library, which matches
//! replies to requests by position (a reply whose xid is not the oldest outstanding one is a
//! protocol error that drops the connection: `ClientCnxn.readResponse`, "Xid out of order").
//! The history checker sees order too, but only of what was recorded; this check fires at the
//! reply itself.

use super::Violation;

/// Checks a reply's xid against the oldest outstanding request of the session.
pub fn check(client: usize, expected: Option<i32>, got: i32, now: u64) -> Option<Violation> {
    (expected != Some(got)).then(|| Violation {
        invariant: "session_fifo",
        at_ns: now,
        message: format!("client {client} got the reply to xid {got}, expected {expected:?}"),
    })
}
