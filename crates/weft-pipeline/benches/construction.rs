//! Pipeline construction and filtering speed (prints numbers; not a test).
//!
//! `cargo bench -p weft-pipeline --bench construction`

use std::time::Instant;

use weft_pipeline::{FunctionRegistry, Node, Pipeline};

fn chain(n: usize) -> Vec<Node> {
    let reg = FunctionRegistry::with_builtins();
    (0..n)
        .map(|i| {
            reg.node("noop", format!("d{i}"), format!("d{}", i + 1))
                .unwrap()
                .name(format!("n{i:05}"))
                .build()
                .unwrap()
        })
        .collect()
}

fn main() {
    println!("weft pipeline construction benchmark");
    for n in [1_000, 20_000] {
        let nodes = chain(n);
        let t = Instant::now();
        let p = Pipeline::new(nodes).unwrap();
        let built = t.elapsed();
        let t = Instant::now();
        let q = p.from_nodes(&[format!("n{:05}", n / 2)]).unwrap();
        let filtered = t.elapsed();
        assert_eq!(q.len(), n - n / 2);
        println!(
            "chain of {n:>6} nodes: Pipeline::new {:>9.3} ms, from_nodes {:>9.3} ms",
            built.as_secs_f64() * 1e3,
            filtered.as_secs_f64() * 1e3
        );
    }
}
