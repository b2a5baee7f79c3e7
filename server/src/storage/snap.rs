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

/// Writes `dir/snapshot.<hex zxid>` atomically (tmp file, fsync, rename, fsync of `dir`; the
/// fsyncs are skipped when `force_sync` is off). Returns the final path.
pub fn write_snapshot(
    fs: &dyn Fs,
    dir: &Path,
    zxid: i64,
    blob: &[u8],
    force_sync: bool,
) -> io::Result<PathBuf> {
    let path = dir.join(super::snapshot_file_name(zxid));
    let tmp = dir.join(format!("{}{TMP_SUFFIX}", super::snapshot_file_name(zxid)));
    let began = std::time::Instant::now();
    let file = fs.create(&tmp)?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let header = encode_header(zxid, blob.len());
    writer.write_all(&header)?;
    // A snapshot of a million znodes is ~200 MB. Synced once at the end, all of it is dirty at
    // once, and on ext4 (data=ordered) the txn log's next fsync waits for it: replies stalled
    // for 100+ ms (issue 16). Syncing every MiB keeps each of those waits short (4 MiB steps
    // still showed 50-200 ms log syncs while a snapshot was written).
    for chunk in blob.chunks(SYNC_EVERY_BYTES) {
        writer.write_all(chunk)?;
        if force_sync {
            writer.flush()?;
            writer.get_ref().sync_data()?;
        }
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header), blob);
    writer.write_all(&crc.to_le_bytes())?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    if force_sync {
        file.sync_all()?;
    }
    drop(file);
    fs.rename(&tmp, &path)?;
    if force_sync {
        fs.sync_dir(dir)?;
    }
    let write_ms = began.elapsed().as_millis();
    tracing::info!(zxid = %format!("{zxid:#x}"), bytes = blob.len(), write_ms, "snapshot written");
    Ok(path)
}

/// Checks a snapshot file's framing against the zxid in its name and returns the blob, or says
/// what is wrong in words for an operator.
pub fn decode_snapshot(mut bytes: Vec<u8>, name_zxid: i64) -> Result<Vec<u8>, String> {
    if bytes.len() < SNAP_HEADER_LEN + 4 {
        return Err(format!("only {} bytes, shorter than a snapshot header", bytes.len()));
    }
    if bytes[0..4] != SNAP_MAGIC {
        return Err("bad magic: not a zkr snapshot file".into());
    }
    let body_len = bytes.len() - 4;
    let stored_crc = u32::from_le_bytes(bytes[body_len..].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[..body_len]) != stored_crc {
        return Err("checksum mismatch".into());
    }
    let version = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if version != SNAP_FORMAT_VERSION {
        return Err(format!("unknown snapshot format version {version}"));
    }
    let zxid = i64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if zxid != name_zxid {
        return Err(format!("the header names zxid {zxid:#x}, not the one in the file name"));
    }
    let blob_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    if blob_len != (body_len - SNAP_HEADER_LEN) as u64 {
        return Err(format!(
            "the header says {blob_len} blob bytes but the file holds {}",
            body_len - SNAP_HEADER_LEN
        ));
    }
    bytes.truncate(body_len);
    bytes.drain(..SNAP_HEADER_LEN);
    Ok(bytes)
}

/// Reads and checks `path`. I/O errors and format errors both come back as text.
pub fn read_snapshot(fs: &dyn Fs, path: &Path, name_zxid: i64) -> Result<Vec<u8>, String> {
    let bytes = fs.read(path).map_err(|e| format!("cannot read: {e}"))?;
    decode_snapshot(bytes, name_zxid)
}
