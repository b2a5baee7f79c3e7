//! The servers under test: an ensemble of local processes this tool starts (our `zkr-server`,
//! or any ZooKeeper through a command template), or an existing ensemble it only connects to.
//!
//! A local ensemble member `i` (0-based, `myid` i+1) listens for clients on
//! `127.0.0.1:base+i`, for quorum traffic on `base+100+i` and for elections on `base+200+i`;
//! its zoo.cfg, `myid`, data and log live in `<dir>/s<i+1>`. Faults act on the process by its
//! pid: SIGKILL then a restart on the same data, SIGSTOP then SIGCONT. Partitions: member `i`
//! reaches member `j`'s quorum and election ports through proxies of its own
//! (`base+300+2(i·n+j)` and the next port; see `proxy`), named in `i`'s zoo.cfg as `server.j`,
//! so cutting the proxies of a pair cuts it. Everything started is stopped when the cluster is
//! dropped (paused processes are resumed first).
//!
//! Clock faults: with [`Setup::faketime`] every member runs under libfaketime (Debian's
//! `faketime` package) reading its offset from `<dir>/s<i>/faketime` (re-read every second),
//! which [`Cluster::set_clock`] rewrites. Disk faults ([`Setup::disk_faults`]): each member's
//! zoo.cfg names `<dir>/s<i>/disk-fault` as `zkr.diskFaultFile`, whose text slows or stalls its
//! syncs ([`Cluster::set_disk`]); only a zkr-server built with the `bugs` feature takes it.
//!
//! Packet loss ([`Setup::netns`]): the cluster lives in a network namespace of its own
//! (`netns`), where nftables rules drop a random share of the TCP segments of chosen members
//! ([`Cluster::set_loss`]). A member's segments are told apart by port: its client, quorum and
//! election ports, and the proxy ports it reaches the others through (so loss needs the
//! proxies too: without them, a member's outgoing connections come from `127.0.0.1` and an
//! ephemeral port like everyone's).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::netns::NetNs;
use super::proxy::Proxy;
use crate::history::SyncZxid;

/// How a member's process is started.
#[derive(Clone, Debug)]
pub enum Launch {
    /// Our server binary, given the zoo.cfg path.
    Zkr(PathBuf),
    /// A shell command; `{cfg}` is replaced by the zoo.cfg path and `{dir}` by the member's
    /// directory. Start the server with `exec` so that the pid is the server's.
    Template(String),
}

/// Where Debian's `faketime` package puts libfaketime (the thread-safe build).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// How a local ensemble is set up, besides its size and ports.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// Members reach each other through proxies (needed for partitions). A proxy accepts a
    /// connection even while its target is down and then closes it, which is not what a dead
    /// host looks like (refused), so it changes how fast members notice a dead peer: use it
    /// only when partitions are wanted.
    pub proxied: bool,
    /// `key=value` lines appended to every member's zoo.cfg (a later key overrides the
    /// defaults, e.g. `tickTime=200`).
    pub zoo_cfg: Vec<String>,
    /// Run every member under libfaketime so its clock can be stepped and drifted.
    pub faketime: bool,
    /// Give every member a disk fault control file (`zkr.diskFaultFile`: zkr with the `bugs`
    /// feature only).
    pub disk_faults: bool,
    /// Run the ensemble, its proxies and (from the thread that starts it) the clients in a
    /// network namespace of this tool's own, where packet loss can be made (needs root, `ip`,
    /// `nsenter` and `nft`; implies `proxied`). The thread that calls [`Cluster::start`]
    /// joins the namespace until the cluster is dropped: run the workload from it.
    pub netns: bool,
}

/// One local member.
#[derive(Debug)]
struct Member {
    dir: PathBuf,
    cfg: PathBuf,
    child: Option<Child>,
    paused: bool,
}

/// The servers under test.
#[derive(Debug)]
pub struct Cluster {
    launch: Option<Launch>,
    setup: Setup,
    members: Vec<Member>,
    addrs: Vec<SocketAddr>,
    /// The proxies member `i` reaches member `j` through: `(i, j)` → (quorum, election).
    proxies: BTreeMap<(usize, usize), (Proxy, Proxy)>,
    /// The first client port (see the module doc for the others).
    base_port: u16,
    /// The namespace the cluster lives in, if [`Setup::netns`]. Declared last: dropped after
    /// the members and the proxies (whose drop still connects inside it).
    netns: Option<NetNs>,
}

impl Cluster {
    /// An existing ensemble: no process of ours, no faults.
    pub fn attach(addrs: Vec<SocketAddr>) -> Cluster {
        let setup = Setup::default();
        let (members, proxies) = (Vec::new(), BTreeMap::new());
        Cluster { launch: None, setup, members, addrs, proxies, base_port: 0, netns: None }
    }

    /// Writes the configuration of `n` members under `dir` and starts them all.
    pub fn start(
        launch: Launch,
        n: usize,
        base_port: u16,
        dir: &Path,
        setup: &Setup,
    ) -> Result<Cluster, String> {
        let proxied = setup.proxied || setup.netns;
        if setup.faketime && !Path::new(LIBFAKETIME).is_file() {
            return Err(format!(
                "clock faults need libfaketime ({LIBFAKETIME}): apt-get install \
                 faketime (tests/setup.sh does)"
            ));
        }
        // Joined first: the proxies listen and connect inside it.
        let netns = if setup.netns { Some(NetNs::create_and_join()?) } else { None };
        let port = |offset: u16, i: usize| base_port + offset + i as u16;
        let proxy_port = |i: usize, j: usize| base_port + 300 + 2 * (i * n + j) as u16;
        let local = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let mut proxies = BTreeMap::new();
        let pairs = (0..n).flat_map(|i| (0..n).map(move |j| (i, j)));
        for (i, j) in pairs.filter(|(i, j)| proxied && i != j) {
            let spawn = |listen: u16, target: u16| {
                Proxy::spawn(local(listen), local(target))
                    .map_err(|e| format!("proxy {listen}: {e}"))
            };
            let quorum = spawn(proxy_port(i, j), port(100, j))?;
            let election = spawn(proxy_port(i, j) + 1, port(200, j))?;
            proxies.insert((i, j), (quorum, election));
        }
        let servers_of = |i: usize| -> String {
            (0..n)
                .map(|j| {
                    let (q, e) = if i == j || !proxied {
                        (port(100, j), port(200, j))
                    } else {
                        (proxy_port(i, j), proxy_port(i, j) + 1)
                    };
                    format!("server.{}=127.0.0.1:{q}:{e}\n", j + 1)
                })
                .collect()
        };
        let mut members = Vec::new();
        let mut addrs = Vec::new();
        for i in 0..n {
            let member_dir = dir.join(format!("s{}", i + 1));
            let data = member_dir.join("data");
            std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
            std::fs::write(data.join("myid"), format!("{}\n", i + 1)).map_err(|e| e.to_string())?;
            let cfg = member_dir.join("zoo.cfg");
            let mut text = format!(
                "tickTime=1000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
                 clientPortAddress=127.0.0.1\nmaxClientCnxns=0\n4lw.commands.whitelist=*\n\
                 admin.enableServer=false\n{}",
                data.display(),
                port(0, i),
                servers_of(i)
            );
            if setup.disk_faults {
                let control = member_dir.join("disk-fault");
                std::fs::write(&control, "").map_err(|e| format!("{}: {e}", control.display()))?;
                text.push_str(&format!("zkr.diskFaultFile={}\n", control.display()));
            }
            if setup.faketime {
                let clock = member_dir.join("faketime");
                std::fs::write(&clock, "+0\n").map_err(|e| format!("{}: {e}", clock.display()))?;
            }
            for line in &setup.zoo_cfg {
                text.push_str(line);
                text.push('\n');
            }
            std::fs::write(&cfg, text).map_err(|e| format!("{}: {e}", cfg.display()))?;
            members.push(Member { dir: member_dir, cfg, child: None, paused: false });
            addrs.push(SocketAddr::from(([127, 0, 0, 1], port(0, i))));
        }
        let setup = Setup { proxied, ..setup.clone() };
        let launch = Some(launch);
        let mut cluster = Cluster { launch, setup, members, addrs, proxies, base_port, netns };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        Ok(cluster)
    }

    /// The client addresses, one per member.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// True if this tool started the processes (and so can inject faults).
    pub fn is_local(&self) -> bool {
        self.launch.is_some()
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let launch = self.launch.clone().ok_or("an attached ensemble is not ours to start")?;
        let member = &mut self.members[i];
        assert!(member.child.is_none(), "member {i} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(member.dir.join("server.log"))
            .map_err(|e| e.to_string())?;
        let faked_monotonic = matches!(launch, Launch::Zkr(_));
        let new = |program: &Path| match &self.netns {
            Some(ns) => ns.command(program),
            None => Command::new(program),
        };
        let mut command = match launch {
            Launch::Zkr(bin) => {
                let mut c = new(&bin);
                c.arg(&member.cfg);
                c
            }
            Launch::Template(template) => {
                let line = template
                    .replace("{cfg}", &member.cfg.display().to_string())
                    .replace("{dir}", &member.dir.display().to_string());
                let mut c = new(Path::new("sh"));
                c.arg("-c").arg(line);
                c
            }
        };
        if self.setup.faketime {
            // Offsets from the member's file, re-read every second. A JVM hangs when its
            // monotonic clock is faked (libfaketime's README), so templates move the wall
            // clock only.
            command
                .env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME_TIMESTAMP_FILE", member.dir.join("faketime"))
                .env("FAKETIME_CACHE_DURATION", "1");
            if !faked_monotonic {
                command.env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
            }
        }
        let err = log.try_clone().map_err(|e| e.to_string())?;
        command.stdin(Stdio::null()).stdout(log).stderr(err);
        let child = command.spawn().map_err(|e| format!("cannot start member {}: {e}", i + 1))?;
        member.child = Some(child);
        member.paused = false;
        Ok(())
    }

    /// The member that says it leads (`srvr`), if one answers.
    pub fn leader(&self) -> Option<usize> {
        (0..self.addrs.len()).find(|i| {
            !self.members.get(*i).is_some_and(|m| m.paused)
                && four_letter(self.addrs[*i], "srvr").contains("Mode: leader")
        })
    }

    /// What the servers' sync replies mean for the checker: exact for zkr (our own binary, or
    /// members whose `srvr` version says `-zkr-`); a lower bound for anything else, which is
    /// taken to be Apache ZooKeeper (its leader answers a sync like a read: docs/JEPSEN.md).
    /// A server that does not say (`srvr` refused) gets the weaker reading.
    pub fn sync_zxid(&self) -> SyncZxid {
        if matches!(self.launch, Some(Launch::Zkr(_))) {
            return SyncZxid::Exact;
        }
        let version = |addr: &SocketAddr| {
            let text = four_letter(*addr, "srvr");
            text.lines().find_map(|l| l.strip_prefix("Zookeeper version: ")).map(str::to_owned)
        };
        let versions: Vec<String> = self.addrs.iter().filter_map(version).collect();
        if !versions.is_empty() && versions.iter().all(|v| v.contains("-zkr-")) {
            SyncZxid::Exact
        } else {
            SyncZxid::LowerBound
        }
    }

    /// True if member `i`'s process is running (not killed; maybe paused).
    pub fn is_up(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// SIGKILL member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if self.setup.faketime {
                // libfaketime (0.9.10) keeps a shared-memory segment and a semaphore per
                // process, removed only on a clean exit.
                for name in ["faketime_shm_", "sem.faketime_sem_"] {
                    let _ = std::fs::remove_file(format!("/dev/shm/{name}{}", child.id()));
                }
            }
        }
        self.members[i].paused = false;
    }

    /// Starts member `i` again on its data.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        self.spawn(i)
    }

    /// Cuts every link between `side` and the other members (both directions); heals the
    /// links within each side. Needs a cluster started `proxied` (else nothing is cut).
    pub fn partition(&self, side: &[usize]) {
        for ((i, j), (quorum, election)) in &self.proxies {
            let cut = side.contains(i) != side.contains(j);
            quorum.set_cut(cut);
            election.set_cut(cut);
        }
    }

    /// A one-way partition: nothing `from` sends reaches `to`, while `to` still reaches
    /// `from`. Both proxies of the pair stall the direction from `from` to `to`.
    pub fn one_way(&self, from: usize, to: usize) {
        if let Some((quorum, election)) = self.proxies.get(&(from, to)) {
            quorum.set_stalled(true, true);
            election.set_stalled(true, true);
        }
        if let Some((quorum, election)) = self.proxies.get(&(to, from)) {
            quorum.set_stalled(false, true);
            election.set_stalled(false, true);
        }
    }

    /// A bridge: the members other than `bridge` split into two halves that cannot reach
    /// each other, while `bridge` still reaches, and is reached by, both (Jepsen's bridge).
    /// Returns the halves. Needs a cluster started `proxied` (else nothing is cut).
    pub fn bridge(&self, bridge: usize) -> (Vec<usize>, Vec<usize>) {
        let n = self.addrs.len();
        assert!(bridge < n, "bridge n{} of {n}", bridge + 1);
        let others: Vec<usize> = (0..n).filter(|i| *i != bridge).collect();
        let (left, right) = others.split_at(others.len() / 2);
        for ((i, j), (quorum, election)) in &self.proxies {
            let cut =
                (left.contains(i) && right.contains(j)) || (right.contains(i) && left.contains(j));
            assert!(!cut || (*i != bridge && *j != bridge), "the bridge keeps its links");
            quorum.set_cut(cut);
            election.set_cut(cut);
        }
        (left.to_vec(), right.to_vec())
    }

    /// The ports whose TCP segments are member `i`'s: its client, quorum and election ports,
    /// and the proxy ports it reaches the others through.
    fn ports_of(&self, i: usize) -> Vec<u16> {
        let n = self.addrs.len();
        let port = |offset: u16, i: usize| self.base_port + offset + i as u16;
        let mut ports = vec![port(0, i), port(100, i), port(200, i)];
        for j in (0..n).filter(|j| *j != i) {
            let proxy = self.base_port + 300 + 2 * (i * n + j) as u16;
            ports.extend([proxy, proxy + 1]);
        }
        ports
    }

    /// Makes `percent`% of the TCP segments to or from `members` lost (each one drawn on its
    /// own, so TCP retransmits them late), replacing any loss before. Needs [`Setup::netns`].
    pub fn set_loss(&self, members: &[usize], percent: u32) -> Result<(), String> {
        let ns = self.netns.as_ref().ok_or("the ensemble was not started in a namespace")?;
        let ports: Vec<u16> = members.iter().flat_map(|i| self.ports_of(*i)).collect();
        ns.set_loss(&ports, percent)
    }

    /// Removes the packet loss.
    pub fn heal_loss(&self) -> Result<(), String> {
        self.netns.as_ref().map_or(Ok(()), NetNs::clear_loss)
    }

    /// The namespace the cluster lives in, if it was started with [`Setup::netns`].
    pub fn netns(&self) -> Option<&NetNs> {
        self.netns.as_ref()
    }

    /// A silent partition: every byte between `side` and the other members is held, both
    /// ways, with the connections left open (packets dropped by a firewall, not refused):
    /// the members notice only by their timeouts (`syncLimit`), not by a closed connection.
    pub fn silence(&self, side: &[usize]) {
        for ((i, j), (quorum, election)) in &self.proxies {
            if side.contains(i) != side.contains(j) {
                for proxy in [quorum, election] {
                    proxy.set_stalled(true, true);
                    proxy.set_stalled(false, true);
                }
            }
        }
    }

    /// Sets member `i`'s clock offset from the true time, in seconds (libfaketime; needs
    /// [`Setup::faketime`]). The member reads it within a second.
    pub fn set_clock(&self, i: usize, offset_s: f64) -> Result<(), String> {
        if !self.setup.faketime {
            return Err("the ensemble was not started under libfaketime".into());
        }
        let file = self.members[i].dir.join("faketime");
        std::fs::write(&file, format!("{offset_s:+.3}\n"))
            .map_err(|e| format!("{}: {e}", file.display()))
    }

    /// Sets member `i`'s disk: `""` healthy, `"slow MS"`, `"stall"` (see `Setup::disk_faults`).
    pub fn set_disk(&self, i: usize, fault: &str) -> Result<(), String> {
        if !self.setup.disk_faults {
            return Err("the ensemble was not started with disk fault files".into());
        }
        let file = self.members[i].dir.join("disk-fault");
        std::fs::write(&file, fault).map_err(|e| format!("{}: {e}", file.display()))
    }

    /// Heals every link.
    pub fn heal_partitions(&self) {
        self.partition(&[]);
        for (quorum, election) in self.proxies.values() {
            for proxy in [quorum, election] {
                proxy.set_stalled(true, false);
                proxy.set_stalled(false, false);
            }
        }
    }

    /// SIGSTOP (`pause`) or SIGCONT member `i`.
    pub fn set_paused(&mut self, i: usize, pause: bool) {
        let member = &mut self.members[i];
        let Some(child) = &member.child else { return };
        let signal = if pause { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").arg(signal).arg(child.id().to_string()).status();
        if status.is_ok_and(|s| s.success()) {
            member.paused = pause;
        }
    }

    /// Waits until every running member answers `ruok`, at most `limit`.
    pub fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.leader().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].paused {
                self.set_paused(i, false);
            }
            self.kill(i);
        }
    }
}

/// Sends a four-letter word and returns the answer ("" if the member does not answer).
pub fn four_letter(addr: SocketAddr, word: &str) -> String {
    let timeout = Duration::from_millis(500);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.write_all(word.as_bytes());
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}
