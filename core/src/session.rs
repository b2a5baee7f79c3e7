//! The session table: which global sessions exist, their negotiated timeouts, which connection
//! holds each one, and when each expires. Expiry counts ticks, never the wall clock.
//!
//! Invariants:
//! - every session is in exactly one expiry bucket, the one its `expiry_tick` names;
//! - bucket ticks are multiples of `bucket_ticks` (ZooKeeper's `tickTime` in core ticks), so
//!   sessions expire in batches as `ExpiryQueue` does: `roundUp(now + timeout, tickTime)`;
//! - a session marked `closing` is never touched again: its CloseSession txn is on its way;
//! - sessions are added and removed only when CreateSession / CloseSession txns are applied, so the
//!   table always matches the tree's `last_processed_zxid` (snapshots take both together).
//!
//! Session ids never repeat (the password is derived from the id). Each server names the
//! sessions of its own clients with its own top byte (a learner forwards the id, the leader
//! only orders it), from the clock at start ([`first_session_id`]) and past every id of its
//! own it applies or finds live in a SNAP ([`past_created`], [`past_own_live`]); `Serve`
//! also skips live and pending ids. Elections change nothing here: only restarts do.

use std::collections::{BTreeMap, BTreeSet};

use crate::types::{ConnId, SessionId};

/// One global session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The negotiated timeout, ms.
    pub timeout_ms: i32,
    /// The tick at which the session expires unless touched.
    pub expiry_tick: u64,
    /// The connection that currently holds the session on this server, if any.
    pub conn: Option<ConnId>,
    /// A CloseSession txn has been proposed for it.
    pub closing: bool,
    /// The server whose connection holds it, as the leader knows (`SessionTracker` owner);
    /// requests arriving through another server are refused with SESSIONMOVED. `None` until
    /// known (a new leader adopts the first server that speaks for the session).
    pub owner: Option<crate::types::ServerId>,
}

/// All sessions, with expiry buckets.
#[derive(Clone, Debug)]
pub struct SessionTable {
    sessions: BTreeMap<SessionId, Session>,
    buckets: BTreeMap<u64, BTreeSet<SessionId>>,
    bucket_ticks: u64,
    tick_ms: u64,
}

impl SessionTable {
    /// An empty table. `bucket_ticks` is tickTime in core ticks; `tick_ms` the core tick length.
    pub fn new(bucket_ticks: u64, tick_ms: u64) -> SessionTable {
        assert!(bucket_ticks > 0);
        assert!(tick_ms > 0);
        SessionTable { sessions: BTreeMap::new(), buckets: BTreeMap::new(), bucket_ticks, tick_ms }
    }

    /// The session, if it exists.
    pub fn get(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Sessions in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&SessionId, &Session)> {
        self.sessions.iter()
    }

    /// `(id, timeout_ms)` of every session, for snapshots.
    pub fn snapshot_list(&self) -> Vec<(SessionId, i32)> {
        self.sessions.iter().map(|(id, s)| (*id, s.timeout_ms)).collect()
    }

    fn expiry_for(&self, now_tick: u64, timeout_ms: i32) -> u64 {
        let timeout_ticks = (timeout_ms.max(0) as u64).div_ceil(self.tick_ms);
        let raw = now_tick + timeout_ticks.max(1);
        // Rounded up to a bucket boundary, as ZooKeeper's ExpiryQueue: expiry is checked once per
        // bucket, and a session never expires before its timeout (only up to a bucket later).
        let expiry = raw.div_ceil(self.bucket_ticks) * self.bucket_ticks;
        assert!(expiry > now_tick, "a session never expires in the tick it is touched");
        assert_eq!(expiry % self.bucket_ticks, 0, "expiry on a bucket boundary");
        expiry
    }

    /// Adds a session (CreateSession applied, or restored from disk). An existing entry with the
    /// same id keeps its connection.
    pub fn add(&mut self, id: SessionId, timeout_ms: i32, now_tick: u64) {
        let conn = self.remove(id).and_then(|s| s.conn);
        let expiry_tick = self.expiry_for(now_tick, timeout_ms);
        self.buckets.entry(expiry_tick).or_default().insert(id);
        let session = Session { timeout_ms, expiry_tick, conn, closing: false, owner: None };
        self.sessions.insert(id, session);
        assert!(self.buckets[&expiry_tick].contains(&id), "the session is in its bucket");
        assert_eq!(self.sessions[&id].expiry_tick, expiry_tick);
    }

    /// Removes a session (CloseSession applied); returns it.
    pub fn remove(&mut self, id: SessionId) -> Option<Session> {
        let session = self.sessions.remove(&id)?;
        let bucket = self.buckets.get_mut(&session.expiry_tick).expect("session in its bucket");
        assert!(bucket.remove(&id), "session {id} missing from bucket");
        if bucket.is_empty() {
            self.buckets.remove(&session.expiry_tick);
        }
        assert!(!self.sessions.contains_key(&id), "removed");
        Some(session)
    }

    /// Pushes the session's expiry forward (any packet from its client). Returns false if the
    /// session is unknown or closing.
    pub fn touch(&mut self, id: SessionId, now_tick: u64) -> bool {
        let Some(session) = self.sessions.get(&id) else {
            return false;
        };
        if session.closing {
            return false;
        }
        let new_expiry = self.expiry_for(now_tick, session.timeout_ms);
        let old_expiry = session.expiry_tick;
        if new_expiry > old_expiry {
            let bucket = self.buckets.get_mut(&old_expiry).expect("session in its bucket");
            assert!(bucket.remove(&id));
            if bucket.is_empty() {
                self.buckets.remove(&old_expiry);
            }
            self.buckets.entry(new_expiry).or_default().insert(id);
            self.sessions.get_mut(&id).expect("present").expiry_tick = new_expiry;
        }
        // A touch only ever postpones expiry: a session's deadline never moves earlier.
        assert!(self.sessions[&id].expiry_tick >= old_expiry, "expiry never moves back");
        assert!(self.buckets[&self.sessions[&id].expiry_tick].contains(&id), "in its bucket");
        true
    }

    /// Gives every session a fresh timeout from `now_tick` (a new leader does this, as
    /// ZooKeeper's `SessionTrackerImpl` starts over after an election).
    pub fn touch_all(&mut self, now_tick: u64) {
        let count = self.sessions.len();
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            let session = self.sessions[&id].clone();
            self.remove(id);
            self.add(id, session.timeout_ms, now_tick);
            let again = self.sessions.get_mut(&id).expect("re-added");
            again.conn = session.conn;
            again.owner = session.owner;
        }
        assert_eq!(self.sessions.len(), count, "every session kept");
        // A CloseSession an earlier leadership proposed may not have been committed: the new
        // leader decides every session afresh, and expires it again if its client stays away.
        assert!(self.sessions.values().all(|s| !s.closing), "no session is closing any more");
    }

    /// Checks that `server` may speak for the session, adopting it when no owner is known.
    pub fn check_owner(&mut self, id: SessionId, server: crate::types::ServerId) -> bool {
        // An unknown session is not refused here: the request then fails on the session check
        // (SESSIONEXPIRED), which is what ZooKeeper's client expects, not SESSIONMOVED.
        let Some(session) = self.sessions.get_mut(&id) else { return true };
        let adopted = session.owner.is_none();
        let owner = *session.owner.get_or_insert(server);
        // After the check the owner is known; a first speaker becomes it (a new leader learns
        // owners from the traffic, as ZooKeeper's `SessionTrackerImpl.checkSession` does).
        assert!(session.owner.is_some(), "an owner is known after a check");
        assert!(!adopted || owner == server, "the first server to speak owns it");
        owner == server
    }

    /// Forgets every owner (a newly established leader learns them again).
    pub fn clear_owners(&mut self) {
        for session in self.sessions.values_mut() {
            session.owner = None;
        }
    }

    /// Makes `server` the session's owner (a reconnect revalidated there).
    pub fn set_owner(&mut self, id: SessionId, server: crate::types::ServerId) {
        if let Some(session) = self.sessions.get_mut(&id) {
            session.owner = Some(server);
        }
    }

    /// Records which connection holds the session; returns the previous one.
    pub fn set_conn(&mut self, id: SessionId, conn: Option<ConnId>) -> Option<ConnId> {
        let session = self.sessions.get_mut(&id)?;
        std::mem::replace(&mut session.conn, conn)
    }

    /// Marks the session as closing; returns false if it was unknown or already closing.
    pub fn mark_closing(&mut self, id: SessionId) -> bool {
        let marked = match self.sessions.get_mut(&id) {
            Some(s) if !s.closing => {
                s.closing = true;
                true
            }
            _ => false,
        };
        // Closing is final until the txn applies: `touch` refuses it, so a client racing its
        // own expiry cannot postpone a CloseSession already on its way (ZooKeeper's
        // `SessionTrackerImpl.touchSession` refuses a session that `isClosing` the same way).
        assert!(self.sessions.get(&id).is_none_or(|s| s.closing), "closing from now on");
        assert!(!marked || self.sessions.contains_key(&id), "only a known session is marked");
        marked
    }

    /// Sessions due to expire at or before `now_tick` that are not closing yet, in id order.
    pub fn expired(&self, now_tick: u64) -> Vec<SessionId> {
        let mut due: Vec<SessionId> = self
            .buckets
            .range(..=now_tick)
            .flat_map(|(_, ids)| ids.iter().copied())
            .filter(|id| !self.sessions[id].closing)
            .collect();
        due.sort();
        // Each session is in one bucket, so sorting leaves no duplicates: a session is
        // proposed for closing once, never twice in one sweep.
        assert!(due.windows(2).all(|w| w[0] < w[1]), "each session once");
        assert!(due.iter().all(|id| self.sessions[id].expiry_tick <= now_tick), "only due ones");
        due
    }

    /// Checks the bucket invariants; panics on a broken table.
    pub fn invariants(&self) {
        let in_buckets: usize = self.buckets.values().map(|b| b.len()).sum();
        assert_eq!(in_buckets, self.sessions.len(), "every session is in exactly one bucket");
        for (tick, ids) in &self.buckets {
            assert_eq!(tick % self.bucket_ticks, 0, "bucket tick aligned to tickTime");
            assert!(!ids.is_empty(), "no empty buckets");
            for id in ids {
                assert_eq!(self.sessions[id].expiry_tick, *tick, "session in its own bucket");
            }
        }
    }
}

/// The session password ZooKeeper derives from the session id:
/// `new java.util.Random(sessionId ^ 0xB3415C00).nextBytes(16 bytes)`. Reproduced exactly so that
/// clients see what they would see from ZooKeeper, and so every server of an ensemble can check a
/// password without storing it.
pub fn session_password(id: SessionId) -> Vec<u8> {
    const MULTIPLIER: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;
    let mut seed = ((id.0 ^ 0xB341_5C00) as u64 ^ MULTIPLIER) & MASK;
    let mut next_int = || {
        seed = (seed.wrapping_mul(MULTIPLIER).wrapping_add(0xB)) & MASK;
        // java.util.Random is a 48-bit LCG: `next(32)` is the top 32 of those 48 bits.
        assert!(seed <= MASK, "the seed keeps 48 bits");
        (seed >> 16) as u32
    };
    let mut out = Vec::with_capacity(16);
    while out.len() < 16 {
        let mut rnd = next_int();
        for _ in 0..4.min(16 - out.len()) {
            out.push(rnd as u8);
            rnd >>= 8;
        }
    }
    assert_eq!(out.len(), 16);
    out
}

/// The first session id a server hands out, as `SessionTrackerImpl.initializeNextSessionId`:
/// `(serverId << 56) | ((millis << 24) >>> 8)`. `0x8000000000000000` is never used.
pub fn initial_session_id(server_id: u64, millis: i64) -> SessionId {
    let time_part = ((millis as u64) << 24) >> 8;
    let id = (server_id << 56) | time_part;
    SessionId(if id == 0x8000_0000_0000_0000 { id + 1 } else { id } as i64)
}

/// The server whose clients a session id belongs to (its top byte; see [`initial_session_id`]).
pub fn server_of(id: SessionId) -> u64 {
    (id.0 as u64) >> 56
}

/// The first session id a server hands out when it starts, given the ids of its own sessions
/// it knows were created (`own_live`, all with `server_id`'s top byte): those alive in its
/// snapshot and those its durable log creates (applied after the start, if ever).
///
/// Ids must never repeat: the password is derived from the id alone, so a reused id would
/// let a new session be claimed by the old one's client, and checks keyed by id would mix
/// the two. The clock decides, as in `initializeNextSessionId`, unless it is behind a live
/// id of ours (a clock stepped back, or a restart within the same millisecond): see
/// [`past_own_live`].
pub fn first_session_id(
    server_id: u64,
    millis: i64,
    own_live: impl IntoIterator<Item = SessionId>,
    jump: impl FnOnce() -> u64,
) -> SessionId {
    past_own_live(server_id, initial_session_id(server_id, millis), own_live, jump)
}

/// `next`, unless a live id of ours (`own_live`, all with `server_id`'s top byte) is at or
/// past it. Then the ids right after that live one were likely handed out too and have
/// expired since (a tree keeps only live sessions), so the answer is a millisecond slot past
/// it ([`slot_after`], `jump()` slots further). Used at start (`next` from the clock) and when
/// a SNAP replaces the session table.
pub fn past_own_live(
    server_id: u64,
    next: SessionId,
    own_live: impl IntoIterator<Item = SessionId>,
    jump: impl FnOnce() -> u64,
) -> SessionId {
    assert_eq!(server_of(next), server_id, "next is one of ours");
    let Some(newest) = own_live.into_iter().max() else {
        return next;
    };
    assert_eq!(server_of(newest), server_id, "only our own sessions count");
    if newest.0 < next.0 {
        return next;
    }
    slot_after(server_id, newest, jump())
}

/// The next id to hand out once `created`, a CreateSession being applied, is known: `next`,
/// or the millisecond slot after `created` when it is one of ours at or past `next`.
///
/// A server picks its first id before it applies its log (a learner before its leader's DIFF
/// too), from the clock and the live sessions it has then. Its earlier incarnations' sessions
/// appear only as the log is applied, and some close again before anyone asks for a new id,
/// so checking new ids against the live table alone lets them come back (sim seed 46734 is
/// the live case, which `create_session` still checks). Each incarnation hands out its ids
/// from one millisecond slot (its start, or the slot this skips to), counting up from its
/// first id, so one id of an incarnation seen here moves us past all of them, the ones that
/// expired included. Ids of other servers never collide with ours (the top byte), and ours
/// of this incarnation are below `next`: in a steady state this changes nothing.
///
/// Only an incarnation none of whose sessions we ever see (all closed before the snapshot we
/// start from, or before the SNAP our leader sends) can still be met again, and only if our
/// clock now lands in its very millisecond: the chance ZooKeeper's clock-only ids take at
/// every restart. Who assigns ids does not change this: every server names the sessions of
/// its own clients (`Serve::create_session`, forwarded with the id by a learner), the leader
/// only orders them, so becoming leader leaves `next_session_id` as it was.
pub fn past_created(
    server_id: u64,
    next: i64,
    created: SessionId,
    jump: impl FnOnce() -> u64,
) -> i64 {
    assert_eq!(server_of(SessionId(next)), server_id, "next is one of ours");
    if server_of(created) != server_id || created.0 < next {
        return next;
    }
    let after = slot_after(server_id, created, jump()).0;
    assert_ne!(after, created.0, "never the applied id itself");
    after
}

/// How far past an earlier incarnation's slot a jump may land, in millisecond slots: the
/// jump adds a number drawn below this (`Shared::rng`: the OS's randomness in the server, the
/// seed's in the simulator) to the slot after the id seen.
///
/// Without it the jump was a function of the evidence alone, and two incarnations that saw the
/// same id (a long-lived session of an earlier one, with the clock stepped back behind it) both
/// landed in the same slot and handed out the same first id: sim seed 198873, where the second
/// one's only session had closed before the snapshot the third one started from, so nothing of
/// it was left to move past. Two jumps from the same id now meet only if they draw the same
/// number (2^-20), about the chance ZooKeeper's clock-only ids take when a restart lands in the
/// millisecond of an earlier one. 2^20 slots is 17.5 minutes of the clock: a later
/// incarnation's clock reaches the slot jumped to no sooner than that.
pub const JUMP_SLOTS: u64 = 1 << 20;

/// The first id of the millisecond slot `1 + extra` slots after `id`'s (ids are
/// `server << 56 | ms << 16 | n`; the 40 bits of slots wrap as the clock's do).
fn slot_after(server_id: u64, id: SessionId, extra: u64) -> SessionId {
    const LOW_56: u64 = (1 << 56) - 1;
    assert!(extra < JUMP_SLOTS, "a jump of {extra} slots");
    let slot = ((id.0 as u64) & LOW_56) >> 16;
    let time_part = ((slot + 1 + extra) << 16) & LOW_56;
    let next = (server_id << 56) | time_part;
    let wrapped = slot + 1 + extra >= 1 << 40;
    assert!(next as i64 > id.0 || wrapped, "past the id unless the slots wrapped");
    let after = SessionId(if next == 0x8000_0000_0000_0000 { next + 1 } else { next } as i64);
    assert_eq!(server_of(after), server_id, "still one of our server's ids");
    after
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_rounds_up_to_bucket() {
        // tickTime 2000 ms = 20 ticks of 100 ms; a 4000 ms timeout at tick 5 → 45 → bucket 60.
        let mut t = SessionTable::new(20, 100);
        t.add(SessionId(1), 4000, 5);
        assert_eq!(t.get(SessionId(1)).unwrap().expiry_tick, 60);
        assert!(t.expired(59).is_empty());
        assert_eq!(t.expired(60), vec![SessionId(1)]);
        t.invariants();
    }

    #[test]
    fn touch_moves_bucket_and_closing_stops_it() {
        let mut t = SessionTable::new(20, 100);
        t.add(SessionId(7), 4000, 0);
        assert!(t.touch(SessionId(7), 30));
        assert_eq!(t.get(SessionId(7)).unwrap().expiry_tick, 80);
        assert!(t.mark_closing(SessionId(7)));
        assert!(!t.touch(SessionId(7), 70));
        assert!(t.expired(100).is_empty(), "closing sessions are not expired twice");
        assert!(t.remove(SessionId(7)).is_some());
        t.invariants();
        assert!(t.is_empty());
    }

    #[test]
    fn password_matches_java_random() {
        // java: new Random(0x0100000000000000L ^ 0xB3415C00L).nextBytes(new byte[16])
        let p = session_password(SessionId(0x0100_0000_0000_0000));
        assert_eq!(p.len(), 16);
        assert_ne!(p, session_password(SessionId(0x0100_0000_0000_0001)));
        // Known first int of java.util.Random(0): -1155484576 = 0xBB20B460 (bytes 60 b4 20 bb).
        let zero_seed = SessionId(0xB341_5C00);
        assert_eq!(&session_password(zero_seed)[..4], &[0x60, 0xb4, 0x20, 0xbb]);
    }

    #[test]
    fn initial_id_has_server_byte() {
        let id = initial_session_id(1, 1_700_000_000_000);
        assert_eq!((id.0 as u64) >> 56, 1);
    }

    /// Seed 48581: a server whose clock was stepped back restarted with one live session of
    /// its own, 0x..0001, and handed out 0x..0002 again, an id that had expired; the old
    /// session's checks (and password) then applied to the new one.
    #[test]
    fn clock_behind_a_live_id_skips_its_millisecond() {
        let ms = 1_700_000_000_000;
        let live = SessionId(initial_session_id(3, ms).0 + 1);
        let behind = first_session_id(3, ms - 48_000, [live], || 0);
        assert_eq!(behind.0, initial_session_id(3, ms + 1).0, "the next millisecond slot");
        assert_ne!(behind.0, live.0 + 1, "not right after the live id: that one may have expired");
        // The drawn jump adds slots.
        let jumped = first_session_id(3, ms - 48_000, [live], || 9);
        assert_eq!(jumped.0, initial_session_id(3, ms + 10).0);
        // Within the same millisecond too.
        assert_eq!(first_session_id(3, ms, [live], || 0).0, initial_session_id(3, ms + 1).0);
        // A clock ahead of every live id decides alone, as does an empty tree: nothing drawn.
        let never = || -> u64 { panic!("no jump, no draw") };
        assert_eq!(first_session_id(3, ms + 5, [live], never), initial_session_id(3, ms + 5));
        let empty = first_session_id(3, ms - 48_000, [], never);
        assert_eq!(empty, initial_session_id(3, ms - 48_000));
    }

    /// A CreateSession of ours at or past the next id (an earlier incarnation's, seen as the
    /// log is applied) moves the next id to the slot after it; anything else changes nothing.
    #[test]
    fn an_applied_id_of_ours_moves_the_next_id_past_its_slot() {
        let ms = 1_700_000_000_000;
        let next = initial_session_id(3, ms - 48_000).0;
        let earlier = SessionId(initial_session_id(3, ms).0 + 2);
        assert_eq!(past_created(3, next, earlier, || 0), initial_session_id(3, ms + 1).0);
        assert_eq!(past_created(3, next, earlier, || 5), initial_session_id(3, ms + 6).0);
        let same = past_created(3, next, SessionId(next), || 0);
        assert_eq!(same, next + (1 << 16), "same slot: skip it");
        let never = || -> u64 { panic!("no jump, no draw") };
        assert_eq!(past_created(3, next, SessionId(next - 1), never), next, "below next");
        let other = SessionId(initial_session_id(4, ms).0);
        assert_eq!(past_created(3, next, other, never), next, "another server's prefix");
        // Server ids of 128 and up are negative as i64; the order within a prefix holds.
        let high = initial_session_id(200, ms - 1).0;
        let seen = SessionId(initial_session_id(200, ms).0 + 7);
        assert_eq!(past_created(200, high, seen, || 0), initial_session_id(200, ms + 1).0);
    }

    /// Sim seed 198873: incarnation A of server 3 keeps a long-lived session in slot S; B
    /// starts with its clock stepped back behind S, jumps past it and hands out one id, which
    /// closes before C starts from a snapshot that holds only A's session. With the jump a
    /// function of the evidence alone (the slot after S), C handed out B's id again; drawn
    /// jumps part them.
    #[test]
    fn two_incarnations_jumping_past_one_id_hand_out_different_ids() {
        use rand::{Rng, SeedableRng};
        let ms = 1_700_000_000_000;
        let long_lived = initial_session_id(3, ms);
        let behind = ms - 68_000;
        let fixed_b = first_session_id(3, behind, [long_lived], || 0);
        let fixed_c = first_session_id(3, behind - 70_000, [long_lived], || 0);
        assert_eq!(fixed_b, fixed_c, "a jump of the evidence alone collides");
        let mut rng_b = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut rng_c = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let b = first_session_id(3, behind, [long_lived], || rng_b.random_range(0..JUMP_SLOTS));
        let c = first_session_id(3, behind, [long_lived], || rng_c.random_range(0..JUMP_SLOTS));
        assert_ne!(b, c, "drawn jumps part them");
        for id in [b, c] {
            assert!(id.0 > long_lived.0, "past the live id");
            assert_eq!(server_of(id), 3);
            let slots = ((id.0 - long_lived.0) as u64) >> 16;
            assert!((1..=JUMP_SLOTS).contains(&slots), "within the jump: {slots}");
        }
    }

    /// The 40 bits of slots wrap as the clock's low bits do; a jump across the wrap stays in
    /// our prefix.
    #[test]
    fn a_jump_across_the_wrap_of_the_slots_stays_ours() {
        let last_slot = SessionId(((3u64 << 56) | (((1u64 << 40) - 1) << 16)) as i64);
        let after = slot_after(3, last_slot, 4);
        assert_eq!(server_of(after), 3);
        assert_eq!(after.0 as u64, (3u64 << 56) | (4 << 16), "wrapped to slot 4");
    }
}
