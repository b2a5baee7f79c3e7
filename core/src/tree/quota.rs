//! Quotas (reference §10.9): the `StatsTrack` text format and the `/zookeeper/quota` layout.
//!
//! A quota on `/p` exists while `/zookeeper/quota/p/zookeeper_limits` exists; the tree keeps the
//! set of such `/p` ("quota roots") and updates `/zookeeper/quota/p/zookeeper_stats` in place
//! (no version or zxid change) on every create, delete and setData under `/p`. The longest
//! matching quota root applies; `/` never carries a quota.
//!
//! Invariant: parsing never fails; malformed pairs are skipped (ZooKeeper 3.9 would throw from
//! the apply path, which we must not do).

use std::collections::BTreeMap;

/// `Quotas.quotaZookeeper`.
pub const QUOTA_ROOT: &str = "/zookeeper/quota";
/// `Quotas.limitNode`.
pub const LIMIT_NODE: &str = "zookeeper_limits";
/// `Quotas.statNode`.
pub const STAT_NODE: &str = "zookeeper_stats";

const COUNT: &str = "count";
const BYTES: &str = "bytes";
const COUNT_HARD: &str = "countHardLimit";
const BYTES_HARD: &str = "byteHardLimit";

/// `StatsTrack`: `key=value` pairs separated by `,` or `;`; a missing key reads as -1.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsTrack {
    stats: BTreeMap<String, i64>,
}

impl StatsTrack {
    /// Parses the node data (null and empty give an empty track).
    pub fn parse(data: Option<&[u8]>) -> StatsTrack {
        let mut stats = BTreeMap::new();
        let text = String::from_utf8_lossy(data.unwrap_or(&[]));
        for pair in text.split([',', ';']).filter(|p| !p.is_empty()) {
            let mut kv = pair.split('=');
            let key = kv.next().unwrap_or("");
            let value = kv.next().unwrap_or("");
            let value = if value.is_empty() { Some(-1) } else { value.parse::<i64>().ok() };
            if let Some(v) = value {
                stats.insert(key.to_string(), v);
            }
        }
        StatsTrack { stats }
    }

    fn get(&self, key: &str) -> i64 {
        self.stats.get(key).copied().unwrap_or(-1)
    }

    /// Soft count limit (limits node) or node count (stats node).
    pub fn count(&self) -> i64 {
        self.get(COUNT)
    }

    /// Soft byte limit (limits node) or byte total (stats node).
    pub fn bytes(&self) -> i64 {
        self.get(BYTES)
    }

    /// Hard count limit, -1 if none.
    pub fn count_hard_limit(&self) -> i64 {
        self.get(COUNT_HARD)
    }

    /// Hard byte limit, -1 if none.
    pub fn byte_hard_limit(&self) -> i64 {
        self.get(BYTES_HARD)
    }

    /// Sets the count.
    pub fn set_count(&mut self, v: i64) {
        self.stats.insert(COUNT.to_string(), v);
    }

    /// Sets the bytes.
    pub fn set_bytes(&mut self, v: i64) {
        self.stats.insert(BYTES.to_string(), v);
    }

    /// `StatsTrack.toString`: `count=<n>,bytes=<n>`, then if other keys exist an extra `=` and
    /// `;key=value` for each, sorted by key.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{COUNT}={},{BYTES}={}", self.count(), self.bytes());
        let mut rest = self.stats.iter().filter(|(k, _)| *k != COUNT && *k != BYTES).peekable();
        if rest.peek().is_some() {
            out.push('=');
            for (k, v) in rest {
                out.push_str(&format!(";{k}={v}"));
            }
        }
        out.into_bytes()
    }
}

/// `/zookeeper/quota<root>/zookeeper_limits`.
pub fn limit_path(quota_root: &str) -> String {
    format!("{QUOTA_ROOT}{quota_root}/{LIMIT_NODE}")
}

/// `/zookeeper/quota<root>/zookeeper_stats`.
pub fn stat_path(quota_root: &str) -> String {
    format!("{QUOTA_ROOT}{quota_root}/{STAT_NODE}")
}

/// If `path` is a limits or stats node, its quota root (`/p` for
/// `/zookeeper/quota/p/zookeeper_limits`) and whether it is the limits node. A node directly
/// under `/zookeeper/quota` has an empty root and gives `None` (see ZOOKEEPER's later
/// `validateQuotaData`: an empty namespace would break the apply path).
pub fn quota_node_root(path: &str) -> Option<(String, bool)> {
    let rest = path.strip_prefix(QUOTA_ROOT)?;
    let (root, name) = rest.rsplit_once('/')?;
    let is_limit = match name {
        LIMIT_NODE => true,
        STAT_NODE => false,
        _ => return None,
    };
    if root.is_empty() || !root.starts_with('/') {
        return None;
    }
    Some((root.to_string(), is_limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_track_roundtrip() {
        let t = StatsTrack::parse(Some(b"count=4,bytes=5=;byteHardLimit=10;countHardLimit=3"));
        assert_eq!((t.count(), t.bytes()), (4, 5));
        assert_eq!((t.count_hard_limit(), t.byte_hard_limit()), (3, 10));
        assert_eq!(t.to_bytes(), b"count=4,bytes=5=;byteHardLimit=10;countHardLimit=3".to_vec());
        let empty = StatsTrack::parse(None);
        assert_eq!(empty.to_bytes(), b"count=-1,bytes=-1".to_vec());
        let junk = StatsTrack::parse(Some(b"x=;=;count=zz,,bytes=7"));
        assert_eq!((junk.count(), junk.bytes()), (-1, 7));
    }

    #[test]
    fn quota_node_roots() {
        assert_eq!(
            quota_node_root("/zookeeper/quota/a/b/zookeeper_limits"),
            Some(("/a/b".into(), true))
        );
        assert_eq!(
            quota_node_root("/zookeeper/quota/a/zookeeper_stats"),
            Some(("/a".into(), false))
        );
        assert_eq!(quota_node_root("/zookeeper/quota/zookeeper_limits"), None);
        assert_eq!(quota_node_root("/zookeeper/quotax/zookeeper_limits"), None);
        assert_eq!(quota_node_root("/zookeeper/quota/a/other"), None);
        assert_eq!(limit_path("/a"), "/zookeeper/quota/a/zookeeper_limits");
    }
}
