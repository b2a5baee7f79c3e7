//! `acceptedEpoch` and `currentEpoch`, the two small files Zab needs durable in the data
//! directory (ZooKeeper's names and format: the number in ASCII). Written atomically: a
//! temporary file, fsync, rename, fsync of the directory. So a crash at any point leaves each
//! file with its old or its new value, and both are durable once `write` returns.
//!
//! A full disk (ENOSPC, EDQUOT) can only fail the temporary file's create, write or fsync, or
//! the rename, and each leaves the named files as they were: the temporary file is then
//! removed (giving its blocks back) and the error returned as is, so the caller may try the
//! whole write again later (the log thread does, see `storage/thread.rs`). The directory's
//! fsync comes after the renames: its error, whatever its errno, is wrapped in `FsyncFailed`,
//! which never reads as a full disk, since after a failed fsync a rename may be lost even if
//! a later fsync succeeds (fsyncgate).

use std::io::Write;
use std::path::Path;

use crate::bugs::ShellBugs;
use crate::fs::Fs;

const ACCEPTED: &str = "acceptedEpoch";
const CURRENT: &str = "currentEpoch";

fn read_one(fs: &dyn Fs, dir: &Path, name: &str) -> Result<u32, String> {
    let path = dir.join(name);
    match crate::fs::read_to_string(fs, &path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{}: {:?} is not an epoch", path.display(), text.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Reads `(accepted_epoch, current_epoch)`; missing files are 0 (a fresh server).
pub fn read(fs: &dyn Fs, dir: &Path) -> Result<(u32, u32), String> {
    Ok((read_one(fs, dir, ACCEPTED)?, read_one(fs, dir, CURRENT)?))
}

fn write_one(fs: &dyn Fs, dir: &Path, name: &str, value: u32) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let written = (|| {
        let mut file = fs.create(&tmp)?;
        file.write_all(value.to_string().as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs.rename(&tmp, &dir.join(name))
    })();
    if written.is_err() {
        // Only the temporary file was touched (a failed rename changes neither name).
        let _ = fs.remove_file(&tmp);
    }
    written
}

/// Writes both epochs durably.
pub fn write(fs: &dyn Fs, dir: &Path, accepted: u32, current: u32) -> std::io::Result<()> {
    write_with(fs, dir, accepted, current, ShellBugs::default())
}

/// `write`, with the deliberate shell bugs of `bugs` (tests only; a build without the `bugs`
/// feature refuses any, with an error of kind `Unsupported`).
pub fn write_with(
    fs: &dyn Fs,
    dir: &Path,
    accepted: u32,
    current: u32,
    bugs: ShellBugs,
) -> std::io::Result<()> {
    bugs.validate().map_err(|e| std::io::Error::new(std::io::ErrorKind::Unsupported, e))?;
    fs.create_dir_all(dir)?;
    if bugs.epoch_in_place_no_fsync() {
        // The deliberate bug: ZOOKEEPER-1653's class, a rewrite in place that is not durable
        // and can be torn (empty file) by a crash.
        for (name, value) in [(ACCEPTED, accepted), (CURRENT, current)] {
            fs.create(&dir.join(name))?.write_all(value.to_string().as_bytes())?;
        }
        return Ok(());
    }
    write_one(fs, dir, ACCEPTED, accepted)?;
    write_one(fs, dir, CURRENT, current)?;
    fs.sync_dir(dir).map_err(crate::storage::log::FsyncFailed::wrap)
}

#[cfg(test)]
mod tests {
    use crate::fs::OsFs;

    #[test]
    fn round_trip_and_missing_is_zero() {
        let dir = std::env::temp_dir().join(format!("zkr-epochs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(super::read(&OsFs, &dir), Ok((0, 0)));
        super::write(&OsFs, &dir, 3, 2).unwrap();
        assert_eq!(super::read(&OsFs, &dir), Ok((3, 2)));
        std::fs::write(dir.join("currentEpoch"), "x").unwrap();
        assert!(super::read(&OsFs, &dir).is_err(), "garbage is an error, not 0");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
