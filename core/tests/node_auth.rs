//! SASL DIGEST-MD5 (opcode 102), `enforce.auth` / `sessionRequireClientSASLAuth`, and TLS client
//! certificate ids, through one node and the bytes a client sees (`ZooKeeperServer.processSasl`,
//! `AuthenticationHelper`, `X509AuthenticationProvider`).

mod support;

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use support::*;
use zkr_core::Config;
use zkr_core::io::Input;
use zkr_core::proto::client::{ClientInfo, OpCode, Request, Response};
use zkr_core::proto::codec;
use zkr_core::proto::jute::{Reader, Writer};
use zkr_core::sasl::{DIGEST_URI, REALM, parse_directives};
use zkr_core::types::{Acl, ConnId, Id};

fn config() -> Config {
    let users = BTreeMap::from([
        ("jaasuser".to_string(), "jaas_password".to_string()),
        ("admin".to_string(), "admin_pw".to_string()),
    ]);
    Config { sasl_users: users, sasl_super_user: Some("admin".into()), ..Config::default() }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends one SASL token; returns (err, token) of the reply, which must echo `xid` with zxid 0.
fn sasl(h: &mut Harness, conn: ConnId, xid: i32, token: &[u8]) -> (i32, Option<Vec<u8>>) {
    let mut w = Writer::new();
    w.write_i32(xid);
    w.write_i32(OpCode::Sasl.code());
    w.write_buffer(Some(token));
    let wall_ms = h.wall_ms;
    h.step(Input::ClientFrame { conn, payload: w.as_slice().to_vec(), wall_ms });
    let payload = h.pop(conn).expect("a SASL reply");
    let mut r = Reader::new(&payload);
    let header = codec::decode_reply_header(&mut r).expect("header");
    assert_eq!((header.xid, header.zxid), (xid, 0), "out of band: xid echoed, zxid 0");
    let token = r.read_buffer("SetSASLResponse.token").expect("a token field");
    r.finish("SetSASLResponse").expect("nothing after the token");
    (header.err, token)
}

/// The client's half of RFC 2831 (as puresasl computes it) for the challenge's nonce.
fn digest_response(user: &str, password: &str, challenge: &[u8]) -> (String, String) {
    let fields = parse_directives(challenge).expect("a parsable challenge");
    assert_eq!(fields["realm"], REALM.as_bytes());
    assert_eq!(fields["qop"], b"auth");
    let nonce = String::from_utf8(fields["nonce"].clone()).unwrap();
    let cnonce = "0a1b2c3d";
    let hash = |a2: &str| {
        let mut a1 = Md5::digest(format!("{user}:{REALM}:{password}").as_bytes()).to_vec();
        a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
        let kd = format!(
            "{}:{nonce}:00000001:{cnonce}:auth:{}",
            hex(&Md5::digest(&a1)),
            hex(&Md5::digest(a2.as_bytes()))
        );
        hex(&Md5::digest(kd.as_bytes()))
    };
    let response = format!(
        "charset=utf-8,username=\"{user}\",realm=\"{REALM}\",nonce=\"{nonce}\",nc=00000001,\
         cnonce=\"{cnonce}\",digest-uri=\"{DIGEST_URI}\",maxbuf=65536,response={},qop=auth",
        hash(&format!("AUTHENTICATE:{DIGEST_URI}"))
    );
    (response, format!("rspauth={}", hash(&format!(":{DIGEST_URI}"))))
}

/// The whole exchange; returns the final reply's error code.
fn authenticate(h: &mut Harness, conn: ConnId, user: &str, password: &str) -> i32 {
    let (err, challenge) = sasl(h, conn, 1, b"");
    assert_eq!(err, 0);
    let (response, rspauth) = digest_response(user, password, &challenge.expect("a challenge"));
    let (err, token) = sasl(h, conn, 2, response.as_bytes());
    if err == 0 {
        assert_eq!(token, Some(rspauth.into_bytes()), "the server proves it knows the password");
    } else {
        assert_eq!(token, None, "a failure carries a null token");
    }
    err
}

fn who_am_i(h: &mut Harness, conn: ConnId) -> Vec<ClientInfo> {
    match h.call(conn, 9, Request::WhoAmI) {
        (header, Some(Response::WhoAmI(infos))) if header.err == 0 => infos,
        other => panic!("whoAmI: {other:?}"),
    }
}

fn info(scheme: &str, user: &str) -> ClientInfo {
    ClientInfo { auth_scheme: scheme.into(), user: user.into() }
}

#[test]
fn digest_md5_adds_a_sasl_id_that_sasl_acls_accept() {
    let mut h = Harness::new(config());
    let (conn, _) = h.connect(1);
    assert_eq!(authenticate(&mut h, conn, "jaasuser", "jaas_password"), 0);
    assert_eq!(who_am_i(&mut h, conn), vec![info("ip", "127.0.0.1"), info("sasl", "jaasuser")]);
    let acl = vec![Acl { perms: 31, id: Id::new("sasl", "jaasuser") }];
    let create = Request::Create {
        op: OpCode::Create,
        path: "/s".into(),
        data: Some(b"x".to_vec()),
        acl,
        flags: 0,
        ttl: -1,
    };
    assert_eq!(h.call(conn, 3, create).0.err, 0);
    assert_eq!(h.call(conn, 4, get("/s", false)).0.err, 0);
    let (other, _) = h.connect(2);
    assert_eq!(h.call(other, 1, get("/s", false)).0.err, -102, "NOAUTH without the sasl id");
    // zookeeper.superUser: the SASL user `admin` also holds `super`.
    assert_eq!(authenticate(&mut h, other, "admin", "admin_pw"), 0);
    assert_eq!(h.call(other, 5, get("/s", false)).0.err, 0, "super passes every ACL");
}

#[test]
fn wrong_password_or_unknown_user_fails_and_closes() {
    let mut h = Harness::new(config());
    let (conn, _) = h.connect(1);
    assert_eq!(authenticate(&mut h, conn, "jaasuser", "wrong"), -115, "AUTHFAILED");
    assert!(h.closed.contains(&conn), "a failed exchange closes the connection");
    let (conn, _) = h.connect(2);
    assert_eq!(authenticate(&mut h, conn, "nobody", "jaas_password"), -115);
    assert!(h.closed.contains(&conn));
    // A token after the exchange completed is out of sequence.
    let (conn, _) = h.connect(3);
    assert_eq!(authenticate(&mut h, conn, "jaasuser", "jaas_password"), 0);
    assert_eq!(sasl(&mut h, conn, 7, b"again").0, -115);
    assert!(h.closed.contains(&conn));
    // No JAAS users at all: SASL fails like an unknown user.
    let mut bare = Harness::new(Config::default());
    let (conn, _) = bare.connect(1);
    assert_eq!(authenticate(&mut bare, conn, "jaasuser", "jaas_password"), -115);
}

#[test]
fn session_require_client_sasl_auth_refuses_requests_until_sasl() {
    let enforced = Config { enforce_auth_schemes: vec!["sasl".into()], ..config() };
    let mut h = Harness::new(enforced.clone());
    let (conn, _) = h.connect(1);
    assert_eq!(h.call(conn, 1, get("/", false)).0.err, -124, "SESSIONCLOSEDREQUIRESASLAUTH");
    assert!(h.closed.contains(&conn));
    let (conn, _) = h.connect(2);
    assert_eq!(authenticate(&mut h, conn, "jaasuser", "jaas_password"), 0);
    assert_eq!(h.call(conn, 3, get("/", false)).0.err, 0, "served once authenticated");
    let (conn, _) = h.connect(3);
    assert_eq!(authenticate(&mut h, conn, "jaasuser", "wrong"), -124, "the enforced failure code");
    // An addauth digest id does not satisfy an enforced sasl scheme...
    let (conn, _) = h.connect(4);
    let auth = Request::Auth { auth_type: 0, scheme: "digest".into(), auth: b"u:p".to_vec() };
    h.send(conn, -4, &auth);
    assert_eq!(h.reply(conn, &auth).unwrap().0.err, 0);
    assert_eq!(h.call(conn, 5, get("/", false)).0.err, -124);
    // ...but it does when digest is an enforced scheme.
    let digest = Config { enforce_auth_schemes: vec!["digest".into()], ..enforced };
    let mut h = Harness::new(digest);
    let (conn, _) = h.connect(1);
    h.send(conn, -4, &auth);
    assert_eq!(h.reply(conn, &auth).unwrap().0.err, 0);
    assert_eq!(h.call(conn, 6, get("/", false)).0.err, 0);
}

#[test]
fn a_client_certificate_gives_an_x509_id_and_maybe_super() {
    let subject = "CN=app,O=zkr";
    let cfg = Config { x509_super_user: Some("CN=root".into()), ..Config::default() };
    let mut h = Harness::new(cfg);
    let conn = h.open(1);
    h.step(Input::ClientCertificate { conn, subject: subject.into() });
    h.send_connect(conn, 0, vec![0; 16]);
    h.pop(conn).expect("connect response");
    assert_eq!(who_am_i(&mut h, conn), vec![info("ip", "127.0.0.1"), info("x509", subject)]);
    let root = h.open(2);
    h.step(Input::ClientCertificate { conn: root, subject: "CN=root".into() });
    h.send_connect(root, 0, vec![0; 16]);
    h.pop(root).expect("connect response");
    let ids: Vec<String> = who_am_i(&mut h, root).into_iter().map(|i| i.auth_scheme).collect();
    assert_eq!(ids, vec!["ip", "super", "x509"]);
}

#[test]
fn the_nonce_comes_from_the_seed() {
    let challenge = |seed: u64| {
        let init = zkr_core::NodeInit { wall_ms: START_MS, seed, ..Default::default() };
        let mut h = Harness::from_node(zkr_core::Node::new(config(), init).unwrap());
        let (conn, _) = h.connect(1);
        sasl(&mut h, conn, 1, b"").1.unwrap()
    };
    assert_eq!(challenge(7), challenge(7), "same seed, same nonce");
    assert_ne!(challenge(7), challenge(8));
}
