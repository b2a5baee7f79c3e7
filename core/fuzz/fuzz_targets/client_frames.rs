//! A client connection's byte stream: the frame decoder (split at a fuzzer-chosen point), the
//! ConnectRequest as the first frame and a request of any opcode in every later one, as the
//! server reads them. Whatever decodes must re-encode to something that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zkr_core::proto::codec;
use zkr_core::proto::frame::{Frame, FrameDecoder};

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

fuzz_target!(|data: &[u8]| {
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
    // Every frame is also tried as a bare request, whatever its position.
    check_request(stream);
});
