//! `zkr-server [zoo.cfg]`: with no argument, a standalone server on port 2181 with `./data`;
//! with the path of a zoo.cfg, what the file says (like `zkServer.sh start-foreground zoo.cfg`).
//! Logs go to stderr; `RUST_LOG` adjusts the level (default `info`).

use std::process::ExitCode;

use zkr_server::config::ServerConfig;

/// Every request allocates and frees small objects on the driver thread (frames, txns, path
/// keys, change records, replies); mimalloc serves them from per-thread pages: the allocator's
/// share of a standalone create's server CPU went from ~21% (glibc) to ~7% (docs/PERFORMANCE.md,
/// "Where a create's CPU went"). Nothing depends on addresses, so no behaviour changes.
#[cfg(not(madsim))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match args.as_slice() {
        [] => ServerConfig::standalone_default(),
        [flag] if flag == "-h" || flag == "--help" => {
            println!("usage: zkr-server [path/to/zoo.cfg]");
            return ExitCode::SUCCESS;
        }
        [path] => match ServerConfig::load(std::path::Path::new(path)) {
            Ok(cfg) => cfg,
            Err(e) => {
                eprintln!("zkr-server: {e}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("usage: zkr-server [path/to/zoo.cfg]");
            return ExitCode::from(2);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if cfg.worker_threads > 0 {
        builder.worker_threads(cfg.worker_threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zkr-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let server = zkr_server::Server::start(cfg).await?;
        server.run_until_signal().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("zkr-server: {e}");
            ExitCode::FAILURE
        }
    }
}
