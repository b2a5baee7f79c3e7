//! zkCli.sh's commands: tokenising a line, flags, and running it against a [`Session`].
//!
//! Output goes where zkCli sends it (some of it surprisingly: `Created /x` is on stderr), so a
//! script that worked with zkCli.sh works with zkr-cli. Every command returns an [`Outcome`];
//! the binary turns it into an exit code.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use zkr_core::proto::client::{OpCode, Request, Response};
use zkr_core::proto::error::ZkError;
use zkr_core::types::Acl;

use super::format;
use super::session::{CallError, Session};

/// The session timeout zkCli asks for.
pub const SESSION_TIMEOUT_MS: i32 = 30_000;

/// Exit code of a failed command.
pub const EXIT_FAILED: i32 = 1;
/// Exit code when no server of `-server` could be reached.
pub const EXIT_NO_CONNECTION: i32 = 2;
/// Exit code of an unknown command (zkCli.sh's).
pub const EXIT_UNKNOWN_COMMAND: i32 = 127;

/// What one command line did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded (or the line was empty).
    Ok,
    /// It failed; the message is already on stderr. Holds the exit code.
    Failed(i32),
    /// `quit`: the shell ends.
    Quit,
}

/// One command: name, usage (as zkCli prints it), flags taking no value, flags taking one.
struct Spec {
    name: &'static str,
    usage: &'static str,
    switches: &'static str,
    valued: &'static str,
}

/// The commands, in zkCli's `help` order.
const SPECS: &[Spec] = &[
    spec(
        "addWatch",
        concat!(
            "addWatch [-m mode] path # optional mode is one of ",
            "[PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE"
        ),
        "",
        "m",
    ),
    spec("addauth", "addauth scheme auth", "", ""),
    spec("close", "close ", "", ""),
    spec("config", "config [-c] [-w] [-s]", "cws", ""),
    spec("connect", "connect host:port", "", ""),
    spec("create", "create [-s] [-e] [-c] [-t ttl] path [data] [acl]", "sec", "t"),
    spec("delete", "delete [-v version] path", "", "v"),
    spec("deleteall", "deleteall path [-b batch size]", "", "b"),
    spec("get", "get [-s] [-w] path", "sw", ""),
    spec("getAcl", "getAcl [-s] path", "s", ""),
    spec("getAllChildrenNumber", "getAllChildrenNumber path", "", ""),
    spec("getEphemerals", "getEphemerals path", "", ""),
    spec("help", "help ", "", ""),
    spec("ls", "ls [-s] [-w] [-R] path", "swR", ""),
    spec("printwatches", "printwatches on|off", "", ""),
    spec("quit", "quit ", "", ""),
    spec("removewatches", "removewatches path [-c|-d|-a] [-l]", "cdal", ""),
    spec("set", "set [-s] [-v version] path data", "s", "v"),
    spec("setAcl", "setAcl [-s] [-v version] [-R] path acl", "sR", "v"),
    spec("stat", "stat [-w] path", "w", ""),
    spec("sync", "sync path", "", ""),
    spec("version", "version ", "", ""),
    spec("whoami", "whoami ", "", ""),
];

const fn spec(
    name: &'static str,
    usage: &'static str,
    switches: &'static str,
    valued: &'static str,
) -> Spec {
    Spec { name, usage, switches, valued }
}

/// A parsed command line: the command, its flags and its positional arguments.
struct Args {
    flags: Vec<(char, Option<String>)>,
    positional: Vec<String>,
}

impl Args {
    fn has(&self, flag: char) -> bool {
        self.flags.iter().any(|(f, _)| *f == flag)
    }

    fn value(&self, flag: char) -> Option<&str> {
        self.flags.iter().find(|(f, _)| *f == flag).and_then(|(_, v)| v.as_deref())
    }
}

/// Splits a line as zkCli does: whitespace-separated words, where `"..."` or `'...'` is one
/// word without its quotes.
pub fn tokenize(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' || c == '\'' {
            chars.next();
            for d in chars.by_ref() {
                if d == c {
                    break;
                }
                word.push(d);
            }
        } else {
            while let Some(&d) = chars.peek() {
                if d.is_whitespace() {
                    break;
                }
                word.push(d);
                chars.next();
            }
        }
        words.push(word);
    }
    words
}

/// Separates known flags (anywhere on the line) from positional words; an unknown `-x` is a
/// positional word, so data such as `-1` can be written.
fn parse_args(spec: &Spec, words: &[String]) -> Result<Args, String> {
    let mut args = Args { flags: Vec::new(), positional: Vec::new() };
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        let flag = word.strip_prefix('-').filter(|f| f.len() == 1).and_then(|f| f.chars().next());
        match flag {
            Some(f) if spec.switches.contains(f) => args.flags.push((f, None)),
            Some(f) if spec.valued.contains(f) => {
                let Some(value) = words.get(i + 1) else {
                    return Err(format!("Missing argument for option: {f}"));
                };
                args.flags.push((f, Some(value.clone())));
                i += 1;
            }
            _ => args.positional.push(word.clone()),
        }
        i += 1;
    }
    Ok(args)
}

/// The shell: the current session (if any), the server list, and the printwatches switch.
pub struct Shell {
    /// `-server` as given, or the last `connect` argument.
    pub hosts: String,
    session: Option<Session>,
    print_watches: Arc<AtomicBool>,
}

impl Shell {
    /// A shell for `hosts`, not yet connected.
    pub fn new(hosts: &str) -> Shell {
        Shell {
            hosts: hosts.to_string(),
            session: None,
            print_watches: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Opens a session to `hosts` (closing the old one), printing zkCli's connect event.
    pub fn connect(&mut self, out: &mut dyn Write) -> Result<(), String> {
        if let Some(old) = self.session.take() {
            old.close();
        }
        let session =
            Session::connect(&self.hosts, SESSION_TIMEOUT_MS, self.print_watches.clone())?;
        self.session = Some(session);
        if self.print_watches.load(Ordering::Relaxed) {
            let _ = out.write_all(format::state_event("SyncConnected").as_bytes());
        }
        Ok(())
    }

    /// True while a session is open.
    pub fn is_connected(&self) -> bool {
        self.session.is_some()
    }

    /// Closes the session, if any (ephemerals go at once).
    pub fn close(&mut self) {
        if let Some(session) = self.session.take() {
            session.close();
        }
    }

    /// Closes the session, if any, printing zkCli's `Closed` event as `close` and `quit` do.
    pub fn close_printing(&mut self, out: &mut dyn Write) {
        if self.session.is_some() {
            self.close();
            if self.print_watches.load(Ordering::Relaxed) {
                let _ = out.write_all(format::state_event("Closed").as_bytes());
            }
        }
    }

    /// Runs one command line.
    pub fn run_line(&mut self, line: &str, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
        let words = tokenize(line);
        let Some(name) = words.first() else {
            return Outcome::Ok;
        };
        let Some(spec) = SPECS.iter().find(|s| s.name == name.as_str()) else {
            let _ = err.write_all(usage().as_bytes());
            let _ = writeln!(err, "Command not found: Command not found {name}");
            return Outcome::Failed(EXIT_UNKNOWN_COMMAND);
        };
        let args = match parse_args(spec, &words[1..]) {
            Ok(args) => args,
            Err(e) => {
                let _ = writeln!(err, "{e}");
                return Outcome::Failed(EXIT_FAILED);
            }
        };
        let result = self.dispatch(spec, &args, out, err);
        let _ = out.flush();
        match result {
            Ok(outcome) => outcome,
            Err(Failure::Usage) => {
                let _ = writeln!(err, "{}", spec.usage);
                Outcome::Failed(EXIT_FAILED)
            }
            Err(Failure::Message(text)) => {
                let _ = writeln!(err, "{text}");
                Outcome::Failed(EXIT_FAILED)
            }
        }
    }

    fn dispatch(
        &mut self,
        spec: &Spec,
        args: &Args,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<Outcome, Failure> {
        let p = &args.positional;
        let arity = |min: usize, max: usize| {
            if p.len() < min || p.len() > max { Err(Failure::Usage) } else { Ok(()) }
        };
        match spec.name {
            "help" => {
                let _ = err.write_all(usage().as_bytes());
            }
            "quit" => return Ok(Outcome::Quit),
            "close" => self.close_printing(out),
            "connect" => {
                arity(0, 1)?;
                if let Some(hosts) = p.first() {
                    self.hosts = hosts.clone();
                }
                self.connect(out).map_err(Failure::Message)?;
            }
            "version" => {
                let _ =
                    writeln!(out, "ZooKeeper CLI version: zkr-cli {}", env!("CARGO_PKG_VERSION"));
            }
            "printwatches" => {
                arity(0, 1)?;
                match p.first().map(String::as_str) {
                    None => {
                        let on = self.print_watches.load(Ordering::Relaxed);
                        let _ = writeln!(out, "printwatches is {}", if on { "on" } else { "off" });
                    }
                    Some(word) => self.print_watches.store(word == "on", Ordering::Relaxed),
                }
            }
            _ => self.data_command(spec, args, out, err)?,
        }
        Ok(Outcome::Ok)
    }

    /// The commands that need a session.
    fn data_command(
        &mut self,
        spec: &Spec,
        args: &Args,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(), Failure> {
        let p = &args.positional;
        let arity = |min: usize, max: usize| {
            if p.len() < min || p.len() > max { Err(Failure::Usage) } else { Ok(()) }
        };
        match spec.name {
            "ls"
            | "get"
            | "stat"
            | "delete"
            | "deleteall"
            | "sync"
            | "getAcl"
            | "getEphemerals"
            | "getAllChildrenNumber"
            | "addWatch"
            | "removewatches" => arity(1, 1)?,
            "create" => arity(1, 3)?,
            "set" | "setAcl" | "addauth" => arity(2, 2)?,
            "config" | "whoami" => arity(0, 0)?,
            other => unreachable!("command {other} has no handler"),
        }
        let Some(session) = self.session.as_mut() else {
            return Err(Failure::Message("Not connected".into()));
        };
        let print_watches = self.print_watches.load(Ordering::Relaxed);
        let mut c = Call { session, out, err, print_watches };
        match spec.name {
            "ls" => c.ls(args),
            "get" => c.get(&p[0], args.has('w'), args.has('s')),
            "config" => c.get("/zookeeper/config", args.has('w'), args.has('s')),
            "stat" => c.stat(args),
            "create" => c.create(args),
            "set" => c.set(args),
            "delete" => c.delete(&p[0], args.value('v')),
            "deleteall" => c.delete_all(&p[0]),
            "sync" => c.sync(&p[0]),
            "getAcl" => c.get_acl(&p[0], args.has('s')),
            "setAcl" => c.set_acl(args),
            "addauth" => c.add_auth(&p[0], &p[1]),
            "whoami" => c.who_am_i(),
            "getEphemerals" => c.get_ephemerals(&p[0]),
            "getAllChildrenNumber" => c.all_children_number(&p[0]),
            "addWatch" => c.add_watch(&p[0], args.value('m')),
            "removewatches" => c.remove_watches(&p[0], args),
            other => unreachable!("command {other} has no handler"),
        }
    }
}

/// Why a command failed: print its usage line, or a message.
enum Failure {
    Usage,
    Message(String),
}

/// One command's view of the session and the output streams.
struct Call<'a> {
    session: &'a mut Session,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    /// `printwatches`: whether the watch-removed events are printed.
    print_watches: bool,
}

impl Call<'_> {
    /// Sends `request` about `path`; a server error becomes zkCli's message for it.
    fn call(&mut self, path: &str, request: &Request) -> Result<Response, Failure> {
        self.session.call(request).map_err(|e| match e {
            CallError::Zk(code) => Failure::Message(format::error_message(code, path)),
            CallError::Io(text) => {
                Failure::Message(format!("KeeperErrorCode = ConnectionLoss for {path} ({text})"))
            }
        })
    }

    fn print(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
    }

    fn children(&mut self, path: &str, watch: bool) -> Result<Vec<String>, Failure> {
        let req = Request::GetChildren { op: OpCode::GetChildren, path: path.into(), watch };
        match self.call(path, &req)? {
            Response::GetChildren { mut children } => {
                children.sort();
                Ok(children)
            }
            other => Err(unexpected(&other)),
        }
    }

    fn ls(&mut self, args: &Args) -> Result<(), Failure> {
        let path = &args.positional[0];
        let watch = args.has('w');
        if args.has('R') {
            return self.print_subtree(path);
        }
        if !args.has('s') {
            let children = self.children(path, watch)?;
            self.print(&format!("{}\n", format::java_list(&children)));
            return Ok(());
        }
        let req = Request::GetChildren { op: OpCode::GetChildren2, path: path.clone(), watch };
        match self.call(path, &req)? {
            Response::GetChildren2 { mut children, stat } => {
                children.sort();
                self.print(&format!(
                    "{}\n{}",
                    format::java_list(&children),
                    format::stat_block(&stat)
                ));
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    /// `ls -R`: `path` and every node below it, depth first (`ZKUtil.visitSubTreeDFS`), with
    /// children sorted.
    fn print_subtree(&mut self, path: &str) -> Result<(), Failure> {
        let mut stack = vec![path.to_string()];
        while let Some(node) = stack.pop() {
            self.print(&format!("{node}\n"));
            let sep = if node.ends_with('/') { "" } else { "/" };
            for child in self.children(&node, false)?.iter().rev() {
                stack.push(format!("{node}{sep}{child}"));
            }
        }
        Ok(())
    }

    /// `path` and every node below it, breadth first (`ZKUtil.listSubTreeBFS`), children sorted.
    fn subtree(&mut self, path: &str) -> Result<Vec<String>, Failure> {
        let mut queue = VecDeque::from([path.to_string()]);
        let mut nodes = Vec::new();
        while let Some(node) = queue.pop_front() {
            for child in self.children(&node, false)? {
                let sep = if node.ends_with('/') { "" } else { "/" };
                queue.push_back(format!("{node}{sep}{child}"));
            }
            nodes.push(node);
        }
        Ok(nodes)
    }

    fn get(&mut self, path: &str, watch: bool, with_stat: bool) -> Result<(), Failure> {
        match self.call(path, &Request::GetData { path: path.into(), watch })? {
            Response::GetData { data, stat } => {
                let text = data.map_or("null".into(), |d| String::from_utf8_lossy(&d).into_owned());
                self.print(&format!("{text}\n"));
                if with_stat {
                    self.print(&format::stat_block(&stat));
                }
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    fn stat(&mut self, args: &Args) -> Result<(), Failure> {
        let path = &args.positional[0];
        let req = Request::Exists { path: path.clone(), watch: args.has('w') };
        match self.call(path, &req) {
            Ok(Response::Stat(stat)) => {
                self.print(&format::stat_block(&stat));
                Ok(())
            }
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(e),
        }
    }

    fn create(&mut self, args: &Args) -> Result<(), Failure> {
        let p = &args.positional;
        let path = &p[0];
        let data = p.get(1).map(|d| d.as_bytes().to_vec());
        let acl = match p.get(2) {
            Some(text) => format::parse_acl(text).map_err(Failure::Message)?,
            None => Acl::open_unsafe(),
        };
        let (sequential, ephemeral, container) = (args.has('s'), args.has('e'), args.has('c'));
        let ttl = match args.value('t') {
            Some(t) => Some(
                t.parse::<i64>()
                    .map_err(|_| Failure::Message(format!("{t} is not a valid TTL")))?,
            ),
            None => None,
        };
        if container && (sequential || ephemeral) {
            return Err(Failure::Message("-c cannot be combined with -s or -e".into()));
        }
        if ttl.is_some() && (ephemeral || container) {
            return Err(Failure::Message(
                "TTLs cannot be used with Ephemeral or Container nodes".into(),
            ));
        }
        // CreateMode values: 1 ephemeral, 2 sequential, 4 container, 5/6 TTL.
        let (op, flags) = match (ttl, container) {
            (Some(_), _) => (OpCode::CreateTtl, if sequential { 6 } else { 5 }),
            (None, true) => (OpCode::CreateContainer, 4),
            (None, false) => (OpCode::Create, i32::from(ephemeral) | (i32::from(sequential) << 1)),
        };
        let req =
            Request::Create { op, path: path.clone(), data, acl, flags, ttl: ttl.unwrap_or(-1) };
        match self.call(path, &req)? {
            Response::Create { path: created } | Response::Create2 { path: created, .. } => {
                let _ = writeln!(self.err, "Created {created}");
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    fn set(&mut self, args: &Args) -> Result<(), Failure> {
        let (path, data) = (&args.positional[0], &args.positional[1]);
        let version = parse_version(args.value('v'))?;
        let req =
            Request::SetData { path: path.clone(), data: Some(data.as_bytes().to_vec()), version };
        match self.call(path, &req)? {
            Response::Stat(stat) => {
                if args.has('s') {
                    self.print(&format::stat_block(&stat));
                }
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    fn delete(&mut self, path: &str, version: Option<&str>) -> Result<(), Failure> {
        let version = parse_version(version)?;
        self.call(path, &Request::Delete { path: path.into(), version }).map(|_| ())
    }

    /// `ZKUtil.deleteRecursive`: the subtree, deepest last in BFS order, deleted in reverse.
    fn delete_all(&mut self, path: &str) -> Result<(), Failure> {
        let nodes = self.subtree(path)?;
        for node in nodes.iter().rev() {
            self.call(node, &Request::Delete { path: node.clone(), version: -1 })?;
        }
        Ok(())
    }

    fn sync(&mut self, path: &str) -> Result<(), Failure> {
        self.call(path, &Request::Sync { path: path.into() })?;
        self.print("Sync is OK\n");
        Ok(())
    }

    fn get_acl(&mut self, path: &str, with_stat: bool) -> Result<(), Failure> {
        match self.call(path, &Request::GetAcl { path: path.into() })? {
            Response::GetAcl { acl, stat } => {
                self.print(&format::acl_lines(&acl));
                if with_stat {
                    self.print(&format::stat_block(&stat));
                }
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    fn set_acl(&mut self, args: &Args) -> Result<(), Failure> {
        let (path, text) = (&args.positional[0], &args.positional[1]);
        let acl = format::parse_acl(text).map_err(Failure::Message)?;
        let version = parse_version(args.value('v'))?;
        let targets = if args.has('R') { self.subtree(path)? } else { vec![path.clone()] };
        for target in targets {
            let req = Request::SetAcl { path: target.clone(), acl: acl.clone(), version };
            let reply = self.call(&target, &req)?;
            if let (Response::Stat(stat), true) = (&reply, args.has('s') && target == *path) {
                self.print(&format::stat_block(stat));
            }
        }
        Ok(())
    }

    fn add_auth(&mut self, scheme: &str, auth: &str) -> Result<(), Failure> {
        let req =
            Request::Auth { auth_type: 0, scheme: scheme.into(), auth: auth.as_bytes().to_vec() };
        self.session.call(&req).map(|_| ()).map_err(|e| match e {
            CallError::Zk(code) => Failure::Message(format!("KeeperErrorCode = {code:?}")),
            CallError::Io(text) => Failure::Message(text),
        })
    }

    fn who_am_i(&mut self) -> Result<(), Failure> {
        match self.call("/", &Request::WhoAmI)? {
            Response::WhoAmI(infos) => {
                self.print("Auth scheme: User\n");
                for info in infos {
                    self.print(&format!("{}: {}\n", info.auth_scheme, info.user));
                }
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    fn get_ephemerals(&mut self, path: &str) -> Result<(), Failure> {
        match self.call(path, &Request::GetEphemerals { prefix: path.into() })? {
            Response::GetEphemerals { mut paths } => {
                paths.sort();
                self.print(&format!("{}\n", format::java_list(&paths)));
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    fn all_children_number(&mut self, path: &str) -> Result<(), Failure> {
        match self.call(path, &Request::GetAllChildrenNumber { path: path.into() })? {
            Response::GetAllChildrenNumber { total } => {
                self.print(&format!("{total}\n"));
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    fn add_watch(&mut self, path: &str, mode: Option<&str>) -> Result<(), Failure> {
        let mode = match mode.unwrap_or("PERSISTENT_RECURSIVE") {
            "PERSISTENT" => 0,
            "PERSISTENT_RECURSIVE" => 1,
            other => return Err(Failure::Message(format!("Unsupported mode: {other}"))),
        };
        self.call(path, &Request::AddWatch { path: path.into(), mode }).map(|_| ())
    }
}

impl Call<'_> {
    /// `removewatches`: the session's watches of one kind on `path` (`-c` children, `-d` data,
    /// `-a` or nothing: any), printing the `ChildWatchRemoved`/`DataWatchRemoved` events the
    /// Java client raises. This client keeps no watch table, so for "any" it asks the server
    /// (checkWatches) which kinds exist; `-l` (remove locally while disconnected) is accepted
    /// and changes nothing.
    fn remove_watches(&mut self, path: &str, args: &Args) -> Result<(), Failure> {
        // WatcherType: 1 children, 2 data, 3 any.
        let kinds: Vec<(i32, &str)> = if args.has('c') {
            vec![(1, "ChildWatchRemoved")]
        } else if args.has('d') {
            vec![(2, "DataWatchRemoved")]
        } else {
            let mut present = Vec::new();
            for (kind, event) in [(1, "ChildWatchRemoved"), (2, "DataWatchRemoved")] {
                let check = Request::CheckWatches { path: path.into(), watcher_type: kind };
                if self.session.call(&check).is_ok() {
                    present.push((kind, event));
                }
            }
            if present.is_empty() {
                return Err(Failure::Message(format::error_message(ZkError::NoWatcher, path)));
            }
            present
        };
        let watcher_type = if kinds.len() == 1 { kinds[0].0 } else { 3 };
        self.call(path, &Request::RemoveWatches { path: path.into(), watcher_type })?;
        if self.print_watches {
            for (_, event) in kinds {
                self.print(&format::watch_removed_event(event, path));
            }
        }
        Ok(())
    }
}

fn parse_version(text: Option<&str>) -> Result<i32, Failure> {
    match text {
        None => Ok(-1),
        Some(v) => v.parse().map_err(|_| Failure::Message(format!("version {v} is not a number"))),
    }
}

fn unexpected(reply: &Response) -> Failure {
    Failure::Message(format!("unexpected reply {reply:?}"))
}

/// zkCli's usage text (`help`, and after an unknown command), on stderr.
pub fn usage() -> String {
    let mut text = String::from("ZooKeeper -server host:port cmd args\n");
    for spec in SPECS.iter().filter(|s| s.name != "help") {
        text.push_str(&format!("\t{}\n", spec.usage));
    }
    text
}

/// Names of every command, for tab completion.
pub fn command_names() -> impl Iterator<Item = &'static str> {
    SPECS.iter().map(|s| s.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_group_words_and_are_stripped() {
        assert_eq!(
            tokenize("create /a \"hello world\" 'x y'"),
            ["create", "/a", "hello world", "x y"]
        );
        assert_eq!(tokenize("  ls   / "), ["ls", "/"]);
        assert!(tokenize("   ").is_empty());
    }

    #[test]
    fn known_flags_are_flags_and_the_rest_is_positional() {
        let create = SPECS.iter().find(|s| s.name == "create").expect("create");
        let words = tokenize("-s -t 500 /a -1");
        let args = parse_args(create, &words).expect("parses");
        assert!(args.has('s'));
        assert!(!args.has('e'));
        assert_eq!(args.value('t'), Some("500"));
        assert_eq!(args.positional, ["/a", "-1"]);
        assert!(parse_args(create, &tokenize("/a -t")).is_err());
    }
}
