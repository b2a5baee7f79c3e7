//! A txn-log record's payload (header and txn, multi included), as recovery and followers read
//! it: no panic, and what decodes round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zkr_core::proto::txn::{decode_txn, encode_txn};

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = decode_txn(data) {
        assert_eq!(decode_txn(&encode_txn(&t)), Ok(t));
    }
});
