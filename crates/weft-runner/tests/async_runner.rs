//! The `async` runner (order, concurrency proven by overlap, panics,
//! cancel, fail-fast) and timeouts on every runner.

#![allow(
    clippy::result_large_err,
    reason = "helpers return run_pipeline's own Result<RunOutput, RunFailed>"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_catalog::Catalog;
use weft_pipeline::{CancelToken, Data, FunctionRegistry, Node, NodeFnError, Pipeline, node, node_async};
use weft_runner::{
    AsyncRunner, Hook, Hooks, NodePanic, PanicStage, RunContext, RunError, RunFailed, RunJob, RunOutput,
    Runner, SequentialRunner, ThreadRunner, TimeoutScope, TypeCheck, run_pipeline, runner_by_name,
};

fn ctx() -> RunContext {
    RunContext {
        session_id: "s1".into(),
        run_id: "r-async".into(),
        run_index: 0,
        total_runs: 1,
    }
}

fn every_runner() -> Vec<Box<dyn Runner>> {
    vec![
        Box::new(SequentialRunner),
        Box::new(ThreadRunner::new(Some(2))),
        Box::new(AsyncRunner::new(None)),
    ]
}

fn run_job(
    pipeline: &Pipeline,
    catalog: &Catalog,
    hooks: &Hooks,
    cancel: &CancelToken,
    runner: &dyn Runner,
    timeout: Option<Duration>,
) -> Result<RunOutput, RunFailed> {
    let context = ctx();
    run_pipeline(
        &RunJob {
            pipeline,
            catalog,
            hooks,
            context: &context,
            cancel,
            only_missing_outputs: false,
            type_check: TypeCheck::Strict,
            timeout,
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
        None,
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

/// Records the order nodes start and finish in.
#[derive(Default)]
struct Order {
    events: Mutex<Vec<String>>,
}

impl Hook for Order {
    fn before_node_run(&self, _c: &RunContext, n: &Node, _i: &[Data]) {
        self.events.lock().unwrap().push(format!("start {}", n.name()));
    }
    fn after_node_run(&self, _c: &RunContext, n: &Node, _i: &[Data], _o: &[Data]) {
        self.events.lock().unwrap().push(format!("end {}", n.name()));
    }
}

fn position(events: &[String], e: &str) -> usize {
    events
        .iter()
        .position(|x| x == e)
        .unwrap_or_else(|| panic!("no `{e}` in {events:?}"))
}

#[test]
fn async_and_sync_nodes_run_in_dependency_order_on_every_runner() {
    // x → double (async) → a ; x → inc (sync) → b ; (a, b) → total (async)
    let pipeline = Pipeline::new(vec![
        node_async(
            |x: Arc<i64>| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                *x * 2
            },
            "x",
            "a",
        )
        .name("double")
        .build()
        .unwrap(),
        node(|x: &i64| x + 1, "x", "b").name("inc").build().unwrap(),
        node_async(
            |a: Arc<i64>, b: Arc<i64>| async move { *a + *b },
            ["a", "b"],
            "total",
        )
        .name("total")
        .build()
        .unwrap(),
    ])
    .unwrap();
    for runner in every_runner() {
        let mut catalog = Catalog::new();
        catalog.add_data("x", Data::new(10i64));
        let order = Arc::new(Order::default());
        let out = run_job(
            &pipeline,
            &catalog,
            &Hooks::new().with(order.clone()),
            &CancelToken::new(),
            runner.as_ref(),
            None,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", runner.name()));
        assert_eq!(
            out.outputs["total"].downcast_ref::<i64>(),
            Some(&31),
            "{}",
            runner.name()
        );
        assert_eq!(out.node_timings.len(), 3);
        let events = order.events.lock().unwrap().clone();
        let total = position(&events, "start total");
        assert!(
            position(&events, "end double") < total,
            "{}: {events:?}",
            runner.name()
        );
        assert!(
            position(&events, "end inc") < total,
            "{}: {events:?}",
            runner.name()
        );
    }
}

/// `width` independent nodes built by `mid`, from `src`.
fn fan(width: usize, mid: impl Fn(usize) -> Node) -> Pipeline {
    Pipeline::new((0..width).map(mid).collect::<Vec<_>>()).unwrap()
}

#[test]
fn a_hundred_async_nodes_are_in_flight_at_once() {
    // Each node waits on a barrier that opens only once all 100 wait: the
    // run can only finish if every node is in flight at the same time. A
    // run timeout turns a missing overlap into a failure instead of a hang.
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let pipeline = fan(100, |i| {
        let barrier = barrier.clone();
        node_async(
            move |x: Arc<i64>| {
                let barrier = barrier.clone();
                async move {
                    barrier.wait().await;
                    *x
                }
            },
            "x",
            format!("o{i}"),
        )
        .name(format!("wait{i:03}"))
        .build()
        .unwrap()
    });
    let out = within_a_minute(move || {
        let mut catalog = Catalog::new();
        catalog.add_data("x", Data::new(1i64));
        run_job(
            &pipeline,
            &catalog,
            &Hooks::new(),
            &CancelToken::new(),
            &AsyncRunner::new(Some(100)),
            Some(Duration::from_secs(30)),
        )
        .map(|o| o.outputs.len())
        .map_err(|e| e.to_string())
    });
    assert_eq!(out, Ok(100));
}

#[test]
fn max_workers_bounds_the_nodes_in_flight() {
    // A barrier of 11 with at most 10 nodes in flight never opens: the run
    // fails at its timeout, naming a waiting node and the run's limit, and
    // the eleventh node never started.
    let barrier = Arc::new(tokio::sync::Barrier::new(11));
    let pipeline = fan(11, |i| {
        let barrier = barrier.clone();
        node_async(
            move |x: Arc<i64>| {
                let barrier = barrier.clone();
                async move {
                    barrier.wait().await;
                    *x
                }
            },
            "x",
            format!("o{i}"),
        )
        .name(format!("wait{i:02}"))
        .build()
        .unwrap()
    });
    let order = Arc::new(Order::default());
    let seen = order.clone();
    let err = within_a_minute(move || {
        let mut catalog = Catalog::new();
        catalog.add_data("x", Data::new(1i64));
        run_job(
            &pipeline,
            &catalog,
            &Hooks::new().with(seen),
            &CancelToken::new(),
            &AsyncRunner::new(Some(10)),
            Some(Duration::from_millis(300)),
        )
        .map(|_| ())
        .unwrap_err()
    });
    let RunError::Timeout {
        node, limit, scope, ..
    } = &err.error
    else {
        panic!("expected a timeout, got {}", err.error)
    };
    assert_eq!((*scope, *limit), (TimeoutScope::Run, Duration::from_millis(300)));
    // Every node in flight reaches the deadline at once; one of them is named.
    let node = node.clone().expect("a node was running");
    assert!(node.starts_with("wait"), "{node}");
    assert_eq!(
        err.error.to_string().lines().next(),
        Some(format!("node `{node}` exceeded the run's 300ms timeout").as_str())
    );
    assert!(err.node_timings.is_empty());
    assert_eq!(order.events.lock().unwrap().len(), 10);
}

#[test]
fn sync_nodes_run_on_the_blocking_pool_side_by_side() {
    // Four sync nodes meet at a thread barrier: they must be on four threads.
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let pipeline = fan(4, |i| {
        let barrier = barrier.clone();
        node(
            move |x: &i64| {
                barrier.wait();
                *x + i as i64
            },
            "x",
            format!("o{i}"),
        )
        .name(format!("sync{i}"))
        .build()
        .unwrap()
    });
    let out = within_a_minute(move || {
        let mut catalog = Catalog::new();
        catalog.add_data("x", Data::new(1i64));
        run(&pipeline, &catalog, &AsyncRunner::new(None))
            .map(|o| o.outputs.len())
            .map_err(|e| e.to_string())
    });
    assert_eq!(out, Ok(4));
}

#[test]
fn sleep_ms_waits_without_a_thread_under_the_async_runner() {
    // 200 sleeps of 200 ms with 200 in flight but one runtime worker: they
    // overlap on timers. A run limit of 20 s, far below the 40 s they would
    // take one after another, fails the run if they do not.
    let reg = FunctionRegistry::with_builtins();
    let pipeline = fan(200, |i| {
        reg.node("sleep_ms", ["ms"], [format!("o{i}")])
            .unwrap()
            .name(format!("s{i:03}"))
            .build()
            .unwrap()
    });
    let out = within_a_minute(move || {
        let mut catalog = Catalog::new();
        catalog.add_data("ms", Data::new(200i64));
        run_job(
            &pipeline,
            &catalog,
            &Hooks::new(),
            &CancelToken::new(),
            &AsyncRunner::new(Some(200)),
            Some(Duration::from_secs(20)),
        )
        .map(|o| o.node_timings.len())
        .map_err(|e| e.to_string())
    });
    assert_eq!(out, Ok(200));
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
fn panics_in_async_futures_sync_nodes_and_future_builders_are_node_errors() {
    let after_await = node_async(
        |x: Arc<i64>| async move {
            tokio::task::yield_now().await;
            if *x > 0 {
                panic!("async boom");
            }
            *x
        },
        "x",
        "y",
    )
    .name("after_await")
    .build()
    .unwrap();
    let sync_boom = node(
        |x: &i64| -> i64 {
            if *x > 0 {
                panic!("sync boom");
            }
            *x
        },
        "x",
        "y",
    )
    .name("sync_boom")
    .build()
    .unwrap();
    let in_builder = node_async(
        |x: Arc<i64>| {
            if *x > 0 {
                panic!("builder boom");
            }
            async move { *x }
        },
        "x",
        "y",
    )
    .name("in_builder")
    .build()
    .unwrap();
    for (n, message) in [
        (after_await, "async boom"),
        (sync_boom, "sync boom"),
        (in_builder, "builder boom"),
    ] {
        let name = n.name().to_string();
        let pipeline = Pipeline::new(vec![
            n,
            node(|y: &i64| *y, "y", "z").name("after").build().unwrap(),
        ])
        .unwrap();
        let failed = within_a_minute(move || {
            let mut catalog = Catalog::new();
            catalog.add_data("x", Data::new(1i64));
            run(&pipeline, &catalog, &AsyncRunner::new(None))
                .map(|_| ())
                .unwrap_err()
        });
        let p = panic_of(&failed.error);
        assert_eq!((p.node.as_str(), p.message.as_str()), (name.as_str(), message));
        assert_eq!((p.stage, p.run_id.as_str()), (PanicStage::Run, "r-async"));
        assert_eq!(failed.error.resume_from(), [name.as_str()]);
        assert!(failed.node_timings.is_empty());
    }
}

#[test]
fn a_cancel_drops_in_flight_futures_and_starts_nothing_more() {
    let reg = FunctionRegistry::with_builtins();
    let pipeline = Pipeline::new(vec![
        node_async(
            |x: Arc<i64>| async move {
                tokio::time::sleep(Duration::from_secs(600)).await;
                *x
            },
            "x",
            "a",
        )
        .name("forever")
        .build()
        .unwrap(),
        reg.node("sleep_ms", ["long", "x"], ["b"])
            .unwrap()
            .name("long_sleep")
            .build()
            .unwrap(),
        node(|a: &i64| *a, "a", "c").name("after").build().unwrap(),
    ])
    .unwrap();
    let cancel = CancelToken::new();
    let order = Arc::new(Order::default());
    let seen = order.clone();
    let token = cancel.clone();
    let failed = within_a_minute(move || {
        let mut catalog = Catalog::new();
        catalog.add_data("x", Data::new(1i64));
        catalog.add_data("long", Data::new(600_000i64));
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            token.cancel();
        });
        run_job(
            &pipeline,
            &catalog,
            &Hooks::new().with(seen),
            &cancel,
            &AsyncRunner::new(None),
            None,
        )
        .map(|_| ())
        .unwrap_err()
    });
    assert!(
        matches!(
            failed.error,
            RunError::Cancelled {
                completed: 0,
                total: 3
            }
        ),
        "{}",
        failed.error
    );
    let events = order.events.lock().unwrap().clone();
    assert_eq!(events, ["start forever", "start long_sleep"]);
}

#[test]
fn after_a_failure_no_node_starts_and_running_ones_finish() {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let pipeline = Pipeline::new(vec![
        node(
            |_: &i64| -> Result<i64, NodeFnError> { Err("bad input".into()) },
            "x",
            "a",
        )
        .name("fails")
        .build()
        .unwrap(),
        node_async(
            move |x: Arc<i64>| {
                let flag = flag.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    flag.store(true, Ordering::SeqCst);
                    *x
                }
            },
            "x",
            "b",
        )
        .name("slow_sibling")
        .build()
        .unwrap(),
        node(|a: &i64| *a, "a", "c").name("downstream").build().unwrap(),
        node(|b: &i64| *b, "b", "d")
            .name("after_sibling")
            .build()
            .unwrap(),
    ])
    .unwrap();
    let order = Arc::new(Order::default());
    let seen = order.clone();
    let failed = within_a_minute(move || {
        let mut catalog = Catalog::new();
        catalog.add_data("x", Data::new(1i64));
        run_job(
            &pipeline,
            &catalog,
            &Hooks::new().with(seen),
            &CancelToken::new(),
            &AsyncRunner::new(None),
            None,
        )
        .map(|_| ())
        .unwrap_err()
    });
    assert_eq!(failed.error.node(), Some("fails"));
    assert!(failed.error.to_string().contains("bad input"), "{}", failed.error);
    // The sibling in flight finished and was saved; nothing started after.
    assert!(done.load(Ordering::SeqCst));
    let events = order.events.lock().unwrap().clone();
    assert!(
        !events
            .iter()
            .any(|e| e.contains("downstream") || e.contains("after_sibling")),
        "{events:?}"
    );
    assert_eq!(
        failed
            .node_timings
            .iter()
            .map(|t| t.node.as_str())
            .collect::<Vec<_>>(),
        ["slow_sibling"]
    );
    assert_eq!(failed.error.resume_from(), ["fails", "slow_sibling"]);
}

#[test]
fn a_node_past_its_timeout_fails_the_run_on_every_runner() {
    let reg = FunctionRegistry::with_builtins();
    // The built-in sleep (async under the async runner, a blocking loop
    // that honours its token elsewhere) and an async function that never
    // ends (blocked on by the sync runners).
    let sleeper = reg
        .node("sleep_ms", ["ms", "x"], ["a"])
        .unwrap()
        .name("train_model")
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let forever = node_async(
        |x: Arc<i64>| async move {
            tokio::time::sleep(Duration::from_secs(600)).await;
            *x
        },
        "x",
        "a",
    )
    .name("train_model")
    .timeout(Duration::from_millis(100))
    .build()
    .unwrap();
    for n in [sleeper, forever] {
        for runner in every_runner() {
            let pipeline = Pipeline::new(vec![
                node(|x: &i64| *x, "x0", "x").name("first").build().unwrap(),
                n.clone(),
                node(|a: &i64| *a, "a", "b").name("after").build().unwrap(),
            ])
            .unwrap();
            let name = runner.name();
            let failed = within_a_minute(move || {
                let mut catalog = Catalog::new();
                catalog.add_data("x0", Data::new(1i64));
                catalog.add_data("ms", Data::new(600_000i64));
                run(&pipeline, &catalog, runner.as_ref()).map(|_| ()).unwrap_err()
            });
            let RunError::Timeout {
                node, limit, scope, ..
            } = &failed.error
            else {
                panic!("{name}: expected a timeout, got {}", failed.error)
            };
            assert_eq!(node.as_deref(), Some("train_model"), "{name}");
            assert_eq!((*limit, *scope), (Duration::from_millis(100), TimeoutScope::Node));
            assert_eq!(failed.error.kind(), "timeout");
            assert_eq!(
                failed.error.to_string(),
                "node `train_model` exceeded its 100ms timeout\nhint: to resume, run again with --from-nodes \"first\"",
                "{name}"
            );
            assert_eq!(
                failed
                    .node_timings
                    .iter()
                    .map(|t| t.node.as_str())
                    .collect::<Vec<_>>(),
                ["first"],
                "{name}"
            );
        }
    }
}

#[test]
fn a_sync_node_that_ignores_its_token_does_not_hold_the_run_past_its_timeout() {
    // The node sleeps 3 s without looking at its token; the run reports the
    // timeout while the node is still sleeping (its thread ends later).
    for runner in every_runner() {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let stubborn = node(
            move |x: &i64| {
                std::thread::sleep(Duration::from_secs(3));
                flag.store(true, Ordering::SeqCst);
                *x
            },
            "x",
            "a",
        )
        .name("stubborn")
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
        let pipeline = Pipeline::new(vec![stubborn]).unwrap();
        let name = runner.name();
        let failed = within_a_minute(move || {
            let mut catalog = Catalog::new();
            catalog.add_data("x", Data::new(1i64));
            run(&pipeline, &catalog, runner.as_ref()).map(|_| ()).unwrap_err()
        });
        assert!(
            !finished.load(Ordering::SeqCst),
            "{name}: the run waited for the node"
        );
        assert_eq!(
            failed.error.to_string().lines().next(),
            Some("node `stubborn` exceeded its 100ms timeout"),
            "{name}"
        );
    }
}

#[test]
fn the_run_timeout_stops_a_chain_on_every_runner() {
    // Ten 100 ms sleeps in a chain under a 250 ms run limit: the node
    // running at the limit fails naming the run's limit, later ones never start.
    let reg = FunctionRegistry::with_builtins();
    let mut nodes = Vec::new();
    for i in 0..10 {
        nodes.push(
            reg.node(
                "sleep_ms",
                ["ms", format!("d{i}").as_str()],
                [format!("d{}", i + 1)],
            )
            .unwrap()
            .name(format!("step{i}"))
            .build()
            .unwrap(),
        );
    }
    let pipeline = Pipeline::new(nodes).unwrap();
    for runner in every_runner() {
        let pipeline = pipeline.clone();
        let name = runner.name();
        let failed = within_a_minute(move || {
            let mut catalog = Catalog::new();
            catalog.add_data("d0", Data::new(0i64));
            catalog.add_data("ms", Data::new(100i64));
            run_job(
                &pipeline,
                &catalog,
                &Hooks::new(),
                &CancelToken::new(),
                runner.as_ref(),
                Some(Duration::from_millis(250)),
            )
            .map(|_| ())
            .unwrap_err()
        });
        let RunError::Timeout { limit, scope, .. } = &failed.error else {
            panic!("{name}: expected a timeout, got {}", failed.error)
        };
        assert_eq!(
            (*limit, *scope),
            (Duration::from_millis(250), TimeoutScope::Run),
            "{name}"
        );
        let text = failed.error.to_string();
        assert!(
            text.contains("exceeded the run's 250ms timeout")
                || text.contains("the run exceeded its 250ms timeout"),
            "{name}: {text}"
        );
        assert!(failed.node_timings.len() < 10, "{name}");
    }
}

#[test]
fn the_async_runner_is_built_by_name_and_runs_inside_a_runtime() {
    assert_eq!(runner_by_name("async", Some(8)).unwrap().name(), "async");
    // Called from inside a Tokio runtime (a server's blocking task, say),
    // the runner drives the run from a helper thread instead of panicking.
    let pipeline = Pipeline::new(vec![
        node_async(|x: Arc<i64>| async move { *x + 1 }, "x", "y")
            .name("inc")
            .build()
            .unwrap(),
    ])
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (own, shared) = rt.block_on(async {
        let mut catalog = Catalog::new();
        catalog.add_data("x", Data::new(1i64));
        let own = run(&pipeline, &catalog, &AsyncRunner::new(None)).unwrap();
        // A current-thread runtime's handle cannot run the nodes while this
        // thread blocks on the run: refused with a clear error, not a hang.
        let shared = run(
            &pipeline,
            &catalog,
            &AsyncRunner::with_handle(tokio::runtime::Handle::current(), None),
        )
        .map(|_| ())
        .unwrap_err();
        (own, shared)
    });
    assert_eq!(own.outputs["y"].downcast_ref::<i64>(), Some(&2));
    assert!(
        shared
            .error
            .to_string()
            .contains("needs the handle of a multi-thread Tokio runtime"),
        "{}",
        shared.error
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut catalog = Catalog::new();
    catalog.add_data("x", Data::new(41i64));
    let out = run(
        &pipeline,
        &catalog,
        &AsyncRunner::with_handle(rt.handle().clone(), None),
    )
    .unwrap();
    assert_eq!(out.outputs["y"].downcast_ref::<i64>(), Some(&42));
}
