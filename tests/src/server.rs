//! The server under test: start, stop, `kill -9`, restart on the same data dir and port.
//!
//! [`TestServer`] owns exactly one server process at a time (ours, or the Apache JVM started by
//! the shared tool or relaunched by us) and signals only that pid. Dropping it stops the server;
//! if the test is panicking it first prints the tail of the server log, and keeps the zkr data dir
//! for a post-mortem.
//!
//! Apache restart: the shared tool cannot restart without wiping state, so [`TestServer::kill9`]
//! records the JVM's argv from `/proc/<pid>/cmdline` before SIGKILL, and
//! [`TestServer::start_again`] relaunches exactly that argv on the same data dir (and rewrites the
//! tool's pid file so that `apache-zookeeper stop` still finds it). Non-default
//! [`ServerOptions`] reach Apache the same way: the tool's zoo.cfg is edited, then restarted.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::fourlw;

/// How long a server may take to answer `ruok` after being spawned (debug build, loaded box).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd server may take to exit before it gets SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Super user digest for `super:test`, the same the shared Apache tool configures.
pub const SUPER_DIGEST: &str = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";
/// Lines of server log printed when a test fails.
const LOG_TAIL_LINES: usize = 80;

/// Which server implementation the suite runs against (`ZKR_E2E_TARGET`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Our `zkr-server` binary (the default).
    Zkr,
    /// The real Apache ZooKeeper 3.8 through the shared `apache-zookeeper` tool.
    Apache,
}

impl Target {
    /// Reads `ZKR_E2E_TARGET` (`zkr` when unset); panics on an unknown value so that a typo
    /// cannot silently test the wrong server.
    pub fn from_env() -> Target {
        match std::env::var("ZKR_E2E_TARGET").as_deref() {
            Err(_) | Ok("") | Ok("zkr") => Target::Zkr,
            Ok("apache") => Target::Apache,
            Ok(other) => panic!("ZKR_E2E_TARGET={other:?}: expected `zkr` or `apache`"),
        }
    }

    /// True for the Apache 3.8 reference, whose behaviour differs from 3.9 (which we follow)
    /// in a few documented places, e.g. watch event zxids are -1 before 3.9.
    pub fn is_apache(self) -> bool {
        self == Target::Apache
    }
}

/// Extra or overriding `zoo.cfg` keys for one test server.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    cfg: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
}

impl ServerOptions {
    /// No overrides: the suite's default configuration.
    pub fn new() -> ServerOptions {
        ServerOptions::default()
    }

    /// Sets `key=value` in the generated zoo.cfg (replacing a default of the same key).
    pub fn set(mut self, key: &str, value: &str) -> ServerOptions {
        self.cfg.insert(key.to_string(), value.to_string());
        self
    }

    /// Sets an environment variable of the zkr-server process (e.g. `SERVER_JVMFLAGS`).
    pub fn env(mut self, key: &str, value: &str) -> ServerOptions {
        self.env.insert(key.to_string(), value.to_string());
        self
    }
}

/// One running server on 127.0.0.1, stopped on drop.
#[derive(Debug)]
pub struct TestServer {
    target: Target,
    port: u16,
    /// zkr: the temp dir holding zoo.cfg, data/ and server.log; apache: the tool's dir.
    dir: PathBuf,
    /// The process we spawned (always for zkr; for apache only after a relaunch).
    child: Option<Child>,
    /// Apache only: the JVM argv and cwd captured before a kill -9, to relaunch it.
    apache_argv: Option<(Vec<String>, PathBuf)>,
    /// True between kill9() and start_again().
    down: bool,
    /// zkr: extra environment of the server process.
    env: BTreeMap<String, String>,
}

impl TestServer {
    /// Starts a server of the target chosen by `ZKR_E2E_TARGET` with the default configuration.
    pub fn start() -> TestServer {
        TestServer::start_with(ServerOptions::new())
    }

    /// Starts a server with `options` applied to its zoo.cfg.
    pub fn start_with(options: ServerOptions) -> TestServer {
        TestServer::start_target(Target::from_env(), options)
    }

    /// Starts a server of an explicit target (for tests that compare both side by side).
    pub fn start_target(target: Target, options: ServerOptions) -> TestServer {
        let port = free_port();
        let mut server = match target {
            Target::Zkr => TestServer::start_zkr(port, &options),
            Target::Apache => TestServer::start_apache(port),
        };
        if target.is_apache() && !options.cfg.is_empty() {
            let cfg = server.dir.join("zoo.cfg");
            let text = std::fs::read_to_string(&cfg).expect("read the tool's zoo.cfg");
            std::fs::write(&cfg, merge_cfg(&text, &options.cfg)).expect("rewrite zoo.cfg");
            server.restart();
        }
        server
    }

    fn start_zkr(port: u16, options: &ServerOptions) -> TestServer {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("zkr-e2e-{}-{port}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("create the server's temp dir");
        let defaults = zkr_default_cfg(port, &dir.join("data"));
        std::fs::write(dir.join("zoo.cfg"), merge_cfg(&defaults, &options.cfg))
            .expect("write zoo.cfg");
        let mut server = TestServer {
            target: Target::Zkr,
            port,
            dir,
            child: None,
            apache_argv: None,
            down: true,
            env: options.env.clone(),
        };
        server.start_again();
        server
    }

    fn start_apache(port: u16) -> TestServer {
        let tool = apache_tool();
        let out = Command::new(&tool)
            .args(["start", &port.to_string()])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
        let dir = apache_dir(port);
        if !out.status.success() {
            panic!(
                "`{} start {port}` failed: {}\n{}\n--- server.log ---\n{}",
                tool.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                tail(&dir.join("server.log"), LOG_TAIL_LINES)
            );
        }
        let mut server = TestServer {
            target: Target::Apache,
            port,
            dir,
            child: None,
            apache_argv: None,
            down: false,
            env: BTreeMap::new(),
        };
        server.wait_ready();
        server
    }

    /// The target this server is.
    pub fn target(&self) -> Target {
        self.target
    }

    /// The server's process id, while it runs (for RSS and fd figures).
    pub fn pid(&self) -> Option<u32> {
        if self.down {
            return None;
        }
        match &self.child {
            Some(child) => Some(child.id()),
            None => apache_pid(&self.dir),
        }
    }

    /// The client port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client address, 127.0.0.1:port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The connect string for clients, `127.0.0.1:port`.
    pub fn hosts(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's log (zkr: its stderr; apache: the tool's server.log).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The last `lines` lines of the server log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    /// Sends a four-letter word and returns the answer; panics (with the log tail) on I/O errors.
    pub fn four_letter(&self, cmd: &str) -> String {
        fourlw::four_letter(self.addr(), cmd, Duration::from_secs(20)).unwrap_or_else(|e| {
            panic!("4lw {cmd} to {}: {e}\n{}", self.hosts(), self.log_tail(LOG_TAIL_LINES))
        })
    }

    /// `kill -9` the server process and wait until it is gone. The data dir is left as the
    /// crash left it.
    pub fn kill9(&mut self) {
        assert!(!self.down, "kill9 on a server that is already down");
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        } else {
            assert!(self.target.is_apache(), "a zkr server always has a child process");
            let pid = apache_pid(&self.dir).expect("apache pid file");
            let argv = read_cmdline(pid).expect("read the JVM's /proc/<pid>/cmdline");
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or("/".into());
            self.apache_argv = Some((argv, cwd));
            signal(pid, "KILL");
            wait_gone(pid, STOP_TIMEOUT);
        }
        self.down = true;
    }

    /// Starts the server again on the same data dir, config and port, and waits for `imok`.
    pub fn start_again(&mut self) {
        assert!(self.down, "start_again on a running server");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open server.log");
        let mut cmd = match self.target {
            Target::Zkr => {
                let mut cmd = Command::new(zkr_bin());
                cmd.arg(self.dir.join("zoo.cfg")).current_dir(&self.dir).envs(&self.env);
                cmd
            }
            Target::Apache => {
                let (argv, cwd) = self.apache_argv.clone().expect("kill9 recorded the argv");
                let mut cmd = Command::new(&argv[0]);
                cmd.args(&argv[1..]).current_dir(cwd);
                cmd
            }
        };
        cmd.stdin(Stdio::null()).stdout(log.try_clone().expect("dup log fd")).stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        if self.target.is_apache() {
            std::fs::write(self.dir.join("pid"), child.id().to_string()).expect("write pid");
        }
        self.child = Some(child);
        self.down = false;
        self.wait_ready();
    }

    /// The server's own directory (zkr: holds zoo.cfg, data/ and server.log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// zkr only, server down: runs the binary on the same config and expects it to exit by
    /// itself (a refused start); returns its exit status and what it logged, or panics if it is
    /// still running after `timeout` (it is then killed).
    pub fn start_expecting_exit(&mut self, timeout: Duration) -> (ExitStatus, String) {
        assert!(self.down && self.target == Target::Zkr, "a stopped zkr server");
        let out_path = self.dir.join("refused-start.log");
        let out = File::create(&out_path).expect("create refused-start.log");
        let mut child = Command::new(zkr_bin())
            .arg(self.dir.join("zoo.cfg"))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn zkr-server");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let text = std::fs::read_to_string(&out_path).unwrap_or_default();
                return (status, text);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("zkr-server kept running although a refused start was expected");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait, keeping the handle so the server can be started again.
    pub fn stop_keep(&mut self) -> Option<ExitStatus> {
        self.shutdown()
    }

    /// `kill -9` then start again on the same dir and port (crash-recovery tests).
    pub fn restart(&mut self) {
        self.kill9();
        self.start_again();
    }

    /// SIGTERM the server and wait (bounded) for it to exit; returns its exit status when we
    /// own the process (zkr always). Used to check clean shutdown.
    pub fn stop(mut self) -> Option<ExitStatus> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Option<ExitStatus> {
        let mut status = None;
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(s)) = child.try_wait() {
                    status = Some(s);
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if status.is_none() {
                eprintln!("server on port {} ignored SIGTERM for {STOP_TIMEOUT:?}", self.port);
                let _ = child.kill();
                status = child.wait().ok();
            }
        }
        if self.target.is_apache() {
            let _ = Command::new(apache_tool())
                .args(["stop", &self.port.to_string()])
                .stdin(Stdio::null())
                .output();
        }
        self.down = true;
        status
    }

    /// Apache 3.8 answers `imok` before its ZooKeeperServer runs (sessions are then refused);
    /// `srvr` tells the difference. Our server promises to serve once it says `imok`.
    fn serving(&self) -> bool {
        if !self.target.is_apache() {
            return true;
        }
        let srvr = fourlw::four_letter(self.addr(), "srvr", Duration::from_secs(2));
        matches!(srvr, Ok(text) if text.contains("Mode:"))
    }

    /// Polls `ruok` until `imok`, failing early (with the log) if our child exits.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if fourlw::is_ok(self.addr(), Duration::from_secs(2)) && self.serving() {
                return;
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "server on port {} exited during startup ({status})\n--- log ---\n{}",
                    self.port,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "server on port {} gave no imok within {START_TIMEOUT:?}\n--- log ---\n{}",
                    self.port,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "=== {:?} server 127.0.0.1:{} log tail ({}) ===\n{}\n=== end of server log ===",
                self.target,
                self.port,
                self.log_path().display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        // Also after kill9 without restart: the Apache tool must still clean its dir.
        self.shutdown();
        if self.target == Target::Zkr && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The zoo.cfg the suite gives zkr-server: the same settings the shared Apache tool uses.
fn zkr_default_cfg(port: u16, data: &Path) -> String {
    format!(
        "tickTime=2000\n\
         dataDir={}\n\
         clientPort={port}\n\
         clientPortAddress=127.0.0.1\n\
         maxClientCnxns=0\n\
         4lw.commands.whitelist=*\n\
         DigestAuthenticationProvider.superDigest={SUPER_DIGEST}\n\
         extendedTypesEnabled=true\n\
         znode.container.checkIntervalMs=1000\n",
        data.display()
    )
}

/// Applies `overrides` to a `key=value` config text: replaces existing keys in place, appends
/// the others (in key order, so the file is deterministic).
fn merge_cfg(text: &str, overrides: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut used = std::collections::BTreeSet::new();
    for line in text.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        match overrides.get(key) {
            Some(value) => {
                out.push_str(&format!("{key}={value}\n"));
                used.insert(key.to_string());
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (key, value) in overrides {
        if !used.contains(key) {
            out.push_str(&format!("{key}={value}\n"));
        }
    }
    out
}

/// The zkr-cli binary, next to [`zkr_bin`] (`ZKR_CLI_BIN` overrides); built with the package.
pub fn zkr_cli_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("ZKR_CLI_BIN") {
        return PathBuf::from(bin);
    }
    let cli = zkr_bin().with_file_name("zkr-cli");
    assert!(
        cli.is_file(),
        "{} not found: build it with `cargo build -p zkr-server`",
        cli.display()
    );
    cli
}

/// The zkr-server binary: `ZKR_SERVER_BIN`, else `$CARGO_TARGET_DIR/debug/zkr-server`, else
/// `<workspace>/target/debug/zkr-server`. Panics with a build hint if none exists.
pub fn zkr_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("ZKR_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace dir");
    let mut candidates = Vec::new();
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_relative() { workspace.join(dir) } else { dir };
        candidates.push(dir.join("debug/zkr-server"));
    }
    candidates.push(workspace.join("target/debug/zkr-server"));
    for candidate in &candidates {
        if candidate.is_file() {
            return candidate.clone();
        }
    }
    panic!(
        "zkr-server binary not found (tried {candidates:?}); build it first with \
         `cargo build -p zkr-server`, or set ZKR_SERVER_BIN, or ZKR_E2E_TARGET=apache"
    );
}

/// The shared Apache tool (`ZKR_APACHE_TOOL` overrides the default location).
fn apache_tool() -> PathBuf {
    match std::env::var("ZKR_APACHE_TOOL") {
        Ok(tool) => PathBuf::from(tool),
        Err(_) => PathBuf::from("/work/shared/tools/apache-zookeeper"),
    }
}

/// The tool's state dir for `port`: `${TMPDIR:-/tmp}/apache-zookeeper-PORT`.
fn apache_dir(port: u16) -> PathBuf {
    let tmp = std::env::var("TMPDIR").ok().filter(|t| !t.is_empty());
    PathBuf::from(tmp.unwrap_or_else(|| "/tmp".into())).join(format!("apache-zookeeper-{port}"))
}

fn apache_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("pid")).ok()?.trim().parse().ok()
}

fn read_cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect();
    (!argv.is_empty()).then_some(argv)
}

/// Sends `SIG<name>` to one pid with the `kill` utility (no unsafe code here).
fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn is_zombie(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

fn wait_gone(pid: u32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if is_zombie(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("pid {pid} still alive {timeout:?} after SIGKILL");
}

/// Picks a port on 127.0.0.1 that is free now, below the Linux ephemeral range so that client
/// sockets of parallel tests do not take it between our probe and the server's bind.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    // `ZKR_TEST_PORTS=31000-31999` keeps a run inside ports it was given (shared machines).
    let (low, high) = std::env::var("ZKR_TEST_PORTS")
        .ok()
        .and_then(|r| {
            let (a, b) = r.split_once('-')?;
            Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?))
        })
        .filter(|(a, b)| a < b && *b < 65536)
        .unwrap_or((20000, 31999));
    for _ in 0..2000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (low + seed.wrapping_add(n.wrapping_mul(13)) % (high - low + 1)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && !apache_dir(port).exists() {
            return port;
        }
    }
    panic!("no free loopback port found in {low}..={high}");
}

fn tail(path: &Path, lines: usize) -> String {
    match File::open(path).and_then(|mut f| {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut s).map(|_| s)
    }) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(no log at {}: {e})", path.display()),
    }
}

/// `line` without its terminal colour codes (`ESC [ ... m`), as a server's log has them.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}
