//! Watch tables: which connection watches which path, in which modes, and which connections an
//! applied change notifies. Follows ZooKeeper 3.9's `WatchManager` with `WatchStats` modes.
//!
//! Invariants:
//! - two tables, data and child, each `path → conn → modes`; no entry has an empty mode set;
//! - standard watches are used up when they fire; persistent and persistent-recursive ones stay;
//! - persistent watches live in both tables; persistent-recursive ones only in the data table, so
//!   they never see NodeChildrenChanged;
//! - one trigger notifies each connection at most once (the watcher set is deduplicated);
//! - `by_conn` mirrors the tables so a closing connection drops all its watches.

use std::collections::{BTreeMap, BTreeSet};

use crate::proto::client::EventType;
use crate::types::ConnId;

/// Watch modes held by one connection on one path of one table (a bit set).
pub mod mode {
    /// A one-shot watch.
    pub const STANDARD: u8 = 1;
    /// A persistent watch (addWatch mode 0).
    pub const PERSISTENT: u8 = 2;
    /// A persistent-recursive watch (addWatch mode 1).
    pub const RECURSIVE: u8 = 4;
}

/// Which table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Data watches (getData, exists, persistent, recursive).
    Data,
    /// Child watches (getChildren, persistent).
    Child,
}

type PathWatchers = BTreeMap<String, BTreeMap<ConnId, u8>>;

/// The watch tables of one server.
#[derive(Clone, Debug, Default)]
pub struct WatchManager {
    data: PathWatchers,
    child: PathWatchers,
    by_conn: BTreeMap<ConnId, BTreeSet<(Table, String)>>,
    recursive_count: usize,
}

fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

impl WatchManager {
    /// No watches.
    pub fn new() -> WatchManager {
        WatchManager::default()
    }

    fn table(&self, table: Table) -> &PathWatchers {
        match table {
            Table::Data => &self.data,
            Table::Child => &self.child,
        }
    }

    fn table_mut(&mut self, table: Table) -> &mut PathWatchers {
        match table {
            Table::Data => &mut self.data,
            Table::Child => &mut self.child,
        }
    }

    /// Adds `modes` for `conn` on `path` in `table`.
    pub fn add(&mut self, table: Table, path: &str, conn: ConnId, modes: u8) {
        assert!(modes != 0);
        assert!(table == Table::Data || modes & mode::RECURSIVE == 0, "recursive is data-only");
        let entry = self.table_mut(table).entry(path.to_string()).or_default();
        let held = entry.entry(conn).or_insert(0);
        let new_recursive = modes & mode::RECURSIVE != 0 && *held & mode::RECURSIVE == 0;
        *held |= modes;
        if new_recursive {
            self.recursive_count += 1;
        }
        self.by_conn.entry(conn).or_default().insert((table, path.to_string()));
        assert_eq!(self.modes(table, path, conn) & modes, modes, "the modes are held");
        assert!(self.by_conn[&conn].contains(&(table, path.to_string())), "mirrored by conn");
    }

    /// Removes `modes` of `conn` on `path` in `table`; returns true if any of them was held.
    pub fn remove(&mut self, table: Table, path: &str, conn: ConnId, modes: u8) -> bool {
        let Some(watchers) = self.table_mut(table).get_mut(path) else {
            return false;
        };
        let Some(held) = watchers.get_mut(&conn) else {
            return false;
        };
        let removed = *held & modes;
        if removed == 0 {
            return false;
        }
        *held &= !modes;
        let now_empty = *held == 0;
        if now_empty {
            watchers.remove(&conn);
        }
        if watchers.is_empty() {
            self.table_mut(table).remove(path);
        }
        if removed & mode::RECURSIVE != 0 {
            self.recursive_count -= 1;
        }
        if now_empty {
            let set = self.by_conn.get_mut(&conn).expect("mirror");
            assert!(set.remove(&(table, path.to_string())));
            if set.is_empty() {
                self.by_conn.remove(&conn);
            }
        }
        assert_eq!(self.modes(table, path, conn) & modes, 0, "none of the modes is left");
        assert!(removed != 0, "something was held");
        true
    }

    /// Modes `conn` holds on `path` in `table`.
    pub fn modes(&self, table: Table, path: &str, conn: ConnId) -> u8 {
        self.table(table).get(path).and_then(|w| w.get(&conn)).copied().unwrap_or(0)
    }

    /// How many (table, path) entries `conn` holds: what `Config::max_watches_per_session`
    /// bounds.
    pub fn count_for(&self, conn: ConnId) -> usize {
        self.by_conn.get(&conn).map_or(0, |entries| entries.len())
    }

    /// Drops every watch of a connection (it closed).
    pub fn remove_conn(&mut self, conn: ConnId) {
        let Some(entries) = self.by_conn.get(&conn).cloned() else {
            return;
        };
        for (table, path) in entries {
            let modes = self.modes(table, &path, conn);
            assert!(self.remove(table, &path, conn, modes));
        }
        assert!(!self.by_conn.contains_key(&conn));
    }

    /// Fires `event` on `path` in `table`: returns the connections to notify (sorted, each once)
    /// and uses up their standard watches. Connections in `suppress` are not notified (their
    /// standard watch is still used up, as in ZooKeeper).
    pub fn trigger(
        &mut self,
        table: Table,
        path: &str,
        suppress: &BTreeSet<ConnId>,
    ) -> BTreeSet<ConnId> {
        let mut notify = BTreeSet::new();
        let exact: Vec<(ConnId, u8)> = self
            .table(table)
            .get(path)
            .map(|w| w.iter().map(|(c, m)| (*c, *m)).collect())
            .unwrap_or_default();
        for (conn, modes) in exact {
            notify.insert(conn);
            if modes & mode::STANDARD != 0 {
                self.remove(table, path, conn, mode::STANDARD);
            }
        }
        if self.recursive_count > 0 && table == Table::Data {
            let mut ancestor = parent_of(path);
            while let Some(p) = ancestor {
                if let Some(watchers) = self.data.get(p) {
                    let recursive = watchers.iter().filter(|(_, m)| **m & mode::RECURSIVE != 0);
                    notify.extend(recursive.map(|(c, _)| *c));
                }
                ancestor = parent_of(p);
            }
        }
        notify.retain(|c| !suppress.contains(c));
        // Standard watches are one-shot (ZooKeeper's programmer's guide, "Watches"): none of
        // the exact path's standard watches survives its trigger; persistent ones do.
        let left = self.table(table).get(path);
        assert!(left.is_none_or(|w| w.values().all(|m| m & mode::STANDARD == 0)), "one-shot");
        assert!(notify.iter().all(|c| !suppress.contains(c)), "suppressed are not notified");
        notify
    }

    /// Which tables an event fires in, in ZooKeeper's order (`DataTree.createNode/deleteNode/
    /// setData`): delete fires the data table, then the child table with the data watchers
    /// suppressed. Returns `(table, suppress_previous)` pairs.
    pub fn tables_for(event: EventType) -> &'static [(Table, bool)] {
        match event {
            EventType::NodeCreated | EventType::NodeDataChanged => &[(Table::Data, false)],
            EventType::NodeChildrenChanged => &[(Table::Child, false)],
            EventType::NodeDeleted => &[(Table::Data, false), (Table::Child, true)],
        }
    }

    /// Total watch count (path, conn, table) entries.
    pub fn count(&self) -> usize {
        self.data.values().chain(self.child.values()).map(|w| w.len()).sum()
    }

    /// Paths watched by each connection (for `wchc`), data and child tables together.
    pub fn by_conn(&self) -> BTreeMap<ConnId, BTreeSet<String>> {
        let mut out: BTreeMap<ConnId, BTreeSet<String>> = BTreeMap::new();
        for (conn, entries) in &self.by_conn {
            out.insert(*conn, entries.iter().map(|(_, p)| p.clone()).collect());
        }
        out
    }

    /// Connections watching each path (for `wchp`), data and child tables together.
    pub fn by_path(&self) -> BTreeMap<String, BTreeSet<ConnId>> {
        let mut out: BTreeMap<String, BTreeSet<ConnId>> = BTreeMap::new();
        for (path, watchers) in self.data.iter().chain(self.child.iter()) {
            out.entry(path.clone()).or_default().extend(watchers.keys().copied());
        }
        out
    }

    /// `(connections, paths, watches)` over the data table, as `wchs` reports.
    pub fn data_summary(&self) -> (usize, usize, usize) {
        let conns: BTreeSet<ConnId> = self.data.values().flat_map(|w| w.keys()).copied().collect();
        let watches = self.data.values().map(|w| w.len()).sum();
        (conns.len(), self.data.len(), watches)
    }

    /// Watched paths plus watching connections: a measure of what [`Self::invariants`] walks
    /// (each path entry's watchers count once per path; a bound, not a count of watches).
    pub fn len(&self) -> usize {
        self.data.len() + self.child.len() + self.by_conn.len()
    }

    /// True when no watch is set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks the mirror invariants; panics if broken.
    pub fn invariants(&self) {
        let mut mirrored = 0;
        let mut recursive = 0;
        for (_, t) in [(Table::Data, &self.data), (Table::Child, &self.child)] {
            for (path, watchers) in t {
                assert!(!watchers.is_empty(), "no empty path entries");
                for (conn, modes) in watchers {
                    assert!(*modes != 0, "no empty mode sets");
                    assert!(self.by_conn.contains_key(conn), "{path}: watcher has a mirror");
                    recursive += usize::from(modes & mode::RECURSIVE != 0);
                    mirrored += 1;
                }
            }
        }
        // Equal counts plus `add`/`remove` keeping both sides in step (asserted there) make the
        // mirror exact without an allocation per watch per step.
        let listed: usize = self.by_conn.values().map(|s| s.len()).sum();
        assert_eq!(listed, mirrored, "by_conn mirrors the tables");
        assert_eq!(recursive, self.recursive_count, "recursive count");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ConnId = ConnId(1);
    const B: ConnId = ConnId(2);

    #[test]
    fn standard_fires_once_persistent_stays() {
        let mut w = WatchManager::new();
        w.add(Table::Data, "/a", A, mode::STANDARD);
        w.add(Table::Data, "/a", B, mode::PERSISTENT);
        let none = BTreeSet::new();
        assert_eq!(w.trigger(Table::Data, "/a", &none), BTreeSet::from([A, B]));
        assert_eq!(w.trigger(Table::Data, "/a", &none), BTreeSet::from([B]));
        w.invariants();
    }

    #[test]
    fn recursive_sees_descendants_not_children_changed() {
        let mut w = WatchManager::new();
        w.add(Table::Data, "/a", A, mode::RECURSIVE);
        let none = BTreeSet::new();
        assert_eq!(w.trigger(Table::Data, "/a/b/c", &none), BTreeSet::from([A]));
        assert!(w.trigger(Table::Child, "/a", &none).is_empty());
        w.invariants();
    }

    #[test]
    fn suppressed_conn_still_loses_standard_watch() {
        let mut w = WatchManager::new();
        w.add(Table::Child, "/a", A, mode::STANDARD);
        let sup = BTreeSet::from([A]);
        assert!(w.trigger(Table::Child, "/a", &sup).is_empty());
        assert_eq!(w.modes(Table::Child, "/a", A), 0);
        w.invariants();
    }

    #[test]
    fn remove_conn_drops_everything() {
        let mut w = WatchManager::new();
        w.add(Table::Data, "/a", A, mode::STANDARD | mode::RECURSIVE);
        w.add(Table::Child, "/b", A, mode::PERSISTENT);
        w.add(Table::Child, "/b", B, mode::STANDARD);
        w.remove_conn(A);
        assert_eq!(w.count(), 1);
        w.invariants();
    }
}
