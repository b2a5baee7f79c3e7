//! Robustness of the decoders against untrusted bytes: arbitrary input, valid encodings with
//! random mutations and truncations, and frames split at random points. Every decoder must return
//! (never panic), strict prefixes of valid records must be rejected, and decoding must be stable
//! (what decodes re-encodes to something that decodes to the same value).

mod proto_support;

use proptest::collection::vec;
use proptest::prelude::*;
use proto_support as s;
use zkr_core::proto::client::{OpCode, ReplyHeader, RequestHeader};
use zkr_core::proto::codec;
use zkr_core::proto::error::DecodeError;
use zkr_core::proto::frame::{Frame, FrameDecoder, FrameError, frame};
use zkr_core::proto::jute::Reader;
use zkr_core::proto::txn::{decode_txn, encode_txn};

/// One change applied to a valid encoding.
#[derive(Clone, Debug)]
enum Mutation {
    Truncate(usize),
    Xor(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    /// Overwrite 4 bytes with an interesting int (lengths, counts, opcodes).
    SetI32(usize, i32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        Just(-1),
        Just(-2),
        Just(0),
        Just(1),
        Just(i32::MAX),
        Just(i32::MIN),
        Just(0x0010_0000),
        any::<i32>()
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Xor(i, x)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), interesting).prop_map(|(i, v)| Mutation::SetI32(i, v)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let n = bytes.len();
        match *m {
            Mutation::Truncate(i) => bytes.truncate(i % (n + 1)),
            Mutation::Xor(i, x) if n > 0 => bytes[i % n] ^= x,
            Mutation::Insert(i, b) => bytes.insert(i % (n + 1), b),
            Mutation::Remove(i) if n > 0 => {
                bytes.remove(i % n);
            }
            Mutation::SetI32(i, v) if n >= 4 => {
                let at = i % (n - 3);
                bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
            _ => {}
        }
    }
    bytes
}

/// Decodes a request payload; if it decodes, checks that re-encoding is stable.
fn check_request_payload(payload: &[u8]) {
    let Ok((header, body)) = codec::decode_request(payload) else {
        assert!(payload.len() < 8, "only a short header may fail the whole frame");
        return;
    };
    if let Ok(req) = body {
        let framed = codec::encode_request(&header, &req);
        let again = codec::decode_request(s::unframe(&framed)).unwrap();
        assert_eq!(again, (header, Ok(req)));
    }
}

/// Feeds a payload to every client-side decoder (every op) and the connect decoders.
fn check_all_decoders(payload: &[u8]) {
    check_request_payload(payload);
    if let Ok(req) = codec::decode_connect_request(payload) {
        let framed = codec::encode_connect_request(&req);
        assert_eq!(codec::decode_connect_request(s::unframe(&framed)), Ok(req));
    }
    let _ = codec::decode_connect_response(payload);
    for op in OpCode::ALL {
        let mut r = Reader::new(payload);
        if let Ok(resp) = codec::decode_response(op, &mut r) {
            let consumed = r.position();
            let framed = codec::encode_reply(&ReplyHeader { xid: 1, zxid: 1, err: 0 }, Some(&resp));
            let mut again = Reader::new(&s::unframe(&framed)[16..]);
            assert_eq!(codec::decode_response(op, &mut again).as_ref(), Ok(&resp));
            assert!(consumed <= payload.len());
        }
    }
    let mut r = Reader::new(payload);
    let _ = codec::decode_reply_header(&mut r).and_then(|_| codec::decode_watcher_event(&mut r));
    if let Ok(t) = decode_txn(payload) {
        assert_eq!(decode_txn(&encode_txn(&t)), Ok(t));
    }
}

/// Splits `bytes` into chunks at the given cut points.
fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
}

/// Pushes the chunks one by one, draining frames after each; stops at the first error.
fn run_decoder(max: usize, pieces: &[Vec<u8>]) -> (Vec<Frame>, Option<FrameError>) {
    let mut d = FrameDecoder::new(max);
    let mut frames = Vec::new();
    for piece in pieces {
        d.push(piece);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(d.next_frame(), Err(e), "a failed decoder stays failed");
                    return (frames, Some(e));
                }
            }
        }
    }
    (frames, None)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        check_all_decoders(&bytes);
    }

    #[test]
    fn arbitrary_request_bodies_never_panic(
        op in prop_oneof![proptest::sample::select(OpCode::ALL.to_vec()).prop_map(|o| o.code()),
                          any::<i32>()],
        body in vec(any::<u8>(), 0..120),
    ) {
        let mut payload = RequestHeader { xid: 3, op }.xid.to_be_bytes().to_vec();
        payload.extend_from_slice(&op.to_be_bytes());
        payload.extend_from_slice(&body);
        check_request_payload(&payload);
    }

    #[test]
    fn mutated_requests_never_panic(req in s::request(), ms in vec(mutation(), 1..4)) {
        let framed = codec::encode_request(&codec::request_header(7, &req), &req);
        check_all_decoders(&mutate(s::unframe(&framed).to_vec(), &ms));
    }

    #[test]
    fn mutated_responses_never_panic((_op, resp) in s::response(), ms in vec(mutation(), 1..4)) {
        let framed = codec::encode_reply(&ReplyHeader { xid: 1, zxid: 2, err: 0 }, Some(&resp));
        check_all_decoders(&mutate(s::unframe(&framed)[16..].to_vec(), &ms));
    }

    #[test]
    fn mutated_txns_never_panic(t in s::logged_txn(), ms in vec(mutation(), 1..4)) {
        check_all_decoders(&mutate(encode_txn(&t), &ms));
    }

    #[test]
    fn mutated_connect_requests_never_panic(c in s::connect_request(), ms in vec(mutation(), 1..4))
    {
        let framed = codec::encode_connect_request(&c);
        check_all_decoders(&mutate(s::unframe(&framed).to_vec(), &ms));
    }

    #[test]
    fn strict_prefixes_of_requests_are_rejected(req in s::request(), cut in any::<usize>()) {
        let framed = codec::encode_request(&codec::request_header(7, &req), &req);
        let payload = s::unframe(&framed);
        let prefix = &payload[..cut % payload.len()];
        match codec::decode_request(prefix) {
            Err(_) => prop_assert!(prefix.len() < 8),
            Ok((_, body)) => prop_assert!(body.is_err(), "prefix {} of {:?}", prefix.len(), req),
        }
    }

    #[test]
    fn strict_prefixes_of_responses_are_rejected((op, resp) in s::response(), cut in 0usize..4096) {
        let framed = codec::encode_reply(&ReplyHeader { xid: 1, zxid: 2, err: 0 }, Some(&resp));
        let body = &s::unframe(&framed)[16..];
        if body.is_empty() {
            return Ok(()); // A bodiless reply has no strict prefix.
        }
        let prefix = &body[..cut % body.len()];
        let decoded = codec::decode_response(op, &mut Reader::new(prefix));
        prop_assert!(decoded.is_err(), "prefix {} of {:?} decoded", prefix.len(), resp);
    }

    #[test]
    fn strict_prefixes_of_txns_are_rejected(t in s::logged_txn(), cut in any::<usize>()) {
        let bytes = encode_txn(&t);
        let prefix = &bytes[..cut % bytes.len()];
        prop_assert!(decode_txn(prefix).is_err());
    }

    #[test]
    fn frames_survive_any_chunking(
        payloads in vec(vec(any::<u8>(), 0..40), 0..8),
        cuts in vec(any::<usize>(), 0..12),
    ) {
        let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
        let (frames, err) = run_decoder(64, &chunks(&stream, &cuts));
        prop_assert_eq!(err, None);
        let expected: Vec<Frame> = payloads.into_iter().map(Frame::Payload).collect();
        prop_assert_eq!(frames, expected);
    }

    #[test]
    fn arbitrary_streams_decode_the_same_under_any_chunking(
        stream in vec(any::<u8>(), 0..300),
        cuts in vec(any::<usize>(), 0..20),
        max in 0usize..100,
    ) {
        let whole = run_decoder(max, std::slice::from_ref(&stream));
        let chunked = run_decoder(max, &chunks(&stream, &cuts));
        prop_assert_eq!(whole, chunked);
    }

    #[test]
    fn huge_frame_lengths_are_rejected_at_once(len in prop_oneof![
        (1_048_576i32..=i32::MAX), (i32::MIN..0)
    ]) {
        let mut d = FrameDecoder::new(1_048_575);
        // A normal first frame, so that the length is not taken for a four-letter word.
        d.push(&frame(b"x"));
        prop_assert_eq!(d.next_frame(), Ok(Some(Frame::Payload(b"x".to_vec()))));
        d.push(&len.to_be_bytes());
        prop_assert_eq!(d.next_frame(), Err(FrameError::BadLength(len.into())));
        prop_assert!(d.buffered() <= 4);
    }
}

#[test]
fn huge_length_fields_fail_without_waiting_for_data() {
    // A createRequest whose data buffer claims i32::MAX bytes, and one whose ACL vector claims
    // i32::MAX entries: both fail on the spot (no allocation is sized from the field).
    for (offset_from_path, what) in [(0usize, "CreateRequest.data"), (4, "vector<ACL>")] {
        let req = zkr_core::proto::client::Request::Create {
            op: OpCode::Create,
            path: "/a".into(),
            data: Some(vec![]),
            acl: vec![],
            flags: 0,
            ttl: -1,
        };
        let framed = codec::encode_request(&codec::request_header(1, &req), &req);
        let mut payload = s::unframe(&framed).to_vec();
        let at = 8 + 4 + 2 + offset_from_path;
        payload[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        let (_, body) = codec::decode_request(&payload).unwrap();
        assert_eq!(body, Err(codec::BodyError::Malformed(DecodeError::Truncated { what })));
    }
}

#[test]
fn many_small_frames_are_decoded_in_linear_time() {
    // 200k frames pushed in one go: a decoder that shifted its buffer per frame would take
    // about 10^11 byte moves here and time out; the lazy compaction takes milliseconds.
    let one = frame(&[7u8; 8]);
    let stream: Vec<u8> = (0..200_000).flat_map(|_| one.iter().copied()).collect();
    let mut d = FrameDecoder::new(100);
    d.push(&stream);
    let mut n = 0;
    while let Some(f) = d.next_frame().unwrap() {
        assert_eq!(f, Frame::Payload(vec![7u8; 8]));
        n += 1;
        if n % 1000 == 0 {
            d.push(&[]);
        }
    }
    assert_eq!(n, 200_000);
    assert_eq!(d.buffered(), 0);
}
