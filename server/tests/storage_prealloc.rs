//! Issue 14: txn log files kept sized ahead of their records (zoo.cfg `preAllocSize`, as
//! ZooKeeper's `FilePadding`), on the real disk. Recovery, a DIFF read and truncation read the
//! written records only, never the sparse zero tail (bytes counted through the `Fs` seam), and
//! still tell a torn tail (cut) from corruption (refused), with zeros after both.

use std::ffi::OsString;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use zkr_server::fs::{Fs, FsFile, FsLock, OsFs};
use zkr_server::storage::{Recovered, Storage, StorageError, log, log_file_name};

mod common;
use common::TempDir;

/// What the tests preallocate by, unless they say otherwise.
const PREALLOC_BYTES: u64 = 1 << 20;

/// The disk, counting the bytes every read hands out.
#[derive(Debug, Default)]
struct CountingFs {
    bytes_read: AtomicU64,
}

impl CountingFs {
    fn count(&self, bytes: usize) {
        self.bytes_read.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }
}

impl Fs for CountingFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        OsFs.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        OsFs.list_dir(dir)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let bytes = OsFs.read(path)?;
        self.count(bytes.len());
        Ok(bytes)
    }
    fn read_data(&self, path: &Path) -> io::Result<(Vec<u8>, u64)> {
        let (bytes, len) = OsFs.read_data(path)?;
        self.count(bytes.len());
        Ok((bytes, len))
    }
    fn read_in_pieces(
        &self,
        path: &Path,
        piece_len: usize,
        sink: &mut dyn FnMut(Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        OsFs.read_in_pieces(path, piece_len, &mut |piece| {
            self.count(piece.len());
            sink(piece)
        })
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        OsFs.create_new(path)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        OsFs.create(path)
    }
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        OsFs.open_write(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
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

/// A payload with a run of zero bytes in it: a reader that takes zeros for the end of the
/// records stops inside it.
fn payload(zxid: i64) -> Vec<u8> {
    let mut bytes = format!("txn-{zxid:#x}").into_bytes();
    bytes.extend(std::iter::repeat_n(0u8, 40 + (zxid % 5) as usize));
    bytes.extend_from_slice(b"-end");
    bytes
}

fn expected(zxids: impl IntoIterator<Item = i64>) -> Vec<(i64, Vec<u8>)> {
    zxids.into_iter().map(|z| (z, payload(z))).collect()
}

/// Opens `dir` on `fs` with log files preallocated `prealloc_bytes` at a time.
fn open_on(
    fs: Arc<dyn Fs>,
    dir: &Path,
    prealloc_bytes: u64,
) -> Result<(Storage, Recovered), StorageError> {
    let (mut storage, recovered) = Storage::open(fs, dir, dir)?;
    storage.set_prealloc_bytes(prealloc_bytes);
    Ok((storage, recovered))
}

fn open(dir: &Path) -> Result<(Storage, Recovered), StorageError> {
    open_on(Arc::new(OsFs), dir, PREALLOC_BYTES)
}

fn append_all(storage: &mut Storage, zxids: impl IntoIterator<Item = i64>) {
    for zxid in zxids {
        storage.append(zxid, &payload(zxid)).unwrap();
    }
    storage.sync().unwrap();
}

fn log_path(dir: &Path, first: i64) -> PathBuf {
    dir.join("version-2").join(log_file_name(first))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Offset just past the record `n` of a file holding records 1..=n from its start.
fn record_end(n: i64) -> u64 {
    let records: usize = (1..=n).map(|z| log::RECORD_OVERHEAD + payload(z).len()).sum();
    (log::LOG_HEADER_LEN + records) as u64
}

/// Writes `bytes` at `offset` of `path`, inside its preallocated tail.
fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

/// Log files with 1..=5 in a preallocated `log.1`, closed.
fn five_records(tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    let (mut storage, _) = open(&dir.0).unwrap();
    append_all(&mut storage, 1..=5);
    drop(storage);
    let path = log_path(&dir.0, 1);
    assert_eq!(file_len(&path), PREALLOC_BYTES, "sized ahead, not grown with the records");
    (dir, path)
}

/// The file is sized ahead and grows by whole steps; a restart reads its records (with zeros
/// in their payloads) but not the zeros after them, leaves the tail as it is, and appends to a
/// new file.
#[test]
fn a_preallocated_file_recovers_its_records_without_reading_its_tail() {
    let dir = TempDir::new("prealloc-roundtrip");
    let path = log_path(&dir.0, 1);
    {
        let (mut storage, _) = open_on(Arc::new(OsFs), &dir.0, 4096 * 4).unwrap();
        append_all(&mut storage, 1..=400);
        assert!(record_end(400) > 4096 * 4, "past the first step");
        assert_eq!(file_len(&path) % (4096 * 4), 0, "grown by whole steps");
        assert!(file_len(&path) >= record_end(400) + 4096, "ahead of the records");
    }
    let counting = Arc::new(CountingFs::default());
    let (mut storage, recovered) = open_on(counting.clone(), &dir.0, PREALLOC_BYTES).unwrap();
    assert_eq!(recovered.txns, expected(1..=400));
    assert_eq!(file_len(&path) % (4096 * 4), 0, "the zero tail is left, not cut or rewritten");
    // The newest file is read once (is it without records? then its records, from the same
    // bytes), up to the block its last record ends in.
    let read = counting.bytes_read();
    assert!(read <= record_end(400) + 4096, "read {read}");
    append_all(&mut storage, 401..=402);
    drop(storage);
    assert_eq!(file_len(&log_path(&dir.0, 401)), PREALLOC_BYTES);
    let (_, recovered) = open(&dir.0).unwrap();
    assert_eq!(recovered.txns, expected(1..=402));
}

/// A record torn in the middle of the preallocated region (its second half never landed: zeros
/// follow its first half) is a torn write: cut.
#[test]
fn a_torn_record_then_zeros_is_cut() {
    let (dir, path) = five_records("prealloc-torn");
    let record5 = record_end(4);
    let half = (record_end(5) - record5) / 2;
    write_at(&path, record5 + half, &vec![0u8; (record_end(5) - record5 - half) as usize]);
    let (_, recovered) = open(&dir.0).unwrap();
    assert_eq!(recovered.txns, expected(1..=4));
    assert_eq!(file_len(&path), record5, "cut at the end of the last whole record");
}

/// Garbage after the last record, then the zero tail: a torn write, cut.
#[test]
fn garbage_then_zeros_is_a_torn_write() {
    let (dir, path) = five_records("prealloc-garbage");
    let garbage: Vec<u8> = (0..100u32).map(|i| (i as u8).wrapping_mul(37) | 1).collect();
    write_at(&path, record_end(5), &garbage);
    let (_, recovered) = open(&dir.0).unwrap();
    assert_eq!(recovered.txns, expected(1..=5));
    assert_eq!(file_len(&path), record_end(5));
}

/// A valid record after a gap of zeros (a short one, a block, and a hole of several blocks) is
/// corruption, never the end of the log or a record to keep.
#[test]
fn a_valid_record_after_zeros_is_corruption() {
    for gap in [16u64, 4096, 300_000] {
        let (dir, path) = five_records("prealloc-resumes");
        let mut record6 = Vec::new();
        log::encode_record(6, &payload(6), &mut record6);
        write_at(&path, record_end(5) + gap, &record6);
        match open(&dir.0) {
            Err(StorageError::CorruptLog { offset, what, .. }) => {
                assert_eq!(offset, record_end(5), "gap {gap}: {what}");
                assert!(what.contains("valid record follows"), "gap {gap}: {what}");
            }
            other => panic!("gap {gap}: {:?}", other.map(|(_, r)| r.txns.len())),
        }
    }
}

/// A DIFF (`read_range`) from the newest file while it is being appended to, preallocated,
/// and from an older one: the records, read without the tails.
#[test]
fn a_diff_reads_a_preallocated_newest_file() {
    let dir = TempDir::new("prealloc-diff");
    let counting = Arc::new(CountingFs::default());
    let (mut storage, _) = open_on(counting.clone(), &dir.0, 64 << 20).unwrap();
    append_all(&mut storage, 1..=10);
    storage.roll().unwrap();
    append_all(&mut storage, 11..=20);
    assert_eq!(file_len(&log_path(&dir.0, 11)), 64 << 20);
    let before = counting.bytes_read();
    assert_eq!(storage.read_range(4, 15, 100).unwrap(), (true, expected(5..=15)));
    assert_eq!(storage.read_range(12, 20, 100).unwrap(), (true, expected(13..=20)));
    assert!(storage.read_range(12, 21, 100).is_err(), "the log ends at 20: zeros are no record");
    let read = counting.bytes_read() - before;
    assert!(read < 64 << 10, "three DIFF reads took {read} bytes");
}

/// Issue 16's aim: the restart of a server whose newest file is preallocated by ZooKeeper's
/// default 64 MB reads its records, not 64 MB of zeros.
#[test]
fn recovery_of_a_64_mb_preallocated_file_reads_only_its_records() {
    let dir = TempDir::new("prealloc-64mb");
    {
        let (mut storage, _) = open_on(Arc::new(OsFs), &dir.0, 64 << 20).unwrap();
        append_all(&mut storage, 1..=1000);
    }
    assert_eq!(file_len(&log_path(&dir.0, 1)), 64 << 20);
    let counting = Arc::new(CountingFs::default());
    let (_, recovered) = open_on(counting.clone(), &dir.0, 64 << 20).unwrap();
    assert_eq!(recovered.txns, expected(1..=1000));
    let read = counting.bytes_read();
    // The records once (see above), not 64 MB.
    assert!(read <= record_end(1000) + 4096, "recovery read {read} bytes");
    assert!(read >= record_end(1000), "and every record");
}

/// TRUNC into a preallocated file cuts it at the last record kept: the records after it, and
/// the tail, are gone, so none comes back behind the zeros.
#[test]
fn truncation_cuts_the_records_after_it_and_the_tail() {
    let dir = TempDir::new("prealloc-trunc");
    let path = log_path(&dir.0, 1);
    let (mut storage, _) = open(&dir.0).unwrap();
    append_all(&mut storage, 1..=10);
    storage.truncate_after(6).unwrap();
    assert_eq!(file_len(&path), record_end(6));
    assert_eq!(storage.last_zxid(), 6);
    append_all(&mut storage, 7..=8);
    drop(storage);
    let (_, recovered) = open(&dir.0).unwrap();
    assert_eq!(recovered.txns, expected(1..=8));
    assert_eq!(file_len(&path), record_end(6), "7.. live in log.7");
}
