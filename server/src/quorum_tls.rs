//! Quorum TLS (`sslQuorum`): mutual TLS on the connections between ensemble members, with
//! tokio-rustls over the same sockets `peer_net` uses. Every kind of peer traffic (election
//! notifications and Zab alike) goes over the quorum port here, so one listener and one
//! outbound connection per peer cover what ZooKeeper splits over its election and quorum ports.
//!
//! What is verified (ZooKeeper's `QuorumX509Util` with its `ZKTrustManager`):
//! - both ends present a certificate (`ssl.quorum.clientAuth`, default need) whose chain ends in
//!   a CA of `ssl.quorum.trustStore.location`; rustls checks the chain, validity dates, key
//!   usage and the handshake signature;
//! - with `ssl.quorum.hostnameVerification` (default true), the peer's certificate names the
//!   peer: its IP address (as ZooKeeper checks first), or else the host of its `server.N` line
//!   (where ZooKeeper falls back to a reverse DNS lookup of the address, which we do not make).
//!   For a peer that connects to us (`ssl.quorum.clientHostnameVerification`, default true) the
//!   `server.N` line is that of the id it announces, so a certificate for one member's host
//!   cannot speak for another member from a third address.
//!
//! Names are checked after rustls's handshake (the outbound verifier checks only the chain; see
//! `ChainOnly`), and a connection that fails any check is closed before one message of it
//! reaches the core. Failures are logged at warn with the peer's address.
//!
//! `portUnification` accepts plain and TLS connections on the quorum port: the first byte of a
//! TLS connection is a handshake record (0x16), that of a plain one the first of `peer_net`'s
//! handshake magic (`z`, 0x7a). `sslQuorumReloadCertFiles` rebuilds the rustls configurations
//! when a store file changes (modification time or size), checked as each connection starts;
//! connections already up keep the certificates they were made with.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme,
    SupportedProtocolVersion,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use zkr_core::types::ServerId;

use crate::peer_net::PeerStream;
use crate::security::{ClientAuth, QuorumTlsConfig, TlsVersion};
use crate::tls::{load_key_store, load_trust_store};

/// The first byte of a TLS connection: the content type of a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The quorum's TLS settings and the rustls configurations built from them.
pub struct QuorumTls {
    settings: QuorumTlsConfig,
    /// The host of each member's `server.N` line.
    hosts: BTreeMap<ServerId, String>,
    loaded: Mutex<Loaded>,
}

/// The configurations, and the store files' stamps they were built from.
struct Loaded {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    stamps: Vec<Option<(SystemTime, u64)>>,
}

impl QuorumTls {
    /// Reads the stores and builds both configurations; an unreadable or unusable store, or a
    /// setting rustls refuses, is an error naming the key and the file.
    pub fn load(
        settings: &QuorumTlsConfig,
        hosts: BTreeMap<ServerId, String>,
    ) -> Result<QuorumTls, String> {
        assert!(settings.enabled(), "quorum TLS loaded while off");
        let stamps = stamps(settings);
        let (server, client) = build(settings)?;
        let loaded = Mutex::new(Loaded { server, client, stamps });
        Ok(QuorumTls { settings: settings.clone(), hosts, loaded })
    }

    /// Whether outbound connections speak TLS (`sslQuorum`; with only `portUnification` they
    /// stay plain while the listener accepts both).
    pub fn connects_with_tls(&self) -> bool {
        self.settings.ssl_quorum
    }

    /// How long a connecting peer may take for its handshake.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.handshake_timeout_ms)
    }

    /// The configurations for a new connection, rebuilt first if `sslQuorumReloadCertFiles` is
    /// on and a store file changed. A rebuild that fails keeps the previous configurations.
    fn current(&self) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if self.settings.reload_cert_files {
            let now = stamps(&self.settings);
            if now != loaded.stamps {
                loaded.stamps = now;
                match build(&self.settings) {
                    Ok((server, client)) => {
                        tracing::info!("quorum TLS: store files changed; reloaded");
                        loaded.server = server;
                        loaded.client = client;
                    }
                    Err(e) => tracing::warn!(%e, "quorum TLS: reload failed; keeping the old"),
                }
            }
        }
        (loaded.server.clone(), loaded.client.clone())
    }

    /// The TLS client side of an outbound connection to `peer`, host names checked.
    pub async fn connect(&self, tcp: TcpStream, peer: ServerId) -> Result<PeerStream, String> {
        let ip = tcp.peer_addr().map_err(|e| e.to_string())?.ip().to_canonical();
        let host = self.hosts.get(&peer).map(String::as_str);
        let name = host
            .and_then(|h| ServerName::try_from(h.to_string()).ok())
            .unwrap_or(ServerName::IpAddress(ip.into()));
        let (_, client) = self.current();
        let tls = TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        if self.settings.hostname_verification {
            let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
            let cert = cert.ok_or("the peer presented no certificate")?;
            names_peer(cert, ip, host)?;
        }
        Ok(Box::new(tls))
    }

    /// The server side of an inbound connection: TLS, or (with `portUnification`) plain when
    /// the peer's first byte is not a TLS handshake record. Returns the peer's certificate for
    /// `check_inbound`, once the peer has said who it is.
    pub async fn accept(
        &self,
        mut tcp: TcpStream,
    ) -> Result<(PeerStream, Option<CertificateDer<'static>>), String> {
        let limit = self.handshake_timeout();
        let mut first = None;
        if self.settings.port_unification {
            let mut byte = [0u8; 1];
            match tokio::time::timeout(limit, tcp.read(&mut byte)).await {
                Ok(Ok(1)) => first = Some(byte[0]),
                Ok(Ok(_)) => return Err("closed before sending anything".into()),
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err(format!("sent nothing for {limit:?}")),
            }
            if byte[0] != TLS_HANDSHAKE_RECORD {
                return Ok((Box::new(Prefixed { first, inner: tcp }), None));
            }
        }
        let (server, _) = self.current();
        let accepting = TlsAcceptor::from(server).accept(Prefixed { first, inner: tcp });
        let tls = match tokio::time::timeout(limit, accepting).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return Err(format!("TLS handshake failed: {e}")),
            Err(_) => return Err(format!("TLS handshake not done within {limit:?}")),
        };
        let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
        let cert = cert.map(|c| c.clone().into_owned());
        Ok((Box::new(tls), cert))
    }

    /// Host-name verification of a peer that connected to us, once it announced its id.
    pub fn check_inbound(
        &self,
        cert: Option<&CertificateDer<'_>>,
        remote: SocketAddr,
        from: ServerId,
    ) -> Result<(), String> {
        let checked =
            self.settings.hostname_verification && self.settings.client_hostname_verification;
        match cert {
            Some(cert) if checked => {
                let host = self.hosts.get(&from).map(String::as_str);
                names_peer(cert, remote.ip().to_canonical(), host)
            }
            _ => Ok(()),
        }
    }
}

/// The store files' modification times and sizes (`None` for one that cannot be read).
fn stamps(settings: &QuorumTlsConfig) -> Vec<Option<(SystemTime, u64)>> {
    let files: [&Option<PathBuf>; 2] = [&settings.key_store, &settings.trust_store];
    files
        .iter()
        .map(|path| {
            let meta = std::fs::metadata(path.as_ref()?).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

/// Both rustls configurations: the listener's (client certificates per `ssl.quorum.clientAuth`)
/// and the outbound one (our certificate offered, the peer's chain verified).
fn build(settings: &QuorumTlsConfig) -> Result<(Arc<ServerConfig>, Arc<ClientConfig>), String> {
    let key_store = settings.key_store.as_ref().ok_or("no ssl.quorum.keyStore.location")?;
    let trust_store = settings.trust_store.as_ref().ok_or("no ssl.quorum.trustStore.location")?;
    let (certs, key) = load_key_store(key_store, "ssl.quorum.keyStore.location")?;
    let roots = Arc::new(load_trust_store(trust_store, "ssl.quorum.trustStore.location")?);
    let provider = provider(settings)?;
    let versions: Vec<&'static SupportedProtocolVersion> = settings
        .protocols
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let tls_error = |e: rustls::Error| format!("quorum TLS: {e}");
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(tls_error)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
    let builder = match settings.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Want => builder.with_client_cert_verifier(
            verifier.allow_unauthenticated().build().map_err(|e| format!("quorum TLS: {e}"))?,
        ),
        ClientAuth::Need => builder
            .with_client_cert_verifier(verifier.build().map_err(|e| format!("quorum TLS: {e}"))?),
    };
    let server = builder.with_single_cert(certs.clone(), key.clone_key()).map_err(tls_error)?;
    let chain = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| format!("quorum TLS: {e}"))?;
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainOnly(chain)))
        .with_client_auth_cert(certs, key)
        .map_err(tls_error)?;
    Ok((Arc::new(server), Arc::new(client)))
}

/// rustls's `ring` provider, its cipher suites narrowed to `ssl.quorum.ciphersuites` (Java's
/// names, which are the IANA ones: `TLS_AES_128_GCM_SHA256` is rustls's
/// `TLS13_AES_128_GCM_SHA256`). Names rustls does not implement are skipped, as Java skips
/// suites its provider lacks; none left is an error.
fn provider(settings: &QuorumTlsConfig) -> Result<Arc<CryptoProvider>, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if settings.ciphersuites.is_empty() {
        return Ok(Arc::new(provider));
    }
    let java_name = |suite: &rustls::SupportedCipherSuite| {
        let name = suite.suite().as_str().unwrap_or_default();
        name.replacen("TLS13_", "TLS_", 1)
    };
    let offered: Vec<String> = provider.cipher_suites.iter().map(java_name).collect();
    provider.cipher_suites.retain(|suite| settings.ciphersuites.contains(&java_name(suite)));
    if provider.cipher_suites.is_empty() {
        return Err(format!(
            "ssl.quorum.ciphersuites: none of the listed suites is available (these are: {})",
            offered.join(",")
        ));
    }
    Ok(Arc::new(provider))
}

/// Whether `cert` names the peer: its IP address, or the host of its `server.N` line.
fn names_peer(cert: &CertificateDer<'_>, ip: IpAddr, host: Option<&str>) -> Result<(), String> {
    let parsed = ParsedCertificate::try_from(cert).map_err(|e| format!("bad certificate: {e}"))?;
    if verify_server_name(&parsed, &ServerName::IpAddress(ip.into())).is_ok() {
        return Ok(());
    }
    let host_ok = host
        .and_then(|h| ServerName::try_from(h).ok())
        .is_some_and(|name| verify_server_name(&parsed, &name).is_ok());
    if host_ok {
        return Ok(());
    }
    let also = host.map(|h| format!(" nor {h}")).unwrap_or_default();
    Err(format!(
        "host name verification failed: the peer's certificate names neither {ip}{also} \
         (ssl.quorum.hostnameVerification)"
    ))
}

/// rustls's WebPKI server verifier without its name check, which `names_peer` makes after the
/// handshake with the connection's address at hand. The chain is verified before the name
/// (`WebPkiServerVerifier::verify_server_cert`), so a name error means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match verified {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A socket with the byte `portUnification` already read from it put back in front.
struct Prefixed {
    first: Option<u8>,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() > 0
            && let Some(byte) = self.first.take()
        {
            buf.put_slice(&[byte]);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    use rustls::pki_types::pem::PemObject;
    use tokio::io::AsyncWriteExt;

    /// A temp dir removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let name = format!("zkr-qtls-{tag}-{}", std::process::id());
            let dir = std::env::temp_dir().join(name);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        (params.self_signed(&key).unwrap(), key)
    }

    /// A member's key store (key, then certificate) for `sans`, signed by `issuer`.
    fn key_store(sans: &[&str], issuer: &(rcgen::Certificate, KeyPair)) -> String {
        let key = KeyPair::generate().unwrap();
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let params = CertificateParams::new(sans).unwrap();
        let cert = params.signed_by(&key, &issuer.0, &issuer.1).unwrap();
        key.serialize_pem() + &cert.pem()
    }

    fn settings(dir: &TempDir, key_store: &str, ca: &str) -> QuorumTlsConfig {
        let mut quorum = QuorumTlsConfig::default();
        quorum.ssl_quorum = true;
        quorum.key_store = Some(dir.0.join(format!("{key_store}.pem")));
        quorum.trust_store = Some(dir.0.join(format!("{ca}.pem")));
        quorum
    }

    fn hosts() -> BTreeMap<ServerId, String> {
        BTreeMap::from([(ServerId(1), "127.0.0.1".to_string()), (ServerId(2), "localhost".into())])
    }

    #[test]
    fn unusable_stores_are_errors_naming_the_key_and_the_file() {
        let dir = TempDir::new("errors");
        let authority = ca("quorum CA");
        dir.write("ca.pem", &authority.0.pem());
        dir.write("member.pem", "");
        let mut quorum = settings(&dir, "member", "ca");
        let err = QuorumTls::load(&quorum, hosts()).err().unwrap();
        assert!(err.contains("ssl.quorum.keyStore.location"), "{err}");
        assert!(err.contains("no CERTIFICATE"), "an empty file: {err}");
        quorum.key_store = Some(dir.0.join("absent.pem"));
        let err = QuorumTls::load(&quorum, hosts()).err().unwrap();
        assert!(err.contains("absent.pem: cannot read it"), "{err}");
        // A certificate whose key is encrypted (the PKCS#8 form `openssl pkcs8 -topk8` writes).
        let cert_only = key_store(&["127.0.0.1"], &authority);
        let cert_only = &cert_only[cert_only.find("-----BEGIN CERTIFICATE").unwrap()..];
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0w\n\
                         -----END ENCRYPTED PRIVATE KEY-----\n";
        let path = dir.write("encrypted.pem", &format!("{encrypted}{cert_only}"));
        quorum.key_store = Some(path);
        let err = QuorumTls::load(&quorum, hosts()).err().unwrap();
        assert!(err.contains("the private key is encrypted"), "{err}");
        dir.write("member.pem", &key_store(&["127.0.0.1"], &authority));
        quorum.key_store = Some(dir.0.join("member.pem"));
        quorum.trust_store = Some(dir.write("garbage.pem", "not PEM at all"));
        let err = QuorumTls::load(&quorum, hosts()).err().unwrap();
        assert!(err.contains("ssl.quorum.trustStore.location"), "{err}");
        quorum.trust_store = Some(dir.0.join("ca.pem"));
        assert!(QuorumTls::load(&quorum, hosts()).is_ok());
        quorum.ciphersuites = vec!["TLS_RSA_WITH_RC4_128_MD5".into()];
        let err = QuorumTls::load(&quorum, hosts()).err().unwrap();
        assert!(err.contains("ssl.quorum.ciphersuites"), "{err}");
    }

    #[test]
    fn a_certificate_names_the_peer_by_address_or_by_its_server_line_host() {
        let authority = ca("quorum CA");
        let by_ip = key_store(&["127.0.0.1"], &authority);
        let by_name = key_store(&["localhost"], &authority);
        let cert = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(names_peer(&cert(&by_ip), loopback, None).is_ok());
        assert!(names_peer(&cert(&by_ip), "127.0.0.2".parse().unwrap(), None).is_err());
        let err = names_peer(&cert(&by_name), loopback, Some("127.0.0.1")).unwrap_err();
        assert!(err.contains("names neither 127.0.0.1 nor 127.0.0.1"), "{err}");
        assert!(names_peer(&cert(&by_name), loopback, Some("localhost")).is_ok());
    }

    #[test]
    fn stores_are_reloaded_only_when_asked_and_changed() {
        let dir = TempDir::new("reload");
        let authority = ca("quorum CA");
        dir.write("ca.pem", &authority.0.pem());
        dir.write("member.pem", &key_store(&["127.0.0.1"], &authority));
        let mut quorum = settings(&dir, "member", "ca");
        let fixed = QuorumTls::load(&quorum, hosts()).unwrap();
        quorum.reload_cert_files = true;
        let reloading = QuorumTls::load(&quorum, hosts()).unwrap();
        let before = (fixed.current().0, reloading.current().0);
        assert!(Arc::ptr_eq(&reloading.current().0, &before.1), "unchanged files: no rebuild");
        dir.write("member.pem", &key_store(&["127.0.0.1", "localhost"], &authority));
        assert!(Arc::ptr_eq(&fixed.current().0, &before.0), "reload off: kept");
        assert!(!Arc::ptr_eq(&reloading.current().0, &before.1), "reload on: rebuilt");
        let rebuilt = reloading.current().0;
        dir.write("member.pem", "broken");
        assert!(Arc::ptr_eq(&reloading.current().0, &rebuilt), "a failed reload keeps the old");
    }

    /// Two members' TLS over loopback: `accept` on one side, `connect` on the other.
    async fn handshake(
        server: &QuorumTls,
        client: &QuorumTls,
    ) -> (Result<(), String>, Result<(), String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        let accepting = async {
            let (tcp, _) = listener.accept().await.unwrap();
            let (mut stream, _) = server.accept(tcp).await?;
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
            Ok(())
        };
        let connecting = async {
            let tcp = TcpStream::connect(at).await.unwrap();
            let mut stream = client.connect(tcp, ServerId(1)).await?;
            stream.write_all(&[7]).await.map_err(|e| e.to_string())?;
            stream.flush().await.map_err(|e| e.to_string())?;
            // With TLS 1.3 a refused client certificate shows as an alert on the next read.
            let mut byte = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut byte)).await {
                Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => Err(e.to_string()),
                _ => Ok(()),
            }
        };
        tokio::join!(accepting, connecting)
    }

    #[test]
    fn members_of_one_ca_talk_and_a_member_of_another_is_refused_both_ways() {
        let dir = TempDir::new("handshake");
        let authority = ca("quorum CA");
        let other = ca("another CA");
        dir.write("ca.pem", &authority.0.pem());
        dir.write("other-ca.pem", &other.0.pem());
        dir.write("a.pem", &key_store(&["127.0.0.1"], &authority));
        dir.write("b.pem", &key_store(&["127.0.0.1"], &authority));
        dir.write("rogue.pem", &key_store(&["127.0.0.1"], &other));
        let a = QuorumTls::load(&settings(&dir, "a", "ca"), hosts()).unwrap();
        let b = QuorumTls::load(&settings(&dir, "b", "ca"), hosts()).unwrap();
        // The rogue trusts our CA: only our side refuses it.
        let rogue = QuorumTls::load(&settings(&dir, "rogue", "ca"), hosts()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (accepted, connected) = handshake(&a, &b).await;
            assert_eq!((accepted, connected), (Ok(()), Ok(())));
            let (accepted, connected) = handshake(&a, &rogue).await;
            let accepted = accepted.unwrap_err();
            assert!(accepted.contains("TLS handshake failed"), "{accepted}");
            assert!(connected.is_err(), "the rogue hears of it: {connected:?}");
            let (accepted, connected) = handshake(&rogue, &a).await;
            let connected = connected.unwrap_err();
            assert!(connected.contains("UnknownIssuer"), "{connected}");
            assert!(accepted.is_err());
        });
    }

    #[test]
    fn a_plain_connection_is_closed_unless_ports_are_unified() {
        let dir = TempDir::new("plain");
        let authority = ca("quorum CA");
        dir.write("ca.pem", &authority.0.pem());
        dir.write("a.pem", &key_store(&["127.0.0.1"], &authority));
        let mut quorum = settings(&dir, "a", "ca");
        let strict = QuorumTls::load(&quorum, hosts()).unwrap();
        quorum.port_unification = true;
        let unified = QuorumTls::load(&quorum, hosts()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            for (tls, plain_ok) in [(&strict, false), (&unified, true)] {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let mut plain = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
                plain.write_u64(2).await.unwrap();
                let (tcp, _) = listener.accept().await.unwrap();
                match tls.accept(tcp).await {
                    Ok((mut stream, cert)) => {
                        assert!(plain_ok, "a plain peer accepted by a TLS-only port");
                        assert!(cert.is_none());
                        assert_eq!(stream.read_u64().await.unwrap(), 2, "the first byte kept");
                    }
                    Err(e) => {
                        assert!(!plain_ok, "refused with port unification: {e}");
                        assert!(e.contains("TLS handshake failed"), "{e}");
                    }
                }
            }
            let (accepted, connected) = handshake(&unified, &strict).await;
            assert_eq!((accepted, connected), (Ok(()), Ok(())), "TLS on a unified port");
        });
    }
}
