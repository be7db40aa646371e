//! `weft multirun`: a sweep of runs in one service session.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

use serde_json::Value;
use weft_runner::{Hook, RunContext, RunResult, RunStatus};
use weft_server::{CreateSession, LauncherConfig, Server, ServerConfig, SystemClock};
use weft_session::{
    CloseMode, Policy, Project, ProjectCode, RunConfig, ServiceOptions, ServiceSession, SessionOptions,
    StoreChoice,
};
use weft_store::{RunRecord, Store};

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
    let launcher = super::serve::launcher_config(&args.launcher)?;
    if launcher != LauncherConfig::InProcess {
        let mut template = filter_config(&args.run.filter);
        template.load_versions = load_versions(&args.run.load_versions)?;
        template.runner = settings.runner.clone();
        template.timeout = args.run.timeout.clone();
        template.only_missing_outputs = args.run.only_missing_outputs;
        let configs: Vec<RunConfig> = combos
            .into_iter()
            .map(|params| RunConfig {
                runtime_params: params,
                ..template.clone()
            })
            .collect();
        return on_workers(
            edge,
            args,
            Workers {
                launcher,
                session: session_opts,
                store: settings.store.clone(),
                configs,
                policy,
                varying,
            },
            bar,
            io,
        );
    }
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
    template.timeout = args.run.timeout.clone();
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
    let mut results = supervised.value?;
    for r in &mut results {
        service.fail_paused(r);
    }
    report(&results, &varying, args, interrupted, io)
}

/// A sweep to run on a launcher's workers.
struct Workers {
    launcher: LauncherConfig,
    session: SessionOptions,
    store: StoreChoice,
    configs: Vec<RunConfig>,
    policy: Policy,
    varying: Vec<String>,
}

/// The sweep through a session master over `launcher` (`--launcher
/// process|ray|slurm|kubernetes`): the same server session, durable queue and
/// [`weft_server::ProcessWorker`] as `weft serve`, here in this process
/// and without HTTP. Each run's spec is archived with its queue entry;
/// records land in the run store as they do under `weft serve`; the table
/// and `--json` are those of an in-process multirun. Differences: fail-fast
/// cancels the runs not yet finished (recorded `cancelled`, not `skipped`),
/// and the run store cannot be disabled.
fn on_workers(
    edge: &Edge<'_>,
    args: &MultirunArgs,
    w: Workers,
    bar: Option<indicatif::ProgressBar>,
    io: &mut Io<'_>,
) -> anyhow::Result<u8> {
    let url = match &w.store {
        StoreChoice::Disabled => {
            return Err(UsageError::new(format!(
                "--launcher {:?}: the runs are recorded by the run store; drop --no-store",
                args.launcher.launcher
            ))
            .into());
        }
        StoreChoice::Url(url) => Some(url.clone()),
        StoreChoice::ProjectDefault => None,
    };
    let total = w.configs.len();
    let slots = args
        .run
        .max_workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let max_attempts = if w.policy.fail_fast {
        1
    } else {
        w.policy.retries + 1
    };
    if let Some(bar) = &bar {
        bar.set_length(total as u64);
    }
    let mut config = ServerConfig::new(&edge.project);
    config.session_options = SessionOptions {
        store: StoreChoice::Disabled,
        ..w.session
    };
    config.max_workers = slots;
    config.launcher = w.launcher;
    // One command, one session: no other server's runs are taken over, and
    // no lease of this one expires while it runs.
    config.lease = Duration::from_secs(7 * 86_400);
    config.idle_ttl = Duration::from_secs(7 * 86_400);
    let env = config.session_options.env.clone();
    let signals = io.signals;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let end = runtime.block_on(async {
        let store = match &url {
            Some(url) => Store::open(url).await?,
            None => Store::open_project_default(&edge.project).await?,
        };
        let server = Server::new(config, store.clone(), Arc::new(SystemClock));
        let (view, _) = server
            .create_session(CreateSession {
                env,
                max_concurrency: Some(u32::try_from(slots).unwrap_or(u32::MAX)),
                ..CreateSession::default()
            })
            .await?;
        let session_id = view["id"].as_str().unwrap_or_default().to_string();
        let run_ids = match server.submit(&session_id, w.configs, max_attempts, None).await {
            Ok(ids) => ids,
            Err(e) => {
                // A session whose workers failed to start can end before the
                // sweep is submitted: that is the sweep's failure, not a refusal.
                let failed_reason = server.live(&session_id).and_then(|s| {
                    s.state()
                        .is_terminal()
                        .then(|| {
                            s.view()["termination_reason"]["message"]
                                .as_str()
                                .map(str::to_string)
                        })
                        .flatten()
                });
                server.terminate(&session_id, CloseMode::Cancel).await.ok();
                server.shutdown().await;
                return match failed_reason {
                    Some(reason) => Ok(SweepEnd::NotAccepted(reason)),
                    None => Err(anyhow::Error::new(e).context("the sweep was refused")),
                };
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        if signals {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                super::serve::wait_for_signal().await;
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let mut done: Vec<Option<RunRecord>> = vec![None; total];
        let mut finished = 0;
        let mut cancelling = false;
        let mut cancel_sent = false;
        let mut failure: Option<(String, Instant)> = None;
        let filter = weft_store::RunFilter {
            session_id: Some(session_id.clone()),
            ..Default::default()
        };
        while finished < total {
            // One read of the session's runs per round, whatever the sweep's size.
            let mut ended: std::collections::HashMap<String, RunRecord> = store
                .list_runs(&filter)
                .await?
                .into_iter()
                // Nobody answers a sweep's questions: a run waiting for
                // input is over for the sweep (the session's close cancels it).
                .filter(|r| r.status.is_terminal() || r.status == RunStatus::InputRequired)
                .map(|r| (r.run_id.clone(), r))
                .collect();
            for (i, id) in run_ids.iter().enumerate() {
                if done[i].is_some() {
                    continue;
                }
                let Some(r) = ended.remove(id) else { continue };
                finished += 1;
                if !args.run.json {
                    let line = status_line(&r, total, &w.varying);
                    match &bar {
                        Some(bar) => bar.println(line),
                        None => writeln!(io.err, "{line}")?,
                    }
                }
                if let Some(bar) = &bar {
                    bar.set_position(finished as u64);
                }
                if r.status == RunStatus::Failed && w.policy.fail_fast {
                    cancelling = true;
                }
                done[i] = Some(r);
            }
            let interrupted = stop.load(std::sync::atomic::Ordering::SeqCst);
            if failure.is_none() {
                // The session failed (its workers did not start): its runs
                // would wait forever.
                let live = server.live(&session_id);
                if live.as_ref().is_none_or(|s| s.state().is_terminal()) {
                    let reason = live
                        .and_then(|s| {
                            s.view()["termination_reason"]["message"]
                                .as_str()
                                .map(str::to_string)
                        })
                        .unwrap_or_else(|| "the session ended".into());
                    failure = Some((reason, Instant::now()));
                }
            }
            // Checked after the session's state: a failed session whose runs
            // all ended (cancelled) before this round still reports why.
            if finished == total {
                break;
            }
            if (cancelling || interrupted || failure.is_some()) && !cancel_sent {
                cancel_sent = true;
                for (i, id) in run_ids.iter().enumerate() {
                    if done[i].is_none() {
                        let _ = server.cancel_run(id).await;
                    }
                }
            }
            if let Some((_, since)) = &failure
                && since.elapsed() > Duration::from_secs(30)
            {
                // Runs the failed session never ended: reported as they stand.
                for (i, id) in run_ids.iter().enumerate() {
                    if done[i].is_none() {
                        done[i] = store.get_run(id).await?;
                    }
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let interrupted = stop.load(std::sync::atomic::Ordering::SeqCst);
        let _ = server
            .terminate(
                &session_id,
                if interrupted {
                    CloseMode::Cancel
                } else {
                    CloseMode::Wait
                },
            )
            .await;
        server.shutdown().await;
        store.flush().await?;
        let records = done.into_iter().flatten().collect::<Vec<_>>();
        Ok::<_, anyhow::Error>(SweepEnd::Ran(
            records,
            interrupted,
            failure.map(|(reason, _)| reason),
        ))
    })?;
    let (records, interrupted, failure) = match end {
        SweepEnd::Ran(records, interrupted, failure) => (records, interrupted, failure),
        SweepEnd::NotAccepted(reason) => {
            if args.run.json {
                write_json(io.out, &Vec::<Value>::new())?;
            } else {
                writeln!(
                    io.err,
                    "{total} runs: 0 succeeded, {total} not (the session accepted none)"
                )?;
            }
            writeln!(io.err, "the sweep's session failed: {reason}")?;
            return Ok(EXIT_FAILURE);
        }
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let results: Vec<RunResult> = records.into_iter().map(result_of).collect();
    let code = report(&results, &w.varying, args, interrupted, io)?;
    if let Some(reason) = failure {
        writeln!(io.err, "the sweep's session failed: {reason}")?;
        return Ok(if code == EXIT_OK { EXIT_FAILURE } else { code });
    }
    Ok(code)
}

/// How a sweep through the service ended.
enum SweepEnd {
    /// Its runs were accepted: their records, whether a signal stopped the
    /// sweep, and why the session failed if it did.
    Ran(Vec<RunRecord>, bool, Option<String>),
    /// The session failed (its workers did not start) before it accepted the runs.
    NotAccepted(String),
}

/// A recorded run as the result an in-process multirun reports.
fn result_of(r: RunRecord) -> RunResult {
    let end = r.end_time.or(r.updated_at).unwrap_or_else(jiff::Timestamp::now);
    RunResult {
        run_id: r.run_id,
        session_id: r.session_id,
        run_index: r.run_index as usize,
        status: r.status,
        outputs: r
            .outputs
            .into_iter()
            .map(|(k, v)| (k, weft_pipeline::Data::new(v)))
            .collect(),
        saved_versions: r.saved_versions,
        error: r.error,
        pending_input: r.pending_input,
        start_time: r.start_time.unwrap_or(end),
        end_time: end,
        attempts: r.attempts,
        env: r.env,
        runtime_params: r.runtime_params,
        pipeline_names: r.pipeline_names,
        filters: r.filters,
        load_versions: r.load_versions,
        node_timings: r.node_timings,
        skipped_nodes: Vec::new(),
        warnings: Vec::new(),
        metrics: r.metrics,
        scoped_outputs: Default::default(),
        cleaned_up: Vec::new(),
        process_peak_rss_bytes: r.process_peak_rss_bytes,
        validation: r.validation.unwrap_or_default(),
    }
}

/// The line an in-process multirun prints when a run ends.
fn status_line(r: &RunRecord, total: usize, varying: &[String]) -> String {
    let shown: Vec<String> = varying
        .iter()
        .map(|k| {
            format!(
                "{k}={}",
                lookup_dotted(&r.runtime_params, k)
                    .map(compact)
                    .unwrap_or_default()
            )
        })
        .collect();
    format!(
        "[{}/{}] {} {} in {:.3}s {}{}",
        r.run_index as usize + 1,
        total,
        r.run_id,
        r.status,
        r.duration_ms.unwrap_or(0.0) / 1e3,
        shown.join(" "),
        r.error
            .as_ref()
            .map(|e| format!("  {}", e.message.lines().next().unwrap_or("")))
            .unwrap_or_default()
    )
}

/// The table (or JSON) and the summary of a finished sweep.
fn report(
    results: &[RunResult],
    varying: &[String],
    args: &MultirunArgs,
    interrupted: bool,
    io: &mut Io<'_>,
) -> anyhow::Result<u8> {
    let failed = results
        .iter()
        .filter(|r| r.status != RunStatus::Succeeded)
        .count();
    if let Some(path) = &args.run.metrics_file {
        super::write_metrics_file(path, results)?;
    }
    if args.run.json {
        let list: Vec<Value> = results.iter().map(|r| result_json(r, varying)).collect();
        write_json(io.out, &list)?;
    } else {
        write!(io.out, "{}", multirun_table(results, varying, &args.metrics))?;
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
