//! Construction and filtering stay near-linear: large chains and fans are
//! built well within a generous time budget (quadratic scans would not be).

use std::time::{Duration, Instant};

use weft_pipeline::{FunctionRegistry, Node, Pipeline, PipelineFilter};

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

fn fan(n: usize) -> Vec<Node> {
    let reg = FunctionRegistry::with_builtins();
    let mut nodes = vec![
        reg.node("noop", "src", "root")
            .unwrap()
            .name("root")
            .build()
            .unwrap(),
    ];
    let leaves: Vec<String> = (0..n).map(|i| format!("leaf{i}")).collect();
    for leaf in &leaves {
        nodes.push(
            reg.node("noop", "root", leaf.as_str())
                .unwrap()
                .name(format!("n_{leaf}"))
                .build()
                .unwrap(),
        );
    }
    nodes.push(
        reg.node("noop", leaves, "sink")
            .unwrap()
            .name("sink")
            .build()
            .unwrap(),
    );
    nodes
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

#[test]
fn thousand_node_chain_is_fast() {
    let nodes = chain(1_000);
    let (p, took) = timed(|| Pipeline::new(nodes).unwrap());
    assert_eq!(p.len(), 1_000);
    assert_eq!(p.layers().len(), 1_000);
    assert_eq!(p.nodes()[999].name(), "n00999");
    assert!(
        took < Duration::from_millis(500),
        "1,000-node chain took {took:?}"
    );
}

#[test]
fn large_pipelines_scale_near_linearly() {
    let budget = Duration::from_secs(5);
    let nodes = chain(20_000);
    let (p, took) = timed(|| Pipeline::new(nodes).unwrap());
    assert!(took < budget, "20,000-node chain took {took:?}");
    let (q, took) = timed(|| p.from_nodes(&["n10000"]).unwrap());
    assert_eq!(q.len(), 10_000);
    assert!(took < budget, "from_nodes took {took:?}");
    let f = PipelineFilter {
        to_outputs: vec!["d15000".into()],
        from_inputs: vec!["d5000".into()],
        ..Default::default()
    };
    let (q, took) = timed(|| p.filter(&f).unwrap());
    assert_eq!(q.len(), 10_000);
    assert!(took < budget, "filter took {took:?}");

    let nodes = fan(20_000);
    let (p, took) = timed(|| Pipeline::new(nodes).unwrap());
    assert!(took < budget, "20,000-node fan took {took:?}");
    assert_eq!(p.layers().len(), 3);
    assert_eq!(p.parents()[p.len() - 1].len(), 20_000);
    let (u, took) = timed(|| (&p | &p).unwrap());
    assert_eq!(u, p);
    assert!(took < budget, "union took {took:?}");
}
