//! Scenario scripts: a small text language, one command per line, run against pure core nodes
//! (etcd-io/raft's `testdata/*.txt` with `datadriven`, raft-rs's `test_raft_paper.rs`). The
//! transcript (each command, then what it printed) is the golden output, kept by insta.
//!
//! Commands (`S` a server id, `C` a client name, `A->B` a link, `*` any server):
//! - `add-servers N [observers=M] [commit-log=K] [disk-diff=D]`: N voters then M observers,
//!   started with empty disks (K: committed txns kept for DIFF syncs; a learner further behind
//!   is synced by a DIFF read from the leader's log if it missed at most D txns, else SNAP);
//! - `tick [N] [servers=1,2]`: N ticks of the clock for those servers (default: all up), no
//!   message moves; `run [N] [servers=..]`: N times (tick, then `stabilize`);
//! - `stabilize`: deliver in-flight messages, oldest first, until none is left;
//! - `deliver|drop|hold [A->B | #ID] [kind=K] [n=N]`: the matching in-flight messages (all, or
//!   the first N); a held message is delayed: `stabilize` passes it over and a partition does
//!   not lose it; `duplicate #ID`; delivering by id in any order reorders;
//! - `hold-rule A->B [kind=K]`: hold every matching message as it is sent (`clear-rules`);
//! - `partition 1|2,3` (cut every link between the groups, losing what is in flight on them),
//!   `cut A->B` (one way), `heal` (all links), `peer-lost S P` (S's shell reports its
//!   connection to P broken);
//! - `persist-mode S manual|auto` (auto: appends are made durable after each step), `persist S`
//!   (make S's appends durable and report `Persisted`);
//! - `crash S [keep-unsynced] [keep-held]` (unsynced appends are lost unless kept; messages
//!   in flight to or from S are lost, but with `keep-held` the held ones to S stay in the
//!   network for its next incarnation), `restart S` (from the disk: epochs, durable log,
//!   snapshot);
//! - `connect C S`; `create|set C /p [data]`, `get|delete|sync C /p`: send a request;
//! - `print-state [S..]`, `print-net`, `print-outputs S` (every output S produced during the
//!   previous command, in order, as the shell carried them out);
//! - checks that fail the script: `check NAME` (see `checks::ALL`, or `check all`),
//!   `expect-read C /p VALUE|none` (a read answered at once with VALUE; none = NONODE),
//!   `check no-stale-read C /p VALUE|none` (a read, if answered, shows VALUE).
//!
//! Lines starting with `#` are comments (the scripts explain their interleavings there).

pub mod checks;
pub mod client;
pub mod cluster;
pub mod fmt;
pub mod observe;

use std::fmt::Write as _;

use zkr_core::config::Bugs;
use zkr_core::io::Input;
use zkr_core::types::ServerId;

use client::ReadResult;
use cluster::Env;

/// What running a script produced.
pub struct Outcome {
    /// The transcript: every command and what it printed.
    pub transcript: String,
    /// The checks that failed: (check name, description).
    pub failures: Vec<(String, String)>,
}

/// Runs the script `core/testdata/NAME.txt` with the given deliberate bugs.
pub fn run_file(name: &str, bugs: Bugs) -> Outcome {
    let path = format!("{}/testdata/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    run(&text, bugs)
}

/// Runs a script.
pub fn run(text: &str, bugs: Bugs) -> Outcome {
    let mut env = Env::new(bugs);
    let mut transcript = String::new();
    let mut failures = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        env.out.clear();
        let words: Vec<&str> = line.split_whitespace().collect();
        // `print-outputs` looks back at the previous command, so only the others start afresh.
        let result = if words[0] == "print-outputs" {
            let lines = env.outputs.get(&server(words[1])).cloned().unwrap_or_default();
            for line in lines {
                let _ = writeln!(env.out, "{line}");
            }
            Ok(())
        } else {
            env.outputs.clear();
            command(&mut env, &words)
        };
        if let Err(what) = result {
            let _ = writeln!(env.out, "FAILED: {what}");
            failures.push((check_name(&words, &what), format!("line {}: {what}", n + 1)));
        }
        let _ = writeln!(transcript, "> {line}");
        transcript.push_str(&env.out);
    }
    Outcome { transcript, failures }
}

/// The check a failure is counted against (`check all` names the check that failed first).
fn check_name(words: &[&str], what: &str) -> String {
    match words {
        ["check", "all", ..] => what.split(':').next().unwrap_or_default().to_string(),
        ["check", name, ..] => name.to_string(),
        [other, ..] => other.to_string(),
        [] => String::new(),
    }
}

/// Splits `key=value` options from positional words.
fn options<'a>(words: &[&'a str]) -> (Vec<&'a str>, Vec<(&'a str, &'a str)>) {
    let mut positional = Vec::new();
    let mut opts = Vec::new();
    for w in words {
        match w.split_once('=') {
            Some((k, v)) => opts.push((k, v)),
            None => positional.push(*w),
        }
    }
    (positional, opts)
}

fn opt<'a>(opts: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    opts.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn ids(list: &str) -> Vec<u64> {
    list.split(',').map(|s| s.parse().expect("a server id")).collect()
}

fn server(word: &str) -> u64 {
    word.parse().unwrap_or_else(|_| panic!("{word:?} is not a server id"))
}

fn command(env: &mut Env, words: &[&str]) -> Result<(), String> {
    let (pos, opts) = options(&words[1..]);
    let count = pos.first().and_then(|w| w.parse::<u64>().ok()).unwrap_or(1);
    let chosen = opt(&opts, "servers").map(ids);
    match words[0] {
        "add-servers" => {
            let observers = opt(&opts, "observers").map_or(0, |o| o.parse().expect("count"));
            if let Some(k) = opt(&opts, "commit-log") {
                env.commit_log_count = k.parse().expect("count");
            }
            if let Some(k) = opt(&opts, "disk-diff") {
                env.disk_diff_max_txns = k.parse().expect("count");
            }
            env.add_servers(server(pos[0]), observers);
        }
        "tick" | "run" => {
            for _ in 0..count {
                let targets = chosen.clone().unwrap_or_else(|| env.up());
                env.tick(&targets);
                if words[0] == "run" {
                    env.stabilize();
                }
            }
        }
        "stabilize" => env.stabilize(),
        "deliver" | "drop" | "hold" => select_messages(env, words[0], &pos, &opts)?,
        "duplicate" => {
            let id: u64 = pos[0].trim_start_matches('#').parse().expect("#ID");
            let m = env.net.iter().find(|m| m.id == id).ok_or("no such message")?.clone();
            let copy = cluster::Msg { id: env.next_msg, ..m };
            env.next_msg += 1;
            let _ = writeln!(env.out, "#{} is a copy of #{id}", copy.id);
            env.net.push(copy);
        }
        "partition" => {
            let groups: Vec<Vec<u64>> = pos[0].split('|').map(ids).collect();
            for (i, a) in groups.iter().enumerate() {
                for b in &groups[i + 1..] {
                    env.partition(a, b);
                }
            }
        }
        "heal" => env.cut.clear(),
        "cut" => {
            let (a, b) = pos[0].split_once("->").expect("A->B");
            env.partition_one_way(server(a), server(b));
        }
        "hold-rule" => {
            let (a, b) = pos[0].split_once("->").expect("A->B");
            let end = |w: &str| if w == "*" { 0 } else { server(w) };
            let kind = opt(&opts, "kind").unwrap_or_default().to_string();
            env.hold_rules.push((end(a), end(b), kind));
        }
        "clear-rules" => env.hold_rules.clear(),
        "peer-lost" => env.step(server(pos[0]), Input::PeerLost { peer: ServerId(server(pos[1])) }),
        "persist-mode" => {
            let auto = pos[1] == "auto";
            env.servers.get_mut(&server(pos[0])).expect("server").auto_persist = auto;
            if auto {
                env.persist(server(pos[0]));
            }
        }
        "persist" => env.persist(server(pos[0])),
        "crash" => {
            let keep = |word: &str| pos[1..].contains(&word);
            env.crash(server(pos[0]), keep("keep-unsynced"), keep("keep-held"));
        }
        "restart" => env.start(server(pos[0])),
        "connect" => env.connect(pos[0], server(pos[1])),
        "create" | "set" | "get" | "delete" | "sync" => {
            send(env, pos[0], &client::request(words[0], pos[1], pos.get(2).copied()))?;
        }
        "print-state" => {
            let targets: Vec<u64> = if pos.is_empty() {
                env.servers.keys().copied().collect()
            } else {
                pos.iter().map(|w| server(w)).collect()
            };
            for id in targets {
                let line = env.state_line(id);
                let _ = writeln!(env.out, "{line}");
            }
        }
        "print-net" => {
            for m in &env.net {
                let held = if m.held { " (held)" } else { "" };
                let what = fmt::describe(&m.msg);
                let _ = writeln!(env.out, "#{} {}->{} {what}{held}", m.id, m.from, m.to);
            }
        }
        "expect-read" => return read_check(env, pos[0], pos[1], pos[2], true),
        "check" if pos[0] == "no-stale-read" => {
            return read_check(env, pos[1], pos[2], pos[3], false);
        }
        "check" if pos[0] == "all" => {
            for name in checks::ALL {
                checks::run(env, name).map_err(|e| format!("{name}: {e}"))?;
            }
            let _ = writeln!(env.out, "ok");
        }
        "check" => {
            checks::run(env, pos[0])?;
            let _ = writeln!(env.out, "ok");
        }
        other => panic!("unknown command {other}"),
    }
    Ok(())
}

fn send(env: &mut Env, name: &str, req: &zkr_core::proto::client::Request) -> Result<(), String> {
    let client = env.clients.get_mut(name).ok_or("no such client")?;
    if client.closed {
        let _ = writeln!(env.out, "{name}: connection closed; not sent");
        return Ok(());
    }
    let xid = client.xid;
    client.xid += 1;
    client.pending.insert(xid, req.clone());
    let (server, conn) = (client.server, client.conn);
    let payload = client::request_payload(xid, req);
    let wall_ms = env.wall_ms;
    env.step(server, Input::ClientFrame { conn, payload, wall_ms });
    Ok(())
}

/// Sends a read and compares its answer with `want` (`none`: NONODE). `strict`: it must be
/// answered at once; otherwise an unanswered read (closed, refused) passes.
fn read_check(
    env: &mut Env,
    name: &str,
    path: &str,
    want: &str,
    strict: bool,
) -> Result<(), String> {
    let before = env.clients.get(name).ok_or("no such client")?.xid;
    send(env, name, &client::request("get", path, None))?;
    let client = &env.clients[name];
    let got = client.reads.get(&before).cloned();
    let want = if want == "none" {
        ReadResult::Error("NONODE".into())
    } else {
        ReadResult::Data(want.to_string())
    };
    match got {
        Some(got) if got == want => Ok(()),
        Some(got) => Err(format!("{name} read {path} as {got:?}, expected {want:?}")),
        None if strict => Err(format!("{name}'s read of {path} was not answered")),
        None => {
            let _ = writeln!(env.out, "{name}: not answered (allowed)");
            Ok(())
        }
    }
}

fn select_messages(
    env: &mut Env,
    verb: &str,
    pos: &[&str],
    opts: &[(&str, &str)],
) -> Result<(), String> {
    let selector = pos.first().copied().unwrap_or("*->*");
    let kind = opt(opts, "kind");
    let limit = opt(opts, "n").map_or(usize::MAX, |n| n.parse().expect("n"));
    let matches = |m: &cluster::Msg| -> bool {
        if let Some(id) = selector.strip_prefix('#') {
            return m.id.to_string() == id;
        }
        let (from, to) = selector.split_once("->").expect("A->B or #ID");
        let end = |want: &str, got: u64| want == "*" || want.parse::<u64>() == Ok(got);
        end(from, m.from) && end(to, m.to) && kind.is_none_or(|k| fmt::kind(&m.msg) == k)
    };
    let chosen: Vec<u64> =
        env.net.iter().filter(|m| matches(m)).map(|m| m.id).take(limit).collect();
    if chosen.is_empty() {
        // Not a failure: a script run with and without a bug diverges, and the transcript
        // shows the difference.
        let _ = writeln!(env.out, "(no in-flight message matches)");
    }
    for id in chosen {
        let Some(index) = env.net.iter().position(|m| m.id == id) else { continue };
        if verb == "deliver" {
            env.deliver_at(index);
        } else if verb == "hold" {
            let m = &mut env.net[index];
            m.held = true;
            let _ =
                writeln!(env.out, "hold #{} {}->{} {}", m.id, m.from, m.to, fmt::describe(&m.msg));
        } else {
            let m = env.net.remove(index);
            let _ =
                writeln!(env.out, "drop #{} {}->{} {}", m.id, m.from, m.to, fmt::describe(&m.msg));
        }
    }
    Ok(())
}
