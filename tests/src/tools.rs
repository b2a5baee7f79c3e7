//! External tools some tests drive: kazoo (a Python venv made by `tests/setup.sh`) and Apache's
//! `zkCli.sh` (Debian package `zookeeper`).
//!
//! The skip-or-fail rule: a test whose tool is missing is skipped with a printed note on a
//! developer machine, but FAILS when `CI=true` (CI must have run `tests/setup.sh`).
//! Child processes run in their own process group with a hard deadline; on timeout the whole
//! group (ours only) is killed, so a hung JVM cannot hang the suite.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// True when running in CI (`CI=true` or `CI=1`).
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// `found`, or: in CI a panic naming the missing tool; elsewhere a printed skip note and None.
pub fn require<T>(what: &str, found: Option<T>) -> Option<T> {
    if found.is_some() {
        return found;
    }
    if in_ci() {
        panic!("{what} is missing and CI=true: run tests/setup.sh before the suite");
    }
    eprintln!("SKIPPED: {what} is missing (run tests/setup.sh to install it)");
    None
}

/// The directory of this crate (`<workspace>/tests`).
pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The venv python that has kazoo and pytest (`tests/.venv/bin/python`), if it is usable.
pub fn venv_python() -> Option<PathBuf> {
    let python = crate_dir().join(".venv/bin/python");
    if !python.is_file() {
        return None;
    }
    let probe = Command::new(&python)
        .args(["-c", "import kazoo, pytest"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    matches!(probe, Ok(s) if s.success()).then_some(python)
}

/// Apache's `zkCli.sh` (`ZKCLI` overrides; Debian ships it in /usr/share/zookeeper/bin).
pub fn zkcli() -> Option<PathBuf> {
    let path = match std::env::var("ZKCLI") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from("/usr/share/zookeeper/bin/zkCli.sh"),
    };
    path.is_file().then_some(path)
}

/// What a bounded child run produced.
#[derive(Debug)]
pub struct RunOutput {
    /// Exit status; None when the deadline killed it.
    pub status: Option<ExitStatus>,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl RunOutput {
    /// True when the process exited with status 0 before the deadline.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs `cmd` with `stdin_text` on its stdin, killing its process group after `timeout`.
pub fn run_bounded(cmd: &mut Command, stdin_text: &str, timeout: Duration) -> RunOutput {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let text = stdin_text.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(text.as_bytes());
    });
    let out_reader = reader_thread(child.stdout.take().expect("piped stdout"));
    let err_reader = reader_thread(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // The group id is our child's pid: this kills only what we started.
            let _ =
                Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Grandchildren (the JVM under zkCli.sh) may still hold the pipes: end the group.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = writer.join();
    RunOutput {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

fn reader_thread(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}
