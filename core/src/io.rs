//! The whole sans-IO boundary: every `Input` the shell feeds a `Node`, and every `Output` it must
//! carry out. Nothing else crosses between `core` and the world.
//!
//! Ordering contract (the shell's side):
//! - Outputs are carried out in the order `take_outputs()` returns them, per destination: frames
//!   to one connection are written in order, and a `ClientClose` comes after that connection's
//!   earlier frames have been flushed.
//! - `Persist` outputs are appended to the txn log in order. The shell may batch any number of
//!   them into one fsync (group commit); once they are durable it reports
//!   `Input::Persisted { upto }` with the zxid of the last durable txn. It must never report a zxid
//!   that is not yet durable.
//!
//! - `PersistEpochs`, `TruncateLog` and `InstallSnapshot` are synchronous: the shell makes them
//!   durable before it carries out any later output (in particular before any later `PeerSend`),
//!   and appends that follow them in the output order go after them on disk. The core does not
//!   rely on earlier appends being durable when an epoch write is: it emits a new currentEpoch
//!   only after `Persisted` covered the txns the epoch is adopted over (ZOOKEEPER-4643), and the
//!   simulator's disk lets an epoch write overtake unsynced appends to prove it. The server
//!   syncs the earlier appends first anyway.
//! - `PeerSend` may be lost, delayed, duplicated or reordered; Zab stays safe under all of them
//!   (see `zab::message`).
//!
//! Durability contract (the core's side): no reply to a write, no watch event for it and no read
//! that shows it leaves the core before `Persisted` covers its zxid (in Zab: before a quorum has
//! acknowledged it durably: the leader counts its own durable copy like any voter's).
//!
//! The shell's side is carried out in one place, [`ready::Executor`]: every shell (the server's
//! driver, the simulator, the core's test harnesses) hands it `take_outputs()` and provides only
//! the primitive effects ([`ready::Effects`]); the executor orders them as this contract says.

pub mod ready;

use crate::snapshot::Snapshot;
use crate::txn::LoggedTxn;
use crate::types::{ConnId, ServerId, Zxid};
use crate::zab::message::ZabMessage;

/// Everything that can happen to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// One core tick (`Config::tick_ms`) has passed. `wall_ms` is the shell's wall clock in ms
    /// since the Unix epoch; it is used only for znode ctime/mtime and TTL/container ages, never
    /// for timeouts (those count ticks). The inputs that can start a write (`ClientFrame`,
    /// `PeerMessage`) carry a reading too, so that a txn is stamped with the time its request
    /// reached the node, to the millisecond, not with the last tick's (ZooKeeper stamps a txn
    /// with the leader's clock when it prepares it). Time is `now` passed in with each input, as
    /// sans-IO protocol libraries do; the core never reads a clock.
    Tick {
        /// Wall clock, ms since the Unix epoch.
        wall_ms: i64,
    },
    /// A client connected from `remote_ip` (used for `ip:` ACLs and `whoAmI`).
    ClientConnected {
        /// The shell's id for the connection.
        conn: ConnId,
        /// The peer's IP address as text (`127.0.0.1`, `::1`).
        remote_ip: String,
    },
    /// The client of a TLS connection presented a certificate that the shell verified against
    /// its trust store; `subject` is the certificate's subject DN in RFC 2253 form (as Java's
    /// `X500Principal.getName()`). Comes after `ClientConnected` and before any `ClientFrame`.
    ClientCertificate {
        /// The connection.
        conn: ConnId,
        /// The subject, e.g. `CN=client,O=zkr`.
        subject: String,
    },
    /// One frame payload from a client, without its 4-byte length prefix. The shell has already
    /// checked the length against `Config::max_frame_bytes` and answered four-letter words itself.
    ClientFrame {
        /// The connection.
        conn: ConnId,
        /// The payload.
        payload: Vec<u8>,
        /// The shell's wall clock when the frame arrived, ms since the Unix epoch.
        wall_ms: i64,
    },
    /// The client connection is gone (EOF, error, or after a `ClientClose`).
    ClientClosed {
        /// The connection.
        conn: ConnId,
    },
    /// Every `Persist` up to and including `upto` is durable on this server's disk.
    Persisted {
        /// The last durable zxid.
        upto: Zxid,
    },
    /// A message from another ensemble member.
    PeerMessage {
        /// The sender.
        from: ServerId,
        /// The message.
        msg: ZabMessage,
        /// The shell's wall clock when the message arrived, ms since the Unix epoch (a leader
        /// stamps a learner's forwarded write with it).
        wall_ms: i64,
    },
    /// The shell's connection to another ensemble member broke and could not be re-established
    /// at once (the peer's process is gone, or its host refuses connections). A learner that
    /// loses its leader this way goes back to election at once (ZooKeeper's follower treats a
    /// broken leader connection as a lost leader); a leader forgets the learner and steps down
    /// if it no longer has a quorum. A peer that is silent but still connected (paused,
    /// behind a stalled network) is not reported: the `syncLimit`/`initLimit` timeouts find it.
    /// Reporting a peer that is in fact alive is safe: it only costs a new election or a resync.
    PeerLost {
        /// The member whose connection is gone.
        peer: ServerId,
    },
    /// The answer to `Output::ReadLog { request, .. }`: the records of this server's txn log
    /// files after `after` up to `upto`, read on the storage thread, each checked as recovery
    /// checks it (crc, zxid order with no hole inside an epoch) and decoded to a txn whose zxid
    /// is the record's. `found_after`: the record with zxid `after` itself is in the files (or
    /// `after` is zero, the empty history). `txns: Err(reason)` when anything went wrong (a file
    /// gone, damage, more records than `max_txns`): the leader then sends a SNAP. A stale answer
    /// (the learner reconnected, the node stopped leading) is ignored.
    LogRead {
        /// The request this answers.
        request: u64,
        /// The record for the request's `after` was found.
        found_after: bool,
        /// The records in `(after, upto]`, oldest first, or why they could not be read.
        txns: Result<Vec<LoggedTxn>, String>,
    },
    /// Old txn log files were removed (autopurge): the files now hold records only from
    /// `oldest_on_disk` on, so a learner behind it can no longer be synced from them.
    LogTrimmed {
        /// The first zxid of the oldest log file left.
        oldest_on_disk: Zxid,
    },
}

/// Everything a node asks the shell to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Write one complete frame (4-byte length prefix included) to a client connection.
    ClientSend {
        /// The connection.
        conn: ConnId,
        /// The framed bytes.
        frame: Vec<u8>,
    },
    /// Flush what was sent to the connection, then close it. The shell answers with
    /// `Input::ClientClosed` once it is closed.
    ClientClose {
        /// The connection.
        conn: ConnId,
    },
    /// Append this txn to the txn log; report durability with `Input::Persisted`.
    Persist {
        /// The txn, with its header (shared with the node's in-memory log).
        txn: std::sync::Arc<LoggedTxn>,
    },
    /// Send a message to another ensemble member (best effort).
    PeerSend {
        /// The receiver.
        to: ServerId,
        /// The message.
        msg: ZabMessage,
    },
    /// Durably record the epochs (ZooKeeper's `acceptedEpoch` and `currentEpoch` files), before
    /// carrying out any later output.
    PersistEpochs {
        /// The accepted epoch.
        accepted_epoch: u32,
        /// The current epoch.
        current_epoch: u32,
    },
    /// Durably drop every logged txn after `after`, before carrying out any later output.
    TruncateLog {
        /// The last zxid to keep.
        after: Zxid,
    },
    /// Durably install this snapshot as the new state and start the log after it, before
    /// carrying out any later output. Older logged txns are no longer needed.
    InstallSnapshot {
        /// The leader's committed state.
        snapshot: Box<Snapshot>,
    },
    /// Read the txn log files' records with zxid in `(after, upto]` and answer with
    /// `Input::LogRead { request, .. }` (a leader syncing a learner that is behind its
    /// in-memory log: DIFF from disk instead of SNAP). Asynchronous and read-only: later outputs
    /// do not wait for it. The shell must read on its storage thread (never where it steps the
    /// node: the read is O(records)), after every append handed over before this output, with
    /// the same checks recovery applies (crc, zxid order, no hole); any failure, or more than
    /// `max_txns` records, is answered `Err`. A shell may also answer late, or not at all if
    /// the node stops meanwhile.
    ReadLog {
        /// Names the answer.
        request: u64,
        /// The learner's last zxid: records after it are wanted, and whether its own record
        /// exists is reported (`found_after`).
        after: Zxid,
        /// The last record wanted: the oldest zxid of the in-memory log when asked.
        upto: Zxid,
        /// More records than this is an error.
        max_txns: u64,
    },
}

// Inputs and outputs are moved by value, several times each (the node's output vector, the
// executor, the shell's queues), so their size is part of the cost of every event: a boxed
// `Forwarded::Write` keeps a `ZabMessage` small (it was 168 bytes, with a `Request` inline).
const _: () = assert!(std::mem::size_of::<ZabMessage>() <= 64, "box large ZabMessage variants");
const _: () = assert!(std::mem::size_of::<Output>() <= 72, "box large Output variants");
const _: () = assert!(std::mem::size_of::<Input>() <= 80, "box large Input variants");
