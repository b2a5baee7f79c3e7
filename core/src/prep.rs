//! Leader-side preparation: a client write request becomes a fully decided `Txn`, with
//! ZooKeeper's exact order of checks (`PrepRequestProcessor`, reference §9, §10.2, §10.3).
//!
//! Pipelining: requests are prepared before the txns of earlier requests are applied, so the
//! checks must see those earlier effects. Like ZooKeeper's `outstandingChanges`, [`PrepState`]
//! keeps change records per path, each tagged with the zxid that made it; a lookup takes the
//! newest record, else the committed tree. [`PrepState::applied`] drops records once the tree
//! has caught up with their zxid. Every record is also listed in `order`, oldest first, so that
//! dropping applied records and finding the newest zxid cost O(records dropped), not a walk of
//! every path (issue 14: with 512 creates in flight under one parent, that walk at every
//! commit was a large share of a create's CPU).
//!
//! Invariants (the O(records) ones checked by [`PrepState::invariants`]):
//! - each path's records are in non-decreasing zxid order (zxids are given out in order);
//! - `order` lists every record exactly once, in non-decreasing zxid order, and each path's
//!   records appear in it in the same order as in that path's stack; no stack is empty;
//! - a request that fails adds no record; a multi that fails removes every record it added
//!   (so a failed multi uses up no sequence number), and is logged as a `Multi` of `Error`s;
//! - the decided txn carries everything apply needs: names, kinds, ACL after fix-up, the parent
//!   cversion, the new versions. The caller puts `who.session` in the txn header (apply takes
//!   an ephemeral's owner from there);
//! - no session's ephemerals in the pending view list more than [`ephemeral_bytes_max`] bytes
//!   in its future closeSession txn (ZOOKEEPER-4306): an ephemeral create past that fails with
//!   QUOTAEXCEEDED. `close_bytes` caches that sum per session; it always equals what
//!   `pending_ephemerals` recomputes from the tree and the records
//!   ([`PrepState::check_close_bytes`]).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use crate::config::Config;
use crate::proto::client::{OpCode, Request};
use crate::proto::error::ZkError;
use crate::proto::txn::encoded_txn_len;
use crate::tree::acl::{check_acl, fixup_acl};
use crate::tree::{DataTree, NodeKind, StatPersisted, path};
use crate::txn::{CreateKind, Txn};
use crate::types::{Acl, Id, SessionId, Zxid, perms};

/// Who sent a request.
#[derive(Clone, Copy, Debug)]
pub struct Requester<'a> {
    /// The session.
    pub session: SessionId,
    /// False when the session has expired or is closing (SESSIONEXPIRED).
    pub session_valid: bool,
    /// The connection's auth ids, `ip:<addr>` and `super:` (if authenticated as super) included.
    pub ids: &'a [Id],
}

/// A node as the pending view sees it (`ChangeRecord`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct PendingNode {
    stat: StatPersisted,
    kind: NodeKind,
    child_count: i32,
    /// Shared with the tree's node (or the setACL that made it): a lookup copies no list.
    acl: Arc<[Acl]>,
    data_len: i64,
}

/// One change record: the node after the change, or `None` for a delete.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ChangeRecord {
    zxid: Zxid,
    node: Option<PendingNode>,
}

/// The outstanding change records of prepared but not yet applied txns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrepState {
    records: BTreeMap<Arc<str>, VecDeque<ChangeRecord>>,
    /// Every record's zxid and path, in the order added (non-decreasing zxid).
    order: VecDeque<(Zxid, Arc<str>)>,
    /// Per session whose ephemerals an ephemeral create has looked at since the last `clear`:
    /// the bytes its ephemerals in the pending view add to its closeSession txn
    /// ([`close_entry_bytes`] each). A cache: a missing entry is recomputed when needed, so
    /// `rollback` simply drops the entries its zxid touched.
    close_bytes: BTreeMap<SessionId, usize>,
    /// The sessions whose `close_bytes` entry was filled or changed at this zxid (only the
    /// newest zxid can be rolled back).
    close_bytes_touched: Vec<(Zxid, SessionId)>,
}

/// `CreateMode` decoded from raw flags.
#[derive(Clone, Copy, Debug)]
struct CreateMode {
    ephemeral: bool,
    sequential: bool,
    container: bool,
    ttl: bool,
}

impl CreateMode {
    /// `CreateMode.fromFlag`; `None` for an unknown flag.
    fn from_flag(flags: i32) -> Option<CreateMode> {
        let m = |ephemeral, sequential, container, ttl| CreateMode {
            ephemeral,
            sequential,
            container,
            ttl,
        };
        let mode = match flags {
            0 => m(false, false, false, false),
            1 => m(true, false, false, false),
            2 => m(false, true, false, false),
            3 => m(true, true, false, false),
            4 => m(false, false, true, false),
            5 => m(false, false, false, true),
            6 => m(false, true, false, true),
            _ => return None,
        };
        // Apply and `NodeKind` rely on these: a node has one owner rule (session, TTL or
        // container), so an ephemeral never expires by TTL and a container is never sequential.
        assert!(!(mode.ttl && mode.ephemeral), "no ephemeral TTL node");
        assert!(!mode.container || !(mode.ephemeral || mode.sequential), "containers are plain");
        Some(mode)
    }
}

/// The sequential suffix: `%010d` of a signed int (`-2147483648` after `2147483647`).
pub fn sequential_suffix(cversion: i32) -> String {
    format!("{cversion:010}")
}

/// `path` followed by [`sequential_suffix`]`(cversion)`, written without the formatting
/// machinery (a sequential create names its node on every prepare; `format!` twice cost
/// about 800 instructions).
pub fn sequential_name(path: &str, cversion: i32) -> String {
    let mut digits = [b'0'; 10];
    let mut rest = cversion.unsigned_abs();
    let mut at = digits.len();
    while rest > 0 {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    // `%010d` pads to ten characters with the sign counted: nine digits after a minus sign,
    // unless the number itself has ten.
    let width = if cversion < 0 { 9 } else { 10 };
    let from = at.min(digits.len() - width);
    let mut out = String::with_capacity(path.len() + 11);
    out.push_str(path);
    if cversion < 0 {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(&digits[from..]).expect("ASCII digits"));
    assert!(out.len() >= path.len() + 10, "at least ten characters of suffix");
    assert!(out.len() <= path.len() + 11, "at most a sign and ten digits");
    out
}

/// `checkAndIncVersion` (3.9): -1 matches any version; the new version is current + 1 with
/// Java int wrap-around.
fn check_and_inc_version(current: i32, expected: i32) -> Result<i32, ZkError> {
    if expected != -1 && expected != current {
        return Err(ZkError::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// The parent part of a path as `PrepRequestProcessor` cuts it (everything before the last
/// `/`, with `""` meaning the root), or BADARGUMENTS for a path with no `/` or with `\0`.
fn cut_parent(p: &str) -> Result<&str, ZkError> {
    let last = p.rfind('/').ok_or(ZkError::BadArguments)?;
    if p.contains('\0') {
        return Err(ZkError::BadArguments);
    }
    Ok(if last == 0 { "/" } else { &p[..last] })
}

/// The arguments every prepare step shares.
struct Ctx<'a> {
    tree: &'a DataTree,
    cfg: &'a Config,
    who: &'a Requester<'a>,
    zxid: Zxid,
    time_ms: i64,
    in_multi: bool,
}

impl Ctx<'_> {
    fn session(&self) -> Result<(), ZkError> {
        if self.who.session_valid { Ok(()) } else { Err(ZkError::SessionExpired) }
    }

    fn allowed(&self, acl: &[Acl], wanted: i32) -> Result<(), ZkError> {
        if check_acl(acl, self.who.ids, wanted, self.cfg.skip_acl) {
            Ok(())
        } else {
            Err(ZkError::NoAuth)
        }
    }
}

/// A create request's fields.
struct CreateReq<'a> {
    op: OpCode,
    path: &'a str,
    data: &'a Option<Vec<u8>>,
    acl: &'a [Acl],
    flags: i32,
    ttl: i64,
}

impl PrepState {
    /// A state with no outstanding changes.
    pub fn new() -> PrepState {
        PrepState::default()
    }

    /// True when no change is outstanding.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Decides the txn for one write request at `zxid` (see the module doc). Failures give
    /// `Txn::Error` (single op) or a `Txn::Multi` of errors (multi).
    pub fn prepare(
        &mut self,
        tree: &DataTree,
        cfg: &Config,
        who: &Requester,
        req: &Request,
        zxid: Zxid,
        time_ms: i64,
    ) -> Txn {
        assert!(zxid > tree.last_processed_zxid(), "prepare at an already applied zxid");
        assert!(self.newest_zxid().is_none_or(|z| z < zxid), "prepare zxids must increase");
        let ctx = Ctx { tree, cfg, who, zxid, time_ms, in_multi: false };
        let txn = self.prepare_request(&ctx, req);
        // ZOOKEEPER-2101 / -3496: a request under jute.maxbuffer can decide a txn far larger
        // (an `auth` ACL expands to every id of the connection, in every create of a multi).
        // ZooKeeper logs it and then cannot replay it; refuse it before it is logged.
        if encoded_txn_len(&txn) > txn_bytes_max(cfg) {
            self.rollback(zxid);
            assert!(self.newest_zxid().is_none_or(|z| z < zxid), "rollback left records");
            return Txn::Error { err: ZkError::MarshallingError };
        }
        txn
    }

    fn prepare_request(&mut self, ctx: &Ctx<'_>, req: &Request) -> Txn {
        assert!(!ctx.in_multi, "a whole request, not one op of a multi");
        let result = match req {
            Request::Multi(ops) => return self.prepare_multi(ctx, ops),
            // A standalone check is not a write (ZooKeeper answers UNIMPLEMENTED and closes).
            Request::Check { .. } => Err(ZkError::Unimplemented),
            Request::Create { .. }
            | Request::Delete { .. }
            | Request::SetData { .. }
            | Request::SetAcl { .. } => self.prepare_op(ctx, req),
            other => {
                debug_assert!(false, "prepare called with a non-write request {other:?}");
                Err(ZkError::BadArguments)
            }
        };
        // A refused request leaves no trace in the pending view: the next request must be
        // checked as if it never came (PrepRequestProcessor only adds change records on success).
        if result.is_err() {
            assert!(self.newest_zxid().is_none_or(|z| z < ctx.zxid), "a refusal adds no record");
        }
        result.unwrap_or_else(|err| Txn::Error { err })
    }

    fn prepare_op(&mut self, ctx: &Ctx<'_>, req: &Request) -> Result<Txn, ZkError> {
        let records_before = self.order.len();
        let result = match req {
            Request::Create { op, path, data, acl, flags, ttl } => {
                let c = CreateReq { op: *op, path, data, acl, flags: *flags, ttl: *ttl };
                self.prepare_create(ctx, &c)
            }
            Request::Delete { path, version } => self.prepare_delete(ctx, path, *version),
            Request::SetData { path, data, version } => {
                self.prepare_set_data(ctx, path, data, *version)
            }
            Request::SetAcl { path, acl, version } => {
                self.prepare_set_acl(ctx, path, acl, *version)
            }
            Request::Check { path, version } if ctx.in_multi => {
                self.prepare_check(ctx, path, *version)
            }
            _ => Err(ZkError::MarshallingError),
        };
        // Each check runs before any record is added, so a failing op adds none (a multi's
        // earlier ops are rolled back by the caller); a passing write op shows in the pending
        // view at its zxid, so the ops and requests after it see its effect.
        match &result {
            Err(_) | Ok(Txn::Check { .. }) => {
                assert_eq!(self.order.len(), records_before, "no record without a change");
            }
            Ok(_) => assert_eq!(self.newest_zxid(), Some(ctx.zxid), "a change is pending"),
        }
        result
    }

    /// A multi: every op shares `zxid`. The first failure rolls back this multi's records and
    /// gives 0 for the ops before it, its code, then RUNTIMEINCONSISTENCY. A malformed multi
    /// (an op that is not create/delete/setData/check, or bad create flags) fails as a whole
    /// with MARSHALLINGERROR, as ZooKeeper's `MultiOperationRecord` decoding does.
    fn prepare_multi(&mut self, ctx: &Ctx<'_>, ops: &[Request]) -> Txn {
        // A TTL mode on a create, create2 or createContainer fails to decode in ZooKeeper 3.9
        // too: `MultiOperationRecord.deserialize` builds `CreateOptions`, whose `validateTTL`
        // throws for a TTL mode without a TTL (3.8 fails on a cast): MARSHALLINGERROR.
        let well_formed = ops.iter().all(|op| match op {
            Request::Create { op, flags, .. } => CreateMode::from_flag(*flags)
                .is_some_and(|mode| !mode.ttl || *op == OpCode::CreateTtl),
            Request::Delete { .. } | Request::SetData { .. } | Request::Check { .. } => true,
            _ => false,
        });
        if !well_formed {
            return Txn::Error { err: ZkError::MarshallingError };
        }
        let ctx = Ctx { in_multi: true, ..*ctx };
        let mut txns = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            match self.prepare_op(&ctx, op) {
                Ok(txn) => txns.push(txn),
                Err(err) => {
                    self.rollback(ctx.zxid);
                    assert!(
                        self.newest_zxid().is_none_or(|z| z < ctx.zxid),
                        "rollback left records"
                    );
                    return failed_multi(ops.len(), i, err);
                }
            }
        }
        assert_eq!(txns.len(), ops.len(), "one txn per op");
        Txn::Multi(txns)
    }

    /// The create checks, in `pRequest2TxnCreate` order (reference §10.3).
    fn prepare_create(&mut self, ctx: &Ctx<'_>, req: &CreateReq<'_>) -> Result<Txn, ZkError> {
        let mode = CreateMode::from_flag(req.flags).ok_or(ZkError::BadArguments)?;
        let (op, ttl) = effective_create_op(ctx.in_multi, req, mode);
        if mode.ttl && !ctx.cfg.extended_types_enabled {
            return Err(ZkError::Unimplemented);
        }
        validate_ttl(mode, ttl)?;
        ctx.session()?;
        let parent_path = cut_parent(req.path)?;
        let acl = fixup_acl(req.acl, ctx.who.ids)?;
        let parent = self.lookup(ctx.tree, parent_path).ok_or(ZkError::NoNode)?;
        ctx.allowed(&parent.acl, perms::CREATE)?;
        let full_path = if mode.sequential {
            sequential_name(req.path, parent.stat.cversion)
        } else {
            req.path.to_string()
        };
        path::validate_path(&full_path)?;
        if self.exists(ctx.tree, &full_path) {
            return Err(ZkError::NodeExists);
        }
        if parent.kind.owner_session().is_some() {
            return Err(ZkError::NoChildrenForEphemerals);
        }
        let data_len = req.data.as_ref().map_or(0, |d| d.len() as i64);
        if ctx.cfg.enforce_quota {
            ctx.tree.check_quota(&full_path, data_len, 1)?;
        }
        // A createTTL with a plain mode and no TTL passes all of ZooKeeper's checks and then
        // fails in apply (`toEphemeralOwner(-1)` throws; the connection is closed): refused
        // here, after every check ZooKeeper makes, so its failures are answered as it does.
        if op == OpCode::CreateTtl && !mode.ttl {
            assert!(ttl < 0, "validate_ttl refused a TTL on a plain mode");
            return Err(ZkError::BadArguments);
        }
        let kind = match op {
            OpCode::CreateContainer => CreateKind::Container,
            OpCode::CreateTtl => CreateKind::Ttl(ttl),
            _ if mode.ephemeral => CreateKind::Ephemeral,
            _ => CreateKind::Persistent,
        };
        if kind == CreateKind::Ephemeral && ctx.who.session.0 != 0 {
            self.check_close_bytes_room(ctx, &full_path)?;
        }
        let new_cversion = parent.stat.cversion.wrapping_add(1);
        assert!(full_path.starts_with(req.path), "the suffix is only appended");
        self.record_create(ctx, parent_path, parent, &full_path, kind, &acl, data_len);
        assert!(self.exists(ctx.tree, &full_path), "the pending view shows the node");
        Ok(Txn::Create {
            path: full_path,
            data: req.data.clone(),
            acl,
            kind,
            parent_cversion: new_cversion,
        })
    }

    /// Adds the parent's and the new node's change records for a create that passed its checks.
    #[allow(clippy::too_many_arguments)]
    fn record_create(
        &mut self,
        ctx: &Ctx<'_>,
        parent_path: &str,
        mut parent: PendingNode,
        full_path: &str,
        kind: CreateKind,
        acl: &[Acl],
        data_len: i64,
    ) {
        let node_kind = match kind {
            CreateKind::Persistent => NodeKind::Persistent,
            CreateKind::Ephemeral if ctx.who.session.0 == 0 => NodeKind::Persistent,
            CreateKind::Ephemeral => NodeKind::Ephemeral(ctx.who.session),
            CreateKind::Container => NodeKind::Container,
            CreateKind::Ttl(t) => NodeKind::Ttl(t),
        };
        // Session 0 is the server's own (container manager, internal writes): it never dies,
        // so an "ephemeral" of it would never be removed; ZooKeeper makes it persistent too.
        assert!(ctx.who.session.0 != 0 || node_kind.owner_session().is_none(), "no owner 0");
        parent.child_count += 1;
        parent.stat.cversion = parent.stat.cversion.wrapping_add(1);
        parent.stat.pzxid = ctx.zxid.0;
        self.add_record(parent_path, ctx.zxid, Some(parent));
        let stat = StatPersisted {
            czxid: ctx.zxid.0,
            mzxid: ctx.zxid.0,
            ctime: ctx.time_ms,
            mtime: ctx.time_ms,
            ephemeral_owner: node_kind.ephemeral_owner(),
            pzxid: ctx.zxid.0,
            ..StatPersisted::default()
        };
        // The tree's copy of the list when a node holds one: no allocation for it.
        let acl = ctx.tree.interned_acl(acl).unwrap_or_else(|| acl.into());
        let node = PendingNode { stat, kind: node_kind, child_count: 0, acl, data_len };
        self.add_record(full_path, ctx.zxid, Some(node));
        if let NodeKind::Ephemeral(session) = node_kind {
            self.change_close_bytes(session, ctx.zxid, close_entry_bytes(full_path) as isize);
        }
        assert_eq!(self.newest_zxid(), Some(ctx.zxid), "both records at the create's zxid");
    }

    /// ZOOKEEPER-4306: QUOTAEXCEEDED when one more ephemeral at `full_path` would make the
    /// session's closeSession txn list more than [`ephemeral_bytes_max`] bytes of paths.
    fn check_close_bytes_room(&mut self, ctx: &Ctx<'_>, full_path: &str) -> Result<(), ZkError> {
        let session = ctx.who.session;
        assert!(session.0 != 0, "session 0 makes persistent nodes, not ephemerals");
        let held = self.close_bytes_of(ctx.tree, session, ctx.zxid);
        let max = ephemeral_bytes_max(ctx.cfg);
        let after = held.saturating_add(close_entry_bytes(full_path));
        if after > max {
            tracing::warn!(%session, held, max, "ephemeral refused: closeSession txn too large");
            return Err(ZkError::QuotaExceeded);
        }
        // (`held` alone may be over a bound that shrank since; then `after` is too.)
        assert!(held < after && after <= max, "the create fits");
        Ok(())
    }

    /// The session's `close_bytes`, filled from the tree and the records when missing.
    fn close_bytes_of(&mut self, tree: &DataTree, session: SessionId, zxid: Zxid) -> usize {
        if let Some(&bytes) = self.close_bytes.get(&session) {
            return bytes;
        }
        let paths = self.pending_ephemerals(tree, session);
        let bytes = paths.iter().map(|p| close_entry_bytes(p)).sum();
        self.close_bytes.insert(session, bytes);
        self.touch_close_bytes(session, zxid);
        // The fill is listed as touched at this zxid: if this request fails, `rollback` drops
        // the entry, which may count records the rollback removes.
        assert_eq!(self.close_bytes.get(&session), Some(&bytes), "cached");
        assert!(self.close_bytes_touched.contains(&(zxid, session)), "rolled back with zxid");
        bytes
    }

    /// Adds `delta` to the session's cached `close_bytes`, if it has an entry.
    fn change_close_bytes(&mut self, session: SessionId, zxid: Zxid, delta: isize) {
        let Some(bytes) = self.close_bytes.get_mut(&session) else {
            return;
        };
        *bytes = bytes.checked_add_signed(delta).expect("a session's close bytes went negative");
        self.touch_close_bytes(session, zxid);
    }

    fn touch_close_bytes(&mut self, session: SessionId, zxid: Zxid) {
        self.close_bytes_touched.retain(|(at, _)| *at == zxid);
        self.close_bytes_touched.push((zxid, session));
        assert!(self.close_bytes_touched.iter().all(|(at, _)| *at == zxid), "only the newest");
    }

    /// delete: session → path (BADARGUMENTS, special paths too) → parent → parent DELETE →
    /// node → version → children.
    fn prepare_delete(&mut self, ctx: &Ctx<'_>, p: &str, version: i32) -> Result<Txn, ZkError> {
        ctx.session()?;
        let parent_path = cut_parent(p)?;
        if path::is_special_path(p) {
            return Err(ZkError::BadArguments);
        }
        let parent = self.lookup(ctx.tree, parent_path).ok_or(ZkError::NoNode)?;
        ctx.allowed(&parent.acl, perms::DELETE)?;
        let node = self.lookup(ctx.tree, p).ok_or(ZkError::NoNode)?;
        check_and_inc_version(node.stat.version, version)?;
        if node.child_count > 0 {
            return Err(ZkError::NotEmpty);
        }
        let siblings = parent.child_count;
        self.record_delete(ctx.zxid, parent_path, parent, p);
        if let NodeKind::Ephemeral(session) = node.kind {
            self.change_close_bytes(session, ctx.zxid, -(close_entry_bytes(p) as isize));
        }
        // A request pipelined behind this one sees the node gone and its parent one child
        // short (a recreate passes, a delete of the parent is not refused with NOTEMPTY).
        assert!(self.lookup(ctx.tree, p).is_none(), "the pending view shows it deleted");
        let left = self.lookup(ctx.tree, parent_path).map(|n| n.child_count);
        assert_eq!(left, Some(siblings - 1), "the parent has one child less");
        Ok(Txn::Delete { path: p.to_string() })
    }

    fn record_delete(&mut self, zxid: Zxid, parent_path: &str, mut parent: PendingNode, p: &str) {
        assert!(parent.child_count > 0, "delete under a parent with no children: {p}");
        parent.child_count -= 1;
        parent.stat.pzxid = zxid.0;
        self.add_record(parent_path, zxid, Some(parent));
        self.add_record(p, zxid, None);
    }

    /// setData: session → validatePath → NONODE → WRITE → quota → version.
    fn prepare_set_data(
        &mut self,
        ctx: &Ctx<'_>,
        p: &str,
        data: &Option<Vec<u8>>,
        version: i32,
    ) -> Result<Txn, ZkError> {
        ctx.session()?;
        path::validate_path(p)?;
        let mut node = self.lookup(ctx.tree, p).ok_or(ZkError::NoNode)?;
        ctx.allowed(&node.acl, perms::WRITE)?;
        let data_len = data.as_ref().map_or(0, |d| d.len() as i64);
        if ctx.cfg.enforce_quota {
            ctx.tree.check_quota(p, data_len - node.data_len, 0)?;
        }
        let current = node.stat.version;
        let new_version = check_and_inc_version(current, version)?;
        // The excluded case: a version other than -1 that is not the current one failed above.
        assert!(version == -1 || version == current, "a conditional set matched");
        assert!(version == -1 || new_version == version.wrapping_add(1), "version + 1");
        node.stat.version = new_version;
        node.stat.mtime = ctx.time_ms;
        node.stat.mzxid = ctx.zxid.0;
        node.data_len = data_len;
        self.add_record(p, ctx.zxid, Some(node));
        Ok(Txn::SetData { path: p.to_string(), data: data.clone(), version: new_version })
    }

    /// setACL: session → validatePath → fix-up → NONODE → ADMIN → aversion. The new ACL goes
    /// on the change record, so requests prepared after it are checked against it (the
    /// TOCTOU fix of ZooKeeper's HEAD; 3.9 checks them against the old ACL).
    fn prepare_set_acl(
        &mut self,
        ctx: &Ctx<'_>,
        p: &str,
        acl: &[Acl],
        version: i32,
    ) -> Result<Txn, ZkError> {
        ctx.session()?;
        path::validate_path(p)?;
        let acl = fixup_acl(acl, ctx.who.ids)?;
        let mut node = self.lookup(ctx.tree, p).ok_or(ZkError::NoNode)?;
        ctx.allowed(&node.acl, perms::ADMIN)?;
        let current = node.stat.aversion;
        let new_version = check_and_inc_version(current, version)?;
        assert!(version == -1 || version == current, "a conditional setACL matched");
        assert!(version == -1 || new_version == version.wrapping_add(1), "aversion + 1");
        node.stat.aversion = new_version;
        node.acl = ctx.tree.interned_acl(&acl).unwrap_or_else(|| acl.as_slice().into());
        self.add_record(p, ctx.zxid, Some(node));
        Ok(Txn::SetAcl { path: p.to_string(), acl, version: new_version })
    }

    /// check (multi only): session → validatePath → NONODE → READ → version. No record.
    fn prepare_check(&mut self, ctx: &Ctx<'_>, p: &str, version: i32) -> Result<Txn, ZkError> {
        // A standalone check is refused in `prepare_request` (UNIMPLEMENTED, as ZooKeeper).
        assert!(ctx.in_multi, "check exists only as an op of a multi");
        let records_before = self.order.len();
        ctx.session()?;
        path::validate_path(p)?;
        let node = self.lookup(ctx.tree, p).ok_or(ZkError::NoNode)?;
        ctx.allowed(&node.acl, perms::READ)?;
        let new_version = check_and_inc_version(node.stat.version, version)?;
        // A check reads and changes nothing: the version it logs is the one it saw, plus one.
        assert_eq!(self.order.len(), records_before, "a check adds no record");
        Ok(Txn::Check { path: p.to_string(), version: new_version })
    }

    /// closeSession at `zxid`: the session's ephemerals as the pending view sees them (created
    /// by unapplied txns included, pending deletes excluded), sorted. Adds delete records, and
    /// unlike ZooKeeper also lowers each parent's pending child count, so that a pipelined
    /// delete of the parent is not refused with NOTEMPTY.
    ///
    /// The txn lists at most [`ephemeral_bytes_max`] bytes of paths, the smallest first: more
    /// is possible only when the bound shrank since the ephemerals were made (a smaller
    /// `jute.maxbuffer` after a restart, or a data directory from before the bound). Apply
    /// deletes the unlisted rest anyway (`killSession`), after the listed ones and in path
    /// order, so every replica and every replay deletes the same nodes in the same order; the
    /// list matters to ZooKeeper only for replays over fuzzy snapshots, which zkr never takes.
    pub fn prepare_close_session(
        &mut self,
        tree: &DataTree,
        cfg: &Config,
        session: SessionId,
        zxid: Zxid,
    ) -> Txn {
        assert!(zxid > tree.last_processed_zxid(), "prepare at an already applied zxid");
        assert!(self.newest_zxid().is_none_or(|z| z < zxid), "prepare zxids must increase");
        let paths = self.pending_ephemerals(tree, session);
        for p in &paths {
            let parent_path = path::parent(p);
            let parent = self.lookup(tree, parent_path).expect("an ephemeral's parent exists");
            self.record_delete(zxid, parent_path, parent, p);
        }
        self.close_bytes.remove(&session);
        let max = ephemeral_bytes_max(cfg);
        let mut listed = 0usize;
        let mut fits = |p: &String| {
            listed += close_entry_bytes(p);
            listed <= max
        };
        let paths_to_delete: Vec<String> = paths.iter().take_while(|p| fits(p)).cloned().collect();
        if paths_to_delete.len() < paths.len() {
            let unlisted = paths.len() - paths_to_delete.len();
            tracing::warn!(%session, unlisted, "closeSession lists only the ephemerals that fit");
        }
        assert!(paths_to_delete.iter().map(|p| close_entry_bytes(p)).sum::<usize>() <= max);
        Txn::CloseSession { paths_to_delete }
    }

    /// The session's ephemerals in the pending view, sorted: the tree's, less those a record
    /// deletes (or replaces), plus those a record creates.
    fn pending_ephemerals(&self, tree: &DataTree, session: SessionId) -> BTreeSet<String> {
        let mut paths: BTreeSet<String> = tree.ephemerals(session).into_iter().collect();
        let in_tree = paths.len();
        for (p, stack) in &self.records {
            let newest = stack.back().expect("record stacks are never empty");
            match &newest.node {
                Some(n) if n.kind == NodeKind::Ephemeral(session) => {
                    paths.insert(p.to_string());
                }
                _ => {
                    paths.remove(&**p);
                }
            }
        }
        // Each record adds at most its own path; the root belongs to no session.
        assert!(paths.len() <= in_tree + self.records.len(), "one path per record at most");
        assert!(!paths.contains("/"), "the root is nobody's ephemeral");
        paths
    }

    /// Checks every cached `close_bytes` entry against a recount from `tree` and the records
    /// (O(the cached sessions' ephemerals + records)); panics when one is off.
    ///
    /// The recount is the view [`Self::pending_ephemerals`] gives, summed without building
    /// it: the session's ephemerals in the tree, except the paths whose newest record is not
    /// one of its ephemerals, plus the paths whose newest record is one and the tree lacks.
    /// (Building the view as a set of copied paths for every cached session was most of a
    /// full sweep's cost.) The records are walked once for all sessions: a path's owner in the
    /// tree and in its newest record are looked up once, and only a path whose owner changes
    /// moves a count (out of the tree owner's, into the record owner's).
    pub fn check_close_bytes(&self, tree: &DataTree) {
        if !self.close_bytes.is_empty() {
            // In `close_bytes` order (ascending session), so a binary search finds a session.
            let mut recount: Vec<(SessionId, usize)> = (self.close_bytes.keys())
                .map(|s| (*s, tree.ephemeral_paths(*s).map(close_entry_bytes).sum()))
                .collect();
            let slot = |recount: &[(SessionId, usize)], session: Option<SessionId>| {
                recount.binary_search_by_key(&session?, |(s, _)| *s).ok()
            };
            let owner = |kind: NodeKind| match kind {
                NodeKind::Ephemeral(session) => Some(session),
                _ => None,
            };
            for (p, stack) in &self.records {
                let newest = stack.back().expect("record stacks are never empty");
                let pending = newest.node.as_ref().and_then(|n| owner(n.kind));
                let held = tree.get(p).and_then(|n| owner(n.kind()));
                if held == pending {
                    continue;
                }
                if let Some(at) = slot(&recount, held) {
                    let count = &mut recount[at].1;
                    *count = count.checked_sub(close_entry_bytes(p)).expect("counted");
                }
                if let Some(at) = slot(&recount, pending) {
                    recount[at].1 += close_entry_bytes(p);
                }
            }
            assert_eq!(recount.len(), self.close_bytes.len(), "one recount per cached session");
            for ((session, &bytes), (recounted, recount)) in self.close_bytes.iter().zip(&recount) {
                assert_eq!(session, recounted, "recounts in session order");
                assert_eq!(bytes, *recount, "close bytes of {session} miscounted");
            }
        }
        let mut touched = self.close_bytes_touched.iter();
        let first = touched.next().map(|(at, _)| *at);
        assert!(touched.all(|(at, _)| Some(*at) == first), "touched entries of one zxid only");
    }

    /// The container manager's delete (op 20) of `path` at `zxid`: BADARGUMENTS for a bad or
    /// special path, NONODE, NOTEMPTY if it has children, BADVERSION if it is a normal
    /// ephemeral (reference §10.8). No ACL or session check.
    pub fn prepare_delete_container(&mut self, tree: &DataTree, p: &str, zxid: Zxid) -> Txn {
        assert!(zxid > tree.last_processed_zxid(), "prepare at an already applied zxid");
        assert!(self.newest_zxid().is_none_or(|z| z < zxid), "prepare zxids must increase");
        let result = (|| {
            let parent_path = cut_parent(p)?;
            if path::is_special_path(p) {
                return Err(ZkError::BadArguments);
            }
            let node = self.lookup(tree, p).ok_or(ZkError::NoNode)?;
            if node.child_count > 0 {
                return Err(ZkError::NotEmpty);
            }
            if node.kind.owner_session().is_some() {
                return Err(ZkError::BadVersion);
            }
            let parent = self.lookup(tree, parent_path).ok_or(ZkError::NoNode)?;
            self.record_delete(zxid, parent_path, parent, p);
            Ok(Txn::DeleteContainer { path: p.to_string() })
        })();
        result.unwrap_or_else(|err| Txn::Error { err })
    }

    /// The tree has applied everything up to `zxid`: drop the records it has caught up with.
    /// O(records dropped): they are the oldest in `order`, and each is the oldest of its path.
    pub fn applied(&mut self, zxid: Zxid) {
        while self.order.front().is_some_and(|(at, _)| *at <= zxid) {
            let (at, p) = self.order.pop_front().expect("the front was just seen");
            // One look-up for the pop and, with the path's last record, the removal.
            let Entry::Occupied(mut stack) = self.records.entry(p) else {
                panic!("every ordered record is held");
            };
            let oldest = stack.get_mut().pop_front().expect("record stacks are never empty");
            assert_eq!(
                oldest.zxid,
                at,
                "the oldest record of {} is the oldest in order",
                stack.key()
            );
            if stack.get().is_empty() {
                stack.remove();
            }
        }
        assert!(self.order.front().is_none_or(|(at, _)| *at > zxid), "stale record");
        assert_eq!(self.order.is_empty(), self.records.is_empty(), "records match their order");
    }

    /// Drops every outstanding change (leadership lost, or the tree was replaced).
    pub fn clear(&mut self) {
        self.records.clear();
        self.order.clear();
        self.close_bytes.clear();
        self.close_bytes_touched.clear();
    }

    /// Outstanding change records (the cost of [`PrepState::invariants`]).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Checks the module's invariants in O(records), allocating nothing; panics when they are
    /// broken. The O(1) parts run at every `applied`, `add_record` and `rollback`. `order` and
    /// the stacks hold the same records when they hold the same number and the same sum of a
    /// mix of each record's zxid and key (the very `Arc` the stack is filed under).
    pub fn invariants(&self) {
        let mix = |zxid: Zxid, key: &Arc<str>| {
            let at = Arc::as_ptr(key) as *const u8 as usize as u64;
            splitmix64(at ^ splitmix64(zxid.0 as u64))
        };
        let (mut ordered, mut previous) = (0u64, Zxid::ZERO);
        for (i, (at, key)) in self.order.iter().enumerate() {
            assert!(i == 0 || *at >= previous, "order out of zxid order at {key}");
            previous = *at;
            ordered = ordered.wrapping_add(mix(*at, key));
        }
        let (mut held, mut count) = (0u64, 0usize);
        for (key, stack) in &self.records {
            assert!(!stack.is_empty(), "empty record stack kept at {key}");
            let sorted = stack.iter().zip(stack.iter().skip(1)).all(|(a, b)| a.zxid <= b.zxid);
            assert!(sorted, "records out of zxid order at {key}");
            count += stack.len();
            held = stack.iter().fold(held, |sum, rec| sum.wrapping_add(mix(rec.zxid, key)));
        }
        assert_eq!(count, self.order.len(), "as many records held as ordered");
        assert_eq!(held, ordered, "the records held are the records ordered");
    }

    /// The newest zxid among outstanding records.
    fn newest_zxid(&self) -> Option<Zxid> {
        self.order.back().map(|(zxid, _)| *zxid)
    }

    /// `getRecordForPath`: the newest outstanding record, else the committed tree.
    fn lookup(&self, tree: &DataTree, p: &str) -> Option<PendingNode> {
        if let Some(stack) = self.records.get(p) {
            let newest = stack.back().expect("record stacks are never empty");
            // `applied` drops a record as soon as the tree applies its zxid, so a record still
            // held is newer than the tree: it, not the tree, is what the next txn will see.
            assert!(newest.zxid > tree.last_processed_zxid(), "a record the tree caught up with");
            return newest.node.clone();
        }
        let node = tree.get(p)?;
        assert!(node.num_children <= i32::MAX as u32, "a child count jute can carry");
        Some(PendingNode {
            stat: node.stat,
            kind: node.kind(),
            child_count: node.num_children as i32,
            acl: node.acl.clone(),
            data_len: node.data.as_ref().map_or(0, |d| d.len() as i64),
        })
    }

    /// Whether `p` exists in the pending view: [`PrepState::lookup`]`.is_some()` without
    /// building the node.
    fn exists(&self, tree: &DataTree, p: &str) -> bool {
        match self.records.get(p) {
            Some(stack) => stack.back().expect("record stacks are never empty").node.is_some(),
            None => tree.get(p).is_some(),
        }
    }

    fn add_record(&mut self, p: &str, zxid: Zxid, node: Option<PendingNode>) {
        assert!(self.newest_zxid().is_none_or(|z| z <= zxid), "records out of zxid order");
        if let Some(n) = &node {
            assert!(n.child_count >= 0, "negative pending child count at {p}");
        }
        let record = ChangeRecord { zxid, node };
        // One look-up: a path with records keeps the very key its stack is filed under.
        let held = self.records.range_mut::<str, _>((Bound::Included(p), Bound::Included(p)));
        let key = match held.last() {
            Some((key, stack)) => {
                let newest = stack.back().expect("record stacks are never empty");
                assert!(newest.zxid <= zxid, "records out of zxid order at {p}");
                stack.push_back(record);
                key.clone()
            }
            None => {
                let key: Arc<str> = Arc::from(p);
                let previous = self.records.insert(key.clone(), VecDeque::from([record]));
                assert!(previous.is_none(), "a new stack for {p}");
                key
            }
        };
        self.order.push_back((zxid, key));
    }

    /// `rollbackPendingChanges`: removes every record made at `zxid` (the newest ones).
    fn rollback(&mut self, zxid: Zxid) {
        while let Some((_, p)) = self.order.back().filter(|(at, _)| *at == zxid).cloned() {
            self.order.pop_back();
            let stack = self.records.get_mut(&p).expect("every ordered record is held");
            let newest = stack.pop_back().expect("record stacks are never empty");
            assert_eq!(newest.zxid, zxid, "the newest record of {p} is the newest in order");
            if stack.is_empty() {
                self.records.remove(&p);
            }
        }
        // The entries filled or changed at `zxid` may count its records: recount them later.
        for (at, session) in std::mem::take(&mut self.close_bytes_touched) {
            if at == zxid {
                self.close_bytes.remove(&session);
            }
        }
        assert!(self.newest_zxid().is_none_or(|z| z < zxid), "rollback left records");
        assert!(self.close_bytes_touched.is_empty(), "the touched list is spent");
    }
}

/// SplitMix64's finaliser: a cheap, well-mixed hash of one word.
fn splitmix64(x: u64) -> u64 {
    let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The largest txn a write may decide: what ZooKeeper's recovery reads back (`jute.maxbuffer`
/// plus `jute.maxbuffer.extrasize`, which defaults to `jute.maxbuffer`), and never more than
/// [`TXN_BYTES_CAP`], well inside what a peer frame and a log record can carry.
pub fn txn_bytes_max(cfg: &Config) -> usize {
    cfg.max_frame_bytes.saturating_mul(2).min(TXN_BYTES_CAP)
}

/// See [`txn_bytes_max`]: the peer transport takes frames up to 512 MiB, the log records up
/// to 2 GiB.
pub const TXN_BYTES_CAP: usize = 256 * 1024 * 1024;

/// The most a session's ephemerals may add to its closeSession txn, which lists their paths
/// (ZOOKEEPER-4306: ~600 ephemerals with 1 MB paths made a txn over the 512 MiB peer frame,
/// so followers dropped the leader at every retry, and a standalone server logged a txn it
/// could not read back). Half of [`txn_bytes_max`], which leaves the other half for the
/// header and the list's length; with the default `jute.maxbuffer` that is 1,048,575 bytes.
/// Expiry cannot be refused, so the ephemeral creates that would pass it are (QUOTAEXCEEDED).
pub fn ephemeral_bytes_max(cfg: &Config) -> usize {
    txn_bytes_max(cfg) / 2
}

/// What one ephemeral adds to its session's closeSession txn: a jute string (length + bytes).
pub fn close_entry_bytes(path: &str) -> usize {
    4 + path.len()
}

/// Inside a multi ZooKeeper rebuilds each create from its flags (`Op.create`): container flags
/// make a createContainer, TTL flags a createTTL (keeping the TTL only if the op carried one),
/// anything else keeps its opcode, but a createTTL with plain flags becomes a plain create.
/// Outside a multi the opcode decides.
fn effective_create_op(in_multi: bool, req: &CreateReq<'_>, mode: CreateMode) -> (OpCode, i64) {
    if !in_multi {
        return (req.op, req.ttl);
    }
    let op = multi_create_op(req.op, mode);
    let ttl = if op == OpCode::CreateTtl && req.op == OpCode::CreateTtl { req.ttl } else { -1 };
    // A TTL survives only on a createTTL (which `validate_ttl` then refuses unless it is in
    // range); container flags always make a container.
    assert!(ttl == -1 || op == OpCode::CreateTtl, "a TTL only on a createTTL");
    assert!(!mode.container || mode.ttl || op == OpCode::CreateContainer, "flags decide");
    (op, ttl)
}

/// [`multi_create_op`] from raw flags; `None` for flags no mode has (the multi is refused).
pub fn multi_create_opcode(op: OpCode, flags: i32) -> Option<OpCode> {
    CreateMode::from_flag(flags).map(|mode| multi_create_op(op, mode))
}

/// The opcode a create inside a multi is served and answered as, from its opcode and flags:
/// ZooKeeper 3.9's `MultiOperationRecord.deserialize` and `Op.create(path, data, options,
/// defaultOpCode)` / `Op.create(path, data, acl, flags, ttl)`. A create, create2 or
/// createContainer keeps its opcode unless its flags are a container's (a createContainer,
/// answered with a Stat); a createTTL with plain flags is a plain create (or a container).
fn multi_create_op(op: OpCode, mode: CreateMode) -> OpCode {
    let effective = if mode.ttl {
        OpCode::CreateTtl
    } else if mode.container {
        OpCode::CreateContainer
    } else if op == OpCode::CreateTtl {
        OpCode::Create
    } else {
        op
    };
    assert!(effective != OpCode::CreateTtl || mode.ttl, "a createTTL only with a TTL mode");
    assert!(effective == op || mode.ttl || mode.container || op == OpCode::CreateTtl, "kept");
    effective
}

/// `EphemeralType.validateTTL`: a TTL mode needs 0 < ttl ≤ max; any other mode needs ttl < 0.
/// A createTTL op with a non-TTL mode (and so no TTL) passes here, as in ZooKeeper, and is
/// refused after the other checks (`prepare_create`), where ZooKeeper would fail in apply.
fn validate_ttl(mode: CreateMode, ttl: i64) -> Result<(), ZkError> {
    let ok = if mode.ttl { ttl > 0 && ttl <= NodeKind::TTL_MAX_MS } else { ttl < 0 };
    // What passes: a TTL exactly when the mode has one.
    assert!(!ok || (ttl > 0) == mode.ttl, "a TTL exactly when the mode asks for one");
    assert!(ok || !mode.ttl || ttl <= 0 || ttl > NodeKind::TTL_MAX_MS, "a TTL in range passes");
    if ok { Ok(()) } else { Err(ZkError::BadArguments) }
}

/// The logged form of a failed multi: 0 before the failing op, its code, then -2.
fn failed_multi(len: usize, failed_at: usize, err: ZkError) -> Txn {
    assert!(failed_at < len, "the failing op is inside the multi");
    assert!(err != ZkError::Ok, "a failing op has an error code");
    let sub = |i: usize| {
        let err = match i.cmp(&failed_at) {
            std::cmp::Ordering::Less => ZkError::Ok,
            std::cmp::Ordering::Equal => err,
            std::cmp::Ordering::Greater => ZkError::RuntimeInconsistency,
        };
        Txn::Error { err }
    };
    Txn::Multi((0..len).map(sub).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{LoggedTxn, TxnHeader};

    #[test]
    fn sequential_names_are_the_formatted_suffix() {
        let mut values = vec![i32::MIN, i32::MIN + 1, i32::MAX, i32::MAX - 1, 0];
        for digits in 0..10 {
            let p = 10i32.pow(digits);
            values.extend([p - 1, p, p + 1, -p, -p + 1, -p - 1]);
        }
        for v in values {
            for path in ["/a/s-", ""] {
                assert_eq!(sequential_name(path, v), format!("{path}{}", sequential_suffix(v)));
            }
        }
    }

    fn node() -> PendingNode {
        let acl: Arc<[Acl]> = Acl::open_unsafe().into();
        let stat = StatPersisted::default();
        PendingNode { stat, kind: NodeKind::Persistent, child_count: 0, acl, data_len: 0 }
    }

    /// Records at zxids 1, 2 (two paths), 3; `applied` and `rollback` keep the order whole.
    fn state() -> PrepState {
        let mut prep = PrepState::new();
        prep.add_record("/a", Zxid(1), Some(node()));
        prep.add_record("/a", Zxid(2), Some(node()));
        prep.add_record("/b", Zxid(2), None);
        prep.add_record("/a", Zxid(3), None);
        prep.invariants();
        prep
    }

    #[test]
    fn applied_and_rollback_drop_exactly_their_records() {
        let mut prep = state();
        prep.rollback(Zxid(3));
        prep.invariants();
        assert_eq!(prep.newest_zxid(), Some(Zxid(2)));
        prep.applied(Zxid(1));
        prep.invariants();
        assert_eq!((prep.len(), prep.records.len()), (2, 2), "/a at 2 and /b at 2 remain");
        assert_eq!(prep.records["/a"].front().map(|r| r.zxid), Some(Zxid(2)));
        prep.applied(Zxid(2));
        prep.invariants();
        assert!(prep.is_empty());
        assert_eq!(prep.len(), 0, "an empty prep counts no records");
    }

    /// The full check notices a record missing from either side, one filed under another
    /// path, and an out-of-order `order`.
    #[test]
    fn invariants_catch_records_and_order_that_disagree() {
        let check = |prep: PrepState| std::panic::catch_unwind(move || prep.invariants());
        let mut lost = state();
        lost.records.get_mut("/a").unwrap().pop_back();
        assert!(check(lost).is_err(), "a record ordered but not held");
        let mut unordered = state();
        unordered.order.pop_back();
        assert!(check(unordered).is_err(), "a record held but not ordered");
        let mut moved = state();
        let rec = moved.records.get_mut("/a").unwrap().pop_back().unwrap();
        moved.records.get_mut("/b").unwrap().push_back(rec);
        assert!(check(moved).is_err(), "a record filed under another path");
        let mut swapped = state();
        swapped.order.swap(0, 3);
        assert!(check(swapped).is_err(), "order not in zxid order");
        assert!(check(state()).is_ok(), "and the unbroken state passes");
    }

    /// A tree holding ephemeral nodes created at `(zxid, path, owner)`, in that order.
    fn tree_with_ephemerals(nodes: &[(i64, &str, SessionId)]) -> DataTree {
        let mut tree = DataTree::new();
        for &(zxid, path, owner) in nodes {
            let header = TxnHeader { session_id: owner, cxid: 1, zxid: Zxid(zxid), time_ms: 0 };
            let txn = Txn::Create {
                path: path.into(),
                data: None,
                acl: Acl::open_unsafe(),
                kind: CreateKind::Ephemeral,
                parent_cversion: i32::try_from(zxid).expect("small"),
            };
            tree.apply(&LoggedTxn { header, txn });
        }
        let count: usize = tree.all_ephemerals().values().map(Vec::len).sum();
        assert_eq!(count, nodes.len(), "each is an ephemeral");
        tree
    }

    /// The recount over a tree with ephemerals agrees with `pending_ephemerals`: a tree
    /// ephemeral that a record deletes or gives to another session no longer counts, one a
    /// record re-creates for the session counts once; a count off by one entry is caught.
    #[test]
    fn check_close_bytes_recounts_the_pending_view() {
        let session = SessionId(7);
        let tree =
            tree_with_ephemerals(&[(1, "/a", session), (2, "/b", session), (3, "/c", session)]);
        assert_eq!(tree.ephemeral_paths(session).count(), 3, "three ephemerals in the tree");
        let mut prep = PrepState::new();
        let mut eph = node();
        eph.kind = NodeKind::Ephemeral(session);
        let mut other = node();
        other.kind = NodeKind::Ephemeral(SessionId(8));
        prep.add_record("/a", Zxid(4), None);
        prep.add_record("/b", Zxid(4), Some(other));
        prep.add_record("/c", Zxid(4), Some(eph.clone()));
        prep.add_record("/d", Zxid(4), Some(eph));
        let view = prep.pending_ephemerals(&tree, session);
        let want: usize = view.iter().map(|p| close_entry_bytes(p)).sum();
        assert_eq!(view.len(), 2, "/c stays, /d is added, /a and /b are gone");
        assert_eq!(prep.close_bytes_of(&tree, session, Zxid(4)), want, "filled from the view");
        prep.check_close_bytes(&tree);
        for delta in [-4, 4] {
            let mut off = prep.clone();
            off.change_close_bytes(session, Zxid(4), delta);
            let check = std::panic::AssertUnwindSafe(|| off.check_close_bytes(&tree));
            assert!(std::panic::catch_unwind(check).is_err(), "a count off by {delta} is caught");
        }
    }

    /// The one walk of the records serves every cached session: a record that hands session
    /// 7's ephemeral `/a` to session 8 moves its bytes out of 7's recount and into 8's, and a
    /// count of either session off by that entry is caught (both recounts must move).
    #[test]
    fn check_close_bytes_moves_an_ephemeral_between_cached_sessions() {
        let (seven, eight) = (SessionId(7), SessionId(8));
        let tree = tree_with_ephemerals(&[(1, "/a", seven), (2, "/b", seven), (3, "/c", eight)]);
        let mut prep = PrepState::new();
        let mut of_eight = node();
        of_eight.kind = NodeKind::Ephemeral(eight);
        prep.add_record("/a", Zxid(4), Some(of_eight));
        let (bytes_seven, bytes_eight) = (
            prep.close_bytes_of(&tree, seven, Zxid(4)),
            prep.close_bytes_of(&tree, eight, Zxid(4)),
        );
        assert_eq!(bytes_seven, close_entry_bytes("/b"), "/a left session 7");
        assert_eq!(bytes_eight, close_entry_bytes("/a") + close_entry_bytes("/c"), "8 took /a");
        prep.check_close_bytes(&tree);
        let entry = close_entry_bytes("/a") as isize;
        for (session, delta) in [(seven, entry), (eight, -entry)] {
            let mut off = prep.clone();
            off.change_close_bytes(session, Zxid(4), delta);
            let check = std::panic::AssertUnwindSafe(|| off.check_close_bytes(&tree));
            assert!(std::panic::catch_unwind(check).is_err(), "{session} off by /a is caught");
        }
    }

    /// `check_close_bytes` notices a cached count that is off (here: a create not counted).
    #[test]
    fn check_close_bytes_catches_a_miscount() {
        let tree = DataTree::new();
        let session = SessionId(7);
        let mut prep = PrepState::new();
        let mut eph = node();
        eph.kind = NodeKind::Ephemeral(session);
        prep.add_record("/e", Zxid(1), Some(eph.clone()));
        assert_eq!(prep.close_bytes_of(&tree, session, Zxid(1)), 6, "filled from the records");
        prep.check_close_bytes(&tree);
        prep.add_record("/f", Zxid(2), Some(eph));
        let check = std::panic::AssertUnwindSafe(|| prep.check_close_bytes(&tree));
        let caught = std::panic::catch_unwind(check);
        assert!(caught.is_err(), "an uncounted ephemeral create is caught");
        prep.change_close_bytes(session, Zxid(2), 6);
        prep.check_close_bytes(&tree);
        prep.rollback(Zxid(2));
        assert!(!prep.close_bytes.contains_key(&session), "rollback drops what its zxid touched");
        prep.check_close_bytes(&tree);
    }
}
