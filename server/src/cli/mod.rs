//! `zkr-cli`, a command-line client with zkCli.sh's commands, flags and output, so scripts
//! written for zkCli.sh run unchanged and can also trust the exit code (zkCli.sh's is 0 for
//! many failures in interactive mode).
//!
//! - [`session`]: one session over a blocking socket (reader and pinger threads);
//! - [`command`]: tokenising, flags, and each command against the session;
//! - [`format`]: what zkCli prints (Stat block, dates, ACLs, events, error texts).
//!
//! The binary (`src/bin/zkr-cli.rs`) adds argument parsing and the rustyline shell.

pub mod command;
pub mod format;
pub mod session;
