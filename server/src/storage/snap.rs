//! Snapshot files: an opaque blob from `zkr_core::snapshot::encode`, framed and checksummed.
//!
//! Layout of `snapshot.<hex zxid>` (integers little-endian):
//!
//! ```text
//! magic "ZKRS" | u32 format version (1) | i64 zxid | u64 blob length | blob
//!   | u32 crc32c(every byte before it)
//! ```
//!
//! Invariant: a file with a final name is complete. It is written as `snapshot.<hex>.tmp`,
//! fsynced, renamed, and then the directory is fsynced, so a crash leaves either no file, a `.tmp`
//! (removed at the next start), or the whole snapshot. A snapshot that fails its checks anyway (a
//! bad disk, a manual copy) is reported, and recovery falls back to an older one.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::pace::SnapshotPacer;
use crate::fs::Fs;

/// The four magic bytes at the start of every snapshot file.
pub const SNAP_MAGIC: [u8; 4] = *b"ZKRS";
/// The snapshot framing version this code writes and reads.
pub const SNAP_FORMAT_VERSION: u32 = 1;
/// Bytes before the blob.
pub const SNAP_HEADER_LEN: usize = 24;
/// Suffix of a snapshot being written.
pub const TMP_SUFFIX: &str = ".tmp";

fn encode_header(zxid: i64, blob_len: usize) -> [u8; SNAP_HEADER_LEN] {
    let mut header = [0u8; SNAP_HEADER_LEN];
    header[0..4].copy_from_slice(&SNAP_MAGIC);
    header[4..8].copy_from_slice(&SNAP_FORMAT_VERSION.to_le_bytes());
    header[8..16].copy_from_slice(&zxid.to_le_bytes());
    header[16..24].copy_from_slice(&(blob_len as u64).to_le_bytes());
    header
}

/// How much of a snapshot is written between two syncs (see `write_snapshot`).
const SYNC_EVERY_BYTES: usize = 1 << 20;

/// What a snapshot file holds: a blob, either whole or encoded while it is written.
pub trait SnapshotBlob: Send {
    /// Its exact length in bytes (the file's header says it before the blob).
    fn blob_len(&self) -> usize;
    /// Hands every byte of the blob to `sink`, in order, in pieces; stops at its first error.
    fn write_to(&self, sink: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()>;
}

impl SnapshotBlob for &[u8] {
    fn blob_len(&self) -> usize {
        self.len()
    }

    fn write_to(&self, sink: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        self.chunks(SYNC_EVERY_BYTES).try_for_each(sink)
    }
}

impl SnapshotBlob for Vec<u8> {
    fn blob_len(&self) -> usize {
        self.len()
    }

    fn write_to(&self, sink: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        self.as_slice().write_to(sink)
    }
}

/// A tree, encoded piece by piece as the file is written (issue 16: a million-znode snapshot is
/// ~200 MB; encoded whole first, the blob's allocation and release, on the snapshot thread at
/// nice 19, stalled the driver for 50-150 ms right after each snapshot was saved).
impl SnapshotBlob for zkr_core::snapshot::Snapshot {
    fn blob_len(&self) -> usize {
        zkr_core::snapshot::encoded_len(&self.tree, &self.sessions)
    }

    fn write_to(&self, sink: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        assert_eq!(self.tree.last_processed_zxid(), self.zxid, "a snapshot at its tree's zxid");
        zkr_core::snapshot::encode_in_pieces(&self.tree, &self.sessions, SYNC_EVERY_BYTES, sink)
            .map(drop)
    }
}

/// Writes `dir/snapshot.<hex zxid>` atomically (tmp file, fsync, rename, fsync of `dir`; the
/// fsyncs are skipped when `force_sync` is off). Returns the final path. A blob whose bytes do
/// not add up to its announced length is refused (an error, and no final file). After an
/// error the tmp file is removed (best effort): on a full disk its blocks are what the txn log
/// needs to go on.
pub fn write_snapshot(
    fs: &dyn Fs,
    dir: &Path,
    zxid: i64,
    blob: &dyn SnapshotBlob,
    force_sync: bool,
) -> io::Result<PathBuf> {
    write_snapshot_paced(fs, dir, zxid, blob, force_sync, None)
}

/// `write_snapshot`, idling after each synced chunk as `pacer` says (the snapshot thread's
/// writes; see `pace.rs`). Without `force_sync` nothing is synced and nothing is paced.
pub fn write_snapshot_paced(
    fs: &dyn Fs,
    dir: &Path,
    zxid: i64,
    blob: &dyn SnapshotBlob,
    force_sync: bool,
    pacer: Option<&mut SnapshotPacer>,
) -> io::Result<PathBuf> {
    let tmp = dir.join(format!("{}{TMP_SUFFIX}", super::snapshot_file_name(zxid)));
    let written = write_snapshot_via(fs, dir, &tmp, zxid, blob, force_sync, pacer);
    if written.is_err() {
        let _ = fs.remove_file(&tmp);
    }
    written
}

fn write_snapshot_via(
    fs: &dyn Fs,
    dir: &Path,
    tmp: &Path,
    zxid: i64,
    blob: &dyn SnapshotBlob,
    force_sync: bool,
    mut pacer: Option<&mut SnapshotPacer>,
) -> io::Result<PathBuf> {
    let path = dir.join(super::snapshot_file_name(zxid));
    let began = std::time::Instant::now();
    let file = fs.create(tmp)?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let len = blob.blob_len();
    let header = encode_header(zxid, len);
    writer.write_all(&header)?;
    // A snapshot of a million znodes is ~200 MB. Synced once at the end, all of it is dirty at
    // once, and on ext4 (data=ordered) the txn log's next fsync waits for it: replies stalled
    // for 100+ ms (issue 16). Syncing every MiB keeps each of those waits short (4 MiB steps
    // still showed 50-200 ms log syncs while a snapshot was written). Even so, written back
    // to back those syncs may keep the disk's queue full (run 5 saw log syncs of 55-206 ms):
    // with `zkr.snapshotPacing` the pacer idles between chunks (see `pace.rs`).
    let (mut crc, mut written, mut unsynced) = (crc32c::crc32c(&header), 0, 0);
    let mut chunk_began = std::time::Instant::now();
    blob.write_to(&mut |piece| {
        writer.write_all(piece)?;
        crc = crc32c::crc32c_append(crc, piece);
        written += piece.len();
        unsynced += piece.len();
        if force_sync && unsynced >= SYNC_EVERY_BYTES {
            writer.flush()?;
            writer.get_ref().sync_data()?;
            unsynced = 0;
            if let Some(pacer) = pacer.as_deref_mut() {
                pacer.after_chunk(chunk_began.elapsed());
                chunk_began = std::time::Instant::now();
            }
        }
        Ok(())
    })?;
    if written != len {
        let what = format!("snapshot {zxid:#x}: {written} bytes written, {len} announced");
        return Err(io::Error::new(io::ErrorKind::InvalidData, what));
    }
    writer.write_all(&crc.to_le_bytes())?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    if force_sync {
        file.sync_all()?;
    }
    drop(file);
    fs.rename(tmp, &path)?;
    if force_sync {
        fs.sync_dir(dir)?;
    }
    let write_ms = began.elapsed().as_millis();
    match pacer {
        Some(pacer) => tracing::info!(zxid = %format!("{zxid:#x}"), bytes = len, write_ms,
            idle_ms = pacer.idled.as_millis(), log_sync_max_us = pacer.log_sync_max_us,
            congested_chunks = pacer.congested_chunks, "snapshot written"),
        None => tracing::info!(zxid = %format!("{zxid:#x}"), bytes = len, write_ms,
            "snapshot written"),
    }
    Ok(path)
}

/// Checks a snapshot file's framing against the zxid in its name and returns the blob, or says
/// what is wrong in words for an operator.
pub fn decode_snapshot(bytes: Vec<u8>, name_zxid: i64) -> Result<Vec<u8>, String> {
    decode_snapshot_located(bytes, name_zxid).map_err(|(_, what)| what)
}

/// `decode_snapshot`, saying also at which byte offset of the file the check that failed looks:
/// the end for a short file, 0 for the magic, the stored crc for a mismatch, then the header's
/// version, zxid and blob length fields (`zkr-dump` names the offset).
pub fn decode_snapshot_located(
    mut bytes: Vec<u8>,
    name_zxid: i64,
) -> Result<Vec<u8>, (usize, String)> {
    if bytes.len() < SNAP_HEADER_LEN + 4 {
        return Err((
            bytes.len(),
            format!("only {} bytes, shorter than a snapshot header", bytes.len()),
        ));
    }
    if bytes[0..4] != SNAP_MAGIC {
        return Err((0, "bad magic: not a zkr snapshot file".into()));
    }
    let body_len = bytes.len() - 4;
    let stored_crc = u32::from_le_bytes(bytes[body_len..].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[..body_len]) != stored_crc {
        return Err((body_len, "checksum mismatch".into()));
    }
    let version = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if version != SNAP_FORMAT_VERSION {
        return Err((4, format!("unknown snapshot format version {version}")));
    }
    let zxid = i64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if zxid != name_zxid {
        return Err((8, format!("the header names zxid {zxid:#x}, not the one in the file name")));
    }
    let blob_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    if blob_len != (body_len - SNAP_HEADER_LEN) as u64 {
        return Err((
            16,
            format!(
                "the header says {blob_len} blob bytes but the file holds {}",
                body_len - SNAP_HEADER_LEN
            ),
        ));
    }
    bytes.truncate(body_len);
    bytes.drain(..SNAP_HEADER_LEN);
    Ok(bytes)
}

/// How much of a snapshot file is read at a time (`check_snapshot_file`, `read_blob_in_pieces`).
pub const READ_PIECE_BYTES: usize = 1 << 18;

/// `read_snapshot` without holding the file: checks its framing and crc32c reading it in
/// pieces, and returns the blob's length (issue 16: a 200 MB blob read whole and freed after
/// the decode stayed in the allocator's pages, and RSS after a restart was 1.5x that after the
/// load). The same checks and words as `decode_snapshot`.
pub fn check_snapshot_file(fs: &dyn Fs, path: &Path, name_zxid: i64) -> Result<usize, String> {
    check_in_pieces(fs, path, name_zxid, READ_PIECE_BYTES)
}

fn check_in_pieces(fs: &dyn Fs, path: &Path, zxid: i64, piece: usize) -> Result<usize, String> {
    let mut header = Vec::with_capacity(SNAP_HEADER_LEN);
    // The crc covers every byte but the last four, which hold it: the newest four wait here.
    let (mut crc, mut tail, mut len) = (0u32, Vec::with_capacity(8), 0usize);
    let read = fs.read_in_pieces(path, piece, &mut |piece| {
        len += piece.len();
        let wanted = SNAP_HEADER_LEN - header.len();
        header.extend_from_slice(&piece[..piece.len().min(wanted)]);
        if piece.len() >= 4 {
            crc = crc32c::crc32c_append(crc, &tail);
            crc = crc32c::crc32c_append(crc, &piece[..piece.len() - 4]);
            tail.clear();
            tail.extend_from_slice(&piece[piece.len() - 4..]);
        } else {
            tail.extend_from_slice(&piece);
            let over = tail.len().saturating_sub(4);
            crc = crc32c::crc32c_append(crc, &tail[..over]);
            tail.drain(..over);
        }
        Ok(())
    });
    read.map_err(|e| format!("cannot read: {e}"))?;
    if len < SNAP_HEADER_LEN + 4 {
        return Err(format!("only {len} bytes, shorter than a snapshot header"));
    }
    let stored_crc = u32::from_le_bytes(tail.as_slice().try_into().expect("4 bytes"));
    check_header(&header, zxid, len, crc == stored_crc)
}

/// `decode_snapshot`'s checks after the length, in its order: the blob's length, or what is
/// wrong. `crc_holds`: the file's crc32c matched.
fn check_header(
    header: &[u8],
    name_zxid: i64,
    len: usize,
    crc_holds: bool,
) -> Result<usize, String> {
    if header[0..4] != SNAP_MAGIC {
        return Err("bad magic: not a zkr snapshot file".into());
    }
    if !crc_holds {
        return Err("checksum mismatch".into());
    }
    let version = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    if version != SNAP_FORMAT_VERSION {
        return Err(format!("unknown snapshot format version {version}"));
    }
    let zxid = i64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if zxid != name_zxid {
        return Err(format!("the header names zxid {zxid:#x}, not the one in the file name"));
    }
    let blob_len = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
    let body_len = len - 4;
    if blob_len != (body_len - SNAP_HEADER_LEN) as u64 {
        return Err(format!(
            "the header says {blob_len} blob bytes but the file holds {}",
            body_len - SNAP_HEADER_LEN
        ));
    }
    Ok(blob_len as usize)
}

/// Hands the blob of a snapshot file that `check_snapshot_file` accepted with `blob_len` to
/// `sink`, in order, in pieces of at most `READ_PIECE_BYTES` (framing and crc dropped). A file
/// that changed since is caught by the blob's own checks (its FNV checksum and tree digest);
/// one that got shorter is an error here.
pub fn read_blob_in_pieces(
    fs: &dyn Fs,
    path: &Path,
    blob_len: usize,
    sink: &mut dyn FnMut(Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let (mut skip, mut left) = (SNAP_HEADER_LEN, blob_len);
    fs.read_in_pieces(path, READ_PIECE_BYTES, &mut |mut piece| {
        let skipped = skip.min(piece.len());
        skip -= skipped;
        if skipped > 0 {
            piece.drain(..skipped);
        }
        piece.truncate(left);
        left -= piece.len();
        match piece.is_empty() {
            true => Ok(()),
            false => sink(piece),
        }
    })?;
    match left {
        0 => Ok(()),
        left => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{} ended {left} bytes before its blob did", path.display()),
        )),
    }
}

/// Reads and checks `path`. I/O errors and format errors both come back as text.
pub fn read_snapshot(fs: &dyn Fs, path: &Path, name_zxid: i64) -> Result<Vec<u8>, String> {
    let bytes = fs.read(path).map_err(|e| format!("cannot read: {e}"))?;
    decode_snapshot(bytes, name_zxid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that announce a length of their own choosing.
    struct Announcing {
        bytes: Vec<u8>,
        announced: usize,
    }

    impl SnapshotBlob for Announcing {
        fn blob_len(&self) -> usize {
            self.announced
        }

        fn write_to(&self, sink: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
            self.bytes.as_slice().write_to(sink)
        }
    }

    /// A file checked in pieces of any size gets `read_snapshot`'s verdict, good or damaged
    /// (magic, a body byte, the crc, version, zxid, length, a short file), and its blob reads
    /// back in pieces.
    #[test]
    fn a_file_checked_in_pieces_gets_the_whole_reads_verdict() {
        let dir = std::env::temp_dir().join(format!("zkr-snap-pieces-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fs = crate::fs::OsFs;
        let blob: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let path = write_snapshot(&fs, &dir, 9, &blob.as_slice(), false).unwrap();
        let good = std::fs::read(&path).unwrap();
        let mut files = vec![good.clone(), good[..20].to_vec(), good[..good.len() - 1].to_vec()];
        for at in [0, 5, 9, 17, 100, good.len() - 2] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            files.push(bad);
        }
        for (i, file) in files.iter().enumerate() {
            std::fs::write(&path, file).unwrap();
            let whole = read_snapshot(&fs, &path, 9).map(|b| b.len());
            for piece in [1, 3, 4, 5, 24, 1000, 1 << 20] {
                assert_eq!(check_in_pieces(&fs, &path, 9, piece), whole, "file {i}, {piece}");
            }
            assert_eq!(whole.is_ok(), i == 0, "only the first file is good");
        }
        std::fs::write(&path, &good).unwrap();
        let mut read = Vec::new();
        read_blob_in_pieces(&fs, &path, blob.len(), &mut |p| {
            read.push(p);
            Ok(())
        })
        .unwrap();
        assert_eq!(read.concat(), blob);
        std::fs::write(&path, &good[..good.len() - 10]).unwrap();
        let short = read_blob_in_pieces(&fs, &path, blob.len(), &mut |_| Ok(()));
        assert_eq!(short.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A blob whose pieces do not add up to the length its header announced is refused and
    /// leaves no snapshot file; told the truth, the same bytes are written and read back. A
    /// tree encoded as it is written reads back as `encode`'s bytes.
    #[test]
    fn a_blob_is_written_only_when_its_length_holds() {
        let dir = std::env::temp_dir().join(format!("zkr-snap-len-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fs = crate::fs::OsFs;
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        for announced in [bytes.len() - 1, bytes.len() + 1] {
            let lying = Announcing { bytes: bytes.clone(), announced };
            let refused = write_snapshot(&fs, &dir, 5, &lying, true).unwrap_err();
            assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
            assert!(!dir.join(super::super::snapshot_file_name(5)).exists());
        }
        let honest = Announcing { announced: bytes.len(), bytes: bytes.clone() };
        let path = write_snapshot(&fs, &dir, 5, &honest, true).unwrap();
        assert_eq!(read_snapshot(&fs, &path, 5), Ok(bytes));
        let tree = zkr_core::tree::DataTree::new();
        let sessions = vec![(zkr_core::types::SessionId(9), 4000)];
        let encoded = zkr_core::snapshot::encode(&tree, &sessions);
        let zxid = tree.last_processed_zxid();
        let snap = zkr_core::snapshot::Snapshot { zxid, tree, sessions };
        let path = write_snapshot(&fs, &dir, zxid.0, &snap, false).unwrap();
        assert_eq!(read_snapshot(&fs, &path, zxid.0), Ok(encoded));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
