//! A client connection's byte stream: the frame decoder (split at a fuzzer-chosen point), the
//! ConnectRequest as the first frame and a request of any opcode in every later one, as the
//! server reads them. Whatever decodes must re-encode to something that decodes the same.
#![no_main]

#[path = "../checks.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| checks::client_frames(data));
