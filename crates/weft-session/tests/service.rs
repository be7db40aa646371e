//! `ServiceSession`: many isolated runs, policies, progress, hooks.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{project, write};
use proptest::prelude::*;
use weft_pipeline::FunctionRegistry;
use weft_runner::{Hook, Hooks, RunContext, RunResult, RunStatus};
use weft_session::{
    CloseMode, Policy, ProjectCode, RunConfig, ServiceOptions, ServiceSession, SessionOptions, StoreChoice,
};

fn service(root: &std::path::Path, workers: usize) -> ServiceSession {
    ServiceSession::create(
        root,
        ServiceOptions {
            session: SessionOptions::default(),
            max_workers: Some(workers),
            history_limit: None,
        },
    )
    .unwrap()
}

fn with_params(p: serde_json::Value) -> RunConfig {
    RunConfig {
        runtime_params: p,
        ..Default::default()
    }
}

#[test]
fn run_all_gives_every_run_its_own_params_and_outputs() {
    let (_tmp, root) = project();
    let s = service(&root, 2);
    let configs: Vec<RunConfig> = (0..8)
        .map(|i| with_params(serde_json::json!({"start": i * 10})))
        .collect();
    let results = s.run_all(configs, &Policy::default(), None).unwrap();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(
            r.outputs["result"].to_json().unwrap(),
            serde_json::json!(i as i64 * 10 + 11)
        );
        let file = root.join("data/result.json").join(&r.run_id).join("result.json");
        assert_eq!(
            std::fs::read_to_string(file).unwrap().trim(),
            (i as i64 * 10 + 11).to_string()
        );
    }
    assert_eq!(s.results().len(), 8);
    assert!(
        s.results().iter().all(|r| r.outputs.is_empty()),
        "history keeps no data"
    );
}

#[test]
fn create_run_config_validates_and_assigns_ids() {
    let (_tmp, root) = project();
    let s = service(&root, 2);
    let cfg = s.create_run_config(RunConfig::default()).unwrap();
    assert!(cfg.run_id.is_some());
    let err = s
        .create_run_config(RunConfig {
            runner: Some("warp".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("unknown runner `warp`"), "{err}");
    let err = s
        .create_run_config(RunConfig {
            node_names: vec!["nope".into()],
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn fail_fast_skips_the_rest_and_cancels_running_runs() {
    let (_tmp, root) = project();
    let s = service(&root, 2);
    let mut configs = vec![
        RunConfig {
            pipeline_names: vec!["slow".into()],
            runtime_params: serde_json::json!({"delay": 3000}),
            ..Default::default()
        },
        RunConfig {
            pipeline_names: vec!["broken".into()],
            ..Default::default()
        },
    ];
    configs.extend((0..3).map(|_| RunConfig::default()));
    let start = std::time::Instant::now();
    let results = s.run_all(configs, &Policy::fail_fast(), None).unwrap();
    let statuses: Vec<RunStatus> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            RunStatus::Cancelled,
            RunStatus::Failed,
            RunStatus::Skipped,
            RunStatus::Skipped,
            RunStatus::Skipped
        ]
    );
    assert_eq!(results[1].error.as_ref().unwrap().node.as_deref(), Some("boom"));
    assert!(
        start.elapsed() < std::time::Duration::from_millis(2900),
        "the slow run was cancelled"
    );
}

#[test]
fn continue_on_error_runs_everything_and_reports_every_failure() {
    let (_tmp, root) = project();
    let s = service(&root, 2);
    let broken = RunConfig {
        pipeline_names: vec!["broken".into()],
        ..Default::default()
    };
    let configs = vec![broken.clone(), RunConfig::default(), broken, RunConfig::default()];
    let progress_calls = Mutex::new(Vec::new());
    let progress = |done: usize, total: usize| progress_calls.lock().unwrap().push((done, total));
    let results = s
        .run_all(configs, &Policy::continue_on_error(), Some(&progress))
        .unwrap();
    let statuses: Vec<RunStatus> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            RunStatus::Failed,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Succeeded
        ]
    );
    let mut calls = progress_calls.into_inner().unwrap();
    calls.sort();
    assert_eq!(calls, [(1, 4), (2, 4), (3, 4), (4, 4)]);
}

#[test]
fn retry_reruns_a_flaky_run_and_records_attempts() {
    let (_tmp, root) = project();
    write(
        &root,
        "pipelines.yml",
        "__default__:\n  nodes:\n    - name: flaky\n      func: flaky\n      inputs: params:start\n      outputs: result\n",
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let mut functions = FunctionRegistry::with_builtins();
    let c = calls.clone();
    functions
        .register("flaky", move |x: &i64| -> Result<i64, String> {
            if c.fetch_add(1, Ordering::SeqCst) < 2 {
                Err("transient".into())
            } else {
                Ok(*x)
            }
        })
        .unwrap();
    let code = ProjectCode {
        functions: Arc::new(functions),
        ..Default::default()
    };
    let s = ServiceSession::create(
        &root,
        ServiceOptions {
            session: SessionOptions {
                code,
                ..Default::default()
            },
            max_workers: Some(1),
            history_limit: None,
        },
    )
    .unwrap();
    let policy = Policy {
        retry_backoff: std::time::Duration::from_millis(1),
        ..Policy::retry(3)
    };
    let results = s
        .run_sequential(vec![RunConfig::default()], &policy, None)
        .unwrap();
    assert_eq!(results[0].status, RunStatus::Succeeded);
    assert_eq!(results[0].attempts, 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let store = weft_store::BlockingStore::open_project_default(&root).unwrap();
    let rec = store.get_run(&results[0].run_id).unwrap().unwrap();
    assert_eq!(rec.attempts, 3);
    assert_eq!(rec.status, weft_store::RunStatus::Succeeded);
    // Without enough retries the run counts as failed.
    calls.store(0, Ordering::SeqCst);
    let results = s
        .run_sequential(vec![RunConfig::default()], &Policy { retries: 1, ..policy }, None)
        .unwrap();
    assert_eq!(results[0].status, RunStatus::Failed);
    assert_eq!(results[0].attempts, 2);
}

#[test]
fn cleanup_on_error_removes_versioned_outputs_of_failed_runs() {
    let (_tmp, root) = project();
    let s = service(&root, 1);
    let broken = RunConfig {
        pipeline_names: vec!["broken".into()],
        ..Default::default()
    };
    let keep = s
        .run_sequential(vec![broken.clone()], &Policy::continue_on_error(), None)
        .unwrap();
    let kept = root.join("data/first.json").join(&keep[0].run_id);
    assert!(kept.is_dir(), "without cleanup the partial output stays");
    let policy = Policy {
        cleanup_on_error: true,
        ..Policy::continue_on_error()
    };
    let gone = s.run_sequential(vec![broken], &policy, None).unwrap();
    // Regression (issue 8 §5): removed versions leave saved_versions too.
    assert!(gone[0].saved_versions.is_empty(), "{:?}", gone[0].saved_versions);
    assert_eq!(gone[0].cleaned_up.len(), 1, "{:?}", gone[0].cleaned_up);
    assert!(!root.join("data/first.json").join(&gone[0].run_id).exists());
    let store = weft_store::BlockingStore::open_project_default(&root).unwrap();
    let rec = store.get_run(&gone[0].run_id).unwrap().unwrap();
    assert!(rec.saved_versions.is_empty(), "the record agrees");
    assert!(kept.is_dir());
}

#[test]
fn a_run_chains_on_the_versions_another_run_saved() {
    let (_tmp, root) = project();
    write(
        &root,
        "pipelines.yml",
        "produce:\n  nodes:\n    - {name: p, func: identity, inputs: params:start, outputs: result}\nconsume:\n  nodes:\n    - {name: c, func: add_one, inputs: result, outputs: next}\n",
    );
    let s = service(&root, 2);
    let first = s
        .run(
            with_params(serde_json::json!({"start": 5}))
                .clone()
                .tap_pipeline("produce"),
        )
        .unwrap();
    let second = s
        .run(with_params(serde_json::json!({"start": 7})).tap_pipeline("produce"))
        .unwrap();
    let pinned = s
        .run(RunConfig {
            pipeline_names: vec!["consume".into()],
            load_versions: BTreeMap::from([("result".to_string(), first.saved_versions["result"].clone())]),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(pinned.outputs["next"].to_json().unwrap(), serde_json::json!(6));
    let latest = s.run(RunConfig::default().tap_pipeline("consume")).unwrap();
    assert_eq!(
        latest.outputs["next"].to_json().unwrap(),
        serde_json::json!(8),
        "{second:?}"
    );
}

trait TapPipeline {
    fn tap_pipeline(self, name: &str) -> Self;
}

impl TapPipeline for RunConfig {
    fn tap_pipeline(mut self, name: &str) -> Self {
        self.pipeline_names = vec![name.into()];
        self
    }
}

#[derive(Default)]
struct RunHooks {
    runs: Mutex<Vec<(usize, usize, String)>>,
    batches: Mutex<Vec<usize>>,
}

impl Hook for RunHooks {
    fn after_run(&self, ctx: &RunContext, result: &RunResult) {
        self.runs
            .lock()
            .unwrap()
            .push((ctx.run_index, ctx.total_runs, result.run_id.clone()));
        assert_eq!(ctx.run_id, result.run_id);
    }
    fn after_all_runs(&self, _session: &str, results: &[RunResult]) {
        self.batches.lock().unwrap().push(results.len());
    }
}

#[test]
fn hooks_see_run_index_total_and_batches() {
    let (_tmp, root) = project();
    let hooks = Arc::new(RunHooks::default());
    let s = ServiceSession::create(
        &root,
        ServiceOptions {
            session: SessionOptions {
                hooks: Hooks::new().with(hooks.clone()),
                store: StoreChoice::Disabled,
                ..Default::default()
            },
            max_workers: Some(2),
            history_limit: None,
        },
    )
    .unwrap();
    s.run_all(
        (0..3).map(|_| RunConfig::default()).collect(),
        &Policy::default(),
        None,
    )
    .unwrap();
    let mut runs = hooks.runs.lock().unwrap().clone();
    runs.sort();
    assert_eq!(
        runs.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
        [(0, 3), (1, 3), (2, 3)]
    );
    assert_eq!(*hooks.batches.lock().unwrap(), [3]);
    s.close(CloseMode::Wait);
    let err = s.run(RunConfig::default()).unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
}

#[test]
fn per_run_env_is_isolated() {
    let (_tmp, root) = project();
    write(&root, "conf/prod/parameters.yml", "offset: 1000\n");
    let s = service(&root, 2);
    let results = s
        .run_all(
            vec![
                RunConfig {
                    env: Some("prod".into()),
                    ..Default::default()
                },
                RunConfig::default(),
            ],
            &Policy::default(),
            None,
        )
        .unwrap();
    assert_eq!(
        results[0].outputs["result"].to_json().unwrap(),
        serde_json::json!(1002)
    );
    assert_eq!(
        results[1].outputs["result"].to_json().unwrap(),
        serde_json::json!(12)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]
    /// Many concurrent runs of one pipeline with different params: every
    /// run's outputs (in memory and on disk) are its own.
    #[test]
    fn concurrent_runs_are_isolated(starts in proptest::collection::vec(-1000i64..1000, 1..12), workers in 1usize..4) {
        let (_tmp, root) = project();
        let s = ServiceSession::create(&root, ServiceOptions {
            session: SessionOptions { store: StoreChoice::Disabled, ..Default::default() },
            max_workers: Some(workers),
            history_limit: None,
        }).unwrap();
        let configs: Vec<RunConfig> = starts.iter().map(|v| RunConfig {
            runtime_params: serde_json::json!({"start": v}),
            runner: Some(if v % 2 == 0 { "thread" } else { "sequential" }.into()),
            ..Default::default()
        }).collect();
        let results = s.run_all(configs, &Policy::default(), None).unwrap();
        for (v, r) in starts.iter().zip(&results) {
            prop_assert_eq!(r.status, RunStatus::Succeeded);
            prop_assert_eq!(r.outputs["result"].to_json().unwrap(), serde_json::json!(v + 11));
            let file = root.join("data/result.json").join(&r.run_id).join("result.json");
            prop_assert_eq!(std::fs::read_to_string(file).unwrap().trim().to_string(), (v + 11).to_string());
        }
    }
}

#[test]
fn validation_metrics_sum_the_sessions_runs_and_reset() {
    let (_tmp, root) = project();
    let s = service(&root, 2);
    let configs: Vec<RunConfig> = (0..3)
        .map(|i| with_params(serde_json::json!({"start": i})))
        .collect();
    let results = s.run_all(configs, &Policy::default(), None).unwrap();
    // The default pipeline: inc (1 input), total (2), save (1).
    for r in &results {
        assert_eq!(r.validation.validations, 1);
        assert_eq!(r.validation.connections, 4);
        assert_eq!(r.validation.problems, 0);
    }
    let sum = s.validation_metrics();
    assert_eq!((sum.validations, sum.connections, sum.problems), (3, 12, 0));
    assert!(sum.duration_ms > 0.0, "{sum:?}");
    s.reset_validation_metrics();
    assert_eq!(s.validation_metrics(), weft_core::ValidationStats::default());
    s.run_all(
        vec![with_params(serde_json::json!({"start": 9}))],
        &Policy::default(),
        None,
    )
    .unwrap();
    assert_eq!(s.validation_metrics().validations, 1);
}
