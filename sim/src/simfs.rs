//! `SimFs`: an in-memory filesystem that crashes like a real disk, under the real storage code of
//! `zkr-server` (it implements `zkr_server::fs::Fs`). Issue 9, tier 2.
//!
//! Model. Every file (an inode) keeps its durable bytes plus the operations not yet synced
//! (writes at an offset, length changes); every directory keeps its durable entries plus the
//! entry operations not yet synced (link, unlink, rename). What a process reads is the durable
//! state with every pending operation applied (the page cache). Durability points:
//!
//! - `sync_data`/`sync_all` of a file make that file's bytes durable, and nothing else;
//! - `sync_dir` makes the creates, renames and removes in that directory durable, and nothing
//!   else. A created file whose directory was never fsynced can vanish in a power loss even if
//!   its data was synced (ext4 without a directory fsync).
//!
//! Holes: a file grown by `set_len` (the txn log preallocates so) reads as zeros past its
//! written bytes, as a sparse file does; each inode keeps the end of its written data, and
//! `read_data` returns the bytes up to it (what SEEK_HOLE finds on a real disk), so that a reader
//! that reads the zero tail shows in `SimFsStats::bytes_read`. Holes take no space (ENOSPC
//! counts written data). A length change is a pending operation like a write: a power loss keeps
//! it or not (a preallocation that was never synced may vanish; the file then ends earlier,
//! which a reader treats as the same zeros), and a sync makes it durable with the data.
//!
//! Crashes (`SimFs::crash`):
//!
//! - `CrashKind::Process`: the process dies, the kernel lives: everything written stays as the
//!   process last saw it, still not durable (a later power loss can drop it).
//! - `CrashKind::Power`: each file keeps its durable bytes plus a random prefix of its pending
//!   operations, and the first operation after that prefix may land torn (a random prefix of its
//!   bytes, or its length without its bytes: a zero-filled tail); each directory keeps a random
//!   prefix of its pending entry operations. Files no directory entry reaches are gone.
//!
//! Either way every handle opened before the crash fails from then on (EBADF) and every lock
//! is released. Directories themselves are created durably at once (a simplification: the server
//! creates them once, at its first start).
//!
//! Faults (`Faults`, set at run time by the harness): EIO on the next write, EIO on the next
//! fsync (file or directory; the data stays unsynced), ENOSPC once the files would exceed a byte
//! budget (a write that does not fit is short, as POSIX says: the bytes that fit land), a freeze
//! after N more mutating operations (every later operation fails with EIO, as if the machine
//! died right there: follow it with `crash`), and an fsync delay that this module only stores
//! (the madsim driver sleeps it). A `Trigger` starts that freeze at a named storage point rather
//! than at a count: at the next operation of some kinds on a file whose name contains a given
//! text (`currentEpoch`, `snapshot.`, `log.`), optionally only after another such operation
//! armed it (the first log write after a cut of a log file). Tier 2's `point` fault uses it to
//! lose power exactly where the durability argument is delicate.
//!
//! What the server does on these errors (see docs/RELIABILITY.md): an error from the txn log
//! (EIO on a write, an fsync or a directory fsync) stops its log thread with
//! `StorageEvent::Failed` and the driver stops the server, as ZooKeeper does on a failed fsync:
//! after a failed fsync the file's contents are unknown, so nothing after the last good sync is
//! ever reported durable. ENOSPC on a log write (never an fsync's) is waited out: the log
//! thread reports `DiskFull`, cuts the file back to its last synced record and writes the
//! records again once there is space (`sim/tests/simfs_storage.rs` crashes it in the middle);
//! under madsim (tier 2), which has no retry loop, it stops the server like EIO. A failed epoch
//! write stops it the same way. A failed snapshot write is reported and the server
//! goes on: the txn log and the older snapshots still hold everything.
//!
//! Determinism: state lives in `BTreeMap`s; randomness comes only from the `Rng` passed to
//! `crash`; there is no clock.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use zkr_server::fs::{Fs, FsFile, FsLock};

const EBADF: i32 = 9;
const EIO: i32 = 5;
const ENOSPC: i32 = 28;

/// How a node goes down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashKind {
    /// The process is killed; the OS and its page cache survive: nothing written is lost.
    Process,
    /// The machine loses power: only durable data survives, plus a random prefix of what was not
    /// yet synced, possibly torn.
    Power,
}

/// Disk faults the harness switches on at run time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// The next write through any handle fails with EIO (then this resets).
    pub eio_next_write: bool,
    /// The next file or directory fsync fails with EIO, making nothing durable (then resets).
    pub eio_next_fsync: bool,
    /// Writes that would make the files' total size exceed this many bytes fail with ENOSPC.
    pub space_limit_bytes: Option<u64>,
    /// After this many more mutating operations (write, set_len, sync, create, rename, remove,
    /// sync_dir), every operation fails with EIO until the next crash.
    pub freeze_after_ops: Option<u64>,
    /// How long an fsync should take; stored only, for the madsim driver to sleep.
    pub fsync_delay: Duration,
    /// A freeze at a named point, not yet started (see [`Trigger`]).
    pub trigger: Option<Trigger>,
}

/// Mutating operations, as a [`Trigger`] names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// A file created (`create`, `create_new`, a lock file).
    Create,
    /// Bytes written through a handle.
    Write,
    /// A length change that does not shrink the file (preallocation).
    SetLen,
    /// A length change that shrinks the file (a cut: truncation, or a rewrite by `create`).
    Shrink,
    /// A file's fsync (`sync_data`, `sync_all`).
    Sync,
    /// A rename (named by its target).
    Rename,
    /// A file removed.
    Remove,
    /// A directory's fsync (named by the directory).
    SyncDir,
}

/// Operations of `kinds` on a file (or directory) whose name contains `name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpMatch {
    /// The kinds that match.
    pub kinds: &'static [OpKind],
    /// Text the file's name (its last path component) must contain.
    pub name: &'static str,
}

impl OpMatch {
    fn matches(&self, kind: OpKind, name: &OsStr) -> bool {
        self.kinds.contains(&kind) && name.to_string_lossy().contains(self.name)
    }
}

/// A freeze at a named storage point: at the first operation matching `fire` (once `arm`
/// matched `arm_count` operations before it, if given) the disk freezes after `extra_ops` more
/// mutating operations, counting that one: 0 fails the matching operation itself, 1 lets it
/// land and fails the next. A crash clears it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// Operations that must come first (the trigger is armed after `arm_count` of them).
    pub arm: Option<OpMatch>,
    /// How many `arm` operations arm it.
    pub arm_count: u32,
    /// The operation that starts the freeze.
    pub fire: OpMatch,
    /// Mutating operations allowed from the matching one on (0: it fails).
    pub extra_ops: u64,
}

/// Counters, for tests and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimFsStats {
    /// Successful file syncs.
    pub file_syncs: u64,
    /// Successful directory syncs.
    pub dir_syncs: u64,
    /// Bytes accepted by writes.
    pub bytes_written: u64,
    /// Bytes handed out by reads (`read`, `read_data`, `read_in_pieces`).
    pub bytes_read: u64,
    /// Crashes of either kind.
    pub crashes: u64,
    /// Operations failed on purpose (EIO, ENOSPC, frozen).
    pub injected_errors: u64,
    /// Triggers that fired (their freeze started).
    pub triggers_fired: u64,
}

/// The simulated disk of one server. Cheap to clone: clones share the same disk, so the harness
/// keeps one across restarts of the server that uses it.
#[derive(Clone, Debug, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

type InodeId = u64;

#[derive(Clone, Debug)]
enum FileOp {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Clone, Debug)]
enum DirOp {
    Link(OsString, InodeId),
    Unlink(OsString),
    Rename(OsString, OsString),
}

#[derive(Debug, Default)]
struct Inode {
    /// What a process reads: durable bytes with every pending op applied.
    data: Vec<u8>,
    /// End of the written bytes of `data`; past it up to `data.len()` is a hole (zeros).
    data_end: usize,
    durable: Vec<u8>,
    /// `data_end` of `durable`.
    durable_end: usize,
    pending: Vec<FileOp>,
    /// Handles opened since the last crash.
    open_handles: usize,
}

#[derive(Debug, Default)]
struct Dir {
    entries: BTreeMap<OsString, InodeId>,
    durable: BTreeMap<OsString, InodeId>,
    pending: Vec<DirOp>,
}

#[derive(Debug)]
struct State {
    dirs: BTreeMap<PathBuf, Dir>,
    inodes: BTreeMap<InodeId, Inode>,
    next_inode: InodeId,
    /// Bumped by every crash: handles and locks from an older generation are dead.
    generation: u64,
    locks: BTreeMap<PathBuf, u64>,
    next_lock: u64,
    faults: Faults,
    frozen: bool,
    stats: SimFsStats,
}

impl Default for State {
    fn default() -> State {
        let mut dirs = BTreeMap::new();
        dirs.insert(PathBuf::from("/"), Dir::default());
        dirs.insert(PathBuf::new(), Dir::default());
        State {
            dirs,
            inodes: BTreeMap::new(),
            next_inode: 1,
            generation: 0,
            locks: BTreeMap::new(),
            next_lock: 1,
            faults: Faults::default(),
            frozen: false,
            stats: SimFsStats::default(),
        }
    }
}

fn os_error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("SimFs: {} not found", path.display()))
}

/// Lexical normal form: `.` dropped, `..` applied.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The last component of `path` (a `Trigger` matches it), or nothing.
fn name_of(path: &Path) -> OsString {
    normalize(path).file_name().map(OsStr::to_os_string).unwrap_or_default()
}

/// `(parent directory, file name)` of a normalized path.
fn split(path: &Path) -> io::Result<(PathBuf, OsString)> {
    let path = normalize(path);
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Ok((parent.to_path_buf(), name.to_os_string())),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "SimFs: not a file path")),
    }
}

/// Applies `op` to a file's `bytes` whose written data ends at `data_end`.
fn apply_file_op(bytes: &mut Vec<u8>, data_end: &mut usize, op: &FileOp) {
    match op {
        FileOp::Write { offset, bytes: written } => {
            let start = *offset as usize;
            let end = start + written.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[start..end].copy_from_slice(written);
            *data_end = (*data_end).max(end);
        }
        FileOp::SetLen(len) => {
            bytes.resize(*len as usize, 0);
            *data_end = (*data_end).min(*len as usize);
        }
    }
    assert!(*data_end <= bytes.len(), "written data lies inside the file");
}

fn apply_dir_op(entries: &mut BTreeMap<OsString, InodeId>, op: &DirOp) {
    match op {
        DirOp::Link(name, inode) => {
            entries.insert(name.clone(), *inode);
        }
        DirOp::Unlink(name) => {
            entries.remove(name);
        }
        DirOp::Rename(from, to) => {
            let inode = entries.remove(from).expect("a pending rename's source was linked");
            entries.insert(to.clone(), inode);
        }
    }
}

impl State {
    /// Counts one mutating operation (`kind`, on the file or directory named `name`) against
    /// the trigger and `freeze_after_ops`; fails once frozen.
    fn mutate(&mut self, kind: OpKind, name: &OsStr) -> io::Result<()> {
        self.check_trigger(kind, name);
        if let Some(left) = self.faults.freeze_after_ops {
            if left == 0 {
                self.frozen = true;
                self.faults.freeze_after_ops = None;
            } else {
                self.faults.freeze_after_ops = Some(left - 1);
            }
        }
        if self.frozen {
            self.stats.injected_errors += 1;
            return Err(os_error(EIO));
        }
        Ok(())
    }

    /// Arms the trigger, or fires it: its freeze starts with this operation.
    fn check_trigger(&mut self, kind: OpKind, name: &OsStr) {
        let Some(trigger) = self.faults.trigger.as_mut() else {
            return;
        };
        if let Some(arm) = trigger.arm {
            if arm.matches(kind, name) {
                assert!(trigger.arm_count > 0, "an armed trigger has no `arm` left");
                trigger.arm_count -= 1;
                if trigger.arm_count == 0 {
                    trigger.arm = None;
                }
            }
            // The arming operation never fires the trigger too.
            return;
        }
        if !trigger.fire.matches(kind, name) {
            return;
        }
        let extra = trigger.extra_ops;
        self.faults.trigger = None;
        // A freeze already counting down keeps the earlier of the two.
        let left = self.faults.freeze_after_ops.map_or(extra, |left| left.min(extra));
        self.faults.freeze_after_ops = Some(left);
        self.stats.triggers_fired += 1;
        assert!(self.faults.trigger.is_none(), "a trigger fires once");
    }

    fn dir(&self, dir: &Path) -> io::Result<&Dir> {
        self.dirs.get(dir).ok_or_else(|| not_found(dir))
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| not_found(dir))
    }

    fn lookup(&self, path: &Path) -> io::Result<InodeId> {
        let (dir, name) = split(path)?;
        if self.dirs.contains_key(&normalize(path)) {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "SimFs: a directory"));
        }
        self.dir(&dir)?.entries.get(&name).copied().ok_or_else(|| not_found(path))
    }

    fn used_bytes(&self) -> u64 {
        self.inodes.values().map(|inode| inode.data_end as u64).sum()
    }

    /// Links a new empty file at `path` (pending until its directory is synced).
    fn create_file(&mut self, path: &Path) -> io::Result<InodeId> {
        let (dir, name) = split(path)?;
        if self.dirs.contains_key(&normalize(path)) {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "SimFs: a directory"));
        }
        let inode = self.next_inode;
        let directory = self.dir_mut(&dir)?;
        if directory.entries.contains_key(&name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "SimFs: file exists"));
        }
        directory.entries.insert(name.clone(), inode);
        directory.pending.push(DirOp::Link(name, inode));
        self.next_inode += 1;
        self.inodes.insert(inode, Inode::default());
        Ok(inode)
    }

    fn sync_file(&mut self, inode: InodeId, generation: u64, name: &OsStr) -> io::Result<()> {
        self.live(generation)?;
        self.mutate(OpKind::Sync, name)?;
        if std::mem::take(&mut self.faults.eio_next_fsync) {
            self.stats.injected_errors += 1;
            return Err(os_error(EIO));
        }
        let file = self.inodes.get_mut(&inode).expect("an open handle keeps its inode");
        for op in std::mem::take(&mut file.pending) {
            apply_file_op(&mut file.durable, &mut file.durable_end, &op);
        }
        assert_eq!(file.durable, file.data, "synced bytes are what the process sees");
        assert_eq!(file.durable_end, file.data_end, "and so are its holes");
        self.stats.file_syncs += 1;
        Ok(())
    }

    fn live(&self, generation: u64) -> io::Result<()> {
        if generation != self.generation {
            return Err(os_error(EBADF));
        }
        Ok(())
    }

    /// Drops inodes nothing can reach any more: no current or durable entry, no pending
    /// directory op, no open handle.
    fn collect_garbage(&mut self) {
        let mut reachable = std::collections::BTreeSet::new();
        for dir in self.dirs.values() {
            reachable.extend(dir.entries.values().copied());
            reachable.extend(dir.durable.values().copied());
            for op in &dir.pending {
                if let DirOp::Link(_, inode) = op {
                    reachable.insert(*inode);
                }
            }
        }
        self.inodes.retain(|id, inode| reachable.contains(id) || inode.open_handles > 0);
    }

    fn power_loss(&mut self, rng: &mut impl Rng) {
        for dir in self.dirs.values_mut() {
            let keep = rng.random_range(0..=dir.pending.len());
            for op in dir.pending.drain(..).take(keep) {
                apply_dir_op(&mut dir.durable, &op);
            }
            dir.entries = dir.durable.clone();
        }
        for inode in self.inodes.values_mut() {
            let keep = rng.random_range(0..=inode.pending.len());
            let mut ops = std::mem::take(&mut inode.pending).into_iter();
            for op in ops.by_ref().take(keep) {
                apply_file_op(&mut inode.durable, &mut inode.durable_end, &op);
            }
            if let Some(FileOp::Write { offset, bytes }) = ops.next()
                && !bytes.is_empty()
                && rng.random_bool(0.5)
            {
                // A torn write: some of its bytes; or those and the file's new length without
                // the rest of the bytes (a zero-filled tail; bytes it overwrote stay old).
                let kept = rng.random_range(0..bytes.len());
                let end = offset as usize + bytes.len();
                let torn = FileOp::Write { offset, bytes: bytes[..kept].to_vec() };
                apply_file_op(&mut inode.durable, &mut inode.durable_end, &torn);
                if rng.random_bool(0.5) && inode.durable.len() < end {
                    inode.durable.resize(end, 0);
                }
            }
            inode.data = inode.durable.clone();
            inode.data_end = inode.durable_end;
        }
    }
}

impl SimFs {
    /// An empty disk (with the root directories `/` and the empty relative root).
    pub fn new() -> SimFs {
        SimFs::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Crashes the disk's machine (see the module docs). Open handles and locks die.
    pub fn crash(&self, kind: CrashKind, rng: &mut impl Rng) {
        let mut state = self.state();
        if kind == CrashKind::Power {
            state.power_loss(rng);
        }
        state.generation += 1;
        state.locks.clear();
        state.frozen = false;
        state.faults.freeze_after_ops = None;
        state.faults.trigger = None;
        for inode in state.inodes.values_mut() {
            inode.open_handles = 0;
        }
        state.collect_garbage();
        state.stats.crashes += 1;
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.state().faults.clone()
    }

    /// Replaces the faults in force.
    pub fn set_faults(&self, faults: Faults) {
        self.state().faults = faults;
    }

    /// The next write through any handle fails with EIO.
    pub fn fail_next_write(&self) {
        self.state().faults.eio_next_write = true;
    }

    /// The next file or directory fsync fails with EIO.
    pub fn fail_next_fsync(&self) {
        self.state().faults.eio_next_fsync = true;
    }

    /// Writes past `limit` total bytes of file data fail with ENOSPC (`None`: no limit).
    pub fn set_space_limit(&self, limit: Option<u64>) {
        self.state().faults.space_limit_bytes = limit;
    }

    /// After `ops` more mutating operations, everything fails with EIO until the next crash.
    pub fn freeze_after_ops(&self, ops: u64) {
        self.state().faults.freeze_after_ops = Some(ops);
    }

    /// Freezes the disk at the point `trigger` names (`None`: disarms it).
    pub fn set_trigger(&self, trigger: Option<Trigger>) {
        self.state().faults.trigger = trigger;
    }

    /// Whether every operation fails now (a freeze started and ran out), until the crash.
    pub fn frozen(&self) -> bool {
        self.state().frozen
    }

    /// Sets the fsync delay the madsim driver should sleep.
    pub fn set_fsync_delay(&self, delay: Duration) {
        self.state().faults.fsync_delay = delay;
    }

    /// The fsync delay to sleep.
    pub fn fsync_delay(&self) -> Duration {
        self.state().faults.fsync_delay
    }

    /// Counters since the disk was made.
    pub fn stats(&self) -> SimFsStats {
        self.state().stats
    }

    /// Total bytes of file data, as the process sees it.
    pub fn used_bytes(&self) -> u64 {
        self.state().used_bytes()
    }

    /// The bytes of `path` that would survive any power loss now (its durable directory entry
    /// and durable data), or `None` if a power loss could leave no such file.
    pub fn durable_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state();
        let (dir, name) = split(path).ok()?;
        let inode = state.dirs.get(&dir)?.durable.get(&name)?;
        Some(state.inodes.get(inode)?.durable.clone())
    }

    /// The bytes of `path` as a process reads them now.
    pub fn current_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state();
        let inode = state.lookup(path).ok()?;
        Some(state.inodes.get(&inode)?.data.clone())
    }

    /// Every file a process sees now, in path order.
    pub fn list_files(&self) -> Vec<PathBuf> {
        let state = self.state();
        let mut files: Vec<PathBuf> = state
            .dirs
            .iter()
            .flat_map(|(dir, d)| d.entries.keys().map(move |name| dir.join(name)))
            .collect();
        files.sort();
        files
    }

    /// Every file whose directory entry is durable, in path order.
    pub fn list_durable_files(&self) -> Vec<PathBuf> {
        let state = self.state();
        let mut files: Vec<PathBuf> = state
            .dirs
            .iter()
            .flat_map(|(dir, d)| d.durable.keys().map(move |name| dir.join(name)))
            .collect();
        files.sort();
        files
    }

    /// Operations written but not yet durable (file and directory ops), for tests.
    pub fn pending_ops(&self) -> usize {
        let state = self.state();
        let files: usize = state.inodes.values().map(|i| i.pending.len()).sum();
        let dirs: usize = state.dirs.values().map(|d| d.pending.len()).sum();
        files + dirs
    }

    fn handle(&self, state: &mut State, inode: InodeId, path: &Path) -> Box<dyn FsFile> {
        state.inodes.get_mut(&inode).expect("just looked up").open_handles += 1;
        let (generation, name) = (state.generation, name_of(path));
        Box::new(SimFile { fs: self.clone(), inode, position: 0, generation, name })
    }
}

impl Fs for SimFs {
    fn sync_delay(&self) -> Duration {
        self.fsync_delay()
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        let dir = normalize(dir);
        for ancestor in dir.ancestors().collect::<Vec<_>>().into_iter().rev() {
            if state.dirs.contains_key(ancestor) {
                continue;
            }
            if state.lookup(ancestor).is_ok() {
                return Err(io::Error::new(io::ErrorKind::NotADirectory, "SimFs: a file"));
            }
            state.dirs.insert(ancestor.to_path_buf(), Dir::default());
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let state = self.state();
        let dir = normalize(dir);
        let mut names: Vec<OsString> = state.dir(&dir)?.entries.keys().cloned().collect();
        let subdirs = state.dirs.keys().filter(|d| d.parent() == Some(&*dir) && **d != dir);
        names.extend(subdirs.filter_map(|d| d.file_name().map(OsStr::to_os_string)));
        names.sort();
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut state = self.state();
        let inode = state.lookup(path)?;
        let bytes = state.inodes[&inode].data.clone();
        state.stats.bytes_read += bytes.len() as u64;
        Ok(bytes)
    }

    fn read_data(&self, path: &Path) -> io::Result<(Vec<u8>, u64)> {
        let mut state = self.state();
        let inode = &state.inodes[&state.lookup(path)?];
        let (bytes, len) = (inode.data[..inode.data_end].to_vec(), inode.data.len() as u64);
        state.stats.bytes_read += bytes.len() as u64;
        Ok((bytes, len))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut state = self.state();
        state.mutate(OpKind::Create, &name_of(path))?;
        let inode = state.create_file(path)?;
        Ok(self.handle(&mut state, inode, path))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut state = self.state();
        state.mutate(OpKind::Create, &name_of(path))?;
        let inode = match state.lookup(path) {
            Ok(inode) => {
                let file = state.inodes.get_mut(&inode).expect("linked inodes exist");
                file.data.clear();
                file.data_end = 0;
                file.pending.push(FileOp::SetLen(0));
                inode
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => state.create_file(path)?,
            Err(e) => return Err(e),
        };
        Ok(self.handle(&mut state, inode, path))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut state = self.state();
        let inode = state.lookup(path)?;
        Ok(self.handle(&mut state, inode, path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.mutate(OpKind::SyncDir, &name_of(dir))?;
        if std::mem::take(&mut state.faults.eio_next_fsync) {
            state.stats.injected_errors += 1;
            return Err(os_error(EIO));
        }
        let directory = state.dir_mut(&normalize(dir))?;
        for op in std::mem::take(&mut directory.pending) {
            apply_dir_op(&mut directory.durable, &op);
        }
        assert_eq!(directory.durable, directory.entries, "a synced directory is as seen");
        state.collect_garbage();
        state.stats.dir_syncs += 1;
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.mutate(OpKind::Rename, &name_of(to))?;
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        if from_dir != to_dir {
            let what = "SimFs: rename across directories is not modelled";
            return Err(io::Error::new(io::ErrorKind::Unsupported, what));
        }
        state.lookup(from)?;
        if from_name == to_name {
            return Ok(());
        }
        let directory = state.dir_mut(&from_dir)?;
        let inode = directory.entries.remove(&from_name).expect("looked up");
        directory.entries.insert(to_name.clone(), inode);
        directory.pending.push(DirOp::Rename(from_name, to_name));
        state.collect_garbage();
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.mutate(OpKind::Remove, &name_of(path))?;
        state.lookup(path)?;
        let (dir, name) = split(path)?;
        let directory = state.dir_mut(&dir)?;
        directory.entries.remove(&name);
        directory.pending.push(DirOp::Unlink(name));
        state.collect_garbage();
        Ok(())
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        let state = self.state();
        let path = normalize(path);
        if state.dirs.contains_key(&path) || state.lookup(&path).is_ok() {
            return Ok(path);
        }
        Err(not_found(&path))
    }

    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>> {
        let mut state = self.state();
        let path = normalize(path);
        match state.lookup(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                state.mutate(OpKind::Create, &name_of(&path))?;
                state.create_file(&path)?;
            }
            Err(e) => return Err(e),
        }
        if state.locks.contains_key(&path) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "SimFs: locked"));
        }
        let id = state.next_lock;
        state.next_lock += 1;
        state.locks.insert(path.clone(), id);
        Ok(Box::new(SimLock { fs: self.clone(), path, id }))
    }
}

/// An open file of a `SimFs`; writes at its own position, as a file descriptor does.
#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    inode: InodeId,
    position: u64,
    generation: u64,
    /// The file's name when it was opened (what a `Trigger` matches).
    name: OsString,
}

impl io::Write for SimFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.fs.state();
        state.live(self.generation)?;
        state.mutate(OpKind::Write, &self.name)?;
        if std::mem::take(&mut state.faults.eio_next_write) {
            state.stats.injected_errors += 1;
            return Err(os_error(EIO));
        }
        // Space is taken by written data only: a write into a hole (preallocation) takes some.
        let len = state.inodes[&self.inode].data_end as u64;
        let growth = (self.position + buf.len() as u64).saturating_sub(len);
        let mut buf = buf;
        if let Some(limit) = state.faults.space_limit_bytes
            && state.used_bytes() + growth > limit
        {
            // As POSIX says (and tmpfs, ext4 do): as many bytes as there is room for, a short
            // write, and ENOSPC only when there is no room at all. A torn record on a full disk.
            let room = limit.saturating_sub(state.used_bytes()) + len.saturating_sub(self.position);
            let room = room.min(buf.len() as u64) as usize;
            if room == 0 {
                state.stats.injected_errors += 1;
                return Err(os_error(ENOSPC));
            }
            buf = &buf[..room];
        }
        let op = FileOp::Write { offset: self.position, bytes: buf.to_vec() };
        let file = state.inodes.get_mut(&self.inode).expect("an open handle keeps its inode");
        apply_file_op(&mut file.data, &mut file.data_end, &op);
        file.pending.push(op);
        state.stats.bytes_written += buf.len() as u64;
        self.position += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FsFile for SimFile {
    fn sync_data(&self) -> io::Result<()> {
        self.fs.state().sync_file(self.inode, self.generation, &self.name)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.fs.state().sync_file(self.inode, self.generation, &self.name)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.fs.state();
        state.live(self.generation)?;
        let shrinks = (len as usize) < state.inodes[&self.inode].data.len();
        state.mutate(if shrinks { OpKind::Shrink } else { OpKind::SetLen }, &self.name)?;
        let file = state.inodes.get_mut(&self.inode).expect("an open handle keeps its inode");
        let op = FileOp::SetLen(len);
        apply_file_op(&mut file.data, &mut file.data_end, &op);
        file.pending.push(op);
        Ok(())
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut state = self.fs.state();
        if state.generation == self.generation
            && let Some(inode) = state.inodes.get_mut(&self.inode)
        {
            inode.open_handles -= 1;
            if inode.open_handles == 0 {
                state.collect_garbage();
            }
        }
    }
}

/// A lock taken through `SimFs::try_lock`; released on drop unless a crash released it first.
#[derive(Debug)]
struct SimLock {
    fs: SimFs,
    path: PathBuf,
    id: u64,
}

impl FsLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut state = self.fs.state();
        if state.locks.get(&self.path) == Some(&self.id) {
            state.locks.remove(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    fn fs_with_dir() -> SimFs {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs
    }

    /// Writes `bytes` to a new file `path` in several writes and syncs its data (not the
    /// directory).
    fn write_synced(fs: &SimFs, path: &str, bytes: &[u8]) {
        let mut file = fs.create_new(Path::new(path)).unwrap();
        for chunk in bytes.chunks(3) {
            file.write_all(chunk).unwrap();
        }
        file.sync_data().unwrap();
    }

    use std::io::Write;

    /// A file grown by `set_len` past its writes is sparse: `read_data` hands out the written
    /// bytes only (and counts them), `read` the whole file with its zeros. A power loss keeps
    /// an unsynced size change or drops it, never tears data into the hole; a sync keeps it.
    #[test]
    fn a_preallocated_tail_is_a_hole_read_data_skips() {
        let path = Path::new("/d/log");
        let (mut grown, mut dropped) = (0, 0);
        for seed in 0..64 {
            let fs = fs_with_dir();
            write_synced(&fs, "/d/log", b"records");
            fs.sync_dir(Path::new("/d")).unwrap();
            let mut file = fs.open_write(path).unwrap();
            file.set_len(1 << 16).unwrap();
            assert_eq!(fs.read_data(path).unwrap(), (b"records".to_vec(), 1 << 16));
            assert_eq!(fs.read(path).unwrap().len(), 1 << 16, "read takes the zeros too");
            assert_eq!(fs.stats().bytes_read, 7 + (1 << 16));
            file.write_all(b"more").unwrap();
            assert_eq!(fs.read_data(path).unwrap().0, b"morerds".to_vec(), "at offset 0");
            fs.crash(CrashKind::Power, &mut rng(seed));
            let (bytes, len) = fs.read_data(path).unwrap();
            // The write over "reco" may land torn (a prefix of "more"); nothing past "rds".
            assert_eq!(bytes.len(), 7, "{bytes:?}");
            assert_eq!(&bytes[4..], b"rds");
            assert!(len == 7 || len == 1 << 16, "the size change kept or dropped: {len}");
            if len == 7 { dropped += 1 } else { grown += 1 }
        }
        assert!(grown > 0 && dropped > 0, "both outcomes over 64 seeds: {grown} / {dropped}");
        let fs = fs_with_dir();
        write_synced(&fs, "/d/log", b"records");
        let file = fs.open_write(path).unwrap();
        file.set_len(1 << 16).unwrap();
        file.sync_data().unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        fs.crash(CrashKind::Power, &mut rng(0));
        assert_eq!(fs.read_data(path).unwrap(), (b"records".to_vec(), 1 << 16), "synced");
    }

    #[test]
    fn a_synced_file_in_an_unsynced_directory_can_vanish_in_a_power_loss() {
        let (mut vanished, mut kept) = (0, 0);
        for seed in 0..64 {
            let fs = fs_with_dir();
            write_synced(&fs, "/d/a", b"hello world");
            fs.crash(CrashKind::Power, &mut rng(seed));
            match fs.read(Path::new("/d/a")) {
                Ok(bytes) => {
                    assert_eq!(bytes, b"hello world", "its data was synced");
                    kept += 1;
                }
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::NotFound);
                    vanished += 1;
                }
            }
        }
        assert!(vanished > 0 && kept > 0, "vanished {vanished}, kept {kept}");
        for seed in 0..64 {
            let fs = fs_with_dir();
            write_synced(&fs, "/d/a", b"hello world");
            fs.sync_dir(Path::new("/d")).unwrap();
            assert_eq!(fs.durable_bytes(Path::new("/d/a")).unwrap(), b"hello world");
            fs.crash(CrashKind::Power, &mut rng(seed));
            assert_eq!(fs.read(Path::new("/d/a")).unwrap(), b"hello world", "seed {seed}");
        }
    }

    #[test]
    fn power_loss_keeps_synced_bytes_and_a_possibly_torn_prefix_of_the_rest() {
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let fs = fs_with_dir();
            write_synced(&fs, "/d/a", b"0123456789");
            fs.sync_dir(Path::new("/d")).unwrap();
            let mut file = fs.open_write(Path::new("/d/a")).unwrap();
            let mut unsynced = Vec::new();
            file.write_all(b"0123456789").unwrap();
            for chunk in [&b"abcd"[..], b"efgh", b"ijkl"] {
                file.write_all(chunk).unwrap();
                unsynced.extend_from_slice(chunk);
            }
            fs.crash(CrashKind::Power, &mut rng(seed));
            let bytes = fs.read(Path::new("/d/a")).unwrap();
            assert!(bytes.len() >= 10 && bytes.starts_with(b"0123456789"), "{bytes:?}");
            let tail = &bytes[10..];
            let prefix_len = tail.iter().zip(&unsynced).take_while(|(a, b)| a == b).count();
            assert!(tail[prefix_len..].iter().all(|b| *b == 0), "seed {seed}: {bytes:?}");
            outcomes.insert(tail.to_vec());
            assert!(file.write_all(b"x").is_err(), "a handle from before the crash is dead");
        }
        assert!(outcomes.contains(&b""[..]), "sometimes nothing unsynced is kept");
        assert!(outcomes.contains(&b"abcdefghijkl"[..]), "sometimes all of it");
        let torn = outcomes.iter().any(|t| t.len() % 4 != 0 || t.ends_with(&[0]));
        assert!(torn, "sometimes a write is torn: {outcomes:?}");
    }

    #[test]
    fn a_process_crash_keeps_everything_but_kills_handles_and_locks() {
        let fs = fs_with_dir();
        let _lock = fs.try_lock(Path::new("/d/lock")).unwrap();
        let mut file = fs.create_new(Path::new("/d/a")).unwrap();
        file.write_all(b"not synced").unwrap();
        let pending = fs.pending_ops();
        assert!(pending > 0);
        fs.crash(CrashKind::Process, &mut rng(1));
        assert_eq!(fs.read(Path::new("/d/a")).unwrap(), b"not synced");
        assert_eq!(fs.pending_ops(), pending, "still not durable");
        assert_eq!(fs.durable_bytes(Path::new("/d/a")), None);
        assert_eq!(file.write(b"x").unwrap_err().raw_os_error(), Some(EBADF));
        let second = fs.try_lock(Path::new("/d/lock"));
        assert!(second.is_ok(), "the crash released the lock");
        let third = fs.try_lock(Path::new("/d/lock")).unwrap_err();
        assert_eq!(third.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn an_unsynced_rename_is_atomic_but_may_be_undone() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let fs = fs_with_dir();
            write_synced(&fs, "/d/epoch", b"old");
            fs.sync_dir(Path::new("/d")).unwrap();
            write_synced(&fs, "/d/epoch.tmp", b"new");
            fs.rename(Path::new("/d/epoch.tmp"), Path::new("/d/epoch")).unwrap();
            assert_eq!(fs.read(Path::new("/d/epoch")).unwrap(), b"new");
            fs.crash(CrashKind::Power, &mut rng(seed));
            let bytes = fs.read(Path::new("/d/epoch")).unwrap();
            assert!(bytes == b"old" || bytes == b"new", "{bytes:?}");
            seen.insert(bytes);
        }
        assert_eq!(seen.len(), 2, "both outcomes occur");
    }

    #[test]
    fn injected_faults_fire_once_or_by_budget() {
        let fs = fs_with_dir();
        let mut file = fs.create_new(Path::new("/d/a")).unwrap();
        fs.fail_next_write();
        assert_eq!(file.write(b"abc").unwrap_err().raw_os_error(), Some(EIO));
        assert_eq!(file.write(b"abc").unwrap(), 3, "once only");
        fs.fail_next_fsync();
        assert_eq!(file.sync_data().unwrap_err().raw_os_error(), Some(EIO));
        assert_eq!(fs.durable_bytes(Path::new("/d/a")), None, "a failed fsync syncs nothing");
        file.sync_data().unwrap();
        fs.set_space_limit(Some(5));
        assert_eq!(file.write(b"abc").unwrap(), 2, "a short write up to the budget");
        assert_eq!(file.write(b"c").unwrap_err().raw_os_error(), Some(ENOSPC));
        fs.set_space_limit(None);
        fs.freeze_after_ops(1);
        file.write_all(b"1").unwrap();
        assert_eq!(file.write(b"2").unwrap_err().raw_os_error(), Some(EIO));
        assert!(fs.sync_dir(Path::new("/d")).is_err(), "frozen until the crash");
        fs.set_fsync_delay(Duration::from_millis(30));
        assert_eq!(fs.fsync_delay(), Duration::from_millis(30));
        assert_eq!(fs.stats().injected_errors, 5);
        fs.crash(CrashKind::Process, &mut rng(0));
        assert!(fs.sync_dir(Path::new("/d")).is_ok());
        assert_eq!(fs.list_files(), vec![PathBuf::from("/d/a")]);
    }

    /// A trigger freezes the disk at the operation it names, not before: with no extra
    /// operations that one fails; an armed trigger waits for its arming operation (a cut), and
    /// with one extra operation the matching one lands and the next fails.
    #[test]
    fn a_trigger_freezes_at_the_named_operation() {
        let fs = fs_with_dir();
        let rename = OpMatch { kinds: &[OpKind::Rename], name: "currentEpoch" };
        fs.set_trigger(Some(Trigger { arm: None, arm_count: 0, fire: rename, extra_ops: 0 }));
        write_synced(&fs, "/d/acceptedEpoch.tmp", b"2");
        fs.rename(Path::new("/d/acceptedEpoch.tmp"), Path::new("/d/acceptedEpoch")).unwrap();
        write_synced(&fs, "/d/currentEpoch.tmp", b"2");
        assert_eq!(fs.stats().triggers_fired, 0, "not at other files' renames nor its writes");
        let to = Path::new("/d/currentEpoch");
        let failed = fs.rename(Path::new("/d/currentEpoch.tmp"), to).unwrap_err();
        assert_eq!(failed.raw_os_error(), Some(EIO), "the rename itself fails");
        assert!(fs.frozen() && fs.read(to).is_err(), "frozen before the rename landed");
        assert_eq!(fs.stats().triggers_fired, 1);
        assert!(fs.sync_dir(Path::new("/d")).is_err(), "and everything after it");
        fs.crash(CrashKind::Power, &mut rng(0));
        assert!(!fs.frozen() && fs.faults().trigger.is_none(), "a crash ends it");

        let fs = fs_with_dir();
        let cut = OpMatch { kinds: &[OpKind::Shrink], name: "log." };
        let write = OpMatch { kinds: &[OpKind::Write], name: "log." };
        let trigger = Trigger { arm: Some(cut), arm_count: 1, fire: write, extra_ops: 1 };
        fs.set_trigger(Some(trigger));
        let mut log = fs.create_new(Path::new("/d/log.1")).unwrap();
        log.write_all(b"records").unwrap();
        log.set_len(64).unwrap();
        assert_eq!(fs.faults().trigger, Some(trigger), "growing the file does not arm it");
        log.set_len(3).unwrap();
        assert_eq!(fs.faults().trigger.and_then(|t| t.arm), None, "the cut armed it");
        log.write_all(b"new").unwrap();
        assert_eq!(fs.stats().triggers_fired, 1, "fired by the first write after the cut");
        assert!(!fs.frozen(), "which landed");
        assert_eq!(log.write(b"x").unwrap_err().raw_os_error(), Some(EIO), "the next fails");
        assert!(fs.frozen());
    }

    #[test]
    fn removed_files_are_collected_once_unreachable() {
        let fs = fs_with_dir();
        write_synced(&fs, "/d/a", b"x");
        fs.sync_dir(Path::new("/d")).unwrap();
        fs.remove_file(Path::new("/d/a")).unwrap();
        assert_eq!(fs.list_files(), Vec::<PathBuf>::new());
        assert_eq!(fs.list_durable_files(), vec![PathBuf::from("/d/a")], "not yet durable");
        assert_eq!(fs.used_bytes(), 1);
        fs.sync_dir(Path::new("/d")).unwrap();
        assert_eq!(fs.used_bytes(), 0);
        assert_eq!(fs.list_dir(Path::new("/")).unwrap(), vec![OsString::from("d")]);
    }
}
