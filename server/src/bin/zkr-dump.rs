//! `zkr-dump`: looks inside a zkr data directory without changing it, as Apache ZooKeeper's
//! `zkTxnLogToolkit.sh` (TxnLogToolkit) and `zkSnapShotToolkit.sh` (SnapshotFormatter) do for
//! theirs.
//!
//! ```text
//! zkr-dump log [-d] FILE                      one line per txn, then where the valid log ends
//! zkr-dump snap [-d] [--json] FILE            the tree, the sessions and their ephemerals
//! zkr-dump dir [--data-log-dir DIR] DATADIR   every file, and what recovery would do
//! ```
//!
//! Read-only by construction: files are opened for reading only, and `dir` runs the server's
//! own recovery code (`storage::dry_run`) over a file system that keeps its removals and cuts in
//! memory. So the verdict on a damaged file is recovery's, not a second opinion.
//!
//! Exit codes: 0 nothing wrong; 1 damage the server refuses to start with (or a file that is
//! not ours, or cannot be read); 2 a usage error; 3 damage recovery works around by itself (a
//! torn last write it cuts off, an empty newest log file it removes, a bad snapshot it skips, a
//! damaged log file older than the snapshot it loads, which it never reads).
//! Problems go to stderr, one line each, naming the file and the byte offset; the dump goes to
//! stdout.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use zkr_core::proto::txn::decode_txn;
use zkr_core::snapshot::Snapshot;
use zkr_core::txn::{CreateKind, LoggedTxn, Txn};
use zkr_core::types::Acl;
use zkr_server::cli::format::perm_string;
use zkr_server::fs::{Fs, OsFs};
use zkr_server::storage::log::{self, ScanEnd};
use zkr_server::storage::{self, DryRunAction, Recovered, StorageError, snap};

/// What recovery does with a log file whose header is unusable.
const HEADER_POLICY: &str = "(recovery removes the file when it is the newest log file and \
    holds no valid record, refuses to start when it needs the file's records, and never reads \
    it when it is older than the snapshot it loads; `zkr-dump dir` tells which)";

/// Data bytes shown for a txn or znode without `-d`.
const DATA_PREVIEW_BYTES: usize = 32;

#[derive(Parser, Debug)]
#[command(
    name = "zkr-dump",
    version,
    about = "Looks inside a zkr data directory (txn logs, snapshots) without changing it.",
    after_help = "Exit codes: 0 nothing wrong; 1 damage the server refuses to start with, or a \
                  file that cannot be read or is not ours; 2 usage; 3 damage recovery works \
                  around by itself (a torn last write, an empty newest log, a bad snapshot \
                  skipped, a damaged log file older than the snapshot loaded)."
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One line per txn of a txn log file (`log.<hex zxid>`), then where its valid part ends.
    Log {
        /// The log file.
        file: PathBuf,
        /// Show each txn's whole data, not only its first bytes.
        #[arg(short = 'd', long = "data")]
        data: bool,
    },
    /// The tree, sessions and ephemerals of a snapshot file (`snapshot.<hex zxid>`).
    Snap {
        /// The snapshot file.
        file: PathBuf,
        /// Show each znode's data (escaped).
        #[arg(short = 'd', long = "data")]
        data: bool,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Every log and snapshot file of a data directory, the epoch files, and what recovery
    /// would load, replay, cut or refuse (nothing is changed).
    Dir {
        /// The server's `dataDir` (holding `version-2/` and the epoch files).
        data_dir: PathBuf,
        /// The server's `dataLogDir`, when the txn logs are kept apart.
        #[arg(long)]
        data_log_dir: Option<PathBuf>,
    },
}

/// How bad what was found is; the worst one decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    /// Nothing wrong.
    Clean,
    /// Damage recovery works around by itself (exit 3).
    Repaired,
    /// Damage the server refuses to start with, or an unreadable or foreign file (exit 1).
    Refused,
}

impl Verdict {
    fn exit_code(self) -> u8 {
        match self {
            Verdict::Clean => 0,
            Verdict::Refused => 1,
            Verdict::Repaired => 3,
        }
    }
}

/// Collects the problems found; each is printed to stderr as it is found.
#[derive(Debug)]
struct Findings {
    verdict: Verdict,
}

impl Findings {
    fn new() -> Findings {
        Findings { verdict: Verdict::Clean }
    }

    /// Reports a problem at `offset` of `path`.
    fn at(&mut self, verdict: Verdict, path: &Path, offset: usize, what: &str) {
        eprintln!("zkr-dump: {} at byte offset {offset}: {what}", path.display());
        self.verdict = self.verdict.max(verdict);
    }

    /// Reports a problem about a whole file or directory.
    fn file(&mut self, verdict: Verdict, path: &Path, what: &str) {
        eprintln!("zkr-dump: {}: {what}", path.display());
        self.verdict = self.verdict.max(verdict);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut findings = Findings::new();
    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = match &args.command {
        Command::Log { file, data } => dump_log(file, *data, &mut findings, &mut out),
        Command::Snap { file, data, json } => {
            dump_snap(file, *data, *json, &mut findings, &mut out)
        }
        Command::Dir { data_dir, data_log_dir } => {
            let log_dir = data_log_dir.as_deref().unwrap_or(data_dir);
            dump_dir(data_dir, log_dir, &mut findings, &mut out)
        }
    };
    let flushed = written.and_then(|()| out.flush());
    if let Err(e) = flushed {
        // A closed pipe (`zkr-dump log ... | head`) ends the dump quietly.
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("zkr-dump: cannot write the output: {e}");
            return ExitCode::from(Verdict::Refused.exit_code());
        }
    }
    ExitCode::from(findings.verdict.exit_code())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into())
}

/// The zxid in the file's name (`<prefix>.<hex>`), else the one at `at` in its header (a file
/// renamed or copied under another name is still read).
fn name_zxid(path: &Path, prefix: &str, bytes: &[u8], at: usize) -> Option<i64> {
    storage::parse_file_name(&file_name(path), prefix).or_else(|| {
        let field = bytes.get(at..at + 8)?;
        Some(i64::from_le_bytes(field.try_into().expect("8 bytes")))
    })
}

// ---------------------------------------------------------------------------------------------
// log

/// What the scan of one log file found, for `log` and `dir`.
struct LogSummary {
    /// Bytes holding data (the sparse preallocated tail is not read), and the file's length.
    data_len: usize,
    file_len: u64,
    records: Vec<log::ScannedRecord>,
    valid_len: usize,
    end: ScanEnd,
}

/// Reads and scans a log file; a file that cannot be read or has a bad header is reported.
fn scan_log(path: &Path, findings: &mut Findings) -> Option<(Vec<u8>, LogSummary)> {
    let (bytes, file_len) = match OsFs.read_data(path) {
        Ok(read) => read,
        Err(e) => {
            findings.file(Verdict::Refused, path, &format!("cannot read: {e}"));
            return None;
        }
    };
    if bytes.is_empty() {
        // A file of zeros only (sparse, preallocated) reads as no data at all.
        let empty = match file_len {
            0 => "empty file".to_string(),
            len => format!("no data in {len} bytes (all zeros)"),
        };
        let what = format!("{empty}: not a txn log {HEADER_POLICY}");
        findings.at(Verdict::Refused, path, 0, &what);
        return None;
    }
    let zxid = name_zxid(path, "log", &bytes, 8).unwrap_or(0);
    if let Err(problem) = log::check_header(&bytes, zxid) {
        let what = format!("{problem} {HEADER_POLICY}");
        findings.at(Verdict::Refused, path, 0, &what);
        return None;
    }
    let scan = log::scan(&bytes);
    let summary = LogSummary {
        data_len: bytes.len(),
        file_len,
        valid_len: scan.valid_len,
        end: scan.end,
        records: scan.records,
    };
    if let Some(first) = summary.records.first().filter(|r| r.zxid != zxid) {
        let what = format!("the first record has zxid {:#x}, not {zxid:#x}", first.zxid);
        findings.at(Verdict::Refused, path, first.offset, &what);
    }
    Some((bytes, summary))
}

/// Says how the valid part of the file ends: on stdout when it ends well, as a problem if not.
/// `newest`: whether it is the newest log file (None: not known, `log` on one file).
fn report_log_end(
    path: &Path,
    summary: &LogSummary,
    newest: Option<bool>,
    findings: &mut Findings,
) -> String {
    let at = summary.valid_len;
    match &summary.end {
        ScanEnd::Clean => format!("the valid log ends at byte {at}, the end of the file"),
        ScanEnd::ZeroTail => format!(
            "the valid log ends at byte {at}; zeros follow to byte {} (preallocated)",
            summary.file_len
        ),
        ScanEnd::Torn { what } => {
            let (verdict, policy) = match newest {
                Some(true) => (Verdict::Repaired, "recovery cuts it off here"),
                Some(false) => {
                    (Verdict::Refused, "not the newest log file, so recovery refuses to start")
                }
                None => (
                    Verdict::Repaired,
                    "recovery cuts it off here when this is the newest log file holding records, \
                     refuses to start when it needs this file's records otherwise, and never \
                     reads it when it is older than the snapshot it loads (`zkr-dump dir` tells \
                     which)",
                ),
            };
            findings.at(verdict, path, at, &format!("torn last write ({what}): {policy}"));
            format!("the valid log ends at byte {at}, before a torn last write")
        }
        ScanEnd::Corrupt { what, resumes_at } => {
            let what = format!(
                "{what}, yet a valid record follows at offset {resumes_at}: corruption, not a \
                 torn write; recovery refuses to start"
            );
            findings.at(Verdict::Refused, path, at, &what);
            format!("the valid log ends at byte {at}, at corruption")
        }
        ScanEnd::OutOfOrder { offset, zxid, previous } => {
            let what = format!(
                "zxid {zxid:#x} does not increase over {previous:#x}; recovery refuses to start"
            );
            findings.at(Verdict::Refused, path, *offset, &what);
            format!("the valid log ends at byte {at}, at a record out of order")
        }
    }
}

fn dump_log(
    path: &Path,
    full_data: bool,
    findings: &mut Findings,
    out: &mut dyn Write,
) -> io::Result<()> {
    let Some((bytes, summary)) = scan_log(path, findings) else {
        return Ok(());
    };
    writeln!(
        out,
        "{}: zkr txn log, format {}, {} bytes ({} of data)",
        path.display(),
        log::LOG_FORMAT_VERSION,
        summary.file_len,
        summary.data_len
    )?;
    for record in &summary.records {
        match decode_txn(&bytes[record.payload.clone()]) {
            Ok(txn) if txn.header.zxid.0 == record.zxid => {
                writeln!(out, "{}", txn_line(&txn, full_data))?;
            }
            Ok(txn) => {
                let what = format!(
                    "the record of zxid {:#x} holds a txn with zxid {}; the server refuses to \
                     start",
                    record.zxid, txn.header.zxid
                );
                findings.at(Verdict::Refused, path, record.offset, &what);
            }
            Err(e) => {
                let what = format!(
                    "the record of zxid {:#x} does not decode as a txn ({e}); the server \
                     refuses to start",
                    record.zxid
                );
                findings.at(Verdict::Refused, path, record.offset, &what);
            }
        }
    }
    let end = report_log_end(path, &summary, None, findings);
    writeln!(out, "{}; {end}", records_summary(&summary.records))
}

/// `N txns, zxid A..B` (or `no txn`).
fn records_summary(records: &[log::ScannedRecord]) -> String {
    match (records.first(), records.last()) {
        (Some(first), Some(last)) => {
            let n = records.len();
            let s = if n == 1 { "" } else { "s" };
            format!("{n} txn{s}, zxid {:#x}..{:#x}", first.zxid, last.zxid)
        }
        _ => "no txn".to_string(),
    }
}

/// One txn as a line: zxid, time, session, cxid, type and content, as TxnLogToolkit prints.
fn txn_line(t: &LoggedTxn, full_data: bool) -> String {
    let h = &t.header;
    format!(
        "{} {} session {} cxid {:#x} {}",
        h.zxid,
        iso_time(h.time_ms),
        h.session_id,
        h.cxid,
        describe(&t.txn, h.session_id.0, full_data)
    )
}

/// The txn's type and content in readable form.
fn describe(txn: &Txn, session: i64, full_data: bool) -> String {
    match txn {
        Txn::CreateSession { timeout_ms } => format!("createSession timeout={timeout_ms}"),
        Txn::CloseSession { paths_to_delete } => {
            format!("closeSession ephemerals=[{}]", paths_to_delete.join(","))
        }
        Txn::Create { path, data, acl, kind, parent_cversion } => {
            let (name, kind) = match kind {
                CreateKind::Persistent => ("create", "persistent".to_string()),
                CreateKind::Ephemeral => {
                    ("create", format!("ephemeral ephemeralOwner={:#x}", session as u64))
                }
                CreateKind::Container => ("createContainer", "container".to_string()),
                CreateKind::Ttl(ttl) => ("createTTL", format!("ttl={ttl}")),
            };
            format!(
                "{name} {path} {} acl={} {kind} parentCversion={parent_cversion}",
                data_text(data.as_deref(), full_data),
                acl_text(acl)
            )
        }
        Txn::Delete { path } => format!("delete {path}"),
        Txn::DeleteContainer { path } => format!("deleteContainer {path}"),
        Txn::SetData { path, data, version } => {
            format!("setData {path} {} version={version}", data_text(data.as_deref(), full_data))
        }
        Txn::SetAcl { path, acl, version } => {
            format!("setACL {path} acl={} version={version}", acl_text(acl))
        }
        Txn::Check { path, version } => format!("check {path} version={version}"),
        Txn::Error { err } => format!("error err={err}"),
        Txn::Multi(parts) => {
            let parts: Vec<String> =
                parts.iter().map(|p| describe(p, session, full_data)).collect();
            format!("multi [{}]", parts.join("; "))
        }
    }
}

/// `data=null`, or `data=LEN:"escaped bytes"` (the first bytes only unless `full`).
fn data_text(data: Option<&[u8]>, full: bool) -> String {
    match data {
        None => "data=null".to_string(),
        Some(bytes) => format!("data={}:{}", bytes.len(), escaped(bytes, full)),
    }
}

/// The bytes in quotes, escaped as Rust escapes ASCII; `...` after them when cut short.
fn escaped(bytes: &[u8], full: bool) -> String {
    let shown = if full { bytes } else { &bytes[..bytes.len().min(DATA_PREVIEW_BYTES)] };
    let more = if shown.len() < bytes.len() { "..." } else { "" };
    format!("\"{}\"{more}", shown.escape_ascii())
}

/// The ACL as zkCli's `-acl` argument: `scheme:id:perms,...`.
fn acl_text(acl: &[Acl]) -> String {
    let entries: Vec<String> = acl
        .iter()
        .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, perm_string(a.perms)))
        .collect();
    entries.join(",")
}

/// Milliseconds since the epoch as `2026-12-06T00:01:02.345Z` (UTC).
fn iso_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = zkr_server::cli::format::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        ms.rem_euclid(1000)
    )
}

// ---------------------------------------------------------------------------------------------
// snap

/// Reads, checks and decodes a snapshot file as recovery and the server's load do. A framing
/// problem makes recovery skip the file (`Repaired`); a blob that does not decode, in a file
/// whose framing holds, makes the server refuse to start (`Refused`).
fn load_snap(path: &Path, findings: &mut Findings) -> Option<Snapshot> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            findings.file(Verdict::Refused, path, &format!("cannot read: {e}"));
            return None;
        }
    };
    let zxid = name_zxid(path, "snapshot", &bytes, 8).unwrap_or(0);
    let blob = match snap::decode_snapshot_located(bytes, zxid) {
        Ok(blob) => blob,
        Err((offset, what)) => {
            let what = format!("{what} (recovery skips this snapshot and loads an older one)");
            findings.at(Verdict::Repaired, path, offset, &what);
            return None;
        }
    };
    // `decode` never panics on bad input; its last step is the tree's self-check, a check of
    // this code. A failure there is still reported as a verdict on the file, not a crash.
    let decoded = std::panic::catch_unwind(|| zkr_core::snapshot::decode(&blob));
    let what = match decoded {
        Ok(Ok(snapshot)) if snapshot.zxid.0 == zxid => return Some(snapshot),
        Ok(Ok(snapshot)) => format!("the blob holds zxid {}, not {zxid:#x}", snapshot.zxid),
        Ok(Err(e)) => format!("the blob does not decode: {e}"),
        Err(_) => "the decoded tree fails its self-check".to_string(),
    };
    let what = format!("{what}; the server refuses to start from this snapshot");
    findings.at(Verdict::Refused, path, snap::SNAP_HEADER_LEN, &what);
    None
}

fn dump_snap(
    path: &Path,
    full_data: bool,
    json: bool,
    findings: &mut Findings,
    out: &mut dyn Write,
) -> io::Result<()> {
    let Some(snapshot) = load_snap(path, findings) else {
        return Ok(());
    };
    if json {
        let text = serde_json::to_string_pretty(&snap_json(&snapshot, full_data))
            .expect("a JSON value serializes");
        return writeln!(out, "{text}");
    }
    let tree = &snapshot.tree;
    let sessions = snapshot.sessions.len();
    writeln!(
        out,
        "{}: zkr snapshot, format {}, zxid {}, {} znodes, {sessions} session{}, digest {:#x}",
        path.display(),
        snap::SNAP_FORMAT_VERSION,
        snapshot.zxid,
        tree.node_count(),
        if sessions == 1 { "" } else { "s" },
        tree.digest()
    )?;
    writeln!(out, "sessions:")?;
    for (id, timeout_ms) in &snapshot.sessions {
        let ephemerals = tree.ephemerals(*id);
        writeln!(out, "  {id} timeout={timeout_ms} ephemerals=[{}]", ephemerals.join(","))?;
    }
    writeln!(out, "znodes:")?;
    for (path, node) in tree.nodes() {
        let s = node.client_stat();
        let mut line = format!(
            "  {path} cZxid={:#x} ctime={} mZxid={:#x} mtime={} pZxid={:#x} cversion={} \
             dataVersion={} aclVersion={} ephemeralOwner={:#x} numChildren={} dataLength={} \
             acl={}",
            s.czxid,
            iso_time(s.ctime),
            s.mzxid,
            iso_time(s.mtime),
            s.pzxid,
            s.cversion,
            s.version,
            s.aversion,
            s.ephemeral_owner as u64,
            s.num_children,
            s.data_length,
            acl_text(&node.acl)
        );
        if full_data {
            let data = node.data.as_deref();
            line.push_str(
                &data.map_or(" data=null".into(), |d| format!(" data={}", escaped(d, true))),
            );
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn snap_json(snapshot: &Snapshot, full_data: bool) -> serde_json::Value {
    use serde_json::json;
    let tree = &snapshot.tree;
    let sessions: Vec<serde_json::Value> = snapshot
        .sessions
        .iter()
        .map(|(id, timeout_ms)| {
            json!({"id": id.to_string(), "timeout_ms": timeout_ms,
                "ephemerals": tree.ephemerals(*id)})
        })
        .collect();
    let nodes: Vec<serde_json::Value> = tree
        .nodes()
        .map(|(path, node)| {
            let s = node.client_stat();
            let acl: Vec<serde_json::Value> = node
                .acl
                .iter()
                .map(|a| {
                    let perms = perm_string(a.perms);
                    json!({"scheme": a.id.scheme, "id": a.id.id, "perms": perms})
                })
                .collect();
            let mut value = json!({
                "path": path, "czxid": format!("{:#x}", s.czxid), "ctime": s.ctime,
                "mzxid": format!("{:#x}", s.mzxid), "mtime": s.mtime,
                "pzxid": format!("{:#x}", s.pzxid), "cversion": s.cversion,
                "version": s.version, "aversion": s.aversion,
                "ephemeral_owner": format!("{:#x}", s.ephemeral_owner as u64),
                "num_children": s.num_children, "data_length": s.data_length, "acl": acl,
            });
            if full_data {
                // Text when it is UTF-8, else hex: JSON strings cannot hold arbitrary bytes.
                let data = node.data.as_deref();
                value["data"] = match data.map(std::str::from_utf8) {
                    None => serde_json::Value::Null,
                    Some(Ok(text)) => json!(text),
                    Some(Err(_)) => json!({"hex": hex(data.expect("some"))}),
                };
            }
            value
        })
        .collect();
    json!({
        "zxid": snapshot.zxid.to_string(),
        "digest": format!("{:#x}", tree.digest()),
        "znode_count": tree.node_count(),
        "sessions": sessions,
        "znodes": nodes,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// dir

fn dump_dir(
    data_dir: &Path,
    data_log_dir: &Path,
    findings: &mut Findings,
    out: &mut dyn Write,
) -> io::Result<()> {
    for dir in [data_dir, data_log_dir] {
        if !dir.is_dir() {
            findings.file(Verdict::Refused, dir, "not a directory");
            return Ok(());
        }
    }
    let snap_dir = data_dir.join(storage::VERSION_DIR);
    let log_dir = data_log_dir.join(storage::VERSION_DIR);
    writeln!(out, "snapshots and epochs in {}", data_dir.display())?;
    writeln!(out, "txn logs in {}", data_log_dir.display())?;
    let epochs = zkr_server::epochs::read(&OsFs, data_dir);
    match &epochs {
        Ok((accepted, current)) => {
            let present = ["acceptedEpoch", "currentEpoch"].map(|f| data_dir.join(f).is_file());
            let note = if present == [false, false] { " (no epoch files: 0)" } else { "" };
            writeln!(out, "acceptedEpoch {accepted}, currentEpoch {current}{note}")?;
        }
        Err(what) => findings.file(Verdict::Refused, data_dir, &format!("epochs: {what}")),
    }
    if !snap_dir.is_dir() && !log_dir.is_dir() {
        writeln!(out, "no {} directory: a server started here begins empty", storage::VERSION_DIR)?;
        return Ok(());
    }
    let snapshots = list_snapshots(&snap_dir, out)?;
    let logs = list_logs(&log_dir, out)?;
    let (recovered, actions) = storage::dry_run(data_dir, data_log_dir);
    writeln!(out, "recovery would:")?;
    for action in &actions {
        match action {
            DryRunAction::Remove(path) => writeln!(out, "  remove {}", path.display())?,
            DryRunAction::Cut { path, len } => {
                writeln!(out, "  cut {} to {len} bytes (a torn last write)", path.display())?;
            }
        }
    }
    let recovered = match recovered {
        Ok(recovered) => recovered,
        Err(e) => {
            writeln!(out, "  refuse to start")?;
            report_refusal(&e, findings);
            return writeln!(out, "verdict: the server would refuse to start (see stderr)");
        }
    };
    report_repairs(&actions, &snapshots, &logs, &recovered, findings);
    report_start(&recovered, &log_dir, epochs.ok(), findings, out)
}

/// `snapshot.*` files, newest last, with their checks; returns `(zxid, path, problem)`.
fn list_snapshots(
    snap_dir: &Path,
    out: &mut dyn Write,
) -> io::Result<Vec<(i64, PathBuf, Option<String>)>> {
    writeln!(out, "snapshots ({}):", snap_dir.display())?;
    let mut found = Vec::new();
    for name in sorted_names(snap_dir) {
        let path = snap_dir.join(&name);
        if name.starts_with("snapshot.") && name.ends_with(snap::TMP_SUFFIX) {
            writeln!(out, "  {name}: unfinished (a crash while it was written)")?;
            continue;
        }
        let Some(zxid) = storage::parse_file_name(&name, "snapshot") else {
            continue;
        };
        let checked = snap::check_snapshot_file(&OsFs, &path, zxid);
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        match &checked {
            Ok(_) => writeln!(out, "  {name}: zxid {zxid:#x}, {size} bytes, framing and crc hold")?,
            Err(what) => writeln!(out, "  {name}: zxid {zxid:#x}, {size} bytes, INVALID: {what}")?,
        }
        found.push((zxid, path, checked.err()));
    }
    found.sort_by_key(|(zxid, _, _)| *zxid);
    Ok(found)
}

/// A log file as the listing found it: first zxid, path, and where and how it is damaged.
type ListedLog = (i64, PathBuf, Option<(usize, String)>);

/// `log.*` files in zxid order with their ranges, ends and gaps.
fn list_logs(log_dir: &Path, out: &mut dyn Write) -> io::Result<Vec<ListedLog>> {
    writeln!(out, "txn logs ({}):", log_dir.display())?;
    let mut logs: Vec<(i64, PathBuf)> = sorted_names(log_dir)
        .into_iter()
        .filter_map(|n| storage::parse_file_name(&n, "log").map(|z| (z, log_dir.join(n))))
        .collect();
    logs.sort();
    let mut listed = Vec::new();
    let mut previous_last: Option<(i64, String)> = None;
    for (first_zxid, path) in logs {
        let summary = match scan_log_quietly(&path) {
            Ok(summary) => summary,
            Err(what) => {
                writeln!(out, "  {}: {what}", file_name(&path))?;
                listed.push((first_zxid, path, Some((0, what))));
                continue;
            }
        };
        let (end, damage) = match &summary.end {
            ScanEnd::Clean => ("clean end".to_string(), None),
            ScanEnd::ZeroTail => ("zero tail (preallocated)".to_string(), None),
            ScanEnd::Torn { what } => (format!("TORN: {what}"), Some(what.clone())),
            ScanEnd::Corrupt { what, resumes_at } => {
                let what = format!("{what}; a valid record follows at {resumes_at}");
                (format!("CORRUPT: {what}"), Some(what))
            }
            ScanEnd::OutOfOrder { zxid, previous, .. } => {
                let what = format!("{zxid:#x} after {previous:#x}");
                (format!("OUT OF ORDER: {what}"), Some(what))
            }
        };
        if let (Some((last, last_file)), Some(first)) = (&previous_last, summary.records.first())
            && !storage::zxid_continues(*last, first.zxid)
        {
            writeln!(
                out,
                "  gap: no file holds the txns between {last:#x} ({last_file}) and {:#x}",
                first.zxid
            )?;
        }
        writeln!(
            out,
            "  {}: {}, {} bytes, valid to byte {}, {end}",
            file_name(&path),
            records_summary(&summary.records),
            summary.file_len,
            summary.valid_len
        )?;
        if let Some(last) = summary.records.last() {
            previous_last = Some((last.zxid, file_name(&path)));
        }
        listed.push((first_zxid, path, damage.map(|what| (summary.valid_len, what))));
    }
    Ok(listed)
}

/// `scan_log` without reporting problems: the listing shows them, and the verdict is recovery's.
fn scan_log_quietly(path: &Path) -> Result<LogSummary, String> {
    let (bytes, file_len) = OsFs.read_data(path).map_err(|e| format!("cannot read: {e}"))?;
    let zxid = name_zxid(path, "log", &bytes, 8).unwrap_or(0);
    log::check_header(&bytes, zxid).map_err(|p| format!("BAD HEADER: {p}"))?;
    let scan = log::scan(&bytes);
    Ok(LogSummary {
        data_len: bytes.len(),
        file_len,
        valid_len: scan.valid_len,
        end: scan.end,
        records: scan.records,
    })
}

/// The directory's entry names, sorted; none when it cannot be listed.
fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = OsFs
        .list_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Recovery's error, as the server would print it, with the file and offset it names.
fn report_refusal(e: &StorageError, findings: &mut Findings) {
    match e {
        StorageError::CorruptLog { path, offset, what } => {
            let what = format!("{what}; recovery refuses to start (not a torn last write)");
            findings.at(Verdict::Refused, path, *offset as usize, &what);
        }
        StorageError::Gap { path, offset, previous, found } => {
            let what = format!(
                "zxid {found:#x} does not follow {previous:#x}: txns are missing; recovery \
                 refuses to start"
            );
            findings.at(Verdict::Refused, path, *offset as usize, &what);
        }
        StorageError::Io { path, action, source } => {
            findings.file(Verdict::Refused, path, &format!("cannot {action}: {source}"));
        }
        StorageError::Locked { path } => findings.file(Verdict::Refused, path, "locked"),
        StorageError::SnapshotNotRebuilt { path, zxid, what } => {
            let what = format!(
                "invalid, and the txn log cannot rebuild the state at {zxid:#x}: {what}; \
                 recovery refuses to start"
            );
            findings.file(Verdict::Refused, path, &what);
        }
    }
}

/// What recovery would repair by itself: each cut, removal and skipped snapshot is reported.
fn report_repairs(
    actions: &[DryRunAction],
    snapshots: &[(i64, PathBuf, Option<String>)],
    logs: &[ListedLog],
    recovered: &Recovered,
    findings: &mut Findings,
) {
    for action in actions {
        match action {
            DryRunAction::Cut { path, len } => {
                let what = "torn last write of the newest log file: recovery cuts it off here";
                findings.at(Verdict::Repaired, path, *len as usize, what);
            }
            DryRunAction::Remove(path) if logs.iter().any(|(_, p, _)| p == path) => {
                let what = "the newest log file holds no record: recovery removes it";
                findings.file(Verdict::Repaired, path, what);
            }
            DryRunAction::Remove(path) => {
                findings.file(Verdict::Repaired, path, "unfinished snapshot: recovery removes it");
            }
        }
    }
    let loaded = recovered.snapshot.as_ref().map_or(i64::MIN, |s| s.zxid);
    // Recovery reads the log files from the newest one starting at or before the snapshot on;
    // damage in older files does not stop it (a DIFF to a learner from them would fail).
    let start = logs.iter().rposition(|(first, _, _)| *first <= loaded.max(0)).unwrap_or(0);
    for (_, path, damage) in &logs[..start] {
        if let Some((offset, what)) = damage {
            let what = format!(
                "{what}; recovery does not read this file (older than the snapshot it loads)"
            );
            findings.at(Verdict::Repaired, path, *offset, &what);
        }
    }
    for (zxid, path, problem) in snapshots {
        if let Some(problem) = problem.as_ref().filter(|_| *zxid > loaded) {
            let what = format!("{problem}: recovery skips this snapshot and loads an older one");
            findings.file(Verdict::Repaired, path, &what);
        }
    }
}

/// What the server would load and replay, after decoding both as it does; any failure there is
/// the server refusing to start.
fn report_start(
    recovered: &Recovered,
    log_dir: &Path,
    epochs: Option<(u32, u32)>,
    findings: &mut Findings,
    out: &mut dyn Write,
) -> io::Result<()> {
    match &recovered.snapshot {
        Some(s) => {
            writeln!(out, "  load {} (zxid {:#x})", s.path.display(), s.zxid)?;
            if let Some(snapshot) = load_snap(&s.path, findings) {
                let (znodes, sessions) = (snapshot.tree.node_count(), snapshot.sessions.len());
                let s = if sessions == 1 { "" } else { "s" };
                writeln!(out, "    {znodes} znodes, {sessions} session{s}")?;
            }
        }
        None => writeln!(out, "  load no snapshot: start from the empty tree")?,
    }
    let txns = &recovered.txns;
    match (txns.first(), txns.last()) {
        (Some((first, _)), Some((last, _))) => {
            writeln!(out, "  replay {} txns, zxid {first:#x}..{last:#x}", txns.len())?;
        }
        _ => writeln!(out, "  replay no txn")?,
    }
    for (zxid, bytes) in txns {
        let problem = match decode_txn(bytes) {
            Ok(txn) if txn.header.zxid.0 == *zxid => continue,
            Ok(txn) => format!("holds a txn with zxid {}", txn.header.zxid),
            Err(e) => format!("does not decode as a txn: {e}"),
        };
        let what = format!("log record {zxid:#x} {problem}; the server refuses to start");
        findings.file(Verdict::Refused, log_dir, &what);
    }
    if let Some((accepted, current)) = epochs
        && current > accepted
    {
        let what = format!("currentEpoch {current} is newer than acceptedEpoch {accepted}");
        findings.file(Verdict::Refused, Path::new("acceptedEpoch/currentEpoch"), &what);
    }
    let last = recovered.last_zxid();
    writeln!(out, "  start at zxid {last:#x}")?;
    let verdict = match findings.verdict {
        Verdict::Clean => "nothing to repair",
        Verdict::Repaired => "recovery works around the damage (see stderr) and starts",
        Verdict::Refused => "the server would refuse to start (see stderr)",
    };
    writeln!(out, "verdict: {verdict}")
}
