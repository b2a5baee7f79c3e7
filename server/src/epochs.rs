//! `acceptedEpoch` and `currentEpoch`, the two small files Zab needs durable in the data
//! directory (ZooKeeper's names and format: the number in ASCII). Written atomically: a
//! temporary file, fsync, rename, fsync of the directory.

use std::io::Write;
use std::path::Path;

const ACCEPTED: &str = "acceptedEpoch";
const CURRENT: &str = "currentEpoch";

fn read_one(dir: &Path, name: &str) -> Result<u32, String> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{}: {:?} is not an epoch", path.display(), text.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Reads `(accepted_epoch, current_epoch)`; missing files are 0 (a fresh server).
pub fn read(dir: &Path) -> Result<(u32, u32), String> {
    Ok((read_one(dir, ACCEPTED)?, read_one(dir, CURRENT)?))
}

fn write_one(dir: &Path, name: &str, value: u32) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(value.to_string().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

/// Writes both epochs durably.
pub fn write(dir: &Path, accepted: u32, current: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    write_one(dir, ACCEPTED, accepted)?;
    write_one(dir, CURRENT, current)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_missing_is_zero() {
        let dir = std::env::temp_dir().join(format!("zkr-epochs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(super::read(&dir), Ok((0, 0)));
        super::write(&dir, 3, 2).unwrap();
        assert_eq!(super::read(&dir), Ok((3, 2)));
        std::fs::write(dir.join("currentEpoch"), "x").unwrap();
        assert!(super::read(&dir).is_err(), "garbage is an error, not 0");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
