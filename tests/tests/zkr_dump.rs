//! `zkr-dump` (server/src/bin/zkr-dump.rs) on the data directory of a real zkr-server process
//! (zkr target only: Apache's file formats differ):
//! - after a few writes and a clean stop, `dir` and `log` name the txns and znodes made, and
//!   report nothing to repair;
//! - a torn tail: `dir` says recovery cuts it at offset X (exit 3), and the real server then
//!   starts, cutting there;
//! - a flipped byte mid-log: `dir` names the file and offset (exit 1), and the real server
//!   refuses to start, naming the same offset.
//!
//! The server is started on loopback and stopped by its pid (`TestServer`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use zkr_tests::client::{EPHEMERAL, PERSISTENT};
use zkr_tests::server::zkr_bin;
use zkr_tests::tools::run_bounded;
use zkr_tests::{TestServer, connect, op};

const DUMP_TIMEOUT: Duration = Duration::from_secs(60);

/// zkr-dump, next to the server binary (`cargo build -p zkr-server` builds both).
fn zkr_dump_bin() -> PathBuf {
    let bin = zkr_bin().with_file_name("zkr-dump");
    assert!(
        bin.is_file(),
        "{} not found: build it with `cargo build -p zkr-server`",
        bin.display()
    );
    bin
}

/// Runs zkr-dump: (exit code, stdout, stderr).
fn dump(args: &[&str]) -> (i32, String, String) {
    let out = run_bounded(Command::new(zkr_dump_bin()).args(args), "", DUMP_TIMEOUT);
    let code = out.status.and_then(|s| s.code()).expect("zkr-dump exited");
    assert!(!out.stderr.contains("panicked"), "zkr-dump {args:?} panicked:\n{}", out.stderr);
    (code, out.stdout, out.stderr)
}

fn zkr_only() -> bool {
    let apache = zkr_tests::server::Target::from_env().is_apache();
    if apache {
        eprintln!("zkr-dump reads zkr's own file formats; skipped for apache");
    }
    !apache
}

fn data_dir(server: &TestServer) -> PathBuf {
    server.dir().join("data")
}

/// The log files, oldest first.
fn logs(server: &TestServer) -> Vec<PathBuf> {
    let dir = data_dir(server).join("version-2");
    let mut logs: Vec<(i64, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let zxid = i64::from_str_radix(name.strip_prefix("log.")?, 16).ok()?;
            Some((zxid, e.path()))
        })
        .collect();
    logs.sort();
    logs.into_iter().map(|(_, p)| p).collect()
}

/// The offset of each record of a log file and where they end, walked by the format (20-byte
/// header; each record a u32 length, an i64 zxid, the payload, a u32 crc) up to the zeros of
/// the preallocated tail: a second reading, independent of the code under test.
fn record_offsets(path: &Path) -> (Vec<usize>, usize) {
    let bytes = std::fs::read(path).unwrap();
    let (mut at, mut offsets) = (20, Vec::new());
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let zxid = i64::from_le_bytes(bytes[at + 4..at + 12].try_into().unwrap());
        if len == 0 && zxid == 0 {
            break;
        }
        offsets.push(at);
        at += 16 + len;
    }
    (offsets, at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_names_what_a_real_server_wrote_and_gives_recoverys_verdict_on_damage() {
    if !zkr_only() {
        return;
    }
    let mut server = TestServer::start();
    {
        let zk = connect(&server).await;
        op("create /dump-a", zk.create("/dump-a", b"hello", &PERSISTENT)).await;
        op("create /dump-a/e", zk.create("/dump-a/e", b"eph", &EPHEMERAL)).await;
        op("set /dump-a", zk.set_data("/dump-a", b"world", None)).await;
        op("create /dump-b", zk.create("/dump-b", b"", &PERSISTENT)).await;
    }
    // Let the session's close be logged before the stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.stop_keep();
    let data = data_dir(&server);
    let data_arg = data.to_str().unwrap();

    let (code, out, err) = dump(&["dir", data_arg]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(out.contains("verdict: nothing to repair"), "{out}");
    let log = logs(&server).pop().expect("a log file");
    let (code, out, err) = dump(&["log", log.to_str().unwrap()]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    for expected in [
        " createSession timeout=",
        " create /dump-a data=5:\"hello\" acl=world:anyone:cdrwa persistent",
        " create /dump-a/e data=3:\"eph\" acl=world:anyone:cdrwa ephemeral ephemeralOwner=0x",
        " setData /dump-a data=5:\"world\" version=1",
        " create /dump-b data=0:\"\"",
        " closeSession ephemerals=[/dump-a/e]",
    ] {
        assert!(out.contains(expected), "{expected:?} in:\n{out}");
    }

    // A torn last write after the last record: recovery cuts it; the server starts.
    let (offsets, end) = record_offsets(&log);
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[end..end + 4].copy_from_slice(&200u32.to_le_bytes());
    bytes[end + 4..end + 15].copy_from_slice(&[0xab; 11]);
    std::fs::write(&log, &bytes).unwrap();
    let (code, out, err) = dump(&["dir", data_arg]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains(&format!("  cut {} to {end} bytes", log.display())), "{out}");
    let at = format!("zkr-dump: {} at byte offset {end}: torn last write", log.display());
    assert!(err.contains(&at), "{err}");
    server.start_again();
    let server_log = zkr_tests::server::strip_ansi(&server.log_tail(400));
    assert!(server_log.contains("cutting a torn last write"), "{server_log}");
    assert!(server_log.contains(&format!("offset={end}")), "the same offset:\n{server_log}");
    server.stop_keep();

    // A flipped byte in the second record: corruption; the server refuses at that offset.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[offsets[1] + 20] ^= 0x10;
    std::fs::write(&log, &bytes).unwrap();
    let (code, out, err) = dump(&["dir", data_arg]);
    assert_eq!(code, 1, "{out}{err}");
    let at =
        format!("zkr-dump: {} at byte offset {}: checksum mismatch", log.display(), offsets[1]);
    assert!(err.contains(&at), "{err}");
    let (status, text) = server.start_expecting_exit(Duration::from_secs(60));
    assert!(!status.success(), "{text}");
    let refused = format!("txn log {} is corrupt at byte offset {}", log.display(), offsets[1]);
    assert!(text.contains(&refused), "the server names the same offset:\n{text}");
}
