//! A quorum peer's message (election notification, handshake, broadcast): no panic, and what
//! decodes re-encodes to the same bytes' meaning.
#![no_main]

#[path = "../checks.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| checks::peer_message(data));
