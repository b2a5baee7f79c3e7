//! `zkr-dump` (server/src/bin/zkr-dump.rs) over data directories written by the storage module's
//! own writer: what it prints for the txns and znodes made, what it says and which exit code it
//! gives for each kind of damage (naming the file and offset), that `dir`'s verdict is the one
//! the real recovery reaches, and that nothing in the directory changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use zkr_core::proto::error::ZkError;
use zkr_core::proto::txn::encode_txn;
use zkr_core::tree::DataTree;
use zkr_core::txn::{CreateKind, LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, SessionId, Zxid};
use zkr_server::fs::OsFs;
use zkr_server::storage::{self, DryRunAction, Storage, log};

mod common;
use common::TempDir;

const SESSION: i64 = 0x1000_0abc_0000;
/// 2026-12-06T00:00:00.000Z.
const T0: i64 = 1_796_515_200_000;

fn txn(zxid: i64, cxid: i32, txn: Txn) -> LoggedTxn {
    let header = TxnHeader { session_id: SessionId(SESSION), cxid, zxid: Zxid(zxid), time_ms: T0 };
    LoggedTxn { header, txn }
}

fn create(path: &str, data: &[u8], kind: CreateKind, parent_cversion: i32) -> Txn {
    let (path, data, acl) = (path.to_string(), Some(data.to_vec()), Acl::open_unsafe());
    Txn::Create { path, data, acl, kind, parent_cversion }
}

/// The history both the log and the snapshot tests use: epoch 1, zxids 0x100000001 on.
fn history() -> Vec<LoggedTxn> {
    let z = |n: i64| (1 << 32) | n;
    let long = vec![b'x'; 100];
    vec![
        txn(z(1), 0, Txn::CreateSession { timeout_ms: 30_000 }),
        txn(z(2), 1, create("/app", b"hello\n", CreateKind::Persistent, 1)),
        txn(z(3), 2, create("/app/lock", b"", CreateKind::Ephemeral, 1)),
        txn(z(4), 3, Txn::SetData { path: "/app".into(), data: Some(long), version: 1 }),
        txn(
            z(5),
            4,
            Txn::Multi(vec![
                create("/app/m", b"m", CreateKind::Persistent, 2),
                Txn::SetData { path: "/app/m".into(), data: None, version: 1 },
            ]),
        ),
        txn(z(6), 5, Txn::Error { err: ZkError::NoNode }),
        txn(z(7), 6, Txn::Delete { path: "/app/m".into() }),
    ]
}

/// `Storage::open`, waiting out a lock held for a moment by a child process of another test:
/// a `zkr-dump` forked while a `Storage` here had its lock file open shares the lock until it
/// execs (the descriptor is close-on-exec), so an open right after a drop may find it held.
fn open_storage(dir: &Path) -> Result<(Storage, storage::Recovered), storage::StorageError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Storage::open(Arc::new(OsFs), dir, dir) {
            Err(storage::StorageError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            opened => return opened,
        }
    }
}

/// Writes `txns` through `Storage` (one log file), and a snapshot of them when `snapshot`.
fn write_dir(dir: &Path, txns: &[LoggedTxn], snapshot: bool) {
    let (mut storage, _) = open_storage(dir).unwrap();
    let mut tree = DataTree::new();
    for t in txns {
        storage.append(t.header.zxid.0, &encode_txn(t)).unwrap();
        tree.apply(t);
    }
    storage.sync().unwrap();
    if snapshot {
        let last = txns.last().unwrap().header.zxid.0;
        let blob = zkr_core::snapshot::encode(&tree, &[(SessionId(SESSION), 30_000)]);
        storage.save_snapshot(last, &blob).unwrap();
    }
}

fn version_dir(dir: &Path) -> PathBuf {
    dir.join(storage::VERSION_DIR)
}

/// Runs zkr-dump: (exit code, stdout, stderr).
fn dump(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zkr-dump")).args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!stderr.contains("panicked"), "zkr-dump {args:?} panicked:\n{stderr}");
    (out.status.code().expect("exited, not killed"), stdout, stderr)
}

fn path_arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every file under `dir` with its bytes, length and modification time.
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u64, std::time::SystemTime)> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(fingerprint(&path));
        } else {
            let meta = entry.metadata().unwrap();
            files.insert(
                path.clone(),
                (std::fs::read(&path).unwrap(), meta.len(), meta.modified().unwrap()),
            );
        }
    }
    files
}

/// The log's records end here (its tail is preallocated zeros).
fn records_end(path: &Path) -> usize {
    let (bytes, _) = zkr_server::fs::Fs::read_data(&OsFs, path).unwrap();
    log::scan(&bytes).valid_len
}

#[test]
fn log_prints_one_line_per_txn_with_its_content_and_where_the_log_ends() {
    let dir = TempDir::new("dump-log");
    write_dir(&dir.0, &history(), false);
    let file = version_dir(&dir.0).join("log.100000001");
    let (code, out, err) = dump(&["log", path_arg(&file)]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + 7 + 1, "{out}");
    let when = "2026-12-06T00:00:00.000Z session 0x10000abc0000";
    let expected = [
        format!("0x100000001 {when} cxid 0x0 createSession timeout=30000"),
        format!(
            "0x100000002 {when} cxid 0x1 create /app data=6:\"hello\\n\" acl=world:anyone:cdrwa \
             persistent parentCversion=1"
        ),
        format!(
            "0x100000003 {when} cxid 0x2 create /app/lock data=0:\"\" acl=world:anyone:cdrwa \
             ephemeral ephemeralOwner=0x10000abc0000 parentCversion=1"
        ),
        format!(
            "0x100000004 {when} cxid 0x3 setData /app data=100:\"{}\"... version=1",
            "x".repeat(32)
        ),
        format!(
            "0x100000005 {when} cxid 0x4 multi [create /app/m data=1:\"m\" acl=world:anyone:cdrwa \
             persistent parentCversion=2; setData /app/m data=null version=1]"
        ),
        format!("0x100000006 {when} cxid 0x5 error err=NoNode(-101)"),
        format!("0x100000007 {when} cxid 0x6 delete /app/m"),
    ];
    for (line, expected) in lines[1..8].iter().zip(&expected) {
        assert_eq!(line, expected);
    }
    let end = records_end(&file);
    assert!(
        lines[8].starts_with(&format!(
            "7 txns, zxid 0x100000001..0x100000007; the valid log ends at byte {end}"
        )),
        "{}",
        lines[8]
    );
    // -d shows the whole data.
    let (code, out, _) = dump(&["log", "-d", path_arg(&file)]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("data=100:\"{}\" version=1", "x".repeat(100))), "{out}");
}

#[test]
fn snap_prints_the_tree_the_sessions_and_their_ephemerals_as_text_and_json() {
    let dir = TempDir::new("dump-snap");
    write_dir(&dir.0, &history(), true);
    let file = version_dir(&dir.0).join("snapshot.100000007");
    let (code, out, err) = dump(&["snap", "-d", path_arg(&file)]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(
        out.starts_with(&format!(
            "{}: zkr snapshot, format 1, zxid 0x100000007, 6 znodes, 1 session, digest 0x",
            file.display()
        )),
        "{out}"
    );
    assert!(out.contains("\n  0x10000abc0000 timeout=30000 ephemerals=[/app/lock]\n"), "{out}");
    assert!(
        out.contains("\n  /app cZxid=0x100000002 ctime=2026-12-06T00:00:00.000Z mZxid=0x100000004"),
        "{out}"
    );
    assert!(out.contains("ephemeralOwner=0x10000abc0000 numChildren=0 dataLength=0"), "{out}");
    assert!(out.contains(&format!(
        "dataLength=100 acl=world:anyone:cdrwa data=\"{}\"\n",
        "x".repeat(100)
    )));
    assert!(!out.contains("/app/m "), "deleted: {out}");
    let (code, json, _) = dump(&["snap", "--json", path_arg(&file)]);
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["zxid"], "0x100000007");
    assert_eq!(value["znode_count"], 6);
    assert_eq!(value["sessions"][0]["ephemerals"][0], "/app/lock");
    let paths: Vec<&str> =
        value["znodes"].as_array().unwrap().iter().map(|n| n["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"/app") && paths.contains(&"/app/lock"), "{paths:?}");
}

/// Damage to one file: (what is done, exit code, words that must be in stderr, offset).
struct Case {
    name: &'static str,
    damage: fn(&mut Vec<u8>, usize),
    code: i32,
    says: &'static str,
    offset: fn(usize) -> usize,
}

/// Header of a log file whose version field is `version`, its crc recomputed.
fn log_header_with_version(bytes: &mut [u8], version: u32) {
    bytes[4..8].copy_from_slice(&version.to_le_bytes());
    let crc = crc32c_of(&bytes[0..16]);
    bytes[16..20].copy_from_slice(&crc.to_le_bytes());
}

/// crc32c (Castagnoli), bit by bit: the test does not trust the code under test for it.
fn crc32c_of(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn each_kind_of_log_damage_is_named_with_its_file_offset_and_exit_code() {
    let dir = TempDir::new("dump-log-damage");
    write_dir(&dir.0, &history(), false);
    let file = version_dir(&dir.0).join("log.100000001");
    let end = records_end(&file);
    let good = std::fs::read(&file).unwrap()[..end].to_vec();
    // The third record (zxid 0x100000003) starts here.
    let third = {
        let scan = log::scan(&good);
        scan.records[2].offset
    };
    let cases = [
        Case {
            name: "a flipped payload byte mid-log",
            damage: |b, third| b[third + 14] ^= 1,
            code: 1,
            says: "checksum mismatch in the record claiming zxid 0x100000003, yet a valid record \
                   follows",
            offset: |third| third,
        },
        Case {
            name: "a cut in the last record",
            damage: |b, _| b.truncate(b.len() - 5),
            code: 3,
            says: "torn last write (record length",
            offset: |_| 0,
        },
        Case {
            name: "a wrong magic",
            damage: |b, _| b[0] = b'X',
            code: 1,
            says: "bad magic: not a zkr txn log file",
            offset: |_| 0,
        },
        Case {
            name: "an unknown version",
            damage: |b, _| log_header_with_version(b, 2),
            code: 1,
            says: "unknown log format version 2",
            offset: |_| 0,
        },
        Case {
            name: "an empty file",
            damage: |b, _| b.clear(),
            code: 1,
            says: "empty file",
            offset: |_| 0,
        },
        Case {
            name: "a short header",
            damage: |b, _| b.truncate(7),
            code: 1,
            says: "shorter than a log header",
            offset: |_| 0,
        },
    ];
    let last_record = log::scan(&good).records.last().unwrap().offset;
    for case in &cases {
        let mut bytes = good.clone();
        (case.damage)(&mut bytes, third);
        std::fs::write(&file, &bytes).unwrap();
        let (code, out, err) = dump(&["log", path_arg(&file)]);
        let offset = if case.name == "a cut in the last record" {
            last_record
        } else {
            (case.offset)(third)
        };
        let at = format!("zkr-dump: {} at byte offset {offset}: ", file.display());
        assert_eq!(code, case.code, "{}: {err}{out}", case.name);
        assert!(err.contains(&at) && err.contains(case.says), "{}: {err}", case.name);
    }
    // A record whose checksum holds but whose payload is not a txn.
    std::fs::write(&file, &good).unwrap();
    let mut bytes = good.clone();
    log::encode_record((1 << 32) | 8, b"not a txn", &mut bytes);
    std::fs::write(&file, &bytes).unwrap();
    let (code, _, err) = dump(&["log", path_arg(&file)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "at byte offset {}: the record of zxid 0x100000008 does not decode as a txn",
            good.len()
        )),
        "{err}"
    );
}

#[test]
fn each_kind_of_snapshot_damage_is_named_and_recovery_skipping_it_is_exit_3() {
    let dir = TempDir::new("dump-snap-damage");
    write_dir(&dir.0, &history(), true);
    let file = version_dir(&dir.0).join("snapshot.100000007");
    let good = std::fs::read(&file).unwrap();
    let n = good.len();
    let cases: [(&str, Vec<u8>, usize, &str); 4] = [
        (
            "flipped",
            {
                let mut b = good.clone();
                b[60] ^= 1;
                b
            },
            n - 4,
            "checksum mismatch",
        ),
        ("truncated", good[..n - 9].to_vec(), n - 13, "checksum mismatch"),
        (
            "bad magic",
            {
                let mut b = good.clone();
                b[1] = b'Q';
                b
            },
            0,
            "bad magic",
        ),
        ("empty", Vec::new(), 0, "only 0 bytes, shorter than a snapshot header"),
    ];
    for (name, bytes, offset, says) in cases {
        std::fs::write(&file, &bytes).unwrap();
        let (code, _, err) = dump(&["snap", path_arg(&file)]);
        assert_eq!(code, 3, "{name}: {err}");
        let at = format!("zkr-dump: {} at byte offset {offset}: {says}", file.display());
        assert!(err.contains(&at) && err.contains("recovery skips this snapshot"), "{name}: {err}");
    }
}

/// `dir` on a copy, then the real recovery (`Storage::open`) on another copy: the dry run
/// names exactly the cuts and removals recovery makes, and recovers the same thing.
fn dry_run_matches_recovery(dir: &Path) -> (i32, String, String) {
    let before = fingerprint(dir);
    let (code, out, err) = dump(&["dir", path_arg(dir)]);
    assert_eq!(fingerprint(dir), before, "zkr-dump dir changed the directory");
    let (dry, actions) = storage::dry_run(dir, dir);
    assert_eq!(fingerprint(dir), before, "dry_run changed the directory");
    let real = open_storage(dir).map(|(_, recovered)| recovered);
    match (&dry, &real) {
        (Ok(dry), Ok(real)) => assert_eq!(dry, real),
        (Err(dry), Err(real)) => assert_eq!(dry.to_string(), real.to_string()),
        _ => panic!("dry run {dry:?}, real {real:?}"),
    }
    let after = fingerprint(dir);
    for action in &actions {
        match action {
            DryRunAction::Remove(path) => assert!(!after.contains_key(path), "{path:?}"),
            DryRunAction::Cut { path, len } => assert_eq!(after[path].1, *len, "{path:?}"),
        }
    }
    let changed =
        before.iter().filter(|(p, (bytes, ..))| after.get(*p).map(|a| &a.0) != Some(bytes));
    let removed_or_cut = |p: &PathBuf| {
        actions.iter().any(|a| match a {
            DryRunAction::Remove(q) | DryRunAction::Cut { path: q, .. } => q == p,
        })
    };
    for (path, _) in changed {
        // The lock file is the real open's own.
        assert!(removed_or_cut(path) || path.ends_with(storage::LOCK_FILE), "{path:?} changed");
    }
    (code, out, err)
}

#[test]
fn dir_reports_what_recovery_would_do_and_changes_nothing() {
    // Clean: snapshot at 0x100000007, then three more txns in a new log file.
    let fresh = || {
        let dir = TempDir::new("dump-dir");
        let mut txns = history();
        write_dir(&dir.0, &txns, true);
        let z = |n: i64| (1 << 32) | n;
        txns = vec![
            txn(z(8), 7, create("/b", b"1", CreateKind::Persistent, 2)),
            txn(z(9), 8, create("/c", b"2", CreateKind::Persistent, 3)),
            txn(z(10), 9, Txn::CloseSession { paths_to_delete: vec!["/app/lock".into()] }),
        ];
        let (mut storage, _) = open_storage(&dir.0).unwrap();
        for t in &txns {
            storage.append(t.header.zxid.0, &encode_txn(t)).unwrap();
        }
        storage.sync().unwrap();
        drop(storage);
        dir
    };
    let dir = fresh();
    let (code, out, err) = dry_run_matches_recovery(&dir.0);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(out.contains("  log.100000001: 7 txns, zxid 0x100000001..0x100000007"), "{out}");
    assert!(out.contains("  log.100000008: 3 txns, zxid 0x100000008..0x10000000a"), "{out}");
    assert!(out.contains("snapshot.100000007: zxid 0x100000007"), "{out}");
    assert!(out.contains("(zxid 0x100000007)\n    6 znodes, 1 session\n"), "{out}");
    assert!(out.contains("  replay 3 txns, zxid 0x100000008..0x10000000a\n"), "{out}");
    assert!(out.contains("verdict: nothing to repair"), "{out}");

    // A torn last write of the newest file: cut off, exit 3.
    let dir = fresh();
    let newest = newest_in(&dir.0);
    let end = records_end(&newest);
    let mut bytes = std::fs::read(&newest).unwrap()[..end].to_vec();
    bytes.truncate(end - 3);
    std::fs::write(&newest, &bytes).unwrap();
    let last = log::scan(&bytes).valid_len;
    let (code, out, err) = dry_run_matches_recovery(&dir.0);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains(&format!("  cut {} to {last} bytes", newest.display())), "{out}");
    assert!(
        err.contains(&format!("{} at byte offset {last}: torn last write", newest.display())),
        "{err}"
    );
    assert!(out.contains("  replay 2 txns, zxid 0x100000008..0x100000009\n"), "{out}");

    // A flipped byte in the middle of the newest file: refused, exit 1.
    let dir = fresh();
    let newest = newest_in(&dir.0);
    let (bytes, _) = zkr_server::fs::Fs::read_data(&OsFs, &newest).unwrap();
    let second = log::scan(&bytes).records[1].offset;
    let mut bytes = bytes;
    bytes[second + 20] ^= 0x40;
    std::fs::write(&newest, &bytes).unwrap();
    let (code, out, err) = dry_run_matches_recovery(&dir.0);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!("{} at byte offset {second}: checksum mismatch", newest.display())),
        "{err}"
    );
    assert!(out.contains("verdict: the server would refuse to start"), "{out}");

    // The snapshot damaged and the log it needs gone: a gap, refused.
    let dir = fresh();
    let snapshot = version_dir(&dir.0).join("snapshot.100000007");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&snapshot, &bytes).unwrap();
    let (code, _, err) = dry_run_matches_recovery(&dir.0);
    assert_eq!(code, 3, "the snapshot is skipped, the first log replayed: {err}");
    assert!(err.contains("checksum mismatch: recovery skips this snapshot"), "{err}");
    std::fs::remove_file(version_dir(&dir.0).join("log.100000001")).unwrap();
    let (code, _, err) = dry_run_matches_recovery(&dir.0);
    // Epoch 1 entered at counter 8: 0x100000001..7 are in no file, and recovery refuses.
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("zxid 0x100000008 does not follow 0x0"), "{err}");
    // Within an epoch recovery finds the gap itself.
    let dir = fresh();
    std::fs::remove_file(version_dir(&dir.0).join("snapshot.100000007")).unwrap();
    let log = version_dir(&dir.0).join("log.100000001");
    let (bytes, _) = zkr_server::fs::Fs::read_data(&OsFs, &log).unwrap();
    std::fs::write(&log, &bytes[..log::scan(&bytes).records[6].offset]).unwrap();
    let (code, _, err) = dry_run_matches_recovery(&dir.0);
    assert_eq!(code, 1, "{err}");
    let at = format!(
        "{} at byte offset 20: zxid 0x100000008 does not follow 0x100000006",
        newest_in(&dir.0).display()
    );
    assert!(err.contains(&at), "{err}");
}

fn newest_in(dir: &Path) -> PathBuf {
    version_dir(dir).join("log.100000008")
}

/// Any single flipped byte or cut of a log or snapshot file gives a verdict, never a panic (the
/// `dump` helper fails on "panicked"), and `dir` never changes the directory.
#[test]
fn no_damage_makes_it_panic_or_write() {
    let dir = TempDir::new("dump-fuzz");
    write_dir(&dir.0, &history(), true);
    let v = version_dir(&dir.0);
    let log_file = v.join("log.100000001");
    let snap_file = v.join("snapshot.100000007");
    let log_good = std::fs::read(&log_file).unwrap()[..records_end(&log_file)].to_vec();
    let snap_good = std::fs::read(&snap_file).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for round in 0..60 {
        let (file, good, kind) = if round % 2 == 0 {
            (&log_file, &log_good, "log")
        } else {
            (&snap_file, &snap_good, "snap")
        };
        let mut bytes = good.clone();
        if round % 3 == 0 {
            bytes.truncate(next(good.len()));
        } else {
            let at = next(good.len());
            bytes[at] ^= 1 << next(8);
        }
        std::fs::write(file, &bytes).unwrap();
        let (code, _, err) = dump(&[kind, path_arg(file)]);
        assert!([0, 1, 3].contains(&code), "round {round}: {code} {err}");
        if code != 0 {
            assert!(err.contains(&format!("zkr-dump: {}", file.display())), "round {round}: {err}");
        }
        let before = fingerprint(&dir.0);
        let (code, _, _) = dump(&["dir", path_arg(&dir.0)]);
        assert!([0, 1, 3].contains(&code), "round {round}: {code}");
        assert_eq!(fingerprint(&dir.0), before, "round {round}: dir changed the directory");
        std::fs::write(file, good).unwrap();
    }
}
