//! `pipelines.yml` parsing benchmark (prints numbers; not a timed test).
//!
//! `cargo bench -p weft-session --bench yaml_pipelines`
//!
//! For a chain of N `add_one` nodes (N = 1, 1,000 and 100,000) it prints the
//! time per node of: the YAML parse alone (`weft_config::yaml::from_str`,
//! and without its fast path), the whole `parse_pipelines` (YAML, node
//! construction, `Pipeline` validation), and `Pipeline::new` alone. Target (issue 8 §9): a 1,000-node chain costs at most 5 µs
//! per node over a 1-node one.

use std::path::Path;
use std::time::Instant;

use weft_pipeline::FunctionRegistry;

fn chain(n: usize) -> String {
    let mut yaml = String::with_capacity(n * 80);
    yaml.push_str("__default__:\n  nodes:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "    - name: n{i}\n      func: add_one\n      inputs: d{i}\n      outputs: d{}\n",
            i + 1
        ));
    }
    yaml
}

/// Best of `reps` timings of `f`, in µs.
fn best_us(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let registry = FunctionRegistry::with_builtins();
    let file = Path::new("pipelines.yml");
    let mut base = (0.0, 0.0);
    for (n, reps) in [(1usize, 200usize), (1_000, 20), (100_000, 2)] {
        let text = chain(n);
        let yaml = best_us(reps, || {
            weft_config::yaml::from_str(&text, file).expect("valid YAML");
        });
        let full = best_us(reps, || {
            let p = weft_session::parse_pipelines(file, &text, &registry).expect("valid pipelines");
            assert_eq!(p["__default__"].nodes().len(), n);
        });
        let full_yaml = best_us(reps, || {
            weft_config::yaml::from_str_full(&text, file).expect("valid YAML");
        });
        println!(
            "  YAML without the fast path (files using anchors, quotes, flow maps...): {:.2} µs/node",
            full_yaml / n as f64
        );
        let parsed = weft_session::parse_pipelines(file, &text, &registry).expect("valid pipelines");
        let nodes = parsed["__default__"].nodes().to_vec();
        let construct = best_us(reps, || {
            weft_pipeline::Pipeline::new(nodes.clone()).expect("valid pipeline");
        });
        println!(
            "  of which Pipeline::new (weft-pipeline, node clones included): {:.2} µs/node",
            construct / n as f64
        );
        if n == 1 {
            base = (yaml, full);
            println!("yaml_pipelines/1 node: yaml {yaml:.1} µs, parse_pipelines {full:.1} µs");
        } else {
            println!(
                "yaml_pipelines/{n} nodes: yaml {:.2} µs/node, parse_pipelines {:.2} µs/node (over the 1-node run)",
                (yaml - base.0) / n as f64,
                (full - base.1) / n as f64
            );
        }
    }
}
