//! Disks that fill, fail and stall under real `zkr-server` processes (issue 13, last part;
//! figures in docs/RELIABILITY.md, "Disk faults on a real process"):
//!
//! - a full disk: the data directory is a 2 MiB tmpfs in a private mount namespace
//!   (`unshare -m`), filled by a ballast file. New writes are refused with THROTTLEDOP, reads and
//!   pings go on, writes resume once the ballast is removed, and a `kill -9` and restart recover
//!   every acknowledged write;
//! - fsync failing with EIO (`FaultFs` of the `bugs` build): the server stops and says why, and a
//!   restart on a good disk recovers every acknowledged write;
//! - a follower whose fsyncs stall for 5 s (`FaultFs`): the clients of the other members see no
//!   error, and nobody changes role or epoch.
//! - a follower whose disk stays full drops out once `zkr.diskFullBacklogBytes` of txns wait
//!   for it, and rejoins once there is space; a full disk under the epoch files during an
//!   election is waited out, not fatal.
//!
//! Every process is ours and stopped by pid (on drop too). The tmpfs lives only in the mount
//! namespace of a `sleep` started by `unshare`: killing that pid (on drop) removes it, and the
//! host's mount table never holds it (asserted). The full-disk test needs root (a mount); off CI
//! it is skipped, with a note, without it.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zkr_tests::fourlw::{four_letter, is_ok};
use zkr_tests::raw::{RawClient, RawError};
use zkr_tests::server::{free_port, zkr_bin};
use zkr_tests::tools::in_ci;

/// ZooKeeper's THROTTLEDOP: "not executed at all, retry with back-off".
const THROTTLED_OP: i32 = -127;

/// A server process we spawned; killed (by pid) on drop.
struct Proc {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` (which runs a zkr-server on `port`), logging to `log`, and waits for `imok`.
    fn start(mut cmd: Command, port: u16, log: &Path) -> Proc {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log");
        cmd.stdin(Stdio::null()).stdout(out.try_clone().expect("dup")).stderr(out);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let mut proc = Proc { child: Some(child), port, log: log.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !is_ok(proc.addr(), Duration::from_secs(2)) {
            if let Some(status) = proc.exited() {
                panic!("server exited during startup ({status}):\n{}", proc.log_text());
            }
            assert!(Instant::now() < deadline, "no imok within 60 s:\n{}", proc.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        proc
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits until the process exits by itself; panics after `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A line of `srvr`: `Mode` or `Zxid`.
    fn srvr(&self, key: &str) -> Option<String> {
        let text = four_letter(self.addr(), "srvr", Duration::from_secs(2)).ok()?;
        let prefix = format!("{key}: ");
        text.lines().find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_string))
    }

    fn zxid(&self) -> i64 {
        let hex = self.srvr("Zxid").expect("srvr Zxid");
        i64::from_str_radix(hex.trim_start_matches("0x"), 16).expect("hex zxid")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("=== {} (tail) ===", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        self.kill9();
    }
}

/// zkr-server built with the `bugs` feature (the `FaultFs` hook), as tests/jepsen_run.rs finds
/// it: `ZKR_SERVER_BUGS_BIN`, or `target/debug/zkr-server-bugs` (tests/run-all.sh builds it).
fn zkr_bugs_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("ZKR_SERVER_BUGS_BIN") {
        return PathBuf::from(bin);
    }
    let bin = zkr_bin().with_file_name("zkr-server-bugs");
    assert!(
        bin.is_file(),
        "{} not found: build it with `cargo build -p zkr-server --features bugs && cp \
         target/debug/zkr-server target/debug/zkr-server-bugs && cargo build -p zkr-server` \
         (tests/run-all.sh does), or set ZKR_SERVER_BUGS_BIN",
        bin.display()
    );
    bin
}

/// A fresh directory for one test.
fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zkr-disk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).expect("test dir");
    dir
}

/// A standalone zoo.cfg with `extra` lines.
fn standalone_cfg(dir: &Path, data: &Path, port: u16, extra: &str) -> PathBuf {
    let cfg = dir.join("zoo.cfg");
    let text = format!(
        "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
         4lw.commands.whitelist=*\n{extra}",
        data.display()
    );
    std::fs::write(&cfg, text).expect("zoo.cfg");
    cfg
}

/// How long each fault lasts: 5 s (the stall), or `ZKR_DISK_FAULT_SECS` for the long
/// form (`ZKR_DISK_FAULT_SECS=60 cargo test -p zkr-tests --test disk_faults -- --nocapture`).
fn fault_duration() -> Duration {
    let secs = std::env::var("ZKR_DISK_FAULT_SECS").ok().and_then(|s| s.parse().ok());
    Duration::from_secs(secs.unwrap_or(5))
}

fn connect(addr: SocketAddr, timeout_ms: i32) -> RawClient {
    RawClient::connect(addr, timeout_ms).expect("session")
}

// ---------------------------------------------------------------------------------------------
// A full disk

/// A tmpfs of a given size mounted in a private mount namespace, held by a `sleep` that
/// `unshare -m` started: programs enter it with `nsenter`, the test reaches its files through
/// `/proc/<holder>/root`, and killing the holder removes the mount with the namespace.
struct SmallDisk {
    holder: Child,
    dir: PathBuf,
}

impl SmallDisk {
    /// Mounts it at `dir` (which exists on the host); `None` if this machine does not let us.
    fn mount(dir: &Path, size: &str) -> Result<SmallDisk, String> {
        let script = format!(
            "mount -t tmpfs -o size={size} zkr-small-disk '{}' && echo mounted && exec sleep 300",
            dir.display()
        );
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("unshare: {e}"))?;
        let mut line = String::new();
        let stdout = holder.stdout.take().expect("piped");
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() != "mounted" {
            let _ = holder.kill();
            let output = holder.wait_with_output().map_err(|e| e.to_string())?;
            return Err(format!("mount failed: {}", String::from_utf8_lossy(&output.stderr)));
        }
        Ok(SmallDisk { holder, dir: dir.to_path_buf() })
    }

    /// `path` (under the mount point) as the test, outside the namespace, reaches it.
    fn outside(&self, path: &Path) -> PathBuf {
        let relative = path.strip_prefix("/").expect("an absolute path");
        PathBuf::from(format!("/proc/{}/root", self.holder.id())).join(relative)
    }

    /// `program` run inside the namespace.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--target={}", self.holder.id())).arg("--mount").arg("--").arg(program);
        cmd
    }

    /// Fills the filesystem with a ballast file until a write fails; returns its size.
    fn fill(&self) -> u64 {
        let path = self.outside(&self.dir.join("ballast"));
        let mut file = std::fs::File::create(&path).expect("ballast");
        let chunk = vec![0u8; 4096];
        let mut written = 0;
        while let Ok(n) = file.write(&chunk) {
            if n == 0 {
                break;
            }
            written += n as u64;
        }
        written
    }

    fn free(&self) {
        std::fs::remove_file(self.outside(&self.dir.join("ballast"))).expect("remove ballast");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap_or("");
    uid.split_whitespace().next() == Some("0")
}

/// Whether the host's mount table (ours) has something mounted at `dir`.
fn mounted_here(dir: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = dir.display().to_string();
    table.lines().any(|l| l.split_whitespace().nth(4) == Some(dir.as_str()))
}

/// What the writer on session A saw: acknowledged paths, and since when its current create is
/// in flight.
#[derive(Default)]
struct Writes {
    acked: Vec<String>,
    in_flight_since: Option<Instant>,
}

/// Writes `/a-N` one after another on one session until `stop`; every reply must be OK. The
/// write that waits for the disk sends nothing for the whole fault: the session timeout and
/// the socket timeout outlast it.
fn writer(addr: SocketAddr, writes: Arc<Mutex<Writes>>, stop: Arc<AtomicBool>) {
    let outlast = fault_duration() + Duration::from_secs(30);
    let mut client = connect(addr, outlast.as_millis() as i32);
    client.set_io_timeout(outlast);
    let mut n = 0;
    while !stop.load(Ordering::Acquire) {
        let path = format!("/a-{n}");
        writes.lock().expect("writes").in_flight_since = Some(Instant::now());
        let created = client.try_create(&path, b"a", 0).expect("session A's create I/O");
        assert_eq!(created, Ok(path.clone()), "session A: {path}");
        let mut w = writes.lock().expect("writes");
        w.acked.push(path);
        w.in_flight_since = None;
        n += 1;
        drop(w);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The disk-full test, on a 2 MiB tmpfs: see the module doc. Figures are printed.
#[test]
fn a_full_disk_refuses_writes_keeps_reads_and_sessions_and_loses_nothing() {
    if !is_root() {
        assert!(!in_ci(), "CI runs as root: the full-disk test must run there");
        eprintln!("SKIPPED: the full-disk test mounts a tmpfs, which needs root");
        return;
    }
    let dir = test_dir("full");
    let data = dir.join("data");
    let disk = SmallDisk::mount(&data, "2m").expect("a tmpfs in a private mount namespace");
    assert!(!mounted_here(&data), "the tmpfs is in the holder's namespace only");
    let port = free_port();
    let cfg = standalone_cfg(&dir, &data, port, "maxSessionTimeout=600000\n");
    // tickTime 500: sessions of 1 s, so that one kept alive by nothing but refused writes
    // would expire well within the fault.
    let text = std::fs::read_to_string(&cfg).expect("cfg");
    std::fs::write(&cfg, text.replace("tickTime=2000", "tickTime=500")).expect("cfg");
    let log = dir.join("server.log");
    let start = || {
        let mut cmd = disk.command(&zkr_bin());
        cmd.arg(&cfg);
        Proc::start(cmd, port, &log)
    };
    let mut server = start();
    let addr = server.addr();

    // Session B: an ephemeral and a node to read; C only writes; then a writer on session A.
    // Until the disk is full B and C ping: their sessions (4 s, 1 s) must be alive when the
    // fault begins, and getting there takes longer than C's (seconds on a loaded machine: C's
    // expired before the disk was full in 1 of 6 runs beside other suites, 10 of 10 with two
    // busy loops added).
    let mut b = connect(addr, 4_000);
    let mut c = connect(addr, 1_000);
    b.create("/b-ephemeral", b"e", 1).expect("ephemeral");
    b.create("/b-data", b"before", 0).expect("node");
    let writes = Arc::new(Mutex::new(Writes::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let a = std::thread::spawn({
        let (writes, stop) = (writes.clone(), stop.clone());
        move || writer(addr, writes, stop)
    });
    for _ in 0..5 {
        b.ping();
        c.ping();
        std::thread::sleep(Duration::from_millis(100));
    }
    let ballast = disk.fill();
    let filled = Instant::now();
    let acked_before_full = writes.lock().expect("writes").acked.len();

    // A's writes go on into the log file's last page, then one waits for the disk: it is full.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        b.ping();
        c.ping();
        let since = writes.lock().expect("writes").in_flight_since;
        if since.is_some_and(|s| s.elapsed() > Duration::from_secs(1)) {
            break;
        }
        assert!(Instant::now() < deadline, "A's writes never waited for the disk");
        std::thread::sleep(Duration::from_millis(50));
    }
    let acked_when_full = writes.lock().expect("writes").acked.len();
    assert!(server.log_text().contains("disk full"), "the log says why:\n{}", server.log_text());

    // While full: B's and C's writes are refused at once, B's reads and pings are answered,
    // for longer than their session timeouts (4 s, 1 s). C sends nothing but refused writes:
    // they must keep its session alive, as any request does.
    let full_for = fault_duration();
    let mut refused = 0;
    let mut reads = 0;
    let began = Instant::now();
    while began.elapsed() < full_for {
        let asked = Instant::now();
        let created = b.try_create(&format!("/b-refused-{refused}"), b"x", 0).expect("B I/O");
        assert_eq!(created, Err(THROTTLED_OP), "a write while the disk is full");
        assert!(asked.elapsed() < Duration::from_secs(2), "refused at once");
        refused += 1;
        let created = c.try_create("/c-refused", b"x", 0).expect("C I/O");
        assert_eq!(created, Err(THROTTLED_OP), "C's write while the disk is full");
        refused += 1;
        assert_eq!(b.get_data("/b-data", false).expect("read").0, b"before");
        assert!(b.exists("/b-ephemeral", false).is_ok(), "the ephemeral is there");
        assert!(b.get_children("/", false).expect("list").contains(&"a-0".to_string()));
        reads += 3;
        b.ping();
        std::thread::sleep(Duration::from_millis(300));
    }
    let acked_during_full = writes.lock().expect("writes").acked.len() - acked_when_full;
    assert_eq!(acked_during_full, 0, "nothing is acknowledged while the log cannot sync");

    assert!(c.exists("/b-data", false).is_ok(), "C's session outlived its timeout");
    // Space freed: A's waiting write is acknowledged, B writes again.
    disk.free();
    let freed = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    let resumed = loop {
        match b.try_create("/b-after", b"after", 0).expect("B I/O") {
            Ok(_) => break freed.elapsed(),
            Err(THROTTLED_OP) => {}
            Err(other) => panic!("B's write after the space was freed: error {other}"),
        }
        assert!(Instant::now() < deadline, "writes never resumed");
        std::thread::sleep(Duration::from_millis(100));
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while writes.lock().expect("writes").acked.len() <= acked_when_full + 5 {
        assert!(Instant::now() < deadline, "A's writes did not resume");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Release);
    a.join().expect("writer A");
    let acked = std::mem::take(&mut writes.lock().expect("writes").acked);
    assert!(server.log_text().contains("disk space available again"));

    // kill -9, restart on the same (tmpfs) data: every acknowledged write is there.
    server.kill9();
    let mut server = start();
    let mut check = connect(server.addr(), 30_000);
    let lost: Vec<&String> = acked.iter().filter(|p| check.exists(p, false).is_err()).collect();
    assert!(lost.is_empty(), "acknowledged writes lost after the restart: {lost:?}");
    assert!(check.exists("/b-after", false).is_ok());
    assert_eq!(check.exists("/b-refused-0", false).map(drop), Err(-101), "refused = not done");
    eprintln!(
        "disk full: ballast {ballast} B; A acked {acked_before_full} before the fill, {} more into \
         the last page; full {:.1} s: {refused} writes refused (THROTTLEDOP), {reads} reads and \
         pings served, 0 acked; writes resumed {:.0} ms after the space was freed; {} acked \
         writes, 0 lost after kill -9 and restart",
        acked_when_full - acked_before_full,
        (freed - filled).as_secs_f64(),
        resumed.as_secs_f64() * 1000.0,
        acked.len() + 3,
    );
    server.kill9();
    drop(disk);
    assert!(!mounted_here(&data), "no mount left behind");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

// ---------------------------------------------------------------------------------------------
// fsync EIO

/// A failing fsync stops the server: after one, the file's contents are unknown (fsyncgate), so
/// nothing it covers may be acknowledged. A restart on a good disk has every acknowledged write.
#[test]
fn an_fsync_error_stops_the_server_and_loses_no_acknowledged_write() {
    let dir = test_dir("eio");
    let control = dir.join("disk-fault");
    std::fs::write(&control, "").expect("control");
    let port = free_port();
    let extra = format!("zkr.diskFaultFile={}\n", control.display());
    let cfg = standalone_cfg(&dir, &dir.join("data"), port, &extra);
    let log = dir.join("server.log");
    let mut cmd = Command::new(zkr_bugs_bin());
    cmd.arg(&cfg);
    let mut server = Proc::start(cmd, port, &log);
    let addr = server.addr();

    let acked = Arc::new(Mutex::new(Vec::new()));
    let a = std::thread::spawn({
        let acked = acked.clone();
        move || {
            let mut client = connect(addr, 30_000);
            for n in 0.. {
                let path = format!("/w-{n}");
                match client.try_create(&path, b"w", 0) {
                    Ok(Ok(_)) => acked.lock().expect("acked").push(path),
                    Ok(Err(code)) => panic!("{path}: error {code}"),
                    Err(RawError::Closed | RawError::Io(_)) => return n,
                    Err(other) => panic!("{path}: {other:?}"),
                }
            }
            unreachable!()
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().expect("acked").len() < 50 {
        assert!(Instant::now() < deadline, "no writes acknowledged");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(&control, "eio").expect("inject EIO");
    let acked_at_fault = acked.lock().expect("acked").len();
    let status = server.wait_exit(Duration::from_secs(20));
    let attempted = a.join().expect("writer");
    let acked = std::mem::take(&mut *acked.lock().expect("acked"));
    assert!(!status.success(), "a failed fsync stops the server with an error: {status}");
    let text = server.log_text();
    assert!(text.contains("fsync failed"), "the log says what failed:\n{text}");
    assert!(text.contains("stopping the server"), "and that it stops:\n{text}");

    std::fs::write(&control, "").expect("a good disk again");
    let mut cmd = Command::new(zkr_bugs_bin());
    cmd.arg(&cfg);
    let server = Proc::start(cmd, port, &log);
    let mut check = connect(server.addr(), 30_000);
    let lost: Vec<&String> = acked.iter().filter(|p| check.exists(p, false).is_err()).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    eprintln!(
        "fsync EIO: {} writes acked ({} after the fault was set), {} attempted; server exited \
         ({status}); 0 acknowledged writes lost after a restart",
        acked.len(),
        acked.len() - acked_at_fault,
        attempted + 1
    );
    drop(server);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

// ---------------------------------------------------------------------------------------------
// A follower's disk stalls

/// Three `bugs` servers on loopback, each with its own disk-fault control file.
fn ensemble(root: &Path) -> Vec<(Proc, PathBuf)> {
    ensemble_with(root, "")
}

/// `ensemble` with `extra` lines in every member's zoo.cfg.
fn ensemble_with(root: &Path, extra: &str) -> Vec<(Proc, PathBuf)> {
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, (_, quorum))| format!("server.{}=127.0.0.1:{quorum}:{}\n", i + 1, quorum + 1))
        .collect();
    // All three start before any is waited for: a member says imok only once it has a leader.
    (0..3)
        .map(|i| {
            let dir = root.join(format!("s{}", i + 1));
            std::fs::create_dir_all(dir.join("data")).expect("dir");
            std::fs::write(dir.join("data/myid"), (i + 1).to_string()).expect("myid");
            let control = dir.join("disk-fault");
            std::fs::write(&control, "").expect("control");
            let extra = format!(
                "initLimit=10\nsyncLimit=5\nzkr.diskFaultFile={}\n{servers}{extra}",
                control.display()
            );
            let cfg = standalone_cfg(&dir, &dir.join("data"), ports[i].0, &extra);
            let text = std::fs::read_to_string(&cfg).expect("cfg");
            std::fs::write(&cfg, text.replace("tickTime=2000", "tickTime=500")).expect("cfg");
            let log = dir.join("server.log");
            let out = std::fs::File::create(&log).expect("log");
            let child = Command::new(zkr_bugs_bin())
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out)
                .spawn()
                .expect("spawn zkr-server-bugs");
            (Proc { child: Some(child), port: ports[i].0, log }, control)
        })
        .collect()
}

fn modes(members: &[(Proc, PathBuf)]) -> Vec<Option<String>> {
    members.iter().map(|(p, _)| p.srvr("Mode")).collect()
}

/// Waits (60 s at most) for one leader and `followers` followers; returns the leader's index.
fn wait_for_leader(members: &[(Proc, PathBuf)], followers: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let modes = modes(members);
        let leaders: Vec<usize> =
            (0..members.len()).filter(|i| modes[*i].as_deref() == Some("leader")).collect();
        let following = modes.iter().filter(|m| m.as_deref() == Some("follower")).count();
        if leaders.len() == 1 && following == followers {
            return leaders[0];
        }
        assert!(Instant::now() < deadline, "no ensemble within 60 s: {modes:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `member`'s log (`within` at most) until it contains `line`.
fn wait_for_log(member: &Proc, line: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !member.log_text().contains(line) {
        assert!(Instant::now() < deadline, "no {line:?} in {} within {within:?}", member.port);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a txn log file (`version-2/log.*`) under `data` holds `bytes`: written, maybe not
/// yet synced (a `full` FaultFs fails writes only, so what is written will be synced).
fn txn_log_holds(data: &Path, bytes: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(data.join("version-2")) else { return false };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("log."))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .any(|file| file.windows(bytes.len()).any(|w| w == bytes))
}

/// What one load thread saw.
struct Load {
    ops: u64,
    errors: Vec<String>,
    slowest_write: Duration,
}

/// Sets `/load-{name}` and reads it back, over and over through one member, until `stop`.
fn load(addr: SocketAddr, name: &str, stop: Arc<AtomicBool>) -> Load {
    let mut client = connect(addr, 10_000);
    let path = format!("/load-{name}");
    client.create(&path, b"0", 0).expect("load node");
    let mut seen = Load { ops: 0, errors: Vec::new(), slowest_write: Duration::ZERO };
    while !stop.load(Ordering::Acquire) {
        let asked = Instant::now();
        match client.set_data(&path, seen.ops.to_string().as_bytes(), -1) {
            Ok(_) => seen.ops += 1,
            Err(code) => seen.errors.push(format!("setData error {code}")),
        }
        seen.slowest_write = seen.slowest_write.max(asked.elapsed());
        match client.get_data(&path, false) {
            Ok(_) => seen.ops += 1,
            Err(code) => seen.errors.push(format!("getData error {code}")),
        }
    }
    seen
}

/// Which member's disk a test breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Leader,
    Follower,
}

/// What `fault_one_member` saw.
struct FaultRun {
    committed_during: i64,
    ops: Vec<u64>,
    slowest_write: Duration,
    refused_on_faulted: usize,
    epoch: i64,
}

/// Three members; load (setData and getData) on the two whose disk is fine; `fault` written to
/// the control file of `who` for 5 s. The clients of the two see no error, nobody changes role
/// (polled), no election and no dropped learner shows in the logs, the epoch stays, txns
/// commit during the fault, and the faulted member catches up after it. With `full`, a client
/// of the faulted member must also get THROTTLEDOP at least once.
fn fault_one_member(name: &str, fault: &str, who: Who) -> FaultRun {
    let root = test_dir(name);
    let members = ensemble(&root);
    let deadline = Instant::now() + Duration::from_secs(60);
    let leader = loop {
        let modes = modes(&members);
        let leaders: Vec<usize> =
            (0..3).filter(|i| modes[*i].as_deref() == Some("leader")).collect();
        let followers = modes.iter().filter(|m| m.as_deref() == Some("follower")).count();
        if leaders.len() == 1 && followers == 2 {
            break leaders[0];
        }
        assert!(Instant::now() < deadline, "no ensemble within 60 s: {modes:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let faulted = if who == Who::Leader { leader } else { (leader + 1) % 3 };
    let fine: Vec<usize> = (0..3).filter(|i| *i != faulted).collect();
    let epoch = |zxid: i64| zxid >> 32;
    let modes_before = modes(&members);

    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = fine
        .iter()
        .map(|&i| {
            let (addr, stop) = (members[i].0.addr(), stop.clone());
            std::thread::spawn(move || load(addr, &format!("s{i}"), stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    // Elections and dropped learners leave these lines in the logs; none may appear.
    let churn = |m: &Proc| {
        let text = m.log_text();
        ["election decided", "back to leader election", "dropping it"]
            .iter()
            .map(|line| text.matches(line).count())
            .sum::<usize>()
    };
    let churn_before: Vec<usize> = members.iter().map(|(m, _)| churn(m)).collect();
    // The epoch of the txns committed so far (before the first txn the zxid is 0).
    let zxid_at_fault = members[leader].0.zxid();
    let epoch_before = epoch(zxid_at_fault);
    assert!(epoch_before > 0, "the load committed txns before the fault");
    // A client of the faulted member with the shortest session (2 tickTimes). With a full
    // disk, once the member knows it, the client sends only writes, which are refused: they
    // must keep its session alive as any request does. Otherwise it pings.
    let mut faulted_client = connect(members[faulted].0.addr(), 1_000);
    std::fs::write(&members[faulted].1, fault).expect("break the disk");
    let began = Instant::now();
    while fault == "full" && !members[faulted].0.log_text().contains("disk full under") {
        assert!(began.elapsed() < Duration::from_secs(10), "the member never found it full");
        faulted_client.ping();
        std::thread::sleep(Duration::from_millis(50));
    }
    // The faulted member's client sends every 150 ms from a thread of its own: between its
    // requests in the polling loop below, the three `srvr` calls took so long on a loaded
    // machine that its 1 s session expired (once in 16 runs).
    let full = fault == "full";
    let faulted_requests = std::thread::spawn(move || {
        let mut refused = 0;
        while began.elapsed() < fault_duration() {
            if full {
                let path = format!("/faulted-{refused}");
                let created =
                    faulted_client.try_create(&path, b"x", 0).expect("faulted member I/O");
                assert_eq!(created, Err(THROTTLED_OP), "a write on the member with a full disk");
                refused += 1;
            } else {
                faulted_client.ping();
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        (faulted_client, refused)
    });
    while began.elapsed() < fault_duration() {
        assert_eq!(modes(&members), modes_before, "a role changed during the fault");
        std::thread::sleep(Duration::from_millis(150));
    }
    let (mut faulted_client, refused_on_faulted) =
        faulted_requests.join().expect("the faulted member's client");
    assert!(faulted_client.exists("/", false).is_ok(), "its session outlived its timeout");
    let zxid_at_release = members[leader].0.zxid();
    std::fs::write(&members[faulted].1, "").expect("repair the disk");
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Release);
    let results: Vec<Load> = loads.into_iter().map(|l| l.join().expect("load")).collect();

    assert!(zxid_at_release - zxid_at_fault > 10, "writes committed during the fault");
    for seen in &results {
        assert!(seen.errors.is_empty(), "client-visible errors: {:?}", seen.errors);
        assert!(seen.ops > 0);
    }
    assert_eq!(modes(&members), modes_before, "roles after the fault");
    let churn_after: Vec<usize> = members.iter().map(|(m, _)| churn(m)).collect();
    assert_eq!(churn_after, churn_before, "no election, no learner dropped (log lines)");
    assert_eq!(epoch(members[leader].0.zxid()), epoch_before, "no new epoch: no election");
    if fault == "full" {
        assert!(refused_on_faulted > 0, "the member with a full disk refused writes");
        let text = members[faulted].0.log_text();
        assert!(text.contains("disk space available again"), "the log says it recovered");
    }
    // The faulted member catches up once its disk is back.
    let deadline = Instant::now() + Duration::from_secs(20);
    let target = members[leader].0.zxid();
    while members[faulted].0.zxid() < target {
        assert!(Instant::now() < deadline, "the faulted member did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(members);
    std::fs::remove_dir_all(&root).expect("clean up");
    FaultRun {
        committed_during: zxid_at_release - zxid_at_fault,
        ops: results.iter().map(|r| r.ops).collect(),
        slowest_write: results.iter().map(|r| r.slowest_write).max().unwrap_or_default(),
        refused_on_faulted,
        epoch: epoch_before,
    }
}

fn print_run(what: &str, run: &FaultRun) {
    eprintln!(
        "{what}: {} txns committed during the {:?}; ops on the other members {:?}, slowest \
         setData {:?}, 0 errors; {} writes refused on the faulted member; epoch {} before and \
         after, roles unchanged",
        run.committed_during,
        fault_duration(),
        run.ops,
        run.slowest_write,
        run.refused_on_faulted,
        run.epoch
    );
}

/// A follower whose fsyncs stall 5 s (twice `syncLimit`): the leader commits with the other
/// follower, the stalled one keeps answering pings (they do not wait for its disk), so the
/// clients of the other two members see no error, nobody changes role, and the epoch stays.
#[test]
fn a_follower_whose_disk_stalls_5_s_costs_no_errors_and_no_election() {
    let run = fault_one_member("stall", "stall", Who::Follower);
    print_run("follower disk stalled", &run);
}

/// A follower whose disk is full for 5 s: as a stall for the ensemble (it cannot ack), and its
/// own clients' writes are refused with THROTTLEDOP.
#[test]
fn a_follower_whose_disk_is_full_5_s_costs_no_errors_and_no_election() {
    let run = fault_one_member("ffull", "full", Who::Follower);
    print_run("follower disk full", &run);
}

/// The leader's disk is full for 5 s: it cannot log its own proposals, but the two followers'
/// acks are a quorum, so it commits (Zab needs a quorum durable, not the leader's own disk);
/// the followers' clients see no error, its own clients' writes are refused.
#[test]
fn the_leader_whose_disk_is_full_5_s_costs_no_errors_and_no_election() {
    let run = fault_one_member("lfull", "full", Who::Leader);
    print_run("leader disk full", &run);
}

/// A follower whose disk stays full must not keep the leader's proposals in memory without
/// bound: past `zkr.diskFullBacklogBytes` (100,000 here) of txns waiting for its disk it drops
/// out (as behind a partition), the two others go on without an error and without an
/// election, and once its disk has space it rejoins and catches up. Fails without the bound:
/// no member ever drops out.
#[test]
fn a_follower_whose_disk_stays_full_drops_out_at_the_bound_and_rejoins() {
    const BOUND: u64 = 100_000;
    let root = test_dir("backlog");
    let members = ensemble_with(&root, &format!("zkr.diskFullBacklogBytes={BOUND}\n"));
    let leader = wait_for_leader(&members, 2);
    let faulted = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = [leader, other]
        .iter()
        .map(|&i| {
            let (addr, stop) = (members[i].0.addr(), stop.clone());
            std::thread::spawn(move || load(addr, &format!("s{i}"), stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&members[faulted].1, "full").expect("fill the disk");
    let began = Instant::now();
    wait_for_log(&members[faulted].0, "dropping out of the ensemble", Duration::from_secs(60));
    let dropped_after = began.elapsed();
    let text = members[faulted].0.log_text();
    let line = text.lines().find(|l| l.contains("dropping out of the ensemble")).expect("line");
    let line = zkr_tests::server::strip_ansi(line);
    let waiting: u64 = line
        .split("waiting_bytes=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no waiting_bytes in {line:?}"));
    // One driver turn's appends past the bound at most (1,024 events of ~100-byte txns).
    assert!(waiting > BOUND && waiting < BOUND + 1024 * 200, "{waiting} bytes waited");
    // Out: the others commit on, and it takes nothing more.
    let zxid_out = members[leader].0.zxid();
    std::thread::sleep(Duration::from_secs(3));
    assert!(members[leader].0.zxid() > zxid_out + 10, "the others commit while it is out");
    assert_eq!(text.matches("dropping out of the ensemble").count(), 1, "once");
    std::fs::write(&members[faulted].1, "").expect("free the disk");
    wait_for_log(&members[faulted].0, "rejoining the ensemble", Duration::from_secs(10));
    stop.store(true, Ordering::Release);
    let results: Vec<Load> = loads.into_iter().map(|l| l.join().expect("load")).collect();
    for seen in &results {
        assert!(seen.errors.is_empty(), "client-visible errors: {:?}", seen.errors);
    }
    assert_eq!(wait_for_leader(&members, 2), leader, "the others never lost their leader");
    let target = members[leader].0.zxid();
    let deadline = Instant::now() + Duration::from_secs(30);
    while members[faulted].0.zxid() < target {
        assert!(Instant::now() < deadline, "the member that dropped out did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ops: Vec<u64> = results.iter().map(|r| r.ops).collect();
    eprintln!(
        "dropped out {dropped_after:?} after its disk filled, {waiting} bytes waiting (bound \
         {BOUND}); the others: ops {ops:?}, 0 errors, leader unchanged; rejoined and caught up"
    );
    drop(members);
    std::fs::remove_dir_all(&root).expect("clean up");
}

/// ENOSPC on the epoch files no longer stops a member: with a follower's disk full, the
/// leader is killed, so the two left need that follower's acceptedEpoch/currentEpoch for a
/// quorum. It keeps trying (the files stay as they were), and once its disk has space the
/// election completes and writes go through. Before, it exited ("cannot write the epoch
/// files: No space left on device").
#[test]
fn a_full_disk_under_the_epoch_files_waits_for_space_instead_of_stopping() {
    let root = test_dir("epochs");
    let mut members = ensemble(&root);
    let leader = wait_for_leader(&members, 2);
    let faulted = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let mut client = connect(members[other].0.addr(), 30_000);
    client.create("/before", b"x", 0).expect("a write before");
    drop(client);
    // The fault must find nothing of the faulted member's txn log left to write: a txn it had
    // not written yet would wait for space first, and the epoch files, written only once the
    // log before them is durable (`storage/thread.rs`), would never be tried, so the line below
    // never came (once in 11 runs under load: /before, acknowledged by the other two, was not
    // yet written there). So wait until its log file holds /before.
    let data = root.join(format!("s{}/data", faulted + 1));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !txn_log_holds(&data, b"/before") {
        assert!(Instant::now() < deadline, "the faulted member never logged /before");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(&members[faulted].1, "full").expect("fill the disk");
    members[leader].0.kill9();
    wait_for_log(&members[faulted].0, "cannot write the epoch files", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    assert!(members[faulted].0.exited().is_none(), "it waits for space, it does not stop");
    let epochs = std::fs::read_to_string(root.join(format!("s{}/data/acceptedEpoch", faulted + 1)));
    assert!(epochs.is_ok(), "the epoch file is still there");
    std::fs::write(&members[faulted].1, "").expect("free the disk");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut client = loop {
        let modes = modes(&members);
        let leads = modes.iter().filter(|m| m.as_deref() == Some("leader")).count();
        let follows = modes.iter().filter(|m| m.as_deref() == Some("follower")).count();
        if leads == 1 && follows == 1 {
            break connect(members[faulted].0.addr(), 30_000);
        }
        assert!(Instant::now() < deadline, "no new leader after the space came back: {modes:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(client.exists("/before", false).is_ok(), "the committed write survives");
    client.create("/after", b"y", 0).expect("a write after the election");
    drop(client);
    drop(members);
    std::fs::remove_dir_all(&root).expect("clean up");
}
