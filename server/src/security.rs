//! Authentication and encryption settings: `secureClientPort` and ZooKeeper's `ssl.*` keys (TLS,
//! see `tls`), the JAAS file with the SASL DIGEST-MD5 users, `zookeeper.superUser`,
//! `enforce.auth.*` / `sessionRequireClientSASLAuth`, and the `authProvider.N` classes.
//!
//! ZooKeeper takes several of these as Java system properties rather than zoo.cfg keys; an
//! operator passes them as `-D` flags in `SERVER_JVMFLAGS` or `JVMFLAGS` (zkServer.sh hands
//! both to java). `jvm_flag_properties` reads those two variables the same way: every
//! `-Dzookeeper.<key>=<value>` is taken as the zoo.cfg key `<key>` (zoo.cfg wins over a flag, as
//! ZooKeeper's config sets the system property after the JVM started), and
//! `-Djava.security.auth.login.config=FILE` names the JAAS file (also accepted as a zoo.cfg key).
//!
//! Quorum TLS (`sslQuorum`, `portUnification`, `ssl.quorum.*`, `sslQuorumReloadCertFiles`) is
//! parsed into `QuorumTlsConfig` here and served by `quorum_tls`.
//!
//! Out of scope, refused or reported rather than silently ignored: JKS/PKCS12 stores (PEM only,
//! on both the client and the quorum side), encrypted PEM keys, SASL GSSAPI/Kerberos (a
//! `Krb5LoginModule` in the JAAS section is reported and adds no user).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// `ssl.clientAuth`: whether a TLS client must present a certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate is asked for.
    None,
    /// A certificate is asked for; a client without one is still served (no `x509` id).
    Want,
    /// A client without a certificate the trust store accepts is refused (ZooKeeper's default).
    #[default]
    Need,
}

/// What the security keys say, before the core takes its part (`apply_to_core`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityConfig {
    /// `secureClientPort`: the TLS client port.
    pub secure_client_port: Option<u16>,
    /// `secureClientPortAddress` (default: `clientPortAddress`).
    pub secure_client_port_address: Option<IpAddr>,
    /// `ssl.keyStore.location`: PEM with the private key and the certificate chain.
    pub key_store: Option<PathBuf>,
    /// `ssl.keyStore.password`: only an empty one is usable (unencrypted PEM key).
    pub key_store_password: Option<String>,
    /// `ssl.trustStore.location`: PEM with the CA certificates client certificates chain to.
    pub trust_store: Option<PathBuf>,
    /// `ssl.clientAuth`.
    pub client_auth: ClientAuth,
    /// The JAAS file: `-Djava.security.auth.login.config` or the zoo.cfg key of that name.
    pub jaas_file: Option<PathBuf>,
    /// `zookeeper.sasl.serverconfig`: the JAAS section (default `Server`).
    pub jaas_section: Option<String>,
    /// `zookeeper.superUser`.
    pub sasl_super_user: Option<String>,
    /// `zookeeper.X509AuthenticationProvider.superUser`.
    pub x509_super_user: Option<String>,
    /// `enforce.auth.enabled`.
    pub enforce_auth_enabled: bool,
    /// `enforce.auth.schemes`.
    pub enforce_auth_schemes: Vec<String>,
    /// `sessionRequireClientSASLAuth`: the same as enforcing `sasl`.
    pub session_require_client_sasl_auth: bool,
    /// `sslQuorum`, `portUnification` and the `ssl.quorum.*` keys.
    pub quorum: QuorumTlsConfig,
}

/// A TLS protocol version `ssl.quorum.protocol` / `ssl.quorum.enabledProtocols` may name (the
/// ones rustls implements).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// `TLSv1.2`.
    Tls12,
    /// `TLSv1.3`.
    Tls13,
}

/// Quorum TLS, as ZooKeeper's `QuorumX509Util` reads it: `sslQuorum` encrypts and mutually
/// authenticates every connection between members (election and Zab traffic share the quorum
/// port here); `portUnification` accepts plain and TLS connections on it (rolling upgrades).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumTlsConfig {
    /// `sslQuorum`: connect to peers with TLS and (unless `portUnification`) accept only TLS.
    pub ssl_quorum: bool,
    /// `portUnification`: accept both plain and TLS connections on the quorum port.
    pub port_unification: bool,
    /// `ssl.quorum.keyStore.location`: PEM with this member's private key and certificate chain.
    pub key_store: Option<PathBuf>,
    /// `ssl.quorum.keyStore.password`: only an empty one is usable (unencrypted PEM key).
    pub key_store_password: Option<String>,
    /// `ssl.quorum.trustStore.location`: PEM with the CA certificates peers' chains end in.
    pub trust_store: Option<PathBuf>,
    /// `ssl.quorum.hostnameVerification` (default true): a peer's certificate must name it.
    pub hostname_verification: bool,
    /// `ssl.quorum.clientHostnameVerification` (default true, ZooKeeper 3.9.4+): the check
    /// applies to connecting peers too (only with `hostname_verification`).
    pub client_hostname_verification: bool,
    /// `ssl.quorum.clientAuth` (default need): whether a connecting peer must present a
    /// certificate.
    pub client_auth: ClientAuth,
    /// `ssl.quorum.protocol` / `ssl.quorum.enabledProtocols`: the versions offered and accepted.
    pub protocols: Vec<TlsVersion>,
    /// `ssl.quorum.ciphersuites`: Java (IANA) names; empty means rustls's defaults.
    pub ciphersuites: Vec<String>,
    /// `ssl.quorum.handshakeDetectionTimeoutMillis` (default 5000): how long a connecting peer
    /// may take to complete its handshake (and, with `portUnification`, to send its first byte).
    pub handshake_timeout_ms: u64,
    /// `sslQuorumReloadCertFiles`: new connections use the stores as they are on disk now.
    pub reload_cert_files: bool,
    /// `ssl.quorum.enabledProtocols` was given (it wins over `ssl.quorum.protocol`).
    enabled_protocols_set: bool,
}

impl Default for QuorumTlsConfig {
    fn default() -> QuorumTlsConfig {
        QuorumTlsConfig {
            ssl_quorum: false,
            port_unification: false,
            key_store: None,
            key_store_password: None,
            trust_store: None,
            hostname_verification: true,
            client_hostname_verification: true,
            client_auth: ClientAuth::Need,
            protocols: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            ciphersuites: Vec::new(),
            handshake_timeout_ms: 5000,
            reload_cert_files: false,
            enabled_protocols_set: false,
        }
    }
}

impl QuorumTlsConfig {
    /// Whether the quorum port needs the TLS stores (to connect with them, or to accept).
    pub fn enabled(&self) -> bool {
        self.ssl_quorum || self.port_unification
    }

    /// Applies one `sslQuorum*`/`portUnification`/`ssl.quorum.*` key. `Ok(false)`: not one.
    fn apply(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let path = || -> Result<PathBuf, String> {
            if value.is_empty() { Err("expected a file path".into()) } else { Ok(value.into()) }
        };
        match key {
            "sslQuorum" => self.ssl_quorum = parse_bool(value)?,
            "portUnification" => self.port_unification = parse_bool(value)?,
            "sslQuorumReloadCertFiles" => self.reload_cert_files = parse_bool(value)?,
            "ssl.quorum.keyStore.location" => self.key_store = Some(path()?),
            "ssl.quorum.trustStore.location" => self.trust_store = Some(path()?),
            "ssl.quorum.keyStore.type" | "ssl.quorum.trustStore.type" => check_pem(value)?,
            "ssl.quorum.keyStore.password" => self.key_store_password = Some(value.to_string()),
            "ssl.quorum.trustStore.password" => {}
            "ssl.quorum.hostnameVerification" => self.hostname_verification = parse_bool(value)?,
            "ssl.quorum.clientHostnameVerification" => {
                self.client_hostname_verification = parse_bool(value)?
            }
            "ssl.quorum.clientAuth" => self.client_auth = parse_client_auth(value)?,
            "ssl.quorum.protocol" => {
                let protocols = protocol_default(value)?;
                if !self.enabled_protocols_set {
                    self.protocols = protocols;
                }
            }
            "ssl.quorum.enabledProtocols" => {
                self.protocols = parse_protocols(value)?;
                self.enabled_protocols_set = true;
            }
            "ssl.quorum.ciphersuites" => {
                self.ciphersuites = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "ssl.quorum.handshakeDetectionTimeoutMillis" => {
                self.handshake_timeout_ms = match value.parse::<u64>() {
                    Ok(ms) if ms > 0 => ms,
                    _ => return Err("expected a positive number of milliseconds".into()),
                }
            }
            _ if key.starts_with("ssl.quorum.") => {
                tracing::info!("zoo.cfg: {key} is accepted but not applied (quorum TLS)");
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The settings are complete: quorum TLS needs both stores.
    fn check(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        let what = if self.ssl_quorum { "sslQuorum" } else { "portUnification" };
        if cfg!(madsim) {
            return Err(format!(
                "{what}: quorum TLS is not available in the madsim simulation build"
            ));
        }
        if self.key_store.is_none() {
            return Err(format!("{what} needs ssl.quorum.keyStore.location"));
        }
        if self.trust_store.is_none() {
            return Err(format!("{what} needs ssl.quorum.trustStore.location"));
        }
        if self.key_store_password.as_deref().is_some_and(|p| !p.is_empty()) {
            tracing::warn!(
                "ssl.quorum.keyStore.password is ignored: the PEM key must be unencrypted"
            );
        }
        Ok(())
    }
}

fn check_pem(value: &str) -> Result<(), String> {
    if value.eq_ignore_ascii_case("PEM") {
        Ok(())
    } else {
        Err(format!("only PEM stores are supported here, not {value}"))
    }
}

fn parse_client_auth(value: &str) -> Result<ClientAuth, String> {
    match value.to_ascii_lowercase().as_str() {
        "none" => Ok(ClientAuth::None),
        "want" => Ok(ClientAuth::Want),
        "need" | "" => Ok(ClientAuth::Need),
        _ => Err("expected none, want or need".into()),
    }
}

/// `ssl.quorum.protocol`: the versions ZooKeeper enables for it when `enabledProtocols` is not
/// given (TLSv1.3 also enables TLSv1.2; `TLS` means whatever the runtime offers).
fn protocol_default(value: &str) -> Result<Vec<TlsVersion>, String> {
    match value {
        "TLSv1.3" | "TLS" => Ok(vec![TlsVersion::Tls12, TlsVersion::Tls13]),
        "TLSv1.2" => Ok(vec![TlsVersion::Tls12]),
        _ => Err(format!("unsupported TLS protocol {value} (TLSv1.2, TLSv1.3 or TLS)")),
    }
}

/// `ssl.quorum.enabledProtocols`: a comma-separated list of `TLSv1.2`/`TLSv1.3`.
fn parse_protocols(value: &str) -> Result<Vec<TlsVersion>, String> {
    let mut versions = Vec::new();
    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let version = match name {
            "TLSv1.2" => TlsVersion::Tls12,
            "TLSv1.3" => TlsVersion::Tls13,
            _ => return Err(format!("unsupported TLS protocol {name} (TLSv1.2 or TLSv1.3)")),
        };
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    if versions.is_empty() {
        return Err("expected TLSv1.2 and/or TLSv1.3".into());
    }
    versions.sort();
    Ok(versions)
}

/// The provider classes `authProvider.N` may name (all are built in and always on).
const PROVIDERS: [&str; 4] = [
    "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
    "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
    "org.apache.zookeeper.server.auth.DigestAuthenticationProvider",
    "org.apache.zookeeper.server.auth.IPAuthenticationProvider",
];

/// `ssl.*` keys that tune what rustls decides by itself; accepted and logged.
const TLS_TUNING_KEYS: [&str; 9] = [
    "ssl.protocol",
    "ssl.enabledProtocols",
    "ssl.ciphersuites",
    "ssl.hostnameVerification",
    "ssl.clientHostnameVerification",
    "ssl.crl",
    "ssl.ocsp",
    "ssl.handshakeDetectionTimeoutMillis",
    "ssl.context.supplier.class",
];

impl SecurityConfig {
    /// Applies one key (without its `zookeeper.` prefix). `Ok(false)`: not a security key.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let path = || -> Result<PathBuf, String> {
            if value.is_empty() { Err("expected a file path".into()) } else { Ok(value.into()) }
        };
        if self.quorum.apply(key, value)? {
            return Ok(true);
        }
        match key {
            "secureClientPort" => {
                let port = value.parse::<u16>().map_err(|_| "expected a port 0..=65535")?;
                self.secure_client_port = Some(port);
            }
            "secureClientPortAddress" => {
                self.secure_client_port_address =
                    Some(value.parse().map_err(|_| "expected an IP address")?);
            }
            "ssl.keyStore.location" => self.key_store = Some(path()?),
            "ssl.trustStore.location" => self.trust_store = Some(path()?),
            "ssl.keyStore.type" | "ssl.trustStore.type" => check_pem(value)?,
            "ssl.keyStore.password" => self.key_store_password = Some(value.to_string()),
            // A trust store of certificates needs no password.
            "ssl.trustStore.password" => {}
            "ssl.clientAuth" => self.client_auth = parse_client_auth(value)?,
            "java.security.auth.login.config" => self.jaas_file = Some(path()?),
            "sasl.serverconfig" => self.jaas_section = Some(value.to_string()),
            "superUser" => self.sasl_super_user = Some(value.to_string()),
            "X509AuthenticationProvider.superUser" => {
                self.x509_super_user = Some(value.to_string())
            }
            "enforce.auth.enabled" => self.enforce_auth_enabled = parse_bool(value)?,
            "sessionRequireClientSASLAuth" => {
                self.session_require_client_sasl_auth = parse_bool(value)?
            }
            "enforce.auth.schemes" => {
                self.enforce_auth_schemes = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            _ if key.starts_with("authProvider.") => {
                if !PROVIDERS.contains(&value) {
                    return Err(format!("unknown auth provider class (known: {PROVIDERS:?})"));
                }
            }
            "serverCnxnFactory" => {}
            _ if TLS_TUNING_KEYS.contains(&key) => {
                tracing::info!("zoo.cfg: {key} is accepted; rustls's defaults apply");
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Hands the core its part: super users, the enforced schemes, the JAAS users (read from
    /// the JAAS file, relative paths from the current directory).
    pub fn apply_to_core(&self, core: &mut zkr_core::Config) -> Result<(), String> {
        core.sasl_super_user = self.sasl_super_user.clone();
        core.x509_super_user = self.x509_super_user.clone();
        core.enforce_auth_schemes = if self.session_require_client_sasl_auth {
            vec!["sasl".to_string()]
        } else if self.enforce_auth_enabled {
            if self.enforce_auth_schemes.is_empty() {
                return Err("enforce.auth.enabled needs enforce.auth.schemes".into());
            }
            self.enforce_auth_schemes.clone()
        } else {
            Vec::new()
        };
        if let Some(file) = &self.jaas_file {
            let section = self.jaas_section.as_deref().unwrap_or("Server");
            core.sasl_users = read_jaas_users(file, section)?;
        }
        Ok(())
    }

    /// The TLS listener's settings are complete (a secure port needs a key store).
    pub fn check(&self) -> Result<(), String> {
        if self.secure_client_port.is_some() && self.key_store.is_none() {
            return Err("secureClientPort needs ssl.keyStore.location".into());
        }
        if self.key_store_password.as_deref().is_some_and(|p| !p.is_empty()) {
            tracing::warn!("ssl.keyStore.password is ignored: the PEM key must be unencrypted");
        }
        if self.client_auth != ClientAuth::None
            && self.secure_client_port.is_some()
            && self.trust_store.is_none()
        {
            return Err("ssl.clientAuth want/need needs ssl.trustStore.location".into());
        }
        self.quorum.check()
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// The `-D` flags of `SERVER_JVMFLAGS` then `JVMFLAGS` (a later flag wins, as in java) as
/// `(key, value)` pairs: `zookeeper.<key>` and `java.security.auth.login.config`.
pub fn jvm_flag_properties(server_jvmflags: &str, jvmflags: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for word in server_jvmflags.split_whitespace().chain(jvmflags.split_whitespace()) {
        let Some(define) = word.strip_prefix("-D") else {
            continue;
        };
        let (key, value) = define.split_once('=').unwrap_or((define, ""));
        if key.starts_with("zookeeper.") || key == "java.security.auth.login.config" {
            found.push((key.to_string(), value.to_string()));
        }
    }
    found
}

/// The DIGEST-MD5 users of one JAAS section: the `user_<name>="<password>"` options of its
/// `DigestLoginModule` entries.
pub fn read_jaas_users(path: &Path, section: &str) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the JAAS file {}: {e}", path.display()))?;
    let sections = parse_jaas(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(entries) = sections.get(section) else {
        return Err(format!("{}: no JAAS section {section:?}", path.display()));
    };
    let mut users = BTreeMap::new();
    for entry in entries {
        if entry.module.ends_with("DigestLoginModule") {
            for (key, value) in &entry.options {
                if let Some(user) = key.strip_prefix("user_") {
                    users.insert(user.to_string(), value.clone());
                }
            }
        } else {
            tracing::warn!(
                module = entry.module,
                "JAAS: only DIGEST-MD5 (DigestLoginModule) is supported; GSSAPI/Kerberos and \
                 other login modules are not"
            );
        }
    }
    Ok(users)
}

/// One login module line of a JAAS section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JaasEntry {
    /// The login module class.
    pub module: String,
    /// `required`, `requisite`, `sufficient` or `optional`.
    pub flag: String,
    /// The `key=value` options in order.
    pub options: Vec<(String, String)>,
}

/// Parses JAAS login configuration syntax: `Name { Module flag key=value ...; ... };`, with
/// `//` and `/* */` comments and double-quoted values.
pub fn parse_jaas(text: &str) -> Result<BTreeMap<String, Vec<JaasEntry>>, String> {
    let tokens = jaas_tokens(text)?;
    let mut sections = BTreeMap::new();
    let mut i = 0;
    let word = |i: usize| tokens.get(i).map(String::as_str);
    while i < tokens.len() {
        let name = tokens[i].clone();
        if word(i + 1) != Some("{") {
            return Err(format!("expected {{ after section {name:?}"));
        }
        i += 2;
        let mut entries = Vec::new();
        while word(i) != Some("}") {
            let (Some(module), Some(flag)) = (word(i), word(i + 1)) else {
                return Err(format!("section {name:?} is not closed"));
            };
            let mut entry =
                JaasEntry { module: module.into(), flag: flag.into(), options: Vec::new() };
            i += 2;
            while word(i) != Some(";") {
                match (word(i), word(i + 1), word(i + 2)) {
                    (Some(key), Some("="), Some(value)) => {
                        entry.options.push((key.to_string(), value.trim_matches('"').into()));
                        i += 3;
                    }
                    _ => return Err(format!("expected key=value or ; in section {name:?}")),
                }
            }
            i += 1;
            entries.push(entry);
        }
        i += 1;
        if word(i) == Some(";") {
            i += 1;
        }
        sections.insert(name, entries);
    }
    Ok(sections)
}

/// Splits JAAS text into words, `{ } ; =` and quoted strings (kept with their quotes).
fn jaas_tokens(text: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let rest: String = chars[i + 2..].iter().collect();
            let end = rest.find("*/").ok_or("unterminated /* comment")?;
            i += 2 + rest[..end].chars().count() + 2;
        } else if matches!(c, '{' | '}' | ';' | '=') {
            tokens.push(c.to_string());
            i += 1;
        } else if c == '"' {
            let mut quoted = String::from('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                quoted.push(chars[i]);
                i += 1;
            }
            if i >= chars.len() {
                return Err("unterminated quoted value".into());
            }
            quoted.push('"');
            tokens.push(quoted);
            i += 1;
        } else {
            let start = i;
            while i < chars.len()
                && !chars[i].is_whitespace()
                && !matches!(chars[i], '{' | '}' | ';' | '=' | '"')
            {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAZOO_JAAS: &str = r#"
// the section kazoo's test harness writes
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_jaasuser="jaas_password";
};
/* a client section */ Client { org.apache.zookeeper.server.auth.DigestLoginModule required
  username="jaasuser" password="jaas_password"; };
"#;

    #[test]
    fn jaas_sections_and_users_parse() {
        let sections = parse_jaas(KAZOO_JAAS).unwrap();
        assert_eq!(sections.len(), 2);
        let server = &sections["Server"][0];
        assert_eq!(server.flag, "required");
        assert_eq!(server.options[1], ("user_jaasuser".into(), "jaas_password".into()));
        assert_eq!(sections["Client"][0].options.len(), 2);
        assert!(parse_jaas("Server { x required a=").is_err(), "an unclosed section");
        assert!(parse_jaas("Server x").is_err(), "a section without braces");
    }

    #[test]
    fn jvm_flags_pick_zookeeper_properties_and_the_jaas_file() {
        let flags = jvm_flag_properties(
            "-Xmx1g -Djava.security.auth.login.config=/etc/jaas.conf",
            "-Dzookeeper.superUser=admin -Dfoo=bar",
        );
        assert_eq!(
            flags,
            vec![
                ("java.security.auth.login.config".into(), "/etc/jaas.conf".into()),
                ("zookeeper.superUser".into(), "admin".into()),
            ]
        );
    }

    #[test]
    fn enforce_needs_schemes_and_sasl_requirement_implies_sasl() {
        let mut security = SecurityConfig::default();
        assert_eq!(security.apply("enforce.auth.enabled", "true"), Ok(true));
        let mut core = zkr_core::Config::default();
        assert!(security.apply_to_core(&mut core).is_err(), "no schemes named");
        security.apply("sessionRequireClientSASLAuth", "true").unwrap();
        security.apply_to_core(&mut core).unwrap();
        assert_eq!(core.enforce_auth_schemes, vec!["sasl".to_string()]);
        assert!(security.apply("ssl.keyStore.type", "JKS").is_err(), "PEM only");
        assert_eq!(security.apply("tickTime", "2000"), Ok(false));
    }

    #[test]
    fn quorum_tls_keys_parse_and_need_both_stores() {
        let mut security = SecurityConfig::default();
        assert!(!security.quorum.enabled(), "off by default");
        assert_eq!(security.apply("sslQuorum", "true"), Ok(true));
        assert!(security.quorum.ssl_quorum);
        assert!(security.quorum.hostname_verification, "hostname verification defaults on");
        assert_eq!(security.quorum.client_auth, ClientAuth::Need);
        let missing = security.check().unwrap_err();
        assert!(missing.contains("sslQuorum needs ssl.quorum.keyStore.location"), "{missing}");
        security.apply("ssl.quorum.keyStore.location", "/etc/zkr/quorum.pem").unwrap();
        let missing = security.check().unwrap_err();
        assert!(missing.contains("ssl.quorum.trustStore.location"), "{missing}");
        security.apply("ssl.quorum.trustStore.location", "/etc/zkr/ca.pem").unwrap();
        security.check().unwrap();
        assert!(security.apply("ssl.quorum.keyStore.type", "JKS").is_err(), "PEM only");
        assert!(security.apply("ssl.quorum.trustStore.type", "PKCS12").is_err(), "PEM only");
        assert_eq!(security.apply("ssl.quorum.trustStore.type", "PEM"), Ok(true));
        security.apply("ssl.quorum.hostnameVerification", "false").unwrap();
        assert!(!security.quorum.hostname_verification);
        assert!(security.apply("ssl.quorum.hostnameVerification", "maybe").is_err());
        assert!(security.apply("sslQuorum", "perhaps").is_err());
        // The client side's keys stay the client side's.
        assert_eq!(security.key_store, None);
    }

    #[test]
    fn quorum_protocols_follow_zookeeper_and_enabled_protocols_win() {
        let mut quorum = QuorumTlsConfig::default();
        assert_eq!(quorum.protocols, vec![TlsVersion::Tls12, TlsVersion::Tls13]);
        quorum.apply("ssl.quorum.protocol", "TLSv1.2").unwrap();
        assert_eq!(quorum.protocols, vec![TlsVersion::Tls12]);
        quorum.apply("ssl.quorum.enabledProtocols", "TLSv1.3").unwrap();
        quorum.apply("ssl.quorum.protocol", "TLSv1.2").unwrap();
        assert_eq!(quorum.protocols, vec![TlsVersion::Tls13], "enabledProtocols wins");
        assert!(quorum.apply("ssl.quorum.enabledProtocols", "TLSv1.1").is_err());
        assert!(quorum.apply("ssl.quorum.protocol", "SSLv3").is_err());
        quorum.apply("ssl.quorum.ciphersuites", "TLS_AES_128_GCM_SHA256, x").unwrap();
        assert_eq!(quorum.ciphersuites, vec!["TLS_AES_128_GCM_SHA256".to_string(), "x".into()]);
        assert!(quorum.apply("ssl.quorum.handshakeDetectionTimeoutMillis", "0").is_err());
        assert_eq!(quorum.apply("ssl.quorum.crl", "false"), Ok(true), "accepted, not applied");
        assert_eq!(quorum.apply("ssl.keyStore.location", "/x"), Ok(false));
    }

    #[test]
    fn port_unification_alone_needs_the_stores_too() {
        let mut security = SecurityConfig::default();
        security.apply("portUnification", "true").unwrap();
        assert!(security.quorum.enabled());
        assert!(!security.quorum.ssl_quorum);
        let missing = security.check().unwrap_err();
        assert!(missing.starts_with("portUnification needs"), "{missing}");
    }
}
