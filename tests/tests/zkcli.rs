//! Apache's own shell, `zkCli.sh` (Debian package `zookeeper`), against the target server.
//! Single commands run as `zkCli.sh -server HOST:PORT <command>` (one JVM, one session each);
//! commands that need one session (addauth, ephemerals) are fed on stdin to interactive mode.
//! zkCli exits 0 even when a command fails, so the checks read its output.
//!
//! Skipped with a note when zkCli.sh is missing, except in CI (CI=true), where that fails.

use std::process::Command;
use std::time::Duration;

use zkr_tests::TestServer;
use zkr_tests::tools::{require, run_bounded, zkcli};

const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// Output lines zkCli prints around every command, whatever the server.
fn is_noise(line: &str) -> bool {
    let noise = [
        "SLF4J",
        "Connecting to ",
        "WATCHER::",
        "WatchedEvent state:",
        "Welcome to ZooKeeper!",
        "JLine support is",
    ];
    line.trim().is_empty() || noise.iter().any(|n| line.starts_with(n))
}

/// Runs zkCli.sh with `args` after `-server`, feeding `stdin`; returns stdout + stderr without
/// the noise lines.
fn run_cli(server: &TestServer, args: &[&str], stdin: &str) -> String {
    let cli = zkcli().expect("checked by the caller");
    let mut cmd = Command::new(cli);
    cmd.arg("-server").arg(server.hosts()).args(args);
    let out = run_bounded(&mut cmd, stdin, CLI_TIMEOUT);
    assert!(
        out.status.is_some(),
        "zkCli {args:?} hung; output so far:\n{}{}",
        out.stdout,
        out.stderr
    );
    let text = format!("{}{}", out.stdout, out.stderr);
    text.lines().filter(|l| !is_noise(l)).collect::<Vec<_>>().join("\n")
}

fn cli(server: &TestServer, command: &str) -> String {
    let args: Vec<&str> = command.split(' ').collect();
    run_cli(server, &args, "")
}

fn cli_session(server: &TestServer, script: &str) -> String {
    run_cli(server, &[], &format!("{script}\nquit\n"))
}

fn assert_has(output: &str, needle: &str, context: &str) {
    assert!(output.contains(needle), "{context}: expected {needle:?} in:\n{output}");
}

#[test]
fn zkcli_create_get_set_stat_ls_delete() {
    if require("zkCli.sh", zkcli()).is_none() {
        return;
    }
    let server = TestServer::start();
    assert_has(&cli(&server, "create /a hello"), "Created /a", "create");
    assert_has(&cli(&server, "create /a again"), "Node already exists: /a", "create dup");
    assert_has(&cli(&server, "create /a/b child"), "Created /a/b", "create child");
    assert_has(&cli(&server, "create -s /a/s- x"), "Created /a/s-0000000001", "create -s");
    // A single-command zkCli exits without closing its session (the ephemeral would linger
    // until expiry), so ephemerals are made in an interactive session, which `quit` closes.
    let eph = cli_session(&server, "create -e /a/eph x\nls /a");
    assert_has(&eph, "Created /a/eph", "create -e");
    assert_has(&eph, "[b, eph, s-0000000001]", "ls in the creating session");
    assert_eq!(cli(&server, "get /a"), "hello");
    assert_eq!(cli(&server, "set /a world"), "");
    assert_eq!(cli(&server, "get /a"), "world");
    assert_has(&cli(&server, "set -v 7 /a x"), "version No is not valid : /a", "set -v");
    let stat = cli(&server, "stat /a");
    for line in ["dataVersion = 1", "dataLength = 5", "numChildren = 2", "ephemeralOwner = 0x0"] {
        assert_has(&stat, line, "stat /a");
    }
    // The ephemeral went with the session that created it.
    assert_eq!(cli(&server, "ls /a"), "[b, s-0000000001]");
    assert_has(&cli(&server, "get /nope"), "Node does not exist: /nope", "get missing");
    assert_has(&cli(&server, "delete /a"), "Node not empty: /a", "delete non-empty");
    assert_eq!(cli(&server, "delete /a/b"), "");
    assert_has(&cli(&server, "create /a/c/d x"), "Node does not exist: /a/c/d", "no parent");
    assert_eq!(cli(&server, "create /a/c x"), "Created /a/c");
    assert_eq!(cli(&server, "create /a/c/d x"), "Created /a/c/d");
    assert_eq!(cli(&server, "deleteall /a"), "");
    assert_has(&cli(&server, "ls /a"), "Node does not exist: /a", "ls after deleteall");
    assert_eq!(cli(&server, "ls /"), "[zookeeper]");
}

#[test]
fn zkcli_acl_and_addauth_in_one_session() {
    if require("zkCli.sh", zkcli()).is_none() {
        return;
    }
    let server = TestServer::start();
    let out = cli_session(
        &server,
        "addauth digest bob:pw\n\
         create /sec s\n\
         setAcl /sec auth::cdrwa\n\
         getAcl /sec\n\
         get /sec\n\
         create -e /sec/e x\n\
         ls /sec",
    );
    // base64(SHA1("bob:pw"))
    assert_has(&out, "'digest,'bob:ikIaKsbtGweaHnb/jKn7OHqbunM=\n: cdrwa", "getAcl");
    assert_has(&out, "\ns\n", "get /sec in the authed session");
    assert_has(&out, "[e]", "ls shows the session's ephemeral");

    assert_has(&cli(&server, "get /sec"), "Insufficient permission : /sec", "anon get");
    assert_has(&cli(&server, "getAcl /sec"), "Insufficient permission : /sec", "anon getAcl");
    assert_has(&cli(&server, "set /sec x"), "Insufficient permission : /sec", "anon set");
    assert_eq!(cli(&server, "ls /sec"), "Insufficient permission : /sec");
    let wrong = cli_session(&server, "addauth digest bob:nope\nget /sec");
    assert_has(&wrong, "Insufficient permission : /sec", "wrong password");
    let root = cli_session(&server, "addauth digest super:test\nget /sec\nls /sec");
    assert_eq!(root, "s\n[]", "super reads anything; the ephemeral is gone");

    assert_eq!(cli(&server, "create /ro r"), "Created /ro");
    assert_eq!(cli(&server, "setAcl /ro world:anyone:r"), "");
    assert_eq!(cli(&server, "getAcl /ro"), "'world,'anyone\n: r");
    assert_has(&cli(&server, "set /ro x"), "Insufficient permission : /ro", "read-only set");
    assert_has(&cli(&server, "create /ro/c"), "Insufficient permission : /ro/c", "no CREATE");
    // delete needs DELETE on the parent (/ is open), not on the node itself.
    assert_eq!(cli(&server, "delete /ro"), "");
    assert_has(&cli(&server, "stat /ro"), "Node does not exist: /ro", "deleted");
}
