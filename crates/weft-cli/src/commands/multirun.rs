//! `weft multirun`: a sweep of runs in one service session.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::Value;
use weft_runner::{Hook, RunContext, RunResult, RunStatus};
use weft_session::{Policy, ProjectCode, RunConfig, ServiceOptions, ServiceSession};

use super::*;
use crate::sweep::{expand_sweeps, parse_assignments, parse_sweep_file};

pub(super) fn multirun(
    project: &std::path::Path,
    args: &MultirunArgs,
    code: ProjectCode,
) -> anyhow::Result<u8> {
    let mut assignments = parse_assignments(&args.run.params, true).context("invalid --params")?;
    if let Some(file) = &args.sweep_file {
        for (k, v) in parse_sweep_file(file)? {
            match assignments.iter_mut().find(|(key, _)| *key == k) {
                Some(entry) => entry.1 = v,
                None => assignments.push((k, v)),
            }
        }
    }
    let varying: Vec<String> = assignments
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k.clone())
        .collect();
    let combos = expand_sweeps(&assignments);
    let policy: Policy = args.policy.parse().map_err(anyhow::Error::msg)?;
    let policy = Policy {
        cleanup_on_error: args.cleanup_on_error,
        ..policy
    };
    let mut session_opts = session_options(project, &args.run.session, Value::Null, code, false)?;
    let bar = (std::io::stderr().is_terminal() && !args.run.json).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} runs  {elapsed_precise}  ETA {eta}",
            )
            .expect("valid template"),
        );
        bar
    });
    if !args.run.json {
        session_opts.hooks.push(Arc::new(RunStatusLines {
            bar: bar.clone(),
            params: varying.clone(),
        }));
    }
    let service = ServiceSession::create(
        project,
        ServiceOptions {
            session: session_opts,
            max_workers: args.run.max_workers,
            history_limit: None,
        },
    )?;
    let mut template = filter_config(&args.run.filter);
    template.load_versions = load_versions(&args.run.load_versions)?;
    template.runner = args.run.runner.clone();
    template.only_missing_outputs = args.run.only_missing_outputs;
    let configs: Vec<RunConfig> = combos
        .into_iter()
        .map(|params| {
            service.create_run_config(RunConfig {
                runtime_params: params,
                ..template.clone()
            })
        })
        .collect::<Result<_, _>>()?;
    let total = configs.len();
    if let Some(bar) = &bar {
        bar.set_length(total as u64);
    }
    let progress = |done: usize, _total: usize| {
        if let Some(bar) = &bar {
            bar.set_position(done as u64);
        }
    };
    let results = service.run_all(configs, &policy, Some(&progress))?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    service.close(weft_session::CloseMode::Wait);
    let failed = results
        .iter()
        .filter(|r| r.status != RunStatus::Succeeded)
        .count();
    if args.run.json {
        let list: Vec<Value> = results.iter().map(|r| result_json(r, &varying)).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        print!("{}", multirun_table(&results, &varying, &args.metrics));
        eprintln!(
            "{} runs: {} succeeded, {} not",
            results.len(),
            results.len() - failed,
            failed
        );
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

/// Prints one status line per finished run (above the progress bar on a terminal).
struct RunStatusLines {
    bar: Option<indicatif::ProgressBar>,
    params: Vec<String>,
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
            None => eprintln!("{line}"),
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
        row.push(
            r.error
                .as_ref()
                .map(|e| e.message.lines().next().unwrap_or("").to_string())
                .unwrap_or_default(),
        );
        rows.push(row);
    }
    weft_store::report::table(&rows)
}
