//! Deliberately broken shell behaviours, for proving that the simulator's checks can fail (issue
//! 9). Only tests switch them on, per server, at run time; a production build (without the
//! `bugs` feature) refuses any of them: `Storage::open_with` returns an error, and every check
//! below is `false` whatever the fields say, so the broken branches are compiled out.

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
}

impl ShellBugs {
    /// True when any broken behaviour is asked for.
    pub fn any(&self) -> bool {
        self.durable_before_fsync || self.epoch_in_place_no_fsync || self.keep_past_torn_tail
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
}

#[cfg(test)]
mod tests {
    #[cfg(not(feature = "bugs"))]
    #[test]
    fn bugs_need_the_feature() {
        let bugs = super::ShellBugs { keep_past_torn_tail: true, ..Default::default() };
        assert!(bugs.validate().is_err(), "a production build must refuse deliberate bugs");
        assert!(!bugs.keep_past_torn_tail(), "and never act on them");
        assert!(super::ShellBugs::default().validate().is_ok());
    }
}
