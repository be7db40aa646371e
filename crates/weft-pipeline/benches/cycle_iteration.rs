//! Per-iteration overhead of a one-node cycle: the cycle machinery (slot
//! moves, the node call, the condition, the per-iteration timing) around a
//! body that adds one to an integer. Run with
//! `cargo bench -p weft-pipeline --bench cycle_iteration`; prints µs per
//! iteration (target: at most 5 µs).

use std::time::Instant;

use weft_pipeline::{CancelToken, Condition, Data, NoConvergence, Pipeline, cycle, node};

fn main() {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let body = Pipeline::new([node(|x: &i64| x + 1, "x", "x_next").name("inc").build().unwrap()]).unwrap();
    let with_condition = cycle("count", body.clone())
        .state("x", "x_next")
        .max_iterations(iterations)
        .converge_when(Condition::parse(&format!("x_next >= {iterations}")).unwrap())
        .build()
        .unwrap();
    let fixed = cycle("fixed", body)
        .state("x", "x_next")
        .max_iterations(iterations)
        .on_no_convergence(NoConvergence::Warn)
        .build()
        .unwrap();
    let cancel = CancelToken::new();
    for (label, n) in [
        ("with `x_next >= N` condition", &with_condition),
        ("fixed count, no condition", &fixed),
    ] {
        // Warm up, then the best of 5 runs.
        let _ = n.run_detailed(vec![Data::new(0i64)], &cancel).unwrap();
        let mut best = f64::INFINITY;
        let mut done = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let (out, report) = n.run_detailed(vec![Data::new(0i64)], &cancel).unwrap();
            let secs = t.elapsed().as_secs_f64();
            done = report.unwrap().iterations;
            assert_eq!(
                out[0].downcast_ref::<i64>(),
                Some(&i64::try_from(iterations).unwrap())
            );
            best = best.min(secs);
        }
        println!(
            "one-node cycle, {label}: {done} iterations in {:.1} ms = {:.3} µs/iteration (target ≤ 5 µs)",
            best * 1e3,
            best * 1e6 / done as f64
        );
    }
}
