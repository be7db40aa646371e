//! `weft run`: one session, one run.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};

use weft_pipeline::{CancelToken, Node};
use weft_runner::{Hook, RunContext, RunResult};
use weft_session::{Project, ProjectCode, Session, SessionError};

use super::interrupt::supervise;
use super::*;
use crate::error::{EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK};

/// Shows progress: a bar on a terminal, plain lines (sent to the CLI's
/// stderr writer) otherwise.
struct ProgressHook {
    bar: Option<indicatif::ProgressBar>,
    total: AtomicUsize,
    done: AtomicUsize,
    lines: Sender<String>,
}

impl Hook for ProgressHook {
    fn after_node_run(
        &self,
        _ctx: &RunContext,
        node: &Node,
        _i: &[weft_pipeline::Data],
        _o: &[weft_pipeline::Data],
    ) {
        let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(node.name().to_string());
                bar.inc(1);
            }
            None => {
                let total = self.total.load(Ordering::SeqCst);
                // The receiver is gone only once the command is over.
                let _ = self.lines.send(format!("[{done}/{total}] {} done", node.name()));
            }
        }
    }
}

pub(super) fn progress_bar(template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

pub(super) fn run(edge: &Edge<'_>, args: &RunArgs, code: ProjectCode, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let params = runtime_params(&args.params)?;
    let project = Project::open(&edge.project)?;
    let settings =
        crate::settings::resolve(&args.session, args.runner.as_deref(), edge.environment, &project)?;
    let provenance = crate::settings::provenance(edge.environment, Some(project.root()), &edge.command);
    let mut options = session_options(&args.session, &settings, params, code, provenance)?;
    let mut config = filter_config(&args.filter);
    config.load_versions = load_versions(&args.load_versions)?;
    config.runner = settings.runner.clone();
    config.max_workers = args.max_workers;
    config.timeout = args.timeout.clone();
    config.only_missing_outputs = args.only_missing_outputs;
    if let Some(path) = &args.inputs {
        config.inputs = super::read_inputs(path)?;
    }
    config.answers = super::read_answers(&args.answers)?;
    let bar = (io.progress_bars && !args.json)
        .then(|| progress_bar("{bar:30} {pos}/{len} nodes  {elapsed_precise}  {msg}"));
    let (lines, received) = channel();
    let wake = lines.clone();
    let hook = Arc::new(ProgressHook {
        bar: bar.clone(),
        total: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        lines,
    });
    if !args.json {
        options.hooks.push(hook.clone());
    }
    let mut session = Session::create(&edge.project, options)?;
    let prepared = session.prepare(&config)?;
    let total = prepared.pipeline().len();
    hook.total.store(total, Ordering::SeqCst);
    drop(hook);
    if let Some(bar) = &bar {
        bar.set_length(total as u64);
    }
    // The session call: replaceable as one expression.
    let cancel = CancelToken::new();
    let mut supervised = supervise(io, wake.clone(), received, &|_| cancel.cancel(), || {
        session.run_prepared(prepared, &cancel)
    })?;
    // A run that asks for input: answered on the terminal, then resumed
    // under its run id (again while it keeps asking).
    while let Err(SessionError::InputRequired(paused)) = &supervised.value
        && !supervised.interrupted
    {
        let Some(pending) = paused.pending_input.clone() else {
            break;
        };
        let run_id = paused.run_id.clone();
        let asked = match &bar {
            Some(bar) => bar.suspend(|| super::ask(io, &run_id, &pending)),
            None => super::ask(io, &run_id, &pending),
        };
        let Some(answer) = asked? else { break };
        if let Some(bar) = &bar {
            bar.set_position(0);
        }
        // Progress lines are for terminals without a bar; the prompt only
        // appears on a terminal, where the bar shows the resumed run.
        let (lines, received) = channel();
        drop(lines);
        let answers = std::collections::BTreeMap::from([(pending.node.clone(), answer)]);
        supervised = supervise(io, wake.clone(), received, &|_| cancel.cancel(), || {
            session.resume(answers, &cancel)
        })?;
    }
    session.close();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let interrupted = supervised.interrupted;
    if let Some(path) = &args.metrics_file {
        let result = match &supervised.value {
            Ok(result) => Some(result),
            Err(SessionError::InputRequired(result) | SessionError::RunFailed(result)) => {
                Some(result.as_ref())
            }
            Err(_) => None,
        };
        super::write_metrics_file(path, result)?;
    }
    match supervised.value {
        Ok(result) => {
            if args.json {
                write_json(io.out, &result_json(&result, &[]))?;
            } else {
                writeln!(
                    io.err,
                    "run {} succeeded in {:.3}s ({} nodes)",
                    result.run_id,
                    result.duration().as_secs_f64(),
                    total
                )?;
            }
            Ok(if interrupted { EXIT_INTERRUPTED } else { EXIT_OK })
        }
        Err(SessionError::InputRequired(result)) => {
            if args.json {
                write_json(io.out, &result_json(&result, &[]))?;
            }
            let pending = result.pending_input.as_ref();
            let node = pending.map_or("?", |p| p.node.as_str());
            writeln!(
                io.err,
                "error: run {} waits for input at node `{node}`: {}",
                result.run_id,
                pending.map_or("", |p| p.prompt.as_str())
            )?;
            if let Some(p) = pending {
                writeln!(io.err, "  the answer must match the JSON Schema {}", p.schema)?;
            }
            writeln!(
                io.err,
                "  answer on a terminal, or with --input {node}=FILE (a JSON file); the run is recorded failed"
            )?;
            Ok(if interrupted {
                EXIT_INTERRUPTED
            } else {
                EXIT_FAILURE
            })
        }
        Err(SessionError::RunFailed(result)) => {
            if args.json {
                write_json(io.out, &result_json(&result, &[]))?;
            }
            report_failure(io.err, &result)?;
            if interrupted {
                writeln!(io.err, "interrupted: run {} {}", result.run_id, result.status)?;
                return Ok(EXIT_INTERRUPTED);
            }
            Ok(EXIT_FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

fn report_failure(err: &mut dyn Write, result: &RunResult) -> anyhow::Result<()> {
    writeln!(err, "error: run {} {}", result.run_id, result.status)?;
    if let Some(failure) = &result.error {
        for (i, cause) in failure.causes.iter().enumerate() {
            if i == 0 {
                writeln!(err, "  {cause}")?;
            } else {
                writeln!(err, "  caused by: {cause}")?;
            }
        }
    }
    Ok(())
}
