//! A quorum peer's message (election notification, handshake, broadcast): no panic, and what
//! decodes re-encodes to the same bytes' meaning.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zkr_core::proto::peer::{decode_peer_message, encode_peer_message};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode_peer_message(data) {
        let again = decode_peer_message(&encode_peer_message(&msg));
        assert_eq!(again.as_ref(), Ok(&msg));
    }
});
