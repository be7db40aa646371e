//! Data-driven pipeline cases: every `tests/cases/*.json` file holds a list
//! of cases. A case builds a pipeline from `nodes`, applies `ops` in order,
//! and checks `expect` (node names in order, layers, free inputs/outputs,
//! wiring of renamed nodes, or an error with substrings).
//!
//! The JSON files are generated from `tests/gen_cases.py` (shared fixtures
//! keep them short): edit it and run `python3 ../gen_cases.py` inside
//! `tests/cases`, or edit the JSON directly for a one-off case.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use weft_pipeline::{FunctionRegistry, NamespaceOptions, Node, Pipeline, PipelineError, PipelineFilter};

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct NodeSpec {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    inputs: Vec<String>,
    #[serde(default)]
    outputs: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    func: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Op {
    Filter(PipelineFilter),
    OnlyNodes { names: Vec<String> },
    OnlyNodesWithTags { tags: Vec<String> },
    OnlyNodesWithNamespaces { namespaces: Vec<String> },
    FromNodes { names: Vec<String> },
    ToNodes { names: Vec<String> },
    FromInputs { datasets: Vec<String> },
    ToOutputs { datasets: Vec<String> },
    OnlyNodesWithInputs { datasets: Vec<String> },
    OnlyNodesWithOutputs { datasets: Vec<String> },
    Union { other: Vec<NodeSpec> },
    Difference { other: Vec<NodeSpec> },
    Intersection { other: Vec<NodeSpec> },
    Add { other: Vec<NodeSpec> },
    Tag { tags: Vec<String> },
    Namespace(NamespaceOptions),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Expect {
    nodes: Option<Vec<String>>,
    layers: Option<Vec<Vec<String>>>,
    inputs: Option<BTreeSet<String>>,
    outputs: Option<BTreeSet<String>>,
    /// node name → [inputs, outputs]
    wiring: Option<BTreeMap<String, [Vec<String>; 2]>>,
    /// node name → namespace
    namespaces: Option<BTreeMap<String, Option<String>>>,
    /// node name → tags
    tags: Option<BTreeMap<String, BTreeSet<String>>>,
    /// node name → names of its parents
    parents: Option<BTreeMap<String, Vec<String>>>,
    /// substrings the error message must contain
    error: Option<Vec<String>>,
    /// substrings the error message must not contain
    error_excludes: Option<Vec<String>>,
    /// the error variant, e.g. `UnknownNodes`
    error_kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    nodes: Vec<NodeSpec>,
    #[serde(default)]
    ops: Vec<Op>,
    expect: Expect,
}

fn build_node(reg: &FunctionRegistry, spec: &NodeSpec) -> Node {
    let func = spec.func.as_deref().unwrap_or("noop");
    let mut b = reg
        .node(func, spec.inputs.clone(), spec.outputs.clone())
        .unwrap()
        .tags(spec.tags.clone());
    if let Some(name) = &spec.name {
        b = b.name(name.clone());
    }
    if let Some(ns) = &spec.namespace {
        b = b.namespace(ns.clone());
    }
    b.build().unwrap()
}

fn build(reg: &FunctionRegistry, specs: &[NodeSpec]) -> Result<Pipeline, PipelineError> {
    Pipeline::new(specs.iter().map(|s| build_node(reg, s)).collect::<Vec<_>>())
}

fn apply(reg: &FunctionRegistry, p: &Pipeline, op: &Op) -> Result<Pipeline, PipelineError> {
    let other = |o: &[NodeSpec]| build(reg, o).expect("`other` pipeline must be valid");
    match op {
        Op::Filter(f) => p.filter(f),
        Op::OnlyNodes { names } => p.only_nodes(names),
        Op::OnlyNodesWithTags { tags } => Ok(p.only_nodes_with_tags(tags)),
        Op::OnlyNodesWithNamespaces { namespaces } => p.only_nodes_with_namespaces(namespaces),
        Op::FromNodes { names } => p.from_nodes(names),
        Op::ToNodes { names } => p.to_nodes(names),
        Op::FromInputs { datasets } => p.from_inputs(datasets),
        Op::ToOutputs { datasets } => p.to_outputs(datasets),
        Op::OnlyNodesWithInputs { datasets } => p.only_nodes_with_inputs(datasets),
        Op::OnlyNodesWithOutputs { datasets } => p.only_nodes_with_outputs(datasets),
        Op::Union { other: o } => p | &other(o),
        Op::Add { other: o } => p + &other(o),
        Op::Difference { other: o } => Ok(p - &other(o)),
        Op::Intersection { other: o } => Ok(p & &other(o)),
        Op::Tag { tags } => Ok(p.tag(tags)),
        Op::Namespace(opts) => p.namespaced(opts),
    }
}

fn kind(e: &PipelineError) -> &'static str {
    match e {
        PipelineError::InvalidNode { .. } => "InvalidNode",
        PipelineError::DuplicateFunction(_) => "DuplicateFunction",
        PipelineError::InvalidPipeline { .. } => "InvalidPipeline",
        PipelineError::UnknownNodes { .. } => "UnknownNodes",
        PipelineError::UnknownDatasets { .. } => "UnknownDatasets",
        PipelineError::UnknownNamespaces { .. } => "UnknownNamespaces",
        PipelineError::EmptyAfterFilter { .. } => "EmptyAfterFilter",
        PipelineError::NamespaceMapping { .. } => "NamespaceMapping",
        PipelineError::UnknownFunction { .. } => "UnknownFunction",
        PipelineError::Answers { .. } => "Answers",
        PipelineError::InvalidCycle { .. } => "InvalidCycle",
        PipelineError::CycleNode { .. } => "CycleNode",
        PipelineError::CycleCondition { .. } => "CycleCondition",
        PipelineError::CycleCancelled { .. } => "CycleCancelled",
        PipelineError::NoConvergence { .. } => "NoConvergence",
    }
}

fn run_case(reg: &FunctionRegistry, case: &Case) -> Result<(), String> {
    let mut result = build(reg, &case.nodes);
    for op in &case.ops {
        result = result.and_then(|p| apply(reg, &p, op));
    }
    let e = &case.expect;
    let p = match (result, &e.error) {
        (Err(err), Some(subs)) => {
            let msg = err.to_string();
            for s in subs {
                if !msg.contains(s.as_str()) {
                    return Err(format!("error lacks `{s}`:\n{msg}"));
                }
            }
            for s in e.error_excludes.iter().flatten() {
                if msg.contains(s.as_str()) {
                    return Err(format!("error should not contain `{s}`:\n{msg}"));
                }
            }
            if let Some(k) = &e.error_kind
                && k != kind(&err)
            {
                return Err(format!("expected a {k} error, got {}: {msg}", kind(&err)));
            }
            return Ok(());
        }
        (Err(err), None) => return Err(format!("unexpected error: {err}")),
        (Ok(p), Some(_)) => return Err(format!("expected an error, got {:?}", p)),
        (Ok(p), None) => p,
    };
    let names: Vec<String> = p.nodes().iter().map(|n| n.name().to_string()).collect();
    if let Some(want) = &e.nodes
        && want != &names
    {
        return Err(format!("nodes: expected {want:?}, got {names:?}"));
    }
    if let Some(want) = &e.layers {
        let got: Vec<Vec<String>> = p
            .layers()
            .iter()
            .map(|l| l.iter().map(|n| n.name().to_string()).collect())
            .collect();
        if want != &got {
            return Err(format!("layers: expected {want:?}, got {got:?}"));
        }
    }
    if let Some(want) = &e.inputs
        && want != &p.inputs()
    {
        return Err(format!("inputs: expected {want:?}, got {:?}", p.inputs()));
    }
    if let Some(want) = &e.outputs
        && want != &p.outputs()
    {
        return Err(format!("outputs: expected {want:?}, got {:?}", p.outputs()));
    }
    for (name, [ins, outs]) in e.wiring.iter().flatten() {
        let n = p
            .node(name)
            .ok_or_else(|| format!("no node `{name}` in {names:?}"))?;
        if n.inputs() != ins.as_slice() || n.outputs() != outs.as_slice() {
            return Err(format!(
                "wiring of `{name}`: expected {ins:?} -> {outs:?}, got {:?} -> {:?}",
                n.inputs(),
                n.outputs()
            ));
        }
    }
    for (name, ns) in e.namespaces.iter().flatten() {
        let n = p
            .node(name)
            .ok_or_else(|| format!("no node `{name}` in {names:?}"))?;
        if n.namespace() != ns.as_deref() {
            return Err(format!(
                "namespace of `{name}`: expected {ns:?}, got {:?}",
                n.namespace()
            ));
        }
    }
    for (name, tags) in e.tags.iter().flatten() {
        let n = p
            .node(name)
            .ok_or_else(|| format!("no node `{name}` in {names:?}"))?;
        if n.tags() != tags {
            return Err(format!("tags of `{name}`: expected {tags:?}, got {:?}", n.tags()));
        }
    }
    for (name, want) in e.parents.iter().flatten() {
        let i = p
            .index_of(name)
            .ok_or_else(|| format!("no node `{name}` in {names:?}"))?;
        let got: Vec<String> = p.parents()[i].iter().map(|&j| names[j].clone()).collect();
        if &got != want {
            return Err(format!("parents of `{name}`: expected {want:?}, got {got:?}"));
        }
    }
    // Invariants of every pipeline.
    for (i, ps) in p.parents().iter().enumerate() {
        for &j in ps {
            if j >= i || !p.children()[j].contains(&i) {
                return Err(format!("parents/children inconsistent at {i}"));
            }
        }
    }
    Ok(())
}

#[test]
fn json_cases() {
    let reg = FunctionRegistry::with_builtins();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no case files in {}", dir.display());
    let mut failures = Vec::new();
    let mut count = 0;
    let mut seen = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let cases: Vec<Case> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let stem = file.file_stem().unwrap().to_string_lossy().to_string();
        for case in &cases {
            count += 1;
            let id = format!("{stem}/{}", case.name);
            assert!(seen.insert(id.clone()), "duplicate case name {id}");
            if let Err(why) = run_case(&reg, case) {
                failures.push(format!("[{id}] {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    eprintln!("{count} cases passed");
}
