//! SASL on the client port (opcode 102) with the DIGEST-MD5 mechanism (RFC 2831), as ZooKeeper's
//! `ZooKeeperServer.processSasl` and the JDK's DigestMD5Server do it, plus the
//! `enforce.auth.enabled` / `sessionRequireClientSASLAuth` gate (`AuthenticationHelper`).
//!
//! The exchange, two round trips on one connection after its ConnectRequest:
//! 1. the client sends an empty token; the server answers with a challenge naming the realm
//!    `zk-sasl-md5`, a fresh nonce, `qop="auth"`, `charset=utf-8`, `algorithm=md5-sess`;
//! 2. the client sends its digest response (user name, cnonce, `nc`, digest-uri
//!    `zookeeper/zk-sasl-md5`, response hash); the server checks it against the user's password
//!    from `Config::sasl_users` and answers `rspauth=...`, proving it knows the password too.
//!    The connection then holds `sasl:<user>` (and `super` for `zookeeper.superUser`).
//!
//! Any failure answers AUTHFAILED (SESSIONCLOSEDREQUIRESASLAUTH when SASL is enforced) with a
//! null token and closes the connection, as ZooKeeper does when `allowSaslFailedClients` is off.
//! Only `qop=auth` is offered: no integrity or confidentiality layer (ZooKeeper's server never
//! wraps either). GSSAPI (Kerberos) is not implemented.
//!
//! Invariants: the nonce comes from the node's seeded PRNG (a run replays exactly); a
//! connection gains a `sasl` id only from a verified response to the nonce it was sent, once.

use std::collections::BTreeMap;

use base64::Engine;
use md5::{Digest, Md5};
use rand::RngCore;

use crate::conn::SaslState;
use crate::proto::client::ReplyHeader;
use crate::proto::codec;
use crate::proto::error::ZkError;
use crate::proto::jute::{Reader, Writer};
use crate::shared::Shared;
use crate::types::{ConnId, Id};

/// The realm and server name ZooKeeper hard-codes for DIGEST-MD5 (`SecurityUtils`).
pub const REALM: &str = "zk-sasl-md5";
/// The digest-uri a client must name: `<protocol>/<server name>`.
pub const DIGEST_URI: &str = "zookeeper/zk-sasl-md5";

/// Why a SASL token was refused (logged; the client only sees AUTHFAILED).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaslError {
    /// The token is not a well-formed digest response.
    Malformed(&'static str),
    /// A directive has a value the server cannot accept.
    Mismatch(&'static str),
    /// No such user in the JAAS `Server` section.
    UnknownUser,
    /// The response hash is wrong: wrong password.
    BadResponse,
    /// A token after the exchange completed, or a non-empty first token.
    OutOfSequence,
}

/// The first server message: the digest challenge for `nonce`.
pub fn challenge(nonce: &str) -> Vec<u8> {
    assert!(!nonce.contains(['"', '\\']), "a nonce needs no quoting");
    format!("realm=\"{REALM}\",nonce=\"{nonce}\",qop=\"auth\",charset=utf-8,algorithm=md5-sess")
        .into_bytes()
}

/// Checks a digest response against the challenge's `nonce` and the configured users; returns
/// the authenticated user and the `rspauth=...` token that completes the exchange.
pub fn verify_response(
    token: &[u8],
    nonce: &str,
    users: &BTreeMap<String, String>,
) -> Result<(String, Vec<u8>), SaslError> {
    let fields = parse_directives(token)?;
    let get = |key: &'static str| fields.get(key).map(Vec::as_slice);
    let text = |key: &'static str| -> Result<String, SaslError> {
        let value = get(key).ok_or(SaslError::Malformed(key))?;
        String::from_utf8(value.to_vec()).map_err(|_| SaslError::Malformed(key))
    };
    let username = text("username")?;
    let cnonce = text("cnonce")?;
    let nc = text("nc")?;
    let response = text("response")?;
    if text("nonce")? != nonce {
        return Err(SaslError::Mismatch("nonce"));
    }
    if fields.get("realm").is_some_and(|r| r.as_slice() != REALM.as_bytes()) {
        return Err(SaslError::Mismatch("realm"));
    }
    if get("qop").is_some_and(|q| q != b"auth") {
        return Err(SaslError::Mismatch("qop"));
    }
    if nc != "00000001" {
        return Err(SaslError::Mismatch("nc"));
    }
    if !text("digest-uri")?.eq_ignore_ascii_case(DIGEST_URI) {
        return Err(SaslError::Mismatch("digest-uri"));
    }
    let authzid = fields.get("authzid").map(|a| String::from_utf8_lossy(a).into_owned());
    let password = users.get(&username).ok_or(SaslError::UnknownUser)?;
    let secret = Secret { username: &username, password, nonce, cnonce: &cnonce, authzid };
    let expected = secret.response_hash(&nc, "AUTHENTICATE:");
    assert_eq!(expected.len(), 32, "an MD5 hex digest");
    if !constant_time_eq(expected.as_bytes(), response.to_ascii_lowercase().as_bytes()) {
        return Err(SaslError::BadResponse);
    }
    let rspauth = format!("rspauth={}", secret.response_hash(&nc, ":"));
    Ok((username, rspauth.into_bytes()))
}

/// What both sides hash (RFC 2831 §2.1.2.1).
struct Secret<'a> {
    username: &'a str,
    password: &'a str,
    nonce: &'a str,
    cnonce: &'a str,
    authzid: Option<String>,
}

impl Secret<'_> {
    /// `HEX(KD(HEX(H(A1)), nonce:nc:cnonce:qop:HEX(H(A2))))` with `A2 = prefix + digest-uri`:
    /// `AUTHENTICATE:` for the client's response, `:` for the server's rspauth.
    fn response_hash(&self, nc: &str, a2_prefix: &str) -> String {
        let mut user_hash = Md5::new();
        user_hash.update(rfc2831_bytes(self.username));
        user_hash.update(b":");
        user_hash.update(REALM.as_bytes());
        user_hash.update(b":");
        user_hash.update(rfc2831_bytes(self.password));
        let mut a1 = user_hash.finalize().to_vec();
        a1.extend_from_slice(format!(":{}:{}", self.nonce, self.cnonce).as_bytes());
        if let Some(authzid) = &self.authzid {
            a1.push(b':');
            a1.extend_from_slice(authzid.as_bytes());
        }
        let a2 = format!("{a2_prefix}{DIGEST_URI}");
        let kd = format!(
            "{}:{}:{nc}:{}:auth:{}",
            hex(&Md5::digest(&a1)),
            self.nonce,
            self.cnonce,
            hex(&Md5::digest(a2.as_bytes()))
        );
        hex(&Md5::digest(kd.as_bytes()))
    }
}

/// RFC 2831 §2.1.2.1: a user name or password whose characters all fit ISO 8859-1 is hashed in
/// that encoding, any other in UTF-8 (as the JDK's DigestMD5Server does).
fn rfc2831_bytes(s: &str) -> Vec<u8> {
    if s.chars().all(|c| (c as u32) < 0x100) {
        s.chars().map(|c| c as u8).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses `key=value,key="quoted \" value",...` (RFC 2831 §7.1); a repeated key is an error.
pub fn parse_directives(token: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, SaslError> {
    let mut fields = BTreeMap::new();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < token.len() && (token[*i] == b' ' || token[*i] == b'\t') {
            *i += 1;
        }
    };
    while i < token.len() {
        skip_space(&mut i);
        let key_start = i;
        while i < token.len() && token[i] != b'=' && token[i] != b',' {
            i += 1;
        }
        let key = String::from_utf8_lossy(&token[key_start..i]).trim().to_ascii_lowercase();
        if i >= token.len() || token[i] != b'=' || key.is_empty() {
            return Err(SaslError::Malformed("directive without a value"));
        }
        i += 1;
        skip_space(&mut i);
        let mut value = Vec::new();
        if token.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match token.get(i) {
                    None => return Err(SaslError::Malformed("unterminated quoted value")),
                    Some(b'"') => break,
                    Some(b'\\') if i + 1 < token.len() => {
                        value.push(token[i + 1]);
                        i += 2;
                        continue;
                    }
                    Some(&b) => value.push(b),
                }
                i += 1;
            }
            i += 1;
        } else {
            while i < token.len() && token[i] != b',' {
                value.push(token[i]);
                i += 1;
            }
            value.truncate(value.trim_ascii_end().len());
        }
        skip_space(&mut i);
        if i < token.len() && token[i] != b',' {
            return Err(SaslError::Malformed("text after a quoted value"));
        }
        i += 1;
        if fields.insert(key, value).is_some() {
            return Err(SaslError::Malformed("a directive appears twice"));
        }
    }
    Ok(fields)
}

/// `GetSASLRequest`'s token from a request frame (after the 8-byte header).
fn decode_token(payload: &[u8]) -> Option<Vec<u8>> {
    let mut r = Reader::new(payload.get(8..)?);
    let token = r.read_buffer("GetSASLRequest.token").ok()?;
    r.finish("GetSASLRequest").ok()?;
    Some(token.unwrap_or_default())
}

/// `ReplyHeader` + `SetSASLResponse{token}`, framed.
fn encode_reply(header: &ReplyHeader, token: Option<&[u8]>) -> Vec<u8> {
    let mut w = Writer::new();
    w.write_i32(header.xid);
    w.write_i64(header.zxid);
    w.write_i32(header.err);
    w.write_buffer(token);
    crate::proto::frame::frame(w.as_slice())
}

impl Shared {
    /// A SASL packet (opcode 102): answered at once, out of band, with zxid 0, as
    /// `ZooKeeperServer.processSasl` does.
    pub(crate) fn on_sasl(&mut self, conn: ConnId, xid: i32, payload: &[u8]) {
        let state = self.conns.get(&conn).and_then(|c| c.sasl.clone());
        let step = match (decode_token(payload), state) {
            (None, _) => Err(SaslError::Malformed("GetSASLRequest")),
            (Some(token), None) if token.is_empty() => {
                let mut bytes = [0u8; 24];
                self.rng.fill_bytes(&mut bytes);
                let nonce = base64::engine::general_purpose::STANDARD.encode(bytes);
                let reply = challenge(&nonce);
                Ok((SaslState::AwaitResponse { nonce }, reply, None))
            }
            (Some(token), Some(SaslState::AwaitResponse { nonce })) => {
                verify_response(&token, &nonce, &self.config.sasl_users)
                    .map(|(user, rspauth)| (SaslState::Complete, rspauth, Some(user)))
            }
            (Some(_), _) => Err(SaslError::OutOfSequence),
        };
        let c = self.conns.get_mut(&conn).expect("an established connection");
        match step {
            Ok((state, token, user)) => {
                c.sasl = Some(state);
                if let Some(user) = user {
                    tracing::info!(?conn, %user, "SASL DIGEST-MD5 authenticated");
                    push_id(&mut c.ids, Id::new("sasl", &user));
                    if self.config.sasl_super_user.as_deref() == Some(user.as_str()) {
                        push_id(&mut c.ids, Id::new("super", ""));
                    }
                }
                let header = ReplyHeader { xid, zxid: 0, err: 0 };
                self.send(conn, encode_reply(&header, Some(&token)));
            }
            Err(why) => {
                tracing::warn!(?conn, ?why, "SASL authentication failed; closing");
                let err = if self.config.enforce_auth_schemes.iter().any(|s| s == "sasl") {
                    ZkError::SessionClosedRequireSaslAuth
                } else {
                    ZkError::AuthFailed
                };
                let header = ReplyHeader { xid, zxid: 0, err: err.code() };
                self.send(conn, encode_reply(&header, None));
                self.close_conn(conn);
            }
        }
    }

    /// `AuthenticationHelper.enforceAuthentication`: with auth enforced, a request (other than
    /// auth and SASL) from a connection holding no id of an enforced scheme is answered
    /// SESSIONCLOSEDREQUIRESASLAUTH and the connection closed. Returns whether it was refused.
    pub(crate) fn refuse_unauthenticated(&mut self, conn: ConnId, xid: i32, op: i32) -> bool {
        let schemes = &self.config.enforce_auth_schemes;
        if schemes.is_empty() || op == 100 || op == 102 {
            return false;
        }
        let c = self.conns.get(&conn).expect("an established connection");
        if c.ids.iter().any(|id| schemes.contains(&id.scheme)) {
            return false;
        }
        tracing::warn!(?conn, ?schemes, "request before authentication; closing");
        let err = ZkError::SessionClosedRequireSaslAuth.code();
        let header = ReplyHeader { xid, zxid: 0, err };
        self.send(conn, codec::encode_reply(&header, None));
        self.close_conn(conn);
        true
    }

    /// A verified TLS client certificate: the connection holds `x509:<subject>` (and `super`
    /// for `zookeeper.X509AuthenticationProvider.superUser`), as ZooKeeper's
    /// `X509AuthenticationProvider.handleAuthentication` adds at the end of the handshake.
    pub(crate) fn on_client_certificate(&mut self, conn: ConnId, subject: String) {
        let is_super = self.config.x509_super_user.as_deref() == Some(subject.as_str());
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if is_super {
            push_id(&mut c.ids, Id::new("super", &subject));
        }
        push_id(&mut c.ids, Id::new("x509", &subject));
        assert!(c.ids.iter().any(|id| id.scheme == "x509" && id.id == subject));
    }
}

fn push_id(ids: &mut std::sync::Arc<Vec<Id>>, id: Id) {
    if !ids.contains(&id) {
        std::sync::Arc::make_mut(ids).push(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side of RFC 2831, written independently of `Secret` (as puresasl does).
    fn client_response(user: &str, password: &str, nonce: &str, cnonce: &str) -> String {
        let key = Md5::digest(format!("{user}:{REALM}:{password}").as_bytes());
        let mut a1 = key.to_vec();
        a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
        let a2 = format!("AUTHENTICATE:{DIGEST_URI}");
        let kd = format!(
            "{}:{nonce}:00000001:{cnonce}:auth:{}",
            hex(&Md5::digest(&a1)),
            hex(&Md5::digest(a2.as_bytes()))
        );
        let response = hex(&Md5::digest(kd.as_bytes()));
        format!(
            "qop=auth,realm=\"{REALM}\",username=\"{user}\",nonce=\"{nonce}\",\
             cnonce=\"{cnonce}\",nc=00000001,digest-uri=\"{DIGEST_URI}\",response={response}"
        )
    }

    fn users() -> BTreeMap<String, String> {
        BTreeMap::from([("jaasuser".to_string(), "jaas_password".to_string())])
    }

    #[test]
    fn a_correct_response_authenticates_and_gets_rspauth() {
        let token = client_response("jaasuser", "jaas_password", "N0nce", "c1");
        let (user, rspauth) = verify_response(token.as_bytes(), "N0nce", &users()).unwrap();
        assert_eq!(user, "jaasuser");
        assert!(rspauth.starts_with(b"rspauth="));
        assert_eq!(rspauth.len(), "rspauth=".len() + 32);
    }

    #[test]
    fn wrong_password_user_nonce_or_uri_are_refused() {
        let bad = client_response("jaasuser", "wrong", "N0nce", "c1");
        assert_eq!(verify_response(bad.as_bytes(), "N0nce", &users()), Err(SaslError::BadResponse));
        let nobody = client_response("nobody", "jaas_password", "N0nce", "c1");
        let refused = verify_response(nobody.as_bytes(), "N0nce", &users());
        assert_eq!(refused, Err(SaslError::UnknownUser));
        let good = client_response("jaasuser", "jaas_password", "N0nce", "c1");
        let replayed = verify_response(good.as_bytes(), "other", &users());
        assert_eq!(replayed, Err(SaslError::Mismatch("nonce")));
        let uri = good.replace(DIGEST_URI, "zookeeper/elsewhere");
        let moved = verify_response(uri.as_bytes(), "N0nce", &users());
        assert_eq!(moved, Err(SaslError::Mismatch("digest-uri")));
    }

    #[test]
    fn directives_parse_quotes_escapes_and_reject_repeats() {
        let parsed = parse_directives(br#"a=1, b="x\"y,z" ,c=tok "#).unwrap();
        assert_eq!(parsed["a"], b"1");
        assert_eq!(parsed["b"], b"x\"y,z");
        assert_eq!(parsed["c"], b"tok");
        assert!(parse_directives(b"a=1,a=2").is_err());
        assert!(parse_directives(b"a=\"open").is_err());
        assert!(parse_directives(b"novalue").is_err());
    }

    #[test]
    fn latin1_passwords_hash_in_latin1() {
        assert_eq!(rfc2831_bytes("p\u{e4}ss"), vec![b'p', 0xe4, b's', b's']);
        assert_eq!(rfc2831_bytes("\u{263a}"), "\u{263a}".as_bytes().to_vec());
    }
}
