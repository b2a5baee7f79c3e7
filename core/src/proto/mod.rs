//! The ZooKeeper wire codec, sans-IO: bytes in, typed records out, and back.
//!
//! - [`jute`]: primitives (int, long, bool, buffer, ustring, vector) with length limits;
//! - [`frame`]: 4-byte length-prefixed framing, incremental, with a max frame size;
//! - [`client`]: handshake, headers, opcodes, `Request`/`Response` model;
//! - [`codec`]: encoding and decoding of the client records;
//! - [`txn`]: jute encoding of `LoggedTxn` (ZooKeeper's `TxnHeader` + txn records);
//! - [`error`]: `ZkError` codes and `DecodeError`.
//!
//! Decoding untrusted bytes never panics and never allocates more than the input could hold.

pub mod client;
pub mod codec;
pub mod error;
pub mod frame;
pub mod jute;
pub mod peer;
pub mod txn;
