//! Recovery of zkr's own data directory (zkr target only; Apache's formats differ):
//! - snapshots taken in the background during a write load, then `kill -9`: the restart
//!   recovers from the newest snapshot plus the log, and every acknowledged write is there;
//! - a torn last log record (garbage written after the last record, in the preallocated tail,
//!   after a clean stop) is cut off with a warning;
//! - a corrupt record in the middle of the log refuses to start, naming the file and offset.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use zkr_tests::client::PERSISTENT;
use zkr_tests::server::ServerOptions;
use zkr_tests::{TestServer, connect, op};

fn version_dir(server: &TestServer) -> PathBuf {
    server.dir().join("data").join("version-2")
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("version-2 exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .filter(|p| !p.to_string_lossy().ends_with(".tmp"))
        .collect();
    out.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        i64::from_str_radix(name.rsplit('.').next().unwrap(), 16).unwrap_or(0)
    });
    out
}

/// Where the records of a txn log file end: the file is preallocated (`preAllocSize`), so its
/// length says nothing about them. Walks the format (20-byte header; each record a u32 payload
/// length, an i64 zxid, the payload and a u32 crc) up to the first empty frame.
fn records_end(bytes: &[u8]) -> usize {
    let mut at = 20;
    while at + 12 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let zxid = i64::from_le_bytes(bytes[at + 4..at + 12].try_into().unwrap());
        if len == 0 && zxid == 0 {
            break;
        }
        at += 16 + len;
    }
    assert!(at <= bytes.len(), "the records end inside the file");
    at
}

fn zkr_only() -> bool {
    let apache = zkr_tests::server::Target::from_env().is_apache();
    if apache {
        eprintln!("recovery tests exercise zkr's own file formats; skipped for apache");
    }
    !apache
}

async fn create_many(server: &TestServer, prefix: &str, n: usize) -> Vec<String> {
    let zk = connect(server).await;
    let mut paths = Vec::new();
    for i in 0..n {
        let path = format!("{prefix}-{i:05}");
        op("create", zk.create(&path, path.as_bytes(), &PERSISTENT)).await;
        paths.push(path);
    }
    paths
}

async fn assert_present(server: &TestServer, paths: &[String]) {
    let zk = connect(server).await;
    for path in paths {
        let (data, _) = op("get", zk.get_data(path)).await;
        assert_eq!(data, path.as_bytes(), "{path} recovered with its data");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_during_load_then_kill_9_recover_everything() {
    if !zkr_only() {
        return;
    }
    let mut server = TestServer::start_with(ServerOptions::new().set("snapCount", "50"));
    let mut paths = create_many(&server, "/snap", 400).await;
    // A snapshot starts every 25 to 50 txns, but not while the last one is still being written,
    // which on a loaded machine took over 200 txns (2 snapshots in 400 creates, once in 13
    // runs): the load goes on until 3 are on disk, a bounded number of creates more.
    for batch in 0.. {
        let snapshots = files(&version_dir(&server), "snapshot.");
        if snapshots.len() >= 3 {
            break;
        }
        assert!(batch < 20, "3 snapshots taken during {} creates: {snapshots:?}", paths.len());
        paths.extend(create_many(&server, &format!("/snap{batch}"), 100).await);
    }
    server.kill9();
    server.start_again();
    assert_present(&server, &paths).await;
    let more = create_many(&server, "/after", 20).await;
    assert_present(&server, &more).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_log_tail_is_cut_off_with_a_warning() {
    if !zkr_only() {
        return;
    }
    let mut server = TestServer::start();
    let paths = create_many(&server, "/torn", 50).await;
    server.stop_keep();
    let log = files(&version_dir(&server), "log.").pop().expect("a log file");
    let end = records_end(&std::fs::read(&log).unwrap());
    let mut file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    file.seek(SeekFrom::Start(end as u64)).unwrap();
    // After the last record, a record header promising 200 bytes, then only a few: a write
    // torn by a crash.
    file.write_all(&200u32.to_le_bytes()).unwrap();
    file.write_all(&[0xab; 11]).unwrap();
    drop(file);
    server.start_again();
    assert_present(&server, &paths).await;
    let log_text = server.log_tail(200);
    assert!(
        log_text.to_lowercase().contains("torn") || log_text.to_lowercase().contains("truncat"),
        "the cut is logged for the operator:\n{log_text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_record_mid_log_refuses_to_start() {
    if !zkr_only() {
        return;
    }
    let mut server = TestServer::start();
    create_many(&server, "/bad", 50).await;
    server.stop_keep();
    let log = files(&version_dir(&server), "log.").into_iter().next().expect("a log file");
    let mut bytes = std::fs::read(&log).unwrap();
    // In the middle of the records, not of the file: its preallocated tail is zeros.
    let middle = records_end(&bytes) / 2;
    assert!(middle > 20, "inside the records, past the header");
    bytes[middle] ^= 0x5a;
    std::fs::write(&log, &bytes).unwrap();
    let (status, text) = server.start_expecting_exit(Duration::from_secs(30));
    assert!(!status.success(), "a corrupt log must not start: {status}\n{text}");
    let name = log.file_name().unwrap().to_string_lossy().to_string();
    assert!(text.contains(&name), "the error names the file {name}:\n{text}");
    assert!(text.to_lowercase().contains("offset"), "and the offset:\n{text}");
}
