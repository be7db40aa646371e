//! Logging: stderr (text or JSON) plus one log file per run.
//!
//! Every event inside a run carries the run id (the `run` span's fields).
//! Each run's events are also written to
//! `<project>/logs/<session_id>/<run_id>.log`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::args::{Cli, LogFormat};
use crate::settings::Environment;

/// Keeps logging alive for the process (nothing to flush today; kept so
/// buffered writers can be added without changing callers).
pub struct LogGuard;

/// Installs the subscriber for this process: `--log-level`, else
/// `RUST_LOG` (from `environment`), else a quiet default; per-run log files
/// under `<project>/logs/`.
pub fn init(cli: &Cli, project: &Path, environment: &Environment) -> anyhow::Result<LogGuard> {
    let filter = match (&cli.log_level, environment.get("RUST_LOG")) {
        (Some(level), _) => EnvFilter::try_new(level)?,
        (None, Some(env)) => EnvFilter::try_new(env)?,
        _ => EnvFilter::try_new("warn,weft_session=info,weft_cli=info")?,
    };
    let run_logs = RunLogLayer {
        dir: project.join("logs"),
    };
    let registry = tracing_subscriber::registry()
        .with(run_logs.with_filter(tracing_subscriber::filter::LevelFilter::INFO));
    match cli.log_format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_target(false)
                    .with_filter(filter),
            )
            .try_init()?,
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_ansi(false)
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init()?,
    }
    Ok(LogGuard)
}

struct RunLogLayer {
    dir: PathBuf,
}

struct RunLog(Arc<Mutex<File>>);

#[derive(Default)]
struct Fields {
    map: HashMap<String, String>,
    message: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.map.insert(field.name().to_string(), format!("{value:?}"));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.map.insert(field.name().to_string(), value.to_string());
        }
    }
}

fn safe(component: &str) -> bool {
    !component.is_empty() && !component.contains(['/', '\\']) && component != ".." && component != "."
}

impl<S> Layer<S> for RunLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "run" {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let (Some(run_id), Some(session_id)) = (fields.map.get("run_id"), fields.map.get("session_id"))
        else {
            return;
        };
        if !safe(run_id) || !safe(session_id) {
            return;
        }
        let dir = self.dir.join(session_id);
        let file = std::fs::create_dir_all(&dir).and_then(|_| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{run_id}.log")))
        });
        if let (Ok(file), Some(span)) = (file, ctx.span(id)) {
            span.extensions_mut().insert(RunLog(Arc::new(Mutex::new(file))));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            let ext = span.extensions();
            let Some(RunLog(file)) = ext.get::<RunLog>() else {
                continue;
            };
            let mut fields = Fields::default();
            event.record(&mut fields);
            let mut line = format!(
                "{} {:>5} {}: {}",
                jiff::Timestamp::now(),
                event.metadata().level(),
                event.metadata().target(),
                fields.message
            );
            let mut extra: Vec<_> = fields.map.into_iter().collect();
            extra.sort();
            for (k, v) in extra {
                let _ = write!(line, " {k}={v}");
            }
            line.push('\n');
            if let Ok(mut f) = file.lock() {
                let _ = f.write_all(line.as_bytes());
            }
            break;
        }
    }
}
