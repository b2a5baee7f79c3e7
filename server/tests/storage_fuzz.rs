//! Property tests: recovery never panics on damaged logs and never invents or reorders records.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;
use zkr_server::storage::{Storage, log_file_name};

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("zkr-fuzz-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("version-2")).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Records 1..=6 with varied payloads, and the file `Storage` writes for them.
fn original() -> (Vec<(i64, Vec<u8>)>, Vec<u8>) {
    let dir = TempDir::new();
    let records: Vec<(i64, Vec<u8>)> =
        (1..=6).map(|z| (z, vec![z as u8; (z as usize * 13) % 40])).collect();
    {
        let (mut storage, _) =
            Storage::open(std::sync::Arc::new(zkr_server::fs::OsFs), &dir.0, &dir.0).unwrap();
        for (zxid, payload) in &records {
            storage.append(*zxid, payload).unwrap();
        }
        storage.sync().unwrap();
    }
    let bytes = std::fs::read(dir.0.join("version-2").join(log_file_name(1))).unwrap();
    (records, bytes)
}

fn recover(bytes: &[u8]) -> Result<Vec<(i64, Vec<u8>)>, String> {
    let dir = TempDir::new();
    std::fs::write(dir.0.join("version-2").join(log_file_name(1)), bytes).unwrap();
    match Storage::open(std::sync::Arc::new(zkr_server::fs::OsFs), &dir.0, &dir.0) {
        Ok((_, recovered)) => Ok(recovered.txns),
        Err(e) => Err(e.to_string()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A cut anywhere plus a garbage tail recovers exactly the records whose bytes are all still
    /// there: those before the cut, and the one the cut went through if the garbage happens to
    /// restore its missing bytes (a one-byte cut of its crc and the same byte as garbage).
    #[test]
    fn cut_and_garbage_tail(
        cut_fraction in 0.0f64..=1.0,
        garbage in prop::collection::vec(any::<u8>(), 0..48),
    ) {
        let (records, bytes) = original();
        let header = zkr_server::storage::log::LOG_HEADER_LEN;
        let cut = header + ((bytes.len() - header) as f64 * cut_fraction) as usize;
        let mut damaged = bytes[..cut].to_vec();
        damaged.extend_from_slice(&garbage);
        let txns = recover(&damaged).map_err(TestCaseError::fail)?;
        let mut end = header;
        let whole: Vec<_> = records
            .iter()
            .take_while(|(_, payload)| {
                end += 16 + payload.len();
                end <= damaged.len() && damaged[..end] == bytes[..end]
            })
            .cloned()
            .collect();
        prop_assert_eq!(txns, whole);
    }

    /// Flipped bytes anywhere: no panic, and any recovery is a prefix of the original records.
    #[test]
    fn flipped_bytes(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let (records, mut bytes) = original();
        for (index, mask) in flips {
            let at = index.index(bytes.len());
            bytes[at] ^= mask;
        }
        if let Ok(txns) = recover(&bytes) {
            prop_assert!(txns.len() <= records.len());
            prop_assert_eq!(&records[..txns.len()], &txns[..]);
        }
    }
}
