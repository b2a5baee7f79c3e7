//! Deliberately broken shell behaviours, for proving that the simulator's checks can fail (issue
//! 9). Only tests switch them on, per server, at run time; a production build (without the
//! `bugs` feature) refuses any of them: `Storage::open_with` returns an error, and every check
//! below is `false` whatever the fields say, so the broken branches are compiled out.
//!
//! [`set_by_name`] is the one table of bug names (core's and the shell's): `sim --bug`,
//! `sim-shell --bug` and zoo.cfg's `zkr.bugs` key (which a build without the feature refuses,
//! so `jepsen test` can run real processes with a bug: docs/JEPSEN.md) all go through it.

/// Named shell bugs. All off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShellBugs {
    /// The txn log reports records durable without fsyncing them (`Storage::sync` only hands
    /// the bytes to the OS): a power loss drops records the core was told were durable.
    pub durable_before_fsync: bool,
    /// The epoch files are rewritten in place (truncate, write, no temporary file, no rename,
    /// no fsync): a power loss leaves an empty or old epoch after `write` returned
    /// (ZOOKEEPER-1653's class).
    pub epoch_in_place_no_fsync: bool,
    /// Recovery keeps the torn last record of the newest log file (trusting its length field,
    /// not its checksum) instead of cutting the log before it.
    pub keep_past_torn_tail: bool,
    /// After a write that found the disk full, the log file is cut back to its last synced
    /// record but the cut is not fsynced (nor the removal of a file with no synced record)
    /// before the records are written again into a new file: a power loss can bring the cut
    /// bytes back in front of it.
    pub cut_without_fsync: bool,
    /// A TRUNC cuts the log file holding the truncation point without fsyncing the cut: the
    /// records after the next file's first sync are durable, the cut is not, and a power loss
    /// can bring the truncated records back in front of the file that holds their zxids anew.
    pub trunc_without_fsync: bool,
    /// Every run of the server process announces the same boot nonce in its quorum handshakes
    /// (see `peer_net`): a peer restarted within the reconnect probe is never reported lost.
    pub constant_boot_nonce: bool,
}

impl ShellBugs {
    /// True when any broken behaviour is asked for.
    pub fn any(&self) -> bool {
        self.durable_before_fsync
            || self.epoch_in_place_no_fsync
            || self.keep_past_torn_tail
            || self.cut_without_fsync
            || self.trunc_without_fsync
            || self.constant_boot_nonce
    }

    /// Refuses bugs in a build without the `bugs` feature.
    pub fn validate(&self) -> Result<(), String> {
        if self.any() && !cfg!(feature = "bugs") {
            return Err("deliberate shell bugs need zkr-server's `bugs` feature".into());
        }
        Ok(())
    }

    /// Whether `Storage::sync` skips the fsync.
    pub(crate) fn durable_before_fsync(&self) -> bool {
        cfg!(feature = "bugs") && self.durable_before_fsync
    }

    /// Whether `epochs::write_with` rewrites the files in place.
    pub(crate) fn epoch_in_place_no_fsync(&self) -> bool {
        cfg!(feature = "bugs") && self.epoch_in_place_no_fsync
    }

    /// Whether recovery keeps a torn last record.
    pub(crate) fn keep_past_torn_tail(&self) -> bool {
        cfg!(feature = "bugs") && self.keep_past_torn_tail
    }

    /// Whether `Storage::discard_unsynced` skips its fsyncs.
    pub(crate) fn cut_without_fsync(&self) -> bool {
        cfg!(feature = "bugs") && self.cut_without_fsync
    }

    /// Whether a TRUNC's cut of a log file skips its fsync.
    pub(crate) fn trunc_without_fsync(&self) -> bool {
        cfg!(feature = "bugs") && self.trunc_without_fsync
    }

    /// Whether the boot nonce is a constant rather than drawn per run.
    pub(crate) fn constant_boot_nonce(&self) -> bool {
        cfg!(feature = "bugs") && self.constant_boot_nonce
    }
}

/// The names [`set_by_name`] knows, for messages.
pub const BUG_NAMES: &str = "ack-before-fsync, skip-session-expiry, reads-skip-queue, \
    commit-after-one-ack, diff-instead-of-trunc, epoch-before-sync, ack-newleader-before-sync, \
    expire-early, ignore-peer-lost, durable-before-fsync, epoch-in-place-no-fsync, \
    keep-past-torn-tail, cut-without-fsync, disk-diff-skips-one, session-id-from-tree, \
    ignore-replaced-session, drop-learner-touches, trunc-without-fsync, constant-boot-nonce";

/// Switches on the deliberate bug `name`: a core bug in `core`, a storage bug in `shell`.
/// False for an unknown name. Whether the build may run it is checked later
/// (`zkr_core::Config::validate`, [`ShellBugs::validate`]).
pub fn set_by_name(core: &mut zkr_core::config::Bugs, shell: &mut ShellBugs, name: &str) -> bool {
    match name {
        "ack-before-fsync" => core.ack_before_fsync = true,
        "skip-session-expiry" => core.skip_session_expiry = true,
        "reads-skip-queue" => core.reads_skip_queue = true,
        "commit-after-one-ack" => core.commit_after_one_ack = true,
        "diff-instead-of-trunc" => core.diff_instead_of_trunc = true,
        "epoch-before-sync" => core.epoch_before_sync = true,
        "ack-newleader-before-sync" => core.ack_newleader_before_sync = true,
        "expire-early" => core.expire_early = true,
        "ignore-peer-lost" => core.ignore_peer_lost = true,
        "disk-diff-skips-one" => core.disk_diff_skips_one = true,
        "session-id-from-tree" => core.session_id_from_tree = true,
        "ignore-replaced-session" => core.ignore_replaced_session = true,
        "drop-learner-touches" => core.drop_learner_touches = true,
        "durable-before-fsync" => shell.durable_before_fsync = true,
        "epoch-in-place-no-fsync" => shell.epoch_in_place_no_fsync = true,
        "keep-past-torn-tail" => shell.keep_past_torn_tail = true,
        "cut-without-fsync" => shell.cut_without_fsync = true,
        "trunc-without-fsync" => shell.trunc_without_fsync = true,
        "constant-boot-nonce" => shell.constant_boot_nonce = true,
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_listed_name_is_known() {
        for name in super::BUG_NAMES.split(", ") {
            let (mut core, mut shell) = Default::default();
            assert!(super::set_by_name(&mut core, &mut shell, name.trim()), "{name}");
            assert!(core != zkr_core::config::Bugs::default() || shell.any(), "{name} sets one");
        }
        let (mut core, mut shell) = Default::default();
        assert!(!super::set_by_name(&mut core, &mut shell, "no-such-bug"));
    }

    #[cfg(not(feature = "bugs"))]
    #[test]
    fn bugs_need_the_feature() {
        let bugs = super::ShellBugs { keep_past_torn_tail: true, ..Default::default() };
        assert!(bugs.validate().is_err(), "a production build must refuse deliberate bugs");
        assert!(!bugs.keep_past_torn_tail(), "and never act on them");
        assert!(super::ShellBugs::default().validate().is_ok());
    }
}
