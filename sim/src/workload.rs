//! The client workload and its history: which request a client issues next (from the seed's
//! op mix over a small path space), and how requests, replies and watch events become lines of
//! the jepsen history format (`zkr_jepsen::history`).
//!
//! Path space: `/k0../k{keys-1}`; under each key, children `c0..c3` and ephemerals `e0..e1`;
//! sequential nodes `/seq/s<k>-…` live under `/seq`, which every client creates first and
//! nobody deletes; ephemeral sequentials `/e<process>/q<k>-…` under a parent of their own
//! session. So no sequential create ever follows a delete under the same parent: ZooKeeper
//! numbers sequentials with the parent's stored cversion, which deletes do not advance and a
//! re-created parent resets, and the checker's model does not follow either (reported).
//! Data values are unique per client op
//! (`p<process>.<n>`), which keeps the checker's search narrow.
//!
//! Recording follows `zkr_jepsen::record` (shared with `jepsen test`'s real clients); a
//! session's end is a `close` op (see `client` for when it is invoked).

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use zkr_core::proto::client::{OpCode, ReplyHeader, Request, Response};
use zkr_core::types::Acl;
use zkr_jepsen::history::Event;
use zkr_jepsen::record;
pub use zkr_jepsen::record::{bare, close_invoke, function, invoke, is_write, watch_event};

use crate::swarm::{OP_KINDS, OpKind, Swarm};

/// The parent of every sequential node (never deleted).
pub const SEQ_PARENT: &str = "/seq";

/// What a client remembers to aim its versioned ops.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// The client already asked for `/seq`.
    pub seq_parent_requested: bool,
    /// The client already asked for `/e<process>`, the parent of its ephemeral sequentials.
    pub ephemeral_parent_requested: bool,
    /// Last version seen per path.
    pub versions: BTreeMap<String, i32>,
    /// Values written so far (for unique data).
    pub counter: u64,
    /// An `OPEN_ACL_UNSAFE` list a create's request handed back once its frame was encoded
    /// (`client::strip_for_reply`): the next create takes it instead of building the list
    /// again (three allocations, and three frees when the request was dropped).
    pub spare_open_acl: Option<Vec<Acl>>,
}

impl Memory {
    /// An `OPEN_ACL_UNSAFE` list for a create: the spare one if a request handed it back.
    fn open_acl(&mut self) -> Vec<Acl> {
        self.spare_open_acl.take().unwrap_or_else(Acl::open_unsafe)
    }

    /// Keeps `acl` for the next create if it is `OPEN_ACL_UNSAFE` (the only list the workload
    /// sends); any other list is dropped.
    pub fn give_back_acl(&mut self, acl: Vec<Acl>) {
        if is_open_unsafe(&acl) {
            self.spare_open_acl = Some(acl);
        }
    }
}

/// True for `OPEN_ACL_UNSAFE` (ALL for world:anyone), what [`Acl::open_unsafe`] builds.
fn is_open_unsafe(acl: &[Acl]) -> bool {
    matches!(acl, [one] if one.perms == zkr_core::types::perms::ALL
        && one.id.scheme == "world"
        && one.id.id == "anyone")
}

/// Picks the next op kind from the mix.
pub fn pick_kind(swarm: &Swarm, rng: &mut ChaCha8Rng) -> OpKind {
    let total: u32 = swarm.mix.iter().sum();
    assert!(total > 0, "the mix has at least one op kind");
    let mut x = rng.random_range(0..total);
    for (i, w) in swarm.mix.iter().enumerate() {
        if x < *w {
            return OP_KINDS[i];
        }
        x -= w;
    }
    unreachable!("x < total")
}

fn key_index(swarm: &Swarm, rng: &mut ChaCha8Rng) -> u32 {
    rng.random_range(0..swarm.keys)
}

/// `prefix` followed by `n` in decimal: what `format!("{prefix}{n}")` makes.
fn numbered(prefix: &str, n: u64) -> String {
    let mut out = String::with_capacity(prefix.len() + 20 + 8);
    out.push_str(prefix);
    push_decimal(&mut out, n);
    out
}

/// Appends `n` in decimal (what `write!(out, "{n}")` appends), through `itoa`, without the
/// formatting machinery (the workload names a path or a value for every op it issues).
fn push_decimal(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// `/k<key>/e<0 or 1>`: an ephemeral's path (an i32 draw for the suffix, as `format!`
/// inferred it before: the draw's type decides the stream).
fn ephemeral(swarm: &Swarm, rng: &mut ChaCha8Rng) -> String {
    let mut path = key(swarm, rng);
    path.push_str("/e");
    let n: i32 = rng.random_range(0..2);
    push_decimal(&mut path, u64::try_from(n).expect("0..2"));
    path
}

fn key(swarm: &Swarm, rng: &mut ChaCha8Rng) -> String {
    numbered("/k", u64::from(rng.random_range(0..swarm.keys)))
}

fn child(swarm: &Swarm, rng: &mut ChaCha8Rng) -> String {
    // Written onto the key's own string (it has room): a copy into a second one was an
    // allocation and a free per child path.
    let mut path = key(swarm, rng);
    path.push_str("/c");
    // An i32 draw, as `format!` inferred it before: the draw's type decides the stream.
    let n: i32 = rng.random_range(0..4);
    push_decimal(&mut path, u64::try_from(n).expect("0..4"));
    path
}

fn any_path(swarm: &Swarm, rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..10) {
        0..=3 => key(swarm, rng),
        4..=7 => child(swarm, rng),
        _ => ephemeral(swarm, rng),
    }
}

fn create(
    path: String,
    data: String,
    flags: i32,
    memory: &mut Memory,
    rng: &mut ChaCha8Rng,
) -> Request {
    let op = if rng.random_bool(0.5) { OpCode::Create } else { OpCode::Create2 };
    let acl = memory.open_acl();
    assert!(is_open_unsafe(&acl), "the workload creates with OPEN_ACL_UNSAFE");
    Request::Create { op, path, data: Some(data.into_bytes()), acl, flags, ttl: -1 }
}

fn version(memory: &Memory, path: &str, rng: &mut ChaCha8Rng) -> i32 {
    match memory.versions.get(path) {
        Some(v) if rng.random_bool(0.8) => *v,
        _ => rng.random_range(0..3),
    }
}

/// The next request of a client (never `CloseSession`; the caller handles `OpKind::Close`).
pub fn next_request(
    kind: OpKind,
    swarm: &Swarm,
    memory: &mut Memory,
    process: u64,
    rng: &mut ChaCha8Rng,
) -> Request {
    memory.counter += 1;
    // `p<process>.<counter>`, in one string (room for both numbers).
    let mut data = String::with_capacity(2 * 20 + 2);
    data.push('p');
    push_decimal(&mut data, process);
    data.push('.');
    push_decimal(&mut data, memory.counter);
    if !memory.seq_parent_requested {
        memory.seq_parent_requested = true;
        return create(SEQ_PARENT.to_string(), data, 0, memory, rng);
    }
    match kind {
        OpKind::Create => create(key(swarm, rng), data, 0, memory, rng),
        OpKind::CreateChild => create(child(swarm, rng), data, 0, memory, rng),
        OpKind::CreateSequential => {
            let mut path = String::with_capacity(SEQ_PARENT.len() + 16);
            path.push_str(SEQ_PARENT);
            path.push_str("/s");
            push_decimal(&mut path, u64::from(key_index(swarm, rng)));
            path.push('-');
            create(path, data, 2, memory, rng)
        }
        OpKind::CreateEphemeral => create(ephemeral(swarm, rng), data, 1, memory, rng),
        OpKind::CreateEphemeralSequential => {
            if !memory.ephemeral_parent_requested {
                memory.ephemeral_parent_requested = true;
                return create(numbered("/e", process), data, 0, memory, rng);
            }
            let mut path = numbered("/e", process);
            path.push_str("/q");
            push_decimal(&mut path, u64::from(key_index(swarm, rng)));
            path.push('-');
            create(path, data, 3, memory, rng)
        }
        OpKind::Set | OpKind::SetVersioned => {
            let path = if rng.random_bool(0.5) { key(swarm, rng) } else { child(swarm, rng) };
            let v = if kind == OpKind::Set { -1 } else { version(memory, &path, rng) };
            Request::SetData { path, data: Some(data.into_bytes()), version: v }
        }
        OpKind::Delete | OpKind::DeleteVersioned => {
            let path = any_path(swarm, rng);
            let v = if kind == OpKind::Delete { -1 } else { version(memory, &path, rng) };
            Request::Delete { path, version: v }
        }
        OpKind::Multi => multi(swarm, memory, &data, rng),
        OpKind::Get => Request::GetData {
            path: any_path(swarm, rng),
            watch: rng.random_bool(swarm.watch_probability),
        },
        OpKind::Exists => Request::Exists {
            path: any_path(swarm, rng),
            watch: rng.random_bool(swarm.watch_probability),
        },
        OpKind::Children => {
            let op = if rng.random_bool(0.5) { OpCode::GetChildren } else { OpCode::GetChildren2 };
            let watch = rng.random_bool(swarm.watch_probability);
            Request::GetChildren { op, path: key(swarm, rng), watch }
        }
        OpKind::Sync => Request::Sync { path: key(swarm, rng) },
        OpKind::Close => unreachable!("closeSession is issued by the client itself"),
    }
}

fn multi(swarm: &Swarm, memory: &Memory, data: &str, rng: &mut ChaCha8Rng) -> Request {
    // An i32 draw, as it was inferred before: the draw's type decides the stream.
    let n: i32 = rng.random_range(2..=3);
    let mut ops = Vec::new();
    for i in 0..n {
        let path = child(swarm, rng);
        let mut sub_data = String::with_capacity(data.len() + 2);
        sub_data.push_str(data);
        sub_data.push('.');
        push_decimal(&mut sub_data, u64::try_from(i).expect("0..3"));
        ops.push(match rng.random_range(0..4) {
            0 => {
                let acl = Acl::open_unsafe();
                let data = Some(sub_data.into_bytes());
                Request::Create { op: OpCode::Create, path, data, acl, flags: 0, ttl: -1 }
            }
            1 => Request::SetData { path, data: Some(sub_data.into_bytes()), version: -1 },
            2 => Request::Delete { path, version: -1 },
            _ => {
                let version = version(memory, &path, rng);
                Request::Check { path, version }
            }
        });
    }
    Request::Multi(ops)
}

/// The completion line of a reply; `memory` learns the versions the reply shows.
pub fn completion(
    process: u64,
    req: &Request,
    header: &ReplyHeader,
    body: Option<&Response>,
    memory: &mut Memory,
    time_us: u64,
) -> Event {
    record::completion(process, req, header, body, &mut memory.versions, time_us)
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn numbered_writes_what_format_writes() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(numbered("/k", n), format!("/k{n}"));
            assert_eq!(numbered("", n), n.to_string());
        }
        // Every width from 1 to 20 digits, both ends of each, and every number below 100,000.
        let mut p = 1u64;
        for _ in 0..19 {
            for n in [p - 1, p, p + 1, p * 10 - 1] {
                assert_eq!(numbered("", n), n.to_string());
            }
            p *= 10;
        }
        for n in 0..100_000 {
            assert_eq!(numbered("p", n), format!("p{n}"));
        }
    }
}
