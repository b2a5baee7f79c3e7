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
//! Out of scope, refused or reported rather than silently ignored: JKS/PKCS12 stores (PEM only),
//! encrypted PEM keys, quorum TLS (`sslQuorum=true` is refused), SASL GSSAPI/Kerberos (a
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
            "ssl.keyStore.type" | "ssl.trustStore.type" => {
                if !value.eq_ignore_ascii_case("PEM") {
                    return Err(format!("only PEM stores are supported here, not {value}"));
                }
            }
            "ssl.keyStore.password" => self.key_store_password = Some(value.to_string()),
            // A trust store of certificates needs no password.
            "ssl.trustStore.password" => {}
            "ssl.clientAuth" => {
                self.client_auth = match value.to_ascii_lowercase().as_str() {
                    "none" => ClientAuth::None,
                    "want" => ClientAuth::Want,
                    "need" | "" => ClientAuth::Need,
                    _ => return Err("expected none, want or need".into()),
                }
            }
            "sslQuorum" => {
                if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("yes") {
                    return Err("quorum TLS (sslQuorum) is not supported".into());
                }
            }
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
            _ if TLS_TUNING_KEYS.contains(&key) || key.starts_with("ssl.quorum.") => {
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
        Ok(())
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
        assert!(security.apply("sslQuorum", "true").is_err(), "quorum TLS is refused");
        assert!(security.apply("ssl.keyStore.type", "JKS").is_err(), "PEM only");
        assert_eq!(security.apply("tickTime", "2000"), Ok(false));
    }
}
