//! Watch tables: which connection watches which path, in which modes, and which connections an
//! applied change notifies. Follows ZooKeeper 3.9's `WatchManager` with `WatchStats` modes.
//!
//! Invariants:
//! - two tables, data and child, each a sorted sequence of `(path, conn, modes)` entries; no
//!   entry has an empty mode set, no `(path, conn)` is there twice;
//! - standard watches are used up when they fire; persistent and persistent-recursive ones stay;
//! - persistent watches live in both tables; persistent-recursive ones only in the data table, so
//!   they never see NodeChildrenChanged;
//! - one trigger notifies each connection at most once (the watcher set is deduplicated);
//! - `counts` holds each live connection's number of entries; a closed connection's entries are
//!   dead (never reported, never notified) until a sweep drops them, and dead entries are at
//!   most half the live ones after every `remove_conn`, so a sweep costs O(1) per entry.
//!
//! Layout (issue 14: bytes per watch): an entry is 32 bytes: the path's `Arc<str>` (shared by
//! the entries of one path, and with the data tree's key when the node exists, see
//! [`WatchManager::add_shared`]), the connection and the modes. Entries sit in sorted chunks of
//! at most [`CHUNK`] (a B-tree's leaves under an ordered map of their first paths), filled up
//! when paths come in order; the entries of one path are always in one chunk. There is no
//! per-connection mirror of the paths: a closed connection's entries go in a sweep.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

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

/// The most entries a chunk holds, unless one path alone has more watchers.
const CHUNK: usize = 64;

/// One connection's modes on one path.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    path: Arc<str>,
    conn: ConnId,
    modes: u8,
}

/// One table's entries, sorted by `(path, conn)`, in chunks keyed by their first path.
#[derive(Clone, Debug, Default)]
struct Entries {
    chunks: BTreeMap<Arc<str>, Vec<Entry>>,
    len: usize,
}

impl Entries {
    /// The key of the chunk that holds (or would hold) `path`'s entries.
    fn chunk_key(&self, path: &str) -> Option<&Arc<str>> {
        let below = (Bound::Unbounded, Bound::Included(path));
        let key = self.chunks.range::<str, _>(below).next_back().map(|(k, _)| k);
        key.or_else(|| self.chunks.keys().next())
    }

    /// The entries of `path` (one slice: a path never spans two chunks).
    fn watchers(&self, path: &str) -> &[Entry] {
        let Some(chunk) = self.chunk_key(path).map(|k| &self.chunks[k]) else {
            return &[];
        };
        let from = chunk.partition_point(|e| &*e.path < path);
        let to = from + chunk[from..].partition_point(|e| &*e.path == path);
        // One slice holds every entry of the path: a trigger that missed one would leave a
        // standard watch armed after its event, breaking one-shot delivery. O(1) checks only:
        // the ends of the slice and the entry right after it.
        assert!(chunk[from..to].last().is_none_or(|e| &*e.path == path), "only this path");
        assert!(chunk.get(to).is_none_or(|e| &*e.path > path), "and all of it");
        &chunk[from..to]
    }

    /// The shared path of `path`'s entries, if it has any.
    fn path_arc(&self, path: &str) -> Option<Arc<str>> {
        self.watchers(path).first().map(|e| e.path.clone())
    }

    fn get(&self, path: &str, conn: ConnId) -> Option<&Entry> {
        self.watchers(path).iter().find(|e| e.conn == conn)
    }

    /// Ors `modes` into `(path, conn)`, adding the entry if new; returns the modes held before.
    fn add(&mut self, path: Arc<str>, conn: ConnId, modes: u8) -> u8 {
        // An entry without modes is no watch: `remove` drops an entry once its modes are gone,
        // so a zero here would be an entry nothing could ever clear.
        assert!(modes != 0, "a watch has a mode");
        let Some(key) = self.chunk_key(&path).cloned() else {
            self.chunks.insert(path.clone(), vec![Entry { path, conn, modes }]);
            self.len += 1;
            return 0;
        };
        let chunk = self.chunks.get_mut(&key).expect("the chunk found");
        let at = chunk.partition_point(|e| (&*e.path, e.conn) < (&*path, conn));
        if let Some(held) = chunk.get_mut(at).filter(|e| e.path == path && e.conn == conn) {
            let before = held.modes;
            held.modes |= modes;
            // The caller counts a new entry when 0 comes back: a held entry must say it was.
            assert!(before != 0, "a held entry has modes");
            return before;
        }
        self.len += 1;
        let entry = Entry { path: path.clone(), conn, modes };
        if at == chunk.len() && chunk.len() >= CHUNK && chunk[at - 1].path != path {
            // Paths that come in order fill a chunk and then start the next one.
            let mut next = Vec::with_capacity(CHUNK);
            next.push(entry);
            self.chunks.insert(path, next);
            return 0;
        }
        if chunk.capacity() < CHUNK {
            chunk.reserve_exact(CHUNK - chunk.len());
        }
        chunk.insert(at, entry);
        let over_full = chunk.len() > CHUNK;
        let key = if at == 0 && *path < *key {
            // A path before every chunk's first goes into the first chunk, which it now keys.
            let chunk = self.chunks.remove(&key).expect("the chunk found");
            self.chunks.insert(path.clone(), chunk);
            path
        } else {
            key
        };
        if over_full {
            self.split(&key);
        }
        0
    }

    /// Splits an over-full chunk at the path boundary nearest its middle (none: it stays).
    fn split(&mut self, key: &Arc<str>) {
        let chunk = self.chunks.get_mut(key).expect("the chunk to split");
        let middle = chunk.len() / 2;
        let boundary = |i: &usize| chunk[*i - 1].path != chunk[*i].path;
        let after = (middle..chunk.len()).find(boundary);
        let before = (1..middle).rev().find(boundary);
        let Some(at) = after.or(before) else {
            return;
        };
        let mut right = Vec::with_capacity(CHUNK.max(chunk.len() - at));
        right.extend(chunk.drain(at..));
        assert!(!chunk.is_empty(), "the left part keeps its first path");
        assert!(!right.is_empty(), "the right part starts at a boundary");
        self.chunks.insert(right[0].path.clone(), right);
    }

    /// Clears `modes` of `(path, conn)`; returns the modes it held (0: none). An entry left
    /// without modes goes.
    fn remove(&mut self, path: &str, conn: ConnId, modes: u8) -> u8 {
        let Some(key) = self.chunk_key(path).cloned() else {
            return 0;
        };
        let chunk = self.chunks.get_mut(&key).expect("the chunk found");
        let Ok(at) = chunk.binary_search_by(|e| (&*e.path, e.conn).cmp(&(path, conn))) else {
            return 0;
        };
        let held = chunk[at].modes;
        assert!(held != 0, "a held entry has modes");
        chunk[at].modes &= !modes;
        if chunk[at].modes == 0 {
            chunk.remove(at);
            self.len -= 1;
            // Only a removal at the front can change the chunk's first path; small chunks
            // merge so that a table emptied by triggers does not keep one chunk per path.
            if at == 0 || chunk.len() <= CHUNK / 4 {
                self.after_remove(key.clone());
            }
            let keyed = self.chunks.get(&key).is_none_or(|c| c[0].path == key);
            assert!(keyed, "a chunk stays keyed by its first path");
        }
        held
    }

    /// Keeps the chunk keyed by `key` non-empty, keyed by its first path, and merges it into
    /// the chunk before it once both fit in half of one.
    fn after_remove(&mut self, key: Arc<str>) {
        let chunk = self.chunks.remove(&key).expect("the chunk changed");
        if chunk.is_empty() {
            return;
        }
        let below = (Bound::Unbounded, Bound::Excluded(&*key));
        let previous = self.chunks.range_mut::<str, _>(below).next_back();
        if let Some((_, previous)) = previous.filter(|(_, p)| p.len() + chunk.len() <= CHUNK / 2) {
            // Appending keeps the order: every path of `chunk` is after every path before it.
            assert!(previous.last().is_none_or(|e| e.path < chunk[0].path), "in order");
            previous.extend(chunk);
            return;
        }
        // Removal only drops entries, so the new first path is never before the old key.
        assert!(chunk[0].path >= key, "a chunk's first path never moves back");
        self.chunks.insert(chunk[0].path.clone(), chunk);
    }

    /// Every entry, in `(path, conn)` order.
    fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.chunks.values().flatten()
    }

    /// Drops every entry of a connection in `dead`.
    fn sweep(&mut self, dead: &BTreeSet<ConnId>) {
        let before = self.len;
        let chunks = std::mem::take(&mut self.chunks);
        let mut kept = Entries::default();
        for entry in chunks.into_values().flatten() {
            if !dead.contains(&entry.conn) {
                let (path, conn, modes) = (entry.path, entry.conn, entry.modes);
                assert_eq!(kept.add(path, conn, modes), 0, "entries are unique");
            }
        }
        assert!(kept.len <= before, "a sweep only drops entries");
        *self = kept;
    }

    /// Order, chunk keys, a path in one chunk, no empty modes; returns the entry count.
    fn invariants(&self) -> usize {
        let mut count = 0;
        let mut last: Option<(&str, ConnId)> = None;
        for (key, chunk) in &self.chunks {
            assert!(!chunk.is_empty(), "no empty chunk");
            assert_eq!(key, &chunk[0].path, "a chunk is keyed by its first path");
            if let Some((path, _)) = last {
                assert!(path < &**key, "a path's entries are in one chunk");
            }
            for e in chunk {
                assert!(e.modes != 0, "no empty mode sets");
                assert!(last < Some((&*e.path, e.conn)), "entries sorted and unique");
                last = Some((&*e.path, e.conn));
                count += 1;
            }
        }
        assert_eq!(count, self.len, "entries counted");
        count
    }
}

/// The watch tables of one server.
#[derive(Clone, Debug, Default)]
pub struct WatchManager {
    data: Entries,
    child: Entries,
    /// Entries per live connection (both tables).
    counts: BTreeMap<ConnId, usize>,
    /// Closed connections whose entries are still in the tables, and how many entries.
    dead: BTreeSet<ConnId>,
    dead_entries: usize,
    /// Entries with the RECURSIVE mode, dead ones included (a gate for the ancestor walk).
    recursive_count: usize,
}

fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let parent = match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    };
    // The ancestor walk of a recursive trigger ends only because each parent is shorter:
    // a parent as long as its child would loop forever.
    assert!(parent.is_none_or(|p| p.len() < path.len()), "a parent is shorter");
    assert!(parent.is_none_or(|p| path.starts_with(p)), "a parent is a prefix");
    parent
}

impl WatchManager {
    /// No watches.
    pub fn new() -> WatchManager {
        WatchManager::default()
    }

    fn table(&self, table: Table) -> &Entries {
        match table {
            Table::Data => &self.data,
            Table::Child => &self.child,
        }
    }

    fn table_mut(&mut self, table: Table) -> &mut Entries {
        match table {
            Table::Data => &mut self.data,
            Table::Child => &mut self.child,
        }
    }

    /// Adds `modes` for `conn` on `path` in `table`.
    pub fn add(&mut self, table: Table, path: &str, conn: ConnId, modes: u8) {
        let shared = self.data.path_arc(path).or_else(|| self.child.path_arc(path));
        self.add_shared(table, shared.unwrap_or_else(|| path.into()), conn, modes);
    }

    /// [`WatchManager::add`] with the path's allocation given: the data tree's key when the
    /// node exists, so that a watch holds no copy of its path.
    pub fn add_shared(&mut self, table: Table, path: Arc<str>, conn: ConnId, modes: u8) {
        assert!(modes != 0);
        assert!(table == Table::Data || modes & mode::RECURSIVE == 0, "recursive is data-only");
        assert!(!self.dead.contains(&conn), "a closed connection sets no watch");
        let shown = path.clone();
        let held = self.table_mut(table).add(path, conn, modes);
        if held == 0 {
            *self.counts.entry(conn).or_default() += 1;
        }
        if modes & mode::RECURSIVE != 0 && held & mode::RECURSIVE == 0 {
            self.recursive_count += 1;
        }
        assert_eq!(self.modes(table, &shown, conn) & modes, modes, "the modes are held");
        assert!(self.counts[&conn] > 0, "counted for its connection");
    }

    /// Removes `modes` of `conn` on `path` in `table`; returns true if any of them was held.
    pub fn remove(&mut self, table: Table, path: &str, conn: ConnId, modes: u8) -> bool {
        if self.dead.contains(&conn) {
            return false;
        }
        let held = self.table_mut(table).remove(path, conn, modes);
        let removed = held & modes;
        if removed == 0 {
            return false;
        }
        if removed & mode::RECURSIVE != 0 {
            self.recursive_count -= 1;
        }
        if held & !modes == 0 {
            let count = self.counts.get_mut(&conn).expect("a live watcher is counted");
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&conn);
            }
        }
        assert_eq!(self.modes(table, path, conn) & modes, 0, "none of the modes is left");
        assert!(removed != 0, "something was held");
        true
    }

    /// Modes `conn` holds on `path` in `table`.
    pub fn modes(&self, table: Table, path: &str, conn: ConnId) -> u8 {
        if self.dead.contains(&conn) {
            return 0;
        }
        self.table(table).get(path, conn).map_or(0, |e| e.modes)
    }

    /// How many (table, path) entries `conn` holds: what `Config::max_watches_per_session`
    /// bounds.
    pub fn count_for(&self, conn: ConnId) -> usize {
        self.counts.get(&conn).copied().unwrap_or(0)
    }

    /// Drops every watch of a connection (it closed): its entries are dead at once, and swept
    /// out once dead entries outnumber half the live ones.
    pub fn remove_conn(&mut self, conn: ConnId) {
        let Some(count) = self.counts.remove(&conn) else {
            return;
        };
        assert!(self.dead.insert(conn), "a live connection is not dead");
        self.dead_entries += count;
        let live = self.data.len + self.child.len - self.dead_entries;
        if self.dead_entries * 2 > live {
            self.data.sweep(&self.dead);
            self.child.sweep(&self.dead);
            self.dead.clear();
            self.dead_entries = 0;
            let recursive = self.data.iter().filter(|e| e.modes & mode::RECURSIVE != 0);
            self.recursive_count = recursive.count();
        }
        assert_eq!(self.count_for(conn), 0, "no watch left");
        assert!(self.dead_entries * 2 <= live, "dead entries are bounded by the live ones");
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
        let mut used_up = Vec::new();
        for e in self.table(table).watchers(path) {
            if !self.dead.contains(&e.conn) {
                notify.insert(e.conn);
                if e.modes & mode::STANDARD != 0 {
                    used_up.push(e.conn);
                }
            }
        }
        let removed = used_up.len();
        for conn in used_up {
            self.remove(table, path, conn, mode::STANDARD);
        }
        if self.recursive_count > 0 && table == Table::Data {
            let mut ancestor = parent_of(path);
            while let Some(p) = ancestor {
                let recursive = self
                    .data
                    .watchers(p)
                    .iter()
                    .filter(|e| e.modes & mode::RECURSIVE != 0 && !self.dead.contains(&e.conn));
                notify.extend(recursive.map(|e| e.conn));
                ancestor = parent_of(p);
            }
        }
        notify.retain(|c| !suppress.contains(c));
        // Standard watches are one-shot (ZooKeeper's programmer's guide, "Watches"): none of
        // the exact path's standard watches survives its trigger; persistent ones do. With
        // nothing used up, the walk above already found no live standard watch there (most
        // triggers: the path has no watchers), so only a removal is checked by a second look.
        if removed > 0 {
            let mut left = self.table(table).watchers(path).iter();
            let live = |e: &&Entry| !self.dead.contains(&e.conn);
            assert!(left.all(|e| !live(&e) || e.modes & mode::STANDARD == 0), "one-shot");
        }
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

    /// The live entries of both tables, with their table.
    fn live(&self) -> impl Iterator<Item = (Table, &Entry)> {
        let data = self.data.iter().map(|e| (Table::Data, e));
        let child = self.child.iter().map(|e| (Table::Child, e));
        data.chain(child).filter(|(_, e)| !self.dead.contains(&e.conn))
    }

    /// Total watch count (path, conn, table) entries.
    pub fn count(&self) -> usize {
        self.data.len + self.child.len - self.dead_entries
    }

    /// Paths watched by each connection (for `wchc`), data and child tables together.
    pub fn by_conn(&self) -> BTreeMap<ConnId, BTreeSet<String>> {
        let mut out: BTreeMap<ConnId, BTreeSet<String>> = BTreeMap::new();
        for (_, e) in self.live() {
            out.entry(e.conn).or_default().insert(e.path.to_string());
        }
        out
    }

    /// Connections watching each path (for `wchp`), data and child tables together.
    pub fn by_path(&self) -> BTreeMap<String, BTreeSet<ConnId>> {
        let mut out: BTreeMap<String, BTreeSet<ConnId>> = BTreeMap::new();
        for (_, e) in self.live() {
            out.entry(e.path.to_string()).or_default().insert(e.conn);
        }
        out
    }

    /// `(connections, paths, watches)` over the data table, as `wchs` reports.
    pub fn data_summary(&self) -> (usize, usize, usize) {
        let data = self.live().filter(|(t, _)| *t == Table::Data).map(|(_, e)| e);
        let (mut conns, mut paths, mut watches) = (BTreeSet::new(), 0, 0);
        let mut last: Option<&str> = None;
        for e in data {
            conns.insert(e.conn);
            paths += usize::from(last != Some(&*e.path));
            last = Some(&*e.path);
            watches += 1;
        }
        // Entries come in (path, conn) order, so each path is counted once: `wchs` shows
        // no more paths or connections than watches.
        assert!(paths <= watches, "a watched path has a watch");
        assert!(conns.len() <= watches, "a watching connection has a watch");
        (conns.len(), paths, watches)
    }

    /// Watch entries (dead ones included) plus watching connections: a measure of what
    /// [`Self::invariants`] walks.
    pub fn len(&self) -> usize {
        self.data.len + self.child.len + self.counts.len()
    }

    /// True when no watch is set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks the tables, the counts per connection and the dead entries; panics if broken.
    pub fn invariants(&self) {
        self.data.invariants();
        self.child.invariants();
        let mut counted: BTreeMap<ConnId, usize> = BTreeMap::new();
        let (mut dead, mut recursive) = (0, 0);
        for (table, e) in self
            .data
            .iter()
            .map(|e| (Table::Data, e))
            .chain(self.child.iter().map(|e| (Table::Child, e)))
        {
            let is_recursive = e.modes & mode::RECURSIVE != 0;
            assert!(table == Table::Data || !is_recursive, "recursive is data-only");
            recursive += usize::from(is_recursive);
            if self.dead.contains(&e.conn) {
                dead += 1;
            } else {
                *counted.entry(e.conn).or_default() += 1;
            }
        }
        assert_eq!(counted, self.counts, "entries counted per connection");
        assert_eq!(dead, self.dead_entries, "dead entries counted");
        assert!(self.dead.iter().all(|c| !self.counts.contains_key(c)), "dead or live");
        assert_eq!(recursive, self.recursive_count, "recursive count");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ConnId = ConnId(1);
    const B: ConnId = ConnId(2);
    const C: ConnId = ConnId(9);

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

    /// A closed connection's watches are dead at once (not reported, not notified, not
    /// counted) and swept out once they outnumber half the live ones.
    #[test]
    fn dead_watches_are_hidden_then_swept() {
        let mut w = WatchManager::new();
        for i in 0..10 {
            w.add(Table::Data, &format!("/p{i}"), A, mode::STANDARD);
        }
        w.add(Table::Data, "/p0", B, mode::PERSISTENT);
        w.add(Table::Child, "/p1", B, mode::STANDARD);
        w.remove_conn(B);
        assert_eq!((w.count(), w.dead_entries), (10, 2), "2 dead of 12: not swept yet");
        assert_eq!(w.modes(Table::Data, "/p0", B), 0);
        assert!(w.by_path()["/p0"] == BTreeSet::from([A]), "a dead watcher is not listed");
        assert_eq!(w.data_summary(), (1, 10, 10));
        assert_eq!(w.trigger(Table::Data, "/p0", &BTreeSet::new()), BTreeSet::from([A]));
        w.invariants();
        w.remove_conn(A);
        assert_eq!((w.count(), w.len(), w.dead_entries), (0, 0, 0), "swept");
        w.invariants();
    }

    /// Paths in order fill chunks; a path out of order splits one at a path boundary; the
    /// entries of one path stay in one chunk; removals merge chunks.
    #[test]
    fn chunks_split_and_merge() {
        let mut w = WatchManager::new();
        for i in (0..300).rev().chain(0..300) {
            w.add(Table::Data, &format!("/n{i:04}"), ConnId(i % 3), mode::STANDARD);
        }
        w.add(Table::Data, "/n0100", C, mode::STANDARD);
        assert!(w.data.chunks.len() >= 300 / CHUNK, "{} chunks", w.data.chunks.len());
        assert_eq!(w.count(), 301);
        w.invariants();
        let none = BTreeSet::new();
        assert_eq!(w.trigger(Table::Data, "/n0100", &none), BTreeSet::from([ConnId(1), C]));
        for i in (0..290).filter(|i| *i != 100) {
            assert_eq!(w.trigger(Table::Data, &format!("/n{i:04}"), &none).len(), 1, "/n{i:04}");
        }
        assert!(w.data.chunks.len() <= 2, "{} chunks left", w.data.chunks.len());
        w.invariants();
    }

    /// The check notices a miscounted connection, a dead count off by one, and entries out of
    /// order.
    #[test]
    fn invariants_catch_broken_tables() {
        let broken: [fn(&mut WatchManager); 3] = [
            |w| *w.counts.get_mut(&A).unwrap() += 1,
            |w| w.dead_entries += 1,
            |w| w.data.chunks.values_mut().next().unwrap().swap(0, 1),
        ];
        for (i, breaking) in broken.into_iter().enumerate() {
            let mut w = WatchManager::new();
            w.add(Table::Data, "/a", A, mode::STANDARD);
            w.add(Table::Data, "/b", A, mode::STANDARD);
            w.invariants();
            breaking(&mut w);
            let caught = std::panic::catch_unwind(|| w.invariants());
            assert!(caught.is_err(), "breakage {i} caught");
        }
    }
}
