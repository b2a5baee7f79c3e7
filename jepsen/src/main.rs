//! `jepsen`: check a history file, or benchmark the checker.
//!
//! `jepsen check FILE [--html OUT] [--linearizable-reads] [--ignore-read-zxids]` exits 0 if
//! the history is valid, 1 if a violation was found (or the search could not decide), 2 if the
//! input cannot be read (the message names the line).
//! `jepsen bench [--ops N]...` times the checker on generated histories.

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
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { file, html, linearizable_reads, ignore_read_zxids, max_configs } => {
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            let history = match History::parse(&text) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            let options =
                Options { linearizable_reads, use_read_zxids: !ignore_read_zxids, max_configs };
            let verdict = match check(&history, &options) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            print!("{}", report::text(&history, &verdict));
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
            print!("{}", generate::generate(&config).to_jsonl());
            ExitCode::SUCCESS
        }
        Command::Bench { ops, paths, sessions, info_rate, seed, no_zxids } => {
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
                let history = generate::generate(&config);
                let generated = started.elapsed();
                let started = Instant::now();
                let verdict =
                    check(&history, &Options::default()).expect("generated is well formed");
                let checked = started.elapsed();
                println!(
                    "{n} ops, {paths} paths, {sessions} sessions, {:.0}% info: generated in \
                     {generated:.2?}, checked in {checked:.2?}: {:?}, {} key groups (largest {} \
                     ops, on {:?}), {} configurations",
                    info_rate * 100.0,
                    verdict.validity,
                    verdict.stats.key_groups,
                    verdict.stats.largest_key_group,
                    verdict.stats.largest_key_group_paths,
                    verdict.stats.configs
                );
                if !verdict.is_valid() {
                    print!("{}", report::text(&history, &verdict));
                    return ExitCode::from(1);
                }
            }
            ExitCode::SUCCESS
        }
    }
}
