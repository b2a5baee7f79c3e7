//! A txn-log record's payload (header and txn, multi included), as recovery and followers read
//! it: no panic, and what decodes round-trips.
#![no_main]

#[path = "../checks.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| checks::txn(data));
