//! What each fuzz target checks, shared by the libFuzzer targets (`fuzz_targets/*.rs`, the long
//! form: `bash tests/fuzz.sh`) and by `core/tests/fuzz_targets.rs`, which runs the same checks
//! in CI over generated and mutated valid encodings (the short form). Each check takes untrusted
//! bytes, must never panic on them, and asserts that whatever decodes re-encodes to something
//! that decodes the same.

use zkr_core::proto::codec;
use zkr_core::proto::frame::{Frame, FrameDecoder};
use zkr_core::proto::peer::{decode_peer_message, encode_peer_message};
use zkr_core::proto::txn::{decode_txn, encode_txn};
use zkr_core::snapshot;
use zkr_core::tree::digest::Fnv64;

/// The payload of a length-prefixed frame written by an encoder.
fn unframe(framed: &[u8]) -> &[u8] {
    &framed[4..]
}

fn check_connect(payload: &[u8]) {
    if let Ok(req) = codec::decode_connect_request(payload) {
        let framed = codec::encode_connect_request(&req);
        assert_eq!(codec::decode_connect_request(unframe(&framed)), Ok(req));
    }
}

fn check_request(payload: &[u8]) {
    let Ok((header, body)) = codec::decode_request(payload) else {
        assert!(payload.len() < 8, "only a short header may fail the whole frame");
        return;
    };
    if let Ok(req) = body {
        let framed = codec::encode_request(&header, &req);
        let again = codec::decode_request(unframe(&framed)).expect("re-encoded request");
        assert_eq!(again, (header, Ok(req)));
    }
}

/// A client connection's byte stream: the first byte chooses where the rest is split in two
/// pieces for the frame decoder; the first frame is a ConnectRequest, every later one a request
/// of any opcode, as the server reads them. The whole rest is also tried as a bare request.
pub fn client_frames(data: &[u8]) {
    let Some((&cut, stream)) = data.split_first() else { return };
    let cut = usize::from(cut).min(stream.len());
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut first = true;
    for piece in [&stream[..cut], &stream[cut..]] {
        decoder.push(piece);
        while let Ok(Some(frame)) = decoder.next_frame() {
            if let Frame::Payload(payload) = frame {
                if first {
                    check_connect(&payload);
                } else {
                    check_request(&payload);
                }
                first = false;
            }
        }
    }
    check_request(stream);
}

/// A quorum peer's message (election notification, handshake, broadcast).
pub fn peer_message(data: &[u8]) {
    if let Ok(msg) = decode_peer_message(data) {
        let again = decode_peer_message(&encode_peer_message(&msg));
        assert_eq!(again.as_ref(), Ok(&msg));
    }
}

/// A txn-log record's payload (header and txn, multi included), as recovery and followers
/// read it.
pub fn txn(data: &[u8]) {
    if let Ok(t) = decode_txn(data) {
        assert_eq!(decode_txn(&encode_txn(&t)), Ok(t));
    }
}

/// A snapshot body: sealed with a valid checksum first, so that every structural check is
/// reached (a checksum alone would reject nearly all inputs). Whatever decodes (the decoder
/// checks the tree's invariants) must re-encode to the same bytes.
pub fn snapshot(body: &[u8]) {
    let sealed = seal(body);
    if let Ok(snap) = snapshot::decode(&sealed) {
        assert_eq!(snapshot::encode(&snap.tree, &snap.sessions), sealed);
    }
}

/// `body` followed by its checksum, as a snapshot file ends.
pub fn seal(body: &[u8]) -> Vec<u8> {
    let mut h = Fnv64::default();
    h.bytes(body);
    let mut sealed = body.to_vec();
    sealed.extend_from_slice(&h.finish().to_be_bytes());
    sealed
}
