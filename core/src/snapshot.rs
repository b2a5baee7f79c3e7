//! Snapshots: the data tree and the session table as bytes, and back. Our own format (not
//! ZooKeeper's `ZKSN`), built from jute primitives:
//!
//! ```text
//! int magic "ZKRS" | int version 1 | long zxid
//! vector<(long session id, int timeout ms)>
//! int node count, then per node in path order:
//!   ustring path | buffer data (null kept) | vector<ACL> | byte kind (0 persistent,
//!   1 ephemeral, 2 container, 3 TTL) | StatPersisted (czxid mzxid ctime mtime version cversion
//!   aversion ephemeralOwner pzxid)
//! long tree digest | long FNV-1a 64 of every byte before it
//! ```
//!
//! Unlike ZooKeeper's fuzzy snapshots, [`encode`] takes a consistent tree at exactly
//! `tree.last_processed_zxid()`, so loading needs no idempotent replay. [`decode`] treats its
//! input as untrusted: it never panics, checks the checksum, every length, path syntax, strict
//! path order (what `encode` writes), parents, kinds against owners, and the digest of the
//! rebuilt tree; the ephemeral index, child counts and quota roots are rebuilt, not trusted.
//! Nodes go into the tree as they are read, so a load never holds the tree twice.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::proto::error::DecodeError;
use crate::proto::jute::{ACL_MIN_BYTES, Reader, Writer};
use crate::tree::digest::Fnv64;
use crate::tree::{DataTree, NodeKind, StatPersisted, TreeLoader, ZNode};
use crate::types::{Acl, SessionId, Zxid};

/// "ZKRS".
pub const MAGIC: i32 = 0x5a4b_5253;
/// The format version [`encode`] writes.
pub const VERSION: i32 = 1;

/// A decoded snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The zxid the tree is at (`tree.last_processed_zxid()`).
    pub zxid: Zxid,
    /// The tree.
    pub tree: DataTree,
    /// Live sessions: id and timeout in ms.
    pub sessions: Vec<(SessionId, i32)>,
}

/// Encodes `tree` and `sessions` (see the module doc for the layout).
pub fn encode(tree: &DataTree, sessions: &[(SessionId, i32)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let written = encode_in_pieces(tree, sessions, 1 << 20, |piece| {
        bytes.extend_from_slice(piece);
        Ok::<(), std::convert::Infallible>(())
    });
    let Ok(len) = written;
    assert_eq!(len, bytes.len());
    assert!(bytes.len() >= 40, "a snapshot holds at least the header and the trailer");
    bytes
}

/// [`encode`] handed to `sink` in pieces of about `piece_bytes` (the last one holds the
/// trailer), so a shell can write a snapshot as it is encoded instead of building it whole
/// (issue 16: at a million znodes the 200 MB blob's allocation and release, at the snapshot
/// thread's low priority, stalled the server's other threads). The pieces concatenated are
/// exactly [`encode`]'s bytes, [`encoded_len`] of them. Returns how many bytes went out, or
/// the first error of `sink` (nothing more is encoded after it).
pub fn encode_in_pieces<E>(
    tree: &DataTree,
    sessions: &[(SessionId, i32)],
    piece_bytes: usize,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<usize, E> {
    assert!(piece_bytes > 0, "a piece holds something");
    let (mut w, mut sum, mut written) = (Writer::new(), Fnv64::default(), 0);
    w.write_i32(MAGIC);
    w.write_i32(VERSION);
    w.write_i64(tree.last_processed_zxid().0);
    w.write_vec(sessions, |w, (id, timeout)| {
        w.write_i64(id.0);
        w.write_i32(*timeout);
    });
    w.write_i32(i32::try_from(tree.node_count()).expect("node count fits an int"));
    for (path, node) in tree.nodes() {
        write_node(&mut w, path, node);
        if w.len() >= piece_bytes {
            let piece = std::mem::take(&mut w).into_inner();
            sum.bytes(&piece);
            written += piece.len();
            sink(&piece)?;
        }
    }
    w.write_i64(tree.digest() as i64);
    sum.bytes(w.as_slice());
    w.write_i64(sum.finish() as i64);
    written += w.len();
    sink(w.as_slice())?;
    Ok(written)
}

/// The length of [`encode`]'s bytes, computed without encoding (a shell writes it ahead of
/// the pieces of [`encode_in_pieces`]).
pub fn encoded_len(tree: &DataTree, sessions: &[(SessionId, i32)]) -> usize {
    // magic, version, zxid, session count, sessions, node count; digest and checksum.
    let mut len = 4 + 4 + 8 + 4 + 12 * sessions.len() + 4 + 8 + 8;
    let mut previous_acl: Option<(&Arc<[Acl]>, usize)> = None;
    for (path, node) in tree.nodes() {
        let data = node.data.as_ref().map_or(0, |d| d.len());
        let acl = match previous_acl.filter(|(acl, _)| Arc::ptr_eq(acl, &node.acl)) {
            Some((_, acl_len)) => acl_len,
            None => {
                let acl_len =
                    node.acl.iter().map(|a| 4 + 4 + a.id.scheme.len() + 4 + a.id.id.len());
                let acl_len = 4 + acl_len.sum::<usize>();
                previous_acl = Some((&node.acl, acl_len));
                acl_len
            }
        };
        len += 4 + path.len() + 4 + data + acl + 1 + 60;
    }
    len
}

fn write_node(w: &mut Writer, path: &str, node: &ZNode) {
    w.write_string(path);
    w.write_buffer(node.data.as_deref());
    w.write_acls(&node.acl);
    w.write_u8(match node.kind() {
        NodeKind::Persistent => 0,
        NodeKind::Ephemeral(_) => 1,
        NodeKind::Container => 2,
        NodeKind::Ttl(_) => 3,
    });
    let s = &node.stat;
    for v in [s.czxid, s.mzxid, s.ctime, s.mtime] {
        w.write_i64(v);
    }
    for v in [s.version, s.cversion, s.aversion] {
        w.write_i32(v);
    }
    w.write_i64(s.ephemeral_owner);
    w.write_i64(s.pzxid);
}

/// Decodes a snapshot. Any corruption or inconsistency is an error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
    let snapshot = decode_deferring_invariants(bytes)?;
    snapshot.tree.invariants();
    Ok(snapshot)
}

/// [`decode`] without its last step, the O(n log n) [`DataTree::invariants`] self-check of the
/// rebuilt tree (a check of this code, not of the input: every input check above still runs,
/// the stored digest included). The caller must run `invariants()` on the tree; the server does
/// it on another thread, over an O(1) clone, while it starts serving (issue 16: restart time).
pub fn decode_deferring_invariants(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
    verify_checksum(bytes)?;
    decode_body(bytes, true)
}

/// [`decode_deferring_invariants`] without two more checks, for a caller that runs them beside
/// it and refuses or stops on a failure (issue 16: restart time; hashing was 40% of a load):
/// - [`verify_checksum`], the whole-file checksum (the server runs it on another thread during
///   the decode);
/// - the stored tree digest against the nodes: the tree takes the stored digest, and
///   [`DataTree::invariants`], which the caller must run, compares it with the sum of the node
///   hashes (the server runs it on a frozen clone after starting; a failure stops it).
///
/// Safe on any input: every length, path, parent and kind is still checked, so corrupt bytes
/// give an error or a failed check, never a panic here.
pub fn decode_deferring_checks(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
    decode_body(bytes, false)
}

/// The first step of [`decode`]: the trailing FNV-1a checksum against every byte before it.
pub fn verify_checksum(bytes: &[u8]) -> Result<(), DecodeError> {
    let mut sum = PieceChecksum::new(bytes.len())?;
    sum.feed(bytes);
    sum.finish()
}

/// [`verify_checksum`] over a snapshot handed over in pieces (a shell reading the file as it
/// decodes it, instead of holding the whole blob: issue 16, memory after a restart).
#[derive(Clone, Debug)]
pub struct PieceChecksum {
    sum: Fnv64,
    /// Bytes before the stored checksum not fed yet.
    body_left: usize,
    /// The stored checksum's bytes, as they come.
    stored: Vec<u8>,
}

impl PieceChecksum {
    /// A checksum of a snapshot of `total_len` bytes; shorter than a checksum is `Truncated`.
    pub fn new(total_len: usize) -> Result<PieceChecksum, DecodeError> {
        let Some(body_left) = total_len.checked_sub(8) else {
            return Err(DecodeError::Truncated { what: "snapshot" });
        };
        Ok(PieceChecksum { sum: Fnv64::default(), body_left, stored: Vec::with_capacity(8) })
    }

    /// The next bytes of the snapshot, in order.
    pub fn feed(&mut self, piece: &[u8]) {
        let (body, rest) = piece.split_at(piece.len().min(self.body_left));
        self.sum.bytes(body);
        self.body_left -= body.len();
        self.stored.extend_from_slice(rest);
    }

    /// After the last piece: the stored checksum against the bytes before it.
    pub fn finish(self) -> Result<(), DecodeError> {
        let Ok(stored) = <[u8; 8]>::try_from(self.stored.as_slice()) else {
            return Err(DecodeError::Truncated { what: "snapshot" });
        };
        match self.body_left == 0 && self.sum.finish() == u64::from_be_bytes(stored) {
            true => Ok(()),
            false => Err(DecodeError::BadChecksum),
        }
    }
}

/// Everything after the checksum; `hash_nodes` = check the stored digest now (else later, see
/// [`decode_deferring_checks`]). The two halves, [`PieceDecoder`] and [`TreeBuilder`], run in
/// turn here; a shell may run them on two threads (`server::driver`), to the same result.
fn decode_body(bytes: &[u8], hash_nodes: bool) -> Result<Snapshot, DecodeError> {
    let mut records = PieceDecoder::new(bytes.len())?;
    records.feed(bytes);
    let Step::Head(head) = records.step()? else {
        unreachable!("a whole snapshot needs no more bytes");
    };
    let mut builder = TreeBuilder::new(head, hash_nodes);
    loop {
        match records.step()? {
            Step::Node(path, node) => builder.push(path, node)?,
            Step::Digest(digest) => return builder.finish(digest),
            Step::Head(_) | Step::NeedMore => unreachable!("one head; a whole snapshot"),
        }
    }
}

/// What a snapshot holds before its nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotHead {
    /// The zxid the tree is at.
    pub zxid: Zxid,
    /// Live sessions: id and timeout in ms.
    pub sessions: Vec<(SessionId, i32)>,
    /// How many nodes follow.
    pub node_count: usize,
}

/// What [`PieceDecoder::step`] read.
#[derive(Debug)]
pub enum Step {
    /// The bytes fed so far end inside the next record: feed more.
    NeedMore,
    /// The head (the first step).
    Head(SnapshotHead),
    /// The next node with its path.
    Node(Arc<str>, ZNode),
    /// The stored tree digest, which ends the body (the last step).
    Digest(u64),
}

/// A snapshot's records parsed one by one from bytes fed in pieces, without a tree: the half of
/// a decode that reads jute and allocates paths, data and ACLs (issue 16: restart time and
/// memory; the other half is [`TreeBuilder`]). Checks lengths, UTF-8 and kinds; the builder
/// checks order and structure. Checks no checksum (see [`PieceChecksum`]). A record cut by
/// the end of a piece is parsed again once the next piece is in, so fed whole or in pieces of
/// any size, the same bytes give the same steps and the same error.
#[derive(Debug)]
pub struct PieceDecoder {
    /// Bytes fed and not yet parsed start at `pos`.
    buf: Vec<u8>,
    pos: usize,
    /// Body bytes (all but the trailing checksum, which is not parsed) not fed yet.
    body_left: usize,
    /// Nodes still to read; `None` before the head.
    nodes_left: Option<usize>,
    previous_acl: RawAcl,
    done: bool,
}

impl PieceDecoder {
    /// A decoder for a snapshot of `total_len` bytes, its trailing checksum included.
    pub fn new(total_len: usize) -> Result<PieceDecoder, DecodeError> {
        let Some(body_left) = total_len.checked_sub(8) else {
            return Err(DecodeError::Truncated { what: "snapshot" });
        };
        let (buf, pos, nodes_left, previous_acl) = (Vec::new(), 0, None, None);
        Ok(PieceDecoder { buf, pos, body_left, nodes_left, previous_acl, done: false })
    }

    /// The next bytes of the snapshot, in order (bytes of the checksum are dropped).
    pub fn feed(&mut self, piece: &[u8]) {
        let body = &piece[..piece.len().min(self.body_left)];
        self.body_left -= body.len();
        // What is left of the bytes fed before is at most one record cut by a piece's end.
        self.buf.drain(..self.pos);
        self.pos = 0;
        self.buf.extend_from_slice(body);
    }

    /// Parses the next record from the bytes fed: `NeedMore` when they end inside it (with
    /// more to come; after the last piece that is `Truncated`). An `Err` ends the decode.
    pub fn step(&mut self) -> Result<Step, DecodeError> {
        assert!(!self.done, "no step after the digest");
        let (complete, body_left) = (self.body_left == 0, self.body_left);
        let mut r = Reader::new(&self.buf[self.pos..]);
        let read = match self.nodes_left {
            None => read_head(&mut r, body_left).map(Step::Head),
            Some(0) => read_digest(&mut r, body_left).map(Step::Digest),
            Some(_) => read_node(&mut r, &mut self.previous_acl)
                .map(|(path, node)| Step::Node(Arc::from(path), node)),
        };
        let step = match read {
            Err(DecodeError::Truncated { .. }) if !complete => return Ok(Step::NeedMore),
            read => read?,
        };
        self.pos = self.buf.len() - r.remaining();
        match &step {
            Step::Head(head) => self.nodes_left = Some(head.node_count),
            Step::Node(..) => self.nodes_left = self.nodes_left.map(|left| left - 1),
            Step::Digest(_) => (self.done, self.buf, self.pos) = (true, Vec::new(), 0),
            Step::NeedMore => unreachable!("returned above"),
        }
        Ok(step)
    }
}

/// A snapshot's head (magic, version, zxid, sessions, node count); `body_left` body bytes
/// follow what `r` holds.
fn read_head(r: &mut Reader<'_>, body_left: usize) -> Result<SnapshotHead, DecodeError> {
    let magic = r.read_i32("snapshot magic")?;
    if magic != MAGIC {
        return Err(DecodeError::BadValue { what: "snapshot magic", value: magic as i64 });
    }
    let version = r.read_i32("snapshot version")?;
    if version != VERSION {
        return Err(DecodeError::BadValue { what: "snapshot version", value: version as i64 });
    }
    let zxid = Zxid(r.read_i64("snapshot zxid")?);
    let sessions = read_sessions(r)?;
    let count = r.read_i32("snapshot node count")?;
    let room = r.remaining() + body_left;
    if count < 0 || (count as usize).saturating_mul(NODE_MIN_BYTES) > room {
        return Err(DecodeError::BadLength { what: "snapshot node count", len: count as i64 });
    }
    Ok(SnapshotHead { zxid, sessions, node_count: count as usize })
}

/// The stored digest after the last node, which must end the body (`body_left` more body
/// bytes follow what `r` holds).
fn read_digest(r: &mut Reader<'_>, body_left: usize) -> Result<u64, DecodeError> {
    let digest = r.read_i64("snapshot digest")? as u64;
    match r.remaining() + body_left {
        0 => Ok(digest),
        len => Err(DecodeError::TrailingBytes { what: "snapshot", len }),
    }
}

/// The half of a decode that puts parsed nodes into a tree, checking path order, parents and
/// owners (see [`NodeRecords`]). Takes the stored digest: the caller must run
/// [`DataTree::invariants`] on the tree, as for [`decode_deferring_checks`].
pub struct TreeBuilder {
    loader: TreeLoader,
    head: SnapshotHead,
    hash_nodes: bool,
}

impl TreeBuilder {
    /// A builder for the nodes after `head`, deferring the digest check.
    pub fn deferring_digest(head: SnapshotHead) -> TreeBuilder {
        TreeBuilder::new(head, false)
    }

    fn new(head: SnapshotHead, hash_nodes: bool) -> TreeBuilder {
        let loader = match hash_nodes {
            true => DataTree::loader(head.zxid),
            false => DataTree::loader_deferring_digest(head.zxid),
        };
        TreeBuilder { loader, head, hash_nodes }
    }

    /// Adds the next node (in the order read); files are written in path order, so any other
    /// order, a repeated path or a missing parent is corruption.
    pub fn push(&mut self, path: Arc<str>, node: ZNode) -> Result<(), DecodeError> {
        self.loader.push(path, node).map_err(|what| DecodeError::BadValue { what, value: 0 })
    }

    /// The snapshot, once every node is in; `digest` is what [`NodeRecords::digest`] read.
    pub fn finish(self, digest: u64) -> Result<Snapshot, DecodeError> {
        let invalid = |what| DecodeError::BadValue { what, value: 0 };
        let loader = self.loader;
        let SnapshotHead { zxid, sessions, node_count } = self.head;
        let tree = if self.hash_nodes {
            let tree = loader.finish().map_err(invalid)?;
            if tree.digest() != digest {
                return Err(DecodeError::BadChecksum);
            }
            tree
        } else {
            loader.finish_with_digest(digest).map_err(invalid)?
        };
        assert_eq!(tree.node_count(), node_count, "one node per entry");
        assert_eq!(tree.last_processed_zxid(), zxid, "the tree takes the snapshot zxid");
        Ok(Snapshot { zxid, tree, sessions })
    }
}

fn read_sessions(r: &mut Reader<'_>) -> Result<Vec<(SessionId, i32)>, DecodeError> {
    let sessions = r
        .read_vec_sized("snapshot sessions", 12, |r| {
            Ok((SessionId(r.read_i64("session id")?), r.read_i32("session timeout")?))
        })?
        .ok_or(DecodeError::BadLength { what: "snapshot sessions", len: -1 })?;
    let unique: BTreeSet<SessionId> = sessions.iter().map(|(s, _)| *s).collect();
    if unique.len() != sessions.len() {
        return Err(DecodeError::BadValue { what: "duplicate session", value: 0 });
    }
    Ok(sessions)
}

/// Smallest encoded node: path and data lengths, ACL count, kind, stat (4*8 + 3*4 + 2*8).
const NODE_MIN_BYTES: usize = 4 + 4 + 4 + 1 + 60;

/// The encoded bytes of the last ACL list decoded, and the list.
type RawAcl = Option<(Box<[u8]>, Arc<[Acl]>)>;

fn read_node<'a>(
    r: &mut Reader<'a>,
    previous_acl: &mut RawAcl,
) -> Result<(&'a str, ZNode), DecodeError> {
    let path = r.read_str("node path")?;
    let data = r.read_buffer("node data")?;
    // Nodes mostly repeat the previous node's ACL: the same bytes decode to the same list
    // (jute is self-delimiting), so they are skipped and the list shared, not allocated again.
    let acl = match previous_acl.as_ref().filter(|(raw, _)| r.rest().starts_with(raw)) {
        Some((raw, acl)) => {
            r.read_bytes(raw.len(), "node ACL")?;
            acl.clone()
        }
        None => {
            let start = r.rest();
            let acl: Arc<[Acl]> = r
                .read_vec_sized("node ACL", ACL_MIN_BYTES, |r| r.read_acl())?
                .ok_or(DecodeError::BadLength { what: "node ACL", len: -1 })?
                .into();
            let used = start.len() - r.rest().len();
            *previous_acl = Some((start[..used].into(), acl.clone()));
            acl
        }
    };
    let tag = r.read_u8("node kind")?;
    let mut s = StatPersisted {
        czxid: r.read_i64("czxid")?,
        mzxid: r.read_i64("mzxid")?,
        ctime: r.read_i64("ctime")?,
        mtime: r.read_i64("mtime")?,
        ..StatPersisted::default()
    };
    s.version = r.read_i32("version")?;
    s.cversion = r.read_i32("cversion")?;
    s.aversion = r.read_i32("aversion")?;
    s.ephemeral_owner = r.read_i64("ephemeralOwner")?;
    s.pzxid = r.read_i64("pzxid")?;
    let kind = match tag {
        0 => NodeKind::Persistent,
        1 if s.ephemeral_owner != 0 => NodeKind::Ephemeral(SessionId(s.ephemeral_owner)),
        2 => NodeKind::Container,
        3 => NodeKind::Ttl(s.ephemeral_owner & NodeKind::TTL_MAX_MS),
        _ => {
            return Err(DecodeError::BadValue { what: "node kind", value: tag as i64 });
        }
    };
    if s.ephemeral_owner != kind.ephemeral_owner() {
        // What `TreeLoader::push` answered when nodes were built before its check.
        let what = "ephemeral owner does not match the node kind";
        return Err(DecodeError::BadValue { what, value: 0 });
    }
    let node = ZNode::new(data.map(Vec::into_boxed_slice), acl, s, kind);
    Ok((path, node))
}
