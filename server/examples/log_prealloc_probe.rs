//! Probe for issue 14: what one fdatasync of a txn-log batch costs when the write appends and
//! grows the file, against writes into a file sized ahead (sparse `set_len`, `fallocate`, or
//! zero-written). Each round writes 8 records of 150 bytes and fdatasyncs, as the log thread
//! does for 1 session x 8 in flight. Prints p50/p99 per sync in microseconds; the methods run
//! interleaved (one round each in turn) so that a change of load hits all of them alike.
//!
//! `cargo run --release -p zkr-server --example log_prealloc_probe -- [DIR] [ROUNDS]`
//! (DIR defaults to the system temp dir, which must be on the disk being measured).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes each file is sized ahead by: enough for every round, as a 64 MB `preAllocSize` is.
const AHEAD_BYTES: u64 = 64 << 20;
const RECORDS_PER_ROUND: usize = 8;
const RECORD_BYTES: usize = 150;

/// How a file is made before the rounds write into it.
#[derive(Clone, Copy, Debug)]
enum Method {
    Append,
    SetLen,
    Fallocate,
    ZeroWritten,
}

fn make(path: &Path, method: Method) -> File {
    let file =
        OpenOptions::new().create(true).truncate(true).write(true).open(path).expect("create");
    match method {
        Method::Append => {}
        Method::SetLen => file.set_len(AHEAD_BYTES).expect("set_len"),
        Method::Fallocate => {
            let flags = rustix::fs::FallocateFlags::empty();
            rustix::fs::fallocate(&file, flags, 0, AHEAD_BYTES).expect("fallocate");
        }
        Method::ZeroWritten => {
            let zeros = vec![0u8; 1 << 20];
            let mut writer = &file;
            for _ in 0..AHEAD_BYTES >> 20 {
                writer.write_all(&zeros).expect("zeros");
            }
            rustix::fs::seek(&file, rustix::fs::SeekFrom::Start(0)).expect("rewind");
        }
    }
    // The size change (and the zeros) are durable before the timed rounds, as a preallocation
    // made once per 64 MB is.
    file.sync_all().expect("sync the preallocation");
    file
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let rounds: usize = args.next().map_or(2000, |r| r.parse().expect("ROUNDS"));
    let dir = dir.join(format!("zkr-prealloc-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let methods = [Method::Append, Method::SetLen, Method::Fallocate, Method::ZeroWritten];
    let mut files: Vec<File> =
        methods.iter().map(|m| make(&dir.join(format!("{m:?}")), *m)).collect();
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); methods.len()];
    let batch = vec![0x5au8; RECORDS_PER_ROUND * RECORD_BYTES];
    for _ in 0..rounds {
        for (file, times) in files.iter_mut().zip(times.iter_mut()) {
            for record in batch.chunks(RECORD_BYTES) {
                file.write_all(record).expect("write");
            }
            let began = Instant::now();
            file.sync_data().expect("fdatasync");
            times.push(began.elapsed());
        }
    }
    println!("{rounds} rounds of {RECORDS_PER_ROUND} x {RECORD_BYTES} B + fdatasync, per sync:");
    for (method, times) in methods.iter().zip(times.iter_mut()) {
        times.sort();
        let (p50, p99) = (percentile(times, 0.5), percentile(times, 0.99));
        println!("  {:<12} p50 {p50:7.1} us  p99 {p99:7.1} us", format!("{method:?}"));
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}
