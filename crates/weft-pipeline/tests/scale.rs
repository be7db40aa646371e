//! Large chains and fans build and filter correctly. (How fast is measured
//! by `cargo bench -p weft-pipeline --bench construction`, not here.)

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

#[test]
fn thousand_node_chain_is_ordered() {
    let nodes = chain(1_000);
    let p = Pipeline::new(nodes).unwrap();
    assert_eq!(p.len(), 1_000);
    assert_eq!(p.layers().len(), 1_000);
    assert_eq!(p.nodes()[999].name(), "n00999");
}

#[test]
fn large_pipelines_build_and_filter() {
    let nodes = chain(20_000);
    let p = Pipeline::new(nodes).unwrap();
    let q = p.from_nodes(&["n10000"]).unwrap();
    assert_eq!(q.len(), 10_000);
    let f = PipelineFilter {
        to_outputs: vec!["d15000".into()],
        from_inputs: vec!["d5000".into()],
        ..Default::default()
    };
    let q = p.filter(&f).unwrap();
    assert_eq!(q.len(), 10_000);

    let nodes = fan(20_000);
    let p = Pipeline::new(nodes).unwrap();
    assert_eq!(p.layers().len(), 3);
    assert_eq!(p.parents()[p.len() - 1].len(), 20_000);
    let u = (&p | &p).unwrap();
    assert_eq!(u, p);
}
