//! Framework overhead of the runners (not a timed test: prints numbers).
//!
//! Run with `cargo bench -p weft-runner --bench runners`.
//! Targets (issue #2): at most 2 µs per node on the sequential runner for
//! trivial nodes, and the thread runner at least 1.8× faster than the
//! sequential one on a fan-out of CPU-bound nodes on 2 cores. Issue #12:
//! 1,000 independent `sleep_ms` nodes of 50 ms each finish in well under a
//! second under the async runner.

use std::time::{Duration, Instant};

use weft_catalog::Catalog;
use weft_pipeline::{CancelToken, Data, FunctionRegistry, Node, Pipeline, node};
use weft_runner::{
    AsyncRunner, Hooks, RunContext, RunJob, Runner, SequentialRunner, ThreadRunner, TypeCheck, run_pipeline,
};

fn chain(n: usize) -> Pipeline {
    let nodes: Vec<Node> = (0..n)
        .map(|i| {
            node(|x: &i64| x + 1, format!("d{i}"), format!("d{}", i + 1))
                .name(format!("n{i:04}"))
                .build()
                .unwrap()
        })
        .collect();
    Pipeline::new(nodes).unwrap()
}

fn fan_out(width: usize, func: &str, registry: &FunctionRegistry) -> Pipeline {
    let mut nodes = vec![node(|x: &i64| *x, "src", "root").name("root").build().unwrap()];
    let mut mids = Vec::new();
    for i in 0..width {
        let out = format!("m{i:04}");
        let b = if func == "add_one" {
            registry.node("add_one", ["root"], [out.as_str()]).unwrap()
        } else {
            registry.node(func, ["ms", "root"], [out.as_str()]).unwrap()
        };
        nodes.push(b.name(format!("mid{i:04}")).build().unwrap());
        mids.push(out);
    }
    nodes.push(
        registry
            .node("sum", mids, ["total"])
            .unwrap()
            .name("sink")
            .build()
            .unwrap(),
    );
    Pipeline::new(nodes).unwrap()
}

fn run_once(pipeline: &Pipeline, runner: &dyn Runner, inputs: &[(&str, Data)]) -> Duration {
    let start = Instant::now();
    let mut catalog = Catalog::new();
    for (name, data) in inputs {
        catalog.add_data(*name, data.clone());
    }
    let hooks = Hooks::new();
    let ctx = RunContext {
        session_id: "bench".into(),
        run_id: "bench".into(),
        run_index: 0,
        total_runs: 1,
    };
    let cancel = CancelToken::new();
    let job = RunJob {
        pipeline,
        catalog: &catalog,
        hooks: &hooks,
        context: &ctx,
        cancel: &cancel,
        only_missing_outputs: false,
        type_check: TypeCheck::Strict,
        timeout: None,
    };
    let out = run_pipeline(&job, runner).expect("bench run succeeds");
    assert!(!out.outputs.is_empty() || !out.node_timings.is_empty());
    start.elapsed()
}

fn median(pipeline: &Pipeline, runner: &dyn Runner, inputs: &[(&str, Data)], iters: usize) -> Duration {
    for _ in 0..iters.min(3) {
        run_once(pipeline, runner, inputs);
    }
    let mut samples: Vec<Duration> = (0..iters).map(|_| run_once(pipeline, runner, inputs)).collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let registry = FunctionRegistry::with_builtins();
    let seq = SequentialRunner;
    let thr = ThreadRunner::new(Some(2));
    println!("weft runner benchmark (median of repeated runs, framework overhead per node)");

    let p = chain(1000);
    let inputs = [("d0", Data::new(0i64))];
    for (name, runner) in [
        ("sequential", &seq as &dyn Runner),
        ("thread(2)", &thr as &dyn Runner),
    ] {
        let t = median(&p, runner, &inputs, 51);
        println!(
            "chain    1000 trivial nodes  {name:<11} total {:>9.3} ms  per node {:>7.3} µs",
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() * 1e6 / 1000.0
        );
    }

    let p = fan_out(1000, "add_one", &registry);
    let inputs = [("src", Data::new(1i64))];
    for (name, runner) in [
        ("sequential", &seq as &dyn Runner),
        ("thread(2)", &thr as &dyn Runner),
    ] {
        let t = median(&p, runner, &inputs, 51);
        println!(
            "fan-out  1→1000→1 trivial    {name:<11} total {:>9.3} ms  per node {:>7.3} µs",
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() * 1e6 / 1002.0
        );
    }

    let p = fan_out(200, "spin_ms", &registry);
    let inputs = [("src", Data::new(1i64)), ("ms", Data::new(2i64))];
    let t_seq = median(&p, &seq, &inputs, 5);
    let t_thr = median(&p, &thr, &inputs, 5);
    println!(
        "fan-out  1→200→1 spin 2 ms   sequential {:>8.1} ms  thread(2) {:>8.1} ms  speed-up {:.2}×",
        t_seq.as_secs_f64() * 1e3,
        t_thr.as_secs_f64() * 1e3,
        t_seq.as_secs_f64() / t_thr.as_secs_f64()
    );

    let async_default = AsyncRunner::new(None);
    let p = chain(1000);
    let inputs = [("d0", Data::new(0i64))];
    let t = median(&p, &async_default, &inputs, 21);
    println!(
        "chain    1000 trivial nodes  async(64)   total {:>9.3} ms  per node {:>7.3} µs",
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e6 / 1000.0
    );

    // 1,000 independent sleeps of 50 ms (issue #12).
    let sleeps = independent_sleeps(1000, &registry);
    let inputs = [("ms", Data::new(50i64))];
    let wide = AsyncRunner::new(Some(1000));
    let thr64 = ThreadRunner::new(Some(64));
    for (name, runner, iters) in [
        ("async(1000)", &wide as &dyn Runner, 5),
        ("async(64)", &async_default as &dyn Runner, 3),
        ("thread(64)", &thr64 as &dyn Runner, 3),
    ] {
        let t = median(&sleeps, runner, &inputs, iters);
        println!(
            "1000 independent sleep_ms 50 ms  {name:<11} total {:>9.1} ms",
            t.as_secs_f64() * 1e3
        );
    }
    let t = run_once(&sleeps, &thr, &inputs);
    println!(
        "1000 independent sleep_ms 50 ms  thread(2)   total {:>9.1} ms",
        t.as_secs_f64() * 1e3
    );
}

fn independent_sleeps(n: usize, registry: &FunctionRegistry) -> Pipeline {
    let nodes: Vec<Node> = (0..n)
        .map(|i| {
            registry
                .node("sleep_ms", ["ms"], [format!("o{i:04}")])
                .unwrap()
                .name(format!("sleep{i:04}"))
                .build()
                .unwrap()
        })
        .collect();
    Pipeline::new(nodes).unwrap()
}
