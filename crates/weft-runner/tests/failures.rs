//! Failures that must stay clean: panicking nodes and hooks, failed runs
//! that keep their timings, cancellation and failure stopping new nodes,
//! and runners chosen by name.

#![allow(
    clippy::result_large_err,
    reason = "helpers return run_pipeline's own Result<RunOutput, RunFailed>"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_catalog::Catalog;
use weft_pipeline::{CancelToken, Data, Node, NodeFnError, Pipeline, node};
use weft_runner::{
    Execution, Hook, Hooks, NodePanic, PanicStage, RunContext, RunError, RunFailed, RunJob, RunOutput,
    Runner, RunnerRegistry, RunnerRegistryError, SequentialRunner, ThreadRunner, TypeCheck, run_pipeline,
    runner_by_name,
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

/// The runners that let a node in flight finish on a cancel (the async
/// runner drops it instead; see tests/async_runner.rs).
fn sync_runners() -> Vec<Box<dyn Runner>> {
    vec![Box::new(SequentialRunner), Box::new(ThreadRunner::new(Some(2)))]
}

fn run_job(
    pipeline: &Pipeline,
    catalog: &Catalog,
    hooks: &Hooks,
    cancel: &CancelToken,
    runner: &dyn Runner,
    type_check: TypeCheck,
) -> Result<RunOutput, RunFailed> {
    let context = ctx("run-42");
    run_pipeline(
        &RunJob {
            pipeline,
            catalog,
            hooks,
            context: &context,
            cancel,
            only_missing_outputs: false,
            type_check,
            timeout: None,
        },
        runner,
    )
}

fn run(pipeline: &Pipeline, catalog: &Catalog, runner: &dyn Runner) -> Result<RunOutput, RunFailed> {
    run_job(
        pipeline,
        catalog,
        &Hooks::new(),
        &CancelToken::new(),
        runner,
        TypeCheck::Strict,
    )
}

/// Runs `f` on its own thread and waits at most 60 s for its answer, so a
/// hang fails the test instead of blocking it forever.
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the run returned (no hang, no lost panic)")
}

fn add(x: &i64) -> i64 {
    x + 1
}

/// `x → first → a → (boom, side1, side2) → ...`: on the thread runner the
/// three middle nodes go to worker threads.
fn panicking_pipeline(boom: impl Fn(&i64) -> i64 + Send + Sync + 'static) -> Pipeline {
    let slow = |x: &i64| {
        std::thread::sleep(Duration::from_millis(20));
        *x
    };
    Pipeline::new(vec![
        node(add, "x", "a").name("first").build().unwrap(),
        node(boom, "a", "b").name("boom").build().unwrap(),
        node(slow, "a", "s1").name("side1").build().unwrap(),
        node(slow, "a", "s2").name("side2").build().unwrap(),
        node(add, "b", "c").name("last").build().unwrap(),
    ])
    .unwrap()
}

fn panic_of(err: &RunError) -> &NodePanic {
    let RunError::Node { source, .. } = err else {
        panic!("expected a node error, got {err}")
    };
    source
        .downcast_ref::<NodePanic>()
        .unwrap_or_else(|| panic!("expected a NodePanic source, got {source}"))
}

#[test]
fn a_panicking_node_is_a_failed_node_on_both_runners() {
    type Boom = fn(&i64) -> i64;
    let payloads: [(Boom, &str); 3] = [
        (|_| panic!("static message"), "static message"),
        (|x| panic!("formatted message {x}"), "formatted message 2"),
        (|_| std::panic::panic_any(7u8), "non-string panic payload"),
    ];
    for threaded in [false, true] {
        for (boom, message) in payloads {
            let failed = within_a_minute(move || {
                let runner: Box<dyn Runner> = if threaded {
                    Box::new(ThreadRunner::new(Some(2)))
                } else {
                    Box::new(SequentialRunner)
                };
                let mut catalog = Catalog::new();
                catalog.add_data("x", Data::new(1i64));
                run(&panicking_pipeline(boom), &catalog, runner.as_ref())
                    .map(|_| ())
                    .unwrap_err()
            });
            let err = &failed.error;
            assert_eq!(err.kind(), "node", "{err}");
            assert_eq!(err.node(), Some("boom"), "{err}");
            let text = err.to_string();
            assert!(
                text.contains(&format!(
                    "node `boom` failed: node `boom` panicked in run `run-42`: {message}"
                )),
                "{text}"
            );
            let panic = panic_of(err);
            assert_eq!(
                (panic.node.as_str(), panic.run_id.as_str(), panic.message.as_str()),
                ("boom", "run-42", message)
            );
            assert_eq!(panic.stage, PanicStage::Run);
            // `a` lived in memory only: resume from `first`.
            assert_eq!(err.resume_from(), ["first"], "{err}");
            assert!(
                failed.node_timings.iter().all(|t| t.node != "last"),
                "no node after the panic ran"
            );
        }
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl Events {
    fn push(&self, e: String) {
        self.0.lock().unwrap().push(e);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Panics when `dataset` is about to be saved, and when told of the failure.
struct PanickyHook {
    dataset: &'static str,
    events: Events,
}

impl Hook for PanickyHook {
    fn before_dataset_saved(&self, _c: &RunContext, dataset: &str, _d: &Data, _n: &Node) {
        if dataset == self.dataset {
            panic!("hook refuses `{dataset}`");
        }
    }
    fn on_node_error(&self, _c: &RunContext, node: &Node, _e: &RunError) {
        self.events.push(format!("node_error:{}", node.name()));
        panic!("on_node_error panics too");
    }
    fn on_pipeline_error(&self, _c: &RunContext, _p: &Pipeline, e: &RunError) {
        self.events
            .push(format!("pipeline_error:{}", e.node().unwrap_or("-")));
    }
}

#[test]
fn a_panic_in_a_hook_fails_the_node_with_its_stage() {
    for threaded in [false, true] {
        let (failed, events) = within_a_minute(move || {
            let runner: Box<dyn Runner> = if threaded {
                Box::new(ThreadRunner::new(Some(2)))
            } else {
                Box::new(SequentialRunner)
            };
            let hook = Arc::new(PanickyHook {
                dataset: "b",
                events: Events::default(),
            });
            let mut catalog = Catalog::new();
            catalog.add_data("x", Data::new(1i64));
            let failed = run_job(
                &panicking_pipeline(|x| *x),
                &catalog,
                &Hooks::new().with(hook.clone()),
                &CancelToken::new(),
                runner.as_ref(),
                TypeCheck::Strict,
            )
            .map(|_| ())
            .unwrap_err();
            (failed, hook.events.all())
        });
        let panic = panic_of(&failed.error);
        assert_eq!(panic.stage, PanicStage::Save);
        assert_eq!(panic.message, "hook refuses `b`");
        assert!(
            failed
                .error
                .to_string()
                .contains("node `boom` panicked while saving its outputs in run `run-42`"),
            "{}",
            failed.error
        );
        assert_eq!(events[0], "node_error:boom", "{events:?}");
        assert_eq!(events.last().map(String::as_str), Some("pipeline_error:boom"));
    }
}

fn chain(n: usize) -> Pipeline {
    Pipeline::new((0..n).map(|i| {
        node(add, format!("d{i}"), format!("d{}", i + 1))
            .name(format!("n{i}"))
            .build()
            .unwrap()
    }))
    .unwrap()
}

#[test]
fn failed_runs_keep_the_timings_of_finished_nodes() {
    // n0 → n1 → n2 (fails) → n3
    let fails = |_: &i64| -> Result<i64, NodeFnError> { Err("bad row".into()) };
    let p = Pipeline::new(vec![
        node(add, "d0", "d1").name("n0").build().unwrap(),
        node(add, "d1", "d2").name("n1").build().unwrap(),
        node(fails, "d2", "d3").name("n2").build().unwrap(),
        node(add, "d3", "d4").name("n3").build().unwrap(),
    ])
    .unwrap();
    for runner in runners() {
        let mut catalog = Catalog::new();
        catalog.add_data("d0", Data::new(0i64));
        let failed = run(&p, &catalog, runner.as_ref()).map(|_| ()).unwrap_err();
        let timed: Vec<&str> = failed.node_timings.iter().map(|t| t.node.as_str()).collect();
        assert_eq!(timed, ["n0", "n1"], "{}", runner.name());
        assert!(failed.node_timings.iter().all(|t| t.duration_ms >= 0.0));
        assert_eq!(failed.error.node(), Some("n2"));
        // Display and the source chain are the error's own.
        assert_eq!(failed.to_string(), failed.error.to_string());
        let source = std::error::Error::source(&failed).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("bad row"));
        let back: RunError = failed.into();
        assert_eq!(back.node(), Some("n2"));
    }
}

#[test]
fn failed_runs_keep_validation_warnings() {
    // warn mode: the mismatch is a warning, the node then fails on the type.
    let p = Pipeline::new(vec![
        node(|x: &i64| x.to_string(), "x", "s")
            .name("to_string")
            .build()
            .unwrap(),
        node(|s: &f64| *s, "s", "y").name("wants_float").build().unwrap(),
    ])
    .unwrap();
    let mut catalog = Catalog::new();
    catalog.add_data("x", Data::new(1i64));
    let failed = run_job(
        &p,
        &catalog,
        &Hooks::new(),
        &CancelToken::new(),
        &SequentialRunner,
        TypeCheck::Warn,
    )
    .map(|_| ())
    .unwrap_err();
    assert_eq!(failed.warnings.len(), 1, "{:?}", failed.warnings);
    assert_eq!(failed.node_timings.len(), 1);
    assert_eq!(failed.error.node(), Some("wants_float"));
}

/// Counts node starts.
#[derive(Default)]
struct Starts {
    names: Events,
    count: AtomicUsize,
}

impl Hook for Starts {
    fn before_node_run(&self, _c: &RunContext, n: &Node, _i: &[Data]) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.names.push(n.name().to_string());
    }
}

#[test]
fn a_cancel_during_a_node_stops_the_run_before_the_next_node() {
    for runner in sync_runners() {
        let cancel = CancelToken::new();
        let token = cancel.clone();
        let cancels = move |x: &i64| {
            token.cancel();
            x + 1
        };
        let p = Pipeline::new(vec![
            node(add, "d0", "d1").name("n0").build().unwrap(),
            node(cancels, "d1", "d2").name("n1").build().unwrap(),
            node(add, "d2", "d3").name("n2").build().unwrap(),
            node(add, "d3", "d4").name("n3").build().unwrap(),
        ])
        .unwrap();
        let starts = Arc::new(Starts::default());
        let mut catalog = Catalog::new();
        catalog.add_data("d0", Data::new(0i64));
        let failed = run_job(
            &p,
            &catalog,
            &Hooks::new().with(starts.clone()),
            &cancel,
            runner.as_ref(),
            TypeCheck::Strict,
        )
        .map(|_| ())
        .unwrap_err();
        assert!(
            matches!(
                failed.error,
                RunError::Cancelled {
                    completed: 2,
                    total: 4
                }
            ),
            "{}: {}",
            runner.name(),
            failed.error
        );
        assert_eq!(starts.names.all(), ["n0", "n1"], "{}", runner.name());
        assert_eq!(failed.node_timings.len(), 2);
    }
}

/// `src → root → m0..m5 → sink`, each middle node built by `mid(i)`.
fn fan_out<F>(mid: impl Fn(usize) -> F) -> Pipeline
where
    F: Fn(&i64) -> Result<i64, NodeFnError> + Send + Sync + 'static,
{
    let mut nodes = vec![node(add, "src", "root").name("root").build().unwrap()];
    for i in 0..6 {
        nodes.push(
            node(mid(i), "root", format!("m{i}"))
                .name(format!("m{i}"))
                .build()
                .unwrap(),
        );
    }
    let sink = |a: &i64, b: &i64, c: &i64, d: &i64, e: &i64, f: &i64| a + b + c + d + e + f;
    nodes.push(
        node(sink, ["m0", "m1", "m2", "m3", "m4", "m5"], "total")
            .name("sink")
            .build()
            .unwrap(),
    );
    Pipeline::new(nodes).unwrap()
}

fn sleep_then(x: &i64) -> Result<i64, NodeFnError> {
    std::thread::sleep(Duration::from_millis(40));
    Ok(*x)
}

#[test]
fn thread_runner_starts_no_node_after_a_failure() {
    let p = fan_out(|i| {
        move |x: &i64| -> Result<i64, NodeFnError> {
            if i == 0 {
                Err("m0 breaks".into())
            } else {
                sleep_then(x)
            }
        }
    });
    let starts = Arc::new(Starts::default());
    let mut catalog = Catalog::new();
    catalog.add_data("src", Data::new(0i64));
    let failed = run_job(
        &p,
        &catalog,
        &Hooks::new().with(starts.clone()),
        &CancelToken::new(),
        &ThreadRunner::new(Some(2)),
        TypeCheck::Strict,
    )
    .map(|_| ())
    .unwrap_err();
    assert_eq!(failed.error.node(), Some("m0"), "{}", failed.error);
    let started = starts.names.all();
    // root, m0 (fails) and at most the one middle node the other worker took
    // before the failure: never a node handed out after it.
    assert!((2..=3).contains(&started.len()), "{started:?}");
    assert!(!started.contains(&"sink".to_string()));
}

#[test]
fn thread_runner_starts_no_node_after_a_cancel() {
    let cancel = CancelToken::new();
    let token = cancel.clone();
    let p = fan_out(move |i| {
        let token = token.clone();
        move |x: &i64| -> Result<i64, NodeFnError> {
            if i == 0 {
                token.cancel();
            }
            sleep_then(x)
        }
    });
    let starts = Arc::new(Starts::default());
    let mut catalog = Catalog::new();
    catalog.add_data("src", Data::new(0i64));
    let failed = run_job(
        &p,
        &catalog,
        &Hooks::new().with(starts.clone()),
        &cancel,
        &ThreadRunner::new(Some(2)),
        TypeCheck::Strict,
    )
    .map(|_| ())
    .unwrap_err();
    assert!(
        matches!(failed.error, RunError::Cancelled { total: 8, .. }),
        "{}",
        failed.error
    );
    let started = starts.names.all();
    // root, m0 (cancels) and at most the node the other worker took before.
    assert!((2..=3).contains(&started.len()), "{started:?}");
    // The nodes that were running finished and kept their timings.
    assert_eq!(failed.node_timings.len(), started.len());
}

#[test]
fn registry_builds_builtins_by_name_and_kedro_name() {
    let registry = RunnerRegistry::with_builtins();
    assert_eq!(
        registry.names().collect::<Vec<_>>(),
        [
            "SequentialRunner",
            "ThreadRunner",
            "async",
            "process",
            "sequential",
            "thread"
        ]
    );
    for (name, built) in [
        ("async", "async"),
        ("process", "process"),
        ("sequential", "sequential"),
        ("SequentialRunner", "sequential"),
        ("thread", "thread"),
        ("ThreadRunner", "thread"),
    ] {
        assert_eq!(registry.build(name, Some(3)).unwrap().name(), built);
        assert_eq!(runner_by_name(name, None).unwrap().name(), built);
    }
    let Err(err) = registry.build("ParallelRunner", None) else {
        panic!("unknown runner accepted")
    };
    assert_eq!(err.kind(), "validation");
    let text = err.to_string();
    assert!(
        text.contains(
            "unknown runner `ParallelRunner`; known runners: `SequentialRunner`, `ThreadRunner`, `async`, `process`, `sequential`, `thread`"
        ),
        "{text}"
    );
    assert!(runner_by_name("nope", None).is_err());
}

/// A custom runner: runs nodes in order, counting them.
struct Counting(Arc<AtomicUsize>);

impl Runner for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn execute(&self, exec: &Execution<'_>) -> Result<(), RunError> {
        for i in 0..exec.job().pipeline.nodes().len() {
            exec.check_cancelled()?;
            exec.run_node(i)?;
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[test]
fn registry_accepts_custom_runners_and_rejects_duplicate_names() {
    let count = Arc::new(AtomicUsize::new(0));
    let mut registry = RunnerRegistry::with_builtins();
    let c = count.clone();
    registry
        .register("counting", move |_| Box::new(Counting(c.clone())))
        .unwrap();
    assert!(registry.contains("counting"));
    let runner = registry.build("counting", None).unwrap();
    let mut catalog = Catalog::new();
    catalog.add_data("d0", Data::new(0i64));
    let out = run(&chain(3), &catalog, runner.as_ref()).unwrap();
    assert_eq!(out.outputs["d3"].downcast_ref::<i64>(), Some(&3));
    assert_eq!(count.load(Ordering::SeqCst), 3);

    for taken in ["counting", "thread", "SequentialRunner"] {
        let err = registry
            .register(taken, |_| Box::new(SequentialRunner))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            err,
            RunnerRegistryError::Duplicate {
                name: taken.to_string()
            }
        );
    }
    // The first registration is kept.
    assert_eq!(registry.build("thread", None).unwrap().name(), "thread");
    assert_eq!(registry.build("counting", None).unwrap().name(), "counting");
    assert_eq!(
        registry.register(" ", |_| Box::new(SequentialRunner)).map(|_| ()),
        Err(RunnerRegistryError::EmptyName)
    );
    // An empty registry knows nothing, not even the built-ins.
    assert!(RunnerRegistry::new().build("sequential", None).is_err());
}
