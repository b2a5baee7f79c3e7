//! `jepsen ... | head` ends quietly: a reader that closes the pipe early does not make the
//! command panic.

use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_ends_the_output_without_a_panic() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jepsen"))
        .args(["generate", "--ops", "5000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jepsen runs");
    let mut first = [0u8; 64];
    child.stdout.take().expect("piped").read_exact(&mut first).expect("some output");
    // The read end is dropped here, as `head` closes it.
    let output = child.wait_with_output().expect("jepsen ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `jepsen bench` prints ops/s and memory per op, and with `--corrupt` it requires the read
/// it made wrong to be reported (it exits 1 if the checker missed it).
#[test]
fn bench_reports_rates_and_finds_the_invented_read() {
    let output = Command::new(env!("CARGO_BIN_EXE_jepsen"))
        .args(["bench", "--ops", "3000", "--paths", "10", "--sessions", "5", "--corrupt"])
        .output()
        .expect("jepsen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "exit {:?}: {stdout}", output.status);
    assert!(stdout.contains("ops/s") && stdout.contains("bytes/op"), "{stdout}");
    assert!(stdout.contains("Invalid") && stdout.contains("reported: "), "{stdout}");
}
