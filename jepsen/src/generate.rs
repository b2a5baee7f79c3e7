//! Histories of a correct ZooKeeper, for property tests and the benchmark.
//!
//! A small sequential simulation: one global tree changed in zxid order (the leader), and
//! sessions that each see a prefix of that order which never goes back (the server they read
//! from lags). Ops go invoke → take effect → complete, interleaved at random across sessions,
//! so many are concurrent; some complete as `info` (their effect applied or not, at random);
//! watch events are queued when the change happens and delivered before the session's next
//! reply. Everything is decided by a seeded PRNG (splitmix64): the same config gives the same
//! history. The histories are valid by construction, so a checker that rejects one is wrong.

use crate::history::{
    CreateMode, Event, F, Header, History, InitialNode, Kind, Rare, Stat, SubOp, SubResult,
    WatchType,
};
use std::collections::{BTreeMap, BTreeSet};

/// What to generate.
#[derive(Clone, Debug)]
pub struct Config {
    /// Number of ops to invoke.
    pub ops: usize,
    /// Number of register paths `/p0..`.
    pub paths: usize,
    /// Number of concurrent sessions.
    pub sessions: usize,
    /// Fraction of ops whose outcome is recorded as `info`.
    pub info_rate: f64,
    /// PRNG seed.
    pub seed: u64,
    /// Keep zxids and stats in replies (false: strip them, as some tools record).
    pub zxids: bool,
    /// Fraction of multi ops.
    pub multi_rate: f64,
    /// Fraction of session closes.
    pub close_rate: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ops: 1000,
            paths: 10,
            sessions: 5,
            info_rate: 0.05,
            seed: 1,
            zxids: true,
            multi_rate: 0.02,
            close_rate: 0.002,
        }
    }
}

/// A seeded splitmix64 PRNG.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "empty range");
        (self.next_u64() % n as u64) as usize
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    data: String,
    version: i32,
    cversion: i32,
    czxid: i64,
    mzxid: i64,
    pzxid: i64,
    owner: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Data,
    Creation,
    Child,
}

struct Session {
    process: u64,
    floor: i64,
    pending: Option<Pending>,
    events: Vec<Event>,
    watches: Vec<(String, Class)>,
    versions: BTreeMap<String, i32>,
}

struct Pending {
    request: Event,
    info: bool,
    /// Whether the request changed (or observed) the state.
    applied: bool,
    reply: Option<Event>,
    /// Watch events queued before the request took effect: delivered before its reply.
    before: Vec<Event>,
}

struct Sim {
    config: Config,
    rng: Rng,
    zxid: i64,
    tree: BTreeMap<String, Node>,
    /// Per path, (zxid, state from then on).
    log: BTreeMap<String, Vec<(i64, Option<Node>)>>,
    sessions: Vec<Session>,
    next_process: u64,
    data_counter: u64,
    events: Vec<Event>,
    /// Commits so far ([`Sim::prune`] runs every [`PRUNE_EVERY`]).
    commits: u64,
}

/// How often the log of deleted paths is pruned, in commits.
const PRUNE_EVERY: u64 = 1024;

const QUEUE: &str = "/q";

/// Generates a valid history.
pub fn generate(config: &Config) -> History {
    let mut sim = Sim::new(config.clone());
    let mut invoked = 0;
    loop {
        let busy = sim.sessions.iter().any(|s| s.pending.is_some());
        if invoked >= config.ops && !busy {
            break;
        }
        let s = sim.rng.below(sim.sessions.len());
        match &sim.sessions[s].pending {
            None if invoked < config.ops => {
                sim.invoke(s);
                invoked += 1;
            }
            None => {}
            Some(p) if p.reply.is_none() => sim.take_effect(s),
            Some(_) => sim.complete(s),
        }
    }
    let initial = vec![InitialNode { path: QUEUE.into(), ..InitialNode::default() }];
    let header = Header { initial, description: Some(format!("{config:?}")), ..Header::default() };
    let mut history = History { header, events: sim.events };
    if !config.zxids {
        strip(&mut history);
    }
    history
}

/// Removes zxids and stats, as a tool that records only data would.
fn strip(history: &mut History) {
    for e in &mut history.events {
        e.zxid = None;
        // An empty stat still says "exists" for `exists`.
        e.stat = e.stat.as_ref().map(|_| Box::default());
        for r in e.rare.iter_mut().flat_map(|r| r.results.iter_mut().flatten()) {
            r.stat = None;
        }
    }
}

impl Sim {
    fn new(config: Config) -> Sim {
        let rng = Rng::new(config.seed);
        let zxid = 1 << 32;
        let queue = Node {
            data: String::new(),
            version: 0,
            cversion: 0,
            czxid: 0,
            mzxid: 0,
            pzxid: 0,
            owner: None,
        };
        let mut tree = BTreeMap::new();
        tree.insert(QUEUE.to_string(), queue.clone());
        let mut log = BTreeMap::new();
        log.insert(QUEUE.to_string(), vec![(0, Some(queue))]);
        // A session starts at the epoch's first zxid (what a server reports before it applies
        // a txn of the epoch), so its reads report that or a committed zxid. A floor of 0 drew
        // read zxids uniformly between 0 and the head: values like 0xbb765b6b, in no epoch,
        // which no server ever had as its last applied zxid.
        let sessions = (0..config.sessions as u64)
            .map(|p| Session {
                process: p,
                floor: zxid,
                pending: None,
                events: Vec::new(),
                watches: Vec::new(),
                versions: BTreeMap::new(),
            })
            .collect();
        let next_process = config.sessions as u64;
        Sim {
            config,
            rng,
            zxid,
            tree,
            log,
            sessions,
            next_process,
            data_counter: 0,
            events: vec![],
            commits: 0,
        }
    }

    fn path(&mut self) -> String {
        format!("/p{}", self.rng.below(self.config.paths.max(1)))
    }

    fn data(&mut self) -> String {
        self.data_counter += 1;
        format!("v{}", self.data_counter)
    }

    fn invoke(&mut self, s: usize) {
        let process = self.sessions[s].process;
        let mut e = Event { process, kind: Some(Kind::Invoke), ..Event::default() };
        let roll = self.rng.below(1000) as f64 / 1000.0;
        let c = &self.config;
        if roll < c.close_rate {
            e.f = Some(F::Close);
        } else if roll < c.close_rate + c.multi_rate {
            e.f = Some(F::Multi);
            let pair = self.rng.below(self.config.paths.max(2) / 2) * 2;
            let (a, b) = (format!("/p{pair}"), format!("/p{}", pair + 1));
            let version = self.known_version(s, &a);
            let data = self.data();
            let second = if self.rng.chance(0.5) {
                SubOp { f: F::Set, path: b, data: Some(data), version: None, mode: None }
            } else {
                SubOp { f: F::Create, path: b, data: Some(data), version: None, mode: None }
            };
            let first =
                SubOp { f: F::Check, path: a, data: None, version: Some(version), mode: None };
            e.rare_mut().ops = Some(vec![first, second]);
        } else {
            self.simple_request(s, &mut e);
        }
        let info = self.rng.chance(self.config.info_rate);
        self.events.push(e.clone());
        let pending = Pending { request: e, info, applied: false, reply: None, before: vec![] };
        self.sessions[s].pending = Some(pending);
    }

    fn known_version(&mut self, s: usize, path: &str) -> i32 {
        let known = self.sessions[s].versions.get(path).copied();
        match known {
            Some(v) if self.rng.chance(0.8) => v,
            _ => -1,
        }
    }

    fn simple_request(&mut self, s: usize, e: &mut Event) {
        let path = self.path();
        let mut pick = self.rng.below(100);
        // Keep the queue short, as consumers do: past 20 items, queue creates become deletes.
        let queued = self.tree.keys().filter(|p| p.starts_with("/q/")).count();
        if queued > 20 && (70..76).contains(&pick) {
            pick = 76;
        }
        let (f, path) = match pick {
            0..20 => (F::Get, path),
            20..30 => (F::Exists, path),
            30..50 => (F::Set, path),
            50..62 => (F::Create, path),
            62..70 => (F::Delete, path),
            70..76 => (F::Create, format!("{QUEUE}/n-")),
            76..81 => (F::Delete, self.queue_child()),
            81..86 => (F::Children, QUEUE.to_string()),
            86..90 => (F::Sync, path),
            _ => (F::Get, path),
        };
        e.f = Some(f);
        match f {
            F::Get | F::Exists | F::Children => e.watch = self.rng.chance(0.3),
            F::Set => {
                e.data = Some(self.data());
                e.version = Some(self.known_version(s, &path)).filter(|v| *v >= 0);
            }
            F::Create => {
                e.data = Some(self.data());
                let ephemeral = self.rng.chance(0.3);
                e.mode = Some(match (path.starts_with(QUEUE), ephemeral) {
                    (false, false) => CreateMode::Persistent,
                    (false, true) => CreateMode::Ephemeral,
                    (true, false) => CreateMode::PersistentSequential,
                    (true, true) => CreateMode::EphemeralSequential,
                });
            }
            F::Delete => e.version = Some(self.known_version(s, &path)).filter(|v| *v >= 0),
            _ => {}
        }
        e.path = Some(path);
    }

    fn queue_child(&mut self) -> String {
        let children: Vec<&String> = self.tree.keys().filter(|p| p.starts_with("/q/")).collect();
        if children.is_empty() {
            format!("{QUEUE}/n-0000000000")
        } else {
            children[self.rng.below(children.len())].clone()
        }
    }

    /// The request takes effect now (or, for some `info` ops, never).
    fn take_effect(&mut self, s: usize) {
        let pending = self.sessions[s].pending.as_ref().expect("pending");
        let request = pending.request.clone();
        let info = pending.info;
        let process = self.sessions[s].process;
        let mut reply = Event { process, kind: Some(Kind::Ok), f: request.f, ..Event::default() };
        let f = request.f.expect("invoke has f");
        let before = std::mem::take(&mut self.sessions[s].events);
        let mut applied = false;
        if info && (crate::model::is_query(f) || f == F::Sync || self.rng.chance(0.5)) {
            // Lost before taking effect (or a query whose answer was lost).
            reply.kind = Some(Kind::Info);
        } else {
            match f {
                F::Get | F::Exists | F::Children => self.read(s, &request, &mut reply),
                F::Sync => reply.zxid = Some(self.zxid),
                _ => self.write(s, &request, &mut reply),
            }
            applied = true;
            if info {
                reply = Event { process, kind: Some(Kind::Info), f: request.f, ..Event::default() };
            }
        }
        let pending = self.sessions[s].pending.as_mut().expect("pending");
        pending.reply = Some(reply);
        pending.before = before;
        pending.applied = applied;
    }

    fn complete(&mut self, s: usize) {
        let pending = self.sessions[s].pending.take().expect("pending");
        let reply = pending.reply.expect("took effect");
        self.events.extend(pending.before);
        let session = &mut self.sessions[s];
        if reply.kind == Some(Kind::Ok) || reply.kind == Some(Kind::Fail) {
            if let Some(z) = reply.zxid {
                session.floor = session.floor.max(z);
            }
            if let (Some(path), Some(stat)) = (&pending.request.path, &reply.stat)
                && let Some(v) = stat.version
            {
                session.versions.insert(path.clone(), v);
            }
        }
        let closed = pending.request.f == Some(F::Close) && pending.applied;
        self.events.push(reply);
        if closed {
            let fresh = self.next_process;
            self.next_process += 1;
            let session = &mut self.sessions[s];
            session.process = fresh;
            session.watches.clear();
            session.versions.clear();
            session.events.clear();
        }
    }

    /// Forgets paths deleted at or before the lowest session floor. Reads and watches look
    /// only at zxids at or above their session's floor, where such a path is absent whether its
    /// log is kept or not; so the history is the same, but a queue whose children come and go
    /// no longer makes every read of it cost as much as all the children it ever had.
    fn prune(&mut self) {
        let floor = self.sessions.iter().map(|s| s.floor).min().unwrap_or(0);
        assert!(floor <= self.zxid, "no session is ahead of the head");
        self.log.retain(|_, entries| !matches!(entries.last(), Some((z, None)) if *z <= floor));
    }

    fn state_at(&self, path: &str, z: i64) -> Option<Node> {
        let entries = self.log.get(path)?;
        let at = entries.partition_point(|(ez, _)| *ez <= z);
        if at == 0 { None } else { entries[at - 1].1.clone() }
    }

    fn children_at(&self, path: &str, z: i64) -> Vec<String> {
        let prefix = format!("{path}/");
        let mut out: Vec<String> = (self.log.range(prefix.clone()..))
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| self.state_at(p, z).is_some())
            .map(|(p, _)| p[prefix.len()..].to_string())
            .collect();
        out.sort();
        out
    }

    fn stat(&self, node: &Node, children: i32) -> Stat {
        Stat {
            czxid: Some(node.czxid),
            mzxid: Some(node.mzxid),
            pzxid: Some(node.pzxid),
            version: Some(node.version),
            // ZooKeeper shows 2 * (children created) - (children now): creates plus deletes.
            cversion: Some(2 * node.cversion - children),
            ephemeral_owner: Some(node.owner.map_or(0, |o| o as i64 + 0x100)),
            data_length: Some(node.data.len() as i32),
            num_children: Some(children),
        }
    }

    fn read(&mut self, s: usize, request: &Event, reply: &mut Event) {
        let floor = self.sessions[s].floor;
        let z = if self.rng.chance(0.6) {
            self.zxid
        } else {
            floor + (self.rng.next_u64() % (self.zxid - floor + 1) as u64) as i64
        };
        let path = request.path.clone().expect("query has a path");
        reply.zxid = Some(z);
        self.sessions[s].floor = z;
        let node = self.state_at(&path, z);
        let children = self.children_at(&path, z);
        let class = match (request.f, &node) {
            (Some(F::Children), _) => Class::Child,
            (Some(F::Exists), None) => Class::Creation,
            _ => Class::Data,
        };
        match (&node, request.f) {
            (None, Some(F::Exists)) => {}
            (None, _) => {
                reply.kind = Some(Kind::Fail);
                reply.rare_mut().error = Some("NoNode".into());
                return;
            }
            (Some(n), f) => {
                reply.stat = Some(Box::new(self.stat(n, children.len() as i32)));
                if f == Some(F::Get) {
                    reply.data = Some(n.data.clone());
                }
                if f == Some(F::Children) {
                    reply.rare_mut().children = Some(children);
                }
            }
        }
        if request.watch {
            self.register(s, &path, class, z);
        }
    }

    /// Leaves a watch seen at prefix `z`; if the path already changed after `z`, it fires now.
    fn register(&mut self, s: usize, path: &str, class: Class, z: i64) {
        if self.sessions[s].watches.iter().any(|(p, c)| p == path && *c == class) {
            return; // ZooKeeper keeps one watch per (path, kind) and watcher
        }
        let fired = self.first_change(path, class, z);
        match fired {
            Some((t, zx)) => self.queue_event(s, path, t, zx),
            None => self.sessions[s].watches.push((path.to_string(), class)),
        }
    }

    fn first_change(&self, path: &str, class: Class, z: i64) -> Option<(WatchType, i64)> {
        let before = self.state_at(path, z);
        let kids = self.children_at(path, z);
        let mut zs: BTreeSet<i64> = BTreeSet::new();
        zs.extend(self.log.get(path).into_iter().flatten().map(|(e, _)| *e).filter(|e| *e > z));
        if class == Class::Child {
            let prefix = format!("{path}/");
            for (_, entries) in
                self.log.range(prefix.clone()..).take_while(|(p, _)| p.starts_with(&prefix))
            {
                zs.extend(entries.iter().map(|(e, _)| *e).filter(|e| *e > z));
            }
        }
        for at in zs {
            let now = self.state_at(path, at);
            let t = match class {
                Class::Creation if now.is_some() && before.is_none() => WatchType::NodeCreated,
                Class::Data | Class::Child if now.is_none() && before.is_some() => {
                    WatchType::NodeDeleted
                }
                Class::Data if now != before => WatchType::NodeDataChanged,
                Class::Child if self.children_at(path, at) != kids => {
                    WatchType::NodeChildrenChanged
                }
                _ => continue,
            };
            return Some((t, at));
        }
        None
    }

    fn queue_event(&mut self, s: usize, path: &str, t: WatchType, zxid: i64) {
        let process = self.sessions[s].process;
        let e = Event {
            process,
            kind: Some(Kind::Event),
            path: Some(path.to_string()),
            rare: Some(Box::new(Rare { event: Some(t), ..Rare::default() })),
            zxid: Some(zxid),
            ..Event::default()
        };
        self.sessions[s].events.push(e);
    }

    fn write(&mut self, s: usize, request: &Event, reply: &mut Event) {
        let process = self.sessions[s].process;
        let f = request.f.expect("has f");
        let subs: Vec<SubOp> = match f {
            F::Multi => request.ops().clone().expect("multi has ops"),
            F::Close => Vec::new(),
            _ => vec![SubOp {
                f,
                path: request.path.clone().expect("has path"),
                data: request.data.clone(),
                version: request.version,
                mode: request.mode,
            }],
        };
        let mut tree = self.tree.clone();
        let z = self.zxid + 1;
        let mut results = Vec::new();
        for sub in &subs {
            match apply(&mut tree, process, sub, z) {
                Ok(result) => results.push(result),
                Err(code) => {
                    reply.kind = Some(Kind::Fail);
                    reply.rare_mut().error = Some(code.into());
                    reply.zxid = Some(self.zxid);
                    return;
                }
            }
        }
        if f == F::Close {
            let mine: Vec<String> = tree
                .iter()
                .filter(|(_, n)| n.owner == Some(process))
                .map(|(p, _)| p.clone())
                .collect();
            for path in mine {
                tree.remove(&path);
                touch_parent(&mut tree, &path, z, false);
            }
        }
        self.commit(tree, z);
        reply.zxid = Some(z);
        match f {
            F::Multi => reply.rare_mut().results = Some(results),
            F::Close => {}
            _ => {
                let result = results.pop().expect("one sub-op");
                if result.name.is_some() {
                    reply.rare_mut().name = result.name; // no empty box: it would not round-trip
                }
                reply.stat = result.stat.map(Box::new);
            }
        }
    }

    /// Installs the new head state at zxid `z`, logs what changed and fires watches.
    fn commit(&mut self, tree: BTreeMap<String, Node>, z: i64) {
        let paths: BTreeSet<String> = tree.keys().chain(self.tree.keys()).cloned().collect();
        let changed: Vec<String> =
            paths.into_iter().filter(|p| tree.get(p) != self.tree.get(p)).collect();
        self.tree = tree;
        self.zxid = z;
        for path in &changed {
            let state = self.tree.get(path).cloned();
            self.log.entry(path.clone()).or_default().push((z, state));
        }
        self.commits += 1;
        if self.commits.is_multiple_of(PRUNE_EVERY) {
            self.prune();
        }
        for s in 0..self.sessions.len() {
            let watches = std::mem::take(&mut self.sessions[s].watches);
            let mut kept = Vec::new();
            let mut sent: Vec<(String, WatchType)> = Vec::new();
            for (path, class) in watches {
                match self.first_change(&path, class, z - 1) {
                    Some((t, at)) if at == z => {
                        // One notification per (path, type), even with data and child watches.
                        if !sent.contains(&(path.clone(), t)) {
                            self.queue_event(s, &path, t, z);
                            sent.push((path, t));
                        }
                    }
                    _ => kept.push((path, class)),
                }
            }
            self.sessions[s].watches = kept;
        }
    }
}

/// A child of `path`'s parent was created or deleted. The parent's stored cversion counts
/// creates only (ZooKeeper 3.4+, ZOOKEEPER-1046); pzxid moves either way.
fn touch_parent(tree: &mut BTreeMap<String, Node>, path: &str, z: i64, created: bool) {
    if let Some(p) = crate::history::parent(path)
        && let Some(node) = tree.get_mut(p)
    {
        node.cversion += i32::from(created);
        node.pzxid = z;
    }
}

fn apply(
    tree: &mut BTreeMap<String, Node>,
    process: u64,
    sub: &SubOp,
    z: i64,
) -> Result<SubResult, &'static str> {
    let version = sub.version.unwrap_or(-1);
    let check = |tree: &BTreeMap<String, Node>| -> Result<(), &'static str> {
        let node = tree.get(&sub.path).ok_or("NoNode")?;
        if version >= 0 && node.version != version { Err("BadVersion") } else { Ok(()) }
    };
    let mut result = SubResult::default();
    match sub.f {
        F::Create => {
            let mode = sub.mode.unwrap_or_default();
            let parent = crate::history::parent(&sub.path).unwrap_or("/").to_string();
            let name = if mode.is_sequential() {
                let cversion = tree.get(&parent).ok_or("NoNode")?.cversion;
                format!("{}{cversion:010}", sub.path)
            } else {
                sub.path.clone()
            };
            if tree.contains_key(&name) {
                return Err("NodeExists");
            }
            let owner = mode.is_ephemeral().then_some(process);
            let node = Node {
                data: sub.data.clone().unwrap_or_default(),
                version: 0,
                cversion: 0,
                czxid: z,
                mzxid: z,
                pzxid: z,
                owner,
            };
            tree.insert(name.clone(), node);
            touch_parent(tree, &name, z, true);
            result.name = Some(name);
        }
        F::Delete => {
            check(tree)?;
            let prefix = format!("{}/", sub.path);
            if tree.range(prefix.clone()..).next().is_some_and(|(p, _)| p.starts_with(&prefix)) {
                return Err("NotEmpty");
            }
            tree.remove(&sub.path);
            touch_parent(tree, &sub.path, z, false);
        }
        F::Set => {
            check(tree)?;
            let node = tree.get_mut(&sub.path).expect("checked");
            node.data = sub.data.clone().unwrap_or_default();
            node.version += 1;
            node.mzxid = z;
            let n = node.clone();
            let prefix = format!("{}/", sub.path);
            let below = tree.range(prefix.clone()..).take_while(|(p, _)| p.starts_with(&prefix));
            let children = below.filter(|(p, _)| !p[prefix.len()..].contains('/')).count() as i32;
            result.stat = Some(Stat {
                czxid: Some(n.czxid),
                mzxid: Some(n.mzxid),
                pzxid: Some(n.pzxid),
                version: Some(n.version),
                cversion: Some(2 * n.cversion - children),
                ephemeral_owner: Some(n.owner.map_or(0, |o| o as i64 + 0x100)),
                data_length: Some(n.data.len() as i32),
                num_children: Some(children),
            });
        }
        F::Check => check(tree)?,
        _ => unreachable!("only writes reach apply"),
    }
    Ok(result)
}
