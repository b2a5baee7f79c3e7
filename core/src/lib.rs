//! `zkr-core`: a sans-IO ZooKeeper-compatible server state machine.
//!
//! ```text
//!            ┌──────────────────────── Node ─────────────────────────┐
//!  Input ──▶ │ serve (per-connection pipeline, FIFO per session)     │ ──▶ Output
//!  Tick      │   │ reads ─────────────▶ tree (DataTree) ──▶ replies  │     ClientSend
//!  Client*   │   │ writes ─▶ prep ─▶ Txn ─▶ Persist ──┐              │     ClientClose
//!  Persisted │   │                                   ▼              │     Persist
//!            │   │          Persisted ─▶ commit ─▶ apply ─▶ watches │
//!            │ sessions (expiry in ticks) ─▶ CloseSession txns      │
//!            └────────────────────────────────────────────────────────┘
//! ```
//!
//! The core owns no sockets, files, clocks, threads or OS randomness. Time arrives as
//! `Input::Tick` (and as the clock reading each `ClientFrame`/`PeerMessage` carries, which
//! stamps znode times), bytes as `Input::ClientFrame`, durability as `Input::Persisted`;
//! everything the world must do leaves as an `Output` (see [`io`]). A write goes proposal →
//! persist → durable → commit → apply, with a quorum of one in standalone mode, so that Zab
//! slots in without reshaping the boundary.
//!
//! Module map:
//! - [`types`], [`txn`], [`config`], [`io`]: vocabulary and the boundary;
//! - [`proto`]: the ZooKeeper wire codec (jute, framing, client records, txn records);
//! - [`tree`]: the data tree, Stat, paths, ACLs, quotas; [`prep`]: request → txn with
//!   ZooKeeper's error precedence; [`snapshot`]: tree + sessions to bytes and back;
//! - [`session`]: session table and tick-based expiry; [`watch`]: watch tables and triggers;
//! - [`serve`]: per-connection pipeline (handshake, FIFO per session, local reads);
//!   [`sasl`]: SASL DIGEST-MD5 and the enforce-auth gate;
//! - [`node`]: the `Node` that ties them together: recovery, `step`, invariants. A `Node` is
//!   `shared` (the state every role works on, and the apply path: commit → apply → watches →
//!   replies) plus its [`zab::Role`], whose handlers borrow the shared state; `dispatch` picks
//!   the role for each input and replaces it (see docs/ARCHITECTURE.md, "Node = Shared + Role").

#![deny(missing_docs)]

pub mod config;
mod conn;
mod dispatch;
pub mod io;
pub mod node;
pub mod prep;
pub mod proto;
mod read;
mod reply;
pub mod sasl;
mod serve;
pub mod session;
mod shared;
pub mod snapshot;
pub mod tree;
pub mod txn;
pub mod types;
pub mod watch;
pub mod zab;

pub use config::Config;
pub use io::{Input, Output};
pub use node::{Node, NodeInit};
