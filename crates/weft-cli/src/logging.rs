//! Logging: stderr (text or JSON) plus one log file per session.
//!
//! Every event inside a run carries the run id (the `run` span's fields).
//! Each session's run events are also appended to
//! `<project>/logs/<session_id>.log`, one line per event, each line
//! starting with the run id (a multi-line message has the run id on every
//! line), so one file serves a whole sweep: creating a file per run made
//! the file system's inode allocation the main cost of a `weft multirun`.
//!
//! Beside it, `<project>/logs/<session_id>.index` tells where each run's
//! lines are: `RUN_ID START` when the run starts and `RUN_ID START END`
//! when it ends (byte offsets into the log; the last entry of a run wins).
//! A reader seeks to `START` and keeps the lines of that run up to `END`,
//! or up to the end of the file while the run has no `END` yet (it is
//! still running, or the process died): see [`run_log`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use weft_session::run_logs::safe_component as safe;
pub use weft_session::run_logs::{logs_dir, run_log};

use crate::args::{Cli, LogFormat};
use crate::settings::Environment;

/// Keeps logging alive for the process (nothing to flush today; kept so
/// buffered writers can be added without changing callers).
pub struct LogGuard;

/// Installs the subscriber for this process: `--log-level`, else
/// `RUST_LOG` (from `environment`), else a quiet default; per-session log
/// files under `<project>/logs/`.
pub fn init(cli: &Cli, project: &Path, environment: &Environment) -> anyhow::Result<LogGuard> {
    let filter = match (&cli.log_level, environment.get("RUST_LOG")) {
        (Some(level), _) => EnvFilter::try_new(level)?,
        (None, Some(env)) => EnvFilter::try_new(env)?,
        _ => EnvFilter::try_new("warn,weft_session=info,weft_cli=info")?,
    };
    // Each file has one writing process (offsets are counted in memory): a
    // `weft worker` writes its session's runs to files of its own, beside
    // its master's and its sibling workers'; readers look in all of them.
    let writer = matches!(cli.command, crate::args::Command::Worker(_))
        .then(|| format!("worker-{}", std::process::id()));
    let run_logs = RunLogLayer::new(logs_dir(project), writer);
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

/// How many session logs stay open between runs (the most recently
/// started ones), so sequential runs of a sweep do not reopen the files.
const KEPT_OPEN: usize = 4;

/// The tracing layer writing run events to the session log files.
struct RunLogLayer {
    dir: PathBuf,
    /// Names this process's own files (`<session>.<writer>.log`), when
    /// other processes write runs of the same sessions.
    writer: Option<String>,
    /// Session logs by session id: every one a run span still holds
    /// (weak), so a session never has two handles with different offsets.
    sessions: Mutex<HashMap<String, Weak<SessionLog>>>,
    /// The most recently used session logs, kept open (strong).
    recent: Mutex<std::collections::VecDeque<Arc<SessionLog>>>,
}

/// One session's log and index, shared by its run spans.
struct SessionLog {
    files: Mutex<SessionFiles>,
}

struct SessionFiles {
    log: File,
    index: File,
    /// The log's length: the offset of the next line.
    len: u64,
}

/// Stored in a run span's extensions.
struct RunLog {
    session: Arc<SessionLog>,
    run_id: String,
    start: u64,
}

#[derive(Default)]
struct Fields {
    map: Vec<(&'static str, String)>,
    message: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.map.push((field.name(), format!("{value:?}")));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.map.push((field.name(), value.to_string()));
        }
    }
}

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.map.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

impl RunLogLayer {
    fn new(dir: PathBuf, writer: Option<String>) -> Self {
        RunLogLayer {
            dir,
            writer,
            sessions: Mutex::new(HashMap::new()),
            recent: Mutex::new(std::collections::VecDeque::with_capacity(KEPT_OPEN + 1)),
        }
    }

    /// Marks a session log as the most recently used one.
    fn keep_open(&self, log: &Arc<SessionLog>) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.front().is_some_and(|r| Arc::ptr_eq(r, log)) {
            return;
        }
        recent.retain(|r| !Arc::ptr_eq(r, log));
        recent.push_front(Arc::clone(log));
        recent.truncate(KEPT_OPEN);
    }

    /// The session's open log, or opens (creates) its files.
    fn session(&self, session_id: &str) -> Option<Arc<SessionLog>> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = sessions.get(session_id).and_then(Weak::upgrade) {
            drop(sessions);
            self.keep_open(&open);
            return Some(open);
        }
        sessions.retain(|_, s| s.strong_count() > 0);
        let append = |ext: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(match &self.writer {
                    Some(w) => format!("{session_id}.{w}.{ext}"),
                    None => format!("{session_id}.{ext}"),
                }))
        };
        let open = || -> std::io::Result<SessionFiles> {
            std::fs::create_dir_all(&self.dir)?;
            let log = append("log")?;
            let index = append("index")?;
            let len = log.metadata()?.len();
            Ok(SessionFiles { log, index, len })
        };
        let log = Arc::new(SessionLog {
            files: Mutex::new(open().ok()?),
        });
        sessions.insert(session_id.to_string(), Arc::downgrade(&log));
        drop(sessions);
        self.keep_open(&log);
        Some(log)
    }
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
        let (Some(run_id), Some(session_id)) = (fields.get("run_id"), fields.get("session_id")) else {
            return;
        };
        if !safe(run_id) || !safe(session_id) {
            return;
        }
        let (Some(session), Some(span)) = (self.session(session_id), ctx.span(id)) else {
            return;
        };
        let start = {
            let mut files = session.files.lock().unwrap_or_else(|p| p.into_inner());
            let start = files.len;
            let _ = files.index.write_all(format!("{run_id} {start}\n").as_bytes());
            start
        };
        span.extensions_mut().insert(RunLog {
            session,
            run_id: run_id.to_string(),
            start,
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            let ext = span.extensions();
            let Some(run) = ext.get::<RunLog>() else {
                continue;
            };
            let mut fields = Fields::default();
            event.record(&mut fields);
            let mut text = format!(
                "{} {:>5} {}: {}",
                jiff::Timestamp::now(),
                event.metadata().level(),
                event.metadata().target(),
                fields.message
            );
            fields.map.sort();
            for (k, v) in &fields.map {
                let _ = write!(text, " {k}={v}");
            }
            let mut line = String::with_capacity(text.len() + run.run_id.len() + 2);
            for part in text.split('\n') {
                line.push_str(&run.run_id);
                line.push(' ');
                line.push_str(part);
                line.push('\n');
            }
            let mut files = run.session.files.lock().unwrap_or_else(|p| p.into_inner());
            if files.log.write_all(line.as_bytes()).is_ok() {
                files.len += line.len() as u64;
            }
            break;
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let ext = span.extensions();
        let Some(run) = ext.get::<RunLog>() else {
            return;
        };
        let mut files = run.session.files.lock().unwrap_or_else(|p| p.into_inner());
        let entry = format!("{} {} {}\n", run.run_id, run.start, files.len);
        let _ = files.index.write_all(entry.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` with only the run-log layer installed (thread-local
    /// default, no global state).
    fn with_layer(dir: &Path, f: impl FnOnce()) {
        let subscriber = tracing_subscriber::registry().with(
            RunLogLayer::new(dir.to_path_buf(), None)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        );
        tracing::subscriber::with_default(subscriber, f);
    }

    #[test]
    fn each_run_reads_back_exactly_its_own_lines_from_one_session_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("logs");
        let session = "2026-01-01T00.00.00.000000Z-aaaaaaaa";
        let (a, b, c) = (
            "2026-01-01T00.00.01.000000Z-00000001",
            "2026-01-01T00.00.02.000000Z-00000002",
            "2026-01-01T00.00.03.000000Z-00000003",
        );
        with_layer(&dir, || {
            let span_a = tracing::info_span!("run", run_id = %a, session_id = %session);
            let span_b = tracing::info_span!("run", run_id = %b, session_id = %session);
            span_a.in_scope(|| tracing::info!(attempt = 1, "run started"));
            // Interleaved with a concurrent run of the same session.
            span_b.in_scope(|| tracing::info!("b started"));
            span_a.in_scope(|| tracing::warn!("two\nlines"));
            span_a.in_scope(|| tracing::debug!("below the file's level"));
            drop(span_a);
            span_b.in_scope(|| tracing::info!("b still going"));
            // `c` stays open: no end offset yet.
            let span_c = tracing::info_span!("run", run_id = %c, session_id = %session);
            span_c.in_scope(|| tracing::info!("c running"));
            drop(span_b);
            assert_eq!(
                run_log(&dir, c).unwrap().unwrap().lines().count(),
                1,
                "an open run reads to the end of the file"
            );
            drop(span_c);
        });
        // One log and one index for the whole session, no file per run.
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(files, [format!("{session}.index"), format!("{session}.log")]);

        let a_log = run_log(&dir, a).unwrap().unwrap();
        let lines: Vec<&str> = a_log.lines().collect();
        assert_eq!(lines.len(), 3, "{a_log}");
        assert!(
            lines[0].ends_with("  INFO weft_cli::logging::tests: run started attempt=1"),
            "{a_log}"
        );
        assert!(
            lines[1].contains(" WARN ") && lines[1].ends_with(": two"),
            "{a_log}"
        );
        assert_eq!(lines[2], "lines");
        let b_log = run_log(&dir, b).unwrap().unwrap();
        assert_eq!(b_log.lines().count(), 2, "{b_log}");
        assert!(b_log.contains("b started") && b_log.contains("b still going") && !b_log.contains("two"));
        let c_log = run_log(&dir, c).unwrap().unwrap();
        assert!(
            c_log.contains("c running") && c_log.lines().count() == 1,
            "{c_log}"
        );
        assert!(
            run_log(&dir, "2026-01-01T00.00.04.000000Z-00000004")
                .unwrap()
                .is_none()
        );
        assert!(run_log(&tmp.path().join("nothing"), a).unwrap().is_none());
    }

    #[test]
    fn runs_of_later_sessions_are_found_and_a_broken_index_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let s1 = "2026-01-01T00.00.00.000000Z-aaaaaaaa";
        let s2 = "2026-01-02T00.00.00.000000Z-bbbbbbbb";
        let r1 = "2026-01-01T00.00.01.000000Z-00000001";
        let r2 = "2026-01-02T00.00.01.000000Z-00000002";
        with_layer(&dir, || {
            for (s, r) in [(s1, r1), (s2, r2)] {
                let span = tracing::info_span!("run", run_id = %r, session_id = %s);
                span.in_scope(|| tracing::info!(run = %r, "hello"));
            }
        });
        let l1 = run_log(&dir, r1).unwrap().unwrap();
        let l2 = run_log(&dir, r2).unwrap().unwrap();
        assert!(l1.contains(&format!("run={r1}")) && !l1.contains(r2), "{l1}");
        assert!(l2.contains(&format!("run={r2}")), "{l2}");
        std::fs::write(dir.join(format!("{s2}.index")), format!("{r2} x\n")).unwrap();
        let err = run_log(&dir, r2).unwrap_err();
        assert!(
            matches!(err, weft_session::SessionError::MalformedLogIndex { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn processes_that_write_runs_of_one_session_keep_their_own_files_and_every_run_is_found() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let session = "2026-01-01T00.00.00.000000Z-s";
        // Two "workers" interleave lines of their runs of one session; each
        // counts offsets in its own files, so none points into the other's.
        let workers: Vec<RunLogLayer> = ["worker-1", "worker-2"]
            .into_iter()
            .map(|w| RunLogLayer::new(dir.clone(), Some(w.to_string())))
            .collect();
        for round in 0..3 {
            for (k, layer) in workers.iter().enumerate() {
                let r = format!("2026-01-01T00.00.0{}.{k}00000Z-r", round + 1);
                let subscriber =
                    tracing_subscriber::registry().with(RunLogLayer::new(dir.clone(), layer.writer.clone()));
                tracing::subscriber::with_default(subscriber, || {
                    let span = tracing::info_span!("run", run_id = %r, session_id = %session);
                    span.in_scope(|| {
                        tracing::info!("first line of {r}");
                        tracing::info!("second line of {r}");
                    });
                });
            }
        }
        assert!(dir.join(format!("{session}.worker-1.log")).exists());
        assert!(dir.join(format!("{session}.worker-2.index")).exists());
        for round in 0..3 {
            for k in 0..2 {
                let r = format!("2026-01-01T00.00.0{}.{k}00000Z-r", round + 1);
                let log = run_log(&dir, &r).unwrap().unwrap();
                assert_eq!(log.lines().count(), 2, "{r}: {log}");
                assert!(log.contains(&format!("first line of {r}")), "{r}: {log}");
            }
        }
    }

    #[test]
    fn sequential_runs_share_one_open_log_and_old_sessions_reopen_correctly() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let layer = RunLogLayer::new(dir.clone(), None);
        let first = layer.session("s0").unwrap();
        drop(first);
        // Still open (kept), so the same handle comes back.
        let again = layer.session("s0").unwrap();
        assert!(
            layer
                .recent
                .lock()
                .unwrap()
                .iter()
                .any(|r| Arc::ptr_eq(r, &again))
        );
        drop(again);
        // More sessions than are kept open: the oldest is closed, and
        // reopening it continues at the end of its log.
        let sessions: Vec<String> = (0..KEPT_OPEN + 2)
            .map(|i| format!("2026-01-01T00.00.0{i}.000000Z-s"))
            .collect();
        let run = |s: &str, r: &str| {
            let subscriber = tracing_subscriber::registry().with(RunLogLayer::new(dir.clone(), None));
            tracing::subscriber::with_default(subscriber, || {
                let span = tracing::info_span!("run", run_id = %r, session_id = %s);
                span.in_scope(|| tracing::info!("line of {r}"));
            });
        };
        let shared = RunLogLayer::new(dir.clone(), None);
        let subscriber = tracing_subscriber::registry().with(shared);
        tracing::subscriber::with_default(subscriber, || {
            for (i, s) in sessions.iter().enumerate() {
                let r = format!("2026-01-01T00.00.0{i}.500000Z-r1");
                let span = tracing::info_span!("run", run_id = %r, session_id = %s);
                span.in_scope(|| tracing::info!("line of {r}"));
            }
            let (s, r) = (&sessions[0], "2026-01-01T00.00.09.000000Z-r2");
            let span = tracing::info_span!("run", run_id = %r, session_id = %s);
            span.in_scope(|| tracing::info!("line of {r}"));
        });
        run(&sessions[0], "2026-01-01T00.00.09.500000Z-r3");
        for r in [
            "2026-01-01T00.00.00.500000Z-r1",
            "2026-01-01T00.00.09.000000Z-r2",
            "2026-01-01T00.00.09.500000Z-r3",
        ] {
            let log = run_log(&dir, r).unwrap().unwrap();
            assert_eq!(log.lines().count(), 1, "{r}: {log}");
            assert!(log.contains(&format!("line of {r}")), "{r}: {log}");
        }
    }

    #[test]
    fn unsafe_ids_write_and_read_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        with_layer(tmp.path(), || {
            let span = tracing::info_span!("run", run_id = "../x", session_id = "s");
            span.in_scope(|| tracing::info!("nope"));
            let span = tracing::info_span!("run", run_id = "r", session_id = "a b");
            span.in_scope(|| tracing::info!("nope"));
        });
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
        assert!(run_log(tmp.path(), "../x").unwrap().is_none());
    }
}
