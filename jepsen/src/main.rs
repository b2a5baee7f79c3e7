//! `jepsen`: check a history file, or benchmark the checker.
//!
//! `jepsen check FILE [--html OUT] [--linearizable-reads] [--ignore-read-zxids]` exits 0 if
//! the history is valid, 1 if a violation was found (or the search could not decide), 2 if the
//! input cannot be read (the message names the line).
//! `jepsen bench [--ops N]...` times the checker on generated histories.
//! `jepsen test [--servers 3] [--time 30] [--nemesis kill,pause,partition] ...` runs a
//! workload against real servers while injecting faults, then checks the history (see
//! docs/JEPSEN.md).

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Instant;
use zkr_jepsen::{History, Options, check, generate, report};

#[derive(Parser)]
#[command(name = "jepsen", about = "Check histories against ZooKeeper's guarantees")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a JSON-lines history (see docs/HISTORY-FORMAT.md).
    Check {
        /// The history file.
        file: std::path::PathBuf,
        /// Also write an HTML report here.
        #[arg(long)]
        html: Option<std::path::PathBuf>,
        /// Require linearizable reads (stronger than ZooKeeper promises).
        #[arg(long)]
        linearizable_reads: bool,
        /// Do not trust the zxid of read replies.
        #[arg(long)]
        ignore_read_zxids: bool,
        /// Search budget per key group (paths checked together), in configurations.
        #[arg(long, default_value_t = 2_000_000)]
        max_configs: u64,
        /// What a sync's reply zxid means: `exact` (zkr: the sync took effect there, which is
        /// at or above everything completed before it began) or `lower-bound` (Apache
        /// ZooKeeper: its leader answers a sync like a read, so the zxid is only a floor for the
        /// session's next replies). Default: the history header's `sync_zxid`, else `exact`.
        #[arg(long)]
        sync_zxid: Option<zkr_jepsen::history::SyncZxid>,
    },
    /// Write a generated history of a correct ZooKeeper to stdout (JSON lines).
    Generate {
        /// Number of ops.
        #[arg(long, default_value_t = 1000)]
        ops: usize,
        /// Number of paths.
        #[arg(long, default_value_t = 10)]
        paths: usize,
        /// Number of concurrent sessions.
        #[arg(long, default_value_t = 5)]
        sessions: usize,
        /// Fraction of ops whose outcome is unknown.
        #[arg(long, default_value_t = 0.05)]
        info_rate: f64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Drop zxids and stats from replies.
        #[arg(long)]
        no_zxids: bool,
    },
    /// Start an ensemble (or attach to one), run a workload under faults, check the history.
    Test(TestArgs),
    /// Generate histories of a correct ZooKeeper and time the checker on them.
    Bench {
        /// History sizes, in ops.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        ops: Vec<usize>,
        /// Number of paths.
        #[arg(long, default_value_t = 100)]
        paths: usize,
        /// Number of concurrent sessions.
        #[arg(long, default_value_t = 50)]
        sessions: usize,
        /// Fraction of ops whose outcome is unknown.
        #[arg(long, default_value_t = 0.05)]
        info_rate: f64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Drop zxids and stats from replies (forces the search).
        #[arg(long)]
        no_zxids: bool,
        /// Change the value one read returned, halfway through each history, and time how
        /// long the violation takes to find, place and explain (it must be found).
        #[arg(long)]
        corrupt: bool,
    },
}

/// `jepsen test` arguments.
#[derive(clap::Args)]
struct TestArgs {
    /// Members of the local ensemble to start.
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// Attach to an existing ensemble instead (`host:port,host:port`); no faults are injected.
    #[arg(long, conflicts_with_all = ["server_bin", "server_cmd"])]
    connect: Option<String>,
    /// The zkr-server binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<std::path::PathBuf>,
    /// Start each member with this shell command instead (`{cfg}`: its zoo.cfg, `{dir}`: its
    /// directory; use `exec` so the pid is the server's), e.g. for Apache ZooKeeper.
    #[arg(long)]
    server_cmd: Option<String>,
    /// First client port; quorum ports are +100, election ports +200.
    #[arg(long, default_value_t = 21810)]
    base_port: u16,
    /// Concurrent client sessions.
    #[arg(long, default_value_t = 5)]
    clients: usize,
    /// Seconds the workload runs.
    #[arg(long, default_value_t = 30)]
    time: u64,
    /// Faults to inject: kill, pause, partition, isolate-leader, clock (needs libfaketime),
    /// disk (zkr-server built with the `bugs` feature), loss (needs root and nftables: the
    /// ensemble runs in a network namespace of its own); comma separated; empty for none.
    #[arg(long, value_delimiter = ',', default_value = "kill,pause,partition")]
    nemesis: Vec<String>,
    /// Start the local zkr servers with this deliberate bug on (`zkr.bugs` in zoo.cfg; only a
    /// zkr-server built with the `bugs` feature starts with it), to see it reported.
    #[arg(long)]
    bug: Vec<String>,
    /// A `key=value` line appended to every local member's zoo.cfg (e.g. `tickTime=200`).
    #[arg(long)]
    zoo_cfg: Vec<String>,
    /// Mean seconds between faults (each lasts up to as long).
    #[arg(long, default_value_t = 4.0)]
    interval: f64,
    /// Seed of the workload and the nemesis.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the history, the reports and the servers' data and logs go.
    #[arg(long, default_value = "jepsen-out")]
    out: std::path::PathBuf,
}

fn test(args: TestArgs) -> ExitCode {
    use zkr_jepsen::run::{self, Fault, TestOptions, cluster};
    let faults: Result<Vec<Fault>, String> =
        args.nemesis.iter().filter(|f| !f.is_empty()).map(|f| f.parse()).collect();
    let faults = match faults {
        Ok(f) => f,
        Err(e) => {
            eprintln!("jepsen test: {e}");
            return ExitCode::from(2);
        }
    };
    let cluster = if let Some(list) = &args.connect {
        let addrs: Result<Vec<std::net::SocketAddr>, _> =
            list.split(',').map(|a| a.trim().parse()).collect();
        match addrs {
            Ok(addrs) if !addrs.is_empty() => Ok(cluster::Cluster::attach(addrs)),
            _ => Err(format!("--connect {list:?}: give ip:port,ip:port")),
        }
    } else {
        let launch = match (&args.server_cmd, &args.server_bin) {
            (Some(cmd), _) => cluster::Launch::Template(cmd.clone()),
            (None, Some(bin)) => cluster::Launch::Zkr(bin.clone()),
            (None, None) => {
                let me = std::env::current_exe().unwrap_or_default();
                cluster::Launch::Zkr(me.with_file_name("zkr-server"))
            }
        };
        let dir = args.out.join("servers");
        let _ = std::fs::remove_dir_all(&dir);
        let zkr = matches!(launch, cluster::Launch::Zkr(_));
        let mut zoo_cfg = args.zoo_cfg.clone();
        if !args.bug.is_empty() {
            zoo_cfg.push(format!("zkr.bugs={}", args.bug.join(",")));
        }
        let setup = cluster::Setup {
            proxied: faults
                .iter()
                .any(|f| matches!(f, Fault::Partition | Fault::IsolateLeader | Fault::Loss)),
            zoo_cfg,
            faketime: faults.contains(&Fault::Clock),
            disk_faults: faults.contains(&Fault::Disk),
            netns: faults.contains(&Fault::Loss),
        };
        if !zkr && (setup.disk_faults || !args.bug.is_empty()) {
            Err("--bug and the disk fault need zkr-server (built with the `bugs` feature)".into())
        } else {
            cluster::Cluster::start(launch, args.servers, args.base_port, &dir, &setup)
        }
    };
    let cluster = match cluster {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jepsen test: {e}");
            return ExitCode::from(2);
        }
    };
    if cluster.is_local() && !cluster.wait_ready(std::time::Duration::from_secs(30)) {
        eprintln!(
            "jepsen test: no leader within 30 s; see {}/servers/*/server.log",
            args.out.display()
        );
        return ExitCode::from(2);
    }
    let options = TestOptions {
        clients: args.clients.max(1),
        duration: std::time::Duration::from_secs(args.time),
        seed: args.seed,
        faults,
        fault_interval: std::time::Duration::from_secs_f64(args.interval.max(0.1)),
        keys: 5,
        session_timeout_ms: 10_000,
        call_timeout: std::time::Duration::from_secs(2),
        out: args.out.clone(),
    };
    match run::run(cluster, &options) {
        Ok(outcome) => {
            out(&outcome.summary);
            if outcome.valid { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => {
            eprintln!("jepsen test: {e}");
            ExitCode::from(2)
        }
    }
}

/// The process's peak resident memory so far in bytes (`VmHWM` of /proc/self/status).
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok().map(|kb| kb * 1024)
}

/// A peak memory for a person: megabytes, and bytes per op of a history of `ops` ops.
fn memory_per_op(bytes: Option<u64>, ops: usize) -> String {
    match bytes {
        Some(b) => {
            format!("{:.0} MB, {:.0} bytes/op", b as f64 / 1e6, b as f64 / ops.max(1) as f64)
        }
        None => "unknown".into(),
    }
}

/// Makes the first acknowledged read with data in the second half of `history` return a
/// value nobody wrote (`jepsen bench --corrupt`).
fn invent_a_read(history: &mut History) {
    use zkr_jepsen::history::Outcome;
    let ops = history.ops();
    let half = history.events.len() / 2;
    let read = ops.iter().find(|op| {
        let reply = op.complete.map(|c| &history.events[c]);
        op.f == zkr_jepsen::F::Get
            && op.outcome == Outcome::Ok
            && op.invoke >= half
            && reply.is_some_and(|r| r.data.is_some())
    });
    let complete = read.and_then(|op| op.complete).expect("a generated history has reads");
    history.events[complete].data = Some("invented".into());
}

/// Writes to stdout; a closed pipe (`jepsen check h.jsonl | head`) ends the output quietly
/// instead of panicking as `print!` would.
fn out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Test(args) => test(args),
        Command::Check {
            file,
            html,
            linearizable_reads,
            ignore_read_zxids,
            max_configs,
            sync_zxid,
        } => {
            let input = match std::fs::File::open(&file) {
                Ok(input) => std::io::BufReader::new(input),
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            let history = match History::read(input) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            let use_read_zxids = !ignore_read_zxids;
            let options = Options { linearizable_reads, use_read_zxids, max_configs, sync_zxid };
            let verdict = match check(&history, &options) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            out(&report::text(&history, &verdict));
            if let Some(out) = html
                && let Err(e) = std::fs::write(&out, report::html(&history, &verdict))
            {
                eprintln!("{}: {e}", out.display());
                return ExitCode::from(2);
            }
            if verdict.is_valid() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Command::Generate { ops, paths, sessions, info_rate, seed, no_zxids } => {
            let config = generate::Config {
                ops,
                paths,
                sessions,
                info_rate,
                seed,
                zxids: !no_zxids,
                ..generate::Config::default()
            };
            out(&generate::generate(&config).to_jsonl());
            ExitCode::SUCCESS
        }
        Command::Bench { ops, paths, sessions, info_rate, seed, no_zxids, corrupt } => {
            for n in ops {
                let config = generate::Config {
                    ops: n,
                    paths,
                    sessions,
                    info_rate,
                    seed,
                    zxids: !no_zxids,
                    ..generate::Config::default()
                };
                let started = Instant::now();
                let mut history = generate::generate(&config);
                if corrupt {
                    invent_a_read(&mut history);
                }
                let generated = started.elapsed();
                let after_generation = peak_memory();
                let started = Instant::now();
                let verdict =
                    check(&history, &Options::default()).expect("generated is well formed");
                let checked = started.elapsed();
                let rate = n as f64 / checked.as_secs_f64().max(1e-9);
                out(&format!(
                    "{n} ops, {paths} paths, {sessions} sessions, {:.0}% info: generated in \
                     {generated:.2?} (peak memory {}), checked in {checked:.2?} ({rate:.0} \
                     ops/s, peak memory {}): {:?}, {} key groups (largest {} ops, on {:?}), {} \
                     configurations\n",
                    info_rate * 100.0,
                    memory_per_op(after_generation, n),
                    memory_per_op(peak_memory(), n),
                    verdict.validity,
                    verdict.stats.key_groups,
                    verdict.stats.largest_key_group,
                    verdict.stats.largest_key_group_paths,
                    verdict.stats.configs
                ));
                if corrupt {
                    let found = verdict.violations.first();
                    let Some(v) = found else {
                        out("the invented read was not reported\n");
                        return ExitCode::from(1);
                    };
                    out(&format!("reported: {}, window {:?}\n", v.guarantee, v.window));
                } else if !verdict.is_valid() {
                    out(&report::text(&history, &verdict));
                    return ExitCode::from(1);
                }
            }
            ExitCode::SUCCESS
        }
    }
}
