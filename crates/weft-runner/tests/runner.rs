//! Runner behaviour: results, hooks, release, failures, resume hints,
//! only-missing-outputs, type checks and cancellation, on both runners.

#![allow(
    clippy::result_large_err,
    reason = "helpers return run_pipeline's own Result<RunOutput, RunFailed>"
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use weft_catalog::Catalog;
use weft_pipeline::{CancelToken, Data, FunctionRegistry, Node, Pipeline, node};
use weft_runner::{
    Hook, Hooks, RunContext, RunError, RunFailed, RunJob, RunOutput, Runner, SequentialRunner, ThreadRunner,
    TypeCheck, run_pipeline,
};

fn ctx(run: &str) -> RunContext {
    RunContext {
        session_id: "s1".into(),
        run_id: run.into(),
        run_index: 0,
        total_runs: 1,
    }
}

fn runners() -> Vec<Box<dyn Runner>> {
    vec![
        Box::new(SequentialRunner),
        Box::new(ThreadRunner::new(Some(2))),
        Box::new(weft_runner::AsyncRunner::new(None)),
    ]
}

fn run_with(
    pipeline: &Pipeline,
    catalog: &Catalog,
    hooks: &Hooks,
    runner: &dyn Runner,
    only_missing: bool,
    type_check: TypeCheck,
) -> Result<RunOutput, RunFailed> {
    let context = ctx("r1");
    let cancel = CancelToken::new();
    run_pipeline(
        &RunJob {
            pipeline,
            catalog,
            hooks,
            context: &context,
            cancel: &cancel,
            only_missing_outputs: only_missing,
            type_check,
            timeout: None,
        },
        runner,
    )
}

fn run(pipeline: &Pipeline, catalog: &Catalog, runner: &dyn Runner) -> Result<RunOutput, RunFailed> {
    run_with(pipeline, catalog, &Hooks::new(), runner, false, TypeCheck::Strict)
}

fn chain(n: usize) -> Pipeline {
    Pipeline::new((0..n).map(|i| {
        node(|x: &i64| x + 1, format!("d{i}"), format!("d{}", i + 1))
            .name(format!("n{i}"))
            .build()
            .unwrap()
    }))
    .unwrap()
}

#[test]
fn chain_returns_free_outputs_on_both_runners() {
    for runner in runners() {
        let mut catalog = Catalog::new();
        catalog.add_data("d0", Data::new(10i64));
        let out = run(&chain(20), &catalog, runner.as_ref()).unwrap();
        assert_eq!(out.outputs.len(), 1, "{}", runner.name());
        assert_eq!(out.outputs["d20"].downcast_ref::<i64>(), Some(&30));
        assert_eq!(out.node_timings.len(), 20);
    }
}

#[test]
fn diamond_with_builtins() {
    let reg = FunctionRegistry::with_builtins();
    let nodes: Vec<Node> = vec![
        reg.node("add_one", "x", "a").unwrap().name("a").build().unwrap(),
        reg.node("add_one", "a", "b").unwrap().name("b").build().unwrap(),
        reg.node("add_one", "a", "c").unwrap().name("c").build().unwrap(),
        reg.node("sum", ["b", "c", "params:k"], "total")
            .unwrap()
            .name("total")
            .build()
            .unwrap(),
    ];
    let p = Pipeline::new(nodes).unwrap();
    for runner in runners() {
        let mut catalog = Catalog::new();
        catalog.add_data("x", Data::new(1i64));
        catalog.add_parameters(&serde_json::json!({"k": 100}));
        let out = run(&p, &catalog, runner.as_ref()).unwrap();
        assert_eq!(out.outputs["total"].downcast_ref::<i64>(), Some(&106));
    }
}

#[test]
fn intermediate_memory_data_is_released_but_outputs_and_inputs_kept() {
    for runner in runners() {
        let mut catalog = Catalog::new();
        catalog.add_data("d0", Data::new(0i64));
        run(&chain(5), &catalog, runner.as_ref()).unwrap();
        assert!(catalog.exists("d0").unwrap(), "free input kept");
        for i in 1..5 {
            assert!(
                !catalog.exists(&format!("d{i}")).unwrap(),
                "d{i} released ({})",
                runner.name()
            );
        }
        assert!(catalog.exists("d5").unwrap(), "free output kept");
    }
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    tag: &'static str,
}

impl Hook for Recorder {
    fn before_pipeline_run(&self, ctx: &RunContext, _p: &Pipeline) {
        self.push(format!(
            "{}:before_pipeline:{}:{}",
            self.tag, ctx.session_id, ctx.run_id
        ));
    }
    fn after_pipeline_run(&self, _ctx: &RunContext, _p: &Pipeline, outputs: &BTreeMap<String, Data>) {
        self.push(format!("{}:after_pipeline:{}", self.tag, outputs.len()));
    }
    fn on_pipeline_error(&self, _ctx: &RunContext, _p: &Pipeline, e: &RunError) {
        self.push(format!("{}:pipeline_error:{}", self.tag, e.node().unwrap_or("-")));
    }
    fn before_node_run(&self, _ctx: &RunContext, n: &Node, inputs: &[Data]) {
        self.push(format!("{}:before_node:{}:{}", self.tag, n.name(), inputs.len()));
    }
    fn after_node_run(&self, _ctx: &RunContext, n: &Node, _i: &[Data], outputs: &[Data]) {
        self.push(format!("{}:after_node:{}:{}", self.tag, n.name(), outputs.len()));
    }
    fn on_node_error(&self, _ctx: &RunContext, n: &Node, _e: &RunError) {
        self.push(format!("{}:node_error:{}", self.tag, n.name()));
    }
    fn before_dataset_loaded(&self, _ctx: &RunContext, d: &str, _n: &Node) {
        self.push(format!("{}:before_load:{d}", self.tag));
    }
    fn after_dataset_loaded(&self, _ctx: &RunContext, d: &str, _data: &Data, _n: &Node) {
        self.push(format!("{}:after_load:{d}", self.tag));
    }
    fn before_dataset_saved(&self, _ctx: &RunContext, d: &str, _data: &Data, _n: &Node) {
        self.push(format!("{}:before_save:{d}", self.tag));
    }
    fn after_dataset_saved(&self, _ctx: &RunContext, d: &str, _data: &Data, _n: &Node) {
        self.push(format!("{}:after_save:{d}", self.tag));
    }
}

impl Recorder {
    fn push(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }
}

#[test]
fn hooks_see_every_lifecycle_point_in_registration_order() {
    let first = Arc::new(Recorder {
        tag: "A",
        ..Default::default()
    });
    let log = Arc::new(Mutex::new(Vec::new()));
    struct Second(Arc<Mutex<Vec<String>>>, Arc<Recorder>);
    impl Hook for Second {
        fn before_node_run(&self, _c: &RunContext, n: &Node, _i: &[Data]) {
            // The first hook has already seen this node when the second runs.
            let seen = self
                .1
                .events
                .lock()
                .unwrap()
                .iter()
                .any(|e| e == &format!("A:before_node:{}:1", n.name()));
            self.0
                .lock()
                .unwrap()
                .push(format!("B:before_node:{}:{seen}", n.name()));
        }
    }
    let hooks = Hooks::new()
        .with(first.clone())
        .with(Arc::new(Second(log.clone(), first.clone())));
    let mut catalog = Catalog::new();
    catalog.add_data("d0", Data::new(1i64));
    run_with(
        &chain(2),
        &catalog,
        &hooks,
        &SequentialRunner,
        false,
        TypeCheck::Strict,
    )
    .unwrap();
    let events = first.events.lock().unwrap().clone();
    assert_eq!(
        events,
        vec![
            "A:before_pipeline:s1:r1",
            "A:before_load:d0",
            "A:after_load:d0",
            "A:before_node:n0:1",
            "A:before_save:d1",
            "A:after_save:d1",
            "A:after_node:n0:1",
            "A:before_load:d1",
            "A:after_load:d1",
            "A:before_node:n1:1",
            "A:before_save:d2",
            "A:after_save:d2",
            "A:after_node:n1:1",
            "A:after_pipeline:1",
        ]
    );
    assert_eq!(
        *log.lock().unwrap(),
        vec!["B:before_node:n0:true", "B:before_node:n1:true"]
    );
}

fn failing_pipeline() -> Pipeline {
    let reg = FunctionRegistry::with_builtins();
    Pipeline::new(vec![
        reg.node("add_one", "x", "a")
            .unwrap()
            .name("first")
            .build()
            .unwrap(),
        reg.node("fail", "a", "b")
            .unwrap()
            .name("breaks")
            .build()
            .unwrap(),
        reg.node("add_one", "b", "c")
            .unwrap()
            .name("last")
            .build()
            .unwrap(),
    ])
    .unwrap()
}

#[test]
fn fail_fast_names_node_cause_and_resume_point() {
    for runner in runners() {
        let mut catalog = Catalog::new();
        catalog.add_data("x", Data::new(1i64));
        let hooks_rec = Arc::new(Recorder {
            tag: "H",
            ..Default::default()
        });
        let hooks = Hooks::new().with(hooks_rec.clone());
        let err = run_with(
            &failing_pipeline(),
            &catalog,
            &hooks,
            runner.as_ref(),
            false,
            TypeCheck::Strict,
        )
        .unwrap_err()
        .error;
        assert_eq!(err.node(), Some("breaks"));
        assert_eq!(err.kind(), "node");
        let msg = err.to_string();
        assert!(
            msg.contains("node `breaks` failed: node `breaks` failed on purpose"),
            "{msg}"
        );
        // `a` lived in memory only, so the run must resume from `first`.
        assert_eq!(err.resume_from(), ["first"]);
        assert!(msg.contains("--from-nodes \"first\""), "{msg}");
        let events = hooks_rec.events.lock().unwrap().clone();
        assert!(events.contains(&"H:node_error:breaks".to_string()));
        assert!(events.contains(&"H:pipeline_error:breaks".to_string()));
        assert!(
            !events.iter().any(|e| e.contains("before_node:last")),
            "no node after the failure"
        );
    }
}

#[test]
fn validation_reports_missing_inputs_and_type_mismatches_at_once() {
    let p = Pipeline::new(vec![
        node(|x: &i64| x.to_string(), "x", "s")
            .name("to_string")
            .build()
            .unwrap(),
        node(|s: &f64| *s, "s", "y").name("wants_float").build().unwrap(),
        node(|v: &i64| *v, "params:missing", "z")
            .name("param_user")
            .build()
            .unwrap(),
    ])
    .unwrap();
    let catalog = Catalog::new();
    let err = run_with(
        &p,
        &catalog,
        &Hooks::new(),
        &SequentialRunner,
        false,
        TypeCheck::Strict,
    )
    .unwrap_err()
    .error;
    let RunError::Validation { problems } = &err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0..2]
            .iter()
            .any(|p| p.contains("pipeline input `x`") && p.contains("is not in the catalog")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("parameter `params:missing`")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p
                .contains("node `wants_float` takes `f64` as `s`, but node `to_string` outputs `String`")),
        "{problems:?}"
    );
    // warn: mismatches are warnings, the run starts (and fails at the node instead)
    let mut catalog = Catalog::new();
    catalog.add_data("x", Data::new(1i64));
    catalog.add_parameters(&serde_json::json!({"missing": 3}));
    let err = run_with(
        &p,
        &catalog,
        &Hooks::new(),
        &SequentialRunner,
        false,
        TypeCheck::Warn,
    )
    .unwrap_err()
    .error;
    assert_eq!(err.node(), Some("wants_float"), "{err}");
    let err = run_with(
        &p,
        &catalog,
        &Hooks::new(),
        &SequentialRunner,
        false,
        TypeCheck::Off,
    )
    .unwrap_err()
    .error;
    assert_eq!(err.node(), Some("wants_float"), "{err}");
}

#[test]
fn cancelled_run_stops_between_nodes() {
    for runner in runners() {
        let mut catalog = Catalog::new();
        catalog.add_data("d0", Data::new(0i64));
        let cancel = CancelToken::new();
        cancel.cancel();
        let context = ctx("r");
        let hooks = Hooks::new();
        let err = run_pipeline(
            &RunJob {
                pipeline: &chain(3),
                catalog: &catalog,
                hooks: &hooks,
                context: &context,
                cancel: &cancel,
                only_missing_outputs: false,
                type_check: TypeCheck::Strict,
                timeout: None,
            },
            runner.as_ref(),
        )
        .unwrap_err()
        .error;
        assert!(
            matches!(
                err,
                RunError::Cancelled {
                    completed: 0,
                    total: 3
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn thread_runner_runs_independent_nodes_concurrently() {
    struct Concurrency {
        now: AtomicUsize,
        max: AtomicUsize,
    }
    impl Hook for Concurrency {
        fn before_node_run(&self, _c: &RunContext, _n: &Node, _i: &[Data]) {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(now, Ordering::SeqCst);
        }
        fn after_node_run(&self, _c: &RunContext, _n: &Node, _i: &[Data], _o: &[Data]) {
            self.now.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let reg = FunctionRegistry::with_builtins();
    let nodes: Vec<Node> = (0..4)
        .map(|i| {
            reg.node("sleep_ms", ["ms"], [format!("o{i}")])
                .unwrap()
                .name(format!("s{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let p = Pipeline::new(nodes).unwrap();
    let probe = Arc::new(Concurrency {
        now: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
    });
    let hooks = Hooks::new().with(probe.clone());
    let mut catalog = Catalog::new();
    catalog.add_data("ms", Data::new(100i64));
    run_with(
        &p,
        &catalog,
        &hooks,
        &ThreadRunner::new(Some(2)),
        false,
        TypeCheck::Strict,
    )
    .unwrap();
    assert_eq!(
        probe.max.load(Ordering::SeqCst),
        2,
        "two workers overlap, never more"
    );
    let probe2 = Arc::new(Concurrency {
        now: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
    });
    let hooks = Hooks::new().with(probe2.clone());
    run_with(&p, &catalog, &hooks, &SequentialRunner, false, TypeCheck::Strict).unwrap();
    assert_eq!(probe2.max.load(Ordering::SeqCst), 1);
}

#[test]
fn two_runs_at_once_never_see_each_other() {
    let p = chain(50);
    std::thread::scope(|s| {
        for k in 0..4i64 {
            let p = &p;
            s.spawn(move || {
                let mut catalog = Catalog::new();
                catalog.add_data("d0", Data::new(k * 1000));
                let out = run(p, &catalog, &ThreadRunner::new(Some(2))).unwrap();
                assert_eq!(out.outputs["d50"].downcast_ref::<i64>(), Some(&(k * 1000 + 50)));
            });
        }
    });
}

fn persisted_catalog(dir: &std::path::Path, version: &str) -> Catalog {
    let cfg = weft_catalog::CatalogConfig::parse(
        &serde_json::json!({
            "a": {"type": "json.JSONDataset", "filepath": "a.json"},
            "b": {"type": "json.JSONDataset", "filepath": "b.json"},
        }),
        &serde_json::json!({}),
        &weft_catalog::DatasetTypeRegistry::with_builtins(),
    )
    .unwrap();
    let mut c = cfg
        .build(&weft_catalog::BuildOptions {
            project_dir: dir.to_path_buf(),
            save_version: version.into(),
            ..Default::default()
        })
        .unwrap();
    c.add_data("x", Data::new(1i64));
    c
}

#[test]
fn resume_hint_starts_after_persisted_outputs() {
    // first -> a (persisted) -> breaks -> b (persisted) -> last
    let dir = tempfile::tempdir().unwrap();
    let reg = FunctionRegistry::with_builtins();
    let p = Pipeline::new(vec![
        reg.node("add_one", "x", "a")
            .unwrap()
            .name("first")
            .build()
            .unwrap(),
        reg.node("fail", "a", "b")
            .unwrap()
            .name("breaks")
            .build()
            .unwrap(),
        reg.node("add_one", "b", "c")
            .unwrap()
            .name("last")
            .build()
            .unwrap(),
    ])
    .unwrap();
    let catalog = persisted_catalog(dir.path(), "v1");
    let err = run(&p, &catalog, &SequentialRunner).unwrap_err().error;
    assert_eq!(err.resume_from(), ["breaks"], "{err}");
}

#[test]
fn only_missing_outputs_skips_nodes_whose_persisted_outputs_exist() {
    let dir = tempfile::tempdir().unwrap();
    let reg = FunctionRegistry::with_builtins();
    let p = Pipeline::new(vec![
        reg.node("add_one", "x", "a").unwrap().name("n1").build().unwrap(),
        reg.node("add_one", "a", "b").unwrap().name("n2").build().unwrap(),
        reg.node("add_one", "b", "c").unwrap().name("n3").build().unwrap(),
    ])
    .unwrap();
    let first = run_with(
        &p,
        &persisted_catalog(dir.path(), "v1"),
        &Hooks::new(),
        &SequentialRunner,
        true,
        TypeCheck::Strict,
    )
    .unwrap();
    assert!(first.skipped_nodes.is_empty());
    assert_eq!(first.outputs["c"].to_json().unwrap(), serde_json::json!(4));
    for runner in runners() {
        let again = run_with(
            &p,
            &persisted_catalog(dir.path(), "v2"),
            &Hooks::new(),
            runner.as_ref(),
            true,
            TypeCheck::Strict,
        )
        .unwrap();
        assert_eq!(again.skipped_nodes, ["n1", "n2"], "{}", runner.name());
        assert_eq!(again.node_timings.len(), 1);
        assert_eq!(again.outputs["c"].to_json().unwrap(), serde_json::json!(4));
    }
}

/// Regression (issue 8 §6): a missing input names the node that needs it
/// and the close matches.
#[test]
fn a_missing_input_names_its_node_and_close_matches() {
    let p = Pipeline::new(vec![
        node(|x: &i64| *x, "compnies", "out")
            .name("use_companies")
            .build()
            .unwrap(),
    ])
    .unwrap();
    let mut catalog = Catalog::new();
    catalog.add_data("companies", Data::new(1i64));
    let err = run_with(
        &p,
        &catalog,
        &Hooks::new(),
        &SequentialRunner,
        false,
        TypeCheck::Strict,
    )
    .unwrap_err()
    .error;
    let text = err.to_string();
    assert!(
        text.contains("`compnies` (needed by node `use_companies`)")
            && text.contains("did you mean `companies`?"),
        "{text}"
    );
}
