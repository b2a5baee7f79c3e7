//! The txn log file format: encoding of the header and records, the append-side writer, and the
//! scanner that recovery and truncation use to read a file back.
//!
//! Layout of `log.<hex first zxid>` (all integers little-endian):
//!
//! ```text
//! header  = magic "ZKRL" | u32 format version (1) | i64 first zxid | u32 crc32c(previous 16 bytes)
//! record  = u32 payload length | i64 zxid | payload | u32 crc32c(length | zxid | payload)
//! ```
//!
//! Invariants of a well-formed file: the header's zxid equals the file name's zxid and the first
//! record's zxid; record zxids are strictly increasing; every record's crc matches. After the last
//! record the file either ends or holds only zero bytes: a preallocated tail. `ActiveLog` keeps
//! the file sized ahead of its writes (`prealloc_bytes`, zoo.cfg `preAllocSize`, as ZooKeeper's
//! `FilePadding`) with `set_len`, so that a write lands inside the file and its fdatasync need
//! not journal a new size (issue 14; docs/PERFORMANCE.md). The tail is sparse: readers take the
//! file through `Fs::read_data`, which stops where the written data ends, so recovery and a DIFF
//! neither read nor hold the zeros (issue 16), and `scan` sees at most a block of them.
//!
//! A crash can leave the last write of the last file torn: a short record, a zero-filled or
//! garbage tail. The scanner does not decide what is acceptable; it reports where the valid prefix
//! ends, why, and whether a valid record can still be found after that point (which means the
//! damage is not a torn tail but corruption in the middle). `storage::recovery` applies the policy.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::fs::{Fs, FsFile};

/// The four magic bytes at the start of every log file.
pub const LOG_MAGIC: [u8; 4] = *b"ZKRL";
/// The log format version this code writes and reads.
pub const LOG_FORMAT_VERSION: u32 = 1;
/// Bytes in the file header.
pub const LOG_HEADER_LEN: usize = 20;
/// Bytes a record adds around its payload: length, zxid, crc.
pub const RECORD_OVERHEAD: usize = 16;
/// The largest payload a record may carry. Bigger lengths on disk are corruption.
pub const MAX_PAYLOAD_BYTES: usize = i32::MAX as usize;

/// Size of the userspace write buffer in front of the active log file.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;
/// The file is grown once its appended bytes come within this many bytes of its size
/// (ZooKeeper's `FilePadding` uses a 4 KB margin too).
const PREALLOC_MARGIN_BYTES: u64 = 4096;

/// Encodes the header of a log file whose first record has `first_zxid`.
pub fn encode_header(first_zxid: i64) -> [u8; LOG_HEADER_LEN] {
    let mut header = [0u8; LOG_HEADER_LEN];
    header[0..4].copy_from_slice(&LOG_MAGIC);
    header[4..8].copy_from_slice(&LOG_FORMAT_VERSION.to_le_bytes());
    header[8..16].copy_from_slice(&first_zxid.to_le_bytes());
    let crc = crc32c::crc32c(&header[0..16]);
    header[16..20].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Appends the encoding of one record to `out`.
pub fn encode_record(zxid: i64, payload: &[u8], out: &mut Vec<u8>) {
    assert!(payload.len() <= MAX_PAYLOAD_BYTES, "payload of {} bytes", payload.len());
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&zxid.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Why the header of a log file is unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Fewer bytes than a header: a torn file creation, or truncation.
    Short,
    /// The magic bytes are wrong: not one of our log files.
    BadMagic,
    /// A format version this code does not know.
    UnknownVersion(u32),
    /// The header crc does not match.
    BadChecksum,
    /// The header is intact but names another first zxid than the file name.
    ZxidMismatch(i64),
}

impl std::fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderProblem::Short => write!(f, "the file is shorter than a log header"),
            HeaderProblem::BadMagic => write!(f, "bad magic: not a zkr txn log file"),
            HeaderProblem::UnknownVersion(v) => write!(f, "unknown log format version {v}"),
            HeaderProblem::BadChecksum => write!(f, "the log header checksum does not match"),
            HeaderProblem::ZxidMismatch(z) => {
                write!(f, "the header names first zxid {z:#x}, not the one in the file name")
            }
        }
    }
}

/// Checks the header at the start of `bytes` against the zxid in the file name.
pub fn check_header(bytes: &[u8], name_zxid: i64) -> Result<(), HeaderProblem> {
    if bytes.len() < LOG_HEADER_LEN {
        return Err(HeaderProblem::Short);
    }
    if bytes[0..4] != LOG_MAGIC {
        return Err(HeaderProblem::BadMagic);
    }
    let crc = read_u32(bytes, 16);
    if crc32c::crc32c(&bytes[0..16]) != crc {
        return Err(HeaderProblem::BadChecksum);
    }
    let version = read_u32(bytes, 4);
    if version != LOG_FORMAT_VERSION {
        return Err(HeaderProblem::UnknownVersion(version));
    }
    let zxid = read_i64(bytes, 8);
    if zxid != name_zxid {
        return Err(HeaderProblem::ZxidMismatch(zxid));
    }
    Ok(())
}

/// One record found by the scanner: its zxid and where its payload lies in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedRecord {
    /// The record's zxid.
    pub zxid: i64,
    /// Offset of the record's first byte (its length field) in the file.
    pub offset: usize,
    /// The payload's byte range in the file.
    pub payload: std::ops::Range<usize>,
}

impl ScannedRecord {
    /// Offset just past the record.
    pub fn end(&self) -> usize {
        self.payload.end + 4
    }
}

/// How the scan of a file ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// The last record ends exactly at the end of the file.
    Clean,
    /// Only zero bytes follow the last record (preallocation, or a torn zero-filled write).
    ZeroTail,
    /// The bytes after the valid prefix do not form a record, and no valid record follows: the
    /// signature of a torn last write.
    Torn {
        /// What is wrong at `valid_len`.
        what: String,
    },
    /// The bytes after the valid prefix do not form a record, yet a valid record starts at
    /// `resumes_at`: damage in the middle of the log, never a torn write.
    Corrupt {
        /// What is wrong at `valid_len`.
        what: String,
        /// Offset of a later record with a good checksum.
        resumes_at: usize,
    },
    /// A record has a good checksum but its zxid does not increase: written wrongly, not torn.
    OutOfOrder {
        /// Offset of the offending record.
        offset: usize,
        /// Its zxid.
        zxid: i64,
        /// The zxid of the record before it.
        previous: i64,
    },
}

/// The result of scanning one log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// The records of the valid prefix, in file order.
    pub records: Vec<ScannedRecord>,
    /// Length of the valid prefix: header plus whole, checksummed, increasing records.
    pub valid_len: usize,
    /// Why the scan stopped.
    pub end: ScanEnd,
}

/// Scans a log file whose header has already been checked. Never panics on any input.
pub fn scan(bytes: &[u8]) -> Scan {
    assert!(bytes.len() >= LOG_HEADER_LEN, "scan needs a checked header");
    let mut records: Vec<ScannedRecord> = Vec::new();
    let mut offset = LOG_HEADER_LEN;
    loop {
        let previous = records.last().map(|r| r.zxid);
        if offset == bytes.len() {
            return Scan { records, valid_len: offset, end: ScanEnd::Clean };
        }
        match parse_record(bytes, offset) {
            Ok(record) => {
                if let Some(previous) = previous.filter(|p| record.zxid <= *p) {
                    let end = ScanEnd::OutOfOrder { offset, zxid: record.zxid, previous };
                    return Scan { records, valid_len: offset, end };
                }
                offset = record.end();
                records.push(record);
            }
            Err(what) => {
                let end = classify_tail(bytes, offset, previous, what);
                return Scan { records, valid_len: offset, end };
            }
        }
    }
}

/// Decides what the unparseable bytes from `offset` on are: zeros, a torn write, or corruption.
fn classify_tail(bytes: &[u8], offset: usize, previous: Option<i64>, what: String) -> ScanEnd {
    if bytes[offset..].iter().all(|b| *b == 0) {
        return ScanEnd::ZeroTail;
    }
    match find_valid_record(bytes, offset + 1, previous) {
        Some(resumes_at) => ScanEnd::Corrupt { what, resumes_at },
        None => ScanEnd::Torn { what },
    }
}

/// Looks for any offset at or after `from` where a record with a good checksum and a zxid above
/// `previous` starts. Cheap filters (length fits, zxid plausible) run before the checksum, so a
/// scan over garbage stays close to linear.
pub fn find_valid_record(bytes: &[u8], from: usize, previous: Option<i64>) -> Option<usize> {
    let floor = previous.unwrap_or(0);
    (from..bytes.len()).find(|&offset| match parse_frame(bytes, offset) {
        Ok((zxid, _)) if zxid > floor => check_crc(bytes, offset, zxid).is_ok(),
        _ => false,
    })
}

/// Parses the record at `offset`, or says why there is none.
fn parse_record(bytes: &[u8], offset: usize) -> Result<ScannedRecord, String> {
    let (zxid, len) = parse_frame(bytes, offset)?;
    let record = check_crc(bytes, offset, zxid)?;
    assert_eq!(record.payload.len(), len);
    if zxid <= 0 {
        return Err(format!("record zxid {zxid:#x} is not positive"));
    }
    Ok(record)
}

/// Reads the length and zxid of the record at `offset` and checks that it fits in the file.
fn parse_frame(bytes: &[u8], offset: usize) -> Result<(i64, usize), String> {
    let remaining = bytes.len() - offset;
    if remaining < RECORD_OVERHEAD {
        return Err(format!("{remaining} trailing bytes are too few for a record"));
    }
    let len = read_u32(bytes, offset) as usize;
    if len > MAX_PAYLOAD_BYTES {
        return Err(format!("record length {len} is larger than the limit"));
    }
    if len > remaining - RECORD_OVERHEAD {
        return Err(format!(
            "record length {len} runs past the end of the file ({remaining} bytes left)"
        ));
    }
    Ok((read_i64(bytes, offset + 4), len))
}

/// Checks the crc of a record whose frame `parse_frame` accepted.
fn check_crc(bytes: &[u8], offset: usize, zxid: i64) -> Result<ScannedRecord, String> {
    let len = read_u32(bytes, offset) as usize;
    let payload = offset + 12..offset + 12 + len;
    let stored_crc = read_u32(bytes, payload.end);
    if crc32c::crc32c(&bytes[offset..payload.end]) != stored_crc {
        return Err(format!("checksum mismatch in the record claiming zxid {zxid:#x}"));
    }
    Ok(ScannedRecord { zxid, offset, payload })
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(buf)
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    i64::from_le_bytes(buf)
}

/// The log file currently being appended to. It exists on disk from its first record on.
#[derive(Debug)]
pub struct ActiveLog {
    /// The file's path.
    pub path: PathBuf,
    /// The zxid in its name.
    pub first_zxid: i64,
    writer: BufWriter<Box<dyn FsFile>>,
    /// The directory entry is new and not yet fsynced.
    dir_sync_pending: bool,
    /// Bytes buffered or written since the last `sync`.
    dirty: bool,
    /// Bytes appended (header included), buffered or written.
    len: u64,
    /// `len` at the last `sync` that succeeded: the end of a whole record (or 0: the header was
    /// never synced). What a write that failed for lack of space is cut back to.
    synced_len: u64,
    /// The file's size as last set ahead of the writes (0: never). Always above `len` by at
    /// least `PREALLOC_MARGIN_BYTES` while `prealloc_bytes` is not 0.
    allocated: u64,
    /// What the file grows by (0: no preallocation, the file grows with each write).
    prealloc_bytes: u64,
    scratch: Vec<u8>,
}

impl ActiveLog {
    /// Creates `dir/log.<hex first_zxid>`, sized ahead to `prealloc_bytes` (0: not); fails if
    /// it exists. The header is buffered, not synced; nor is the size.
    pub fn create(
        fs: &dyn Fs,
        dir: &Path,
        first_zxid: i64,
        prealloc_bytes: u64,
    ) -> io::Result<ActiveLog> {
        let path = dir.join(super::log_file_name(first_zxid));
        let file = fs.create_new(&path)?;
        let writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        let mut log = ActiveLog {
            path,
            first_zxid,
            writer,
            dir_sync_pending: true,
            dirty: true,
            len: 0,
            synced_len: 0,
            allocated: 0,
            prealloc_bytes,
            scratch: Vec::new(),
        };
        log.grow_for(LOG_HEADER_LEN as u64)?;
        log.writer.write_all(&encode_header(first_zxid))?;
        log.len = LOG_HEADER_LEN as u64;
        Ok(log)
    }

    /// Grows the file ahead before `more` bytes are appended, when they would come within
    /// `PREALLOC_MARGIN_BYTES` of its size: to the next multiple of `prealloc_bytes`. Once per
    /// `prealloc_bytes` of records the next fdatasync journals a new size; the others do not.
    /// Sparse (`set_len`): it takes no disk space until written, and readers skip it.
    fn grow_for(&mut self, more: u64) -> io::Result<()> {
        if self.prealloc_bytes == 0 {
            assert_eq!(self.allocated, 0, "never preallocated");
            return Ok(());
        }
        let needed = self.len + more + PREALLOC_MARGIN_BYTES;
        if needed > self.allocated {
            let allocated = needed.next_multiple_of(self.prealloc_bytes);
            // The handle's position stays where the writes are: only the size changes.
            self.writer.get_ref().set_len(allocated)?;
            self.allocated = allocated;
        }
        assert!(self.allocated >= needed, "the file is sized ahead of the writes");
        Ok(())
    }

    /// `create`, then makes the header, the preallocated size and the directory entry durable
    /// (with `force_sync`): a file made ahead of the roll into it, off the log thread
    /// (`Storage::roll_soon`), so that the roll costs the log thread no file creation, no
    /// preallocation and no directory fsync.
    pub fn create_synced(
        fs: &dyn Fs,
        dir: &Path,
        first_zxid: i64,
        force_sync: bool,
        prealloc_bytes: u64,
    ) -> io::Result<ActiveLog> {
        let mut log = ActiveLog::create(fs, dir, first_zxid, prealloc_bytes)?;
        log.sync(fs, force_sync)?;
        assert!(!log.dirty && !log.dir_sync_pending, "the header and the entry are synced");
        assert_eq!(log.synced_len, LOG_HEADER_LEN as u64, "a header and no record");
        Ok(log)
    }

    /// Buffers one record.
    pub fn append(&mut self, zxid: i64, payload: &[u8]) -> io::Result<()> {
        self.scratch.clear();
        encode_record(zxid, payload, &mut self.scratch);
        self.grow_for(self.scratch.len() as u64)?;
        self.dirty = true;
        self.writer.write_all(&self.scratch)?;
        self.len += self.scratch.len() as u64;
        Ok(())
    }

    /// Whether anything was written since the last `sync`.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Hands buffered bytes to the OS and, with `force_sync`, waits until they are on disk
    /// (fdatasync, plus an fsync of the directory the first time). Returns whether it fsynced.
    /// An error of the fsyncs is returned as `FsyncFailed` (kind `Other`), whatever its errno:
    /// only a failed *write* may be retried (see `is_disk_full`).
    pub fn sync(&mut self, fs: &dyn Fs, force_sync: bool) -> io::Result<bool> {
        if !self.dirty {
            return Ok(false);
        }
        self.writer.flush()?;
        if force_sync {
            self.writer.get_ref().sync_data().map_err(FsyncFailed::wrap)?;
            if self.dir_sync_pending {
                let dir = self.path.parent().expect("a log file lives in a directory");
                fs.sync_dir(dir).map_err(FsyncFailed::wrap)?;
            }
        }
        self.dir_sync_pending = false;
        self.dirty = false;
        self.synced_len = self.len;
        Ok(force_sync)
    }

    /// Takes the file apart without writing what is still buffered (dropping the `BufWriter`
    /// would write it): the handle, and the length at the last successful `sync` (0: never).
    pub fn into_unsynced_parts(self) -> (Box<dyn FsFile>, u64) {
        let (file, _unwritten) = self.writer.into_parts();
        assert!(self.synced_len <= self.len, "synced bytes were appended first");
        assert!(self.synced_len == 0 || self.synced_len >= LOG_HEADER_LEN as u64);
        (file, self.synced_len)
    }
}

/// A failed fsync (of a log file or its directory). After one the file's contents are unknown
/// (fsyncgate: Linux may have dropped the dirty pages and marked them clean), so it is never
/// retried, even when its errno is ENOSPC.
#[derive(Debug)]
pub struct FsyncFailed(pub io::Error);

impl FsyncFailed {
    pub(crate) fn wrap(error: io::Error) -> io::Error {
        io::Error::other(FsyncFailed(error))
    }
}

impl std::fmt::Display for FsyncFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fsync failed: {}", self.0)
    }
}

impl std::error::Error for FsyncFailed {}

/// Whether `error` says the disk (or the user's quota) is full. Only a write's error can say
/// so: `ActiveLog::sync` wraps an fsync's error, which then never matches.
pub fn is_disk_full(error: &io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    matches!(error.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
        || matches!(error.raw_os_error(), Some(ENOSPC | EDQUOT))
}
