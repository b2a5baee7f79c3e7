//! A snapshot body: the fuzzer's bytes are sealed with a valid checksum first, so that every
//! structural check is reached (a checksum alone would reject nearly all inputs). Whatever
//! decodes must hold the tree's invariants and re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zkr_core::snapshot::{decode, encode};
use zkr_core::tree::digest::Fnv64;

fuzz_target!(|body: &[u8]| {
    let mut h = Fnv64::default();
    h.bytes(body);
    let mut sealed = body.to_vec();
    sealed.extend_from_slice(&h.finish().to_be_bytes());
    if let Ok(snap) = decode(&sealed) {
        assert_eq!(encode(&snap.tree, &snap.sessions), sealed);
    }
});
