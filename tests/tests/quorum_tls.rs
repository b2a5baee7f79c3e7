//! Quorum TLS (`sslQuorum=true`) on real three-server zkr ensembles over loopback: an election,
//! writes and a fail-over over mutual TLS; the quorum port refusing plain TCP and completing a
//! handshake with a trusted certificate; a member whose certificate comes from another CA kept
//! out (and the two others serving without it); host-name verification on and off; a key store
//! that cannot be read stopping the start with its name; plain and TLS members in one ensemble
//! under `portUnification` (a rolling upgrade's middle step). zkr target only.
//!
//! Certificates are made per run with rcgen: one CA, a key store per member (SAN 127.0.0.1
//! unless a test says otherwise), and a second CA for the rogue member.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use zkr_tests::client::PERSISTENT;
use zkr_tests::ensemble::{Member, three_members, wait_for_roles};
use zkr_tests::server::Target;
use zkr_tests::{op, within};
use zookeeper_client::Client;

/// One CA: its certificate and key.
struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Authority { cert: params.self_signed(&key).expect("self-signed CA"), key }
    }

    /// A member's PEM key store (key, then certificate) naming `sans`, usable as TLS server and
    /// client (a member is both).
    fn key_store(&self, cn: &str, sans: &[&str]) -> String {
        let key = KeyPair::generate().expect("key");
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign");
        key.serialize_pem() + &cert.pem()
    }
}

/// A run's directory, removed on drop (after the members, which are dropped first).
struct Root(PathBuf);

impl Root {
    fn new(tag: &str) -> Root {
        let dir = std::env::temp_dir().join(format!("zkr-qtls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Root(dir)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Three members with `sslQuorum=true`, each with `key_stores[i]` and trusting `trust[i]`, plus
/// `extra` zoo.cfg lines.
fn ensemble(root: &Path, key_stores: &[String], trust: &[String], extra: &str) -> Vec<Member> {
    three_members(root, |i, dir| {
        std::fs::write(dir.join("quorum.pem"), &key_stores[i]).unwrap();
        std::fs::write(dir.join("ca.pem"), &trust[i]).unwrap();
        format!(
            "sslQuorum=true\n\
             ssl.quorum.keyStore.location={dir}/quorum.pem\nssl.quorum.keyStore.type=PEM\n\
             ssl.quorum.trustStore.location={dir}/ca.pem\nssl.quorum.trustStore.type=PEM\n\
             {extra}",
            dir = dir.display(),
        )
    })
}

/// Key stores for three members of one CA, naming `sans`.
fn members_of(ca: &Authority, sans: &[&str]) -> (Vec<String>, Vec<String>) {
    let stores = (1..=3).map(|i| ca.key_store(&format!("member-{i}"), sans)).collect();
    (stores, vec![ca.cert.pem(); 3])
}

/// Waits until `text` shows up in the member's log.
fn wait_for_log(member: &Member, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = member.log();
        if log.contains(text) {
            return log;
        }
        assert!(Instant::now() < deadline, "server {}: no {text:?} in\n{log}", member.id);
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn client(member: &Member) -> Client {
    let hosts = format!("127.0.0.1:{}", member.client_port);
    let connect = Client::connector().with_session_timeout(Duration::from_secs(10)).connect(&hosts);
    within(Duration::from_secs(30), "connect to an ensemble member", connect)
        .await
        .expect("connected")
}

/// A plain connection to the quorum port that says it is server 2 and sends a frame is closed
/// without an answer, and the member logs the refusal with our address.
fn plain_tcp_is_refused(member: &Member) {
    let mut plain = TcpStream::connect(("127.0.0.1", member.quorum_port)).unwrap();
    let ours = plain.local_addr().unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hello = 2u64.to_be_bytes().to_vec();
    hello.extend_from_slice(&4u32.to_be_bytes());
    hello.extend_from_slice(&[0, 0, 0, 0]);
    plain.write_all(&hello).unwrap();
    let mut buf = [0u8; 64];
    match plain.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(n) => {
            // rustls may answer with an alert record (content type 21) before closing.
            assert_eq!(buf[0], 21, "a plain peer got {n} bytes that are not a TLS alert");
            let rest = plain.read(&mut buf);
            assert!(matches!(rest, Ok(0) | Err(_)), "closed after the alert: {rest:?}");
        }
    }
    let log = wait_for_log(member, &ours.to_string());
    let line = log.lines().find(|l| l.contains(&ours.to_string())).unwrap();
    assert!(line.contains("quorum connection refused"), "{line}");
}

/// A TLS client with `key_store`'s certificate, trusting `ca`: completes a handshake with the
/// quorum port and sees the member's certificate.
fn tls_handshake(member: &Member, ca: &Authority, key_store: &str) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(key_store.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_store.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    let name = "127.0.0.1".try_into().unwrap();
    let mut tls = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", member.quorum_port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    assert!(tls.peer_certificates().is_some_and(|c| !c.is_empty()), "the member's certificate");
    // Say we are server 9 (no member): a TLS 1.3 server that refused our certificate would
    // answer this with an alert; one that accepted it answers nothing.
    tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    tls.writer().write_all(&9u64.to_be_bytes()).unwrap();
    tls.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1];
    match tls.complete_io(&mut tcp) {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(e.to_string()),
        _ => match tls.reader().read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(e.to_string()),
            _ => Ok(()),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_over_tls_elect_commit_and_fail_over() {
    if Target::from_env().is_apache() {
        return;
    }
    let root = Root::new("ensemble");
    let ca = Authority::new("zkr quorum CA");
    let (stores, trust) = members_of(&ca, &["127.0.0.1"]);
    let mut members = ensemble(&root.0, &stores, &trust, "");
    for m in &mut members {
        m.start();
    }
    let leader = wait_for_roles(&members, 3, "start-up over TLS");
    for m in &members {
        let log = m.log();
        assert!(log.contains("quorum TLS on"), "server {}: {log}", m.id);
        assert!(!log.contains("quorum connection refused"), "server {}: {log}", m.id);
    }
    // The quorum port speaks TLS only.
    plain_tcp_is_refused(&members[leader]);
    let visitor = ca.key_store("visitor", &["127.0.0.1"]);
    tls_handshake(&members[leader], &ca, &visitor).expect("a trusted certificate is accepted");
    let rogue_ca = Authority::new("another CA");
    let rogue = rogue_ca.key_store("rogue", &["127.0.0.1"]);
    let refused = tls_handshake(&members[leader], &ca, &rogue);
    assert!(refused.is_err(), "a certificate of another CA is refused");

    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let zk = client(&members[follower]).await;
    op("create via a follower", zk.create("/tls", b"one", &PERSISTENT)).await;
    let zk_other = client(&members[other]).await;
    op("sync", zk_other.sync("/tls")).await;
    let (data, _) = op("read on another follower", zk_other.get_data("/tls")).await;
    assert_eq!(data, b"one");
    drop(zk);
    drop(zk_other);

    members[leader].kill9();
    let new_leader = wait_for_roles(&members, 2, "after killing the leader");
    assert_ne!(new_leader, leader);
    let zk = client(&members[new_leader]).await;
    let (data, _) = op("committed data survives", zk.get_data("/tls")).await;
    assert_eq!(data, b"one");
    op("write after fail-over", zk.create("/after", b"two", &PERSISTENT)).await;
    drop(zk);

    members[leader].start();
    let settled = wait_for_roles(&members, 3, "after the old leader restarts");
    assert_eq!(settled, new_leader, "the old leader rejoins as a follower");
    let zk = client(&members[leader]).await;
    op("sync", zk.sync("/after")).await;
    let (data, _) = op("the rejoined member has the new write", zk.get_data("/after")).await;
    assert_eq!(data, b"two");
    drop(zk);
    drop(members);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_a_certificate_of_another_ca_cannot_join() {
    if Target::from_env().is_apache() {
        return;
    }
    let root = Root::new("rogue");
    let ca = Authority::new("zkr quorum CA");
    let rogue_ca = Authority::new("another CA");
    let (mut stores, mut trust) = members_of(&ca, &["127.0.0.1"]);
    stores[2] = rogue_ca.key_store("member-3", &["127.0.0.1"]);
    trust[2] = rogue_ca.cert.pem();
    let mut members = ensemble(&root.0, &stores, &trust, "");
    for m in &mut members {
        m.start();
    }
    let leader = wait_for_roles(&members[..2], 2, "the two members of the CA");
    // Both sides log the refusal, naming the peer.
    let rogue_log = wait_for_log(&members[2], "quorum connection to the peer refused");
    assert!(rogue_log.contains("UnknownIssuer"), "{rogue_log}");
    let rogue_ports: Vec<String> = rogue_log
        .lines()
        .filter(|l| l.contains("quorum connection to the peer refused"))
        .map(|l| l.to_string())
        .collect();
    assert!(rogue_ports.iter().any(|l| l.contains("127.0.0.1:")), "{rogue_ports:?}");
    for m in &members[..2] {
        let log = wait_for_log(m, "quorum connection refused");
        let line = log.lines().find(|l| l.contains("quorum connection refused")).unwrap();
        assert!(line.contains("127.0.0.1:"), "the peer's address: {line}");
    }
    let zk = client(&members[(leader + 1) % 2]).await;
    op("a write without the rogue", zk.create("/without", b"x", &PERSISTENT)).await;
    drop(zk);
    assert_eq!(members[2].mode(), None, "the rogue never serves");
    drop(members);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_names_are_verified_unless_switched_off() {
    if Target::from_env().is_apache() {
        return;
    }
    let ca = Authority::new("zkr quorum CA");
    let (stores, trust) = members_of(&ca, &["zk-elsewhere.example"]);
    {
        let root = Root::new("names-on");
        let mut members = ensemble(&root.0, &stores, &trust, "");
        for m in &mut members {
            m.start();
        }
        let log = wait_for_log(&members[0], "host name verification failed");
        assert!(log.contains("names neither 127.0.0.1"), "{log}");
        std::thread::sleep(Duration::from_secs(2));
        let modes: Vec<Option<String>> = members.iter().map(|m| m.mode()).collect();
        assert_eq!(modes, vec![None, None, None], "no member serves");
    }
    let root = Root::new("names-off");
    let mut members = ensemble(&root.0, &stores, &trust, "ssl.quorum.hostnameVerification=false\n");
    for m in &mut members {
        m.start();
    }
    let leader = wait_for_roles(&members, 3, "hostname verification off");
    let zk = client(&members[leader]).await;
    op("a write", zk.create("/names", b"off", &PERSISTENT)).await;
    drop(zk);
    drop(members);
}

#[test]
fn a_key_store_that_cannot_be_read_stops_the_start_with_its_name() {
    if Target::from_env().is_apache() {
        return;
    }
    let root = Root::new("missing");
    let ca = Authority::new("zkr quorum CA");
    let (stores, trust) = members_of(&ca, &["127.0.0.1"]);
    let mut members = ensemble(&root.0, &stores, &trust, "");
    std::fs::remove_file(members[0].file("quorum.pem")).unwrap();
    members[0].start();
    let mut child = members[0].child.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running without its key store:\n{}", members[0].log());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let log = members[0].log();
    assert!(log.contains("ssl.quorum.keyStore.location"), "{log}");
    assert!(log.contains("quorum.pem: cannot read it"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

/// The middle step of a rolling upgrade (docs/OPERATIONS.md): every member has
/// `portUnification=true`, one still connects plain (`sslQuorum=false`), two already connect
/// with TLS; each accepts both, so the three form one ensemble and commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_unification_lets_plain_and_tls_members_form_one_ensemble() {
    if Target::from_env().is_apache() {
        return;
    }
    let root = Root::new("unified");
    let ca = Authority::new("zkr quorum CA");
    let (stores, trust) = members_of(&ca, &["127.0.0.1"]);
    let mut members = ensemble(&root.0, &stores, &trust, "portUnification=true\n");
    let plain_cfg = members[0].file("zoo.cfg");
    let text = std::fs::read_to_string(&plain_cfg).unwrap();
    std::fs::write(&plain_cfg, text.replace("sslQuorum=true", "sslQuorum=false")).unwrap();
    for m in &mut members {
        m.start();
    }
    let leader = wait_for_roles(&members, 3, "plain and TLS members with port unification");
    let zk = client(&members[leader]).await;
    op("a write", zk.create("/unified", b"x", &PERSISTENT)).await;
    drop(zk);
    for m in &members {
        let log = m.log();
        assert!(!log.contains("refused"), "server {}: {log}", m.id);
    }
    // Member 1 connects plain: TLS members accept it (first byte not 0x16) and it accepts
    // their TLS; a TLS handshake with its quorum port works too.
    tls_handshake(&members[0], &ca, &ca.key_store("visitor", &["127.0.0.1"])).unwrap();
    drop(members);
}
