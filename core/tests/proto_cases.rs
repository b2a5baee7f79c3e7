//! Specific wire cases from the reference: null vs empty, multi rules, unknown ops, trailing
//! bytes, four-letter words only at connection start, the optional readOnly byte, txn edge cases.

mod proto_support;

use proto_support::unframe;
use zkr_core::proto::client::{
    ConnectRequest, MultiResult, OpCode, ReplyHeader, Request, RequestHeader, Response,
};
use zkr_core::proto::codec::{self, BodyError};
use zkr_core::proto::error::{DecodeError, ZkError};
use zkr_core::proto::frame::{Frame, FrameDecoder, FrameError, frame};
use zkr_core::proto::jute::{Reader, Writer};
use zkr_core::proto::txn::{decode_txn, encode_txn};
use zkr_core::txn::{CreateKind, LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, SessionId, Zxid};

fn header_bytes(xid: i32, op: i32) -> Writer {
    let mut w = Writer::new();
    w.write_i32(xid);
    w.write_i32(op);
    w
}

fn decode_body(payload: &[u8]) -> Result<Request, BodyError> {
    codec::decode_request(payload).expect("header readable").1
}

#[test]
fn null_and_empty_data_stay_distinct_through_requests_replies_and_txns() {
    for data in [None, Some(vec![])] {
        let req = Request::SetData { path: "/a".into(), data: data.clone(), version: -1 };
        let framed = codec::encode_request(&RequestHeader { xid: 1, op: 5 }, &req);
        assert_eq!(decode_body(unframe(&framed)), Ok(req));

        let resp = Response::GetData { data: data.clone(), stat: Default::default() };
        let framed = codec::encode_reply(&ReplyHeader { xid: 1, zxid: 1, err: 0 }, Some(&resp));
        let mut r = Reader::new(&unframe(&framed)[16..]);
        assert_eq!(codec::decode_response(OpCode::GetData, &mut r), Ok(resp));

        let t = LoggedTxn {
            header: TxnHeader { session_id: SessionId(1), cxid: 1, zxid: Zxid(1), time_ms: 0 },
            txn: Txn::SetData { path: "/a".into(), data, version: 1 },
        };
        assert_eq!(decode_txn(&encode_txn(&t)), Ok(t));
    }
}

#[test]
fn ustring_minus_one_is_none_and_null_path_reads_empty() {
    let mut w = Writer::new();
    w.write_ustring(None);
    w.write_ustring(Some(""));
    w.write_ustring(None);
    let bytes = w.into_inner();
    let mut r = Reader::new(&bytes);
    assert_eq!(r.read_ustring("a"), Ok(None));
    assert_eq!(r.read_ustring("b"), Ok(Some(String::new())));
    assert_eq!(r.read_string("c"), Ok(String::new()));
    assert_eq!(r.finish("t"), Ok(()));

    // ZooKeeper dereferences a read's path (MARSHALLINGERROR); setData validates it (as "").
    let mut w = header_bytes(1, OpCode::GetAcl.code());
    w.write_ustring(None);
    let null = DecodeError::BadValue { what: "null path", value: -1 };
    assert_eq!(decode_body(w.as_slice()), Err(BodyError::Malformed(null)));
    let mut w = header_bytes(1, OpCode::SetData.code());
    w.write_ustring(None);
    w.write_buffer(None);
    w.write_i32(-1);
    let set = Request::SetData { path: String::new(), data: None, version: -1 };
    assert_eq!(decode_body(w.as_slice()), Ok(set));
}

#[test]
fn invalid_utf8_in_a_path_is_malformed() {
    let mut w = header_bytes(1, OpCode::Sync.code());
    w.write_buffer(Some(&[0x2f, 0xff, 0xfe]));
    assert_eq!(
        decode_body(w.as_slice()),
        Err(BodyError::Malformed(DecodeError::BadUtf8 { what: "path" }))
    );
}

#[test]
fn get_data_inside_multi_is_malformed() {
    let req = Request::Multi(vec![
        Request::Delete { path: "/a".into(), version: -1 },
        Request::GetData { path: "/a".into(), watch: false },
    ]);
    let framed = codec::encode_request(&RequestHeader { xid: 1, op: 14 }, &req);
    let expected = DecodeError::BadValue { what: "multi mixing read and write ops", value: 4 };
    assert_eq!(decode_body(unframe(&framed)), Err(BodyError::Malformed(expected)));
    // A multi of reads only is refused too (ZooKeeper fails it when preparing it).
    let reads = Request::Multi(vec![Request::GetData { path: "/a".into(), watch: false }]);
    let framed = codec::encode_request(&RequestHeader { xid: 1, op: 14 }, &reads);
    let expected = DecodeError::BadValue { what: "multi of read ops", value: 4 };
    assert_eq!(decode_body(unframe(&framed)), Err(BodyError::Malformed(expected)));
}

#[test]
fn write_ops_mixed_into_multi_read_are_malformed() {
    for (sub, what) in [
        (Request::Delete { path: "/a".into(), version: -1 }, "multi mixing read and write ops"),
        (
            Request::GetChildren { op: OpCode::GetChildren2, path: "/".into(), watch: false },
            "multi op type",
        ),
        (Request::Check { path: "/a".into(), version: 1 }, "multi mixing read and write ops"),
    ] {
        let code = codec::request_op(&sub).code();
        let req =
            Request::MultiRead(vec![Request::GetData { path: "/".into(), watch: false }, sub]);
        let framed = codec::encode_request(&RequestHeader { xid: 1, op: 22 }, &req);
        let expected = DecodeError::BadValue { what, value: code.into() };
        assert_eq!(decode_body(unframe(&framed)), Err(BodyError::Malformed(expected)));
    }
    // A multiRead of writes only decodes: it is answered MARSHALLINGERROR when served.
    let writes = Request::MultiRead(vec![Request::Delete { path: "/a".into(), version: -1 }]);
    let framed = codec::encode_request(&RequestHeader { xid: 1, op: 22 }, &writes);
    assert_eq!(decode_body(unframe(&framed)), Ok(writes));
}

#[test]
fn nested_and_session_ops_inside_multi_are_malformed() {
    for op in [OpCode::Multi, OpCode::Exists, OpCode::SetAcl, OpCode::Sync, OpCode::Error] {
        let mut w = header_bytes(1, OpCode::Multi.code());
        w.write_i32(op.code());
        w.write_bool(false);
        w.write_i32(-1);
        w.write_string("/a");
        let Err(BodyError::Malformed(_)) = decode_body(w.as_slice()) else {
            panic!("{op:?} accepted inside multi");
        };
    }
}

#[test]
fn empty_multi_decodes_to_empty_list() {
    for (op, want) in [(14, Request::Multi(vec![])), (22, Request::MultiRead(vec![]))] {
        let mut w = header_bytes(3, op);
        w.write_i32(-1);
        w.write_bool(true);
        w.write_i32(-1);
        assert_eq!(decode_body(w.as_slice()), Ok(want));
    }
}

#[test]
fn multi_read_drops_watch_flags() {
    let req = Request::MultiRead(vec![
        Request::GetData { path: "/a".into(), watch: true },
        Request::GetChildren { op: OpCode::GetChildren, path: "/".into(), watch: true },
    ]);
    let framed = codec::encode_request(&RequestHeader { xid: 1, op: 22 }, &req);
    assert_eq!(
        decode_body(unframe(&framed)),
        Ok(Request::MultiRead(vec![
            Request::GetData { path: "/a".into(), watch: false },
            Request::GetChildren { op: OpCode::GetChildren, path: "/".into(), watch: false },
        ]))
    );
}

#[test]
fn multi_without_end_marker_is_truncated() {
    let mut w = header_bytes(3, 14);
    w.write_i32(OpCode::Delete.code());
    w.write_bool(false);
    w.write_i32(-1);
    w.write_string("/a");
    w.write_i32(-1);
    let expected = DecodeError::Truncated { what: "MultiHeader.type" };
    assert_eq!(decode_body(w.as_slice()), Err(BodyError::Malformed(expected)));
}

#[test]
fn unserved_opcodes_are_unknown_ops() {
    for op in [0, 10, 16, 20, 102, -10, -1, 23, 99, 108, i32::MAX, i32::MIN] {
        let mut w = header_bytes(9, op);
        w.write_string("/whatever");
        let (header, body) = codec::decode_request(w.as_slice()).unwrap();
        assert_eq!(header, RequestHeader { xid: 9, op });
        assert_eq!(body, Err(BodyError::UnknownOp(op)), "op {op}");
    }
}

#[test]
fn bodiless_ops_and_set_watches_variants() {
    for (op, want) in [(11, Request::Ping), (107, Request::WhoAmI), (-11, Request::CloseSession)] {
        assert_eq!(decode_body(header_bytes(1, op).as_slice()), Ok(want.clone()));
        let mut w = header_bytes(1, op);
        w.write_u8(0);
        assert_eq!(decode_body(w.as_slice()), Ok(want), "trailing bytes are ignored");
    }
    let mut w = header_bytes(-8, 101);
    w.write_i64(5);
    for _ in 0..3 {
        w.write_strings(&["/x".to_string()]);
    }
    let v1 = Request::SetWatches {
        relative_zxid: 5,
        data: vec!["/x".into()],
        exist: vec!["/x".into()],
        child: vec!["/x".into()],
        persistent: vec![],
        persistent_recursive: vec![],
    };
    assert_eq!(decode_body(w.as_slice()), Ok(v1));
    // The same bytes under opcode 105 lack the two persistent lists.
    let mut bytes = w.into_inner();
    bytes[4..8].copy_from_slice(&105i32.to_be_bytes());
    let Err(BodyError::Malformed(DecodeError::Truncated { .. })) = decode_body(&bytes) else {
        panic!("setWatches2 without persistent lists accepted");
    };
}

#[test]
fn trailing_bytes_after_a_body_are_ignored_as_zookeeper_does() {
    let req = Request::Exists { path: "/a".into(), watch: true };
    let mut payload =
        unframe(&codec::encode_request(&RequestHeader { xid: 1, op: 3 }, &req)).to_vec();
    payload.extend_from_slice(&[0, 0]);
    assert_eq!(decode_body(&payload), Ok(req));
}

#[test]
fn short_header_is_the_only_frame_error() {
    for len in 0..8 {
        assert!(codec::decode_request(&[0u8; 8][..len]).is_err());
    }
    assert!(codec::decode_request(&[0u8; 8]).is_ok());
}

#[test]
fn create_ttl_carries_ttl_and_other_creates_do_not() {
    let ttl = Request::Create {
        op: OpCode::CreateTtl,
        path: "/t".into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: 5,
        ttl: 1000,
    };
    let plain = Request::Create {
        op: OpCode::Create2,
        path: "/t".into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: 0,
        ttl: -1,
    };
    let a = codec::encode_request(&RequestHeader { xid: 1, op: 21 }, &ttl);
    let b = codec::encode_request(&RequestHeader { xid: 1, op: 15 }, &plain);
    assert_eq!(a.len(), b.len() + 8);
    assert_eq!(decode_body(unframe(&a)), Ok(ttl));
    assert_eq!(decode_body(unframe(&b)), Ok(plain));
}

#[test]
fn connect_request_read_only_byte_is_optional() {
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 4000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(true),
    };
    let with = codec::encode_connect_request(&req);
    assert_eq!(codec::decode_connect_request(unframe(&with)), Ok(req.clone()));
    let without = &unframe(&with)[..44];
    let got = codec::decode_connect_request(without).unwrap();
    assert_eq!(got, ConnectRequest { read_only: None, ..req.clone() });
    let mut extra = unframe(&with).to_vec();
    extra.push(0);
    assert_eq!(codec::decode_connect_request(&extra), Ok(req.clone()), "trailing bytes ignored");
    // A null password (length -1) reads as empty.
    let mut w = Writer::new();
    w.write_i32(0);
    w.write_i64(0);
    w.write_i32(4000);
    w.write_i64(0);
    w.write_buffer(None);
    assert_eq!(codec::decode_connect_request(w.as_slice()).unwrap().passwd, Vec::<u8>::new());
}

#[test]
fn add_watch_reply_body_is_int_zero() {
    let framed =
        codec::encode_reply(&ReplyHeader { xid: 4, zxid: 8, err: 0 }, Some(&Response::AddWatch));
    assert_eq!(&unframe(&framed)[16..], &[0, 0, 0, 0]);
}

#[test]
fn multi_results_use_type_15_for_create2_and_error_headers() {
    let stat = Default::default();
    let resp = Response::Multi(vec![
        MultiResult::Create2 { path: "/c".into(), stat },
        MultiResult::Error(ZkError::NoNode),
    ]);
    let framed = codec::encode_reply(&ReplyHeader { xid: 4, zxid: 8, err: 0 }, Some(&resp));
    let mut r = Reader::new(&unframe(&framed)[16..]);
    assert_eq!((r.read_i32("t"), r.read_bool("d"), r.read_i32("e")), (Ok(15), Ok(false), Ok(0)));
    assert_eq!(r.read_string("p"), Ok("/c".to_string()));
    r.read_stat().unwrap();
    assert_eq!((r.read_i32("t"), r.read_bool("d"), r.read_i32("e")), (Ok(-1), Ok(false), Ok(-101)));
    assert_eq!(r.read_i32("err"), Ok(-101));
    assert_eq!((r.read_i32("t"), r.read_bool("d"), r.read_i32("e")), (Ok(-1), Ok(true), Ok(-1)));
    assert_eq!(r.finish("multi"), Ok(()));
}

#[test]
fn container_and_ttl_replies_decode_as_create2() {
    let resp = Response::Create2 { path: "/c".into(), stat: Default::default() };
    let framed = codec::encode_reply(&ReplyHeader { xid: 4, zxid: 8, err: 0 }, Some(&resp));
    for op in [OpCode::CreateContainer, OpCode::CreateTtl, OpCode::Create2] {
        let mut r = Reader::new(&unframe(&framed)[16..]);
        assert_eq!(codec::decode_response(op, &mut r).as_ref(), Ok(&resp));
    }
}

#[test]
fn stmk_four_letter_word_reads_its_8_byte_arg() {
    let mut d = FrameDecoder::new(1_048_575);
    d.push(b"stmk");
    assert_eq!(d.next_frame(), Ok(None));
    d.push(&0x0102_0304_0506_0708i64.to_be_bytes()[..5]);
    assert_eq!(d.next_frame(), Ok(None));
    d.push(&0x0102_0304_0506_0708i64.to_be_bytes()[5..]);
    let want = Frame::FourLetterWord { cmd: *b"stmk", arg: Some(0x0102_0304_0506_0708) };
    assert_eq!(d.next_frame(), Ok(Some(want)));
    assert_eq!(d.next_frame(), Ok(None));
}

#[test]
fn known_four_letter_words_at_connection_start() {
    for cmd in [*b"ruok", *b"mntr", *b"srvr", *b"isro", *b"hash", [0xff, 0xf4, 0xff, 0xfd]] {
        let mut d = FrameDecoder::new(1_048_575);
        d.push(&cmd);
        d.push(b"more bytes after the command are ignored");
        assert_eq!(d.next_frame(), Ok(Some(Frame::FourLetterWord { cmd, arg: None })));
        assert_eq!(d.next_frame(), Ok(None), "nothing after a four-letter word");
    }
}

#[test]
fn unknown_words_at_start_are_lengths() {
    let mut d = FrameDecoder::new(1_048_575);
    d.push(b"abcd");
    assert_eq!(d.next_frame(), Err(FrameError::BadLength(0x6162_6364)));
}

#[test]
fn four_letter_words_only_at_connection_start() {
    let mut d = FrameDecoder::new(1_048_575);
    d.push(&frame(&[0u8; 44]));
    d.push(b"ruok");
    assert_eq!(d.next_frame(), Ok(Some(Frame::Payload(vec![0u8; 44]))));
    // After a normal first frame, "ruok" is a length: 0x72756f6b > jute.maxbuffer.
    assert_eq!(d.next_frame(), Err(FrameError::BadLength(0x7275_6f6b)));
    assert_eq!(d.next_frame(), Err(FrameError::BadLength(0x7275_6f6b)));
}

#[test]
fn frame_lengths_at_the_limit() {
    let mut d = FrameDecoder::new(10);
    d.push(&frame(&[1u8; 10]));
    assert_eq!(d.next_frame(), Ok(Some(Frame::Payload(vec![1u8; 10]))));
    d.push(&frame(&[]));
    assert_eq!(d.next_frame(), Ok(Some(Frame::Payload(vec![]))));
    d.push(&11i32.to_be_bytes());
    assert_eq!(d.next_frame(), Err(FrameError::BadLength(11)));
    let mut d = FrameDecoder::new(10);
    d.push(&(-1i32).to_be_bytes());
    assert_eq!(d.next_frame(), Err(FrameError::BadLength(-1)));
}

fn logged(txn: Txn) -> LoggedTxn {
    LoggedTxn {
        header: TxnHeader {
            session_id: SessionId(7),
            cxid: 3,
            zxid: Zxid(0x1_0000_0001),
            time_ms: 5,
        },
        txn,
    }
}

#[test]
fn error_txn_with_unknown_code_is_bad_value() {
    let mut bytes = encode_txn(&logged(Txn::Error { err: ZkError::NoNode }));
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&(-126i32).to_be_bytes());
    assert_eq!(
        decode_txn(&bytes),
        Err(DecodeError::BadValue { what: "ErrorTxn.err", value: -126 })
    );
}

#[test]
fn multi_txn_rejects_nested_and_foreign_sub_txns() {
    for (sub_type, body) in [(14, vec![0, 0, 0, 0]), (-10, vec![0, 0, 0, 1]), (7, vec![])] {
        let mut w = Writer::new();
        w.write_i64(1);
        w.write_i32(1);
        w.write_i64(1);
        w.write_i64(1);
        w.write_i32(14);
        w.write_i32(1);
        w.write_i32(sub_type);
        w.write_buffer(Some(&body));
        assert!(decode_txn(w.as_slice()).is_err(), "sub-txn type {sub_type} accepted");
    }
}

#[test]
fn multi_sub_txn_with_trailing_bytes_is_rejected() {
    let t = logged(Txn::Multi(vec![Txn::Delete { path: "/a".into() }]));
    let mut w = Writer::new();
    zkr_core::proto::txn::write_txn(&mut w, &t);
    let mut bytes = w.into_inner();
    // Grow the sub-txn's buffer by one byte: its data length, then the extra byte at the end.
    let len_at = 32 + 4 + 4;
    let len = i32::from_be_bytes(bytes[len_at..len_at + 4].try_into().unwrap());
    bytes[len_at..len_at + 4].copy_from_slice(&(len + 1).to_be_bytes());
    bytes.push(0);
    assert_eq!(decode_txn(&bytes), Err(DecodeError::TrailingBytes { what: "Txn.data", len: 1 }));
}

#[test]
fn create2_txn_type_15_from_apache_logs_decodes_as_create() {
    let t = logged(Txn::Create {
        path: "/x".into(),
        data: Some(b"d".to_vec()),
        acl: Acl::open_unsafe(),
        kind: CreateKind::Ephemeral,
        parent_cversion: 1,
    });
    let mut bytes = encode_txn(&t);
    bytes[28..32].copy_from_slice(&15i32.to_be_bytes());
    assert_eq!(decode_txn(&bytes), Ok(t));
}

#[test]
fn txn_trailing_bytes_are_rejected() {
    let mut bytes = encode_txn(&logged(Txn::CreateSession { timeout_ms: 4000 }));
    bytes.push(1);
    assert_eq!(decode_txn(&bytes), Err(DecodeError::TrailingBytes { what: "txn", len: 1 }));
}
