//! ACL checks, fix-up and digest auth (reference §10.7).

use zkr_core::proto::error::ZkError;
use zkr_core::tree::acl::{auth_digest, check_acl, digest_id, fixup_acl, ip_matches, user_name};
use zkr_core::types::{Acl, Id, perms};

fn acl(p: i32, scheme: &str, id: &str) -> Acl {
    Acl { perms: p, id: Id::new(scheme, id) }
}

#[test]
fn digest_of_super_test() {
    assert_eq!(digest_id("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
    assert!(digest_id("nocolon").starts_with("nocolon:"));
}

#[test]
fn auth_digest_adds_super_when_configured() {
    let super_digest = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";
    let ids = auth_digest("super:test", Some(super_digest));
    assert_eq!(ids, vec![Id::new("super", ""), Id::new("digest", super_digest)]);
    let ids = auth_digest("super:wrong", Some(super_digest));
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].scheme, "digest");
    assert_eq!(auth_digest("super:test", None).len(), 1);
}

#[test]
fn who_am_i_user_names() {
    assert_eq!(user_name(&Id::new("digest", "bob:xyz=")), "bob");
    assert_eq!(user_name(&Id::new("ip", "10.1.2.3")), "10.1.2.3");
    assert_eq!(user_name(&Id::new("super", "")), "");
}

#[test]
fn check_acl_rules() {
    let ip = [Id::new("ip", "10.1.2.3")];
    let rw = [acl(perms::READ | perms::WRITE, "world", "anyone")];
    assert!(check_acl(&rw, &ip, perms::READ, false));
    assert!(!check_acl(&rw, &ip, perms::DELETE, false));
    assert!(check_acl(&rw, &ip, perms::DELETE, true), "skipACL allows");
    assert!(check_acl(&[], &ip, perms::ADMIN, false), "an empty ACL allows");
    let with_super = [Id::new("ip", "10.1.2.3"), Id::new("super", "")];
    assert!(check_acl(&rw, &with_super, perms::ADMIN, false), "super allows");
    let digest = [acl(perms::ALL, "digest", "bob:h=")];
    assert!(!check_acl(&digest, &ip, perms::READ, false));
    let bob = [Id::new("digest", "bob:h=")];
    assert!(check_acl(&digest, &bob, perms::READ, false));
    assert!(!check_acl(&digest, &[Id::new("digest", "bob:other=")], perms::READ, false));
    // Another world id never matches (no "world" provider).
    assert!(!check_acl(&[acl(perms::ALL, "world", "bob")], &ip, perms::READ, false));
}

#[test]
fn ip_prefix_matching() {
    assert!(ip_matches("10.1.2.3", "10.1.2.3"));
    assert!(ip_matches("10.1.2.3", "10.0.0.0/8"));
    assert!(ip_matches("10.1.2.3", "10.1.2.0/24"));
    assert!(!ip_matches("10.1.3.3", "10.1.2.0/24"));
    assert!(ip_matches("10.1.2.3", "10.1.2.0/23"));
    assert!(ip_matches("192.168.1.1", "0.0.0.0/0"));
    assert!(!ip_matches("10.1.2.3", "10.1.2.4"));
    assert!(!ip_matches("10.1.2.3", "10.1.2.0/33"), "too many bits");
    assert!(!ip_matches("10.1.2.3", "10.1.2.0/x"));
    assert!(!ip_matches("10.1.2.3", "::1"), "families differ");
    assert!(ip_matches("::1", "::1"));
    assert!(ip_matches("2001:db8::5", "2001:db8::/32"));
    assert!(!ip_matches("2001:db9::5", "2001:db8::/32"));
    assert!(ip_matches("10.001.2.3", "10.1.2.3"), "leading zeros parse as decimal");
    let ids = [Id::new("ip", "10.1.2.3")];
    assert!(check_acl(&[acl(perms::READ, "ip", "10.0.0.0/8")], &ids, perms::READ, false));
}

#[test]
fn fixup_acl_cases() {
    let open = Acl::open_unsafe();
    assert_eq!(fixup_acl(&open, &[]), Ok(open.clone()));
    assert_eq!(fixup_acl(&[], &[]), Err(ZkError::InvalidAcl));
    let dup = [open[0].clone(), open[0].clone()];
    assert_eq!(fixup_acl(&dup, &[]), Ok(open.clone()), "duplicates removed");
    let auth = [acl(perms::ALL, "auth", "")];
    let ip_only = [Id::new("ip", "1.2.3.4")];
    assert_eq!(fixup_acl(&auth, &ip_only), Err(ZkError::InvalidAcl), "ip is not authenticated");
    let ids = [Id::new("ip", "1.2.3.4"), Id::new("digest", "a:x="), Id::new("digest", "b:y=")];
    let fixed = fixup_acl(&auth, &ids).unwrap();
    assert_eq!(fixed, vec![acl(perms::ALL, "digest", "a:x="), acl(perms::ALL, "digest", "b:y=")]);
    assert_eq!(fixup_acl(&[acl(perms::ALL, "world", "x")], &[]), Err(ZkError::InvalidAcl));
    assert_eq!(fixup_acl(&[acl(perms::ALL, "nosuch", "x")], &[]), Err(ZkError::InvalidAcl));
    assert_eq!(fixup_acl(&[acl(perms::ALL, "digest", "nocolon")], &[]), Err(ZkError::InvalidAcl));
    assert_eq!(fixup_acl(&[acl(perms::ALL, "digest", "a:")], &[]), Err(ZkError::InvalidAcl));
    assert!(fixup_acl(&[acl(perms::ALL, "digest", "a:b")], &[]).is_ok());
    assert!(fixup_acl(&[acl(perms::ALL, "ip", "10.0.0.0/8")], &[]).is_ok());
    assert_eq!(fixup_acl(&[acl(perms::ALL, "ip", "10.0.0/8")], &[]), Err(ZkError::InvalidAcl));
    assert_eq!(fixup_acl(&[acl(perms::ALL, "super", "")], &[]), Err(ZkError::InvalidAcl));
}
