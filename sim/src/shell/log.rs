//! The servers' tracing logs for one seed (`sim-shell --seed N --log FILTER`): the lines the
//! real `zkr-server` writes to stderr (driver turns, snapshots, truncations, quorum connections)
//! and madsim's own (kill, restart, clog), each headed by the simulated time and the node that
//! wrote it, never the wall clock, so that two runs of a seed print the same bytes.
//!
//! ```text
//!     2.412907s s3 INFO zkr_server::quorum: quorum connection refused remote=10.0.0.1:2888 ...
//! ```
//!
//! The subscriber is process-wide and made on the calling thread, before any seed's runtime: a
//! `HashMap` made on a seed's thread would draw std's hash keys there and move the keys the
//! server's maps get, and with them the seed's trace. `tests/sim-shell.sh` holds a seed's
//! trace hash and verdict equal with and without `--log`, and its log equal in two processes.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

/// Sends every log line at or above `filter` (`RUST_LOG`'s syntax: `debug`,
/// `zkr_server=debug,info`) to stderr for the rest of the process. Errs on a bad filter, or if a
/// subscriber is installed already.
pub fn install(filter: &str) -> Result<(), String> {
    let filter =
        EnvFilter::builder().parse(filter).map_err(|e| format!("--log {filter:?}: {e}"))?;
    let lines = tracing_subscriber::fmt::layer()
        .event_format(SimFormat)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let names = NodeNames.with_filter(tracing_subscriber::filter::filter_fn(NodeNames::wanted));
    let subscriber = tracing_subscriber::registry().with(names).with(lines);
    tracing::subscriber::set_global_default(subscriber).map_err(|e| e.to_string())
}

thread_local! {
    /// The name of the node whose task runs (madsim enters a `task` span, child of its node's
    /// `node` span, for each poll), or `None` between tasks. One runtime per thread: a seed's.
    static RUNNING: RefCell<Vec<Option<Arc<str>>>> = const { RefCell::new(Vec::new()) };
}

/// The name a `node` span was given, kept in the extensions of it and of its `task` spans.
struct NodeName(Arc<str>);

/// Keeps each node's name with its spans, and the running node's in [`RUNNING`].
struct NodeNames;

impl NodeNames {
    /// Only madsim's `node` and `task` spans, whatever the lines' filter lets through.
    fn wanted(meta: &tracing::Metadata<'_>) -> bool {
        meta.is_span()
            && meta.target().starts_with("madsim")
            && (meta.name() == "node" || meta.name() == "task")
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for NodeNames {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let name = if attrs.metadata().name() == "node" {
            let mut visitor = NameVisitor(None);
            attrs.record(&mut visitor);
            visitor.0.map(Arc::from)
        } else {
            // A task: its node's name (the node span is its explicit parent).
            span.parent().and_then(|node| node.extensions().get::<NodeName>().map(|n| n.0.clone()))
        };
        if let Some(name) = name {
            span.extensions_mut().insert(NodeName(name));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let name = ctx.span(id).and_then(|s| s.extensions().get::<NodeName>().map(|n| n.0.clone()));
        RUNNING.with(|running| running.borrow_mut().push(name));
    }

    fn on_exit(&self, _id: &Id, _ctx: Context<'_, S>) {
        RUNNING.with(|running| running.borrow_mut().pop());
    }
}

struct NameVisitor(Option<String>);

impl Visit for NameVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "name" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "name" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_string());
        }
    }
}

/// `<simulated s> <node> <LEVEL> <target>: <message> <fields>`; the node is `main` for the
/// harness's own task (madsim's `madsim-main`), `-` outside any node.
struct SimFormat;

impl<S, N> FormatEvent<S, N> for SimFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = madsim::time::TimeHandle::try_current().map(|t| t.elapsed());
        match now {
            Some(now) => write!(writer, "{:>4}.{:06}s ", now.as_secs(), now.subsec_micros())?,
            None => write!(writer, "{:>11} ", "-")?,
        }
        let node = RUNNING.with(|running| running.borrow().last().cloned().flatten());
        let node = match node.as_deref() {
            Some("madsim-main") => "main",
            Some(name) => name,
            None => "-",
        };
        let meta = event.metadata();
        write!(writer, "{node} {} {}: ", meta.level(), meta.target())?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
