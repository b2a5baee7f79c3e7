//! A real three-member zkr ensemble on loopback for the end-to-end tests: each member a
//! `zkr-server` process in its own directory, stopped (SIGKILL) when its [`Member`] drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::fourlw::four_letter;
use crate::server::{free_port, zkr_bin};

/// One member: its id, directory (zoo.cfg, data/, server-ID.log), ports and process.
pub struct Member {
    /// `myid`.
    pub id: u64,
    /// Its directory.
    pub dir: PathBuf,
    /// Client port on 127.0.0.1.
    pub client_port: u16,
    /// Quorum port (its `server.N` line's first port).
    pub quorum_port: u16,
    /// The running process, if started.
    pub child: Option<Child>,
}

impl Member {
    /// Starts the process, its output going to [`Member::log_path`].
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "server {} is already running", self.id);
        let log = std::fs::File::create(self.log_path()).unwrap();
        let child = Command::new(zkr_bin())
            .arg(self.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn zkr-server");
        self.child = Some(child);
    }

    /// SIGKILL, then reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Where its output goes.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("server-{}.log", self.id))
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A file in its directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `Mode:` from `srvr` (leader, follower, standalone), or `None` if it does not answer.
    pub fn mode(&self) -> Option<String> {
        let addr = format!("127.0.0.1:{}", self.client_port).parse().unwrap();
        let srvr = four_letter(addr, "srvr", Duration::from_secs(2)).ok()?;
        srvr.lines().find_map(|l| l.strip_prefix("Mode: ").map(str::to_string))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Three members under `root` (not started) on free ports, tickTime 500, every 4lw allowed;
/// `extra(i, dir)` adds lines to member `i`'s zoo.cfg (and may write files into `dir`).
pub fn three_members(root: &Path, extra: impl Fn(usize, &Path) -> String) -> Vec<Member> {
    let ports: Vec<(u16, u16, u16)> =
        (0..3).map(|_| (free_port(), free_port(), free_port())).collect();
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, (_, quorum, election))| {
            format!("server.{}=127.0.0.1:{quorum}:{election}\n", i + 1)
        })
        .collect();
    (0..3)
        .map(|i| {
            let id = i as u64 + 1;
            let dir = root.join(format!("s{id}"));
            std::fs::create_dir_all(dir.join("data")).unwrap();
            std::fs::write(dir.join("data/myid"), id.to_string()).unwrap();
            let cfg = format!(
                "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
                 clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n{servers}{}",
                dir.join("data").display(),
                ports[i].0,
                extra(i, &dir),
            );
            std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
            Member { id, dir, client_port: ports[i].0, quorum_port: ports[i].1, child: None }
        })
        .collect()
}

/// Waits (60 s at most) for one leader and `up - 1` followers among `members`; returns the
/// leader's index. Two leaders seen at once fail the test at once.
pub fn wait_for_roles(members: &[Member], up: usize, what: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let modes: Vec<Option<String>> = members.iter().map(|m| m.mode()).collect();
        let leaders: Vec<usize> =
            (0..members.len()).filter(|i| modes[*i].as_deref() == Some("leader")).collect();
        let followers = modes.iter().filter(|m| m.as_deref() == Some("follower")).count();
        if leaders.len() == 1 && followers + 1 == up {
            return leaders[0];
        }
        assert!(leaders.len() <= 1, "two leaders at once: {modes:?}");
        if Instant::now() > deadline {
            let logs: Vec<String> = members.iter().map(|m| m.log()).collect();
            panic!("{what}: no settled ensemble within 60 s: {modes:?}\n{}", logs.join("\n---\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
