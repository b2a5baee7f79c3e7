//! `zkr-cli`: zkCli.sh's commands against any ZooKeeper-protocol server.
//!
//! ```text
//! zkr-cli [-server host:port[,host:port...]] [command args...]
//! ```
//! With a command: runs it in one session, closes the session, exits 0 on success, 1 when the
//! command failed (the error on stderr), 2 when no server could be reached, 127 for an unknown
//! command. Without one: an interactive shell with line editing and history (`~/.zkr_cli_history`)
//! when stdin is a terminal, otherwise one command per stdin line (no prompt) and the exit code
//! of the last command that failed, 0 if none did.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};
use zkr_server::cli::command::{
    EXIT_FAILED, EXIT_NO_CONNECTION, Outcome, Shell, command_names, usage,
};

/// zkCli.sh's default server.
const DEFAULT_SERVER: &str = "localhost:2181";

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    let mut hosts = DEFAULT_SERVER.to_string();
    while let Some(first) = argv.first() {
        match first.as_str() {
            "-server" if argv.len() >= 2 => {
                hosts = argv[1].clone();
                argv.drain(..2);
            }
            "-h" | "--help" => {
                eprint!("{}", usage());
                return ExitCode::SUCCESS;
            }
            _ => break,
        }
    }
    let mut shell = Shell::new(&hosts);
    let code = if !argv.is_empty() {
        one_command(&mut shell, &argv)
    } else if std::io::stdin().is_terminal() {
        interactive(&mut shell)
    } else {
        script(&mut shell)
    };
    shell.close();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Connects, printing the failure on stderr.
fn connect(shell: &mut Shell) -> bool {
    let mut out = std::io::stdout();
    match shell.connect(&mut out) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("Unable to connect to {}: {e}", shell.hosts);
            false
        }
    }
}

fn one_command(shell: &mut Shell, argv: &[String]) -> i32 {
    if !connect(shell) {
        return EXIT_NO_CONNECTION;
    }
    // Re-quote words holding spaces, so `zkr-cli set /a "x y"` sets "x y".
    let line = argv
        .iter()
        .map(|w| if w.contains(char::is_whitespace) { format!("\"{w}\"") } else { w.clone() })
        .collect::<Vec<_>>()
        .join(" ");
    run(shell, &line).unwrap_or(0)
}

/// Runs one line; `Some(exit code)` when it failed.
fn run(shell: &mut Shell, line: &str) -> Option<i32> {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let outcome = shell.run_line(line, &mut out, &mut err);
    let _ = out.flush();
    match outcome {
        Outcome::Ok | Outcome::Quit => None,
        Outcome::Failed(code) => Some(code),
    }
}

fn script(shell: &mut Shell) -> i32 {
    if !connect(shell) {
        return EXIT_NO_CONNECTION;
    }
    let mut code = 0;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else {
            return EXIT_FAILED;
        };
        if line.trim() == "quit" {
            break;
        }
        if let Some(failed) = run(shell, &line) {
            code = failed;
        }
    }
    shell.close_printing(&mut std::io::stdout());
    code
}

fn interactive(shell: &mut Shell) -> i32 {
    connect(shell);
    let Ok(mut editor) = rustyline::Editor::<CommandNames, _>::new() else {
        return script(shell);
    };
    editor.set_helper(Some(CommandNames));
    let history = std::env::var_os("HOME")
        .map(|home| std::path::PathBuf::from(home).join(".zkr_cli_history"));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let mut count = 0;
    loop {
        let state = if shell.is_connected() { "CONNECTED" } else { "CLOSED" };
        let prompt = format!("[zk: {}({state}) {count}] ", shell.hosts);
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break,
        };
        if !line.trim().is_empty() {
            let _ = editor.add_history_entry(line.as_str());
            count += 1;
        }
        let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
        if shell.run_line(&line, &mut out, &mut err) == Outcome::Quit {
            break;
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    shell.close_printing(&mut std::io::stdout());
    0
}

/// Tab completes the command name (the first word of the line).
struct CommandNames;

impl Completer for CommandNames {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let typed = &line[..pos];
        if typed.contains(char::is_whitespace) {
            return Ok((pos, Vec::new()));
        }
        let names = command_names().filter(|n| n.starts_with(typed)).map(String::from).collect();
        Ok((0, names))
    }
}

impl Hinter for CommandNames {
    type Hint = String;
}

impl Highlighter for CommandNames {}

impl Validator for CommandNames {}

impl Helper for CommandNames {}
