//! A seeded generator of client request sequences, replayed in lockstep against Apache ZooKeeper
//! and zkr and compared reply by reply (code, reply zxid, body, and the watch events that reached
//! the session before the reply, in arrival order). `tests/tests/differential_gen.rs` runs a fixed
//! number of seeds in CI; `ZKR_DIFFGEN_*` variables run more by hand (docs/TESTING.md).
//!
//! One server of each kind serves every seed of a run: each seed works under its own `/g<seed>`
//! with 1-3 sessions of its own, closed at its end, so both servers stay at the same zxid as long
//! as their replies agree. After a difference the two histories part, so a run that goes on
//! (`keep_going`) starts both servers afresh.
//!
//! Normalised, as in differential.rs: session ids (an ephemeralOwner becomes "session #n"),
//! ctime/mtime, the order of child lists, ephemeral lists and whoAmI ids. Everything else is
//! compared as is.
//!
//! What the generator leaves out, and why:
//! - timing: containers live only at `/g<seed>/ct` and the sequential names built on it
//!   (`/g<seed>/ct0000000003`), and nothing below them is ever deleted or ephemeral, so no
//!   container is ever emptied (both servers delete empty containers once a second, at times of
//!   their own); TTLs are an hour or invalid, so none expires in a run; sessions are closed by
//!   request, never left to expire.
//! - auth that fails (closes the connection and leaves the session to expire).
//! - the documented 3.8/3.9 differences (docs/COMPATIBILITY.md, "Where ZooKeeper 3.8 and 3.9
//!   differ"), each by a named filter below: [`Filter`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zkr_core::proto::client::{OpCode, Request};
use zkr_core::proto::codec;
use zkr_core::proto::jute::Reader;
use zkr_core::types::{Acl, Id, perms};

use crate::normalise;
use crate::server::{ServerOptions, Target, TestServer};
use crate::wire::read_frame;

/// The documented differences the generator steers around (docs/COMPATIBILITY.md, "Where
/// ZooKeeper 3.8 and 3.9 differ"). Each is applied where it is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// "`create2` inside `multi`": 3.8 answers a create result, 3.9 a create2 result. Ops inside
    /// a multi use opcode create (1), createContainer or createTTL, never create2.
    Create2InMulti,
    /// "`exists` on a node without READ permission": 3.8 answers the Stat, 3.9 NOAUTH. Accepted
    /// at comparison; if the exists left a watch (3.8 only), the seed ends there and its final
    /// close may differ in the events it fires.
    ExistsWithoutRead,
    /// "a `check` sent on its own": never generated.
    CheckAlone,
    /// "the zxid of a watch notification": events are compared by type, state and path.
    EventZxid,
    /// "checkWatches/removeWatches with watcher type 4/5": types 1-3 only.
    PersistentWatcherTypes,
    /// "checkWatches/removeWatches with type Data/Children on a persistent watch": 3.8 finds
    /// (and removes) it, 3.9 answers NOWATCHER. Accepted at comparison when the session added a
    /// persistent watch on the path; after a removeWatches the seed ends (3.8 dropped the watch)
    /// and its final close may differ in the events it fires (seed 4184).
    CheckWatchesOnPersistent,
    /// "two watch modes of one session on one path": 3.8 keeps one mode per session and path
    /// (the last set), 3.9 each. Never generated: a session asks for no standard watch on a
    /// path it added a persistent watch on, nor the other way round, nor for both persistent
    /// modes on one path.
    TwoModesOnOnePath,
    /// "checkWatches finds another session's watch": 3.8.0 answers OK when any session watches
    /// the path, 3.9 only for the caller's own watch. Accepted at comparison when some session
    /// of the seed asked for a watch on the path.
    CheckWatchesOtherSession,
    /// "a create with invalid flags inside `multi`", and "a TTL mode on a create that is not a
    /// createTTL inside `multi`": flags inside a multi are valid ones, TTL modes only on
    /// createTTL.
    InvalidFlagsInMulti,
    /// "a createTTL with a plain mode and no TTL" (deliberate): ZooKeeper fails it in apply and
    /// closes the connection, zkr answers BADARGUMENTS. Accepted at comparison; the seed ends
    /// (Apache's connection is gone).
    CreateTtlWithoutTtl,
    /// "the order of a closed session's ephemeral deletions" (deliberate): ZooKeeper's is a hash
    /// set's. Accepted when the replies agree and the events are the same NodeDeleted events in
    /// another order; when a session closes (a Reopen, or every session at a seed's end), with
    /// their parents' NodeChildrenChanged among them.
    EphemeralDeletionOrder,
    /// "a createContainer with plain flags inside `multi`": 3.8 makes a plain node and answers a
    /// create result, 3.9 a container and a create2 result. A createContainer inside a multi
    /// carries container flags.
    ContainerOpInMulti,
    /// "a `multi` whose create or delete has a null path": typed requests have no null path.
    NullPathInMulti,
}

/// One step of a sequence: a request on one of the seed's sessions, or closing that session
/// (its closeSession request, compared like any other) and opening a new one in its place.
#[derive(Clone, Debug)]
pub enum Step {
    /// Send `req` on session slot `session`.
    Call { session: usize, req: Request },
    /// closeSession on slot `session`, then connect a new session into the slot.
    Reopen { session: usize },
}

/// The paths one seed works on: few, so that requests collide.
const NAMES: [&str; 8] = ["", "/a", "/b", "/a/b", "/a/c", "/b/a", "/a/b/c", "/t"];
/// Where containers live (never emptied: see the module doc).
const CONTAINER: &str = "/ct";
/// A TTL that does not run out during a run, one at the bound, and invalid ones.
const TTLS: [i64; 5] = [3_600_000, 0xFF_FFFF_FFFF, 0, -1, 0x100_0000_0000];
/// The digest of `alice:secret` (DigestAuthenticationProvider: base64(sha1(id))).
const ALICE: &str = "alice:Kp2JzKT9ol7HQQdCYr0dmyV2xO8=";

/// A seeded request generator for one seed.
pub struct Generator {
    rng: ChaCha8Rng,
    base: String,
    sessions: usize,
    /// Paths created so far (sequential names included), from the replies.
    created: Vec<String>,
    /// (session slot, path) of every addWatch sent, for [`Filter::CheckWatchesOnPersistent`].
    persistent: BTreeSet<(usize, String)>,
    /// (session slot, path) of every standard watch asked for, for [`Filter::TwoModesOnOnePath`].
    standard: BTreeSet<(usize, String)>,
    /// The mode of the first addWatch of each (session slot, path), for
    /// [`Filter::TwoModesOnOnePath`]: persistent and persistent-recursive count as two modes.
    persistent_modes: BTreeMap<(usize, String), i32>,
    /// Every path any session asked a watch on, for [`Filter::CheckWatchesOtherSession`].
    watched: BTreeSet<String>,
}

impl Generator {
    /// A generator for `seed`: 1-3 sessions, working under `/g<seed>`.
    pub fn new(seed: u64) -> Generator {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sessions = rng.random_range(1..=3);
        Generator {
            rng,
            base: format!("/g{seed}"),
            sessions,
            created: vec![],
            persistent: BTreeSet::new(),
            watched: BTreeSet::new(),
            standard: BTreeSet::new(),
            persistent_modes: BTreeMap::new(),
        }
    }

    /// How many sessions the seed uses.
    pub fn sessions(&self) -> usize {
        self.sessions
    }

    /// The seed's own root, created first.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Records what a reply showed (created paths), so later requests can name them.
    pub fn observe(&mut self, step: &Step, reply: &str) {
        let Step::Call { session, req } = step else {
            self.persistent.retain(|(s, _)| *s != step_session(step));
            self.standard.retain(|(s, _)| *s != step_session(step));
            self.persistent_modes.retain(|(s, _), _| *s != step_session(step));
            return;
        };
        match req {
            Request::AddWatch { path, .. } => {
                self.persistent.insert((*session, path.clone()));
                self.watched.insert(path.clone());
            }
            Request::GetData { path, watch: true }
            | Request::Exists { path, watch: true }
            | Request::GetChildren { path, watch: true, .. } => {
                self.watched.insert(path.clone());
            }
            _ => {}
        }
        for part in reply.split('"').skip(1).step_by(2) {
            let known = part.starts_with(&self.base) && !self.created.iter().any(|p| p == part);
            if known && self.created.len() < 40 {
                self.created.push(part.to_string());
            }
        }
    }

    /// True when `session` added a persistent watch on `path` (and has not been reopened).
    pub fn has_persistent(&self, session: usize, path: &str) -> bool {
        self.persistent.contains(&(session, path.to_string()))
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.random_range(0..100) < percent
    }

    /// A path in the seed's space: mostly valid, sometimes a created sequential one, sometimes
    /// invalid (bad characters, empty components, outside the seed, reserved).
    fn path(&mut self) -> String {
        let roll = self.rng.random_range(0..100);
        if roll < 8 {
            let invalid = [
                "",
                "noslash",
                "/",
                "/zookeeper",
                "/zookeeper/quota",
                "/zookeeper/config",
                "BASE/",
                "BASE//a",
                "BASE/.",
                "BASE/a/..",
                "BASE/\u{1}",
                "BASE/\u{7f}x",
                "BASE/\u{e000}",
                "BASE/\u{fff5}",
                "BASE/ä",
            ];
            return self.pick(&invalid).replace("BASE", &self.base);
        }
        if roll < 25 && !self.created.is_empty() {
            let i = self.rng.random_range(0..self.created.len());
            return self.created[i].clone();
        }
        if roll < 33 {
            let name = self.pick(&[CONTAINER, "/ct/a", "/ct/b/c"]);
            return format!("{}{name}", self.base);
        }
        let name = self.pick(&NAMES);
        format!("{}{name}", self.base)
    }

    /// True for paths below a container, which are never deleted nor made ephemeral. Containers
    /// are made at `CONTAINER` and at the sequential names built on it (a createContainer with
    /// a sequential flag makes `/g<seed>/ct0000000003` or `/g<seed>/ct-0000000004`): below any
    /// of them. Seed 109 of a 0..500 run put an ephemeral below `/g109/ct0000000000`; its
    /// session's close emptied the container, each server deleted it at a time of its own, and
    /// seed 111 or 118 then saw zxids one apart.
    fn under_container(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix(&format!("{}{CONTAINER}", self.base)) else {
            return false;
        };
        rest.contains('/')
    }

    /// A path that may be deleted (not below a container).
    fn deletable_path(&mut self) -> String {
        loop {
            let path = self.path();
            if !self.under_container(&path) {
                return path;
            }
        }
    }

    fn version(&mut self) -> i32 {
        self.pick(&[-1, -1, 0, 0, 1, 2, 7, -2])
    }

    fn data(&mut self) -> Option<Vec<u8>> {
        match self.rng.random_range(0..5) {
            0 => None,
            1 => Some(vec![]),
            2 => Some(b"x".to_vec()),
            _ => Some((0..self.rng.random_range(1..8)).map(|_| self.rng.random()).collect()),
        }
    }

    fn acl(&mut self) -> Vec<Acl> {
        if self.chance(75) {
            return Acl::open_unsafe();
        }
        let entries = self.rng.random_range(1..=2);
        let mut acl = Vec::new();
        for _ in 0..entries {
            let perms_value = self.pick(&[perms::ALL, perms::READ, perms::READ | perms::WRITE, 0]);
            let perms_value =
                if self.chance(20) { self.rng.random_range(0..32) } else { perms_value };
            let id = match self.rng.random_range(0..11) {
                0 | 1 => Id::new("world", "anyone"),
                2 | 3 => Id::new("digest", ALICE),
                4 | 5 => Id::new("auth", ""),
                6 => Id::new("ip", "127.0.0.1"),
                7 => Id::new("ip", "10.0.0.0/8"),
                8 => Id::new("ip", "300.1.1.1"),
                9 => Id::new("digest", "nocolon"),
                _ => Id::new(self.pick(&["foo", "world", "super"]), "someone"),
            };
            acl.push(Acl { perms: perms_value, id });
        }
        if self.chance(5) {
            acl.clear();
        }
        acl
    }

    /// A create: any of the four opcodes and flags 0-6 (7 and -1 rarely, never in a multi,
    /// [`Filter::InvalidFlagsInMulti`]); containers only at `CONTAINER` (sequential ones at
    /// names built on it); ephemerals never below a container ([`Generator::under_container`]).
    fn create(&mut self, in_multi: bool) -> Request {
        let op = if in_multi {
            // Filter::Create2InMulti.
            self.pick(&[OpCode::Create, OpCode::Create, OpCode::CreateContainer, OpCode::CreateTtl])
        } else {
            self.pick(&[
                OpCode::Create,
                OpCode::Create2,
                OpCode::CreateContainer,
                OpCode::CreateTtl,
            ])
        };
        let mut flags = self.pick(&[0, 0, 1, 2, 3, 4, 5, 6]);
        if op == OpCode::CreateContainer && self.chance(70) {
            flags = 4;
        }
        if op == OpCode::CreateTtl && self.chance(60) {
            flags = self.pick(&[5, 6]);
        }
        if !in_multi && self.chance(3) {
            flags = self.pick(&[7, -1, 9]);
        }
        if in_multi && op == OpCode::CreateContainer {
            // Filter::ContainerOpInMulti.
            flags = 4;
        }
        if in_multi && op != OpCode::CreateTtl && (flags == 5 || flags == 6) {
            // Filter::InvalidFlagsInMulti.
            flags -= 5;
        }
        let mut path = self.path();
        if op == OpCode::CreateContainer || flags == 4 {
            path = format!("{}{CONTAINER}", self.base);
        }
        if flags == 2 || flags == 3 || flags == 6 {
            path.push_str(self.pick(&["", "-", "/s-"]));
        }
        if self.under_container(&path) && (flags == 1 || flags == 3) {
            flags -= 1;
        }
        let ttl = if op == OpCode::CreateTtl { self.pick(&TTLS) } else { -1 };
        let acl = self.acl();
        Request::Create { op, path, data: self.data(), acl, flags, ttl }
    }

    fn multi_op(&mut self) -> Request {
        match self.rng.random_range(0..4) {
            0 => Request::Check { path: self.path(), version: self.version() },
            1 => self.create(true),
            2 => Request::Delete { path: self.deletable_path(), version: self.version() },
            _ => Request::SetData { path: self.path(), data: self.data(), version: self.version() },
        }
    }

    /// The next step of the sequence.
    pub fn next_step(&mut self) -> Step {
        let session = self.rng.random_range(0..self.sessions);
        if self.chance(2) {
            return Step::Reopen { session };
        }
        let watch = self.chance(40);
        let req = match self.rng.random_range(0..100) {
            0..=21 => self.create(false),
            22..=25 => Request::Delete { path: self.deletable_path(), version: self.version() },
            26..=33 => {
                Request::SetData { path: self.path(), data: self.data(), version: self.version() }
            }
            34..=39 => Request::GetData { path: self.path(), watch },
            40..=44 => Request::Exists { path: self.path(), watch },
            45..=49 => Request::GetChildren { op: OpCode::GetChildren, path: self.path(), watch },
            50..=53 => Request::GetChildren { op: OpCode::GetChildren2, path: self.path(), watch },
            54..=55 => Request::GetAllChildrenNumber { path: self.path() },
            56..=57 => {
                let prefix = self.pick(&["/", "", "BASE", "BASE/a"]).replace("BASE", &self.base);
                Request::GetEphemerals { prefix }
            }
            58..=67 => {
                Request::Multi((0..self.rng.random_range(0..5)).map(|_| self.multi_op()).collect())
            }
            68..=71 => {
                let count = self.rng.random_range(1..4);
                let ops = (0..count)
                    .map(|_| match self.chance(50) {
                        true => Request::GetData { path: self.path(), watch: false },
                        false => Request::GetChildren {
                            op: OpCode::GetChildren,
                            path: self.path(),
                            watch: false,
                        },
                    })
                    .collect();
                Request::MultiRead(ops)
            }
            72..=75 => {
                Request::SetAcl { path: self.path(), acl: self.acl(), version: self.version() }
            }
            76..=77 => Request::GetAcl { path: self.path() },
            78..=80 => {
                let (scheme, auth) =
                    self.pick(&[("digest", "alice:secret"), ("digest", "bob:pw"), ("ip", "x")]);
                let scheme = if scheme == "ip" { "digest" } else { scheme };
                Request::Auth { auth_type: 0, scheme: scheme.into(), auth: auth.into() }
            }
            81..=82 => Request::Sync { path: self.path() },
            83..=86 => Request::AddWatch { path: self.path(), mode: self.pick(&[0, 1]) },
            // Filter::PersistentWatcherTypes: types 1 (Children), 2 (Data), 3 (Any).
            87..=90 => Request::CheckWatches {
                path: self.path(),
                watcher_type: self.rng.random_range(1..=3),
            },
            91..=94 => Request::RemoveWatches {
                path: self.path(),
                watcher_type: self.rng.random_range(1..=3),
            },
            95 => Request::WhoAmI,
            _ => Request::Ping,
        };
        Step::Call { session, req: self.one_mode_per_path(session, req) }
    }
}

impl Generator {
    /// [`Filter::TwoModesOnOnePath`]: a standard watch where the session has a persistent one
    /// becomes a plain read, an addWatch where it has a standard one, or a persistent one of the
    /// other mode (persistent against recursive: seed 1344), a sync.
    fn one_mode_per_path(&mut self, session: usize, mut req: Request) -> Request {
        match &mut req {
            Request::GetData { path, watch }
            | Request::Exists { path, watch }
            | Request::GetChildren { path, watch, .. } => {
                let key = (session, path.clone());
                if *watch && self.persistent.contains(&key) {
                    *watch = false;
                }
                if *watch {
                    self.standard.insert(key);
                }
            }
            Request::AddWatch { path, mode } => {
                let key = (session, path.clone());
                let first = *self.persistent_modes.entry(key.clone()).or_insert(*mode);
                if self.standard.contains(&key) || first != *mode {
                    return Request::Sync { path: path.clone() };
                }
                self.persistent.insert(key);
            }
            _ => {}
        }
        req
    }
}

fn step_session(step: &Step) -> usize {
    match step {
        Step::Call { session, .. } | Step::Reopen { session } => *session,
    }
}

/// One session's connection to one server.
struct Wire {
    stream: TcpStream,
    xid: i32,
    events: Vec<String>,
}

/// One server's side of a run: its sessions (by slot) and every session id it handed out, in
/// order, to name ephemeral owners.
pub struct Side {
    server: TestServer,
    wires: Vec<Option<Wire>>,
    session_ids: Vec<i64>,
}

impl Side {
    /// Starts a server of `target`.
    pub fn start(target: Target) -> Side {
        let server = TestServer::start_target(target, ServerOptions::new());
        Side { server, wires: vec![], session_ids: vec![] }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Opens a session into `slot`; returns its normalised name.
    fn open(&mut self, slot: usize) -> String {
        let (stream, resp) = crate::wire::connect(self.addr()).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("read timeout");
        self.session_ids.push(resp.session_id);
        if self.wires.len() <= slot {
            self.wires.resize_with(slot + 1, || None);
        }
        self.wires[slot] = Some(Wire { stream, xid: 0, events: vec![] });
        format!("session #{} timeout={}", self.session_ids.len() - 1, resp.timeout_ms)
    }

    /// Sends `req` on `slot` and returns the normalised reply, with the events that came first.
    fn call(&mut self, slot: usize, req: &Request) -> String {
        let Some(wire) = self.wires[slot].as_mut() else { return "no connection".into() };
        let xid = match req {
            Request::Auth { .. } => -4,
            Request::Ping => -2,
            _ => {
                wire.xid += 1;
                wire.xid
            }
        };
        let header = codec::request_header(xid, req);
        if wire.stream.write_all(&codec::encode_request(&header, req)).is_err() {
            self.wires[slot] = None;
            return "closed".into();
        }
        loop {
            let Some(wire) = self.wires[slot].as_mut() else { unreachable!() };
            let Some(payload) = read_frame(&mut wire.stream) else {
                let events = std::mem::take(&mut wire.events);
                self.wires[slot] = None;
                return format!("closed events={events:?}");
            };
            let mut r = Reader::new(&payload);
            let h = codec::decode_reply_header(&mut r).expect("reply header");
            if h.xid == -1 {
                let e = codec::decode_watcher_event(&mut r).expect("event");
                wire.events.push(format!("{:?} {} {}", e.event_type, e.state, e.path));
                continue;
            }
            let events = std::mem::take(&mut wire.events);
            let body = match r.remaining() {
                0 => "None".to_string(),
                _ => match codec::decode_response(codec::request_op(req), &mut r) {
                    Ok(body) => normalise::response(&self.session_ids, body),
                    Err(e) => format!("undecodable ({e:?}): {payload:x?}"),
                },
            };
            return format!(
                "xid={} err={} zxid={:#x} body={body} events={events:?}",
                h.xid, h.err, h.zxid
            );
        }
    }

    /// closeSession on every open slot (ephemerals go, watches on them fire), then forget them.
    fn close_all(&mut self) -> Vec<String> {
        let mut lines = vec![];
        for slot in 0..self.wires.len() {
            if self.wires[slot].is_some() {
                lines.push(self.call(slot, &Request::CloseSession));
            }
            self.wires[slot] = None;
        }
        lines
    }
}

/// A reply pair that differs, with where it happened.
#[derive(Debug)]
pub struct Difference {
    /// The seed.
    pub seed: u64,
    /// Index of the step in the seed's sequence.
    pub step: usize,
    /// The step, as generated.
    pub what: String,
    /// Apache's normalised reply.
    pub apache: String,
    /// zkr's normalised reply.
    pub zkr: String,
    /// The steps before it and their (equal) replies, for a report.
    pub before: Vec<String>,
}

/// What a run compared and found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Reply pairs compared (each side's requests, session opens and closes included).
    pub compared: usize,
    /// Connections both servers closed: their sessions expire later, at times of each server's
    /// own, so both servers start afresh after the seed.
    pub closed: usize,
    /// Pairs accepted as a documented difference, by filter.
    pub documented: Vec<(Filter, u64)>,
    /// Differences, at most one per seed (the seed stops at its first).
    pub differences: Vec<Difference>,
}

/// Decides whether two replies to `step` agree, or differ in a documented way.
fn judge(generator: &Generator, step: &Step, apache: &str, zkr: &str) -> Option<Option<Filter>> {
    if apache == zkr {
        return Some(None);
    }
    let Step::Call { session, req } = step else {
        // A Reopen: the closed session's own watches fire on its ephemerals' deletions before
        // the closeSession reply, in each server's order of deletion (seed 2418), with their
        // parents' NodeChildrenChanged among them (as at a seed's end, seed 1175).
        let (a_close, a_open) = apache.split_once("; ")?;
        let (z_close, z_open) = zkr.split_once("; ")?;
        let permuted = a_open == z_open && events_permuted(a_close, z_close, true);
        return permuted.then_some(Some(Filter::EphemeralDeletionOrder));
    };
    let code = |line: &str| line.split(" err=").nth(1)?.split(' ').next().map(str::to_string);
    let (a, z) = (code(apache), code(zkr));
    if a.is_none() && z.as_deref() == Some("-8") {
        let plain_ttl = match req {
            Request::Create { op: OpCode::CreateTtl, flags: 0..=4, ttl, .. } => *ttl < 0,
            _ => false,
        };
        if plain_ttl && apache.starts_with("closed") {
            return Some(Some(Filter::CreateTtlWithoutTtl));
        }
    }
    let (a, z) = (code(apache)?, code(zkr)?);
    match req {
        Request::Exists { .. } if a == "0" && z == "-102" => Some(Some(Filter::ExistsWithoutRead)),
        Request::CheckWatches { path, watcher_type: 1 | 2 }
        | Request::RemoveWatches { path, watcher_type: 1 | 2 }
            if a == "0" && z == "-121" && generator.has_persistent(*session, path) =>
        {
            Some(Some(Filter::CheckWatchesOnPersistent))
        }
        Request::CheckWatches { path, .. }
            if a == "0" && z == "-121" && generator.watched.contains(path) =>
        {
            Some(Some(Filter::CheckWatchesOtherSession))
        }
        // 3.8.0 walks the parents of a path without a slash when a recursive watch exists.
        Request::CheckWatches { path, .. }
            if a == "-5" && z == "-121" && !path.starts_with('/') =>
        {
            Some(Some(Filter::CheckWatchesOtherSession))
        }
        _ if events_permuted(apache, zkr, false) => Some(Some(Filter::EphemeralDeletionOrder)),
        _ => None,
    }
}

/// [`Filter::EphemeralDeletionOrder`]: equal replies, and the same NodeDeleted events.
fn events_permuted(apache: &str, zkr: &str, parents_too: bool) -> bool {
    let split = |line: &str| {
        let (reply, events) = line.split_once(" events=")?;
        let trim = |e: &str| e.trim_matches(['[', ']', '"']).to_string();
        let mut list: Vec<String> = events.split(", ").map(trim).collect();
        let fired_by_deletes = list.iter().all(|e| {
            e.starts_with("NodeDeleted") || (parents_too && e.starts_with("NodeChildrenChanged"))
        });
        list.sort();
        Some((reply.to_string(), list, fired_by_deletes))
    };
    match (split(apache), split(zkr)) {
        (Some((a, a_list, true)), Some((z, z_list, true))) => a == z && a_list == z_list,
        _ => false,
    }
}

/// Runs `count` seeds from `first`, `ops` steps each. Stops at the first difference unless
/// `keep_going`, in which case both servers are started afresh after each one.
pub fn run(first: u64, count: u64, ops: usize, keep_going: bool) -> Outcome {
    let mut outcome = Outcome::default();
    let mut sides = (Side::start(Target::Apache), Side::start(Target::Zkr));
    for seed in first..first + count {
        let differences = outcome.differences.len();
        let crashes = outcome.documented.iter().filter(|d| d.0 == Filter::CreateTtlWithoutTtl);
        let crashes = crashes.count();
        let closed = outcome.closed;
        let differed = run_seed(seed, ops, &mut sides, &mut outcome);
        assert_eq!(differed, outcome.differences.len() > differences, "a difference is recorded");
        if differed && let Ok(keep) = std::env::var("ZKR_DIFFGEN_KEEP_DIRS") {
            keep_dirs(&sides, &format!("{keep}/{seed}"));
        }
        if differed && !keep_going {
            break;
        }
        // After Filter::CreateTtlWithoutTtl Apache has shut itself down (an exception in apply).
        let crashed = outcome.documented.iter().filter(|d| d.0 == Filter::CreateTtlWithoutTtl);
        if differed || crashed.count() > crashes || outcome.closed > closed {
            drop(sides);
            sides = (Side::start(Target::Apache), Side::start(Target::Zkr));
        }
    }
    outcome
}

/// `ZKR_DIFFGEN_KEEP_DIRS=DIR`: copies both servers' dirs (config, log, data: Apache's txn log
/// reads with `TxnLogToolkit -d`) to `DIR/<seed>-apache` and `DIR/<seed>-zkr` before they are
/// removed, to find which txn one server made and the other did not.
fn keep_dirs(sides: &(Side, Side), to: &str) {
    for (side, name) in [(&sides.0, "apache"), (&sides.1, "zkr")] {
        let from = side.server.dir().display().to_string();
        let dest = format!("{to}-{name}");
        let copied = std::process::Command::new("cp").args(["-a", &from, &dest]).status();
        if !copied.is_ok_and(|status| status.success()) {
            eprintln!("diffgen: could not copy {from} to {to}-{name}");
        }
    }
}

/// Compares one reply pair: counts it, and turns a difference into a [`Difference`] (with the
/// steps before it) or remembers the agreed step.
fn compare(
    seed: u64,
    what: String,
    replies: (String, String),
    before: &mut Vec<String>,
    outcome: &mut Outcome,
) -> bool {
    outcome.compared += 1;
    let (apache, zkr) = replies;
    if apache == zkr {
        before.push(format!("{what} -> {apache}"));
        return false;
    }
    let step = before.len();
    let before = std::mem::take(before);
    outcome.differences.push(Difference { seed, step, what, apache, zkr, before });
    true
}

/// One seed; returns true when it found a difference (recorded in `outcome`).
fn run_seed(seed: u64, ops: usize, sides: &mut (Side, Side), outcome: &mut Outcome) -> bool {
    let mut generator = Generator::new(seed);
    let (apache, zkr) = sides;
    let mut before = Vec::new();
    // The filter that parted the two servers' watches, if one did (the seed then ends).
    let mut parted_by = None;
    // Setup: the sessions, then the seed's root.
    for slot in 0..generator.sessions() {
        let replies = (apache.open(slot), zkr.open(slot));
        if compare(seed, format!("open {slot}"), replies, &mut before, outcome) {
            return true;
        }
    }
    let root = Request::Create {
        op: OpCode::Create,
        path: generator.base().to_string(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: 0,
        ttl: -1,
    };
    let replies = (apache.call(0, &root), zkr.call(0, &root));
    if compare(seed, format!("{root:?}"), replies, &mut before, outcome) {
        return true;
    }
    for _ in 0..ops {
        let step = generator.next_step();
        let (a, z) = match &step {
            Step::Call { session, req } => (apache.call(*session, req), zkr.call(*session, req)),
            Step::Reopen { session } => {
                let a = apache.call(*session, &Request::CloseSession);
                let z = zkr.call(*session, &Request::CloseSession);
                (format!("{a}; {}", apache.open(*session)), format!("{z}; {}", zkr.open(*session)))
            }
        };
        if let Some(Some(filter)) = judge(&generator, &step, &a, &z) {
            outcome.compared += 1;
            outcome.documented.push((filter, seed));
            before.push(format!("{step:?} -> documented {filter:?}: {a} | {z}"));
            if filter == Filter::EphemeralDeletionOrder {
                // The same replies but for the events' order: the generator learns from them
                // (a Reopen forgets the closed session's watches).
                generator.observe(&step, &a);
            }
            // The two servers' watches part here: the seed ends.
            if filter == Filter::CreateTtlWithoutTtl {
                // Apache shuts down: nothing more to compare; `run` starts both afresh.
                return false;
            }
            let parted = match &step {
                Step::Call { req: Request::Exists { watch, .. }, .. } => *watch,
                Step::Call { req: Request::RemoveWatches { .. }, .. } => true,
                _ => false,
            };
            if parted {
                parted_by = Some(filter);
                break;
            }
            continue;
        }
        if compare(seed, format!("{step:?}"), (a.clone(), z), &mut before, outcome) {
            return true;
        }
        if a.starts_with("closed") {
            outcome.closed += 1;
        }
        generator.observe(&step, &a);
    }
    // Close every session (ephemerals go, other sessions' watches fire) on both sides.
    let (mut a, mut z) = (apache.close_all(), zkr.close_all());
    for (a_line, z_line) in a.iter_mut().zip(z.iter_mut()) {
        if let Some(filter) = close_accepted(parted_by, a_line, z_line) {
            outcome.documented.push((filter, seed));
            *z_line = a_line.clone();
        }
    }
    compare(seed, "close all".into(), (format!("{a:?}"), format!("{z:?}")), &mut before, outcome)
}

/// Whether two differing replies to a seed's final closeSession differ in a documented way.
/// Closing every session deletes each one's ephemerals in its own order: their parents'
/// NodeChildrenChanged (one-shot, fired by the first child deleted) move with them (seed 1175).
/// After `parted_by` ended the seed, the servers hold different watches, so the events those
/// deletions fire may differ, not the replies (seed 4184: a removeWatches of type Children
/// removed a persistent watch on 3.8 only, whose NodeChildrenChanged zkr then sent).
fn close_accepted(parted_by: Option<Filter>, apache: &str, zkr: &str) -> Option<Filter> {
    if apache == zkr {
        return None;
    }
    if events_permuted(apache, zkr, true) {
        return Some(Filter::EphemeralDeletionOrder);
    }
    let reply = |line: &str| line.split_once(" events=").map(|(reply, _)| reply.to_string());
    let (a, z) = (reply(apache)?, reply(zkr)?);
    parted_by.filter(|_| a == z)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seed 2418 step 43 of a 2000..2600 x 80 run: the session closed by a Reopen watched its
    /// own two ephemerals, and the two servers deleted them in different orders.
    #[test]
    fn a_reopen_whose_closed_session_sees_its_ephemerals_go_in_another_order_is_documented() {
        let generator = Generator::new(2418);
        let step = Step::Reopen { session: 0 };
        let close = "xid=39 err=0 zxid=0x37b body=None events=";
        let open = "; session #63 timeout=30000";
        let (b, b_0) = ("\"NodeDeleted 3 /g2418/b\"", "\"NodeDeleted 3 /g2418/b-0000000000\"");
        let apache = format!("{close}[{b_0}, {b}]{open}");
        let zkr = format!("{close}[{b}, {b_0}]{open}");
        let judged = judge(&generator, &step, &apache, &zkr);
        assert_eq!(judged, Some(Some(Filter::EphemeralDeletionOrder)));
        // Not when the new sessions differ, an event is missing, or the close replies differ.
        let other_open = format!("{close}[{b}, {b_0}]; session #64 timeout=30000");
        assert_eq!(judge(&generator, &step, &apache, &other_open), None);
        let missing = format!("{close}[{b}]{open}");
        assert_eq!(judge(&generator, &step, &apache, &missing), None);
        let other_zxid = zkr.replace("0x37b", "0x37c");
        assert_eq!(judge(&generator, &step, &apache, &other_zxid), None);
    }

    /// Seed 4184 of a 4000..4600 x 100 run: its removeWatches of type Children on a persistent
    /// watch parted the servers' watches (CheckWatchesOnPersistent) and ended the seed; the final
    /// close deleted an ephemeral child, and only zkr still had the watch to tell of it.
    #[test]
    fn the_final_close_after_the_watches_parted_may_differ_in_its_events_only() {
        let close = "xid=42 err=0 zxid=0x89c body=None events=";
        let apache = format!("{close}[]");
        let zkr = format!("{close}[\"NodeChildrenChanged 3 /g4184/a\"]");
        let parted = Some(Filter::CheckWatchesOnPersistent);
        assert_eq!(close_accepted(parted, &apache, &zkr), parted);
        // Not when the watches did not part, nor when the replies differ.
        assert_eq!(close_accepted(None, &apache, &zkr), None);
        let other_zxid = zkr.replace("0x89c", "0x89d");
        assert_eq!(close_accepted(parted, &apache, &other_zxid), None);
        assert_eq!(close_accepted(parted, &apache, &apache), None);
    }
}
