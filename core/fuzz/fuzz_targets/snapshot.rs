//! A snapshot body: the fuzzer's bytes are sealed with a valid checksum first, so that every
//! structural check is reached (a checksum alone would reject nearly all inputs). Whatever
//! decodes must hold the tree's invariants and re-encode to the same bytes.
#![no_main]

#[path = "../checks.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| checks::snapshot(body));
