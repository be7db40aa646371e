//! `weft run`: one session, one run.

use std::io::IsTerminal;
use std::sync::Arc;

use weft_pipeline::Node;
use weft_runner::{Hook, Hooks, RunContext};
use weft_session::{ProjectCode, Session, SessionError, SessionOptions, StoreChoice};

use super::*;

/// Shows progress: a bar on a terminal, plain lines otherwise.
struct ProgressHook {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: std::sync::atomic::AtomicUsize,
}

impl Hook for ProgressHook {
    fn after_node_run(
        &self,
        _ctx: &RunContext,
        node: &Node,
        _i: &[weft_pipeline::Data],
        _o: &[weft_pipeline::Data],
    ) {
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(node.name().to_string());
                bar.inc(1);
            }
            None => eprintln!("[{done}/{}] {} done", self.total, node.name()),
        }
    }
}

pub(super) fn run(project: &std::path::Path, args: &RunArgs, code: ProjectCode) -> anyhow::Result<u8> {
    let params = runtime_params(&args.params)?;
    let mut options = session_options(project, &args.session, params, code, false)?;
    let mut config = filter_config(&args.filter);
    config.load_versions = load_versions(&args.load_versions)?;
    config.runner = args.runner.clone();
    config.max_workers = args.max_workers;
    config.only_missing_outputs = args.only_missing_outputs;
    // Count the nodes first so the progress display knows the total.
    let probe = Session::create(
        project,
        SessionOptions {
            store: StoreChoice::Disabled,
            hooks: Hooks::new(),
            ..options.clone()
        },
    )?;
    let total = probe.select_pipeline(&config)?.len();
    drop(probe);
    let bar = (std::io::stderr().is_terminal() && !args.json).then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} nodes  {elapsed_precise}  {msg}")
                .expect("valid template"),
        );
        bar
    });
    let hook = Arc::new(ProgressHook {
        bar: bar.clone(),
        total,
        done: Default::default(),
    });
    if !args.json {
        options.hooks.push(hook);
    }
    let mut session = Session::create(project, options)?;
    let outcome = session.run(config);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match outcome {
        Ok(result) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&result_json(&result, &[]))?);
            } else {
                eprintln!(
                    "run {} succeeded in {:.3}s ({} nodes)",
                    result.run_id,
                    result.duration().as_secs_f64(),
                    total
                );
            }
            Ok(0)
        }
        Err(SessionError::RunFailed(result)) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&result_json(&result, &[]))?);
            }
            let err = result.error.clone().unwrap_or_else(|| weft_runner::RunFailure {
                kind: "unknown".into(),
                message: "run failed".into(),
                node: None,
                causes: vec![],
            });
            eprintln!("error: run {} {}", result.run_id, result.status);
            for (i, cause) in err.causes.iter().enumerate() {
                if i == 0 {
                    eprintln!("  {cause}");
                } else {
                    eprintln!("  caused by: {cause}");
                }
            }
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}
