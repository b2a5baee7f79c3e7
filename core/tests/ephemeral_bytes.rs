//! ZOOKEEPER-4306: a session's closeSession txn lists the paths of all its ephemerals, so a
//! session could make it larger than any peer frame or log record (600 ephemerals with 1 MB
//! paths: 600 MB). The leader refuses an ephemeral create (also inside a multi, pending ones
//! counted) that would make the list pass `ephemeral_bytes_max`, with QUOTAEXCEEDED.

use zkr_core::Config;
use zkr_core::prep::{PrepState, Requester, close_entry_bytes, ephemeral_bytes_max, txn_bytes_max};
use zkr_core::proto::client::{OpCode, Request};
use zkr_core::proto::error::ZkError;
use zkr_core::proto::txn::encoded_txn_len;
use zkr_core::tree::{ApplyOutcome, DataTree};
use zkr_core::txn::{LoggedTxn, Txn, TxnHeader};
use zkr_core::types::{Acl, Id, SessionId, Zxid};

const S1: SessionId = SessionId(0x100);
const S2: SessionId = SessionId(0x200);

struct Leader {
    tree: DataTree,
    prep: PrepState,
    cfg: Config,
    zxid: i64,
    ids: Vec<Id>,
}

impl Leader {
    /// `jute.maxbuffer` 1000: 2000-byte txns, 1000 bytes of ephemeral paths per session.
    fn new() -> Leader {
        let cfg = Config { max_frame_bytes: 1000, ..Config::default() };
        assert_eq!(ephemeral_bytes_max(&cfg), 1000);
        let ids = vec![Id::new("ip", "127.0.0.1")];
        Leader { tree: DataTree::new(), prep: PrepState::new(), cfg, zxid: 0, ids }
    }

    fn prepare_as(&mut self, session: SessionId, req: &Request) -> LoggedTxn {
        self.zxid += 1;
        let who = Requester { session, session_valid: true, ids: &self.ids };
        let zxid = Zxid(self.zxid);
        let txn = self.prep.prepare(&self.tree, &self.cfg, &who, req, zxid, 7);
        self.prep.check_close_bytes(&self.tree);
        LoggedTxn { header: TxnHeader { session_id: session, cxid: 0, zxid, time_ms: 7 }, txn }
    }

    fn close(&mut self, session: SessionId) -> LoggedTxn {
        self.zxid += 1;
        let zxid = Zxid(self.zxid);
        let txn = self.prep.prepare_close_session(&self.tree, &self.cfg, session, zxid);
        self.prep.check_close_bytes(&self.tree);
        LoggedTxn { header: TxnHeader { session_id: session, cxid: 0, zxid, time_ms: 7 }, txn }
    }

    fn apply(&mut self, t: &LoggedTxn) -> ApplyOutcome {
        let out = self.tree.apply(t).outcome;
        self.prep.applied(t.header.zxid);
        self.tree.invariants();
        self.prep.check_close_bytes(&self.tree);
        out
    }

    fn run_as(&mut self, session: SessionId, req: &Request) -> Txn {
        let t = self.prepare_as(session, req);
        self.apply(&t);
        t.txn
    }
}

fn create(path: &str, flags: i32) -> Request {
    Request::Create {
        op: OpCode::Create,
        path: path.into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags,
        ttl: -1,
    }
}

/// `/e<i>` padded with `x` to 100 bytes: each adds 104 bytes to a closeSession txn.
fn long(i: usize) -> String {
    let p = format!("/e{i}-");
    format!("{p}{}", "x".repeat(100 - p.len()))
}

fn quota() -> Txn {
    Txn::Error { err: ZkError::QuotaExceeded }
}

/// 9 ephemerals of 100 bytes (936 bytes listed) fit under 1000, the 10th does not, counted
/// while still pending; persistent nodes and other sessions are not affected; a delete makes
/// room again.
#[test]
fn an_ephemeral_past_the_close_session_bound_is_refused_with_quota_exceeded() {
    let mut l = Leader::new();
    assert_eq!(close_entry_bytes(&long(0)), 104);
    let pending: Vec<LoggedTxn> = (0..9).map(|i| l.prepare_as(S1, &create(&long(i), 1))).collect();
    assert!(pending.iter().all(|t| matches!(t.txn, Txn::Create { .. })), "9 fit");
    let refused = l.prepare_as(S1, &create(&long(9), 1));
    assert_eq!(refused.txn, quota(), "the 10th is refused before the 9 are applied");
    for t in &pending {
        l.apply(t);
    }
    l.apply(&refused);
    assert_eq!(l.run_as(S1, &create(&long(9), 1)), quota(), "and after they are applied");
    assert!(l.tree.get(&long(9)).is_none());
    assert!(matches!(l.run_as(S1, &create(&long(9), 0)), Txn::Create { .. }), "persistent");
    assert!(matches!(l.run_as(S2, &create(&long(10), 1)), Txn::Create { .. }), "other session");
    let short = l.run_as(S1, &create("/s", 1));
    assert!(matches!(short, Txn::Create { .. }), "6 more bytes fit (942): {short:?}");
    let delete = Request::Delete { path: long(0), version: -1 };
    assert!(matches!(l.run_as(S2, &delete), Txn::Delete { .. }), "deleted by another session");
    assert!(matches!(l.run_as(S1, &create(&long(11), 1)), Txn::Create { .. }), "room again");
    let close = l.close(S1);
    let Txn::CloseSession { paths_to_delete } = &close.txn else { panic!("{close:?}") };
    assert_eq!(paths_to_delete.len(), 10, "8 long, /s and the new one");
    assert!(encoded_txn_len(&close.txn) <= txn_bytes_max(&l.cfg));
    l.apply(&close);
    assert!(l.tree.ephemerals(S1).is_empty());
}

/// A sequential ephemeral counts with its suffix, and a multi that passes the bound fails whole
/// at that op (its earlier ephemerals are rolled back and free their room).
#[test]
fn a_multi_passing_the_bound_fails_whole_and_frees_its_room() {
    let mut l = Leader::new();
    for i in 0..5 {
        assert!(matches!(l.run_as(S1, &create(&long(i), 1)), Txn::Create { .. }));
    }
    // 520 listed; a multi of 5 more (1040) fails at its 5th op (the 4th brings 936).
    let multi = Request::Multi((5..10).map(|i| create(&long(i), 1)).collect());
    let Txn::Multi(subs) = l.run_as(S1, &multi) else { panic!("a multi") };
    assert_eq!(subs[4], quota(), "{subs:?}");
    assert_eq!(subs[3], Txn::Error { err: ZkError::Ok });
    assert!(l.tree.get(&long(5)).is_none(), "rolled back");
    // The rolled-back creates left no count behind: 4 more fit.
    let multi = Request::Multi((5..9).map(|i| create(&long(i), 1)).collect());
    let Txn::Multi(subs) = l.run_as(S1, &multi) else { panic!("a multi") };
    assert!(subs.iter().all(|t| matches!(t, Txn::Create { .. })), "{subs:?}");
    // 936 listed: a 51-byte sequential path is 61 bytes (65 listed) and does not fit.
    let seq = format!("/q{}", "y".repeat(49));
    assert_eq!(l.run_as(S1, &create(&seq, 3)), quota());
    let seq = format!("/q{}", "y".repeat(40));
    let created = l.run_as(S1, &create(&seq, 3));
    assert!(matches!(created, Txn::Create { .. }), "52 + 4 listed = 992: {created:?}");
}

/// The bound shrank since the ephemerals were made (a smaller `jute.maxbuffer` after a
/// restart): the closeSession txn lists the smallest paths that fit, and apply deletes the
/// others too, in the same order as a full list would.
#[test]
fn a_close_session_over_a_shrunk_bound_lists_what_fits_and_deletes_all() {
    let mut l = Leader::new();
    l.cfg.max_frame_bytes = 4000;
    for i in 0..20 {
        assert!(matches!(l.run_as(S1, &create(&long(i), 1)), Txn::Create { .. }));
    }
    let mut full = Leader::new();
    full.tree = l.tree.clone();
    full.zxid = l.zxid;
    full.cfg.max_frame_bytes = 4000;
    l.cfg.max_frame_bytes = 1000;
    let close = l.close(S1);
    let Txn::CloseSession { paths_to_delete } = &close.txn else { panic!("{close:?}") };
    let mut all = l.tree.ephemerals(S1);
    all.sort();
    assert_eq!(paths_to_delete[..], all[..9], "the 9 smallest paths fit");
    assert!(encoded_txn_len(&close.txn) <= txn_bytes_max(&l.cfg));
    let short = l.tree.apply(&close);
    let whole_close = full.close(S1);
    let Txn::CloseSession { paths_to_delete } = &whole_close.txn else { panic!() };
    assert_eq!(paths_to_delete.len(), 20);
    let whole = full.tree.apply(&whole_close);
    assert!(l.tree.ephemerals(S1).is_empty(), "every ephemeral is deleted");
    assert_eq!(short, whole, "same outcome and watch triggers, in the same order");
    assert_eq!(l.tree, full.tree);
    assert_eq!(l.tree.digest(), full.tree.digest());
}

/// A seeded mix of ephemeral and persistent creates, deletes (by either session), multis that
/// fail or not, closes and partial applies: the cached counts always equal a recount (checked
/// after every step) and no session's listed paths ever pass the bound.
#[test]
fn the_cached_counts_match_a_recount_through_a_random_mix() {
    let mut l = Leader::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut pending: Vec<LoggedTxn> = Vec::new();
    let mut refused = 0;
    for _ in 0..3000 {
        let session = if next(2) == 0 { S1 } else { S2 };
        let path = |i: u64| format!("/n{i}{}", "z".repeat((10 + i * 37 % 190) as usize));
        let t = match next(20) {
            0..=9 => l.prepare_as(session, &create(&path(next(40)), (next(4) != 0) as i32)),
            10..=11 => {
                let req = Request::Delete { path: path(next(40)), version: -1 };
                l.prepare_as(session, &req)
            }
            12..=16 => {
                let ops = (0..1 + next(4)).map(|_| create(&path(next(40)), 1)).collect();
                l.prepare_as(session, &Request::Multi(ops))
            }
            17 => l.close(session),
            _ => {
                for t in pending.drain(..) {
                    l.apply(&t);
                }
                continue;
            }
        };
        refused += match &t.txn {
            Txn::Multi(subs) => subs.iter().filter(|t| **t == quota()).count(),
            txn => usize::from(*txn == quota()),
        };
        pending.push(t);
        if next(3) == 0 {
            for t in pending.drain(..) {
                l.apply(&t);
            }
        }
        for s in [S1, S2] {
            let listed: usize = l.tree.ephemerals(s).iter().map(|p| close_entry_bytes(p)).sum();
            assert!(listed <= ephemeral_bytes_max(&l.cfg), "{s} lists {listed}");
        }
    }
    assert!(refused > 50, "the mix reaches the bound often: {refused}");
}
