//! Roundtrip properties of the wire codec: for every value the model can hold,
//! `decode(encode(x)) == x`, for requests, responses, the handshake, notifications and txns.

mod proto_support;

use proptest::collection::vec;
use proptest::prelude::*;
use proto_support as s;
use zkr_core::proto::client::{ReplyHeader, RequestHeader};
use zkr_core::proto::codec::{self, BodyError};
use zkr_core::proto::jute::Reader;
use zkr_core::proto::txn::{decode_txn, encode_txn};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_roundtrips(req in s::request(), xid in any::<i32>()) {
        let header = codec::request_header(xid, &req);
        let framed = codec::encode_request(&header, &req);
        let (got_header, body) = codec::decode_request(s::unframe(&framed)).unwrap();
        prop_assert_eq!(got_header, header);
        prop_assert_eq!(body, Ok(req));
    }

    #[test]
    fn request_with_raw_header_roundtrips(req in s::node_request(), xid in any::<i32>()) {
        let header = RequestHeader { xid, op: codec::request_op(&req).code() };
        let framed = codec::encode_request(&header, &req);
        let decoded = codec::decode_request(s::unframe(&framed)).unwrap();
        prop_assert_eq!(decoded, (header, Ok::<_, BodyError>(req)));
    }

    #[test]
    fn response_roundtrips((op, resp) in s::response(), xid in any::<i32>(), zxid in any::<i64>()) {
        let header = ReplyHeader { xid, zxid, err: 0 };
        let framed = codec::encode_reply(&header, Some(&resp));
        let mut r = Reader::new(s::unframe(&framed));
        prop_assert_eq!(codec::decode_reply_header(&mut r).unwrap(), header);
        prop_assert_eq!(codec::decode_response(op, &mut r).unwrap(), resp);
        prop_assert_eq!(r.finish("reply"), Ok(()));
    }

    #[test]
    fn multi_read_response_roundtrips(results in vec(s::multi_result(), 0..6)) {
        use zkr_core::proto::client::{OpCode, Response};
        let resp = Response::Multi(results);
        let framed = codec::encode_reply(&ReplyHeader { xid: 1, zxid: 2, err: 0 }, Some(&resp));
        let mut r = Reader::new(&s::unframe(&framed)[16..]);
        prop_assert_eq!(codec::decode_response(OpCode::MultiRead, &mut r).unwrap(), resp);
        prop_assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn error_reply_is_header_only(xid in any::<i32>(), zxid in any::<i64>(), err in s::zk_error()) {
        let header = ReplyHeader { xid, zxid, err: err.code() };
        let framed = codec::encode_reply(&header, None);
        prop_assert_eq!(framed.len(), 4 + 16);
        let mut r = Reader::new(s::unframe(&framed));
        prop_assert_eq!(codec::decode_reply_header(&mut r).unwrap(), header);
        prop_assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn connect_request_roundtrips(req in s::connect_request()) {
        let framed = codec::encode_connect_request(&req);
        prop_assert_eq!(codec::decode_connect_request(s::unframe(&framed)).unwrap(), req);
    }

    #[test]
    fn connect_response_roundtrips(resp in s::connect_response()) {
        let framed = codec::encode_connect_response(&resp);
        prop_assert_eq!(codec::decode_connect_response(s::unframe(&framed)).unwrap(), resp);
    }

    #[test]
    fn notification_roundtrips(ev in s::watcher_event(), zxid in any::<i64>()) {
        let framed = codec::encode_notification(zxid, &ev);
        let mut r = Reader::new(s::unframe(&framed));
        let header = codec::decode_reply_header(&mut r).unwrap();
        prop_assert_eq!(header, ReplyHeader { xid: -1, zxid, err: 0 });
        prop_assert_eq!(codec::decode_watcher_event(&mut r).unwrap(), ev);
        prop_assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn txn_roundtrips(t in s::logged_txn()) {
        let bytes = encode_txn(&t);
        prop_assert_eq!(decode_txn(&bytes).unwrap(), t);
    }
}
