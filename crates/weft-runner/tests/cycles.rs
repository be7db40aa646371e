//! Cycle nodes under both runners: convergence recorded on the node's
//! timing, warnings on the run, failures naming the cycle, and independent
//! cycles overlapping under the thread runner (proven by a latch).

#![allow(
    clippy::result_large_err,
    reason = "helpers return run_pipeline's own Result<RunOutput, RunFailed>"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use weft_catalog::Catalog;
use weft_pipeline::{CancelToken, Condition, Data, NoConvergence, Node, Pipeline, cycle, node};
use weft_runner::{
    Hooks, RunContext, RunFailed, RunJob, RunOutput, Runner, SequentialRunner, ThreadRunner, TypeCheck,
    run_pipeline,
};

fn run(pipeline: &Pipeline, catalog: &Catalog, runner: &dyn Runner) -> Result<RunOutput, RunFailed> {
    let context = RunContext {
        session_id: "s".into(),
        run_id: "r".into(),
        run_index: 0,
        total_runs: 1,
    };
    let cancel = CancelToken::new();
    let hooks = Hooks::new();
    run_pipeline(
        &RunJob {
            pipeline,
            catalog,
            hooks: &hooks,
            context: &context,
            cancel: &cancel,
            only_missing_outputs: false,
            type_check: TypeCheck::Strict,
            timeout: None,
        },
        runner,
    )
}

/// Newton's method for sqrt(target): `x`, `params:target` → `x_next`, `delta`.
fn newton_cycle(name: &str, x: &str, max: usize, policy: NoConvergence) -> Node {
    let step = |x: &f64, target: &f64| {
        let next = x - (x * x - target) / (2.0 * x);
        (next, (next - x).abs())
    };
    let body = Pipeline::new([node(
        step,
        [x, "params:target"],
        [format!("{name}_next"), format!("{name}_delta")],
    )
    .name("step")
    .build()
    .unwrap()])
    .unwrap();
    cycle(name, body)
        .state(x, format!("{name}_next"))
        .max_iterations(max)
        .converge_when(Condition::parse(&format!("{name}_delta < 1e-12")).unwrap())
        .on_no_convergence(policy)
        .build()
        .unwrap()
}

fn runners() -> Vec<Box<dyn Runner>> {
    vec![Box::new(SequentialRunner), Box::new(ThreadRunner::new(Some(2)))]
}

#[test]
fn a_cycle_between_ordinary_nodes_converges_and_is_recorded() {
    let guess = node(|t: &f64| t / 2.0, "params:target", "x0")
        .name("guess")
        .build()
        .unwrap();
    let report = node(|r: &f64| format!("{r:.12}"), "newton_next", "shown")
        .name("show")
        .build()
        .unwrap();
    let p = Pipeline::new([
        guess,
        newton_cycle("newton", "x0", 100, NoConvergence::Fail),
        report,
    ])
    .unwrap();
    for runner in runners() {
        let mut catalog = Catalog::new();
        catalog.add_parameters(&serde_json::json!({"target": 2.0}));
        let out = run(&p, &catalog, runner.as_ref()).unwrap();
        assert_eq!(
            out.outputs["shown"].downcast_ref::<String>().map(String::as_str),
            Some("1.414213562373"),
            "{}",
            runner.name()
        );
        let t = out.node_timings.iter().find(|t| t.node == "newton").unwrap();
        let c = t.cycle.as_ref().expect("the cycle's report is on its timing");
        assert!(c.converged);
        assert_eq!(c.iterations, c.iteration_ms.len());
        assert!((4..10).contains(&c.iterations), "{c:?}");
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        // Other nodes carry no cycle report; the JSON form carries it.
        assert!(
            out.node_timings
                .iter()
                .filter(|t| t.node != "newton")
                .all(|t| t.cycle.is_none())
        );
        let json = serde_json::to_value(t).unwrap();
        assert_eq!(json["cycle"]["converged"], true);
        assert_eq!(json["cycle"]["iterations"], c.iterations);
        assert_eq!(
            json["cycle"]["iteration_ms"].as_array().unwrap().len(),
            c.iterations
        );
    }
}

#[test]
fn not_converging_fails_the_run_or_warns_as_declared() {
    for runner in runners() {
        let mut catalog = Catalog::new();
        catalog.add_parameters(&serde_json::json!({"target": 2.0}));
        catalog.add_data("x", Data::new(1.0f64));
        let p = Pipeline::new([newton_cycle("newton", "x", 2, NoConvergence::Fail)]).unwrap();
        let failed = run(&p, &catalog, runner.as_ref()).unwrap_err();
        assert_eq!(failed.error.node(), Some("newton"));
        let chain = failed.error.chain().join(" | ");
        assert!(
            chain.contains("cycle `newton` did not converge within 2 iterations"),
            "{chain}"
        );

        let p = Pipeline::new([newton_cycle("newton", "x", 2, NoConvergence::Warn)]).unwrap();
        let out = run(&p, &catalog, runner.as_ref()).unwrap();
        assert_eq!(
            out.outputs["newton_next"].downcast_ref::<f64>(),
            Some(&(17.0 / 12.0))
        );
        assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
        assert!(
            out.warnings[0].contains("cycle `newton` did not converge within 2 iterations"),
            "{:?}",
            out.warnings
        );
        let c = out.node_timings[0].cycle.as_ref().unwrap();
        assert_eq!((c.iterations, c.converged), (2, false));
    }
}

/// A latch both cycles must reach before either can finish its first
/// iteration: if the runner ran them one after the other, the first would
/// wait out the timeout and fail.
#[derive(Default)]
struct Latch {
    arrived: Mutex<usize>,
    all_here: Condvar,
}

impl Latch {
    fn arrive_and_wait(&self, parties: usize) -> Result<(), String> {
        let mut n = self.arrived.lock().unwrap();
        *n += 1;
        self.all_here.notify_all();
        let (n, timeout) = self
            .all_here
            .wait_timeout_while(n, Duration::from_secs(20), |n| *n < parties)
            .unwrap();
        if timeout.timed_out() {
            return Err(format!("only {} of {parties} cycles ran at once", *n));
        }
        Ok(())
    }
}

#[test]
fn independent_cycles_run_in_parallel_under_the_thread_runner() {
    let latch = Arc::new(Latch::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let make = |name: &str| {
        let latch = Arc::clone(&latch);
        let calls = Arc::clone(&calls);
        let step = move |x: &i64| -> Result<i64, String> {
            // Only the first iteration of each cycle meets at the latch.
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                latch.arrive_and_wait(2)?;
            }
            Ok(x + 1)
        };
        let body = Pipeline::new([node(step, format!("{name}_x"), format!("{name}_next"))
            .name("step")
            .build()
            .unwrap()])
        .unwrap();
        cycle(name, body)
            .state(format!("{name}_x"), format!("{name}_next"))
            .max_iterations(100)
            .converge_when(Condition::parse(&format!("{name}_next >= 5")).unwrap())
            .build()
            .unwrap()
    };
    let p = Pipeline::new([make("a"), make("b")]).unwrap();
    let mut catalog = Catalog::new();
    catalog.add_data("a_x", Data::new(0i64));
    catalog.add_data("b_x", Data::new(0i64));
    let out = run(&p, &catalog, &ThreadRunner::new(Some(2))).unwrap();
    assert_eq!(out.outputs["a_next"].downcast_ref::<i64>(), Some(&5));
    assert_eq!(out.outputs["b_next"].downcast_ref::<i64>(), Some(&5));
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    for t in &out.node_timings {
        assert_eq!(t.cycle.as_ref().unwrap().iterations, 5);
    }
}
