//! Bytes captured from a real Apache ZooKeeper 3.8.0 (Debian package, standalone, started with
//! `shared/tools/apache-zookeeper start 22181`) by a small Python socket client: a handshake,
//! replies to create/create2/getData/exists/getChildren2/multi/multiRead/ping, and a watch
//! notification. Our client-side decoders must parse every frame, and our server-side encoders
//! must reproduce each one byte for byte from the decoded value.
//!
//! The requests sent were: connect (45 B, readOnly=false); xid 1 create /fx "hello";
//! xid 2 create2 /fx/n null data; xid 3 getData /fx watch; xid 4 getData /fx/n;
//! xid 5 exists /missing; xid 6 getChildren2 /fx; xid 7 multi[create /fx/m, setData /fx/m,
//! check /fx v0, delete /fx/m]; xid 8 multi[delete /fx/n, delete /nope, check /fx] (fails);
//! xid 9 multiRead[getData /fx, getChildren /fx, getData /nope]; ping; then another session's
//! setData /fx fired the watch.

mod proto_support;

use proto_support::unframe;
use zkr_core::proto::client::{
    ConnectResponse, EventType, MultiResult, OpCode, ReplyHeader, Response, WatcherEvent,
};
use zkr_core::proto::codec;
use zkr_core::proto::error::ZkError;
use zkr_core::proto::frame::{Frame, FrameDecoder};
use zkr_core::proto::jute::Reader;
use zkr_core::types::Stat;

const CONNECT_RESPONSE: &str =
    "0000002500000000000075300100000a2b2000000000001052c25756779a20a8807a5d2018717e4700";
const CREATE: &str = "0000001700000001000000000000000300000000000000032f6678";
const CREATE2_NULL_DATA: &str = concat!(
    "0000005d00000002000000000000000400000000000000052f66782f6e0000000000000004000000",
    "0000000004000001a1fe632a29000001a1fe632a2900000000000000000000000000000000000000",
    "0000000000000000000000000000000004",
);
const GET_DATA: &str = concat!(
    "0000005d000000030000000000000004000000000000000568656c6c6f0000000000000003000000",
    "0000000003000001a1fe632a18000001a1fe632a1800000000000000010000000000000000000000",
    "0000000005000000010000000000000004",
);
const GET_DATA_NULL: &str = concat!(
    "0000005800000004000000000000000400000000ffffffff00000000000000040000000000000004",
    "000001a1fe632a29000001a1fe632a29000000000000000000000000000000000000000000000000",
    "000000000000000000000004",
);
const EXISTS_NONODE: &str = "00000010000000050000000000000004ffffff9b";
const GET_CHILDREN2: &str = concat!(
    "0000005d0000000600000000000000040000000000000001000000016e0000000000000003000000",
    "0000000003000001a1fe632a18000001a1fe632a1800000000000000010000000000000000000000",
    "0000000005000000010000000000000004",
);
const MULTI: &str = concat!(
    "0000008a00000007000000000000000500000000000000010000000000000000052f66782f6d0000",
    "0005000000000000000000000000050000000000000005000001a1fe632a38000001a1fe632a3800",
    "00000100000000000000000000000000000000000000010000000000000000000000050000000d00",
    "00000000000000020000000000ffffffff01ffffffff",
);
const MULTI_FAILED: &str = concat!(
    "0000004000000008000000000000000600000000ffffffff000000000000000000ffffffff00ffff",
    "ff9bffffff9bffffffff00fffffffefffffffeffffffff01ffffffff",
);
const MULTI_READ: &str = concat!(
    "0000008e000000090000000000000006000000000000000400000000000000000568656c6c6f0000",
    "0000000000030000000000000003000001a1fe632a18000001a1fe632a1800000000000000030000",
    "00000000000000000000000000050000000100000000000000050000000800000000000000000100",
    "0000016effffffff00ffffff9bffffff9bffffffff01ffffffff",
);
const PING: &str = "00000010fffffffe000000000000000600000000";
const NOTIFICATION: &str = "0000001fffffffffffffffffffffffff000000000000000300000003000000032f6678";

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Every fixture is exactly one frame for our frame decoder.
fn single_frame(framed: &[u8]) -> Vec<u8> {
    let mut d = FrameDecoder::new(1_048_575);
    d.push(&[0, 0, 0, 0]); // an empty first frame, so that nothing is taken for a 4lw
    assert_eq!(d.next_frame(), Ok(Some(Frame::Payload(vec![]))));
    d.push(framed);
    let Ok(Some(Frame::Payload(p))) = d.next_frame() else { panic!("not one frame") };
    assert_eq!(d.next_frame(), Ok(None));
    p
}

/// Decodes a reply to `op`, checks the header, and re-encodes it to the same bytes.
fn check_reply(hex: &str, op: OpCode, want_header: ReplyHeader, want: Option<Response>) {
    let framed = unhex(hex);
    let payload = single_frame(&framed);
    let mut r = Reader::new(&payload);
    let header = codec::decode_reply_header(&mut r).unwrap();
    assert_eq!(header, want_header);
    let body = want.as_ref().map(|want| {
        let got = codec::decode_response(op, &mut r).unwrap();
        assert_eq!(&got, want, "{op:?}");
        got
    });
    assert_eq!(r.finish("reply"), Ok(()));
    assert_eq!(codec::encode_reply(&header, body.as_ref()), framed, "{op:?} re-encoding");
}

fn stat_fx() -> Stat {
    Stat {
        czxid: 3,
        mzxid: 3,
        ctime: 0x1a1_fe63_2a18,
        mtime: 0x1a1_fe63_2a18,
        version: 0,
        cversion: 1,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 5,
        num_children: 1,
        pzxid: 4,
    }
}

fn stat_fx_n() -> Stat {
    Stat {
        czxid: 4,
        mzxid: 4,
        ctime: 0x1a1_fe63_2a29,
        mtime: 0x1a1_fe63_2a29,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 0,
        num_children: 0,
        pzxid: 4,
    }
}

#[test]
fn connect_response_from_apache() {
    let framed = unhex(CONNECT_RESPONSE);
    let resp = codec::decode_connect_response(unframe(&framed)).unwrap();
    assert_eq!(resp.protocol_version, 0);
    assert_eq!(resp.timeout_ms, 30_000);
    assert_eq!(resp.session_id as u64 >> 56, 1, "standalone session ids start with 0x01");
    assert_eq!(resp.passwd.len(), 16);
    assert_eq!(resp.read_only, Some(false));
    assert_eq!(unframe(&framed).len(), 37);
    let again: ConnectResponse = resp.clone();
    assert_eq!(codec::encode_connect_response(&again), framed);
}

#[test]
fn single_op_replies_from_apache() {
    let h = |xid, zxid, err| ReplyHeader { xid, zxid, err };
    check_reply(CREATE, OpCode::Create, h(1, 3, 0), Some(Response::Create { path: "/fx".into() }));
    let create2 = Response::Create2 { path: "/fx/n".into(), stat: stat_fx_n() };
    check_reply(CREATE2_NULL_DATA, OpCode::Create2, h(2, 4, 0), Some(create2));
    let get = Response::GetData { data: Some(b"hello".to_vec()), stat: stat_fx() };
    check_reply(GET_DATA, OpCode::GetData, h(3, 4, 0), Some(get));
    // A znode created with null data gives back a -1 length (reference §1).
    let get_null = Response::GetData { data: None, stat: stat_fx_n() };
    check_reply(GET_DATA_NULL, OpCode::GetData, h(4, 4, 0), Some(get_null));
    check_reply(EXISTS_NONODE, OpCode::Exists, h(5, 4, ZkError::NoNode.code()), None);
    let kids = Response::GetChildren2 { children: vec!["n".into()], stat: stat_fx() };
    check_reply(GET_CHILDREN2, OpCode::GetChildren2, h(6, 4, 0), Some(kids));
    check_reply(PING, OpCode::Ping, h(-2, 6, 0), None);
}

#[test]
fn multi_replies_from_apache() {
    let h = |xid, zxid| ReplyHeader { xid, zxid, err: 0 };
    let set_stat = Stat {
        czxid: 5,
        mzxid: 5,
        ctime: 0x1a1_fe63_2a38,
        mtime: 0x1a1_fe63_2a38,
        version: 1,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 1,
        num_children: 0,
        pzxid: 5,
    };
    let ok = Response::Multi(vec![
        MultiResult::Create { path: "/fx/m".into() },
        MultiResult::SetData { stat: set_stat },
        MultiResult::Check,
        MultiResult::Delete,
    ]);
    check_reply(MULTI, OpCode::Multi, h(7, 5), Some(ok));
    // A failed multi: header err 0, then 0 / the real code / RUNTIMEINCONSISTENCY (§9).
    let failed = Response::Multi(vec![
        MultiResult::Error(ZkError::Ok),
        MultiResult::Error(ZkError::NoNode),
        MultiResult::Error(ZkError::RuntimeInconsistency),
    ]);
    check_reply(MULTI_FAILED, OpCode::Multi, h(8, 6), Some(failed));
    let read = Response::Multi(vec![
        MultiResult::GetData {
            data: Some(b"hello".to_vec()),
            stat: Stat { pzxid: 5, cversion: 3, ..stat_fx() },
        },
        MultiResult::GetChildren { children: vec!["n".into()] },
        MultiResult::Error(ZkError::NoNode),
    ]);
    check_reply(MULTI_READ, OpCode::MultiRead, h(9, 6), Some(read));
}

#[test]
fn notification_from_apache() {
    let framed = unhex(NOTIFICATION);
    let payload = single_frame(&framed);
    let mut r = Reader::new(&payload);
    // 3.8 sends zxid -1 in notifications (the txn's zxid only from 3.9, ZOOKEEPER-4655).
    assert_eq!(codec::decode_reply_header(&mut r), Ok(ReplyHeader { xid: -1, zxid: -1, err: 0 }));
    let ev = codec::decode_watcher_event(&mut r).unwrap();
    let want =
        WatcherEvent { event_type: EventType::NodeDataChanged, state: 3, path: "/fx".into() };
    assert_eq!(ev, want);
    assert_eq!(r.finish("notification"), Ok(()));
    assert_eq!(codec::encode_notification(-1, &ev), framed);
}
