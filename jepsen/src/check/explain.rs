//! The cause of a violation: the few operations that fix the contradiction, and one sentence
//! stating it in ZooKeeper's terms.
//!
//! The zxid and watch passes know the roles of the ops they report and build their
//! explanation where they find the violation. A failed search only knows which ops could not
//! be placed (`marked`) and which guarantee the diagnosis named; this module reads the history
//! around them for the facts that make the contradiction:
//! - a read that cannot be placed: the write that produced the value read, the acknowledged
//!   write that replaced it, and what orders that write before the read (the serving server's
//!   zxid, a sync, the session's earlier op, or real time with `--linearizable-reads`);
//! - session order: the session's earlier op the stuck one overtook;
//! - two writes of one version, colliding sequential names, a multi seen half done, an
//!   ephemeral seen after its session closed: the ops that collide.
//!
//! Where no pattern fits, the explanation names the ops that cannot be ordered and the
//! checker's own reason. Nothing here changes the verdict.

use super::{Explanation, Guarantee, Options, Violation};
use crate::history::{CreateMode, F, History, Op, Outcome, parent};
use crate::model::{is_query, sequence_number};

/// `p5 set /a "x"`: who did what, for sentences.
pub(crate) fn short(history: &History, op: &Op) -> String {
    let req = history.request(op);
    let f = format!("{:?}", op.f).to_lowercase();
    let mut s = format!("p{} {f}", op.process);
    if let Some(path) = &req.path {
        s.push(' ');
        s.push_str(path);
    }
    if let Some(data) = req.data.as_ref().filter(|_| matches!(op.f, F::Set | F::Create)) {
        s.push_str(&format!(" {data:?}"));
    }
    if let Some(v) = req.version.filter(|v| *v >= 0 && matches!(op.f, F::Set | F::Delete)) {
        s.push_str(&format!(" version={v}"));
    }
    s
}

/// ` at zxid 0x5` if the op's reply carries a zxid.
pub(crate) fn at_zxid(history: &History, op: &Op) -> String {
    zxid(history, op).map(|z| format!(" at zxid {z:#x}")).unwrap_or_default()
}

fn zxid(history: &History, op: &Op) -> Option<i64> {
    history.reply(op)?.zxid
}

/// The explanation of a violation found by the search (or anything without one).
pub(crate) fn explain(
    history: &History,
    ops: &[Op],
    v: &Violation,
    options: &Options,
) -> Explanation {
    let facts = Facts { history, ops, options };
    let found = match v.guarantee {
        Guarantee::SequentialNames => facts.sequential(v),
        Guarantee::MultiAtomicity => facts.multi(v),
        Guarantee::Ephemerals => facts.ephemeral(v),
        Guarantee::SessionOrder => facts.session_read(v).or_else(|| facts.session_write(v)),
        _ => None,
    };
    found
        .or_else(|| v.marked.iter().find_map(|&r| facts.read(r, v.guarantee)))
        .or_else(|| facts.versions(v))
        .or_else(|| facts.write_conflict(v))
        .unwrap_or_else(|| facts.fallback(v))
}

/// What a write did to one path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Effect {
    /// The path now holds this data.
    Data(String),
    /// The path no longer exists.
    Gone,
}

/// What a read showed of its path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Data(String),
    Present,
    Absent,
}

impl Seen {
    fn shown_by(&self, effect: &Effect) -> bool {
        match (self, effect) {
            (Seen::Data(a), Effect::Data(b)) => a == b,
            (Seen::Present, Effect::Data(_)) | (Seen::Absent, Effect::Gone) => true,
            _ => false,
        }
    }

    fn text(&self) -> String {
        match self {
            Seen::Data(d) => format!("{d:?}"),
            Seen::Present => "present".into(),
            Seen::Absent => "absent".into(),
        }
    }
}

/// What puts the overwriting write before the read.
enum Order {
    /// The serving server had applied a zxid at or above the write's.
    Server(i64),
    /// The session synced after the write completed.
    Sync(usize),
    /// The session had already seen the write (its own, or a zxid at or above it).
    Session(usize),
    /// The write completed before the read began (linearizable reads only).
    RealTime,
}

struct Facts<'a> {
    history: &'a History,
    ops: &'a [Op],
    options: &'a Options,
}

impl Facts<'_> {
    fn short(&self, id: usize) -> String {
        short(self.history, &self.ops[id])
    }

    fn zxid(&self, id: usize) -> Option<i64> {
        zxid(self.history, &self.ops[id])
    }

    fn at(&self, id: usize) -> String {
        at_zxid(self.history, &self.ops[id])
    }

    /// The zxid the serving server had applied, for a read (if trusted).
    fn read_zxid(&self, id: usize) -> Option<i64> {
        let op = &self.ops[id];
        let usable = op.outcome == Outcome::Ok && self.options.use_read_zxids;
        self.zxid(id).filter(|_| usable)
    }

    /// The effects of an op on `path` (a multi may have several sub-ops there; the last wins).
    fn effect(&self, id: usize, path: &str) -> Option<Effect> {
        let op = &self.ops[id];
        if op.outcome == Outcome::Fail {
            return None;
        }
        let req = self.history.request(op);
        let reply = self.history.reply(op);
        let one = |f: F, p: &str, data: &Option<String>, name: Option<&String>| match f {
            F::Create if name.map_or(p, String::as_str) == path => {
                Some(Effect::Data(data.clone().unwrap_or_default()))
            }
            F::Set if p == path => Some(Effect::Data(data.clone().unwrap_or_default())),
            F::Delete if p == path => Some(Effect::Gone),
            _ => None,
        };
        match op.f {
            F::Multi => {
                let results = reply.and_then(|r| r.results().clone()).unwrap_or_default();
                let subs = req.ops().iter().flatten().enumerate();
                subs.filter_map(|(i, s)| {
                    let name = results.get(i).and_then(|r| r.name.as_ref());
                    one(s.f, &s.path, &s.data, name)
                })
                .last()
            }
            f => {
                let name = reply.and_then(|r| r.name().as_ref());
                one(f, req.path.as_deref().unwrap_or(""), &req.data, name)
            }
        }
    }

    /// What an acknowledged read showed.
    fn seen(&self, id: usize) -> Option<Seen> {
        let op = &self.ops[id];
        let reply = self.history.reply(op).filter(|_| op.outcome == Outcome::Ok)?;
        match op.f {
            F::Get => Some(Seen::Data(reply.data.clone().unwrap_or_default())),
            F::Exists if reply.stat.is_some() => Some(Seen::Present),
            F::Exists => Some(Seen::Absent),
            _ => None,
        }
    }

    /// `a` is known to come after `b` (zxids, or real time).
    fn after(&self, a: usize, b: usize) -> bool {
        match (self.zxid(a), self.zxid(b)) {
            (Some(x), Some(y)) if self.ops[a].outcome == Outcome::Ok => x > y,
            _ => self.ops[b].complete.is_some_and(|c| c < self.ops[a].invoke),
        }
    }

    /// Explains a read that cannot be placed: produced, overwritten, ordered.
    fn read(&self, r: usize, guarantee: Guarantee) -> Option<Explanation> {
        let op = &self.ops[r];
        if !is_query(op.f) {
            return None;
        }
        let seen = self.seen(r)?;
        let path = self.history.request(op).path.clone()?;
        let end = op.complete?;
        let writes: Vec<(usize, Effect)> = (self.ops.iter())
            .filter(|w| w.invoke < end && w.id != r)
            .filter_map(|w| self.effect(w.id, &path).map(|e| (w.id, e)))
            .collect();
        let producer = (writes.iter().rev())
            .filter(|(_, e)| seen.shown_by(e))
            .max_by_key(|(w, _)| (self.ops[*w].outcome == Outcome::Ok, self.ops[*w].invoke))
            .map(|(w, _)| *w);
        let initially = self.initially(&path);
        if producer.is_none() && !initially.as_ref().is_some_and(|e| seen.shown_by(e)) {
            return Some(self.invented(r, &path, &seen, &writes));
        }
        // The session's acknowledged ops issued before the read (searched once per read).
        let session: Vec<usize> = (self.ops.iter())
            .filter(|e| e.process == op.process && e.invoke < op.invoke)
            .filter(|e| e.outcome == Outcome::Ok)
            .map(|e| e.id)
            .collect();
        let mut best: Option<(usize, Order)> = None;
        for (w, effect) in &writes {
            let acked = self.ops[*w].outcome == Outcome::Ok;
            if !acked || seen.shown_by(effect) || producer.is_some_and(|p| !self.after(*w, p)) {
                continue;
            }
            let Some(order) = self.order(*w, r, &session, guarantee) else { continue };
            let rank = |o: &Order| self.rank(o, guarantee);
            if best.as_ref().is_none_or(|(_, o)| rank(&order) < rank(o)) {
                best = Some((*w, order));
            }
        }
        let (w, order) = best?;
        Some(self.stale(r, &path, &seen, producer, w, order))
    }

    /// How well an ordering reason matches the guarantee named (lower is better).
    fn rank(&self, order: &Order, guarantee: Guarantee) -> u8 {
        let fits = match order {
            Order::Server(_) => guarantee == Guarantee::WriteLinearizability,
            Order::Sync(_) => guarantee == Guarantee::SyncReads,
            Order::Session(_) => guarantee == Guarantee::MonotonicReads,
            Order::RealTime => guarantee == Guarantee::LinearizableReads,
        };
        let base = match order {
            Order::Server(_) => 1,
            Order::Sync(_) => 2,
            Order::Session(_) => 3,
            Order::RealTime => 4,
        };
        if fits { 0 } else { base }
    }

    /// What puts acknowledged write `w` before read `r`, if anything.
    fn order(&self, w: usize, r: usize, session: &[usize], guarantee: Guarantee) -> Option<Order> {
        let (write, read) = (&self.ops[w], &self.ops[r]);
        let wz = self.zxid(w);
        let done = write.complete?;
        let mut reasons = Vec::new();
        if let (Some(rz), Some(wz)) = (self.read_zxid(r), wz)
            && rz >= wz
        {
            reasons.push(Order::Server(rz));
        }
        let path = self.history.request(read).path.as_deref().unwrap_or("");
        for e in session.iter().map(|&e| &self.ops[e]) {
            if e.f == F::Sync && e.invoke > done {
                reasons.push(Order::Sync(e.id));
            }
            let read_it = self.history.request(e).path.as_deref() == Some(path)
                && self.seen(e.id).zip(self.effect(w, path)).is_some_and(|(s, x)| s.shown_by(&x));
            let saw = e.id == w
                || read_it
                || (wz.is_some() && self.session_zxid(e.id).is_some_and(|z| Some(z) >= wz));
            if saw {
                reasons.push(Order::Session(e.id));
            }
        }
        if self.options.linearizable_reads && done < read.invoke {
            reasons.push(Order::RealTime);
        }
        reasons.into_iter().min_by_key(|o| self.rank(o, guarantee))
    }

    /// The zxid a session learned from one of its ops (a write's own; a read's if trusted).
    fn session_zxid(&self, id: usize) -> Option<i64> {
        let op = &self.ops[id];
        if op.f.is_write() { self.zxid(id) } else { self.read_zxid(id) }
    }

    fn initially(&self, path: &str) -> Option<Effect> {
        if path == "/" {
            return Some(Effect::Data(String::new()));
        }
        let node = self.history.header.initial.iter().find(|n| n.path == path);
        Some(node.map_or(Effect::Gone, |n| Effect::Data(n.data.clone())))
    }

    fn stale(
        &self,
        r: usize,
        path: &str,
        seen: &Seen,
        producer: Option<usize>,
        w: usize,
        order: Order,
    ) -> Explanation {
        let read = &self.ops[r];
        let p = read.process;
        let new = match self.effect(w, path) {
            Some(Effect::Data(d)) => format!("{d:?}"),
            _ => "its deletion".into(),
        };
        let when = if self.ops[w].complete.is_some_and(|c| c < read.invoke) {
            format!("before p{p}'s read was invoked")
        } else {
            format!("while p{p}'s read was running")
        };
        let by = producer.map_or("the initial state".to_string(), |id| {
            format!("{}{}", self.short(id), self.at(id))
        });
        let rule = match &order {
            Order::Server(rz) => format!(
                "the server that answered had applied zxid {rz:#x}, so every write up to it, \
                 yet not this one: the acknowledged write was lost"
            ),
            Order::Sync(s) => format!(
                "p{p} synced (op {s}) after that write was acknowledged, and a read after sync \
                 sees every write completed before the sync began"
            ),
            Order::Session(e) => format!(
                "p{p}'s session had already seen it ({}{}), and a session never reads older \
                 data than it has seen or written",
                self.short(*e),
                self.at(*e)
            ),
            Order::RealTime => "with --linearizable-reads a read sees every write completed \
                                before it began"
                .to_string(),
        };
        let sentence = format!(
            "p{p} read {path} = {}{}, written by {by}, but {new} (p{} {}, acknowledged{} {when}) \
             had already replaced it; {rule}",
            seen.text(),
            self.at(r),
            self.ops[w].process,
            format!("{:?}", self.ops[w].f).to_lowercase(),
            self.at(w),
        );
        let mut causes = vec![(r, "the read")];
        if let Some(id) = producer {
            causes.push((id, "wrote the value read"));
        }
        causes.push((w, "overwrote it"));
        match order {
            Order::Sync(s) => causes.push((s, "the sync that orders it before the read")),
            Order::Session(e) if e != w => causes.push((e, "the session's earlier op")),
            _ => {}
        }
        Explanation::new(sentence, &causes)
    }

    fn invented(
        &self,
        r: usize,
        path: &str,
        seen: &Seen,
        writes: &[(usize, Effect)],
    ) -> Explanation {
        let p = self.ops[r].process;
        let sentence = format!(
            "p{p} read {path} = {}{}, but no write of {path} before it produced that, nor was \
             it so initially; every value a read returns was written by some write",
            seen.text(),
            self.at(r)
        );
        let mut causes = vec![(r, "the read")];
        if let Some((w, _)) = writes.iter().rev().find(|(w, _)| self.ops[*w].outcome == Outcome::Ok)
        {
            causes.push((*w, "the last acknowledged write of the path before it"));
        }
        Explanation::new(sentence, &causes)
    }

    /// A session's read shows a write of unknown outcome after the session's next acknowledged
    /// op, and after another write that had to follow it.
    fn session_read(&self, v: &Violation) -> Option<Explanation> {
        for &r in &v.marked {
            let (Some(seen), Some(path)) =
                (self.seen(r), self.history.request(&self.ops[r]).path.clone())
            else {
                continue;
            };
            let end = self.ops[r].complete?;
            let info = self.ops.iter().rev().find(|w| {
                w.invoke < end
                    && w.outcome == Outcome::Info
                    && self.effect(w.id, &path).is_some_and(|e| seen.shown_by(&e))
            });
            let Some(info) = info else { continue };
            let next = self.ops.iter().find(|n| {
                n.process == info.process && n.invoke > info.invoke && n.outcome == Outcome::Ok
            });
            let Some(next) = next else { continue };
            let over = self.ops.iter().find(|w| {
                w.outcome == Outcome::Ok
                    && w.id != info.id
                    && self.after(w.id, next.id)
                    && w.invoke < end
                    && self.effect(w.id, &path).is_some_and(|e| !seen.shown_by(&e))
            });
            let Some(over) = over else { continue };
            let sentence = format!(
                "p{} read {path} = {}{}, written by {} whose outcome is unknown; it could only \
                 take effect before p{}'s next acknowledged op ({}{}) completed, so before {}{} \
                 replaced it; a session's ops take effect in the order it issued them",
                self.ops[r].process,
                seen.text(),
                self.at(r),
                self.short(info.id),
                info.process,
                self.short(next.id),
                self.at(next.id),
                self.short(over.id),
                self.at(over.id),
            );
            let causes = [
                (r, "the read"),
                (info.id, "wrote the value read (outcome unknown)"),
                (next.id, "the session's next op, its deadline"),
                (over.id, "overwrote it"),
            ];
            return Some(Explanation::new(sentence, &causes));
        }
        None
    }

    /// A session's write took effect before one the session issued earlier.
    fn session_write(&self, v: &Violation) -> Option<Explanation> {
        let stuck = (v.marked.iter().rev()).find(|&&o| self.ops[o].f.is_write())?;
        let op = &self.ops[*stuck];
        let (mut a, mut b) = (None, None);
        for &m in v.marked.iter().chain(&v.ops) {
            let other = &self.ops[m];
            if other.process == op.process && other.id != op.id && other.f.is_write() {
                let (first, second) =
                    if other.invoke < op.invoke { (other.id, op.id) } else { (op.id, other.id) };
                (a, b) = (Some(first), Some(second));
                break;
            }
        }
        let (first, second) = (a?, b?);
        let version = |id: usize| {
            let reply = self.history.reply(&self.ops[id])?;
            reply.stat.as_ref()?.version.map(|v| format!("version {v}"))
        };
        let shows = |id: usize| {
            version(id)
                .or_else(|| self.zxid(id).map(|z| format!("zxid {z:#x}")))
                .unwrap_or_else(|| "unknown".into())
        };
        let sentence = format!(
            "p{} issued {} before {}, but their replies ({} and {}) put the later one first; a \
             session's ops take effect in the order it issued them",
            op.process,
            self.short(first),
            self.short(second),
            shows(first),
            shows(second),
        );
        let causes = [(first, "the session's earlier op"), (second, "the op that overtook it")];
        Some(Explanation::new(sentence, &causes))
    }

    /// Two acknowledged writes of one path that report the same version.
    fn versions(&self, v: &Violation) -> Option<Explanation> {
        let version = |id: usize| {
            let op = &self.ops[id];
            let ok = op.outcome == Outcome::Ok && matches!(op.f, F::Set);
            self.history.reply(op).filter(|_| ok)?.stat.as_ref()?.version
        };
        for &o in &v.marked {
            let Some(ver) = version(o) else { continue };
            let path = self.history.request(&self.ops[o]).path.clone();
            let other = self.ops.iter().find(|w| {
                w.id != o
                    && self.history.request(w).path == path
                    && version(w.id).is_some_and(|x| x >= ver)
                    && w.invoke < self.ops[o].invoke
            });
            let Some(w) = other else { continue };
            let path = path.unwrap_or_default();
            let sentence = format!(
                "{} returned version {ver}{}, but {} had already made version {} of {path}; \
                 every acknowledged setData of a znode makes a new version, so one of these \
                 writes was lost",
                self.short(o),
                self.at(o),
                self.short(w.id),
                version(w.id).unwrap_or(ver),
            );
            let causes = [(w.id, "the acknowledged write overwritten"), (o, "the colliding write")];
            return Some(Explanation::new(sentence, &causes));
        }
        None
    }

    /// Sequential creates whose names collide, go back, or skip numbers.
    fn sequential(&self, v: &Violation) -> Option<Explanation> {
        let created = |id: usize| -> Option<(String, String, i64)> {
            let op = &self.ops[id];
            let req = self.history.request(op);
            let mode = req.mode.unwrap_or(CreateMode::Persistent);
            if op.f != F::Create || !mode.is_sequential() || op.outcome != Outcome::Ok {
                return None;
            }
            let prefix = req.path.clone()?;
            let name = self.history.reply(op)?.name().clone()?;
            let n = sequence_number(&prefix, &name)?;
            Some((parent(&prefix)?.to_string(), name, n))
        };
        let mut shown: Vec<usize> = v.marked.iter().chain(&v.ops).copied().collect();
        shown.sort_unstable();
        shown.dedup();
        if shown.is_empty() {
            shown = (v.window.0..=v.window.1)
                .filter_map(|e| self.ops.iter().find(|o| o.complete == Some(e)).map(|o| o.id))
                .collect();
        }
        let mut seq: Vec<(usize, (String, String, i64))> =
            shown.iter().filter_map(|&id| created(id).map(|c| (id, c))).collect();
        if seq.is_empty() {
            // The stuck op is a read of the parent: take the creates under it before it.
            let stuck = *v.marked.first()?;
            let path = self.history.request(&self.ops[stuck]).path.clone()?;
            seq = (0..stuck)
                .filter_map(|id| created(id).map(|c| (id, c)))
                .filter(|(_, (p, _, _))| *p == path)
                .collect();
        }
        // Every sequential create under the same parents up to the window, to pair with.
        let parents: Vec<&String> = seq.iter().map(|(_, (p, _, _))| p).collect();
        let until = seq.iter().map(|(id, _)| self.ops[*id].invoke).max().unwrap_or(0);
        let all: Vec<(usize, (String, String, i64))> = (self.ops.iter())
            .filter(|o| o.invoke <= until)
            .filter_map(|o| created(o.id).map(|c| (o.id, c)))
            .filter(|(_, (p, _, _))| parents.contains(&p))
            .collect();
        for (a, (pa, na, xa)) in &seq {
            for (b, (pb, nb, xb)) in all.iter().filter(|(b, _)| b != a) {
                let (first, second) = if self.ops[*a].invoke < self.ops[*b].invoke {
                    ((a, na, xa), (b, nb, xb))
                } else {
                    ((b, nb, xb), (a, na, xa))
                };
                let sentence = if pa == pb && na == nb {
                    format!(
                        "{} and {} were both given {na}; sequential names under {pa} are \
                         numbered from its counter of creates, so no two are alike",
                        self.short(*first.0),
                        self.short(*second.0)
                    )
                } else if pa == pb && self.after(*second.0, *first.0) && second.2 < first.2 {
                    format!(
                        "{} got {} after {} had got {}; sequence numbers under {pa} come from \
                         one counter of the parent, shared by every prefix, and only increase",
                        self.short(*second.0),
                        second.1,
                        self.short(*first.0),
                        first.1
                    )
                } else {
                    continue;
                };
                let causes = [(*first.0, "the first create"), (*second.0, "the colliding create")];
                return Some(Explanation::new(sentence, &causes));
            }
        }
        // A number that does not count the creates before it (e.g. one that counts deletes).
        let (c, (par, name, n)) = seq.last()?.clone();
        let before: Vec<usize> = (self.ops.iter())
            .filter(|o| o.invoke < self.ops[c].invoke && o.outcome != Outcome::Fail)
            .filter(|o| {
                o.f == F::Create
                    && parent(self.history.request(o).path.as_deref().unwrap_or("/"))
                        == Some(par.as_str())
            })
            .map(|o| o.id)
            .collect();
        let sentence = format!(
            "{} got {name} (number {n}), but {} child{} had been created under {par} before \
             it; ZooKeeper numbers sequential children by the parent's count of creates \
             (its cversion), which deletes leave alone",
            self.short(c),
            before.len(),
            if before.len() == 1 { "" } else { "ren" }
        );
        let mut causes: Vec<(usize, &str)> =
            before.iter().map(|&b| (b, "an earlier create")).collect();
        causes.push((c, "the misnumbered create"));
        Some(Explanation::new(sentence, &causes))
    }

    /// A multi seen half done (or a failed one seen partly done).
    fn multi(&self, v: &Violation) -> Option<Explanation> {
        let ids: Vec<usize> = v.marked.iter().chain(&v.ops).chain(&v.context).copied().collect();
        let is_multi = |id: &usize| self.ops[*id].f == F::Multi;
        // The multi of the window, else the latest one before a stuck op on that op's path.
        let m = ids.iter().copied().find(is_multi).or_else(|| {
            let stuck = *v.marked.first()?;
            let path = self.history.request(&self.ops[stuck]).path.clone()?;
            (0..stuck).rev().filter(is_multi).find(|&id| {
                let subs = self.history.request(&self.ops[id]).ops().iter().flatten();
                subs.clone().any(|s| s.path == path)
            })
        })?;
        let multi = &self.ops[m];
        let subs = self.history.request(multi).ops().clone().unwrap_or_default();
        let paths: Vec<String> = subs.iter().map(|s| s.path.clone()).collect();
        let readers: Vec<usize> = (self.ops.iter())
            .filter(|o| o.invoke > multi.invoke && is_query(o.f) && o.outcome == Outcome::Ok)
            .filter(|o| self.history.request(o).path.as_ref().is_some_and(|p| paths.contains(p)))
            .map(|o| o.id)
            .take(4)
            .collect();
        if readers.is_empty() {
            return None;
        }
        let saw: Vec<String> = (readers.iter())
            .map(|&r| {
                let path = self.history.request(&self.ops[r]).path.clone().unwrap_or_default();
                let seen = self.seen(r).map_or("?".to_string(), |s| s.text());
                format!("{path} {seen}{}", self.at(r))
            })
            .collect();
        let outcome = match multi.outcome {
            Outcome::Ok => format!("was acknowledged{}", self.at(m)),
            Outcome::Fail => "failed, so none of it took effect".into(),
            Outcome::Info => "has an unknown outcome".into(),
        };
        let what: Vec<String> = (subs.iter())
            .map(|s| format!("{} {}", format!("{:?}", s.f).to_lowercase(), s.path))
            .collect();
        let sentence = format!(
            "p{}'s multi [{}] {outcome}, but later reads found {}; a multi takes effect \
             entirely or not at all",
            multi.process,
            what.join(", "),
            saw.join(" and "),
        );
        let mut causes = vec![(m, "the multi")];
        causes.extend(readers.iter().map(|&r| (r, "a read of its paths")));
        Some(Explanation::new(sentence, &causes))
    }

    /// An ephemeral seen after its session closed.
    fn ephemeral(&self, v: &Violation) -> Option<Explanation> {
        for &r in v.marked.iter().chain(&v.ops) {
            if self.seen(r).is_none_or(|s| s == Seen::Absent) {
                continue;
            }
            let path = self.history.request(&self.ops[r]).path.clone()?;
            let create = self.ops.iter().rev().find(|c| {
                c.f == F::Create
                    && c.invoke < self.ops[r].invoke
                    && self.effect(c.id, &path).is_some()
                    && self.history.request(c).mode.is_some_and(CreateMode::is_ephemeral)
            });
            let Some(create) = create else { continue };
            let close = self.ops.iter().find(|c| {
                c.f == F::Close && c.process == create.process && c.outcome != Outcome::Fail
            });
            let Some(close) = close else { continue };
            let sentence = format!(
                "p{} found {path} present{}, but it was an ephemeral of p{}'s session, which \
                 had closed ({}{}); ephemerals are deleted when their session ends",
                self.ops[r].process,
                self.at(r),
                create.process,
                self.short(close.id),
                self.at(close.id),
            );
            let causes =
                [(r, "the read"), (create.id, "created the ephemeral"), (close.id, "the close")];
            return Some(Explanation::new(sentence, &causes));
        }
        None
    }

    /// A write whose reply the tree cannot give: the last acknowledged write of its path (or,
    /// for a create refused with NoNode, of its parent) ordered before it.
    fn write_conflict(&self, v: &Violation) -> Option<Explanation> {
        for &o in &v.marked {
            let op = &self.ops[o];
            if !matches!(op.f, F::Set | F::Delete | F::Create) || op.outcome == Outcome::Info {
                continue;
            }
            let req = self.history.request(op);
            let reply = self.history.reply(op)?;
            let mut path = reply.name().clone().or_else(|| req.path.clone())?;
            if op.f == F::Create && reply.error().as_deref().is_some_and(|e| e.contains("NoNode")) {
                path = parent(&path)?.to_string();
            }
            let before = (self.ops.iter())
                .filter(|w| w.id != o && w.outcome == Outcome::Ok && self.after(o, w.id))
                .filter(|w| self.effect(w.id, &path).is_some())
                .max_by_key(|w| (self.zxid(w.id), w.complete));
            let Some(w) = before else { continue };
            let checker = (v.message.lines())
                .find_map(|l| l.trim().strip_prefix(&format!("cannot place op {o} (")))
                .and_then(|l| l.split_once("): ").map(|(_, why)| format!("it {why}")))
                .unwrap_or_else(|| "it does not fit".into());
            let refused = reply.error().as_deref().and_then(crate::history::definite_error);
            let why = match (refused, self.effect(w.id, &path)) {
                (Some("NoNode"), Some(Effect::Data(_))) => {
                    format!("{path} existed, so the create could not fail with NoNode")
                }
                (Some("NodeExists"), Some(Effect::Gone)) => {
                    format!("{path} was gone, so the create could not fail with NodeExists")
                }
                _ => checker,
            };
            let result = match op.outcome {
                Outcome::Ok => "succeeded".to_string(),
                _ => format!("failed with {}", reply.error().as_deref().unwrap_or("an error")),
            };
            let version = (self.history.reply(w).and_then(|r| r.stat.as_ref()))
                .and_then(|s| s.version)
                .map(|v| format!(" version {v}"))
                .unwrap_or_default();
            let sentence = format!(
                "{}{} {result}, but after {} (acknowledged{}{version}), the last write of \
                 {path} before it, {why}; writes take effect in one order, that of their zxids \
                 and of real time, so a write was lost or reordered",
                self.short(o),
                self.at(o),
                self.short(w.id),
                self.at(w.id),
            );
            let causes = [(w.id, "last write of the path"), (o, "the write")];
            return Some(Explanation::new(sentence, &causes));
        }
        None
    }

    /// No pattern fits: the ops that cannot be ordered, with the checker's reason.
    fn fallback(&self, v: &Violation) -> Explanation {
        let reason = v.message.lines().find_map(|l| l.trim().strip_prefix("cannot place "));
        let sentence = match (v.marked.first(), reason) {
            (Some(_), Some(reason)) => format!("no order of the writes explains {reason}"),
            _ => v.message.lines().last().unwrap_or("").trim().to_string(),
        };
        let causes: Vec<(usize, &str)> =
            v.marked.iter().map(|&m| (m, "cannot be ordered")).collect();
        Explanation::new(sentence, &causes)
    }
}
