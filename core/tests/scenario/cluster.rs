//! The scripted world around pure `Node`s: one disk per server (durable txns, appended but not
//! yet durable txns, epochs, snapshot), a network of numbered in-flight peer messages that only
//! moves when a script says so, client connections, and the observers the checks read.
//!
//! The output contract of `core/src/io.rs` is carried out by core's own executor
//! (`zkr_core::io::ready::Executor`, as in the server, the simulator and the other harnesses),
//! through [`ScriptShell`]'s effects, each of which [`Env::apply`] does: `Persist` appends to
//! the unsynced part of the disk (durable only after a persist step, which reports
//! `Input::Persisted`), `PersistEpochs`/`TruncateLog`/`InstallSnapshot` are durable at once,
//! `PeerSend` enters the network unless a partition cuts the link, client frames go to the
//! client's inbox. Nothing is delivered behind the script's back.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use zkr_core::config::{Bugs, Member};
use zkr_core::io::ready::{DiskWrite, Effects, Executor, LogReadRequest, Written};
use zkr_core::io::{Input, Output};
use zkr_core::snapshot::Snapshot;
use zkr_core::txn::LoggedTxn;
use zkr_core::types::{ConnId, ServerId};
use zkr_core::zab::message::ZabMessage;
use zkr_core::{Config, Node, NodeInit};

use super::client::Client;
use super::fmt::{describe, zx};
use super::observe::Observer;

/// What one server's disk holds.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    /// The installed snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Appended txns a persist step made durable, in zxid order.
    pub durable: Vec<LoggedTxn>,
    /// Appended txns still waiting for a persist step (lost by a crash that loses writes).
    pub unsynced: Vec<LoggedTxn>,
    /// `(acceptedEpoch, currentEpoch)`, written synchronously.
    pub epochs: (u32, u32),
}

/// One ensemble member.
pub struct Server {
    /// Non-voting.
    pub observer: bool,
    /// `None` while crashed.
    pub node: Option<Node>,
    /// Its disk.
    pub disk: Disk,
    /// Carries out its outputs (a new one per incarnation).
    pub executor: Executor,
    /// Make appends durable right after each step (`persist-mode S auto`).
    pub auto_persist: bool,
    /// Incarnations started (seeds the node's PRNG).
    pub starts: u64,
    /// The role line last printed, to report changes.
    pub last_role: String,
}

/// A peer message on the wire.
#[derive(Clone, Debug)]
pub struct Msg {
    /// Its number, for `deliver #N`.
    pub id: u64,
    /// Sender.
    pub from: u64,
    /// Receiver.
    pub to: u64,
    /// The message.
    pub msg: ZabMessage,
    /// Delayed in the network: `stabilize` passes it over and partitions do not lose it; only
    /// a `deliver` or `drop` naming it moves it.
    pub held: bool,
}

/// The scripted world.
pub struct Env {
    /// Servers by id.
    pub servers: BTreeMap<u64, Server>,
    /// In-flight peer messages, oldest first.
    pub net: Vec<Msg>,
    /// Number of the next message.
    pub next_msg: u64,
    /// Links cut by a partition, both directions listed.
    pub cut: BTreeSet<(u64, u64)>,
    /// Rules `(from, to, kind)` (0 and "" match any) that hold a new message as it is sent.
    pub hold_rules: Vec<(u64, u64, String)>,
    /// The shared wall clock, ms.
    pub wall_ms: i64,
    /// The deliberate bugs every node runs with.
    pub bugs: Bugs,
    /// `Config::commit_log_count` of every node (committed txns kept for DIFF syncs).
    pub commit_log_count: usize,
    /// `Config::disk_diff_max_txns` of every node (0: a learner behind memory gets SNAP).
    pub disk_diff_max_txns: u64,
    /// Answers to log reads, fed to the server that asked once its plan is carried out.
    pub log_reads: Vec<(u64, Input)>,
    /// Clients by name.
    pub clients: BTreeMap<String, Client>,
    /// Next connection id.
    pub next_conn: u64,
    /// What the checks watch.
    pub observer: Observer,
    /// Per server, the outputs it produced during the current command, described.
    pub outputs: BTreeMap<u64, Vec<String>>,
    /// The current command's output.
    pub out: String,
}

/// The wall clock scripts start at (2023-11-14T22:13:20Z).
pub const START_MS: i64 = 1_700_000_000_000;

impl Env {
    /// An empty world.
    pub fn new(bugs: Bugs) -> Env {
        Env {
            servers: BTreeMap::new(),
            net: Vec::new(),
            next_msg: 1,
            cut: BTreeSet::new(),
            hold_rules: Vec::new(),
            wall_ms: START_MS,
            bugs,
            commit_log_count: Config::default().commit_log_count,
            disk_diff_max_txns: Config::default().disk_diff_max_txns,
            log_reads: Vec::new(),
            clients: BTreeMap::new(),
            next_conn: 1,
            observer: Observer::default(),
            outputs: BTreeMap::new(),
            out: String::new(),
        }
    }

    /// Adds `voters` voting servers and `observers` observers, all started with empty disks.
    pub fn add_servers(&mut self, voters: u64, observers: u64) {
        assert!(self.servers.is_empty(), "add-servers once per script");
        for id in 1..=voters + observers {
            let server = Server {
                observer: id > voters,
                node: None,
                disk: Disk::default(),
                executor: Executor::new(),
                auto_persist: true,
                starts: 0,
                last_role: "down".into(),
            };
            self.servers.insert(id, server);
        }
        let ids: Vec<u64> = self.servers.keys().copied().collect();
        for id in ids {
            self.start(id);
        }
    }

    fn config(&self, id: u64) -> Config {
        let members = self
            .servers
            .iter()
            .map(|(i, s)| Member { id: ServerId(*i), observer: s.observer })
            .collect();
        Config {
            server_id: ServerId(id),
            members,
            bugs: self.bugs.clone(),
            commit_log_count: self.commit_log_count,
            disk_diff_max_txns: self.disk_diff_max_txns,
            ..Config::default()
        }
    }

    /// Starts server `id` from what its disk holds durably.
    pub fn start(&mut self, id: u64) {
        let config = self.config(id);
        let server = self.servers.get_mut(&id).expect("known server");
        assert!(server.node.is_none(), "server {id} is already up");
        server.starts += 1;
        let disk = &server.disk;
        let init = NodeInit {
            wall_ms: self.wall_ms,
            seed: id * 1000 + server.starts,
            snapshot: disk.snapshot.clone(),
            txns: disk.durable.clone(),
            accepted_epoch: disk.epochs.0,
            current_epoch: disk.epochs.1,
        };
        let node = Node::new(config, init).expect("the node recovers from its disk");
        self.observer.on_start(id, &node, &server.disk);
        server.node = Some(node);
        server.executor = Executor::new();
        self.after_step(id);
    }

    /// Crashes server `id`; unless `keep_unsynced`, appends that were not yet durable are lost.
    /// Messages to and from it are lost with its connections; its clients are disconnected.
    /// Crashes `id`: what is in flight to or from it is lost, except, with `keep_held`, the
    /// held messages to it (datagrams still in the network, which its next incarnation may
    /// receive: tier 1 seed 214269's duplicate FOLLOWERINFO did).
    pub fn crash(&mut self, id: u64, keep_unsynced: bool, keep_held: bool) {
        let server = self.servers.get_mut(&id).expect("known server");
        assert!(server.node.take().is_some(), "server {id} is already down");
        let unsynced = std::mem::take(&mut server.disk.unsynced);
        let kept = unsynced.len();
        if keep_unsynced {
            server.disk.durable.extend(unsynced);
        }
        let verb = if keep_unsynced { "kept" } else { "lost" };
        let _ = writeln!(self.out, "server {id} crashed ({verb} {kept} unsynced appends)");
        server.last_role = "down".into();
        self.net.retain(|m| m.from != id && (m.to != id || (keep_held && m.held)));
        for client in self.clients.values_mut().filter(|c| c.server == id) {
            client.closed = true;
        }
    }

    /// Feeds one input to a running server and carries out what it asks for.
    pub fn step(&mut self, id: u64, input: Input) {
        let Some(node) = self.servers.get_mut(&id).and_then(|s| s.node.as_mut()) else {
            return;
        };
        node.step(input);
        self.after_step(id);
    }

    /// Carries out a server's outputs until it asks for nothing more, then lets the observers
    /// look at it and reports a role change.
    fn after_step(&mut self, id: u64) {
        loop {
            let Some(node) = self.servers.get_mut(&id).and_then(|s| s.node.as_mut()) else {
                return;
            };
            let outputs = node.take_outputs();
            if outputs.is_empty() {
                break;
            }
            self.carry_out(id, outputs);
            let server = &self.servers[&id];
            if server.auto_persist && !server.disk.unsynced.is_empty() {
                self.persist(id);
            }
        }
        let server = self.servers.get_mut(&id).expect("known server");
        let node = server.node.as_ref().expect("up");
        self.observer.after_step(id, node, &server.disk);
        let role = super::fmt::role(node);
        if role != server.last_role {
            let _ = writeln!(self.out, "server {id}: {role}");
            server.last_role = role;
        }
    }

    /// Carries out a server's outputs through core's executor, which keeps the contract's order.
    pub fn carry_out(&mut self, id: u64, outputs: Vec<Output>) {
        let server = self.servers.get_mut(&id).expect("known server");
        let mut executor = std::mem::take(&mut server.executor);
        executor.run_sync(outputs, &mut ScriptShell { env: self, id });
        self.servers.get_mut(&id).expect("known server").executor = executor;
        // Log reads are answered at once, after the plan; the answer's outputs are the node's
        // next plan.
        for (server, answer) in std::mem::take(&mut self.log_reads) {
            assert_eq!(server, id, "only the server carrying out its plan reads");
            if let Some(node) = self.servers.get_mut(&id).and_then(|s| s.node.as_mut()) {
                node.step(answer);
            }
        }
        self.drain_clients();
    }

    /// Does one effect the executor asked for, written as the output it comes from.
    fn apply(&mut self, id: u64, output: Output) {
        {
            self.outputs.entry(id).or_default().push(describe_output(&output));
            let server = self.servers.get_mut(&id).expect("known server");
            let disk = &mut server.disk;
            match output {
                Output::Persist { txn } => {
                    let txn = std::sync::Arc::unwrap_or_clone(txn);
                    let last = disk.unsynced.last().or(disk.durable.last());
                    assert!(last.is_none_or(|t| t.header.zxid < txn.header.zxid), "appends grow");
                    self.observer.on_append(id, server.node.as_ref(), &txn);
                    disk.unsynced.push(txn);
                }
                Output::PersistEpochs { accepted_epoch, current_epoch } => {
                    disk.epochs = (accepted_epoch, current_epoch);
                }
                Output::TruncateLog { after } => {
                    disk.durable.retain(|t| t.header.zxid <= after);
                    disk.unsynced.retain(|t| t.header.zxid <= after);
                }
                Output::ReadLog { request, after, upto, max_txns } => {
                    // The disk's log, cache included (a read sees what the OS has).
                    let log: Vec<LoggedTxn> =
                        disk.durable.iter().chain(&disk.unsynced).cloned().collect();
                    let read = LogReadRequest { request, after, upto, max_txns };
                    self.log_reads.push((id, read.answer_from(&log)));
                }
                Output::InstallSnapshot { snapshot } => {
                    disk.durable.clear();
                    disk.unsynced.clear();
                    self.observer.on_snapshot(id, snapshot.zxid);
                    disk.snapshot = Some(*snapshot);
                }
                Output::PeerSend { to, msg } => {
                    self.observer.on_send(id, server.node.as_ref(), &msg);
                    let to = to.0;
                    let kind = super::fmt::kind(&msg);
                    let held = self.hold_rules.iter().any(|(f, t, k)| {
                        (*f == 0 || *f == id)
                            && (*t == 0 || *t == to)
                            && (k.is_empty() || *k == kind)
                    });
                    // A held message is delayed, not lost: a cut link does not lose it.
                    if (held || !self.cut.contains(&(id, to))) && self.servers.contains_key(&to) {
                        let msg = Msg { id: self.next_msg, from: id, to, msg, held };
                        self.next_msg += 1;
                        self.net.push(msg);
                    }
                }
                Output::ClientSend { conn, frame } => {
                    let len = u32::from_be_bytes(frame[..4].try_into().expect("prefix")) as usize;
                    assert_eq!(len, frame.len() - 4, "frame length prefix");
                    let client =
                        self.clients.values_mut().find(|c| c.conn == conn && c.server == id);
                    let client = client.expect("a frame for a known client");
                    client.inbox.push_back(frame[4..].to_vec());
                }
                Output::ClientClose { conn } => {
                    if let Some(c) =
                        self.clients.values_mut().find(|c| c.conn == conn && c.server == id)
                    {
                        c.closed = true;
                    }
                    let node = server.node.as_mut().expect("up");
                    node.step(Input::ClientClosed { conn });
                }
            }
        }
    }

    /// Makes everything server `id` appended durable and tells it so.
    pub fn persist(&mut self, id: u64) {
        let disk = &mut self.servers.get_mut(&id).expect("known server").disk;
        let unsynced = std::mem::take(&mut disk.unsynced);
        let Some(upto) = unsynced.last().map(|t| t.header.zxid) else { return };
        disk.durable.extend(unsynced);
        let persisted = self.servers[&id].executor.persisted(upto);
        self.step(id, persisted);
    }

    /// Delivers one in-flight message (by position in `net`).
    pub fn deliver_at(&mut self, index: usize) {
        let m = self.net.remove(index);
        let _ = writeln!(self.out, "deliver #{} {}->{} {}", m.id, m.from, m.to, describe(&m.msg));
        let wall_ms = self.wall_ms;
        self.step(m.to, Input::PeerMessage { from: ServerId(m.from), msg: m.msg, wall_ms });
    }

    /// One tick of the wall clock for the chosen servers that are up.
    pub fn tick(&mut self, ids: &[u64]) {
        self.wall_ms += 100;
        for id in ids {
            let wall_ms = self.wall_ms;
            self.step(*id, Input::Tick { wall_ms });
        }
    }

    /// Delivers messages, oldest first, until none is in flight. Quiet: only role changes and
    /// client replies are printed.
    pub fn stabilize(&mut self) {
        let mut budget = 100_000;
        while let Some(index) = self.net.iter().position(|m| !m.held) {
            budget -= 1;
            assert!(budget > 0, "the network never quiets down");
            let m = self.net.remove(index);
            let wall_ms = self.wall_ms;
            self.step(m.to, Input::PeerMessage { from: ServerId(m.from), msg: m.msg, wall_ms });
        }
    }

    /// Cuts every link between the two groups and loses what is in flight across them.
    pub fn partition(&mut self, a: &[u64], b: &[u64]) {
        for x in a {
            for y in b {
                self.cut.insert((*x, *y));
                self.cut.insert((*y, *x));
            }
        }
        let cut = &self.cut;
        self.net.retain(|m| m.held || !cut.contains(&(m.from, m.to)));
    }

    /// Cuts the link from `a` to `b` only, losing what is in flight on it.
    pub fn partition_one_way(&mut self, a: u64, b: u64) {
        self.cut.insert((a, b));
        self.net.retain(|m| m.held || (m.from, m.to) != (a, b));
    }

    /// The ids of servers that are up.
    pub fn up(&self) -> Vec<u64> {
        self.servers.iter().filter(|(_, s)| s.node.is_some()).map(|(id, _)| *id).collect()
    }

    /// A running node.
    pub fn node(&self, id: u64) -> Option<&Node> {
        self.servers.get(&id).and_then(|s| s.node.as_ref())
    }

    /// Opens a connection from client `name` to server `id` and sends its handshake.
    pub fn connect(&mut self, name: &str, id: u64) {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.clients.insert(name.to_string(), Client::new(name, id, conn));
        self.step(id, Input::ClientConnected { conn, remote_ip: "10.0.0.9".into() });
        let payload = super::client::connect_payload();
        let wall_ms = self.wall_ms;
        self.step(id, Input::ClientFrame { conn, payload, wall_ms });
    }

    /// Decodes what clients received and prints it.
    fn drain_clients(&mut self) {
        for client in self.clients.values_mut() {
            for line in client.drain() {
                let _ = writeln!(self.out, "{line}");
            }
        }
    }

    /// A one-line summary of a server, for `print-state`.
    pub fn state_line(&self, id: u64) -> String {
        let server = &self.servers[&id];
        let Some(node) = &server.node else {
            let d = &server.disk;
            return format!(
                "{id}: down; disk epochs={}/{} durable=[{}]",
                d.epochs.0,
                d.epochs.1,
                zxids(&d.durable)
            );
        };
        let (accepted, current) = node.epochs();
        let d = &server.disk;
        // The in-memory log: what this incarnation appended or recovered and still holds.
        let appended = self.observer.appended.get(&id).into_iter().flatten();
        let log: Vec<String> =
            appended.filter(|z| node.logged_txn(**z).is_some()).map(|z| zx(*z)).collect();
        format!(
            "{id}: {}; epochs={accepted}/{current} log=[{}] committed={} applied={} \
             digest={:016x}\n    disk: epochs={}/{} durable=[{}] unsynced=[{}]{}",
            super::fmt::role(node),
            log.join(" "),
            zx(node.committed()),
            zx(node.last_zxid()),
            node.tree().digest(),
            d.epochs.0,
            d.epochs.1,
            zxids(&d.durable),
            zxids(&d.unsynced),
            d.snapshot.as_ref().map(|s| format!(" snapshot={}", zx(s.zxid))).unwrap_or_default()
        )
    }
}

/// One output on one line, for `print-outputs`.
fn describe_output(output: &Output) -> String {
    match output {
        Output::Persist { txn } => format!("Persist({})", zx(txn.header.zxid)),
        Output::PersistEpochs { accepted_epoch, current_epoch } => {
            format!("PersistEpochs(accepted {accepted_epoch}, current {current_epoch})")
        }
        Output::TruncateLog { after } => format!("TruncateLog(after {})", zx(*after)),
        Output::InstallSnapshot { snapshot } => format!("InstallSnapshot({})", zx(snapshot.zxid)),
        Output::PeerSend { to, msg } => format!("PeerSend(to {}, {})", to.0, describe(msg)),
        Output::ClientSend { conn, frame } => {
            format!("ClientSend(conn {}, {} bytes)", conn.0, frame.len())
        }
        Output::ClientClose { conn } => format!("ClientClose(conn {})", conn.0),
        Output::ReadLog { request, after, upto, max_txns } => format!(
            "ReadLog(request {request}, after {}, upto {}, max {max_txns})",
            zx(*after),
            zx(*upto)
        ),
    }
}

fn zxids(txns: &[LoggedTxn]) -> String {
    txns.iter().map(|t| zx(t.header.zxid)).collect::<Vec<_>>().join(" ")
}

/// The effects of one server, for core's executor: each is the output it comes from, applied.
struct ScriptShell<'a> {
    env: &'a mut Env,
    id: u64,
}

impl Effects for ScriptShell<'_> {
    fn append(&mut self, txn: std::sync::Arc<LoggedTxn>) {
        self.env.apply(self.id, Output::Persist { txn });
    }

    fn write(&mut self, write: DiskWrite) -> Written {
        let output = match write {
            DiskWrite::Epochs { accepted_epoch, current_epoch } => {
                Output::PersistEpochs { accepted_epoch, current_epoch }
            }
            DiskWrite::Truncate { after } => Output::TruncateLog { after },
            DiskWrite::Snapshot(snapshot) => Output::InstallSnapshot { snapshot },
        };
        self.env.apply(self.id, output);
        Written::Done
    }

    fn peer_send(&mut self, to: ServerId, msg: ZabMessage) {
        self.env.apply(self.id, Output::PeerSend { to, msg });
    }

    fn client_send(&mut self, conn: ConnId, frame: Vec<u8>) {
        self.env.apply(self.id, Output::ClientSend { conn, frame });
    }

    fn client_close(&mut self, conn: ConnId) {
        self.env.apply(self.id, Output::ClientClose { conn });
    }

    fn read_log(&mut self, read: LogReadRequest) {
        let LogReadRequest { request, after, upto, max_txns } = read;
        self.env.apply(self.id, Output::ReadLog { request, after, upto, max_txns });
    }
}
