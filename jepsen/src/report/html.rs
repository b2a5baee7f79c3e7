//! The HTML report: one self-contained page (inline CSS and JS, no external resources).
//!
//! Each violation shows its cause first: the sentence stating the contradiction, with numbered
//! references to the ops it names, and a table of those ops (process, invoke and completion
//! events, zxid, result). Below, a timeline of the paths involved, around the failing window
//! and the explaining ops: one lane per process, ops as bars from invoke to completion, faults
//! from the history's `nemesis` lines as shaded bands behind the lanes. Explaining ops carry
//! their number; hovering one (in the sentence, the table or the timeline) highlights it
//! everywhere. The timeline zooms (buttons, or Ctrl + wheel) and scrolls sideways.

use super::{describe_op, describe_request, escape};
use crate::check::{Verdict, Violation};
use crate::history::{F, Fault, History, Kind, Op, Outcome};
use std::collections::BTreeSet;
use std::fmt::Write;

/// How many ops of the involved paths the timeline shows on each side of the core range.
const MARGIN_OPS: usize = 6;
/// At most this many ops on one timeline (the nearest to the core range are kept).
const MAX_OPS: usize = 400;

const STYLE: &str = "body{font:13px sans-serif;margin:1em;color:#222}\
pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap}\
.why{font-size:15px;background:#fff4f2;border-left:4px solid #b00;padding:.5em .8em}\
a.ref{font-weight:bold;color:#b00;text-decoration:none;cursor:pointer}\
table.causes{border-collapse:collapse;margin:.5em 0}\
.causes td,.causes th{border:1px solid #ddd;padding:2px 6px;text-align:left}\
.causes tr.hl td{background:#ffe9a8}\
.tools{margin:.4em 0}.tools button{margin-right:4px}\
.scroll{overflow-x:auto;border:1px solid #ccc;position:relative}\
.tl{position:relative;min-width:100%}\
.lane{position:relative;height:28px;border-bottom:1px solid #e4e4e4;margin-left:56px}\
.name{position:absolute;left:-54px;width:50px;font-weight:bold;line-height:28px}\
.op{position:absolute;height:18px;top:5px;border-radius:3px;font-size:11px;overflow:hidden;\
white-space:nowrap;padding:0 2px;box-sizing:border-box;z-index:2;cursor:default}\
.ok{background:#b7e1b0}.fail{background:#ddd}\
.info{background:#ffe1a8;border:1px dashed #c80}\
.marked{background:#f28b82;border:2px solid #b00}\
.cause{outline:3px solid #1a4fd6;z-index:3}.op.hl,.ev.hl{outline:3px solid #f0a000;z-index:4}\
.badge{display:inline-block;background:#1a4fd6;color:#fff;border-radius:7px;padding:0 4px;\
margin-right:3px;font-weight:bold}\
.ev{position:absolute;top:3px;color:#06c;font-size:16px;z-index:2}\
.fault{position:absolute;top:0;bottom:0;background:repeating-linear-gradient(45deg,\
rgba(120,120,120,.18) 0 6px,rgba(120,120,120,.08) 6px 12px);border-left:1px solid #888;\
border-right:1px solid #888;z-index:1}\
.fault span{position:absolute;top:0;left:2px;font-size:10px;color:#444;white-space:nowrap}\
.key{position:static;display:inline-block;height:auto;padding:0 4px}\
.axis{height:18px;position:relative;margin-left:56px;font-size:10px;color:#666}\
.axis span{position:absolute;top:2px}\
#tip{position:fixed;display:none;background:#333;color:#fff;padding:4px 6px;\
border-radius:3px;font-size:12px;max-width:600px;z-index:10;pointer-events:none}";

const SCRIPT: &str = "(function(){\
var tip=document.getElementById('tip');\
function mark(sec,op,on){sec.querySelectorAll('[data-op=\"'+op+'\"]').forEach(function(e){\
e.classList.toggle('hl',on);});}\
document.querySelectorAll('section').forEach(function(sec){\
sec.querySelectorAll('[data-op]').forEach(function(e){\
e.addEventListener('mouseenter',function(){mark(sec,e.dataset.op,true);});\
e.addEventListener('mouseleave',function(){mark(sec,e.dataset.op,false);});});\
sec.querySelectorAll('a.ref').forEach(function(a){a.addEventListener('click',function(ev){\
ev.preventDefault();var b=sec.querySelector('.op[data-op=\"'+a.dataset.op+'\"]');\
if(b)b.scrollIntoView({block:'nearest',inline:'center'});});});\
var tl=sec.querySelector('.tl');if(!tl)return;var z=1;\
function zoom(f){z=Math.max(1,Math.min(64,z*f));tl.style.width=(z*100)+'%';}\
sec.querySelectorAll('button[data-zoom]').forEach(function(b){b.addEventListener('click',\
function(){var f=parseFloat(b.dataset.zoom);if(f===0){z=1;zoom(1);}else zoom(f);});});\
sec.querySelector('.scroll').addEventListener('wheel',function(ev){if(!ev.ctrlKey)return;\
ev.preventDefault();zoom(ev.deltaY<0?1.25:0.8);},{passive:false});});\
document.querySelectorAll('[data-tip]').forEach(function(e){\
e.addEventListener('mousemove',function(ev){tip.textContent=e.dataset.tip;\
tip.style.display='block';tip.style.left=(ev.clientX+12)+'px';\
tip.style.top=(ev.clientY+12)+'px';});\
e.addEventListener('mouseleave',function(){tip.style.display='none';});});\
})();";

/// A self-contained HTML page: each violation's cause, the ops it names, and a timeline of
/// the paths involved with faults shaded and the explaining ops highlighted.
pub fn html(history: &History, verdict: &Verdict) -> String {
    let ops = history.ops();
    let mut out = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>zkr-jepsen report</title>\
         <style>{STYLE}</style></head><body><div id=\"tip\"></div>"
    );
    let _ = write!(
        out,
        "<h1>{}</h1><p>{} ops, {} key groups (sets of paths checked independently), largest \
         {} ops</p>",
        if verdict.is_valid() { "Valid" } else { "Violations" },
        verdict.stats.ops,
        verdict.stats.key_groups,
        verdict.stats.largest_key_group
    );
    if let Some(svg) = super::chart::svg(history) {
        let _ = write!(out, "<figure class=\"chart\">{svg}</figure>");
    }
    for group in &verdict.unknown {
        let _ = write!(out, "<p>unknown (search budget exhausted): {}</p>", escape(group));
    }
    for (n, v) in verdict.violations.iter().enumerate() {
        let _ = write!(out, "<section id=\"v{}\"><h2>{}. {}</h2>", n + 1, n + 1, v.guarantee);
        out.push_str(&cause(history, &ops, v));
        out.push_str(&timeline(history, &ops, v));
        let _ = write!(
            out,
            "<details><summary>checker details</summary><pre>{}</pre></details></section>",
            escape(&v.message)
        );
    }
    let _ = writeln!(out, "<script>{SCRIPT}</script></body></html>");
    out
}

/// The sentence with numbered references, and the table of the ops it names.
fn cause(history: &History, ops: &[Op], v: &Violation) -> String {
    let e = &v.explanation;
    let refs: String = (e.causes.iter().enumerate())
        .map(|(k, c)| format!(" <a class=\"ref\" href=\"#\" data-op=\"{}\">[{}]</a>", c.op, k + 1))
        .collect();
    let mut out = format!("<p class=\"why\">{}{refs}</p>", escape(&e.sentence));
    if e.causes.is_empty() {
        return out;
    }
    out.push_str(
        "<table class=\"causes\"><tr><th></th><th>role</th><th>op</th><th>process</th>\
         <th>invoked</th><th>completed</th><th>zxid</th><th>result</th></tr>",
    );
    for (k, c) in e.causes.iter().enumerate() {
        let op = &ops[c.op];
        let at = |i: usize| {
            let t = history.events[i].time.map(|t| format!(" (t={t})")).unwrap_or_default();
            format!("event {i}{t}")
        };
        let reply = history.reply(op);
        let zxid = reply.and_then(|r| r.zxid).map(|z| format!("{z:#x}")).unwrap_or_default();
        let result = describe_op(history, op);
        let result = result.split_once(" -> ").map_or("", |(_, r)| r).trim_end_matches(')');
        let _ = write!(
            out,
            "<tr data-op=\"{}\"><td><span class=\"badge\">{}</span></td><td>{}</td><td>op {} {}\
             </td><td>p{}</td><td>{}</td><td>{}</td><td>{zxid}</td><td>{}</td></tr>",
            c.op,
            k + 1,
            escape(&c.role),
            op.id,
            escape(&describe_request(history.request(op))),
            op.process,
            at(op.invoke),
            op.complete.map_or("never".to_string(), at),
            escape(result),
        );
    }
    out.push_str("</table>");
    out
}

/// The paths an op touches (its path; every sub-op path of a multi; the created name).
fn paths_of(history: &History, op: &Op) -> Vec<String> {
    let req = history.request(op);
    let mut out: Vec<String> = req.path.iter().cloned().collect();
    out.extend(req.ops().iter().flatten().map(|s| s.path.clone()));
    if let Some(name) = history.reply(op).and_then(|r| r.name().clone()) {
        out.push(name);
    }
    for r in history.reply(op).and_then(|r| r.results().clone()).into_iter().flatten() {
        out.extend(r.name);
    }
    out
}

/// What a violation's timeline shows: an event range and the ops in it.
struct Scene {
    lo: usize,
    hi: usize,
    ops: BTreeSet<usize>,
    /// The paths involved: those of the ops the violation names.
    focus: BTreeSet<String>,
}

fn scene(history: &History, ops: &[Op], v: &Violation) -> Scene {
    let last = history.events.len().saturating_sub(1);
    let key: BTreeSet<usize> = (v.explanation.causes.iter().map(|c| c.op))
        .chain(v.marked.iter().copied())
        .chain(v.ops.iter().copied())
        .collect();
    let (mut lo, mut hi) = (v.window.0.min(last), v.window.1.min(last));
    for &id in &key {
        lo = lo.min(ops[id].invoke);
        hi = hi.max(ops[id].complete.unwrap_or(ops[id].invoke));
    }
    // The paths involved: those of the explaining ops (else of every op the violation names).
    let causes: Vec<usize> = v.explanation.causes.iter().map(|c| c.op).collect();
    let named: Vec<usize> = if causes.is_empty() { key.iter().copied().collect() } else { causes };
    let mut focus: BTreeSet<String> =
        named.iter().flat_map(|&id| paths_of(history, &ops[id])).collect();
    if focus.is_empty() {
        // Nothing named (a watch event without a watch): the paths of the window's events.
        let window = history.events.iter().take(hi + 1).skip(lo);
        focus.extend(window.filter_map(|e| e.path.clone()));
    }
    let touches = |op: &Op| paths_of(history, op).iter().any(|p| focus.contains(p));
    let related: Vec<&Op> = ops.iter().filter(|o| touches(o) || key.contains(&o.id)).collect();
    let before = related.iter().filter(|o| o.invoke < lo).rev().take(MARGIN_OPS);
    let (mut from, mut to) = (lo, hi);
    for o in before {
        from = from.min(o.invoke);
    }
    for o in related.iter().filter(|o| o.invoke > hi).take(MARGIN_OPS) {
        to = to.max(o.complete.unwrap_or(o.invoke));
    }
    let mut shown: Vec<&Op> = (related.iter().copied())
        .filter(|o| o.invoke <= to && o.complete.unwrap_or(last) >= from)
        .collect();
    let distance = |o: &Op| {
        if key.contains(&o.id) {
            0
        } else {
            lo.saturating_sub(o.invoke) + o.invoke.saturating_sub(hi)
        }
    };
    shown.sort_by_key(|o| distance(o));
    shown.truncate(MAX_OPS);
    Scene { lo: from, hi: to, ops: shown.iter().map(|o| o.id).collect(), focus }
}

fn timeline(history: &History, ops: &[Op], v: &Violation) -> String {
    if history.events.is_empty() {
        return String::new();
    }
    let scene = scene(history, ops, v);
    let (lo, hi) = (scene.lo, scene.hi);
    let mut lanes: BTreeSet<u64> = scene.ops.iter().map(|&id| ops[id].process).collect();
    let faults: Vec<Fault> =
        history.faults().into_iter().filter(|f| f.to >= lo && f.from <= hi).collect();
    let stars: Vec<usize> = (lo..=hi)
        .filter(|&i| {
            let e = &history.events[i];
            e.kind == Some(Kind::Event) && e.path.as_ref().is_some_and(|p| scene.focus.contains(p))
        })
        .collect();
    lanes.extend(stars.iter().map(|&i| history.events[i].process));
    // The x axis is the order of the events shown: events of other paths take no room, so a
    // window inside a long history stays readable.
    let mut ticks: BTreeSet<usize> = [lo, hi + 1].into();
    for &id in &scene.ops {
        ticks.insert(ops[id].invoke.max(lo));
        ticks.insert(ops[id].complete.unwrap_or(hi + 1).min(hi + 1));
    }
    ticks.extend(faults.iter().flat_map(|f| [f.from.max(lo), (f.to + 1).min(hi + 1)]));
    ticks.extend(&stars);
    let ticks: Vec<usize> = ticks.into_iter().collect();
    let steps = (ticks.len() - 1).max(1) as f64;
    let x = |i: usize| {
        let i = i.clamp(lo, hi + 1);
        100.0 * ticks.partition_point(|&t| t < i) as f64 / steps
    };
    let mut out = String::from(
        "<div class=\"tools\"><button data-zoom=\"1.5\">zoom in</button>\
         <button data-zoom=\"0.667\">zoom out</button><button data-zoom=\"0\">reset</button> \
         <small>Ctrl + wheel zooms; hover an op for its details; events of other paths are left \
         out. <span class=\"op ok key\">ok\
         </span> <span class=\"op fail key\">failed</span> <span class=\"op info key\">unknown\
         </span> <span class=\"op marked key\">cannot be ordered</span> <span class=\"op ok \
         cause key\">explains</span> <span class=\"fault key\">fault</span></small></div>\
         <div class=\"scroll\"><div class=\"tl\">",
    );
    let time = |i: usize| history.events[i].time.map(|t| format!(" t={t}")).unwrap_or_default();
    let _ = write!(
        out,
        "<div class=\"axis\"><span style=\"left:0\">event {lo}{}</span>\
         <span style=\"right:4px\">event {hi}{}</span></div>",
        time(lo),
        time(hi)
    );
    for fault in &faults {
        let (a, b) = (x(fault.from), x(fault.to + 1));
        let tip = format!("fault: {} (events {}..{})", fault.name, fault.from, fault.to);
        let _ = write!(
            out,
            "<div class=\"fault\" style=\"left:calc(56px + (100% - 56px) * {:.4});\
             width:calc((100% - 56px) * {:.4})\" data-tip=\"{}\"><span>{}</span></div>",
            a / 100.0,
            ((b - a) / 100.0).max(0.002),
            escape(&tip),
            escape(&fault.name)
        );
    }
    // The explaining ops' processes first, in the order the sentence names them.
    let mut order: Vec<u64> = Vec::new();
    for c in &v.explanation.causes {
        if !order.contains(&ops[c.op].process) {
            order.push(ops[c.op].process);
        }
    }
    order.extend(lanes.iter().filter(|p| !order.contains(p)).copied().collect::<Vec<_>>());
    for p in &order {
        let _ = write!(out, "<div class=\"lane\"><span class=\"name\">p{p}</span>");
        for &id in scene.ops.iter().filter(|&&id| ops[id].process == *p) {
            out.push_str(&bar(history, &ops[id], v, &x, hi));
        }
        for &i in &stars {
            let e = &history.events[i];
            if e.process == *p {
                let what = e.event().map(|t| format!("{t:?}")).unwrap_or_default();
                let zxid = e.zxid.map(|z| format!(" zxid {z:#x}")).unwrap_or_default();
                let path = e.path.as_deref().unwrap_or("");
                let tip = format!("event {i}: p{p} received {what} {path}{zxid}");
                let _ = write!(
                    out,
                    "<span class=\"ev\" style=\"left:{:.3}%\" data-tip=\"{}\">★</span>",
                    x(i),
                    escape(&tip)
                );
            }
        }
        out.push_str("</div>");
    }
    out.push_str("</div></div>");
    out
}

fn bar(history: &History, op: &Op, v: &Violation, x: &dyn Fn(usize) -> f64, hi: usize) -> String {
    let end = op.complete.unwrap_or(hi + 1);
    let (a, b) = (x(op.invoke), x(end + 1));
    let cause = v.explanation.causes.iter().position(|c| c.op == op.id);
    let mut class = String::from(if v.marked.contains(&op.id) {
        "marked"
    } else {
        match op.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        }
    });
    if cause.is_some() {
        class.push_str(" cause");
    }
    let mut tip = format!("{} events {}..{}", describe_op(history, op), op.invoke, end);
    if let Some(k) = cause {
        let _ = write!(tip, " [{}] {}", k + 1, v.explanation.causes[k].role);
    }
    let badge = cause.map(|k| format!("<span class=\"badge\">{}</span>", k + 1));
    let label = match op.f {
        F::Close => "close".to_string(),
        _ => describe_request(history.request(op)),
    };
    format!(
        "<div class=\"op {class}\" data-op=\"{}\" style=\"left:{a:.3}%;width:max(6px,{:.3}%)\" \
         data-tip=\"{}\">{}{}</div>",
        op.id,
        b - a,
        escape(&tip),
        badge.unwrap_or_default(),
        escape(&label)
    )
}
