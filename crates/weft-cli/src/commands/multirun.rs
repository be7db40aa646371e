//! `weft multirun`: a sweep of runs in one service session.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Sender, channel};

use serde_json::Value;
use weft_runner::{Hook, RunContext, RunResult, RunStatus};
use weft_session::{CloseMode, Policy, Project, ProjectCode, RunConfig, ServiceOptions, ServiceSession};

use super::interrupt::supervise;
use super::run::progress_bar;
use super::*;
use crate::error::{EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK};
use crate::sweep::Sweep;

pub(super) fn multirun(
    edge: &Edge<'_>,
    args: &MultirunArgs,
    code: ProjectCode,
    io: &mut Io<'_>,
) -> anyhow::Result<u8> {
    let mut sweep =
        Sweep::parse(&args.run.params).map_err(|e| UsageError::caused_by("invalid --params", e))?;
    if let Some(file) = &args.sweep_file {
        sweep.extend(Sweep::from_file(file).map_err(|e| UsageError::caused_by("invalid --sweep-file", e))?);
    }
    let varying = sweep.varying_keys();
    let combos = sweep
        .expand(args.max_runs)
        .map_err(|e| UsageError::caused_by("invalid sweep", e))?;
    let policy: Policy = args
        .policy
        .parse()
        .map_err(|e| UsageError::new(format!("--policy: {e}")))?;
    let policy = Policy {
        cleanup_on_error: args.cleanup_on_error,
        ..policy
    };
    let project = Project::open(&edge.project)?;
    let settings = crate::settings::resolve(
        &args.run.session,
        args.run.runner.as_deref(),
        edge.environment,
        &project,
    )?;
    let provenance = crate::settings::provenance(edge.environment, Some(project.root()), &edge.command);
    let mut session_opts = session_options(&args.run.session, &settings, Value::Null, code, provenance)?;
    let bar = (io.progress_bars && !args.run.json)
        .then(|| progress_bar("{bar:30} {pos}/{len} runs  {elapsed_precise}  ETA {eta}"));
    let (lines, received) = channel();
    let wake = lines.clone();
    if !args.run.json {
        session_opts.hooks.push(Arc::new(RunStatusLines {
            bar: bar.clone(),
            params: varying.clone(),
            lines,
        }));
    } else {
        drop(lines);
    }
    let service = ServiceSession::create(
        &edge.project,
        ServiceOptions {
            session: session_opts,
            max_workers: args.run.max_workers,
            history_limit: None,
        },
    )?;
    let mut template = filter_config(&args.run.filter);
    template.load_versions = load_versions(&args.run.load_versions)?;
    template.runner = settings.runner.clone();
    template.only_missing_outputs = args.run.only_missing_outputs;
    if let Some(path) = &args.run.inputs {
        template.inputs = super::read_inputs(path)?;
    }
    template.answers = super::read_answers(&args.run.answers)?;
    // run_all prepares every run once (all problems at once, nothing
    // started): no separate validation pass here.
    let configs: Vec<RunConfig> = combos
        .into_iter()
        .map(|params| RunConfig {
            runtime_params: params,
            ..template.clone()
        })
        .collect();
    let total = configs.len();
    if let Some(bar) = &bar {
        bar.set_length(total as u64);
    }
    let progress = |done: usize, _total: usize| {
        if let Some(bar) = &bar {
            bar.set_position(done as u64);
        }
    };
    // The session calls, replaceable as a whole. On SIGINT/SIGTERM, close
    // with cancel: no run starts afterwards (those are recorded `skipped`),
    // runs in flight stop at their next node boundary (`cancelled`).
    let stop_batch = |_: &AtomicBool| service.close(CloseMode::Cancel);
    let supervised = supervise(io, wake, received, &stop_batch, || {
        service.run_all(configs, &policy, Some(&progress))
    })?;
    let interrupted = supervised.interrupted;
    service.close(if interrupted {
        CloseMode::Cancel
    } else {
        CloseMode::Wait
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let results = supervised.value?;
    let failed = results
        .iter()
        .filter(|r| r.status != RunStatus::Succeeded)
        .count();
    if args.run.json {
        let list: Vec<Value> = results.iter().map(|r| result_json(r, &varying)).collect();
        write_json(io.out, &list)?;
    } else {
        write!(io.out, "{}", multirun_table(&results, &varying, &args.metrics))?;
        io.out.flush()?;
        writeln!(
            io.err,
            "{} runs: {} succeeded, {} not",
            results.len(),
            results.len() - failed,
            failed
        )?;
    }
    if interrupted {
        writeln!(
            io.err,
            "interrupted: {failed} of {} planned runs did not complete",
            results.len()
        )?;
        return Ok(EXIT_INTERRUPTED);
    }
    Ok(if failed > 0 { EXIT_FAILURE } else { EXIT_OK })
}

/// Prints one status line per finished run (above the progress bar on a terminal).
struct RunStatusLines {
    bar: Option<indicatif::ProgressBar>,
    params: Vec<String>,
    lines: Sender<String>,
}

impl Hook for RunStatusLines {
    fn after_run(&self, ctx: &RunContext, result: &RunResult) {
        let params = &result.runtime_params;
        let shown: Vec<String> = self
            .params
            .iter()
            .map(|k| {
                format!(
                    "{k}={}",
                    lookup_dotted(params, k).map(compact).unwrap_or_default()
                )
            })
            .collect();
        let line = format!(
            "[{}/{}] {} {} in {:.3}s {}{}",
            ctx.run_index + 1,
            ctx.total_runs,
            result.run_id,
            result.status,
            result.duration().as_secs_f64(),
            shown.join(" "),
            result
                .error
                .as_ref()
                .map(|e| format!("  {}", e.message.lines().next().unwrap_or("")))
                .unwrap_or_default()
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            // The receiver is gone only once the command is over.
            None => {
                let _ = self.lines.send(line);
            }
        }
    }
}

pub(super) fn multirun_table(results: &[RunResult], varying: &[String], metrics: &[String]) -> String {
    let mut header = vec!["run_id".to_string()];
    header.extend(varying.iter().cloned());
    header.extend(["status".to_string(), "duration".to_string()]);
    header.extend(metrics.iter().cloned());
    header.push("error".into());
    let mut rows = vec![header];
    for r in results {
        let params = &r.runtime_params;
        let mut row = vec![r.run_id.clone()];
        for k in varying {
            row.push(lookup_dotted(params, k).map(compact).unwrap_or_default());
        }
        row.push(r.status.to_string());
        row.push(format!("{:.3}s", r.duration().as_secs_f64()));
        for m in metrics {
            row.push(
                r.outputs
                    .get(m)
                    .map(|d| compact(&data_json(d)))
                    .unwrap_or_default(),
            );
        }
        row.push(weft_store::report::error_cell(r.error.as_ref()));
        rows.push(row);
    }
    weft_store::report::table(&rows)
}
