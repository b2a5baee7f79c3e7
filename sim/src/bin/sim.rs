//! `sim`: run simulation seeds.
//!
//! - `sim --seed N [--trace] [--history FILE] [--determinism]` replays one seed, prints its
//!   verdict and trace hash (and the trace with `--trace`); `--determinism` runs it twice and
//!   fails if the trace hashes differ.
//! - `sim --seeds A..B [--jobs J]` runs a campaign on J threads with a progress bar, prints a
//!   summary and, for each failed seed, the command that replays it; exits 1 if any failed.
//! - `sim --seeds-file FILE` runs the seeds listed in FILE (one `SEED comment` a line, `#`
//!   comments), e.g. `sim/regression-seeds.txt`; `sim --random-seeds N` runs N consecutive seeds
//!   from a start drawn from the OS and prints the range, so each CI run covers new seeds and any
//!   failure replays.
//! - `--cluster-size N` keeps only the seeds that choose N servers (to measure one size).
//! - `--bug NAME` (repeatable) switches on a deliberate core bug, to see the checks fire.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Parser;
use zkr_sim::swarm::{CLUSTER_SIZES, FAULT_PHASE_NS, LIVENESS_BOUND_NS};
use zkr_sim::{Bugs, RunOptions, SeedReport, run_seed};

/// A seed allocates and frees small objects at every event (messages, frames, txns, history
/// lines); mimalloc does that about twice as fast as glibc's malloc (docs/TIER1-SPEED.md, "Speed of
/// tier 1"). The allocator cannot change a trace: nothing in a run depends on addresses.
#[cfg(not(madsim))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "sim", about = "Deterministic simulation of zkr-core nodes, clients and faults")]
struct Cli {
    /// Replay one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run a campaign over a range of seeds, `A..B` (B excluded).
    #[arg(long, conflicts_with_all = ["seeds_file", "random_seeds"])]
    seeds: Option<String>,
    /// Run a campaign over the seeds listed in a file (`SEED comment` per line).
    #[arg(long, conflicts_with_all = ["seed", "random_seeds"])]
    seeds_file: Option<std::path::PathBuf>,
    /// Run a campaign over N consecutive seeds from a random start (printed).
    #[arg(long, conflicts_with = "seed")]
    random_seeds: Option<u64>,
    /// Threads for a campaign (default: available cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print the trace of the seed.
    #[arg(long)]
    trace: bool,
    /// Write the seed's history (jepsen JSON lines) to this file.
    #[arg(long)]
    history: Option<std::path::PathBuf>,
    /// Run the seed twice and require equal trace hashes.
    #[arg(long)]
    determinism: bool,
    /// Switch on a deliberate bug: ack-before-fsync, skip-session-expiry, reads-skip-queue,
    /// commit-after-one-ack, diff-instead-of-trunc, epoch-before-sync,
    /// ack-newleader-before-sync, expire-early, ignore-peer-lost, session-id-from-tree,
    /// ignore-replaced-session, drop-learner-touches.
    #[arg(long)]
    bug: Vec<String>,
    /// No progress bar (for CI logs).
    #[arg(long)]
    quiet: bool,
    /// Skip the history checker (measures the simulator alone; the other invariants still run).
    #[arg(long)]
    no_history_check: bool,
    /// Run only the campaign's seeds that choose this cluster size (to measure one size).
    #[arg(long, conflicts_with = "seed")]
    cluster_size: Option<usize>,
    /// Also print node steps by kind of input, the ticks that did nothing, events per simulated
    /// second, and the traced events before the heal, up to the liveness ack and after it (what
    /// the time of a seed is made of)
    #[arg(long)]
    mix: bool,
    /// After a campaign, print each seed's times from a crash of its established leader to the
    /// next established leader, in seed order (to find the slow tail of fail-over)
    #[arg(long, conflicts_with = "seed")]
    failover_seeds: bool,
}

fn bugs(names: &[String]) -> Result<Bugs, String> {
    let mut bugs = Bugs::default();
    for name in names {
        if !zkr_sim::set_bug(&mut bugs, name) {
            return Err(format!("unknown bug {name:?}"));
        }
    }
    Ok(bugs)
}

fn bug_flags(names: &[String]) -> String {
    names.iter().map(|b| format!(" --bug {b}")).collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let bugs = match bugs(&cli.bug) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("sim: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(seed) = cli.seed {
        return one(&cli, seed, bugs);
    }
    let seeds = if let Some(range) = &cli.seeds {
        parse_range(range).map(|(a, b)| (a..b).collect())
    } else if let Some(path) = &cli.seeds_file {
        read_seeds_file(path)
    } else if let Some(n) = cli.random_seeds {
        let start = rand::random::<u64>() % 1_000_000_000_000;
        println!(
            "random seeds: {start}..{} (replay: sim --seeds {start}..{})",
            start + n,
            start + n
        );
        Ok((start..start + n).collect())
    } else {
        Err("give --seed N, --seeds A..B, --seeds-file FILE or --random-seeds N".to_string())
    };
    let seeds = seeds.map(|mut seeds| {
        if let Some(size) = cli.cluster_size {
            seeds.retain(|&seed| zkr_sim::swarm::Swarm::of_seed(seed).cluster_size == size);
        }
        seeds
    });
    match seeds {
        Ok(seeds) if !seeds.is_empty() => campaign(&cli, seeds, bugs),
        Ok(_) => {
            eprintln!("sim: no seeds to run");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("sim: {e}");
            ExitCode::from(2)
        }
    }
}

/// Seeds from a file: the first word of each line that is not blank or a `#` comment.
fn read_seeds_file(path: &std::path::Path) -> Result<Vec<u64>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut seeds = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(word) = line.split_whitespace().next().filter(|w| !w.starts_with('#')) else {
            continue;
        };
        let seed = word
            .parse()
            .map_err(|e| format!("{}:{}: {word:?} is not a seed: {e}", path.display(), i + 1))?;
        seeds.push(seed);
    }
    Ok(seeds)
}

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text.split_once("..").ok_or("--seeds takes A..B")?;
    let a: u64 = a.trim().parse().map_err(|e| format!("bad start {a:?}: {e}"))?;
    let b: u64 = b.trim().parse().map_err(|e| format!("bad end {b:?}: {e}"))?;
    if b <= a {
        return Err(format!("empty range {a}..{b}"));
    }
    Ok((a, b))
}

fn one(cli: &Cli, seed: u64, bugs: Bugs) -> ExitCode {
    let options = RunOptions {
        trace: cli.trace,
        keep_history: cli.history.is_some(),
        bugs,
        skip_history_check: cli.no_history_check,
    };
    let report = run_seed(seed, &options);
    if let Some(text) = &report.trace {
        print!("{text}");
    }
    if let (Some(path), Some(history)) = (&cli.history, &report.history)
        && let Err(e) = std::fs::write(path, history)
    {
        eprintln!("sim: cannot write {}: {e}", path.display());
        return ExitCode::from(2);
    }
    println!(
        "seed {seed}: {} | {} | sim {:.3}s, {} events, {} ops ({} checked), faults {:?}",
        if report.passed() { "ok" } else { "FAILED" },
        report.swarm,
        report.sim_ns as f64 / 1e9,
        report.events,
        report.ops,
        report.ops_checked,
        report.faults
    );
    println!("trace hash {:016x}", report.trace_hash);
    if cli.mix {
        print_mix(&report.mix, report.events, report.sim_ns);
    }
    for v in &report.violations {
        println!("violation [{}] at {:.6}s: {}", v.invariant, v.at_ns as f64 / 1e9, v.message);
    }
    if cli.determinism {
        let again = run_seed(seed, &RunOptions { trace: false, keep_history: false, ..options });
        if again.trace_hash != report.trace_hash {
            println!(
                "NONDETERMINISTIC: second run hashed {:016x}, first {:016x}",
                again.trace_hash, report.trace_hash
            );
            return ExitCode::from(1);
        }
        println!("determinism: second run has the same trace hash");
    }
    if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn campaign(cli: &Cli, seeds: Vec<u64>, bugs: Bugs) -> ExitCode {
    let jobs = cli
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // A panic inside a seed is caught and reported with the seed; keep stderr for the summary.
    std::panic::set_hook(Box::new(|_| {}));
    let total = seeds.len() as u64;
    let bar = if cli.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} seeds {per_sec} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let next = AtomicU64::new(0);
    let reports: Mutex<Vec<SeedReport>> = Mutex::new(Vec::new());
    let failures = AtomicU64::new(0);
    let options = RunOptions {
        trace: false,
        keep_history: false,
        bugs,
        skip_history_check: cli.no_history_check,
    };
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&seed) = seeds.get(i as usize) else {
                        break;
                    };
                    let mut report = run_seed(seed, &options);
                    report.trace = None;
                    if !report.passed() {
                        let f = failures.fetch_add(1, Ordering::Relaxed) + 1;
                        bar.set_message(format!("{f} failed"));
                    }
                    bar.inc(1);
                    reports.lock().expect("no thread panics holding it").push(report);
                }
            });
        }
    });
    bar.finish();
    let elapsed = started.elapsed().as_secs_f64();
    let mut reports = reports.into_inner().expect("threads done");
    reports.sort_by_key(|r| r.seed);
    if cli.failover_seeds {
        for r in reports.iter().filter(|r| !r.failover_established_ns.is_empty()) {
            let times: Vec<String> = r
                .failover_established_ns
                .iter()
                .map(|ns| format!("{:.3}", *ns as f64 / 1e9))
                .collect();
            println!("seed {}: failover {}", r.seed, times.join(" "));
        }
    }
    if cli.mix {
        let mut mix = zkr_sim::sim::StepMix::default();
        for r in &reports {
            mix.add(&r.mix);
        }
        let events = reports.iter().map(|r| r.events).sum();
        print_mix(&mix, events, reports.iter().map(|r| r.sim_ns).sum());
    }
    summary(&reports, elapsed, jobs, &cli.bug)
}

/// Node steps by kind of input (share of all steps), idle ticks, and events per simulated s.
fn print_mix(mix: &zkr_sim::sim::StepMix, events: u64, sim_ns: u64) {
    let total = mix.total().max(1);
    let sim_s = (sim_ns as f64 / 1e9).max(1e-9);
    println!(
        "mix:             {} node steps ({:.0} per simulated s), {events} traced events ({:.0} \
         per simulated s)",
        mix.total(),
        mix.total() as f64 / sim_s,
        events as f64 / sim_s
    );
    for (name, n) in zkr_sim::sim::StepMix::KINDS.iter().zip(mix.steps) {
        if n > 0 {
            println!("  {name:<19}{n:>9} ({:.1}%)", 100.0 * n as f64 / total as f64);
        }
    }
    let ticks = mix.steps[0].max(1);
    println!(
        "  idle ticks (no output){:>6} ({:.1}% of ticks, {:.1}% of steps)",
        mix.idle_ticks,
        100.0 * mix.idle_ticks as f64 / ticks as f64,
        100.0 * mix.idle_ticks as f64 / total as f64
    );
    let share = |n: u64| 100.0 * n as f64 / events.max(1) as f64;
    let (heal, ack) = (mix.events_to_heal, mix.events_to_liveness_ack);
    println!(
        "  traced events: {heal} ({:.1}%) in the fault phase, {} ({:.1}%) from the heal to the \
         liveness ack, {} ({:.1}%) after it",
        share(heal),
        ack - heal,
        share(ack - heal),
        events - ack,
        share(events - ack)
    );
}

fn summary(reports: &[SeedReport], elapsed: f64, jobs: usize, bug_names: &[String]) -> ExitCode {
    let mut faults: BTreeMap<&str, u64> = BTreeMap::new();
    let mut sizes: BTreeMap<usize, u64> = BTreeMap::new();
    let (mut sim_ns, mut ops, mut checked, mut acked, mut unknown) = (0u64, 0, 0, 0, 0);
    for r in reports {
        for (k, v) in &r.faults {
            *faults.entry(k).or_default() += v;
        }
        *sizes.entry(r.cluster_size).or_default() += 1;
        sim_ns += r.sim_ns;
        ops += r.ops;
        checked += r.ops_checked;
        acked += r.acked_writes;
        unknown += usize::from(r.history_unknown);
    }
    let failed: Vec<&SeedReport> = reports.iter().filter(|r| !r.passed()).collect();
    let violations: usize = failed.iter().map(|r| r.violations.len()).sum();
    println!("seeds:           {} ({} failed)", reports.len(), failed.len());
    println!("cluster sizes:   {sizes:?} (the seed chooses from {CLUSTER_SIZES:?})");
    println!(
        "simulated time:  {:.1} s ({:.1} s fault phase per seed, then a liveness window of \
         {:.1} s for one server or Zab's own timeouts plus {:.1} s for an ensemble)",
        sim_ns as f64 / 1e9,
        FAULT_PHASE_NS as f64 / 1e9,
        LIVENESS_BOUND_NS as f64 / 1e9,
        LIVENESS_BOUND_NS as f64 / 1e9
    );
    println!("faults injected: {faults:?}");
    println!(
        "ops:             {ops} invoked, {checked} checked by the history checker, {acked} \
         acknowledged writes tracked for durability; {unknown} histories undecided (budget)"
    );
    println!("violations:      {violations}");
    print_failover(reports);
    print_follower_expiry(reports);
    let rate = reports.len() as f64 / elapsed.max(1e-9);
    println!(
        "speed:           {rate:.0} seeds/s on {jobs} threads ({:.0} seeds/s per thread) in \
         {elapsed:.1} s",
        rate / jobs as f64
    );
    let events: u64 = reports.iter().map(|r| r.events).sum();
    let wall: u64 = reports.iter().map(|r| r.wall_ns).sum();
    if wall > 0 {
        let per_core = events as f64 / (wall as f64 / 1e9);
        println!(
            "events:          {events} traced, {per_core:.0} events/s per core ({:.0} simulated \
             s per wall s per core)",
            sim_ns as f64 / wall as f64
        );
    }
    for size in [1usize, 3, 5, 7] {
        let of_size: Vec<&SeedReport> = reports.iter().filter(|r| r.cluster_size == size).collect();
        let wall: u64 = of_size.iter().map(|r| r.wall_ns).sum();
        if !of_size.is_empty() && wall > 0 {
            let per_core = of_size.len() as f64 / (wall as f64 / 1e9);
            let sim_s: f64 =
                of_size.iter().map(|r| r.sim_ns as f64 / 1e9).sum::<f64>() / of_size.len() as f64;
            println!(
                "speed, {size} server(s): {per_core:.0} seeds/s per core ({} seeds, {sim_s:.1} \
                 simulated s each on average)",
                of_size.len()
            );
        }
    }
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    println!();
    for r in failed.iter().take(20) {
        let v = &r.violations[0];
        println!("seed {} FAILED [{}]: {}", r.seed, v.invariant, first_line(&v.message));
        println!("  replay: sim --seed {}{} --trace", r.seed, bug_flags(bug_names));
    }
    if failed.len() > 20 {
        println!("... and {} more failed seeds", failed.len() - 20);
    }
    ExitCode::from(1)
}

/// The distribution of fail-over times after crashes of an established leader.
fn print_failover(reports: &[SeedReport]) {
    let (crashes, clean) =
        reports.iter().fold((0, 0), |(a, b), r| (a + r.leader_crashes.0, b + r.leader_crashes.1));
    let collect = |f: fn(&SeedReport) -> &Vec<u64>| {
        let mut all: Vec<u64> = reports.iter().flat_map(|r| f(r).iter().copied()).collect();
        all.sort_unstable();
        all
    };
    let established = collect(|r| &r.failover_established_ns);
    let writes = collect(|r| &r.failover_write_ns);
    let clean_established = collect(|r| &r.failover_clean_ns);
    println!(
        "leader crashes:  {crashes} ({clean} clean: announced, nothing else wrong; those are \
         bounded by the election timeouts)"
    );
    println!("  to a new established leader: {}", distribution(&established));
    println!("  to the next committed write:  {}", distribution(&writes));
    println!("  clean, to a new leader:       {}", distribution(&clean_established));
}

/// What `follower_expiry` covered: frames of learners' clients claimed as heard by the leader
/// (and why the others were not), and the expiries held against them.
fn print_follower_expiry(reports: &[SeedReport]) {
    let mut c = zkr_sim::invariants::follower_expiry::Counts::default();
    for r in reports {
        c.add(&r.follower_expiry);
    }
    let u = c.unclaimed;
    println!(
        "follower expiry: {} frames of learners' clients claimed as heard by the leader, {} not \
         (term ended {}, learner rejoined {}, pause or restart {}, peer message lost or late \
         {}, session closed first {}); {} expiries held against a claim (least slack {}), {} of \
         sessions with none",
        c.claimed,
        u.total(),
        u.term_ended,
        u.rejoined,
        u.paused,
        u.link,
        u.closed,
        c.expiries,
        c.slack_ticks_min.map_or("-".to_string(), |s| format!("{s} ticks")),
        c.expiries_unclaimed
    );
}

/// `n=… p50 p90 p99 max` in seconds.
fn distribution(sorted: &[u64]) -> String {
    if sorted.is_empty() {
        return "n=0".into();
    }
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64 / 1e9;
    format!(
        "n={} p50 {:.3}s p90 {:.3}s p99 {:.3}s max {:.3}s",
        sorted.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
