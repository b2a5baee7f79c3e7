//! Showing a violation to a person: a text timeline and a self-contained HTML page.
//!
//! Both lead with the violation's cause (its [`Explanation`](crate::check::Explanation): one
//! sentence and the ops it names, numbered), then show the failing window, one lane per
//! process, ops as invoke–completion spans; ops that cannot be ordered are marked (`✗` in
//! text, red in HTML), the explaining ops numbered (`◆[n]`, blue outline and badge), faults
//! from `nemesis` lines as `▒` rows or shaded bands. The HTML page has no external resources.

use crate::check::{Verdict, Violation};
use crate::history::{Event, History, Kind, Op, Outcome};
use std::collections::BTreeMap;
use std::fmt::Write;

pub mod chart;
mod html;
pub use html::html;

/// One-line description of an op: `op 12 (p3 set /a "x" v=2 -> ok zxid 0x7 v3)`.
pub fn describe_op(history: &History, op: &Op) -> String {
    let req = history.request(op);
    let mut s = format!("op {} (p{} {}", op.id, op.process, describe_request(req));
    match history.reply(op) {
        Some(reply) => {
            let _ = write!(s, " -> {}", describe_reply(reply, op.outcome));
        }
        None => s.push_str(" -> never completed"),
    }
    s.push(')');
    s
}

pub(crate) fn describe_request(req: &Event) -> String {
    let mut s = req.f.map(|f| format!("{f:?}").to_lowercase()).unwrap_or_default();
    if let Some(path) = &req.path {
        let _ = write!(s, " {path}");
    }
    if let Some(data) = &req.data {
        let _ = write!(s, " {data:?}");
    }
    if let Some(v) = req.version.filter(|v| *v >= 0) {
        let _ = write!(s, " version={v}");
    }
    if let Some(mode) = req.mode.filter(|m| *m != Default::default()) {
        let _ = write!(s, " {mode:?}");
    }
    if req.watch {
        s.push_str(" watch");
    }
    for sub in req.ops().iter().flatten() {
        let _ = write!(s, " [{:?} {}]", sub.f, sub.path);
    }
    s
}

fn describe_reply(reply: &Event, outcome: Outcome) -> String {
    let mut s = match outcome {
        Outcome::Ok => "ok".to_string(),
        Outcome::Fail => format!("fail {}", reply.error().as_deref().unwrap_or("")),
        Outcome::Info => format!("info {}", reply.error().as_deref().unwrap_or("")).trim().into(),
    };
    if let Some(data) = &reply.data {
        let _ = write!(s, " {data:?}");
    }
    if let Some(name) = reply.name() {
        let _ = write!(s, " {name}");
    }
    if let Some(children) = reply.children() {
        let _ = write!(s, " {children:?}");
    }
    if let Some(stat) = &reply.stat {
        if let Some(v) = stat.version {
            let _ = write!(s, " v{v}");
        }
    } else if reply.kind == Some(Kind::Ok) && reply.f == Some(crate::history::F::Exists) {
        s.push_str(" absent");
    }
    if let Some(z) = reply.zxid {
        let _ = write!(s, " zxid {z:#x}");
    }
    s
}

/// A text report of a verdict: each violation with its cause, the ops that make it, the
/// checker's details and its timeline.
pub fn text(history: &History, verdict: &Verdict) -> String {
    let mut out = String::new();
    let ops = history.ops();
    if verdict.is_valid() {
        let _ = writeln!(
            out,
            "valid: {} ops, {} key groups",
            verdict.stats.ops, verdict.stats.key_groups
        );
        return out;
    }
    for group in &verdict.unknown {
        let _ = writeln!(out, "unknown (search budget exhausted): {group}");
    }
    for (n, v) in verdict.violations.iter().enumerate() {
        let _ = writeln!(out, "violation {}: {}", n + 1, v.guarantee);
        out.push_str(&explanation_text(history, &ops, v));
        let _ = writeln!(out, "{}", v.message);
        out.push_str(&timeline(history, &ops, v));
        out.push('\n');
    }
    out
}

/// The cause of a violation for a terminal: the sentence, then one line per op it names.
pub fn explanation_text(history: &History, ops: &[Op], v: &Violation) -> String {
    let mut out = String::new();
    let e = &v.explanation;
    if e.sentence.is_empty() {
        return out;
    }
    let _ = writeln!(out, "  why: {}", e.sentence);
    for (k, cause) in e.causes.iter().enumerate() {
        let op = &ops[cause.op];
        let _ = writeln!(
            out,
            "  [{}] {:<24} {} {}",
            k + 1,
            cause.role,
            describe_op(history, op),
            when(history, op)
        );
    }
    out
}

/// `events 12..15` (or `event 12.., never completed`), with times if the history has them.
fn when(history: &History, op: &Op) -> String {
    let time = |i: usize| history.events[i].time.map(|t| t.to_string());
    match op.complete {
        Some(c) => {
            let times = time(op.invoke).zip(time(c)).map(|(a, b)| format!(" (t={a}..{b})"));
            format!("events {}..{}{}", op.invoke, c, times.unwrap_or_default())
        }
        None => format!("event {}.., never completed", op.invoke),
    }
}

/// Event indices of the ops a violation shows (`None`: every event in its window).
fn shown_events(ops: &[Op], v: &Violation) -> Option<std::collections::BTreeSet<usize>> {
    if v.ops.is_empty() {
        return None;
    }
    let causes = v.explanation.causes.iter().map(|c| &c.op);
    let ids = v.ops.iter().chain(&v.marked).chain(causes);
    Some(ids.flat_map(|&id| [Some(ops[id].invoke), ops[id].complete]).flatten().collect())
}

/// The event range a text timeline shows: the window, widened to the ops of the explanation.
fn text_window(ops: &[Op], v: &Violation, events: usize) -> (usize, usize) {
    let (mut lo, mut hi) = v.window;
    for c in &v.explanation.causes {
        lo = lo.min(ops[c.op].invoke);
        hi = hi.max(ops[c.op].complete.unwrap_or(ops[c.op].invoke));
    }
    (lo, hi.min(events - 1))
}

/// Processes appearing in the window, in order of first appearance.
fn lanes(history: &History, window: (usize, usize), ops: &[Op], v: &Violation) -> Vec<u64> {
    let shown = shown_events(ops, v);
    let mut lanes = Vec::new();
    for (i, event) in history.events.iter().enumerate().take(window.1 + 1).skip(window.0) {
        let client = event.kind != Some(Kind::Nemesis);
        if client
            && shown.as_ref().is_none_or(|s| s.contains(&i))
            && !lanes.contains(&event.process)
        {
            lanes.push(event.process);
        }
    }
    lanes
}

/// A text timeline of a violation's window: one column per process, one row per event.
pub fn timeline(history: &History, ops: &[Op], v: &Violation) -> String {
    const WIDTH: usize = 30;
    if history.events.is_empty() {
        return String::new();
    }
    let window = text_window(ops, v, history.events.len());
    let lanes = lanes(history, window, ops, v);
    let shown = shown_events(ops, v);
    let mut op_of_event: BTreeMap<usize, &Op> = BTreeMap::new();
    for op in ops {
        op_of_event.insert(op.invoke, op);
        if let Some(c) = op.complete {
            op_of_event.insert(c, op);
        }
    }
    let mut out = String::new();
    let _ = write!(out, "{:>7}  ", "event");
    for p in &lanes {
        let _ = write!(out, "{:<WIDTH$}", format!("p{p}"));
    }
    out.push('\n');
    for index in window.0..=window.1 {
        let event = &history.events[index];
        if event.kind == Some(Kind::Nemesis) {
            let what = event.fault.as_deref().unwrap_or("");
            let phase = event.phase.map(|p| format!("{p:?} ").to_lowercase()).unwrap_or_default();
            let _ = writeln!(out, "{index:>7}  ▒ fault {phase}{what}");
            continue;
        }
        if shown.as_ref().is_some_and(|s| !s.contains(&index)) {
            continue;
        }
        let Some(lane) = lanes.iter().position(|p| *p == event.process) else { continue };
        let op = op_of_event.get(&index);
        let marked = op.is_some_and(|op| v.marked.contains(&op.id));
        let cause = op.and_then(|op| v.explanation.causes.iter().position(|c| c.op == op.id));
        let cell = match (event.kind, op) {
            (Some(Kind::Invoke), Some(op)) => format!("┌ {} {}", op.id, describe_request(event)),
            (Some(Kind::Event), _) => format!(
                "★ {:?} {}",
                event.event().expect("validated"),
                event.path.as_deref().unwrap_or("")
            ),
            (_, Some(op)) => format!("└ {} {}", op.id, describe_reply(event, op.outcome)),
            _ => String::new(),
        };
        let mut mark = cause.map(|k| format!("  ◆[{}]", k + 1)).unwrap_or_default();
        if marked {
            mark.push_str("  ✗ cannot be ordered");
        }
        let _ = write!(out, "{index:>7}  {}", " ".repeat(lane * WIDTH));
        let _ = writeln!(out, "{cell}{mark}");
    }
    out
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
