//! `sim-shell`: tier 2, the real `zkr-server` under madsim (see `zkr_sim::shell`).
//!
//! Build it with `--cfg madsim` into its own target directory (`tests/sim-shell.sh` does):
//! `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo build --release -p zkr-sim
//! --bin sim-shell`. Built normally it only says so.
//!
//! - `sim-shell --seed N [--trace] [--history FILE] [--determinism]` replays one seed.
//! - `sim-shell --seeds A..B [--jobs J] [--servers 3|5]` runs a campaign, prints a summary
//!   (faults per kind, seeds/s, simulated seconds per wall second per core) and the replay
//!   command of each failed seed; exits 1 if any failed.
//! - `--bug NAME` switches on a deliberate core bug in every server.
//! - `sim-shell --seed N --log debug` also prints the servers' tracing logs to stderr, each
//!   line headed by the simulated time and the node (`zkr_sim::shell::log`).

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "sim-shell: this build has no simulator; build with RUSTFLAGS=\"--cfg madsim\" \
         CARGO_TARGET_DIR=target/sim (tests/sim-shell.sh does)"
    );
    std::process::ExitCode::from(2)
}

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(madsim)]
mod cli {
    use std::collections::BTreeMap;
    use std::process::ExitCode;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use clap::Parser;
    use zkr_server::bugs::ShellBugs;
    use zkr_sim::Bugs;
    use zkr_sim::shell::{ShellOptions, ShellReport, run_seed};

    #[derive(Parser)]
    #[command(name = "sim-shell", about = "Tier 2: the real zkr-server under madsim")]
    struct Cli {
        /// Replay one seed.
        #[arg(long, conflicts_with = "seeds")]
        seed: Option<u64>,
        /// A campaign over `A..B` (B excluded).
        #[arg(long)]
        seeds: Option<String>,
        /// Threads for a campaign.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Servers per ensemble (3 or 5); default: drawn per seed.
        #[arg(long)]
        servers: Option<usize>,
        /// Simulated seconds of faults per seed.
        #[arg(long, default_value_t = 10)]
        fault_secs: u64,
        /// Print the trace of the seed.
        #[arg(long)]
        trace: bool,
        /// Write the seed's history to this file.
        #[arg(long)]
        history: Option<std::path::PathBuf>,
        /// Run the seed twice and require equal trace hashes.
        #[arg(long)]
        determinism: bool,
        /// After a campaign, print each seed's trace hash, in seed order (tests/sim-shell.sh
        /// compares them with those of each seed run alone).
        #[arg(long)]
        hashes: bool,
        /// After a campaign, print each seed's times from a leader fault to the next
        /// established leader, in seed order (to find the slow tail of fail-over), each as
        /// `TOOK@AT`: seconds to the leader, and when the fault hit (seconds of the seed's
        /// simulated time, to find the same fault in another binary's run of the seed).
        #[arg(long)]
        failover_seeds: bool,
        /// A deliberate core bug (same names as `sim --bug`), or a storage bug (any of
        /// `zkr_server::bugs::BUG_NAMES`: durable-before-fsync, cut-without-fsync, ...); or a
        /// harness bug: leak-nodes (the nodes outlive their seed; a campaign must report the leak).
        #[arg(long)]
        bug: Vec<String>,
        /// With --seed: print the servers' (and madsim's) tracing logs to stderr, at or above
        /// FILTER (RUST_LOG's syntax: `debug`, `zkr_server=debug,info`), each line headed by
        /// the simulated time and the node (s1.., c1.., main), never the wall clock; the seed's
        /// trace and verdict are the same as without it.
        #[arg(long, value_name = "FILTER")]
        log: Option<String>,
    }

    fn bugs(names: &[String]) -> Result<(Bugs, ShellBugs), String> {
        let mut bugs = Bugs::default();
        let mut shell = ShellBugs::default();
        for name in names {
            match name.as_str() {
                "leak-nodes" => {}
                other if zkr_sim::set_bug(&mut bugs, other) => {}
                // The storage bugs, from the one table (it names core's too).
                other if zkr_server::bugs::set_by_name(&mut bugs, &mut shell, other) => {}
                other => return Err(format!("unknown bug {other:?}")),
            }
        }
        Ok((bugs, shell))
    }

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        let options = match bugs(&cli.bug) {
            Ok((bugs, shell_bugs)) => ShellOptions {
                servers: cli.servers,
                fault_secs: cli.fault_secs,
                bugs,
                shell_bugs,
                trace: cli.trace,
                keep_history: cli.history.is_some(),
                leak_nodes: cli.bug.iter().any(|b| b == "leak-nodes"),
                ..ShellOptions::default()
            },
            Err(e) => {
                eprintln!("sim-shell: {e}");
                return ExitCode::from(2);
            }
        };
        // One seed's: a campaign's seeds would interleave theirs. (Checked here: clap 4.6's
        // `requires = "seed"` let `--seeds 1..2 --log debug` run.)
        if cli.log.is_some() && cli.seed.is_none() {
            eprintln!("sim-shell: --log needs --seed N");
            return ExitCode::from(2);
        }
        // Process-wide, made here before any seed's thread (zkr_sim::shell::log says why).
        if let Some(filter) = &cli.log
            && let Err(e) = zkr_sim::shell::log::install(filter)
        {
            eprintln!("sim-shell: {e}");
            return ExitCode::from(2);
        }
        let flags = replay_flags(&cli);
        if let Some(seed) = cli.seed {
            one(&cli, seed, &options, &flags)
        } else if let Some(range) = &cli.seeds {
            match parse_range(range) {
                Ok((a, b)) => campaign(&cli, a..b, &options, &flags),
                Err(e) => {
                    eprintln!("sim-shell: {e}");
                    ExitCode::from(2)
                }
            }
        } else {
            eprintln!("sim-shell: give --seed N or --seeds A..B");
            ExitCode::from(2)
        }
    }

    fn replay_flags(cli: &Cli) -> String {
        let mut flags: String = cli.bug.iter().map(|b| format!(" --bug {b}")).collect();
        if let Some(n) = cli.servers {
            flags.push_str(&format!(" --servers {n}"));
        }
        if cli.fault_secs != 10 {
            flags.push_str(&format!(" --fault-secs {}", cli.fault_secs));
        }
        flags
    }

    fn parse_range(text: &str) -> Result<(u64, u64), String> {
        let (a, b) = text.split_once("..").ok_or("a range is A..B")?;
        let a: u64 = a.parse().map_err(|e| format!("{a:?}: {e}"))?;
        let b: u64 = b.parse().map_err(|e| format!("{b:?}: {e}"))?;
        if a >= b {
            return Err(format!("empty range {text}"));
        }
        Ok((a, b))
    }

    /// The process's peak resident set (VmHWM), KB; 0 where /proc is missing.
    fn peak_rss_kb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("");
        line.split_whitespace().nth(1).and_then(|kb| kb.parse().ok()).unwrap_or(0)
    }

    fn describe(report: &ShellReport) -> String {
        let faults: Vec<String> = report.faults.iter().map(|(k, n)| format!("{k}={n}")).collect();
        format!(
            "{}+{} servers, {:.1} s simulated, {} ops, faults [{}], trace hash {:016x} ({} events)",
            report.servers,
            report.observers,
            report.sim_ns as f64 / 1e9,
            report.ops,
            faults.join(" "),
            report.trace_hash,
            report.events
        )
    }

    fn one(cli: &Cli, seed: u64, options: &ShellOptions, flags: &str) -> ExitCode {
        let report = run_seed(seed, options);
        println!("seed {seed}: {}", describe(&report));
        if let Some(trace) = &report.trace {
            print!("{trace}");
        }
        if let (Some(path), Some(history)) = (&cli.history, &report.history)
            && let Err(e) = std::fs::write(path, history)
        {
            eprintln!("sim-shell: cannot write {}: {e}", path.display());
        }
        for v in &report.violations {
            println!("  violation {} at {:.3} s: {}", v.invariant, v.at_ns as f64 / 1e9, v.message);
        }
        if cli.determinism {
            let again = run_seed(seed, options);
            println!("seed {seed} again: trace hash {:016x}", again.trace_hash);
            if again.trace_hash != report.trace_hash || again.events != report.events {
                println!("NONDETERMINISTIC: seed {seed} gave two different traces");
                return ExitCode::FAILURE;
            }
            println!("deterministic: same trace hash twice");
        }
        if report.passed() {
            println!("seed {seed} passed");
            ExitCode::SUCCESS
        } else {
            println!("seed {seed} FAILED; replay: sim-shell --seed {seed}{flags}");
            ExitCode::FAILURE
        }
    }

    fn campaign(
        cli: &Cli,
        seeds: std::ops::Range<u64>,
        options: &ShellOptions,
        flags: &str,
    ) -> ExitCode {
        let started = Instant::now();
        let all: Vec<u64> = seeds.collect();
        let next = AtomicUsize::new(0);
        let reports = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..cli.jobs.max(1) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(seed) = all.get(i) else { break };
                        let report = run_seed(*seed, options);
                        if !report.passed() {
                            println!("seed {seed} FAILED: {}", describe(&report));
                            for v in report.violations.iter().take(5) {
                                println!("  violation {}: {}", v.invariant, v.message);
                            }
                        }
                        reports.lock().expect("reports").push(report);
                    }
                });
            }
        });
        let mut reports = reports.into_inner().expect("reports");
        reports.sort_by_key(|r| r.seed);
        if cli.hashes {
            for r in &reports {
                println!("seed {}: trace hash {:016x}", r.seed, r.trace_hash);
            }
        }
        if cli.failover_seeds {
            for r in reports.iter().filter(|r| !r.recoveries_ns.is_empty()) {
                let secs = |ns: u64| ns as f64 / 1e9;
                let times: Vec<String> = r
                    .recoveries_ns
                    .iter()
                    .map(|&(at, took)| format!("{:.3}@{:.3}", secs(took), secs(at)))
                    .collect();
                println!("seed {}: failover {}", r.seed, times.join(" "));
            }
        }
        let wall = started.elapsed().as_secs_f64();
        let mut faults: BTreeMap<&str, u64> = BTreeMap::new();
        let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
        let (mut sim_ns, mut ops) = (0u64, 0usize);
        for r in &reports {
            for (k, n) in &r.faults {
                *faults.entry(k).or_default() += *n as u64;
            }
            *sizes.entry(format!("{}+{}", r.servers, r.observers)).or_default() += 1;
            sim_ns += r.sim_ns;
            ops += r.ops;
        }
        let failed: Vec<&ShellReport> = reports.iter().filter(|r| !r.passed()).collect();
        let jobs = cli.jobs.max(1) as f64;
        println!(
            "tier 2: {} seeds, {} failed, {:.1} s wall, {:.2} seeds/s ({:.2} per core), \
             {:.1} simulated s per wall s per core, {ops} ops",
            reports.len(),
            failed.len(),
            wall,
            reports.len() as f64 / wall,
            reports.len() as f64 / wall / jobs,
            sim_ns as f64 / 1e9 / wall / jobs,
        );
        println!("voters+observers per seed: {sizes:?}; faults: {faults:?}");
        // Every seed's world is dropped with its tasks; one kept means every seed's disks and
        // servers are kept, and a long campaign runs out of memory. A seed that panicked never
        // reached its release, and its failure is reported already.
        let panicked =
            reports.iter().filter(|r| r.violations.iter().any(|v| v.invariant == "panic")).count();
        let leaked = zkr_sim::shell::World::live().saturating_sub(panicked);
        println!(
            "memory: peak RSS {} MB, {leaked} of {} seeds' worlds never freed",
            peak_rss_kb() / 1024,
            reports.len()
        );
        let timers = reports.iter().map(|r| r.timers);
        let slack = timers.clone().filter_map(|t| t.expiry_slack_ticks_min).min();
        let late = timers.clone().map(|t| t.silent_late_ns_max).max().unwrap_or(0);
        let spare = timers.clone().filter_map(|t| t.silent_spare_ns_min).min();
        println!(
            "session timers checked: {} expiries by a leader that heard the session itself \
             (least silence past the timeout {} ticks), {} silent sessions gone in time (at \
             most {:.3} s past the timeout, least {:.3} s to spare; {} never checked), {} kills \
             of the leader within the fail-over bound",
            timers.clone().map(|t| t.expiries).sum::<u64>(),
            slack.map_or("-".to_string(), |s| s.to_string()),
            timers.clone().map(|t| t.silent).sum::<u64>(),
            late as f64 / 1e9,
            spare.unwrap_or(0) as f64 / 1e9,
            timers.clone().map(|t| t.silent_unchecked).sum::<u64>(),
            timers.clone().map(|t| t.failovers).sum::<u64>(),
        );
        let follower_slack = timers.clone().filter_map(|t| t.follower_slack_ticks_min).min();
        println!(
            "clients of learners: {} frames reported to the leader in time with nothing in the \
             way ({} not claimed: a fault, a rejoin, a new leader, or closing first), {} \
             expiries after such a report (least silence past the timeout {} ticks)",
            timers.clone().map(|t| t.relayed).sum::<u64>(),
            timers.clone().map(|t| t.relayed_unclaimed).sum::<u64>(),
            timers.clone().map(|t| t.follower_expiries).sum::<u64>(),
            follower_slack.map_or("-".to_string(), |s| s.to_string()),
        );
        let mut recoveries: Vec<u64> =
            reports.iter().flat_map(|r| r.recoveries_ns.iter().map(|&(_, took)| took)).collect();
        recoveries.sort_unstable();
        if !recoveries.is_empty() {
            let at = |q: f64| recoveries[((recoveries.len() - 1) as f64 * q) as usize] as f64 / 1e9;
            println!(
                "leader faults (kill, pause, isolation) to the next established leader: {} \
                 measured, p50 {:.2} s, p90 {:.2} s, p99 {:.2} s, max {:.2} s",
                recoveries.len(),
                at(0.5),
                at(0.9),
                at(0.99),
                at(1.0)
            );
        }
        for r in &failed {
            let kinds: std::collections::BTreeSet<&str> =
                r.violations.iter().map(|v| v.invariant).collect();
            println!("  FAILED seed {} ({kinds:?}): sim-shell --seed {}{flags}", r.seed, r.seed);
        }
        if leaked > 0 {
            println!("LEAK: {leaked} seeds' worlds outlived their seed (see shell::release)");
        }
        if failed.is_empty() && leaked == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }
}
