//! ACL checks, ACL fix-up and the auth providers the server knows: `digest`, `ip`, `sasl`
//! (`SASLAuthenticationProvider`) and `x509` (`X509AuthenticationProvider`) (reference §10.7).
//! `world` is handled inline, `super` has no provider (as in ZooKeeper). ZooKeeper registers
//! `sasl` and `x509` only when an `authProvider.N` key names them; here they are always on.
//!
//! Invariants: [`check_acl`] is a pure function of its arguments; [`fixup_acl`] never returns an
//! empty list and never returns an `auth` entry.

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::proto::error::ZkError;
use crate::types::{Acl, Id};

/// `ZooKeeperServer.checkACL`: skipACL → allow; empty ACL → allow; any `super` id → allow; else
/// some entry with a matching permission bit whose id is `world:anyone` or matches one of the
/// connection's ids of the same scheme.
pub fn check_acl(acl: &[Acl], ids: &[Id], wanted: i32, skip_acl: bool) -> bool {
    assert!(wanted != 0, "an ACL check must ask for at least one permission");
    if skip_acl || acl.is_empty() {
        return true;
    }
    if ids.iter().any(|id| id.scheme == "super") {
        return true;
    }
    for entry in acl {
        if entry.perms & wanted == 0 {
            continue;
        }
        if entry.id.scheme == "world" && entry.id.id == "anyone" {
            return true;
        }
        let same_scheme = ids.iter().filter(|id| id.scheme == entry.id.scheme);
        for id in same_scheme {
            if provider_matches(&entry.id.scheme, &id.id, &entry.id.id) {
                return true;
            }
        }
    }
    false
}

/// `AuthenticationProvider.matches` for the registered providers; unknown schemes never match.
fn provider_matches(scheme: &str, id: &str, acl_expr: &str) -> bool {
    match scheme {
        "digest" => id == acl_expr,
        "ip" => ip_matches(id, acl_expr),
        // SASLAuthenticationProvider.matches: the id `super` matches every sasl entry.
        "sasl" => id == acl_expr || id == "super",
        "x509" => id == acl_expr,
        _ => false,
    }
}

/// Whether a scheme's provider `isAuthenticated()` (so `auth` expands to its ids).
fn provider_is_authenticated(scheme: &str) -> bool {
    matches!(scheme, "digest" | "sasl" | "x509")
}

/// `AuthenticationProvider.isValid` for the registered providers; `None` if no provider.
fn provider_is_valid(scheme: &str, id: &str) -> Option<bool> {
    match scheme {
        "digest" => Some(java_split_len(id, ':') == 2),
        "ip" => Some(ip_expr_bits(id).is_some()),
        // SASLAuthenticationProvider.isValid: a Kerberos-style name, `user[/host][@REALM]`.
        "sasl" => Some(is_kerberos_name(id)),
        "x509" => Some(true),
        _ => None,
    }
}

/// `KerberosName`'s pattern `([^/@]+)(/([^/@]+))?(@([^/@]+))?`, anchored.
fn is_kerberos_name(id: &str) -> bool {
    let (rest, realm) = match id.split_once('@') {
        Some((rest, realm)) => (rest, Some(realm)),
        None => (id, None),
    };
    let (user, host) = match rest.split_once('/') {
        Some((user, host)) => (user, Some(host)),
        None => (rest, None),
    };
    let part = |p: &str| !p.is_empty() && !p.contains(['/', '@']);
    part(user) && host.is_none_or(part) && realm.is_none_or(part)
}

/// `s.split(sep).length` in Java: trailing empty strings are dropped.
fn java_split_len(s: &str, sep: char) -> usize {
    let parts: Vec<&str> = s.split(sep).collect();
    let trailing_empty = parts.iter().rev().take_while(|p| p.is_empty()).count();
    // Java returns [""] (length 1) for the empty string.
    if trailing_empty == parts.len() { 1 } else { parts.len() - trailing_empty }
}

/// `PrepRequestProcessor.fixupACL`: removes duplicates (first wins), rejects an empty list,
/// keeps `world:anyone`, expands `auth` to every authenticated id of the connection, and keeps
/// any other entry whose scheme has a provider that finds the id valid. Else INVALIDACL.
pub fn fixup_acl(acl: &[Acl], auth_ids: &[Id]) -> Result<Vec<Acl>, ZkError> {
    if acl.is_empty() {
        return Err(ZkError::InvalidAcl);
    }
    // The first of equal entries counts (no list of the unique ones: one allocation less per
    // create; lists are a handful of entries).
    let unique = acl.iter().enumerate().filter(|&(i, entry)| !acl[..i].contains(entry));
    let mut fixed = Vec::with_capacity(acl.len());
    for (_, entry) in unique {
        if entry.id.scheme == "world" && entry.id.id == "anyone" {
            fixed.push(entry.clone());
        } else if entry.id.scheme == "auth" {
            let authenticated = auth_ids.iter().filter(|id| provider_is_authenticated(&id.scheme));
            let before = fixed.len();
            fixed.extend(authenticated.map(|id| Acl { perms: entry.perms, id: id.clone() }));
            if fixed.len() == before {
                return Err(ZkError::InvalidAcl);
            }
        } else if provider_is_valid(&entry.id.scheme, &entry.id.id) == Some(true) {
            fixed.push(entry.clone());
        } else {
            return Err(ZkError::InvalidAcl);
        }
    }
    assert!(!fixed.is_empty(), "a fixed-up ACL is never empty");
    assert!(fixed.iter().all(|a| a.id.scheme != "auth"), "auth entries are always expanded");
    Ok(fixed)
}

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 units, wrapping.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// The jute-generated `Id.hashCode`: `37 * (37 * 17 + scheme.hashCode()) + id.hashCode()`.
fn java_id_hash(id: &Id) -> i32 {
    let result = 37i32.wrapping_mul(17).wrapping_add(java_string_hash(&id.scheme));
    37i32.wrapping_mul(result).wrapping_add(java_string_hash(&id.id))
}

/// Orders a connection's ids as ZooKeeper iterates them: `ServerCnxn.authInfo` is a set over a
/// `ConcurrentHashMap`, so whoAmI lists ids, and an `auth` ACL expands to them, in the order of
/// the map's bins (`spread(hash) & (table - 1)`), then of insertion within a bin. The table
/// starts at 16 bins and doubles when it reaches 3/4 full; past the first doubling the split of
/// a bin may reorder it (an approximation here, for connections with 12 ids or more).
pub fn java_auth_order(ids: &mut [Id]) {
    let mut bins = 16usize;
    while ids.len() >= bins - bins / 4 {
        bins *= 2;
    }
    let bin = |id: &Id| {
        let h = java_id_hash(id);
        let spread = (h ^ ((h as u32) >> 16) as i32) & 0x7fff_ffff;
        spread as usize & (bins - 1)
    };
    // A stable sort keeps the insertion order within a bin.
    ids.sort_by_key(|id| bin(id));
    assert!(ids.windows(2).all(|w| bin(&w[0]) <= bin(&w[1])));
}

/// `DigestAuthenticationProvider.generateDigest`: `user:` + base64(SHA1(`user:password`)), where
/// `user` is everything before the first `:` (the whole string if there is none).
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(hash);
    format!("{user}:{encoded}")
}

/// The ids a successful `addauth digest user:password` adds to a connection, in ZooKeeper's
/// order: `super:` first if the digest id equals the configured `superDigest`, then
/// `digest:<digest id>`. `super_digest` is `user:hash` (a leading `super:`-style user is part of
/// it, exactly as configured).
pub fn auth_digest(user_password: &str, super_digest: Option<&str>) -> Vec<Id> {
    let digest = digest_id(user_password);
    let mut ids = Vec::with_capacity(2);
    if super_digest == Some(digest.as_str()) {
        ids.push(Id::new("super", ""));
    }
    ids.push(Id::new("digest", &digest));
    ids
}

/// The whoAmI user name (`AuthenticationProvider.getUserName`): digest → the user part; ip → the
/// address; any scheme without a provider (such as `super`) → the raw id.
pub fn user_name(id: &Id) -> String {
    match id.scheme.as_str() {
        "digest" => id.id.split(':').next().unwrap_or("").to_string(),
        _ => id.id.clone(),
    }
}

/// Parses an IP address as ZooKeeper's `IPAuthenticationProvider.addr2Bytes` does: dotted IPv4
/// with four decimal parts 0–255 (leading zeros allowed), else IPv6.
fn addr_to_bytes(addr: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = addr.split('.').collect();
    if parts.len() == 4 {
        let mut bytes = Vec::with_capacity(4);
        for p in parts {
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            bytes.push(u8::try_from(p.parse::<u16>().ok()?).ok()?);
        }
        return Some(bytes);
    }
    let v6: std::net::Ipv6Addr = addr.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
    Some(v6.octets().to_vec())
}

/// An ip ACL expression `addr[/bits]`: the address bytes and the prefix length, or `None`.
fn ip_expr_bits(expr: &str) -> Option<(Vec<u8>, usize)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (expr, None),
    };
    let bytes = addr_to_bytes(addr)?;
    let max = bytes.len() * 8;
    let bits = match bits {
        None => max,
        Some(b) => {
            let n: i64 = b.parse().ok()?;
            if n < 0 || n as usize > max {
                return None;
            }
            n as usize
        }
    };
    Some((bytes, bits))
}

/// Zeroes every bit after the first `bits`.
fn mask(bytes: &mut [u8], bits: usize) {
    for (i, b) in bytes.iter_mut().enumerate() {
        let start = i * 8;
        if start >= bits {
            *b = 0;
        } else if bits - start < 8 {
            *b &= 0xffu8 << (8 - (bits - start));
        }
    }
}

/// `IPAuthenticationProvider.matches`: same family and equal under the expression's prefix.
pub fn ip_matches(remote: &str, acl_expr: &str) -> bool {
    let Some((mut acl_addr, bits)) = ip_expr_bits(acl_expr) else {
        return false;
    };
    let Some(mut remote_addr) = addr_to_bytes(remote) else {
        return false;
    };
    if remote_addr.len() != acl_addr.len() {
        return false;
    }
    mask(&mut acl_addr, bits);
    mask(&mut remote_addr, bits);
    acl_addr == remote_addr
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Apache ZooKeeper 3.8 answers whoAmI after `addauth digest alice:secret` on a loopback
    /// connection with the digest id first, then the ip id (their bins are 0 and 12 of 16).
    #[test]
    fn auth_ids_are_ordered_as_zookeepers_hash_set() {
        let digest = Id::new("digest", &digest_id("alice:secret"));
        let ip = Id::new("ip", "127.0.0.1");
        let mut ids = vec![ip.clone(), digest.clone()];
        java_auth_order(&mut ids);
        assert_eq!(ids, vec![digest.clone(), ip.clone()]);
        java_auth_order(&mut ids);
        assert_eq!(ids, vec![digest, ip], "already ordered: unchanged");
        assert_eq!(java_string_hash("ip"), 3367);
        assert_eq!(java_string_hash("hello"), 99162322);
    }

    #[test]
    fn java_split() {
        assert_eq!(java_split_len("a:b", ':'), 2);
        assert_eq!(java_split_len("a:", ':'), 1);
        assert_eq!(java_split_len(":b", ':'), 2);
        assert_eq!(java_split_len("a:b:", ':'), 2);
        assert_eq!(java_split_len("", ':'), 1);
        assert_eq!(java_split_len("a:b:c", ':'), 3);
    }

    #[test]
    fn mask_bits() {
        let mut b = vec![0xff, 0xff];
        mask(&mut b, 12);
        assert_eq!(b, vec![0xff, 0xf0]);
        let mut b = vec![0xff, 0xff];
        mask(&mut b, 0);
        assert_eq!(b, vec![0, 0]);
    }

    #[test]
    fn sasl_and_x509_entries_match_their_ids_and_sasl_names_are_checked() {
        let acl = |scheme: &str, id: &str| vec![Acl { perms: 31, id: Id::new(scheme, id) }];
        let sasl = [Id::new("sasl", "jaasuser")];
        assert!(check_acl(&acl("sasl", "jaasuser"), &sasl, 1, false));
        assert!(!check_acl(&acl("sasl", "other"), &sasl, 1, false));
        assert!(check_acl(&acl("sasl", "other"), &[Id::new("sasl", "super")], 1, false));
        let x509 = [Id::new("x509", "CN=a,O=b")];
        assert!(check_acl(&acl("x509", "CN=a,O=b"), &x509, 1, false));
        assert!(!check_acl(&acl("x509", "CN=a"), &x509, 1, false));
        assert!(!check_acl(&acl("digest", "CN=a,O=b"), &x509, 1, false), "schemes must agree");
        assert!(is_kerberos_name("client/host@REALM.ORG"));
        assert!(!is_kerberos_name("a@b@c"));
        assert!(!is_kerberos_name(""));
        assert_eq!(fixup_acl(&acl("sasl", "a@b@c"), &[]), Err(ZkError::InvalidAcl));
        let expanded = fixup_acl(&acl("auth", ""), &x509).unwrap();
        assert_eq!(expanded, acl("x509", "CN=a,O=b"), "auth expands to the x509 id");
    }
}
