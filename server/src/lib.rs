//! `zkr-server`: the tokio shell that runs a `zkr_core::Node` against real sockets and disks.
pub mod config;
pub mod storage;
