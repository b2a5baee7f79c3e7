//! The tool's own network namespace, where packet loss is made with nftables.
//!
//! Loss cannot be made by the proxies (dropping bytes would break a TCP stream's framing; only
//! whole packets may be lost, which TCP then retransmits), nor by `tc netem` (the kernels here
//! have none), nor by nftables rules on the machine's own loopback (every other process on it
//! would lose packets too, and a crash would leave the rules behind). So a cluster that wants
//! loss lives in a network namespace of its own: a holder process (`unshare --net`, with its
//! loopback up) keeps it; the members run in it (`nsenter --net`, which execs, so the pid is
//! still the server's); the thread that started the cluster joins it (`setns`), so the proxies
//! it starts and the client threads it spawns open their sockets there; and the loss rules
//! (`numgen random mod 100 < P drop`) are loaded there with `nft` (Debian's `nftables`).
//!
//! Removal: the namespace and its rules exist only while something is in it. The holder exits
//! when [`NetNs`] is dropped or when this process dies however it dies (it waits on a pipe
//! from us), the members are killed by the cluster, and the thread goes back to its own
//! namespace on drop. Needs root (`unshare --net`, `setns`).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::ThreadId;

/// The name of the nftables table the loss rules live in (inside the namespace only).
const TABLE: &str = "jepsen";

/// A network namespace this tool made, joined by the thread that made it.
#[derive(Debug)]
pub struct NetNs {
    /// `unshare --net` waiting on its stdin: the namespace lives while it does.
    holder: Child,
    /// Its stdin: closed on drop (or when this process dies), which ends it.
    pipe: Option<ChildStdin>,
    /// The joining thread's own namespace, to go back to on drop.
    home: File,
    /// The thread that joined (only it is moved back).
    joined: ThreadId,
}

impl NetNs {
    /// Makes a namespace with its loopback up and moves the calling thread into it: sockets
    /// it opens from now on, and threads and processes it spawns, are in the namespace.
    pub fn create_and_join() -> Result<NetNs, String> {
        // `ip` and `nft` live in /usr/sbin, which a non-login PATH may lack.
        let script =
            "PATH=$PATH:/usr/sbin:/sbin; ip link set lo up || exit 1; echo ready; read line";
        let mut holder = Command::new("unshare")
            .args(["--net", "--", "sh", "-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("unshare --net: {e} (util-linux)"))?;
        let mut line = String::new();
        let stdout = holder.stdout.take().expect("piped");
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() != "ready" {
            let _ = holder.kill();
            let output = holder.wait_with_output().map_err(|e| e.to_string())?;
            return Err(format!(
                "cannot make a network namespace (root needed): {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let pipe = holder.stdin.take();
        let home = File::open("/proc/thread-self/ns/net").map_err(|e| format!("own netns: {e}"))?;
        let mut ns = NetNs { holder, pipe, home, joined: std::thread::current().id() };
        let target = File::open(ns.path()).map_err(|e| format!("{}: {e}", ns.path().display()))?;
        let kind = Some(rustix::thread::LinkNameSpaceType::Network);
        if let Err(e) = rustix::thread::move_into_link_name_space(target.as_fd(), kind) {
            ns.pipe = None;
            return Err(format!("setns into the namespace: {e} (root needed)"));
        }
        assert!(ns.is_joined(), "the calling thread is in the namespace after setns");
        Ok(ns)
    }

    /// `/proc/<holder>/ns/net`: the namespace, for `nsenter --net=`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.holder.id()))
    }

    /// The namespace's inode number: equal for two tasks in the same network namespace.
    pub fn inode(&self) -> Option<u64> {
        std::fs::metadata(self.path()).ok().map(|m| m.ino())
    }

    /// True if the calling thread is in this namespace.
    pub fn is_joined(&self) -> bool {
        let own = std::fs::metadata("/proc/thread-self/ns/net").ok().map(|m| m.ino());
        own.is_some() && own == self.inode()
    }

    /// The pid of the holder process.
    pub fn holder_pid(&self) -> u32 {
        self.holder.id()
    }

    /// A command that runs `program` inside the namespace (`nsenter` execs it: same pid).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display())).arg("--").arg(program);
        c
    }

    /// Makes every TCP segment to or from `ports` lost with probability `percent`% (on the
    /// way out, which on loopback every packet takes once); replaces any earlier rules.
    pub fn set_loss(&self, ports: &[u16], percent: u32) -> Result<(), String> {
        assert!(percent <= 100, "a loss of {percent}%");
        assert!(!ports.is_empty(), "loss on no port");
        let set: Vec<String> = ports.iter().map(u16::to_string).collect();
        let set = set.join(", ");
        let drop = format!("numgen random mod 100 < {percent} drop");
        self.nft(&format!(
            "table inet {TABLE} {{}}\ndelete table inet {TABLE}\n\
             table inet {TABLE} {{\n  chain output {{\n    type filter hook output priority 0;\n\
             \x20   tcp dport {{ {set} }} {drop}\n    tcp sport {{ {set} }} {drop}\n  }}\n}}\n"
        ))
    }

    /// Removes the loss rules.
    pub fn clear_loss(&self) -> Result<(), String> {
        self.nft(&format!("table inet {TABLE} {{}}\ndelete table inet {TABLE}\n"))
    }

    /// The namespace's nftables ruleset, as `nft list ruleset` prints it.
    pub fn ruleset(&self) -> Result<String, String> {
        let output = self.command(nft()).args(["list", "ruleset"]).output();
        let output = output.map_err(|e| format!("nft: {e}"))?;
        if !output.status.success() {
            return Err(format!("nft: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Loads an nftables script in the namespace.
    fn nft(&self, script: &str) -> Result<(), String> {
        let mut child = self
            .command(nft())
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("nft: {e} (Debian's nftables package)"))?;
        let mut stdin = child.stdin.take().expect("piped");
        let _ = stdin.write_all(script.as_bytes());
        drop(stdin);
        let output = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("nft: {}", String::from_utf8_lossy(&output.stderr).trim()))
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if std::thread::current().id() == self.joined {
            let kind = Some(rustix::thread::LinkNameSpaceType::Network);
            let back = rustix::thread::move_into_link_name_space(self.home.as_fd(), kind);
            assert!(back.is_ok(), "the thread goes back to its own namespace: {back:?}");
        }
        self.pipe = None;
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// The `nft` program: Debian's in /usr/sbin, else whatever PATH finds.
fn nft() -> &'static str {
    ["/usr/sbin/nft", "/sbin/nft"].into_iter().find(|p| Path::new(p).is_file()).unwrap_or("nft")
}

/// Every pid in network namespace `inode` (by `/proc/<pid>/task/<tid>/ns/net`), this
/// process's threads included: none once a [`NetNs`] and everything in it are gone.
pub fn tasks_in(inode: u64) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(tasks) = std::fs::read_dir(entry.path().join("task")) else { continue };
        let inside = tasks
            .flatten()
            .any(|t| std::fs::metadata(t.path().join("ns/net")).is_ok_and(|m| m.ino() == inode));
        if inside {
            found.push(pid);
        }
    }
    found
}
