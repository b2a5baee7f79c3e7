//! The disk seam: every filesystem operation the txn log, snapshots, recovery and the epoch files
//! use goes through [`Fs`], so the simulator can put a disk that crashes like a real one
//! (`zkr_sim::simfs::SimFs`) under the real storage code. [`OsFs`] is the production disk: plain
//! `std::fs` calls, exactly what the storage code made before the seam existed.
//!
//! The trait is deliberately the dozen operations storage needs and no more, with the durability
//! points explicit: `FsFile::sync_data`/`sync_all` make a file's bytes durable, `Fs::sync_dir`
//! makes the creates, renames and removes in one directory durable (neither implies the other).
//!
//! Cost in production: one dynamic call per `write` that reaches the OS (the log writes through a
//! 256 KiB `BufWriter` in front of the handle) and per sync; no extra copy.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, Write};

use std::path::{Path, PathBuf};

/// An open file, for writing. Writes go to the OS at `write` (callers put a `BufWriter` in
/// front); `sync_data`/`sync_all` wait until they are durable.
pub trait FsFile: Write + Send + std::fmt::Debug {
    /// fdatasync: the file's data (and the size needed to read it) is durable on return.
    fn sync_data(&self) -> io::Result<()>;
    /// fsync: data and metadata are durable on return.
    fn sync_all(&self) -> io::Result<()>;
    /// Truncates or extends the file to `len` bytes (not synced).
    fn set_len(&self, len: u64) -> io::Result<()>;
}

/// An exclusive lock on a lock file, held until dropped.
pub trait FsLock: Send + std::fmt::Debug {}

/// The filesystem operations of storage and epochs. Paths are as the caller gives them.
pub trait Fs: Send + Sync + std::fmt::Debug + 'static {
    /// `mkdir -p`.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the entries in `dir` (any order; callers sort).
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// A whole file. `NotFound` when it does not exist.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// A whole file handed to `sink` in order, in pieces of at most `piece_len` bytes, without
    /// holding it whole (a million-znode snapshot is 200 MB; issue 16). Stops at the first
    /// error of `sink`. By default the file is read whole, then cut.
    fn read_in_pieces(
        &self,
        path: &Path,
        piece_len: usize,
        sink: &mut dyn FnMut(Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        let bytes = self.read(path)?;
        bytes.chunks(piece_len).try_for_each(|piece| sink(piece.to_vec()))
    }
    /// The bytes of a file up to the end of its last data region, and the file's length. The
    /// file reads as zeros from the bytes returned up to its length: that part is a hole (a file
    /// grown with `FsFile::set_len`, as the txn log preallocates, is sparse there), and is
    /// neither read nor held. Holes before the last data region read as the zeros they are. By
    /// default the file is read whole (a file system that cannot tell holes from data).
    fn read_data(&self, path: &Path) -> io::Result<(Vec<u8>, u64)> {
        let bytes = self.read(path)?;
        let len = bytes.len() as u64;
        Ok((bytes, len))
    }
    /// Creates a new file for writing; `AlreadyExists` if there is one.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Creates a file for writing, truncating it if it exists (`File::create`).
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens an existing file for writing at offset 0, without truncating it.
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// fsync of a directory: entries created, renamed or removed in it are durable on return.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` (atomic, as rename(2)).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The canonical form of an existing path (to tell whether two directories are the same).
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;
    /// Creates `path` if needed and takes an exclusive lock on it without waiting. Another holder
    /// is an error of kind `WouldBlock`.
    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>>;
    /// How long a sync takes beyond the call itself: zero on a real disk (the call takes the
    /// time); a simulated disk returns its current latency, which the storage worker sleeps
    /// under madsim before each batch it syncs.
    fn sync_delay(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// The operating system's filesystem (`std::fs`; locks are `flock` through `File::try_lock`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsFs;

impl FsFile for File {
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

/// The open lock file; closing it releases the lock.
#[derive(Debug)]
struct OsLock {
    _file: File,
}

impl FsLock for OsLock {}

impl Fs for OsFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?.map(|entry| entry.map(|e| e.file_name())).collect()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn read_in_pieces(
        &self,
        path: &Path,
        piece_len: usize,
        sink: &mut dyn FnMut(Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        assert!(piece_len > 0, "a piece holds something");
        let mut file = File::open(path)?;
        loop {
            let mut piece = Vec::with_capacity(piece_len);
            let read = (&mut file).take(piece_len as u64).read_to_end(&mut piece)?;
            if read == 0 {
                return Ok(());
            }
            sink(piece)?;
        }
    }

    fn read_data(&self, path: &Path) -> io::Result<(Vec<u8>, u64)> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let data_end = data_end(&file, len)?;
        assert!(data_end <= len, "data lies inside the file");
        // The lseeks moved the file's position: read from its start.
        (&file).seek(io::SeekFrom::Start(0))?;
        let mut bytes = Vec::with_capacity(data_end as usize);
        (&file).take(data_end).read_to_end(&mut bytes)?;
        // A file cut shorter between the two calls reads short, as a file read whole would.
        assert!(bytes.len() as u64 <= data_end);
        Ok((bytes, len))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(Box::new(file))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(Box::new(File::create(path)?))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(Box::new(std::fs::OpenOptions::new().write(true).open(path)?))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        path.canonicalize()
    }

    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>> {
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(OsLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(io::Error::new(io::ErrorKind::WouldBlock, "locked by another holder"))
            }
            Err(std::fs::TryLockError::Error(source)) => Err(source),
        }
    }
}

/// The end of the last data region of `file` (of length `len`), found with lseek's SEEK_DATA and
/// SEEK_HOLE: `len` when the file system does not tell holes apart (EINVAL), or the file has no
/// trailing hole. Blocks are the unit: data ends at a block boundary or at `len`. Unwritten
/// extents (fallocate) count as holes on ext4 and XFS, as their pages read as zeros.
fn data_end(file: &File, len: u64) -> io::Result<u64> {
    use rustix::fs::{SeekFrom, seek};
    let mut end = 0;
    while end < len {
        let data = match seek(file, SeekFrom::Data(end)) {
            Ok(data) => data,
            // ENXIO: no data at or after `end`, the rest is a hole.
            Err(rustix::io::Errno::NXIO) => break,
            Err(rustix::io::Errno::INVAL) => return Ok(len),
            Err(e) => return Err(e.into()),
        };
        end = seek(file, SeekFrom::Hole(data))?.min(len);
        assert!(end >= data, "a hole starts at or after the data before it");
    }
    Ok(end.min(len))
}

/// Reads a whole file as UTF-8 text (as `std::fs::read_to_string`).
pub fn read_to_string(fs: &dyn Fs, path: &Path) -> io::Result<String> {
    String::from_utf8(fs.read(path)?).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidData, "stream did not contain valid UTF-8")
    })
}

/// The OS filesystem with a disk fault a test switches on by writing a control file (zoo.cfg
/// `zkr.diskFaultFile`; only a build with the `bugs` feature takes the key): `slow MS` makes
/// every sync (file or directory) wait MS ms first, `stall` makes syncs wait until the text
/// changes, `eio` makes every sync fail with EIO (a dying device: the fsyncgate case), `full`
/// makes every write of a file fail with ENOSPC; anything else (or no file) is a healthy disk.
/// Otherwise reads and writes are untouched: they reach the page cache, as they do on a real
/// disk that is slow to flush. `jepsen test`'s `disk` fault drives it (docs/JEPSEN.md); so do
/// `tests/tests/disk_faults.rs` (which fills a real size-limited filesystem for ENOSPC).
#[cfg(feature = "bugs")]
#[derive(Clone, Debug)]
pub struct FaultFs {
    control: std::sync::Arc<PathBuf>,
}

#[cfg(feature = "bugs")]
impl FaultFs {
    /// A disk controlled by the file at `control`.
    pub fn new(control: PathBuf) -> FaultFs {
        FaultFs { control: std::sync::Arc::new(control) }
    }
}

/// Waits as the control file says, before a sync; fails it with EIO under `eio`.
#[cfg(feature = "bugs")]
fn fault_wait(control: &Path) -> io::Result<()> {
    const EIO: i32 = 5;
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(control).unwrap_or_default();
        let text = text.trim();
        if text == "stall" {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        if text == "eio" {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        if let Some(ms) = text.strip_prefix("slow ").and_then(|ms| ms.trim().parse::<u64>().ok()) {
            let left = std::time::Duration::from_millis(ms).saturating_sub(started.elapsed());
            std::thread::sleep(left);
        }
        return Ok(());
    }
}

/// ENOSPC for a write under `full`.
#[cfg(feature = "bugs")]
fn fault_write(control: &Path) -> io::Result<()> {
    const ENOSPC: i32 = 28;
    match std::fs::read_to_string(control).unwrap_or_default().trim() {
        "full" => Err(io::Error::from_raw_os_error(ENOSPC)),
        _ => Ok(()),
    }
}

/// A file of [`FaultFs`]: writes as the OS's, syncs after [`fault_wait`].
#[cfg(feature = "bugs")]
#[derive(Debug)]
struct FaultFile {
    file: File,
    control: std::sync::Arc<PathBuf>,
}

#[cfg(feature = "bugs")]
impl Write for FaultFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        fault_write(&self.control)?;
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(feature = "bugs")]
impl FsFile for FaultFile {
    fn sync_data(&self) -> io::Result<()> {
        fault_wait(&self.control)?;
        self.file.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        fault_wait(&self.control)?;
        self.file.sync_all()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
}

#[cfg(feature = "bugs")]
impl FaultFs {
    fn wrap(&self, file: File) -> Box<dyn FsFile> {
        Box::new(FaultFile { file, control: self.control.clone() })
    }
}

#[cfg(feature = "bugs")]
impl Fs for FaultFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        OsFs.create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        OsFs.list_dir(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        OsFs.read(path)
    }

    fn read_in_pieces(
        &self,
        path: &Path,
        piece_len: usize,
        sink: &mut dyn FnMut(Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        OsFs.read_in_pieces(path, piece_len, sink)
    }

    fn read_data(&self, path: &Path) -> io::Result<(Vec<u8>, u64)> {
        OsFs.read_data(path)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(self.wrap(file))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(self.wrap(File::create(path)?))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(self.wrap(std::fs::OpenOptions::new().write(true).open(path)?))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        fault_wait(&self.control)?;
        OsFs.sync_dir(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        OsFs.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        OsFs.remove_file(path)
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        OsFs.canonicalize(path)
    }

    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn FsLock>> {
        OsFs.try_lock(path)
    }
}

#[cfg(all(test, feature = "bugs"))]
mod fault_tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The control file slows, then stalls, then frees the syncs.
    #[test]
    fn the_control_file_slows_and_stalls_syncs() {
        let dir = std::env::temp_dir().join(format!("zkr-faultfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let control = dir.join("disk");
        let fs = FaultFs::new(control.clone());
        let mut file = fs.create(&dir.join("f")).expect("create");
        file.write_all(b"x").expect("write");
        let began = Instant::now();
        file.sync_data().expect("healthy sync");
        let healthy = began.elapsed();
        std::fs::write(&control, "slow 300").expect("control");
        let began = Instant::now();
        file.sync_data().expect("slow sync");
        assert!(began.elapsed() >= Duration::from_millis(300), "slow: {:?}", began.elapsed());
        std::fs::write(&control, "stall").expect("control");
        let freed = std::thread::spawn({
            let control = control.clone();
            move || {
                std::thread::sleep(Duration::from_millis(400));
                std::fs::write(&control, "").expect("control");
            }
        });
        let began = Instant::now();
        fs.sync_dir(&dir).expect("stalled sync returns once freed");
        assert!(began.elapsed() >= Duration::from_millis(400), "stalled: {:?}", began.elapsed());
        freed.join().expect("freer");
        assert!(healthy < Duration::from_millis(300), "a healthy sync does not wait");
        std::fs::write(&control, "eio").expect("control");
        assert_eq!(file.sync_data().expect_err("eio").raw_os_error(), Some(5));
        assert_eq!(fs.sync_dir(&dir).expect_err("eio").raw_os_error(), Some(5));
        std::fs::write(&control, "full").expect("control");
        assert_eq!(file.write(b"y").expect_err("full").raw_os_error(), Some(28));
        std::fs::write(&control, "").expect("control");
        file.write_all(b"y").expect("space again");
        file.sync_data().expect("healthy again");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
