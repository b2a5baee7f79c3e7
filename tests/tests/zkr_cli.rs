//! Our command-line client, `zkr-cli` (server/src/bin/zkr-cli.rs), end to end.
//!
//! - every command, its output and its exit code, against a zkr server;
//! - the same script through Apache's zkCli.sh and through zkr-cli, both against a fresh Apache
//!   ZooKeeper: the outputs must be equal (zkr-cli prints what zkCli prints);
//! - the same script through zkr-cli against a fresh Apache ZooKeeper and a fresh zkr server:
//!   equal outputs (the server differential, seen through the shell).
//!
//! Dates, zxids and session ids differ between runs and are masked before comparing. The
//! differential tests are skipped with a note when zkCli.sh or Apache's jars are missing, except
//! in CI (CI=true), where that fails (tests/setup.sh installs both).

use std::process::Command;
use std::time::Duration;

use zkr_tests::TestServer;
use zkr_tests::server::{ServerOptions, Target, zkr_cli_bin};
use zkr_tests::tools::{RunOutput, require, run_bounded, zkcli};

const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs zkr-cli against `hosts` with `args`, feeding `stdin`.
fn zkr_cli(hosts: &str, args: &[&str], stdin: &str) -> RunOutput {
    let mut cmd = Command::new(zkr_cli_bin());
    cmd.arg("-server").arg(hosts).args(args);
    let out = run_bounded(&mut cmd, stdin, CLI_TIMEOUT);
    assert!(out.status.is_some(), "zkr-cli {args:?} hung:\n{}{}", out.stdout, out.stderr);
    out
}

/// One command in its own session: (exit code, stdout without the connect event, stderr).
fn one(server: &TestServer, command: &str) -> (i32, String, String) {
    let args: Vec<&str> = command.split(' ').collect();
    let out = zkr_cli(&server.hosts(), &args, "");
    let code = out.status.and_then(|s| s.code()).expect("exited");
    (code, strip_events(&out.stdout), out.stderr)
}

/// Drops zkCli's session-state events (connect, close), which are printed around every run.
fn strip_events(text: &str) -> String {
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with("WatchedEvent state:SyncConnected type:None")
            || line.starts_with("WatchedEvent state:Closed")
        {
            // Remove the "", "WATCHER::", "" lines just printed before it.
            while lines.last().is_some_and(|l| l.is_empty() || *l == "WATCHER::") {
                lines.pop();
            }
            continue;
        }
        lines.push(line);
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn each_command_prints_what_zkcli_prints_and_exits_with_a_usable_code() {
    let server = TestServer::start();
    let ok = |command: &str, stdout: &str, stderr: &str| {
        let (code, out, err) = one(&server, command);
        assert_eq!((code, out.as_str(), err.as_str()), (0, stdout, stderr), "`{command}`");
    };
    let fails = |command: &str, code: i32, stderr: &str| {
        let (got, out, err) = one(&server, command);
        assert_eq!((got, out.as_str(), err.as_str()), (code, "", stderr), "`{command}`");
    };
    ok("create /a hello", "", "Created /a\n");
    fails("create /a again", 1, "Node already exists: /a\n");
    ok("create -s /a/s- x", "", "Created /a/s-0000000000\n");
    ok("create /a/b", "", "Created /a/b\n");
    ok("get /a/b", "null\n", "");
    ok("get /a", "hello\n", "");
    ok("set /a world", "", "");
    ok("ls /a", "[b, s-0000000000]\n", "");
    ok("ls -R /a", "/a\n/a/b\n/a/s-0000000000\n", "");
    fails("set -v 7 /a x", 1, "version No is not valid : /a\n");
    fails("get /nope", 1, "Node does not exist: /nope\n");
    fails("stat /nope", 1, "Node does not exist: /nope\n");
    fails("delete /a", 1, "Node not empty: /a\n");
    fails("get", 1, "get [-s] [-w] path\n");
    let (code, _, err) = one(&server, "bogus /a");
    assert_eq!(code, 127);
    assert!(err.ends_with("Command not found: Command not found bogus\n"), "{err}");

    let (code, stat, _) = one(&server, "stat /a");
    assert_eq!(code, 0);
    let keys: Vec<&str> = stat.lines().map(|l| l.split(" = ").next().unwrap_or("")).collect();
    let expected = [
        "cZxid",
        "ctime",
        "mZxid",
        "mtime",
        "pZxid",
        "cversion",
        "dataVersion",
        "aclVersion",
        "ephemeralOwner",
        "dataLength",
        "numChildren",
    ];
    assert_eq!(keys, expected);
    for line in ["dataVersion = 1", "dataLength = 5", "numChildren = 2", "ephemeralOwner = 0x0"] {
        assert!(stat.lines().any(|l| l == line), "{line} in:\n{stat}");
    }
    let (_, get_s, _) = one(&server, "get -s /a");
    assert_eq!(get_s, format!("world\n{stat}"));
    let (_, set_s, _) = one(&server, "set -s /a again");
    assert!(set_s.contains("dataVersion = 2\n"), "{set_s}");
    let (_, ls_s, _) = one(&server, "ls -s /a");
    assert!(ls_s.starts_with("[b, s-0000000000]\ncZxid = 0x"), "{ls_s}");

    ok("getAcl /a", "'world,'anyone\n: cdrwa\n", "");
    ok("create /acl", "", "Created /acl\n");
    ok("setAcl /acl world:anyone:rw", "", "");
    ok("getAcl /acl", "'world,'anyone\n: rw\n", "");
    fails("create /acl/x", 1, "Insufficient permission : /acl/x\n");
    fails("setAcl /a world:anyone", 1, "ACL: world:anyone does not have the form scheme:id:perm\n");
    ok("sync /a", "Sync is OK\n", "");
    ok("getAllChildrenNumber /a", "2\n", "");
    ok("delete -v 0 /a/b", "", "");
    ok("deleteall /a", "", "");
    fails("ls /a", 1, "Node does not exist: /a\n");
    ok("create -c /c", "", "Created /c\n");
    ok("create -t 60000 /t x", "", "Created /t\n");
    ok("whoami", "Auth scheme: User\nip: 127.0.0.1\n", "");
}

#[test]
fn unreachable_server_exits_2_with_the_error_on_stderr() {
    // A port nobody listens on: bind one, note it, free it.
    let port = zkr_tests::server::free_port();
    let out = zkr_cli(&format!("127.0.0.1:{port}"), &["ls", "/"], "");
    assert_eq!(out.status.and_then(|s| s.code()), Some(2), "{}", out.stderr);
    assert!(out.stderr.starts_with(&format!("Unable to connect to 127.0.0.1:{port}")));
}

/// A script on stdin runs in one session: watches fire and print, auth sticks, ephemerals go
/// when the script ends, and the exit code is that of the last failing command.
#[test]
fn stdin_script_shares_one_session_and_prints_watch_events() {
    let server = TestServer::start();
    let script = "create /w x\nget -w /w\nls -w /w\nset /w y\ncreate /w/c\n\
                  addauth digest u:p\ncreate /d x auth::cdrwa\ngetAcl /d\nwhoami\n\
                  create -e /e\nget /nope\nls /\n";
    let out = zkr_cli(&server.hosts(), &[], script);
    assert_eq!(out.status.and_then(|s| s.code()), Some(1), "the get /nope failure");
    let expected = "x\n[]\n\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged \
                    path:/w\n\nWATCHER::\n\nWatchedEvent state:SyncConnected \
                    type:NodeChildrenChanged path:/w\n'digest,'u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ=\n\
                    : cdrwa\nAuth scheme: User\nip: 127.0.0.1\ndigest: u\n[d, e, w, zookeeper]\n";
    assert_eq!(strip_events(&out.stdout), expected);
    assert_eq!(
        out.stderr,
        "Created /w\nCreated /w/c\nCreated /d\nCreated /e\nNode does not exist: /nope\n"
    );
    // The script's session is closed at its end, so its ephemeral is gone at once.
    let (code, stdout, _) = one(&server, "ls /");
    assert_eq!((code, stdout.as_str()), (0, "[d, w, zookeeper]\n"));
}

/// The differential script: every command whose output does not depend on the server's
/// timing, in one session.
const DIFF_SCRIPT: &str = "create /a hello\ncreate /a x\ncreate -s /a/s- x\ncreate -e /a/e\n\
    create -c /c\ncreate -t 60000 /t x\nls /a\nls -s /a\nls -R /a\nls /nope\nget /a\nget -s /a\n\
    get /nope\nstat /a\nstat /nope\nset /a world\nset -s /a w2\nset -v 9 /a z\ndelete /a\n\
    delete -v 9 /a/e\ndelete /nope\ngetAcl /a\nsetAcl /a world:anyone:cdrwa\n\
    setAcl -s /a world:anyone:cdrwa\naddauth digest u:p\ncreate /d x auth::cdrwa\ngetAcl /d\n\
    whoami\nsync /a\nls -w /a\nget -w /a\nstat -w /a\nset /a changed\ncreate /a/new x\n\
    deleteall /a\nls /\nget\ncreate /x/y z\ngetAllChildrenNumber /\n\
    create /rw x\nget -w /rw\nremovewatches /rw -d\nremovewatches /rw -c\nremovewatches /rw\n\
    set /rw y\nls -w /rw\nremovewatches /rw -c\ncreate /rw/k\nquit\n";

/// Masks what differs from run to run: dates, zxids, session ids.
fn mask(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let masked = match line.split_once(" = ") {
            Some((key, _)) if ["ctime", "mtime", "cZxid", "mZxid", "pZxid"].contains(&key) => {
                format!("{key} = *")
            }
            Some(("ephemeralOwner", v)) if v != "0x0" => "ephemeralOwner = <session>".into(),
            _ => line.to_string(),
        };
        out.push_str(&masked);
        out.push('\n');
    }
    out
}

/// zkCli.sh's (stdout, stderr) with its JVM noise (log lines, banner, stack traces) removed.
fn zkcli_output(hosts: &str, script: &str) -> (String, String) {
    let cli = zkcli().expect("checked by the caller");
    let mut cmd = Command::new(cli);
    cmd.arg("-server").arg(hosts);
    let out = run_bounded(&mut cmd, script, CLI_TIMEOUT);
    assert!(out.status.is_some(), "zkCli.sh hung:\n{}{}", out.stdout, out.stderr);
    let noise = ["SLF4J", "Connecting to ", "Welcome to ZooKeeper!", "JLine support is", "\tat "];
    let clean = |text: &str| -> String {
        let kept = text.lines().filter(|l| !noise.iter().any(|n| l.starts_with(n)));
        kept.map(|l| format!("{l}\n")).collect()
    };
    (clean(&out.stdout), clean(&out.stderr))
}

fn zkr_cli_output(hosts: &str, script: &str) -> (String, String) {
    let out = zkr_cli(hosts, &[], script);
    (out.stdout, out.stderr)
}

fn apache_available() -> bool {
    let jar = std::path::Path::new("/usr/share/java/zookeeper.jar");
    require("Debian's zookeeper package (tests/setup.sh)", jar.exists().then_some(())).is_some()
}

#[test]
fn zkr_cli_prints_what_zkcli_prints_against_apache_zookeeper() {
    if require("zkCli.sh", zkcli()).is_none() || !apache_available() {
        return;
    }
    let first = TestServer::start_target(Target::Apache, ServerOptions::new());
    let ours = zkr_cli_output(&first.hosts(), DIFF_SCRIPT);
    drop(first);
    let second = TestServer::start_target(Target::Apache, ServerOptions::new());
    let theirs = zkcli_output(&second.hosts(), DIFF_SCRIPT);
    drop(second);
    // zkCli lists commands we do not implement (quotas, reconfig, history...) in its usage
    // text, which none of the script's commands print.
    // After `quit`, zkCli.sh's event thread prints the Closed event while its main thread
    // calls System.exit, so the event is there only when that thread wins (it was missing once
    // in 13 runs on a loaded machine). zkr-cli always prints it: checked on its own, then the
    // rest compared.
    let closed = "\nWATCHER::\n\nWatchedEvent state:Closed type:None path:null\n";
    assert!(ours.0.ends_with(closed), "zkr-cli prints the Closed event last:\n{}", ours.0);
    let before_closed = |text: &str| text.strip_suffix(closed).unwrap_or(text).to_string();
    let (ours_out, theirs_out) = (before_closed(&ours.0), before_closed(&theirs.0));
    assert_eq!(
        mask(&ours_out),
        mask(&theirs_out),
        "stdout; zkr-cli:\n{ours:?}\nzkCli.sh:\n{theirs:?}"
    );
    assert_eq!(mask(&ours.1), mask(&theirs.1), "stderr; zkr-cli:\n{ours:?}\nzkCli.sh:\n{theirs:?}");
}

#[test]
fn the_same_script_prints_the_same_against_zkr_and_apache_zookeeper() {
    if !apache_available() {
        return;
    }
    let apache = TestServer::start_target(Target::Apache, ServerOptions::new());
    let on_apache = zkr_cli_output(&apache.hosts(), DIFF_SCRIPT);
    drop(apache);
    let zkr = TestServer::start_target(Target::Zkr, ServerOptions::new());
    let on_zkr = zkr_cli_output(&zkr.hosts(), DIFF_SCRIPT);
    assert_eq!(
        mask(&on_zkr.0),
        mask(&on_apache.0),
        "stdout; zkr:\n{on_zkr:?}\napache:\n{on_apache:?}"
    );
    assert_eq!(
        mask(&on_zkr.1),
        mask(&on_apache.1),
        "stderr; zkr:\n{on_zkr:?}\napache:\n{on_apache:?}"
    );
}
