//! TLS on `secureClientPort` with rustls (the `ring` provider), driven sans-IO: a connection task
//! keeps its readiness loop (`readable`/`try_read`, `writable`/`try_write`) and `ClientStream`
//! puts a `rustls::ServerConnection` between that loop and the socket. The handshake happens
//! inside the same loop, under the same `nio.sessionlessCnxnTimeout` deadline as the
//! ConnectRequest, so a client that never finishes it costs no more than a silent plain one.
//!
//! Keys (ZooKeeper's, PEM only as in 3.6+ with `ssl.keyStore.type=PEM`): `ssl.keyStore.location`
//! holds the server's private key and certificate chain, `ssl.trustStore.location` the CA
//! certificates client certificates must chain to, `ssl.clientAuth` none/want/need. A verified
//! client certificate's subject, in RFC 2253 form as Java's `X500Principal.getName()` writes it,
//! becomes the connection's `x509:` id (reported to the core as `Input::ClientCertificate`).
//!
//! Invariant: plaintext leaves `ClientStream::try_read` only after the handshake completed, and
//! the subject is taken (once) before the first plaintext is handed on.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use crate::net::TcpStream;
use crate::security::{ClientAuth, SecurityConfig};

/// Plaintext taken per `try_write`, so that one call never queues much more than a TLS record.
const PLAINTEXT_CHUNK_BYTES: usize = 16 * 1024;

/// Builds the rustls server configuration from the `ssl.*` keys.
pub fn server_config(security: &SecurityConfig) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key_store = security.key_store.as_ref().ok_or("secureClientPort needs a key store")?;
    let (certs, key) = load_key_store(key_store, "ssl.keyStore.location")?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match (security.client_auth, &security.trust_store) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(trust_store)) => {
            let roots = load_trust_store(trust_store, "ssl.trustStore.location")?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier =
                if auth == ClientAuth::Want { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("TLS: {e}"))?)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| format!("TLS: {e}"))?;
    Ok(Arc::new(config))
}

/// Reads a PEM key store: the certificate chain and the (unencrypted) private key. `key` names
/// the zoo.cfg key in errors.
pub fn load_key_store(
    path: &Path,
    key: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let shown = path.display();
    let text = std::fs::read(path).map_err(|e| format!("{key} {shown}: cannot read it: {e}"))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{key} {shown}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{key} {shown}: no CERTIFICATE in the file"));
    }
    let encrypted = text.windows(ENCRYPTED_MARK.len()).any(|w| w == ENCRYPTED_MARK);
    let private_key = PrivateKeyDer::from_pem_slice(&text).map_err(|e| {
        if encrypted {
            format!(
                "{key} {shown}: the private key is encrypted, which is not supported (PEM keys \
                 must be unencrypted; `openssl pkey -in KEY -out PLAIN` decrypts one)"
            )
        } else {
            format!("{key} {shown}: no usable private key: {e}")
        }
    })?;
    Ok((certs, private_key))
}

/// `ENCRYPTED PRIVATE KEY` (PKCS#8) and `Proc-Type: 4,ENCRYPTED` (OpenSSL's legacy form).
const ENCRYPTED_MARK: &[u8] = b"ENCRYPTED";

/// Reads a PEM trust store: at least one CA certificate.
pub fn load_trust_store(path: &Path, key: &str) -> Result<RootCertStore, String> {
    let shown = path.display();
    let text = std::fs::read(path).map_err(|e| format!("{key} {shown}: cannot read it: {e}"))?;
    let cas = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key} {shown}: {e}"))?;
    if cas.is_empty() {
        return Err(format!("{key} {shown}: no CERTIFICATE in the file"));
    }
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca).map_err(|e| format!("{key} {shown}: {e}"))?;
    }
    Ok(roots)
}

/// A client connection's byte stream: plain TCP, or TLS over it.
// madsim's simulated TcpStream is far larger than tokio's; the TLS state is boxed either way.
#[cfg_attr(madsim, allow(clippy::large_enum_variant))]
pub enum ClientStream {
    /// `clientPort`.
    Plain(TcpStream),
    /// `secureClientPort`.
    Tls(Box<TlsStream>),
}

/// rustls's connection state beside its socket.
pub struct TlsStream {
    tcp: TcpStream,
    tls: ServerConnection,
    /// The subject was handed out (or there was no certificate to hand out).
    subject_taken: bool,
    /// Decrypted bytes wait in rustls (the socket may have nothing more to read).
    plaintext_pending: bool,
}

/// `io::Read`/`io::Write` over a socket's non-blocking calls, for rustls's `read_tls`/`write_tls`.
struct NonBlocking<'a>(&'a TcpStream);

impl Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ClientStream {
    /// A TLS server connection over `tcp`.
    pub fn tls(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<ClientStream> {
        let tls = ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(ClientStream::Tls(Box::new(TlsStream {
            tcp,
            tls,
            subject_taken: false,
            plaintext_pending: false,
        })))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(tcp) => tcp,
            ClientStream::Tls(s) => &s.tcp,
        }
    }

    /// Waits until `try_read` may make progress.
    pub async fn readable(&self) -> io::Result<()> {
        if let ClientStream::Tls(s) = self
            && s.plaintext_pending
        {
            return Ok(());
        }
        self.tcp().readable().await
    }

    /// Waits until `try_write` (or a flush of TLS records) may make progress.
    pub async fn writable(&self) -> io::Result<()> {
        self.tcp().writable().await
    }

    /// Whether TLS records (handshake, alerts, encrypted output) wait to be written.
    pub fn wants_write(&self) -> bool {
        match self {
            ClientStream::Plain(_) => false,
            ClientStream::Tls(s) => s.tls.wants_write(),
        }
    }

    /// Reads plaintext without blocking: `Ok(0)` at the end of the stream, `WouldBlock` when
    /// nothing is available yet (a TLS handshake in progress reads and answers records here).
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let s = match self {
            ClientStream::Plain(tcp) => return tcp.try_read(buf),
            ClientStream::Tls(s) => s,
        };
        loop {
            match s.tls.reader().read(buf) {
                Ok(n) => {
                    let state = s.tls.process_new_packets();
                    s.plaintext_pending = state.is_ok_and(|st| st.plaintext_bytes_to_read() > 0);
                    return Ok(n);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
            if s.tls.read_tls(&mut NonBlocking(&s.tcp))? == 0 {
                return Ok(0);
            }
            let processed = s.tls.process_new_packets();
            // Handshake replies and alerts go out now if the socket takes them; the rest waits
            // for `flush`, which the connection loop calls while `wants_write` holds.
            let _ = s.flush();
            if let Err(err) = processed {
                return Err(io::Error::new(io::ErrorKind::InvalidData, err));
            }
        }
    }

    /// Writes plaintext without blocking; earlier TLS records go first.
    pub fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let s = match self {
            ClientStream::Plain(tcp) => return tcp.try_write(buf),
            ClientStream::Tls(s) => s,
        };
        s.flush()?;
        if s.tls.wants_write() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = s.tls.writer().write(&buf[..buf.len().min(PLAINTEXT_CHUNK_BYTES)])?;
        match s.flush() {
            Ok(()) => Ok(n),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(n),
            Err(err) => Err(err),
        }
    }

    /// Writes pending TLS records without blocking (`Ok` once none is left).
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(_) => Ok(()),
            ClientStream::Tls(s) => s.flush(),
        }
    }

    /// The verified client certificate's subject, once, after the handshake; `None` before,
    /// without a certificate, and after the first call.
    pub fn take_peer_subject(&mut self) -> Option<String> {
        let ClientStream::Tls(s) = self else {
            return None;
        };
        if s.subject_taken || s.tls.is_handshaking() {
            return None;
        }
        s.subject_taken = true;
        let cert = s.tls.peer_certificates()?.first()?;
        match subject_rfc2253(cert.as_ref()) {
            Ok(subject) => Some(subject),
            Err(err) => {
                tracing::warn!(%err, "client certificate subject unreadable; no x509 id");
                None
            }
        }
    }

    /// Writes all of `data` (four-letter-word answers), then flushes.
    pub async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() || self.wants_write() {
            self.writable().await?;
            if data.is_empty() {
                match self.flush() {
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                    other => other?,
                }
                continue;
            }
            match self.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Ends the stream: TLS close_notify (best effort), then the socket's write side.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        if let ClientStream::Tls(s) = self {
            s.tls.send_close_notify();
            let _ = s.flush();
        }
        match self {
            ClientStream::Plain(tcp) => shutdown_tcp(tcp).await,
            ClientStream::Tls(s) => shutdown_tcp(&mut s.tcp).await,
        }
    }

    /// SO_LINGER 0 on the socket.
    pub fn set_zero_linger(&self) -> io::Result<()> {
        self.tcp().set_zero_linger()
    }
}

#[cfg(not(madsim))]
async fn shutdown_tcp(tcp: &mut TcpStream) -> io::Result<()> {
    tokio::io::AsyncWriteExt::shutdown(tcp).await
}

#[cfg(madsim)]
async fn shutdown_tcp(tcp: &mut TcpStream) -> io::Result<()> {
    tcp.shutdown().await
}

impl TlsStream {
    fn flush(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            self.tls.write_tls(&mut NonBlocking(&self.tcp))?;
        }
        Ok(())
    }
}

/// A certificate's subject DN as Java's `X500Principal.getName()` (RFC 2253) writes it: RDNs
/// last to first, `,` between them, `+` inside a multi-valued one, the usual keywords (CN, C, L,
/// ST, O, OU, STREET, DC, UID) and `OID=#hex` (the value's DER) for any other attribute.
pub fn subject_rfc2253(der: &[u8]) -> Result<String, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("not a certificate: {e}"))?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let mut parts = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let keyword = match oid.as_str() {
                "2.5.4.3" => Some("CN"),
                "2.5.4.6" => Some("C"),
                "2.5.4.7" => Some("L"),
                "2.5.4.8" => Some("ST"),
                "2.5.4.10" => Some("O"),
                "2.5.4.11" => Some("OU"),
                "2.5.4.9" => Some("STREET"),
                "0.9.2342.19200300.100.1.25" => Some("DC"),
                "0.9.2342.19200300.100.1.1" => Some("UID"),
                _ => None,
            };
            match (keyword, attr.as_str()) {
                (Some(keyword), Ok(value)) => parts.push(format!("{keyword}={}", escape(value))),
                _ => {
                    let value = attr.attr_value();
                    let data = value.data;
                    let mut der = vec![value.header.tag().0 as u8];
                    der.extend(der_length(data.len()));
                    der.extend_from_slice(data);
                    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                    parts.push(format!("{oid}=#{hex}"));
                }
            }
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

fn der_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

/// RFC 2253 §2.4 escaping.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_print_as_java_does() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc");
        dn.push(rcgen::DnType::CommonName, "client one");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let subject = subject_rfc2253(cert.der()).unwrap();
        assert_eq!(subject, "CN=client one,O=Acme\\, Inc,C=US");
        assert!(subject_rfc2253(b"not a certificate").is_err());
    }

    /// The x509-ACL case of tests/python/test_security.py: a subject whose DER lists CN before
    /// O prints O first. `openssl x509 -subject -nameopt RFC2253` and Java's
    /// `X500Principal.getName()` print `O=zkr tests,CN=kazoo-client` for `-subj
    /// "/CN=kazoo-client/O=zkr tests"`.
    #[test]
    fn the_last_rdn_prints_first_as_java_and_openssl_print_it() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "kazoo-client");
        dn.push(rcgen::DnType::OrganizationName, "zkr tests");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(subject_rfc2253(cert.der()).unwrap(), "O=zkr tests,CN=kazoo-client");
    }

    #[test]
    fn rfc2253_escapes_specials_and_edge_spaces() {
        assert_eq!(escape("a+b"), "a\\+b");
        assert_eq!(escape(" #x "), "\\ #x\\ ");
        assert_eq!(escape("#x"), "\\#x");
        assert_eq!(der_length(5), vec![5]);
        assert_eq!(der_length(300), vec![0x82, 0x01, 0x2c]);
    }
}
