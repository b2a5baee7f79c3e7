//! Start-up refusals an operator must see clearly (zkr only): a zoo.cfg this build cannot run
//! exits non-zero at once with a message naming the problem, instead of serving something else.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zkr_tests::server::{Target, zkr_bin};

fn run_config(name: &str, cfg: &str, myid: Option<&str>) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("zkr-startup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let cfg = cfg.replace("DATA", &dir.join("data").display().to_string());
    std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
    if let Some(id) = myid {
        std::fs::write(dir.join("data").join("myid"), id).unwrap();
    }
    let out = std::fs::File::create(dir.join("out.log")).unwrap();
    let mut child = Command::new(zkr_bin())
        .arg(dir.join("zoo.cfg"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn zkr-server");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(dir.join("out.log")).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            panic!("zkr-server did not refuse {name}; it kept running:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(dir.join("out.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (status.success(), text)
}

#[test]
fn ensemble_member_without_myid_is_refused() {
    if Target::from_env().is_apache() {
        return;
    }
    let cfg = "tickTime=2000\ndataDir=DATA\nclientPort=0\nclientPortAddress=127.0.0.1\n\
               initLimit=10\nsyncLimit=5\nserver.1=127.0.0.1:2888:3888\n\
               server.2=127.0.0.1:2889:3889\nserver.3=127.0.0.1:2890:3890\n";
    let (ok, text) = run_config("no-myid", cfg, None);
    assert!(!ok, "an ensemble member must know which server it is:\n{text}");
    assert!(text.contains("myid"), "the refusal names the missing file:\n{text}");
    let (ok, text) = run_config("bad-myid", cfg, Some("7"));
    assert!(!ok, "{text}");
    assert!(text.contains("server.7"), "an id without a server.N line is named:\n{text}");
}

#[test]
fn malformed_value_is_refused_with_key_and_line() {
    if Target::from_env().is_apache() {
        return;
    }
    let cfg = "tickTime=2000\ndataDir=DATA\nclientPort=notaport\n";
    let (ok, text) = run_config("malformed", cfg, None);
    assert!(!ok, "{text}");
    assert!(text.contains("clientPort") && text.contains("notaport"), "{text}");
    assert!(text.contains("line 3") || text.contains(":3"), "names the line:\n{text}");
}
