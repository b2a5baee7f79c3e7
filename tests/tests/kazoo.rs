//! kazoo (Python) recipe tests: runs `tests/python/test_recipes.py` with pytest from the venv
//! made by `tests/setup.sh`, pointed at the target server through `ZK_HOSTS`.
//!
//! Skipped with a note when the venv is missing, except in CI (CI=true), where that fails.

use std::process::Command;
use std::time::Duration;

use zkr_tests::TestServer;
use zkr_tests::tools::{crate_dir, require, run_bounded, venv_python};

#[test]
fn kazoo_recipes() {
    let Some(python) = require("tests/.venv with kazoo + pytest", venv_python()) else {
        return;
    };
    let server = TestServer::start();
    let script = crate_dir().join("python/test_recipes.py");
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"])
        .arg(&script)
        .env("ZK_HOSTS", server.hosts())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(crate_dir());
    let out = run_bounded(&mut cmd, "", Duration::from_secs(600));
    let report = format!("--- pytest stdout ---\n{}\n--- stderr ---\n{}", out.stdout, out.stderr);
    assert!(out.status.is_some(), "pytest hung (killed after 600 s)\n{report}");
    assert!(out.success(), "kazoo recipes failed ({:?})\n{report}", out.status);
    assert!(out.stdout.contains(" passed"), "pytest ran no test?\n{report}");
    assert!(!out.stdout.contains(" skipped"), "a recipe test was skipped\n{report}");
    println!("{}", out.stdout.lines().last().unwrap_or(""));
}
