//! Showing a violation to a person: a text timeline and a self-contained HTML page.
//!
//! Both show the failing window of a violation (the events from the first to the last op
//! involved), one lane per process, ops as invoke–completion spans; ops that cannot be ordered
//! are marked (`✗` in text, red in HTML). The HTML page has no external resources.

use crate::check::{Verdict, Violation};
use crate::history::{Event, History, Kind, Op, Outcome};
use std::collections::BTreeMap;
use std::fmt::Write;

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

fn describe_request(req: &Event) -> String {
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
    for sub in req.ops.iter().flatten() {
        let _ = write!(s, " [{:?} {}]", sub.f, sub.path);
    }
    s
}

fn describe_reply(reply: &Event, outcome: Outcome) -> String {
    let mut s = match outcome {
        Outcome::Ok => "ok".to_string(),
        Outcome::Fail => format!("fail {}", reply.error.as_deref().unwrap_or("")),
        Outcome::Info => format!("info {}", reply.error.as_deref().unwrap_or("")).trim().into(),
    };
    if let Some(data) = &reply.data {
        let _ = write!(s, " {data:?}");
    }
    if let Some(name) = &reply.name {
        let _ = write!(s, " {name}");
    }
    if let Some(children) = &reply.children {
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

/// A text report of a verdict: each violation with its timeline.
pub fn text(history: &History, verdict: &Verdict) -> String {
    let mut out = String::new();
    let ops = history.ops();
    if verdict.is_valid() {
        let _ = writeln!(
            out,
            "valid: {} ops, {} partitions",
            verdict.stats.ops, verdict.stats.partitions
        );
        return out;
    }
    for partition in &verdict.unknown {
        let _ = writeln!(out, "unknown (search budget exhausted): {partition}");
    }
    for (n, v) in verdict.violations.iter().enumerate() {
        let _ = writeln!(out, "violation {}: {}", n + 1, v.guarantee);
        let _ = writeln!(out, "{}", v.message);
        out.push_str(&timeline(history, &ops, v));
        out.push('\n');
    }
    out
}

/// Event indices of the ops a violation shows (`None`: every event in its window).
fn shown_events(ops: &[Op], v: &Violation) -> Option<std::collections::BTreeSet<usize>> {
    if v.ops.is_empty() {
        return None;
    }
    let ids = v.ops.iter().chain(&v.marked);
    Some(ids.flat_map(|&id| [Some(ops[id].invoke), ops[id].complete]).flatten().collect())
}

/// Processes appearing in the window, in order of first appearance.
fn lanes(history: &History, window: (usize, usize), ops: &[Op], v: &Violation) -> Vec<u64> {
    let shown = shown_events(ops, v);
    let mut lanes = Vec::new();
    for (i, event) in history.events.iter().enumerate().take(window.1 + 1).skip(window.0) {
        if shown.as_ref().is_none_or(|s| s.contains(&i)) && !lanes.contains(&event.process) {
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
    let window = (v.window.0, v.window.1.min(history.events.len() - 1));
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
        if shown.as_ref().is_some_and(|s| !s.contains(&index)) {
            continue;
        }
        let event = &history.events[index];
        let lane = lanes.iter().position(|p| *p == event.process).expect("lane exists");
        let op = op_of_event.get(&index);
        let marked = op.is_some_and(|op| v.marked.contains(&op.id));
        let cell = match (event.kind, op) {
            (Some(Kind::Invoke), Some(op)) => format!("┌ {} {}", op.id, describe_request(event)),
            (Some(Kind::Event), _) => format!(
                "★ {:?} {}",
                event.event.expect("validated"),
                event.path.as_deref().unwrap_or("")
            ),
            (_, Some(op)) => format!("└ {} {}", op.id, describe_reply(event, op.outcome)),
            _ => String::new(),
        };
        let mark = if marked { "  ✗ cannot be ordered" } else { "" };
        let _ = write!(out, "{index:>7}  {}", " ".repeat(lane * WIDTH));
        let _ = writeln!(out, "{cell}{mark}");
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A self-contained HTML page: for each violation, one lane per process, ops as bars from
/// invoke to completion (info ops run to the window's end, dashed), failing ops in red.
pub fn html(history: &History, verdict: &Verdict) -> String {
    let ops = history.ops();
    let mut out = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>zkr-jepsen report</title>\
         <style>body{font:13px sans-serif;margin:1em}pre{background:#f6f6f6;padding:.5em;\
         white-space:pre-wrap}.lane{position:relative;height:26px;border-bottom:1px solid #ddd}\
         .name{position:absolute;left:0;width:50px;font-weight:bold;line-height:26px}\
         .op{position:absolute;height:18px;top:4px;border-radius:3px;font-size:11px;\
         overflow:hidden;white-space:nowrap;padding:0 2px;box-sizing:border-box}\
         .ok{background:#b7e1b0}.fail{background:#ddd}.info{background:#ffe1a8;\
         border:1px dashed #c80}.marked{background:#f28b82;border:2px solid #b00}\
         .ev{position:absolute;top:4px;color:#06c;font-size:16px}</style></head><body>",
    );
    let _ = write!(
        out,
        "<h1>{}</h1><p>{} ops, {} partitions, largest {} ops</p>",
        if verdict.is_valid() { "Valid" } else { "Violations" },
        verdict.stats.ops,
        verdict.stats.partitions,
        verdict.stats.largest_partition
    );
    for (n, v) in verdict.violations.iter().enumerate() {
        let _ = write!(out, "<h2>{}. {}</h2><pre>{}</pre>", n + 1, v.guarantee, escape(&v.message));
        out.push_str(&html_lanes(history, &ops, v));
    }
    out.push_str("</body></html>\n");
    out
}

fn html_lanes(history: &History, ops: &[Op], v: &Violation) -> String {
    if history.events.is_empty() {
        return String::new();
    }
    let window = (v.window.0, v.window.1.min(history.events.len() - 1));
    let lanes = lanes(history, window, ops, v);
    let span = (window.1 - window.0 + 1) as f64;
    let x = |i: usize| 60.0 + 900.0 * (i.saturating_sub(window.0)) as f64 / span;
    let listed = |o: &Op| v.ops.is_empty() || v.ops.contains(&o.id) || v.marked.contains(&o.id);
    let mut out = String::from("<div style=\"position:relative;width:980px\">");
    for p in &lanes {
        let _ = write!(out, "<div class=\"lane\"><span class=\"name\">p{p}</span>");
        for op in ops.iter().filter(|o| o.process == *p && listed(o)) {
            let end = op.complete.unwrap_or(window.1 + 1);
            if end < window.0 || op.invoke > window.1 {
                continue;
            }
            let (a, b) = (x(op.invoke.max(window.0)), x(end.min(window.1 + 1)));
            let class = if v.marked.contains(&op.id) {
                "marked"
            } else {
                match op.outcome {
                    Outcome::Ok => "ok",
                    Outcome::Fail => "fail",
                    Outcome::Info => "info",
                }
            };
            let title = escape(&describe_op(history, op));
            let label = escape(&describe_request(history.request(op)));
            let _ = write!(
                out,
                "<div class=\"op {class}\" style=\"left:{a:.1}px;width:{:.1}px\" title=\"{title}\">\
                 {label}</div>",
                (b - a).max(4.0)
            );
        }
        for (i, e) in history.events.iter().enumerate().take(window.1 + 1).skip(window.0) {
            if e.process == *p && e.kind == Some(Kind::Event) && v.ops.is_empty() {
                let title = escape(&format!("{:?} {}", e.event, e.path.as_deref().unwrap_or("")));
                let _ = write!(
                    out,
                    "<span class=\"ev\" style=\"left:{:.1}px\" title=\"{title}\">★</span>",
                    x(i)
                );
            }
        }
        out.push_str("</div>");
    }
    out.push_str("</div>");
    out
}
