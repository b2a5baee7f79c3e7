//! `zoo.cfg`: parsing the java.util.Properties syntax and turning the keys ZooKeeper knows into a
//! `ServerConfig` (reference §13).
//!
//! Policy, so that a ZooKeeper config file works unchanged:
//! - Every key ZooKeeper documents is accepted. Keys that change nothing here (admin.* but the
//!   four the AdminServer reads, snapSizeLimitInKb, ...) are logged at info level and kept in
//!   `extra`; `metricsProvider.*` is kept in `extra` for `metrics::endpoint`.
//! - An unknown key is a warning (logged and listed in `warnings`) and is kept in `extra`, because
//!   ZooKeeper turns unknown keys into system properties rather than failing.
//! - A malformed value is an error naming the key, the value and the line.
//! - A `zookeeper.` prefix is accepted on any key (the system-property spelling), so both
//!   `DigestAuthenticationProvider.superDigest` and `zookeeper.DigestAuthenticationProvider.
//!   superDigest` work.
//! - Settings ZooKeeper clamps with a warning (snapCount < 2, autopurge.snapRetainCount < 3) are
//!   clamped with a warning here too.
//!
//! Invariant: a `ServerConfig` returned by `parse`/`load` has passed `zkr_core::Config::validate`
//! and `min session timeout <= max session timeout`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// The four-letter words this server implements.
pub const IMPLEMENTED_FOUR_LETTER_WORDS: [&str; 12] = [
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "envi", "wchs", "wchc", "wchp", "dump", "isro",
];

/// Every four-letter word ZooKeeper knows; others in the whitelist draw a warning.
const KNOWN_FOUR_LETTER_WORDS: [&str; 18] = [
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "envi", "wchs", "wchc", "wchp", "dump", "isro",
    "crst", "srst", "dirs", "gtmk", "stmk", "hash",
];

/// ZooKeeper's default `preAllocSize`, in KB (`FilePadding`): 64 MB.
pub const DEFAULT_PREALLOC_KB: u64 = 65536;

/// Keys ZooKeeper accepts that change nothing in this server; kept in `extra` with an info log.
const IGNORED_KEYS: [&str; 17] = [
    "snapSizeLimitInKb",
    "fsync.warningthresholdms",
    "connectToLearnerMasterLimit",
    "dynamicConfigFile",
    "standaloneEnabled",
    "reconfigEnabled",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "syncEnabled",
    "observerMasterPort",
    "quorumListenOnAllIPs",
    "digest.enabled",
    "serializeLastProcessedZxid.enabled",
    "closeSessionTxn.enabled",
    "snapshot.compression.method",
    "readonlymode.enabled",
    "multiAddress.enabled",
];

/// Which four-letter words may run. `srvr` is always allowed, as in ZooKeeper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FourLetterWhitelist {
    /// `*`: every command.
    All,
    /// Only these (lowercase) commands, plus `srvr`.
    Only(BTreeSet<String>),
}

impl FourLetterWhitelist {
    /// Whether `command` may run.
    pub fn allows(&self, command: &str) -> bool {
        command == "srvr"
            || match self {
                FourLetterWhitelist::All => true,
                FourLetterWhitelist::Only(set) => set.contains(command),
            }
    }

    /// ZooKeeper's default: `srvr` only.
    pub fn zookeeper_default() -> FourLetterWhitelist {
        FourLetterWhitelist::Only(BTreeSet::from(["srvr".to_string()]))
    }

    /// Parses a comma-separated list (`*` = all); returns the names ZooKeeper does not know too.
    pub fn parse(list: &str) -> (FourLetterWhitelist, Vec<String>) {
        let mut set = BTreeSet::from(["srvr".to_string()]);
        let mut unknown = Vec::new();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word == "*" {
                return (FourLetterWhitelist::All, Vec::new());
            }
            let word = word.to_ascii_lowercase();
            if !KNOWN_FOUR_LETTER_WORDS.contains(&word.as_str()) {
                unknown.push(word.clone());
            }
            set.insert(word);
        }
        (FourLetterWhitelist::Only(set), unknown)
    }
}

/// A quorum member's role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PeerType {
    /// Votes and may lead.
    #[default]
    Participant,
    /// Follows without voting.
    Observer,
}

/// One `server.N` line: `host:quorumPort:electionPort[:participant|:observer]
/// [;[clientHost:]clientPort]`. Kept for the quorum mode; standalone ignores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    /// Host name or IP (without brackets).
    pub host: String,
    /// Port followers connect to the leader on.
    pub quorum_port: u16,
    /// Port for leader election.
    pub election_port: u16,
    /// Participant or observer.
    pub peer_type: PeerType,
    /// Client address from the `;` part: optional host and the port.
    pub client: Option<(Option<String>, u16)>,
}

/// Why a configuration cannot be used. The `Display` text is written for an operator.
#[derive(Debug)]
pub enum ConfigError {
    /// The file cannot be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not valid properties syntax.
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A key has a value that cannot be used.
    BadValue {
        /// The key as written.
        key: String,
        /// The value as written (trimmed).
        value: String,
        /// 1-based line number.
        line: usize,
        /// What was expected.
        reason: String,
    },
    /// A required key is absent.
    Missing {
        /// The key.
        key: &'static str,
    },
    /// The settings do not fit together.
    Invalid(String),
    /// An error inside the file at `path`.
    InFile {
        /// The file.
        path: PathBuf,
        /// The error.
        error: Box<ConfigError>,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Io { path, source } => {
                write!(f, "cannot read config file {}: {source}", path.display())
            }
            ConfigError::Syntax { line, reason } => write!(f, "line {line}: {reason}"),
            ConfigError::BadValue { key, value, line, reason } => {
                write!(f, "line {line}: invalid value {value:?} for {key}: {reason}")
            }
            ConfigError::Missing { key } => write!(f, "{key} is not set"),
            ConfigError::Invalid(reason) => f.write_str(reason),
            ConfigError::InFile { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for ConfigError {}

/// One `key=value` entry of a properties file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Property {
    /// The key, unescaped.
    pub key: String,
    /// The value, unescaped and trimmed.
    pub value: String,
    /// 1-based line on which the entry starts.
    pub line: usize,
}

/// Splits java.util.Properties text into entries, in file order: `key=value`, `key: value` or
/// `key value`; `#` and `!` comment lines; a trailing odd backslash continues the line; `\t`,
/// `\n`, `\uXXXX`-style escapes. Values are trimmed, as ZooKeeper does.
pub fn parse_properties(text: &str) -> Result<Vec<Property>, ConfigError> {
    let mut properties = Vec::new();
    let mut logical = String::new();
    let mut start_line = 0;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_start_matches([' ', '\t', '\x0c']);
        if logical.is_empty() {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            start_line = index + 1;
        }
        let trailing = line.len() - line.trim_end_matches('\\').len();
        if trailing % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            continue;
        }
        logical.push_str(line);
        properties.push(split_entry(&logical, start_line)?);
        logical.clear();
    }
    if !logical.is_empty() {
        properties.push(split_entry(&logical, start_line)?);
    }
    Ok(properties)
}

/// Splits one logical line into key and value.
fn split_entry(logical: &str, line: usize) -> Result<Property, ConfigError> {
    let mut key_end = logical.len();
    let mut escaped = false;
    for (i, c) in logical.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if matches!(c, '=' | ':' | ' ' | '\t' | '\x0c') {
            key_end = i;
            break;
        }
    }
    let mut rest = logical[key_end..].trim_start_matches([' ', '\t', '\x0c']);
    if let Some(after) = rest.strip_prefix(['=', ':']) {
        rest = after.trim_start_matches([' ', '\t', '\x0c']);
    }
    let key = unescape(&logical[..key_end], line)?;
    let value = unescape(rest, line)?.trim().to_string();
    Ok(Property { key, value, line })
}

fn unescape(text: &str, line: usize) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let decoded = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                match decoded {
                    Some(ch) if hex.len() == 4 => out.push(ch),
                    _ => {
                        let reason = format!("malformed \\uxxxx escape \\u{hex}");
                        return Err(ConfigError::Syntax { line, reason });
                    }
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// ZooKeeper's AdminServer keys. `admin.enableServer` defaults to **false** here (ZooKeeper:
/// true): ZooKeeper 3.8's AdminServer answers every command, `dump` and `environment`
/// included, to anyone who reaches 0.0.0.0:8080, whatever `4lw.commands.whitelist` says, and a
/// second server on the same host (tests, a laptop ensemble) collides on port 8080. An operator
/// who uses it says so, in zoo.cfg or as `-Dzookeeper.admin.enableServer=true`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminServerConfig {
    /// `admin.enableServer`.
    pub enabled: bool,
    /// `admin.serverAddress` (default 0.0.0.0, as ZooKeeper's).
    pub address: IpAddr,
    /// `admin.serverPort` (default 8080).
    pub port: u16,
    /// `admin.commandURL` (default `/commands`), without a trailing `/`.
    pub command_url: String,
}

impl Default for AdminServerConfig {
    fn default() -> AdminServerConfig {
        AdminServerConfig {
            enabled: false,
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 8080,
            command_url: "/commands".to_string(),
        }
    }
}

/// The whole server configuration: the core's protocol settings plus what the shell needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Protocol settings handed to `zkr_core::Node`.
    pub core: zkr_core::Config,
    /// `dataDir`: snapshots (in `version-2/`), `myid`.
    pub data_dir: PathBuf,
    /// `dataLogDir` (default `dataDir`): txn logs (in `version-2/`).
    pub data_log_dir: PathBuf,
    /// `clientPort`.
    pub client_port: u16,
    /// `clientPortAddress` (default 0.0.0.0).
    pub client_port_address: IpAddr,
    /// `clientPortListenBacklog`, -1 = OS default.
    pub client_port_listen_backlog: i32,
    /// `maxClientCnxns` per client IP; 0 = unlimited.
    pub max_client_cnxns: u32,
    /// `maxCnxns`: client connections in total; 0 (the default) = unlimited.
    pub max_cnxns: u32,
    /// `nio.sessionlessCnxnTimeout` (ZooKeeper's system property, default 10000 ms): how long
    /// a connection may take to deliver its ConnectRequest.
    pub sessionless_cnxn_timeout_ms: u64,
    /// `globalOutstandingLimit` (default 1000): unanswered requests, in the whole server and
    /// per connection, above which connections are not read from.
    pub global_outstanding_limit: u32,
    /// `zkr.clientOutputLimitBytes` (default 1 MiB): queued reply bytes above which a connection
    /// is not read from.
    pub client_output_limit_bytes: usize,
    /// `zkr.diskFullBacklogBytes` (default 64 MiB): on an ensemble member whose txn log's disk
    /// is full, the bytes of txns waiting for it above which the member drops out of the
    /// ensemble until there is space (`driver.rs`, `bound_disk_full_backlog`).
    pub disk_full_backlog_bytes: u64,
    /// `zkr.clientWriteStallMs` (default: maxSessionTimeout): a connection that takes none of
    /// its queued output this long is dropped.
    pub client_write_stall_ms: Option<u64>,
    /// `snapCount`: txns between snapshots (ZooKeeper rolls at a random point in
    /// `[snapCount/2+1, snapCount]`).
    pub snap_count: u64,
    /// `autopurge.snapRetainCount` (at least 3).
    pub autopurge_snap_retain_count: usize,
    /// `autopurge.purgeInterval` in hours; 0 = autopurge off.
    pub autopurge_purge_interval_hours: u64,
    /// `forceSync`: fsync the txn log (default yes).
    pub force_sync: bool,
    /// `zkr.snapshotPacing` (default no): the snapshot thread idles between the chunks it
    /// writes, more when the txn log's syncs slow down (issue 16; `storage::pace`). Off by
    /// default: on the shared test machine it did not shorten the log's slow syncs
    /// (docs/PERFORMANCE.md, run 7).
    pub snapshot_pacing: bool,
    /// `preAllocSize` (in KB in the file, as ZooKeeper's; bytes here): what txn log files are
    /// grown by ahead of their records. Default 64 MB; 0 turns it off.
    pub prealloc_bytes: u64,
    /// `zkr.workerThreads`: the async runtime's worker threads; 0 (the default) = one per
    /// core, tokio's default. One worker saves the wake-ups a second one costs (woken for
    /// nearly every event, it mostly finds nothing to do): 16% less CPU per write and 1.09x
    /// the ops/s of one synchronous client on tmpfs, but 0.6x the ops/s of 64 sessions on a
    /// disk (docs/PERFORMANCE.md, "one synchronous client"), so it is not the default.
    pub worker_threads: usize,
    /// `4lw.commands.whitelist`.
    pub four_letter_words: FourLetterWhitelist,
    /// `server.N` lines, by id.
    pub servers: BTreeMap<u64, ServerSpec>,
    /// `initLimit`, in ticks (quorum mode).
    pub init_limit: Option<u32>,
    /// `syncLimit`, in ticks (quorum mode).
    pub sync_limit: Option<u32>,
    /// `electionAlg` (only 3 is accepted).
    pub election_alg: Option<u32>,
    /// `peerType`.
    pub peer_type: PeerType,
    /// TLS (`secureClientPort`, `ssl.*`), SASL (JAAS) and auth enforcement (see `security`).
    pub security: crate::security::SecurityConfig,
    /// `zkr.bugs`: deliberate storage bugs (tests only; the key is refused by a build
    /// without the `bugs` feature, as are core bugs, which go to `core.bugs`).
    pub shell_bugs: crate::bugs::ShellBugs,
    /// `zkr.diskFaultFile`: a file whose text slows, stalls or fails this server's disk syncs,
    /// or fills its disk (`fs::FaultFs`; tests only, refused without the `bugs` feature).
    pub disk_fault_file: Option<PathBuf>,
    /// `admin.*`: the AdminServer (see `admin_server`).
    pub admin: AdminServerConfig,
    /// The zoo.cfg text as read, for the AdminServer's `initial_configuration`.
    pub initial_text: String,
    /// Keys accepted but not used, and unknown keys, with their values.
    pub extra: BTreeMap<String, String>,
    /// Warnings found while parsing (also logged): unknown keys, clamped values.
    pub warnings: Vec<String>,
}

impl ServerConfig {
    /// The configuration for running with no config file: clientPort 2181, dataDir `./data`
    /// (relative to the current directory), tickTime 2000, and — unlike ZooKeeper's `srvr`-only
    /// default — every four-letter word this server implements, for a friendly development setup.
    pub fn standalone_default() -> ServerConfig {
        let words = IMPLEMENTED_FOUR_LETTER_WORDS.iter().map(|w| w.to_string()).collect();
        let mut config = ServerConfig::base(PathBuf::from("./data"));
        config.four_letter_words = FourLetterWhitelist::Only(words);
        config.finish().expect("the built-in defaults are valid")
    }

    /// Reads and parses a zoo.cfg file. In quorum mode (some `server.N`), the server id comes
    /// from `<dataDir>/myid`, as in ZooKeeper.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let in_file =
            |error| ConfigError::InFile { path: path.to_path_buf(), error: Box::new(error) };
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        let flags = crate::security::jvm_flag_properties(
            &std::env::var("SERVER_JVMFLAGS").unwrap_or_default(),
            &std::env::var("JVMFLAGS").unwrap_or_default(),
        );
        let mut config = ServerConfig::parse_with_flags(&text, &flags).map_err(in_file)?;
        if !config.servers.is_empty() {
            config.read_myid().map_err(in_file)?;
        }
        Ok(config)
    }

    /// Parses zoo.cfg text (no file access but the JAAS file, when one is named).
    pub fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
        ServerConfig::parse_with_flags(text, &[])
    }

    /// `parse`, with the `-D` flags of the JVM flags variables applied first (see `security`):
    /// a key in the file wins over the same key as a flag.
    pub fn parse_with_flags(
        text: &str,
        flags: &[(String, String)],
    ) -> Result<ServerConfig, ConfigError> {
        let mut config = ServerConfig::base(PathBuf::new());
        config.initial_text = text.to_string();
        let mut seen = Seen::default();
        let from_flags = flags.iter().map(|(key, value)| Property {
            key: key.clone(),
            value: value.clone(),
            line: 0,
        });
        for property in from_flags.chain(parse_properties(text)?) {
            config.apply(&property, &mut seen)?;
        }
        if !seen.data_dir {
            return Err(ConfigError::Missing { key: "dataDir" });
        }
        if !seen.data_log_dir {
            config.data_log_dir = config.data_dir.clone();
        }
        if !seen.tick_time {
            config.warn("tickTime is not set; using 2000 ms".into());
        }
        if !seen.client_port {
            config.warn("clientPort is not set; using 2181".into());
        }
        if !seen.disk_diff_max_txns {
            // A learner missing up to snapCount txns is synced from the log files (ZooKeeper:
            // up to a third of the snapshot's size), beyond that by SNAP.
            config.core.disk_diff_max_txns = config.snap_count;
        }
        if seen.min_session_timeout.is_none() {
            config.core.session_timeout_ms_min = 2 * config.core.tick_time_ms as i32;
        }
        if seen.max_session_timeout.is_none() {
            config.core.session_timeout_ms_max = 20 * config.core.tick_time_ms as i32;
        }
        let (min, max) = (config.core.session_timeout_ms_min, config.core.session_timeout_ms_max);
        if min > max {
            return Err(ConfigError::Invalid(format!(
                "minSessionTimeout {min} (line {}) must not be larger than maxSessionTimeout \
                 {max} (line {})",
                line_or_default(seen.min_session_timeout),
                line_or_default(seen.max_session_timeout),
            )));
        }
        config.finish()
    }

    /// Defaults before any key is applied.
    fn base(data_dir: PathBuf) -> ServerConfig {
        ServerConfig {
            core: zkr_core::Config::default(),
            data_log_dir: data_dir.clone(),
            data_dir,
            client_port: 2181,
            client_port_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            client_port_listen_backlog: -1,
            max_client_cnxns: 60,
            max_cnxns: 0,
            sessionless_cnxn_timeout_ms: 10_000,
            global_outstanding_limit: 1000,
            client_output_limit_bytes: 1 << 20,
            disk_full_backlog_bytes: 64 << 20,
            client_write_stall_ms: None,
            snap_count: 100_000,
            autopurge_snap_retain_count: crate::storage::MIN_SNAP_RETAIN_COUNT,
            autopurge_purge_interval_hours: 0,
            force_sync: true,
            snapshot_pacing: false,
            prealloc_bytes: DEFAULT_PREALLOC_KB << 10,
            worker_threads: 0,
            four_letter_words: FourLetterWhitelist::zookeeper_default(),
            servers: BTreeMap::new(),
            init_limit: None,
            sync_limit: None,
            election_alg: None,
            peer_type: PeerType::Participant,
            security: Default::default(),
            shell_bugs: crate::bugs::ShellBugs::default(),
            disk_fault_file: None,
            admin: AdminServerConfig::default(),
            initial_text: String::new(),
            extra: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Derives the core tick and checks the core's rules.
    fn finish(mut self) -> Result<ServerConfig, ConfigError> {
        self.core.tick_ms = self.core.tick_time_ms.min(100);
        self.security.check().map_err(ConfigError::Invalid)?;
        self.security.apply_to_core(&mut self.core).map_err(ConfigError::Invalid)?;
        self.core
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("invalid configuration: {e}")))?;
        assert!(self.core.session_timeout_ms_min <= self.core.session_timeout_ms_max);
        assert!(self.core.tick_ms <= self.core.tick_time_ms);
        Ok(self)
    }

    fn warn(&mut self, warning: String) {
        tracing::warn!("zoo.cfg: {warning}");
        self.warnings.push(warning);
    }

    /// Applies one entry.
    fn apply(&mut self, property: &Property, seen: &mut Seen) -> Result<(), ConfigError> {
        let value = property.value.as_str();
        let key = property.key.strip_prefix("zookeeper.").unwrap_or(&property.key);
        let at = Field { property };
        match self.security.apply(key, value) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(reason) => return Err(at.bad(&reason)),
        }
        match key {
            "tickTime" => {
                self.core.tick_time_ms = at.number(1, i32::MAX as u64, "a positive time in ms")?;
                seen.tick_time = true;
            }
            "dataDir" => {
                self.data_dir = at.path()?;
                seen.data_dir = true;
            }
            "dataLogDir" => {
                self.data_log_dir = at.path()?;
                seen.data_log_dir = true;
            }
            "clientPort" => {
                self.client_port = at.number(0, u16::MAX as u64, "a port number 0..=65535")?;
                seen.client_port = true;
            }
            "clientPortAddress" => self.client_port_address = at.ip()?,
            "clientPortListenBacklog" => {
                self.client_port_listen_backlog = at.signed(-1, i32::MAX as i64)? as i32;
            }
            "minSessionTimeout" | "maxSessionTimeout" => {
                self.apply_session_timeout(at, key, seen)?
            }
            "maxClientCnxns" => {
                self.max_client_cnxns = at.number(0, u32::MAX as u64, "a count (0 = unlimited)")?
            }
            "maxCnxns" => {
                // ZooKeeper warns about a negative value and uses 0 (unlimited).
                let max = at.signed(i64::MIN, u32::MAX as i64)?;
                if max < 0 {
                    self.warn(format!("maxCnxns {max} is negative; using 0 (unlimited)"));
                }
                self.max_cnxns = max.max(0) as u32;
            }
            "snapCount" => {
                let count: u64 = at.number(0, u64::MAX, "a number of txns")?;
                if count < 2 {
                    self.warn(format!("snapCount {count} is below 2; using 2"));
                }
                self.snap_count = count.max(2);
            }
            "autopurge.snapRetainCount" => {
                let count: usize = at.number(0, u32::MAX as u64, "a number of snapshots")?;
                let min = crate::storage::MIN_SNAP_RETAIN_COUNT;
                if count < min {
                    self.warn(format!(
                        "autopurge.snapRetainCount {count} is below {min}; using {min}"
                    ));
                }
                self.autopurge_snap_retain_count = count.max(min);
            }
            "autopurge.purgeInterval" => {
                // ZooKeeper treats zero and negative intervals as "off".
                self.autopurge_purge_interval_hours = at.signed(i64::MIN, i64::MAX)?.max(0) as u64;
            }
            "forceSync" => self.force_sync = at.boolean()?,
            "admin.enableServer" => self.admin.enabled = at.boolean()?,
            "admin.serverAddress" => self.admin.address = at.ip()?,
            "admin.serverPort" => {
                self.admin.port = at.number(0, u16::MAX as u64, "a port number 0..=65535")?;
            }
            "admin.commandURL" => {
                if !value.starts_with('/') {
                    return Err(at.bad("a path starting with /"));
                }
                self.admin.command_url = value.trim_end_matches('/').to_string();
            }
            "4lw.commands.whitelist" => {
                let (whitelist, unknown) = FourLetterWhitelist::parse(value);
                for word in unknown {
                    self.warn(format!("4lw.commands.whitelist: unknown command {word:?}"));
                }
                self.four_letter_words = whitelist;
            }
            "jute.maxbuffer" => self.core.max_frame_bytes = at.int_or_hex()?,
            "nio.sessionlessCnxnTimeout" => {
                self.sessionless_cnxn_timeout_ms = at.number(1, u32::MAX as u64, "a time in ms")?
            }
            "globalOutstandingLimit" => {
                self.global_outstanding_limit = at.number(1, u32::MAX as u64, "a count")?
            }
            "zkr.clientOutputLimitBytes" => {
                self.client_output_limit_bytes = at.number(1, u32::MAX as u64, "a size in bytes")?
            }
            "zkr.diskFullBacklogBytes" => {
                self.disk_full_backlog_bytes = at.number(1, u64::MAX >> 1, "a size in bytes")?
            }
            "zkr.clientWriteStallMs" => {
                self.client_write_stall_ms = Some(at.number(1, u32::MAX as u64, "a time in ms")?)
            }
            "DigestAuthenticationProvider.superDigest" => {
                if !value.contains(':') {
                    return Err(at.bad("expected super:<base64 sha1 digest>"));
                }
                self.core.super_digest = Some(value.to_string());
            }
            "extendedTypesEnabled" => self.core.extended_types_enabled = at.boolean()?,
            "znode.container.checkIntervalMs" => {
                self.core.container_check_interval_ms = at.number(1, u64::MAX, "a time in ms")?
            }
            "znode.container.maxPerMinute" => {
                self.core.container_max_per_minute = at.number(0, u32::MAX as u64, "a count")?
            }
            "zkr.bugs" | "zkr.diskFaultFile" => self.apply_test_only(at, key)?,
            "skipACL" => self.core.skip_acl = at.boolean()?,
            "enforceQuota" => self.core.enforce_quota = at.boolean()?,
            "zkr.maxWatchesPerSession" => {
                self.core.max_watches_per_session =
                    at.number(0, u32::MAX as u64, "a count (0 = unlimited)")?
            }
            "zkr.diskDiffMaxTxns" => {
                self.core.disk_diff_max_txns = at.number(0, u64::MAX, "a count (0 = off)")?;
                seen.disk_diff_max_txns = true;
            }
            "zkr.snapshotPacing" => self.snapshot_pacing = at.boolean()?,
            "preAllocSize" => {
                let kb: u64 = at.number(0, u64::MAX >> 10, "a size in KB (0 = off)")?;
                self.prealloc_bytes = kb << 10;
            }
            "zkr.workerThreads" => {
                self.worker_threads = at.number(0, 1024, "a count (0 = one per core)")?
            }
            "zkr.commitLogCount" => {
                self.core.commit_log_count = at.number(1, u32::MAX as u64, "a count")?
            }
            _ => self.apply_quorum_or_other(at, key)?,
        }
        Ok(())
    }

    /// Keys that break the server on purpose, for tests (`jepsen test --bug`, disk faults):
    /// refused unless this build has the `bugs` feature, so a release never honours them.
    fn apply_test_only(&mut self, at: Field<'_>, key: &str) -> Result<(), ConfigError> {
        if !cfg!(feature = "bugs") {
            return Err(at.bad("only a zkr-server built with the `bugs` feature (tests) takes it"));
        }
        let value = at.property.value.trim();
        if key == "zkr.diskFaultFile" {
            self.disk_fault_file = Some(at.path()?);
            return Ok(());
        }
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !crate::bugs::set_by_name(&mut self.core.bugs, &mut self.shell_bugs, name) {
                let known = crate::bugs::BUG_NAMES;
                return Err(at.bad(&format!("unknown bug {name:?} (known: {known})")));
            }
        }
        tracing::warn!("zoo.cfg: deliberate bugs switched on: {value}");
        Ok(())
    }

    fn apply_session_timeout(
        &mut self,
        at: Field<'_>,
        key: &str,
        seen: &mut Seen,
    ) -> Result<(), ConfigError> {
        // -1 means "the default", as in ZooKeeper.
        let ms = at.signed(-1, i32::MAX as i64)? as i32;
        let line = (ms != -1).then_some(at.property.line);
        if key == "minSessionTimeout" {
            self.core.session_timeout_ms_min = ms;
            seen.min_session_timeout = line;
        } else {
            self.core.session_timeout_ms_max = ms;
            seen.max_session_timeout = line;
        }
        if ms == 0 {
            return Err(at.bad("expected a positive time in ms (or -1 for the default)"));
        }
        Ok(())
    }

    fn apply_quorum_or_other(&mut self, at: Field<'_>, key: &str) -> Result<(), ConfigError> {
        let value = at.property.value.as_str();
        match key {
            "initLimit" => self.init_limit = Some(at.number(1, u32::MAX as u64, "ticks")?),
            "syncLimit" => self.sync_limit = Some(at.number(1, u32::MAX as u64, "ticks")?),
            "electionAlg" => {
                let alg: u32 = at.number(0, u32::MAX as u64, "an algorithm number")?;
                if alg != 3 {
                    return Err(at.bad("only electionAlg 3 (fast leader election) exists"));
                }
                self.election_alg = Some(alg);
            }
            "peerType" => {
                self.peer_type = match value {
                    "participant" => PeerType::Participant,
                    "observer" => PeerType::Observer,
                    _ => return Err(at.bad("expected participant or observer")),
                }
            }
            _ if key.starts_with("server.") => {
                let id = key["server.".len()..]
                    .parse::<u64>()
                    .map_err(|_| at.bad("the key needs a numeric server id: server.N"))?;
                let spec = parse_server_spec(value).map_err(|reason| at.bad(&reason))?;
                self.servers.insert(id, spec);
            }
            // Read by `metrics::endpoint` from `extra`.
            _ if key.starts_with("metricsProvider.") => {
                self.extra.insert(at.property.key.clone(), value.to_string());
            }
            _ if key.starts_with("admin.")
                || key.starts_with("group.")
                || key.starts_with("weight.")
                || IGNORED_KEYS.contains(&key) =>
            {
                tracing::info!("zoo.cfg: {} is accepted but has no effect here", at.property.key);
                self.extra.insert(at.property.key.clone(), value.to_string());
            }
            _ => {
                let key = at.property.key.clone();
                self.warn(format!("unknown key {key} (line {}); kept", at.property.line));
                self.extra.insert(key, value.to_string());
            }
        }
        Ok(())
    }

    /// What bounds each client connection (see `client_net`).
    pub fn conn_policy(&self) -> crate::client_net::ConnPolicy {
        let stall_ms =
            self.client_write_stall_ms.unwrap_or(self.core.session_timeout_ms_max.max(1) as u64);
        crate::client_net::ConnPolicy {
            max_frame_bytes: self.core.max_frame_bytes,
            handshake_timeout: std::time::Duration::from_millis(self.sessionless_cnxn_timeout_ms),
            outstanding_max: self.global_outstanding_limit,
            output_bytes_max: self.client_output_limit_bytes.max(self.core.max_frame_bytes),
            write_stall_timeout: std::time::Duration::from_millis(stall_ms),
        }
    }

    /// Reads `<dataDir>/myid` into `core.server_id` (quorum mode).
    pub fn read_myid(&mut self) -> Result<(), ConfigError> {
        let path = self.data_dir.join("myid");
        let text = std::fs::read_to_string(&path)
            .map_err(|source| ConfigError::Io { path: path.clone(), source })?;
        let id: u64 = text.trim().parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "{}: {:?} is not a server id",
                path.display(),
                text.trim()
            ))
        })?;
        if !self.servers.contains_key(&id) {
            return Err(ConfigError::Invalid(format!(
                "{}: server id {id} has no server.{id} line",
                path.display()
            )));
        }
        self.set_myid(id)
    }

    /// Makes this the ensemble member `id` (what `myid` says), and validates the result.
    pub fn set_myid(&mut self, id: u64) -> Result<(), ConfigError> {
        if !self.servers.contains_key(&id) {
            return Err(ConfigError::Invalid(format!("server id {id} has no server.{id} line")));
        }
        self.core.server_id = zkr_core::types::ServerId(id);
        self.core.members = self
            .servers
            .iter()
            .map(|(id, spec)| zkr_core::config::Member {
                id: zkr_core::types::ServerId(*id),
                observer: spec.peer_type == PeerType::Observer,
            })
            .collect();
        self.core.ensemble_config_text = Some(self.membership_text());
        if let Some(limit) = self.init_limit {
            self.core.init_limit = limit;
        }
        if let Some(limit) = self.sync_limit {
            self.core.sync_limit = limit;
        }
        self.core
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("invalid configuration: {e}")))
    }

    /// The ensemble's membership as ZooKeeper 3.8 writes it into `/zookeeper/config`
    /// (`QuorumVerifier.toString()`, `QuorumServer.toString()`): one
    /// `server.N=host:quorumPort:electionPort:participant|observer` line per member in id order,
    /// `;clientHost:clientPort` appended only where the `server.N` line gave a client port
    /// (`0.0.0.0` when it gave no host; a `clientPort` key does not show), IPv6 hosts in
    /// brackets, then `version=` and the config version in hex without a trailing newline. A
    /// static configuration (no dynamic reconfig, which zkr does not support) is version 0.
    pub fn membership_text(&self) -> String {
        let bracket = |host: &str| {
            if host.contains(':') { format!("[{host}]") } else { host.to_string() }
        };
        let mut text = String::new();
        for (id, spec) in &self.servers {
            let role = match spec.peer_type {
                PeerType::Participant => "participant",
                PeerType::Observer => "observer",
            };
            let (host, quorum, election) =
                (bracket(&spec.host), spec.quorum_port, spec.election_port);
            text.push_str(&format!("server.{id}={host}:{quorum}:{election}:{role}"));
            if let Some((client_host, port)) = &spec.client {
                let client_host = client_host.as_deref().map_or("0.0.0.0".into(), bracket);
                text.push_str(&format!(";{client_host}:{port}"));
            }
            text.push('\n');
        }
        text.push_str(&format!("version={:x}", 0));
        text
    }

    /// `key=value` pairs for the `conf` four-letter word, in ZooKeeper's order and spelling.
    /// Reads the data directories for their sizes.
    pub fn to_conf_lines(&self) -> Vec<(String, String)> {
        let snap_dir = absolute(&self.data_dir.join(crate::storage::VERSION_DIR));
        let log_dir = absolute(&self.data_log_dir.join(crate::storage::VERSION_DIR));
        let standalone = self.servers.is_empty();
        let server_id = if standalone { 0 } else { self.core.server_id.0 };
        let mut lines = vec![
            ("clientPort", self.client_port.to_string()),
            (
                "secureClientPort",
                self.security.secure_client_port.map_or(-1, i32::from).to_string(),
            ),
            ("dataDir", snap_dir.display().to_string()),
            ("dataDirSize", dir_size(&snap_dir).to_string()),
            ("dataLogDir", log_dir.display().to_string()),
            ("dataLogSize", dir_size(&log_dir).to_string()),
            ("tickTime", self.core.tick_time_ms.to_string()),
            ("maxClientCnxns", self.max_client_cnxns.to_string()),
            ("minSessionTimeout", self.core.session_timeout_ms_min.to_string()),
            ("maxSessionTimeout", self.core.session_timeout_ms_max.to_string()),
            ("clientPortListenBacklog", self.client_port_listen_backlog.to_string()),
            ("serverId", server_id.to_string()),
        ];
        if !standalone {
            let me = self.servers.get(&self.core.server_id.0);
            let peer_type = match self.peer_type {
                PeerType::Participant => 0,
                PeerType::Observer => 1,
            };
            lines.extend([
                ("initLimit", self.init_limit.unwrap_or(0).to_string()),
                ("syncLimit", self.sync_limit.unwrap_or(0).to_string()),
                ("electionAlg", self.election_alg.unwrap_or(3).to_string()),
                ("electionPort", me.map_or(0, |s| s.election_port).to_string()),
                ("quorumPort", me.map_or(0, |s| s.quorum_port).to_string()),
                ("peerType", peer_type.to_string()),
            ]);
        }
        lines.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

fn line_or_default(line: Option<usize>) -> String {
    line.map_or_else(|| "default".to_string(), |l| l.to_string())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Total size of the regular files directly in `dir` (0 if unreadable), like ZooKeeper's
/// dataDirSize.
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Which keys were set, and where, for the checks that run after the last line.
#[derive(Default)]
struct Seen {
    tick_time: bool,
    data_dir: bool,
    data_log_dir: bool,
    client_port: bool,
    /// Line of an explicit (not -1) minSessionTimeout.
    min_session_timeout: Option<usize>,
    max_session_timeout: Option<usize>,
    /// `zkr.diskDiffMaxTxns` was given (else it follows snapCount).
    disk_diff_max_txns: bool,
}

/// Typed readers for one entry's value; errors name the key, value and line.
#[derive(Clone, Copy)]
struct Field<'a> {
    property: &'a Property,
}

impl Field<'_> {
    fn bad(&self, reason: &str) -> ConfigError {
        ConfigError::BadValue {
            key: self.property.key.clone(),
            value: self.property.value.clone(),
            line: self.property.line,
            reason: reason.to_string(),
        }
    }

    /// An unsigned decimal in `min..=max`, converted to `T`.
    fn number<T: TryFrom<u64>>(&self, min: u64, max: u64, what: &str) -> Result<T, ConfigError> {
        let reason = format!("expected {what} in {min}..={max}");
        let n: u64 = self.property.value.parse().map_err(|_| self.bad(&reason))?;
        if n < min || n > max {
            return Err(self.bad(&reason));
        }
        T::try_from(n).map_err(|_| self.bad(&reason))
    }

    fn signed(&self, min: i64, max: i64) -> Result<i64, ConfigError> {
        let reason = format!("expected an integer in {min}..={max}");
        let n: i64 = self.property.value.parse().map_err(|_| self.bad(&reason))?;
        if n < min || n > max {
            return Err(self.bad(&reason));
        }
        Ok(n)
    }

    /// Decimal or `0x` hex (as Java's `Integer.decode`), in 1..=i32::MAX.
    fn int_or_hex(&self) -> Result<usize, ConfigError> {
        let value = self.property.value.as_str();
        let reason = "expected a positive integer (decimal or 0x hex) up to 2147483647";
        let parsed = match value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")) {
            Some(hex) => i64::from_str_radix(hex, 16),
            None => value.parse::<i64>(),
        };
        match parsed {
            Ok(n) if n >= 1 && n <= i32::MAX as i64 => Ok(n as usize),
            _ => Err(self.bad(reason)),
        }
    }

    fn boolean(&self) -> Result<bool, ConfigError> {
        match self.property.value.to_ascii_lowercase().as_str() {
            "yes" | "true" => Ok(true),
            "no" | "false" => Ok(false),
            _ => Err(self.bad("expected yes/no or true/false")),
        }
    }

    fn path(&self) -> Result<PathBuf, ConfigError> {
        if self.property.value.is_empty() {
            return Err(self.bad("expected a directory path"));
        }
        Ok(PathBuf::from(&self.property.value))
    }

    fn ip(&self) -> Result<IpAddr, ConfigError> {
        let value = self.property.value.as_str();
        if value == "localhost" {
            return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        let unbracketed = value.strip_prefix('[').and_then(|v| v.strip_suffix(']'));
        unbracketed.unwrap_or(value).parse().map_err(|_| self.bad("expected an IP address"))
    }
}

/// Parses `host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]`.
fn parse_server_spec(spec: &str) -> Result<ServerSpec, String> {
    if spec.contains('|') {
        return Err("multiple addresses per server (multiAddress) are not supported".into());
    }
    let (quorum_part, client_part) = match spec.split_once(';') {
        Some((q, c)) => (q.trim(), Some(c.trim())),
        None => (spec.trim(), None),
    };
    let (host, rest) = split_host(quorum_part)?;
    let fields: Vec<&str> = rest.split(':').collect();
    if fields.len() < 2 || fields.len() > 3 {
        return Err("expected host:quorumPort:electionPort[:participant|:observer]".into());
    }
    let port = |text: &str, name: &str| {
        text.parse::<u16>().ok().filter(|p| *p != 0).ok_or(format!("bad {name} {text:?}"))
    };
    let quorum_port = port(fields[0], "quorum port")?;
    let election_port = port(fields[1], "election port")?;
    if quorum_port == election_port {
        return Err("the quorum port and the election port must differ".into());
    }
    let peer_type = match fields.get(2).copied() {
        None | Some("participant") => PeerType::Participant,
        Some("observer") => PeerType::Observer,
        Some(other) => return Err(format!("unknown role {other:?}")),
    };
    let client = match client_part {
        None => None,
        Some(text) => Some(match text.rsplit_once(':') {
            Some((host, p)) => {
                let (host, _) = split_host(&format!("{host}:"))?;
                (Some(host), port(p, "client port")?)
            }
            None => (None, port(text, "client port")?),
        }),
    };
    Ok(ServerSpec { host, quorum_port, election_port, peer_type, client })
}

/// Splits `host:rest` or `[v6]:rest` into the host (without brackets) and `rest`.
fn split_host(text: &str) -> Result<(String, &str), String> {
    if let Some(after) = text.strip_prefix('[') {
        let (host, rest) = after.split_once(']').ok_or("unclosed [ in the host")?;
        let rest = rest.strip_prefix(':').ok_or("expected : after ]")?;
        return Ok((host.to_string(), rest));
    }
    match text.split_once(':') {
        Some((host, rest)) if !host.is_empty() => Ok((host.to_string(), rest)),
        _ => Err("expected host:port".into()),
    }
}
