//! weft's testing runtime: run a pipeline with chosen nodes replaced by
//! scripted outputs or errors, feed it inputs, and assert its outputs,
//! which nodes ran, in what order and how often.
//!
//! Cases are written in Rust ([`TestCase`]'s builder) or in YAML files
//! (`tests/*.yml` in a project, run by `weft test`):
//!
//! ```yaml
//! cases:
//!   - name: doubling
//!     pipeline: __default__        # default
//!     params: {factor: 3}          # merged over the project's parameters
//!     inputs: {x: 2}               # JSON values for the pipeline's free inputs
//!     replace:                     # node -> scripted outputs, or an error
//!       load: {outputs: {raw: [1, 2]}}
//!       flaky: {error: "connection refused"}
//!     expect:
//!       outputs: {y: 6}            # any dataset a node wrote (numbers within `tolerance`)
//!       ran: [load, double]        # exactly these nodes ran
//!       not_ran: [publish]
//!       order: [load, double]      # these ran in this order
//!       times: {double: 1}
//!       iterations: {newton: 6}    # iterations of a cycle node
//!       error: {node: flaky, contains: refused}   # the run must fail so
//! ```
//!
//! Every node runs through a recording wrapper (its calls and outputs are
//! logged per case); data stays in memory (the catalog is a memory
//! catalog), so a case touches no files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;
use serde_json::Value;
use weft_catalog::Catalog;
use weft_pipeline::cycle::{CycleInfo, CycleReport};
use weft_pipeline::{
    CancelToken, Data, Node, NodeBuilder, NodeCall, NodeFn, NodeFnError, Pipeline, Signature,
};
use weft_runner::{Hooks, RunContext, RunJob, TypeCheck, run_pipeline, runner_by_name};

/// What can make a case unusable (bad input, as opposed to a failed case).
#[derive(Debug, thiserror::Error)]
pub enum TestingError {
    /// A case file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A case file is not valid YAML.
    #[error("{}: {source}", file.display())]
    Yaml {
        /// The file.
        file: PathBuf,
        /// The parser's error.
        #[source]
        source: Box<weft_config::ConfigError>,
    },
    /// A case file's content has the wrong shape.
    #[error("{}: {message}", file.display())]
    CaseFile {
        /// The file.
        file: PathBuf,
        /// What is wrong (with the case's name or position).
        message: String,
    },
    /// A case refers to things the pipeline does not have.
    #[error("case `{case}`: {}", problems.join("; "))]
    BadCase {
        /// The case's name.
        case: String,
        /// Every problem found.
        problems: Vec<String>,
    },
}

/// What a replaced node does instead of its function.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Script {
    /// Returns these values (output dataset → JSON; decoded into the
    /// function's declared output types when they are known).
    Outputs(BTreeMap<String, Value>),
    /// Fails with this message.
    Error(String),
}

/// The expected failure of a run.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectError {
    /// The node that fails.
    #[serde(default)]
    pub node: Option<String>,
    /// A part of the error chain.
    #[serde(default)]
    pub contains: Option<String>,
}

/// What a case asserts.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Dataset → expected JSON value.
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
    /// Exactly these nodes ran (any order).
    #[serde(default)]
    pub ran: Option<Vec<String>>,
    /// These nodes did not run.
    #[serde(default)]
    pub not_ran: Vec<String>,
    /// These nodes ran, in this relative order.
    #[serde(default)]
    pub order: Vec<String>,
    /// Node → how many times it ran.
    #[serde(default)]
    pub times: BTreeMap<String, usize>,
    /// Cycle node → iterations it ran.
    #[serde(default)]
    pub iterations: BTreeMap<String, usize>,
    /// The run fails, so.
    #[serde(default)]
    pub error: Option<ExpectError>,
}

fn default_pipeline() -> String {
    "__default__".into()
}

fn default_tolerance() -> f64 {
    1e-9
}

fn default_runner() -> String {
    "sequential".into()
}

/// One test case.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Its name.
    pub name: String,
    /// The pipeline to run (default `__default__`).
    #[serde(default = "default_pipeline")]
    pub pipeline: String,
    /// The runner (`sequential`, default, or `thread`).
    #[serde(default = "default_runner")]
    pub runner: String,
    /// Parameters merged over the project's (deep merge of maps).
    #[serde(default)]
    pub params: Value,
    /// Free input dataset → JSON value.
    #[serde(default)]
    pub inputs: BTreeMap<String, Value>,
    /// Node → what it does instead.
    #[serde(default)]
    pub replace: BTreeMap<String, Script>,
    /// The assertions.
    #[serde(default)]
    pub expect: Expect,
    /// Relative tolerance for numbers in `expect.outputs`.
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
}

impl TestCase {
    /// A case running `__default__` with no inputs and no assertions yet.
    pub fn new(name: impl Into<String>) -> Self {
        TestCase {
            name: name.into(),
            pipeline: default_pipeline(),
            runner: default_runner(),
            params: Value::Null,
            inputs: BTreeMap::new(),
            replace: BTreeMap::new(),
            expect: Expect::default(),
            tolerance: default_tolerance(),
        }
    }

    /// Runs this pipeline.
    pub fn pipeline(mut self, name: impl Into<String>) -> Self {
        self.pipeline = name.into();
        self
    }

    /// Sets parameters (merged over the project's).
    pub fn params(mut self, params: Value) -> Self {
        self.params = params;
        self
    }

    /// Feeds a free input.
    pub fn input(mut self, dataset: impl Into<String>, value: Value) -> Self {
        self.inputs.insert(dataset.into(), value);
        self
    }

    /// Replaces a node by scripted outputs (dataset → value).
    pub fn replace_outputs<K: Into<String>>(
        mut self,
        node: impl Into<String>,
        outputs: impl IntoIterator<Item = (K, Value)>,
    ) -> Self {
        let map = outputs.into_iter().map(|(k, v)| (k.into(), v)).collect();
        self.replace.insert(node.into(), Script::Outputs(map));
        self
    }

    /// Replaces a node by a failure.
    pub fn replace_error(mut self, node: impl Into<String>, message: impl Into<String>) -> Self {
        self.replace.insert(node.into(), Script::Error(message.into()));
        self
    }

    /// Expects a dataset's value.
    pub fn expect_output(mut self, dataset: impl Into<String>, value: Value) -> Self {
        self.expect.outputs.insert(dataset.into(), value);
        self
    }

    /// Expects exactly these nodes to run.
    pub fn expect_ran<S: Into<String>>(mut self, nodes: impl IntoIterator<Item = S>) -> Self {
        self.expect.ran = Some(nodes.into_iter().map(Into::into).collect());
        self
    }

    /// Expects these nodes to run in this order.
    pub fn expect_order<S: Into<String>>(mut self, nodes: impl IntoIterator<Item = S>) -> Self {
        self.expect.order = nodes.into_iter().map(Into::into).collect();
        self
    }

    /// Expects a node to run `n` times.
    pub fn expect_times(mut self, node: impl Into<String>, n: usize) -> Self {
        self.expect.times.insert(node.into(), n);
        self
    }

    /// Expects the run to fail in `node` with `contains` in its error.
    pub fn expect_error(mut self, node: Option<&str>, contains: Option<&str>) -> Self {
        self.expect.error = Some(ExpectError {
            node: node.map(str::to_string),
            contains: contains.map(str::to_string),
        });
        self
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    cases: Vec<Value>,
}

/// Parses a YAML case file (`cases: [...]`).
pub fn parse_cases(file: &Path, text: &str) -> Result<Vec<TestCase>, TestingError> {
    let value = weft_config::yaml::from_str(text, file).map_err(|source| TestingError::Yaml {
        file: file.to_path_buf(),
        source: Box::new(source),
    })?;
    let doc: CaseFile = serde_json::from_value(value).map_err(|e| TestingError::CaseFile {
        file: file.to_path_buf(),
        message: format!("expected a map with a `cases` list: {e}"),
    })?;
    doc.cases
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let label = v
                .get("name")
                .and_then(Value::as_str)
                .map_or(format!("case #{}", i + 1), |n| format!("case #{} (`{n}`)", i + 1));
            serde_json::from_value(v).map_err(|e| TestingError::CaseFile {
                file: file.to_path_buf(),
                message: format!("{label}: {e}"),
            })
        })
        .collect()
}

/// Reads and parses a YAML case file.
pub fn load_cases(file: &Path) -> Result<Vec<TestCase>, TestingError> {
    let text = std::fs::read_to_string(file).map_err(|source| TestingError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    parse_cases(file, &text)
}

/// One assertion that did not hold.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// What was checked (`output `y``, `nodes run`, ...).
    pub what: String,
    /// What the case expected.
    pub expected: String,
    /// What came.
    pub actual: String,
}

/// What one case did.
#[derive(Clone, Debug)]
pub struct CaseOutcome {
    /// The case's name.
    pub name: String,
    /// Nodes in the order they were called (a node run twice is listed twice).
    pub calls: Vec<String>,
    /// Every assertion that did not hold; empty when the case passed.
    pub mismatches: Vec<Mismatch>,
}

impl CaseOutcome {
    /// Whether every assertion held.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

#[derive(Default)]
struct Log {
    calls: Mutex<Vec<String>>,
    outputs: Mutex<BTreeMap<String, Result<Value, String>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Log {
    fn record(&self, names: &[String], outputs: &[Data]) {
        let mut logged = lock(&self.outputs);
        for (name, data) in names.iter().zip(outputs) {
            logged.insert(name.clone(), data.to_json().map_err(|e| e.to_string()));
        }
    }
}

/// A node's function, or its script, with every call logged.
struct Recorded {
    node: String,
    outputs: Vec<String>,
    inner: Arc<dyn NodeFn>,
    script: Option<Script>,
    log: Arc<Log>,
}

impl Recorded {
    fn scripted(&self, script: &Script) -> Result<Vec<Data>, NodeFnError> {
        match script {
            Script::Error(message) => Err(message.clone().into()),
            Script::Outputs(values) => {
                let sig = self.inner.signature();
                self.outputs
                    .iter()
                    .enumerate()
                    .map(|(k, name)| {
                        let value = values.get(name).cloned().unwrap_or(Value::Null);
                        match sig.outputs.type_at(k).filter(|t| t.is_decodable()) {
                            Some(ty) => ty.decode_json(&value).map_err(|e| -> NodeFnError {
                                format!("scripted output `{name}` of node `{}`: {e}", self.node).into()
                            }),
                            None => Ok(Data::new(value)),
                        }
                    })
                    .collect()
            }
        }
    }
}

impl NodeFn for Recorded {
    fn signature(&self) -> Signature {
        self.inner.signature()
    }

    fn call(&self, call: NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> {
        self.call_detailed(call).map(|(o, _)| o)
    }

    fn call_detailed(&self, call: NodeCall<'_>) -> Result<(Vec<Data>, Option<CycleReport>), NodeFnError> {
        lock(&self.log.calls).push(self.node.clone());
        let (outputs, report) = match &self.script {
            Some(script) => (self.scripted(script)?, None),
            None => self.inner.call_detailed(call)?,
        };
        self.log.record(&self.outputs, &outputs);
        Ok((outputs, report))
    }

    fn cycle(&self) -> Option<CycleInfo<'_>> {
        self.inner.cycle()
    }
}

fn rebuild(node: &Node, script: Option<Script>, log: &Arc<Log>) -> Result<Node, String> {
    let func = Arc::new(Recorded {
        node: node.name().to_string(),
        outputs: node.outputs().to_vec(),
        inner: node.func().clone(),
        script,
        log: Arc::clone(log),
    });
    let mut b = NodeBuilder::from_dyn(
        node.func_name(),
        func,
        node.inputs().to_vec(),
        node.outputs().to_vec(),
    )
    .name(node.short_name())
    .tags(node.tags().iter().cloned());
    if let Some(ns) = node.namespace() {
        b = b.namespace(ns);
    }
    b.build().map_err(|e| e.to_string())
}

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (_, Value::Null) => {}
        (b, o) => *b = o.clone(),
    }
}

/// Whether two JSON values are equal, numbers within a relative tolerance.
pub fn json_close(expected: &Value, actual: &Value, tolerance: f64) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a == b || (a - b).abs() <= tolerance * a.abs().max(b.abs()).max(1.0),
            _ => a == b,
        },
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_close(x, y, tolerance))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, x)| b.get(k).is_some_and(|y| json_close(x, y, tolerance)))
        }
        (a, b) => a == b,
    }
}

fn names(list: &[String]) -> String {
    format!("[{}]", list.join(", "))
}

/// Runs one case against the project's pipelines and parameters.
///
/// `Err` means the case cannot run as written (unknown pipeline, node or
/// output, a missing input): bad input. A case that runs returns its
/// outcome, passed or not.
pub fn run_case(
    pipelines: &BTreeMap<String, Pipeline>,
    parameters: &Value,
    case: &TestCase,
) -> Result<CaseOutcome, TestingError> {
    let bad = |problems: Vec<String>| TestingError::BadCase {
        case: case.name.clone(),
        problems,
    };
    let pipeline = pipelines.get(&case.pipeline).ok_or_else(|| {
        bad(vec![format!(
            "unknown pipeline `{}` (available: {})",
            case.pipeline,
            pipelines.keys().cloned().collect::<Vec<_>>().join(", ")
        )])
    })?;
    let mut problems = Vec::new();
    let node_names: BTreeSet<&str> = pipeline.nodes().iter().map(Node::name).collect();
    for (node, script) in &case.replace {
        match pipeline.node(node) {
            None => problems.push(format!("`replace` names unknown node `{node}`")),
            Some(n) => {
                if let Script::Outputs(values) = script {
                    for k in values.keys() {
                        if !n.outputs().contains(k) {
                            problems.push(format!(
                                "`replace.{node}.outputs.{k}`: the node's outputs are {}",
                                names(n.outputs())
                            ));
                        }
                    }
                    for o in n.outputs() {
                        if !values.contains_key(o) {
                            problems.push(format!("`replace.{node}.outputs` lacks the node's output `{o}`"));
                        }
                    }
                }
            }
        }
    }
    let e = &case.expect;
    let listed = e
        .ran
        .iter()
        .flatten()
        .chain(&e.not_ran)
        .chain(&e.order)
        .chain(e.times.keys())
        .chain(e.iterations.keys())
        .chain(e.error.iter().filter_map(|x| x.node.as_ref()));
    for n in listed {
        if !node_names.contains(n.as_str()) {
            problems.push(format!("`expect` names unknown node `{n}`"));
        }
    }
    let datasets = pipeline.datasets();
    for d in e.outputs.keys() {
        if !datasets.contains(d) {
            problems.push(format!(
                "`expect.outputs` names `{d}`, which the pipeline does not use"
            ));
        }
    }
    let mut params = parameters.clone();
    if params.is_null() {
        params = Value::Object(Default::default());
    }
    merge(&mut params, &case.params);
    for input in pipeline.inputs() {
        if input == "parameters" || input.starts_with("params:") {
            continue;
        }
        if !case.inputs.contains_key(&input) {
            problems.push(format!(
                "the pipeline needs input `{input}`: give it under `inputs`"
            ));
        }
    }
    let runner = runner_by_name(&case.runner, None).map_err(|e| problems.push(format!("`runner`: {e}")));
    if !problems.is_empty() {
        return Err(bad(problems));
    }
    let runner = runner.map_err(|()| bad(vec!["`runner`".into()]))?;

    let log = Arc::new(Log::default());
    let nodes = pipeline
        .nodes()
        .iter()
        .map(|n| rebuild(n, case.replace.get(n.name()).cloned(), &log))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(vec![e]))?;
    let wrapped = Pipeline::new(nodes).map_err(|e| bad(vec![e.to_string()]))?;
    let mut catalog = Catalog::new();
    catalog.add_parameters(&params);
    for (name, value) in &case.inputs {
        catalog.add_data(name.clone(), Data::new(value.clone()));
    }
    let context = RunContext {
        session_id: "weft-test".into(),
        run_id: format!("test-{}", case.name),
        run_index: 0,
        total_runs: 1,
    };
    let cancel = CancelToken::new();
    let hooks = Hooks::new();
    let job = RunJob {
        pipeline: &wrapped,
        catalog: &catalog,
        hooks: &hooks,
        context: &context,
        cancel: &cancel,
        only_missing_outputs: false,
        type_check: TypeCheck::Strict,
        timeout: None,
    };
    let result = run_pipeline(&job, runner.as_ref());
    let calls = lock(&log.calls).clone();
    let produced = lock(&log.outputs).clone();
    let mut m = Vec::new();
    let mut mismatch = |what: String, expected: String, actual: String| {
        m.push(Mismatch {
            what,
            expected,
            actual,
        });
    };
    let timings = match &result {
        Ok(out) => out.node_timings.clone(),
        Err(failed) => failed.node_timings.clone(),
    };
    match (&result, &e.error) {
        (Ok(_), Some(want)) => mismatch(
            "run".into(),
            format!(
                "a failure{}{}",
                want.node
                    .as_ref()
                    .map_or(String::new(), |n| format!(" in node `{n}`")),
                want.contains
                    .as_ref()
                    .map_or(String::new(), |c| format!(" containing `{c}`"))
            ),
            "success".into(),
        ),
        (Err(failed), None) => mismatch(
            "run".into(),
            "success".into(),
            format!("failure: {}", failed.error.chain().join(": ")),
        ),
        (Err(failed), Some(want)) => {
            let chain = failed.error.chain().join(": ");
            if let Some(node) = &want.node
                && failed.error.node() != Some(node.as_str())
            {
                mismatch(
                    "failed node".into(),
                    format!("`{node}`"),
                    failed.error.node().map_or("no node".into(), |n| format!("`{n}`")),
                );
            }
            if let Some(part) = &want.contains
                && !chain.contains(part.as_str())
            {
                mismatch("error".into(), format!("containing `{part}`"), chain);
            }
        }
        (Ok(_), None) => {}
    }
    for (dataset, want) in &e.outputs {
        let got = match produced.get(dataset) {
            Some(Ok(v)) => v.clone(),
            Some(Err(why)) => {
                mismatch(
                    format!("output `{dataset}`"),
                    want.to_string(),
                    format!("not JSON: {why}"),
                );
                continue;
            }
            None => match case.inputs.get(dataset) {
                Some(v) => v.clone(),
                None => {
                    mismatch(
                        format!("output `{dataset}`"),
                        want.to_string(),
                        "never written".into(),
                    );
                    continue;
                }
            },
        };
        if !json_close(want, &got, case.tolerance) {
            mismatch(format!("output `{dataset}`"), want.to_string(), got.to_string());
        }
    }
    let ran: BTreeSet<&String> = calls.iter().collect();
    if let Some(want) = &e.ran {
        let want_set: BTreeSet<&String> = want.iter().collect();
        if want_set != ran {
            mismatch(
                "nodes run".into(),
                names(&want_set.into_iter().cloned().collect::<Vec<_>>()),
                names(&ran.iter().map(|s| (*s).clone()).collect::<Vec<_>>()),
            );
        }
    }
    for n in &e.not_ran {
        if ran.contains(n) {
            mismatch(format!("node `{n}`"), "not run".into(), "ran".into());
        }
    }
    if !e.order.is_empty() {
        let firsts: Vec<String> = {
            let mut seen = BTreeSet::new();
            calls
                .iter()
                .filter(|c| e.order.contains(c) && seen.insert((*c).clone()))
                .cloned()
                .collect()
        };
        if firsts != e.order {
            mismatch("order".into(), names(&e.order), names(&firsts));
        }
    }
    for (n, want) in &e.times {
        let got = calls.iter().filter(|c| *c == n).count();
        if got != *want {
            mismatch(format!("times `{n}` ran"), want.to_string(), got.to_string());
        }
    }
    for (n, want) in &e.iterations {
        let got = timings
            .iter()
            .find(|t| &t.node == n)
            .and_then(|t| t.cycle.as_ref())
            .map(|c| c.iterations);
        if got != Some(*want) {
            mismatch(
                format!("iterations of cycle `{n}`"),
                want.to_string(),
                got.map_or("no cycle report (not run, or not a cycle)".into(), |g| {
                    g.to_string()
                }),
            );
        }
    }
    Ok(CaseOutcome {
        name: case.name.clone(),
        calls,
        mismatches: m,
    })
}

/// Formats an outcome: `PASS name`, or `FAIL name` and one
/// `expected … / got …` block per mismatch.
pub fn describe(outcome: &CaseOutcome) -> String {
    if outcome.passed() {
        return format!("PASS {} ({} node calls)", outcome.name, outcome.calls.len());
    }
    let mut s = format!("FAIL {}", outcome.name);
    for m in &outcome.mismatches {
        s.push_str(&format!(
            "\n  {}:\n    expected: {}\n    got:      {}",
            m.what, m.expected, m.actual
        ));
    }
    s
}
