//! The core's configuration: the subset of zoo.cfg that changes protocol behaviour. The shell
//! parses zoo.cfg and builds this; `validate()` rejects combinations the core cannot run with.

use crate::types::ServerId;

/// Protocol-relevant settings. Times are in ms; the core turns them into ticks of `tick_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This server's id (`myid`); 1 in standalone mode.
    pub server_id: ServerId,
    /// Length of one core tick (`Input::Tick`), ms. Finer than `tick_time_ms`.
    pub tick_ms: u32,
    /// ZooKeeper's `tickTime`, ms: the session-expiry bucket width.
    pub tick_time_ms: u32,
    /// `minSessionTimeout`, ms (default `2 * tickTime`).
    pub session_timeout_ms_min: i32,
    /// `maxSessionTimeout`, ms (default `20 * tickTime`).
    pub session_timeout_ms_max: i32,
    /// `jute.maxbuffer`: the largest frame accepted, bytes.
    pub max_frame_bytes: usize,
    /// `DigestAuthenticationProvider.superDigest`: `super:<base64 sha1>`.
    pub super_digest: Option<String>,
    /// SASL DIGEST-MD5 users, name → password: the `user_<name>="<password>"` options of the
    /// JAAS `Server` section. Empty: every SASL attempt fails (AUTHFAILED).
    pub sasl_users: std::collections::BTreeMap<String, String>,
    /// `zookeeper.superUser`: a SASL user that is also `super`.
    pub sasl_super_user: Option<String>,
    /// `zookeeper.X509AuthenticationProvider.superUser`: a client certificate subject that is
    /// also `super`.
    pub x509_super_user: Option<String>,
    /// `enforce.auth.schemes` when `enforce.auth.enabled` (`sasl` for
    /// `sessionRequireClientSASLAuth`): a connection with no id of one of these schemes gets
    /// SESSIONCLOSEDREQUIRESASLAUTH for any request but auth and SASL. Empty: not enforced.
    pub enforce_auth_schemes: Vec<String>,
    /// `extendedTypesEnabled`: allows TTL nodes.
    pub extended_types_enabled: bool,
    /// `znode.container.checkIntervalMs`.
    pub container_check_interval_ms: u64,
    /// `znode.container.maxPerMinute`.
    pub container_max_per_minute: u32,
    /// `skipACL`.
    pub skip_acl: bool,
    /// `enforceQuota`.
    pub enforce_quota: bool,
    /// `zkr.maxWatchesPerSession`: watches one connection (a session's current connection) may
    /// hold; a request that would set more fails with QUOTAEXCEEDED. 0 = unlimited. zkr only:
    /// ZooKeeper has no such bound (docs/RELIABILITY.md, "Admission limits").
    pub max_watches_per_session: usize,
    /// The ensemble's members (`server.N` lines); empty for a standalone server.
    pub members: Vec<Member>,
    /// `initLimit`, in tickTime units: how long discovery and sync may take.
    pub init_limit: u32,
    /// `syncLimit`, in tickTime units: how long a learner may stay silent.
    pub sync_limit: u32,
    /// Committed txns kept in memory for DIFF syncs (ZooKeeper's `commitLogCount`).
    pub commit_log_count: usize,
    /// A learner that missed more than the in-memory log (`commit_log_count`) but at most this
    /// many txns is synced by a DIFF read from the leader's txn log files (`Output::ReadLog`)
    /// instead of a SNAP; 0 switches that off. The server sets it from `snapCount` (ZooKeeper
    /// reads its log files when the gap is under a third of the snapshot's size).
    pub disk_diff_max_txns: u64,
    /// The data of `/zookeeper/config` on an ensemble member: the membership as ZooKeeper's
    /// `QuorumVerifier.toString()` writes it (`server.N=host:quorumPort:electionPort:participant`
    /// lines, `;clientHost:clientPort` where the `server.N` line has one, then `version=` in
    /// hex). The shell builds it from zoo.cfg. `None` (standalone; the simulator): the node stays
    /// empty, as on a standalone ZooKeeper.
    pub ensemble_config_text: Option<String>,
    /// Deliberately broken behaviours, for proving that the simulator's checks can fail. Any of
    /// them switched on is rejected by `validate()` unless core is built with the `bugs` feature.
    pub bugs: Bugs,
}

/// One ensemble member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    /// Its `myid`.
    pub id: ServerId,
    /// A non-voting observer.
    pub observer: bool,
}

/// Named, deliberately broken behaviours. Only tests switch them on (core feature `bugs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Commit and reply to a write as soon as it is proposed, before it is durable.
    pub ack_before_fsync: bool,
    /// Never expire sessions (their ephemerals outlive them).
    pub skip_session_expiry: bool,
    /// Serve reads at once, even behind a pending write of the same session.
    pub reads_skip_queue: bool,
    /// Zab leader: commit a proposal once any single server (itself) has it durable.
    pub commit_after_one_ack: bool,
    /// Zab leader: send a DIFF where a TRUNC is needed (learner keeps txns the leader lacks).
    pub diff_instead_of_trunc: bool,
    /// Zab learner: make the new epoch durable as soon as NEWLEADER arrives, before the txns of
    /// the synchronization are durable (ZOOKEEPER-4643); the leader likewise before its own
    /// history is durable.
    pub epoch_before_sync: bool,
    /// Zab learner: acknowledge NEWLEADER before the synced txns are durable (ZOOKEEPER-3911).
    pub ack_newleader_before_sync: bool,
    /// Expire sessions after half their timeout.
    pub expire_early: bool,
    /// Zab: ignore `Input::PeerLost`, so a dead leader is noticed only by the silence timeout.
    pub ignore_peer_lost: bool,
    /// Zab learner: at TRUNC cut the txn log on disk but not the in-memory log, so a txn no
    /// quorum logged stays in memory and is applied with the next commits (ZOOKEEPER-2845).
    pub trunc_keeps_memory: bool,
    /// Zab leader: count a silent learner as alive for initLimit instead of syncLimit, longer
    /// than its followers wait for it: a partitioned leader keeps answering syncs after the
    /// others elected a new one (ZOOKEEPER-1675).
    pub stale_leader_lease: bool,
    /// Zab learner: accept a LEADERINFO whose epoch is older than its accepted epoch.
    pub accept_stale_epoch: bool,
    /// Zab learner: acknowledge a LEADERINFO whose epoch equals the one it already accepted
    /// (maybe from another prospective leader) as a fresh promise, which the leader counts: two
    /// leaders can be established in one epoch.
    pub ack_repeated_epoch: bool,
    /// Zab leader: answer a sync once its target is committed, without a quorum's proof that
    /// this server still led after the sync arrived (ZOOKEEPER-1675 as upstream has it).
    pub sync_without_quorum: bool,
    /// Zab leader: a DIFF from the txn log files asks for the records after the one following
    /// the learner's last zxid (an off-by-one on `after`), so the learner misses one txn.
    pub disk_diff_skips_one: bool,
    /// Session ids from the recovered tree alone, the mistake behind sim seeds 46734 and 48581
    /// (the tree holds only live sessions): a server starts right after its newest live
    /// session, or at its prefix's first id when it has none, with no clock, and does not move
    /// past the ids of its own that its log or a SNAP shows later. Expired ids come back.
    pub session_id_from_tree: bool,
    /// Zab learner: ignore a LEADERINFO of our leader's epoch (or a later one) on another of
    /// our sessions, the sign that the leader replaced ours: keep serving on a session the
    /// leader no longer reads until `syncLimit` (tier 1 seed 214269).
    pub ignore_replaced_session: bool,
    /// Zab leader: ignore the session touches a learner reports in its PINGREPLY, so the
    /// clients of followers and observers expire after their timeout however busy they are
    /// (ZooKeeper's leader extends them in `SessionTracker.touchSession`).
    pub drop_learner_touches: bool,
}

impl Bugs {
    /// True when any broken behaviour is on.
    pub fn any(&self) -> bool {
        self.ack_before_fsync
            || self.skip_session_expiry
            || self.reads_skip_queue
            || self.commit_after_one_ack
            || self.diff_instead_of_trunc
            || self.epoch_before_sync
            || self.ack_newleader_before_sync
            || self.expire_early
            || self.ignore_peer_lost
            || self.trunc_keeps_memory
            || self.stale_leader_lease
            || self.accept_stale_epoch
            || self.ack_repeated_epoch
            || self.sync_without_quorum
            || self.disk_diff_skips_one
            || self.session_id_from_tree
            || self.ignore_replaced_session
            || self.drop_learner_touches
    }
}

impl Default for Config {
    fn default() -> Config {
        let tick_time_ms = 2000;
        Config {
            server_id: ServerId(1),
            tick_ms: 100,
            tick_time_ms,
            session_timeout_ms_min: 2 * tick_time_ms as i32,
            session_timeout_ms_max: 20 * tick_time_ms as i32,
            max_frame_bytes: 0xfffff,
            super_digest: None,
            sasl_users: std::collections::BTreeMap::new(),
            sasl_super_user: None,
            x509_super_user: None,
            enforce_auth_schemes: Vec::new(),
            extended_types_enabled: false,
            container_check_interval_ms: 60_000,
            container_max_per_minute: 10_000,
            skip_acl: false,
            enforce_quota: false,
            max_watches_per_session: DEFAULT_MAX_WATCHES_PER_SESSION,
            members: Vec::new(),
            init_limit: 10,
            sync_limit: 5,
            commit_log_count: 500,
            disk_diff_max_txns: DEFAULT_DISK_DIFF_MAX_TXNS,
            ensemble_config_text: None,
            bugs: Bugs::default(),
        }
    }
}

/// Default of `Config::disk_diff_max_txns`: ZooKeeper's default `snapCount`.
pub const DEFAULT_DISK_DIFF_MAX_TXNS: u64 = 100_000;

/// Default of `Config::max_watches_per_session`: far above what real clients set (Druid and
/// Curator's TreeCache are known for tens of thousands per session), low enough that one
/// connection cannot take more than a few hundred MB of watch tables.
pub const DEFAULT_MAX_WATCHES_PER_SESSION: usize = 1_000_000;

/// Why a configuration cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bugs.any() && !cfg!(feature = "bugs") {
            return Err(ConfigError("deliberate bugs need zkr-core's `bugs` feature".into()));
        }
        if self.tick_ms == 0 || self.tick_time_ms == 0 {
            return Err(ConfigError("tickTime and the core tick must be positive".into()));
        }
        if self.tick_ms > self.tick_time_ms {
            return Err(ConfigError(format!(
                "core tick {} ms is longer than tickTime {} ms",
                self.tick_ms, self.tick_time_ms
            )));
        }
        if self.session_timeout_ms_min > self.session_timeout_ms_max {
            return Err(ConfigError(format!(
                "minSessionTimeout {} must not be larger than maxSessionTimeout {}",
                self.session_timeout_ms_min, self.session_timeout_ms_max
            )));
        }
        if self.session_timeout_ms_min <= 0 {
            return Err(ConfigError("minSessionTimeout must be positive".into()));
        }
        let providers = ["ip", "digest", "sasl", "x509"];
        if let Some(bad) =
            self.enforce_auth_schemes.iter().find(|s| !providers.contains(&s.as_str()))
        {
            return Err(ConfigError(format!(
                "enforce.auth.schemes: {bad:?} is not an auth provider (ip, digest, sasl, x509)"
            )));
        }
        if self.max_frame_bytes == 0 || self.max_frame_bytes > i32::MAX as usize {
            return Err(ConfigError("jute.maxbuffer must be in 1..=2147483647".into()));
        }
        if !self.members.is_empty() {
            let me = self.members.iter().filter(|m| m.id == self.server_id).count();
            if me != 1 {
                return Err(ConfigError(format!(
                    "server id {} must appear exactly once among the members",
                    self.server_id.0
                )));
            }
            if !self.members.iter().any(|m| !m.observer) {
                return Err(ConfigError("an ensemble needs at least one voting member".into()));
            }
            let mut ids: Vec<_> = self.members.iter().map(|m| m.id).collect();
            ids.sort();
            ids.dedup();
            if ids.len() != self.members.len() {
                return Err(ConfigError("duplicate server ids among the members".into()));
            }
            if self.init_limit == 0 || self.sync_limit == 0 {
                return Err(ConfigError("initLimit and syncLimit must be positive".into()));
            }
        }
        if self.extended_types_enabled && self.server_id.0 > 254 {
            return Err(ConfigError(
                "extendedTypesEnabled requires a server id of at most 254".into(),
            ));
        }
        Ok(())
    }

    /// True when this server runs alone (no `server.N` lines).
    pub fn is_standalone(&self) -> bool {
        self.members.is_empty()
    }

    /// `n` tickTimes in core ticks.
    pub fn tick_times(&self, n: u32) -> u64 {
        self.ms_to_ticks(self.tick_time_ms as u64 * n as u64).max(1)
    }

    /// Converts a duration in ms to whole core ticks, rounding up.
    pub fn ms_to_ticks(&self, ms: u64) -> u64 {
        ms.div_ceil(self.tick_ms as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn min_above_max_is_rejected() {
        let cfg = Config { session_timeout_ms_min: 50_000, ..Config::default() };
        assert!(cfg.validate().is_err());
    }

    #[cfg(not(feature = "bugs"))]
    #[test]
    fn bugs_need_the_feature() {
        let bugs = Bugs { ack_before_fsync: true, ..Bugs::default() };
        let cfg = Config { bugs, ..Config::default() };
        assert!(cfg.validate().is_err(), "a production build must refuse deliberate bugs");
    }
}
