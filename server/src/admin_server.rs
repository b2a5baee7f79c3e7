//! ZooKeeper's AdminServer: `GET <admin.commandURL>/<command>` on
//! `admin.serverAddress:admin.serverPort` answers a JSON object with ZooKeeper 3.8's field
//! names, plus `command` (the primary name) and `error` (null, or why it failed);
//! `GET <admin.commandURL>` lists the commands as ZooKeeper's HTML page does. Off unless
//! `admin.enableServer=true` (see `config::AdminServerConfig` for why).
//!
//! Commands that read the node or the shell's counters go to the driver as `Event::Admin` and
//! are computed by `admin::command_json` from the same view the four-letter words use; the
//! rest (configuration text, environment, members) are known here from the configuration.
//! HTTP is kept as small as `metrics`' endpoint: one request per connection, GET only,
//! `Connection: close`, a bounded request head and a deadline for it. Every answer is
//! 200 with a JSON body, as ZooKeeper 3.8's (an unknown command too); a non-GET is 405.

use std::net::SocketAddr;

use crate::signal;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::admin::{self, Map};
use crate::client_net::Event;
use crate::config::ServerConfig;
use crate::http::{Request, Response};

/// What the endpoint answers without asking the driver, fixed at startup.
#[derive(Clone, Debug)]
pub struct Static {
    command_url: String,
    initial_configuration: String,
    voting_view: Map,
    /// Each member's host and (quorum, election, client) addresses, by id.
    members: std::collections::BTreeMap<u64, (String, [String; 3])>,
    snapshot_dir: std::path::PathBuf,
}

impl Static {
    /// From the configuration.
    pub fn new(cfg: &ServerConfig) -> Static {
        let mut members = Map::new();
        let mut addresses = std::collections::BTreeMap::new();
        for (id, spec) in &cfg.servers {
            let client = match &spec.client {
                Some((host, port)) => format!("{}:{port}", host.as_deref().unwrap_or("0.0.0.0")),
                None => format!("{}:{}", cfg.client_port_address, cfg.client_port),
            };
            let quorum = format!("{}:{}", spec.host, spec.quorum_port);
            let election = format!("{}:{}", spec.host, spec.election_port);
            addresses.insert(*id, (spec.host.clone(), [quorum, election, client]));
            let role = match spec.peer_type {
                crate::config::PeerType::Participant => "participant",
                crate::config::PeerType::Observer => "observer",
            };
            let mut text =
                format!("{}:{}:{}:{role}", spec.host, spec.quorum_port, spec.election_port);
            if let Some((host, port)) = &spec.client {
                text.push_str(&format!(";{}:{port}", host.as_deref().unwrap_or("0.0.0.0")));
            }
            members.insert(id.to_string(), text.into());
        }
        Static {
            command_url: cfg.admin.command_url.clone(),
            initial_configuration: cfg.initial_text.clone(),
            voting_view: members,
            members: addresses,
            snapshot_dir: cfg.data_dir.join(crate::storage::VERSION_DIR),
        }
    }

    /// Adds what the driver's answer lacks: the leader's host (`leader_ip`) and a member's
    /// own addresses (`zabstate`), from the `server.N` lines.
    fn complete(&self, name: &str, out: &mut Map) {
        let id_of = |key: &str| out.get(key).and_then(Value::as_u64);
        match name {
            "leader" => {
                let host = id_of("leader_id").and_then(|id| self.members.get(&id));
                out.insert("leader_ip".into(), host.map_or("", |(h, _)| h.as_str()).into());
            }
            "zabstate" => {
                let Some((_, [quorum, election, client])) =
                    id_of("myid").and_then(|id| self.members.get(&id))
                else {
                    return;
                };
                out.insert("quorum_address".into(), quorum.clone().into());
                out.insert("election_address".into(), election.clone().into());
                out.insert("client_address".into(), client.clone().into());
            }
            _ => {}
        }
    }

    /// The answer to a command that needs no driver, if `name` (a primary name) is one.
    fn answer(&self, name: &str) -> Option<Result<Map, String>> {
        let mut out = Map::new();
        match name {
            "ruok" => {}
            "initial_configuration" => {
                out.insert(name.into(), self.initial_configuration.clone().into());
            }
            "voting_view" => {
                out.insert("current_config".into(), Value::Object(self.voting_view.clone()));
            }
            "environment" => {
                for (key, value) in admin::environment() {
                    out.insert(key, value.into());
                }
            }
            "system_properties" => out = system_properties(),
            "get_trace_mask" | "set_trace_mask" => {
                out.insert("tracemask".into(), admin::DEFAULT_TRACE_MASK.into());
            }
            "last_snapshot" => out = last_snapshot(&self.snapshot_dir),
            _ => return None,
        }
        Some(Ok(out))
    }
}

/// No Java here: the operating-system properties a JVM would report, and every `-Dkey=value`
/// in `SERVER_JVMFLAGS`/`JVMFLAGS` (which are system properties to ZooKeeper).
fn system_properties() -> Map {
    let mut out = Map::new();
    for (key, value) in admin::environment() {
        if key.starts_with("os.") || key.starts_with("user.") {
            out.insert(key, value.into());
        }
    }
    out.insert("file.separator".into(), "/".into());
    out.insert("line.separator".into(), "\n".into());
    out.insert("path.separator".into(), ":".into());
    for var in ["SERVER_JVMFLAGS", "JVMFLAGS"] {
        let flags = std::env::var(var).unwrap_or_default();
        for word in flags.split_whitespace() {
            if let Some((key, value)) = word.strip_prefix("-D").and_then(|d| d.split_once('=')) {
                out.insert(key.to_string(), value.into());
            }
        }
    }
    out
}

/// ZooKeeper's `last_snapshot`: the newest snapshot's zxid in hex (no `0x`) and its file's
/// modification time in seconds; zxid `0` and timestamp 0 before the first one.
fn last_snapshot(dir: &std::path::Path) -> Map {
    let mut newest: Option<(u64, u64)> = None;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(zxid) = name.strip_prefix("snapshot.") else {
            continue;
        };
        let Ok(zxid) = u64::from_str_radix(zxid, 16) else {
            continue;
        };
        let modified = entry.metadata().and_then(|m| m.modified()).ok();
        let seconds = modified
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        if newest.is_none_or(|(best, _)| zxid >= best) {
            newest = Some((zxid, seconds));
        }
    }
    let (zxid, seconds) = newest.unwrap_or((0, 0));
    let mut out = Map::new();
    out.insert("zxid".into(), format!("{zxid:x}").into());
    out.insert("timestamp".into(), seconds.into());
    out
}

/// Where to serve, if `admin.enableServer` is on.
pub fn endpoint(cfg: &ServerConfig) -> Option<SocketAddr> {
    cfg.admin.enabled.then(|| SocketAddr::new(cfg.admin.address, cfg.admin.port))
}

/// Accepts requests until shutdown.
pub async fn serve(
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    fixed: Static,
    shutdown: signal::Receiver<bool>,
) {
    crate::http::serve(listener, shutdown, move |request| {
        answer(request, events.clone(), fixed.clone())
    })
    .await
}

async fn answer(
    request: Request,
    events: mpsc::UnboundedSender<Event>,
    fixed: Static,
) -> Option<Response> {
    let text = |status, body: String| Response { status, content_type: "text/plain", body };
    let path = request.path.trim_end_matches('/');
    if request.method != "GET" {
        let body = format!("HTTP method {} is not supported\n", request.method);
        return Some(text("405 Method Not Allowed", body));
    }
    if path == fixed.command_url {
        let body = listing(&fixed.command_url);
        return Some(Response { status: "200 OK", content_type: "text/html", body });
    }
    let Some(name) = path.strip_prefix(&format!("{}/", fixed.command_url)) else {
        return Some(text("404 Not Found", format!("try {}\n", fixed.command_url)));
    };
    let body = run(name, &events, &fixed).await?;
    Some(Response { status: "200 OK", content_type: "application/json", body })
}

/// Runs one command; `None` if the server is shutting down.
async fn run(name: &str, events: &mpsc::UnboundedSender<Event>, fixed: &Static) -> Option<String> {
    let primary = admin::admin_command(name);
    let result = match primary {
        None => Err(format!("Unknown command: {name}")),
        Some(primary) => match fixed.answer(primary) {
            Some(result) => result,
            None => {
                let (reply, answer) = oneshot::channel();
                events.send(Event::Admin { command: primary, reply }).ok()?;
                answer.await.ok()?
            }
        },
    };
    let (mut body, error) = match result {
        Ok(mut body) => {
            fixed.complete(primary.unwrap_or(name), &mut body);
            (body, Value::Null)
        }
        Err(error) => (Map::new(), Value::String(error)),
    };
    body.insert("command".into(), primary.unwrap_or(name).into());
    body.insert("error".into(), error);
    Some(serde_json::to_string_pretty(&Value::Object(body)).expect("JSON of a Map") + "\n")
}

/// ZooKeeper's command list: a link per primary name.
fn listing(command_url: &str) -> String {
    let links = admin::ADMIN_COMMANDS.iter().map(|names| {
        let name = names[0];
        format!("<a href=\"{command_url}/{name}\">{name}</a>\n<br/>\n")
    });
    links.collect()
}
