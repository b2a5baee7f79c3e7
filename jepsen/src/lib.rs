//! `zkr-jepsen`: a history format and a checker for ZooKeeper's guarantees.
//!
//! ```text
//!  simulator / real run / other tool
//!        │ records Events (invoke, ok, fail, info, watch event) as JSON lines
//!        ▼
//!  history::History ──▶ check::check(&History, &Options) ──▶ Verdict
//!                                                              │
//!                       report::text / report::html ◀──────────┘ (failing window)
//! ```
//!
//! What is checked is ZooKeeper's contract, not a stronger one: writes are linearizable; a
//! session's ops take effect in the order it issued them; reads may be stale but never go back
//! within a session, even across servers; a read after `sync` sees every write completed
//! before the sync began; a watch event reaches the client before the data it announces.
//!
//! How: the zxids and versions replies carry order the writes, so most histories are checked
//! along one forced path in near-linear time ([`check`]); only where that order leaves freedom
//! (indeterminate ops, replies without zxids) does the memoised Wing–Gong–Lowe search branch,
//! and it runs per key group, an independent set of paths (P-compositionality).
//!
//! Module map: [`history`] (the format), [`model`] (the sequential spec), [`check`] (zxid
//! checks, key groups, the search, watches, diagnosis), [`report`] (text and HTML),
//! [`generate`] (histories of a correct ZooKeeper, for tests and the benchmark).

#![deny(missing_docs)]

pub mod check;
pub mod generate;
pub mod history;
pub mod model;
pub mod record;
pub mod report;
pub mod run;

pub use check::{Cause, Explanation, Guarantee, Options, Validity, Verdict, Violation, check};
pub use history::{Event, F, History, HistoryError, Kind};
