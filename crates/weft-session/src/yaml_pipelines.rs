//! Pipelines declared in YAML (`pipelines.yml`), referencing registered
//! functions by name, so a pipeline changes without recompiling.
//!
//! ```yaml
//! __default__:
//!   nodes:
//!     - name: n1
//!       func: sum            # a registered function
//!       inputs: [H, I, M]    # a string, a list, or a map of argument name -> dataset
//!       outputs: N           # a string, a list, or null
//!       tags: [foo]
//!       namespace: ns        # optional
//!       timeout: 30s         # optional: 500ms, 30s, 5m, 1h
//!     - name: approve          # a node that asks the run's caller for input
//!       await_input:
//!         prompt: Approve the model?
//!         schema: {type: object, properties: {ok: {type: boolean}}, required: [ok]}
//!       inputs: N              # optional: asks once these exist
//!       outputs: approval      # exactly one: the answer
//!     - name: report           # a command node (see `command_yaml`)
//!       command: [python3, report.py, "{inputs.N}", "{outputs.report}"]
//!       inputs: N
//!       outputs: report
//!     - name: newton           # a cycle: see `yaml_cycle`
//!       cycle: {nodes: [...], state: {x: x_next}, max_iterations: 50, converge_when: delta < 1e-9}
//! other:
//!   pipelines: [__default__] # union of other pipelines
//!   namespace: active        # optional, with Kedro's mapping rules
//!   inputs: {model_input: active_input}
//!   outputs: {}
//!   parameters: {}
//! ```
//!
//! Map-form `inputs` are positional in the order written: the keys document
//! which argument each dataset feeds (Rust functions have no run-time
//! argument names).
//!
//! When no `__default__` is declared, it is the union of every pipeline.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde_json::Value;
use weft_config::yaml::Simple;
use weft_pipeline::{FunctionRegistry, NamespaceOptions, Node, Pipeline};

use crate::SessionError;

/// The default pipeline's name.
pub const DEFAULT_PIPELINE: &str = "__default__";

const PIPELINE_KEYS: &[&str] = &[
    "nodes",
    "pipelines",
    "namespace",
    "inputs",
    "outputs",
    "parameters",
    "tags",
];
pub(crate) const NODE_KEYS: &[&str] = &[
    "name",
    "func",
    "await_input",
    "command",
    "env",
    "cwd",
    "timeout",
    "memory_limit",
    "cpu_limit",
    "inputs",
    "outputs",
    "tags",
    "namespace",
    "cycle",
];
/// Keys only command nodes take.
const COMMAND_KEYS: &[&str] = &["env", "cwd"];
const AWAIT_INPUT_KEYS: &[&str] = &["prompt", "schema"];

struct Located<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Located<'_> {
    fn at_pipeline(&self, pipeline: &str, message: String) -> String {
        match weft_config::yaml::line_of(self.text, &[pipeline]) {
            Some(line) => format!("{}:{line}: pipeline `{pipeline}`: {message}", self.file.display()),
            None => format!("{}: pipeline `{pipeline}`: {message}", self.file.display()),
        }
    }

    fn at_node(&self, pipeline: &str, index: usize, name: Option<&str>, message: String) -> String {
        let line = name.and_then(|n| node_line(self.text, pipeline, n));
        let label = match name {
            Some(n) => format!("node `{n}`"),
            None => format!("node #{}", index + 1),
        };
        match line {
            Some(line) => format!(
                "{}:{line}: pipeline `{pipeline}`, {label}: {message}",
                self.file.display()
            ),
            None => format!(
                "{}: pipeline `{pipeline}`, {label}: {message}",
                self.file.display()
            ),
        }
    }
}

/// Best effort: the line of `name: <node>` inside the pipeline's block.
fn node_line(text: &str, pipeline: &str, node: &str) -> Option<usize> {
    let start = weft_config::yaml::line_of(text, &[pipeline])?;
    text.lines()
        .enumerate()
        .skip(start)
        .take_while(|(i, l)| {
            *i == start
                || l.starts_with(' ')
                || l.starts_with('-')
                || l.trim().is_empty()
                || l.trim_start().starts_with('#')
        })
        .find(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ").trim();
            t.strip_prefix("name:")
                .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == node)
                .unwrap_or(false)
        })
        .map(|(i, _)| i + 1)
}

pub(crate) fn names(value: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("`{what}` entries must be strings, got {other}")),
            })
            .collect(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("`{what}.{k}` must be a dataset name, got {other}")),
            })
            .collect(),
        Some(other) => Err(format!("`{what}` must be a string, a list or a map, got {other}")),
    }
}

fn string_map(value: Option<&Value>, what: &str) -> Result<BTreeMap<String, String>, String> {
    match value {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!("`{what}.{k}` must be a string, got {other}")),
            })
            .collect(),
        // Kedro also accepts a list (or a single name) meaning "keep these names".
        Some(Value::String(s)) => Ok([(s.clone(), s.clone())].into()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok((s.clone(), s.clone())),
                other => Err(format!("`{what}` entries must be strings, got {other}")),
            })
            .collect(),
        Some(other) => Err(format!("`{what}` must be a map, got {other}")),
    }
}

/// Parses `pipelines.yml` text into named pipelines. Every problem is
/// reported at once, each with the file, pipeline, node and line.
pub fn parse_pipelines(
    file: &Path,
    text: &str,
    registry: &FunctionRegistry,
) -> Result<BTreeMap<String, Pipeline>, SessionError> {
    let at = Located { file, text };
    // The common case (plain YAML) is read without copying: the node lists
    // are kept as borrowed trees and built into nodes directly; the rest of
    // each pipeline's spec (small) becomes a `Value` as usual.
    let mut simple_nodes: HashMap<&str, Vec<Simple<'_>>> = HashMap::new();
    let doc = match weft_config::yaml::parse_simple(text) {
        Some(Simple::Map(entries)) => {
            let mut top = serde_json::Map::with_capacity(entries.len());
            for (pname, spec) in entries {
                let value = match spec {
                    Simple::Map(fields) => {
                        let mut spec = serde_json::Map::with_capacity(fields.len());
                        for (key, field) in fields {
                            let value = match field {
                                Simple::List(items) if key == "nodes" => {
                                    simple_nodes.insert(pname, items);
                                    Value::Null
                                }
                                other => other.to_value(),
                            };
                            spec.insert(key.to_string(), value);
                        }
                        Value::Object(spec)
                    }
                    other => other.to_value(),
                };
                top.insert(pname.to_string(), value);
            }
            Value::Object(top)
        }
        Some(other) => other.to_value(),
        None => weft_config::yaml::from_str(text, file)?,
    };
    let empty = || {
        SessionError::PipelineYaml {
        file: file.to_path_buf(),
        problems: vec![
            "the file declares no pipeline (Kedro refuses an empty pipeline): add one with `nodes`, or supply pipelines from Rust code".into(),
        ],
    }
    };
    let mut top = match doc {
        Value::Object(map) if map.keys().any(|k| !k.starts_with('_') || k == DEFAULT_PIPELINE) => map,
        Value::Object(_) | Value::Null => return Err(empty()),
        other => {
            return Err(SessionError::PipelineYaml {
                file: file.to_path_buf(),
                problems: vec![format!(
                    "the file must be a map of pipeline name -> pipeline, got {other}"
                )],
            });
        }
    };
    let mut problems = Vec::new();
    let mut own_nodes: BTreeMap<String, Vec<Node>> = BTreeMap::new();
    for (pname, spec) in top.iter_mut() {
        if pname.starts_with('_') && pname != DEFAULT_PIPELINE {
            continue;
        }
        let Value::Object(spec) = spec else {
            problems.push(at.at_pipeline(
                pname,
                format!("must be a map with `nodes` and/or `pipelines`, got {spec}"),
            ));
            continue;
        };
        for key in spec.keys() {
            if !PIPELINE_KEYS.contains(&key.as_str()) {
                problems.push(at.at_pipeline(
                    pname,
                    format!("unknown key `{key}` (allowed: {})", PIPELINE_KEYS.join(", ")),
                ));
            }
        }
        let mut nodes = Vec::new();
        if let Some(items) = simple_nodes.remove(pname.as_str()) {
            nodes.reserve(items.len());
            for (i, item) in items.iter().enumerate() {
                let parsed = match parse_simple_node(item, registry) {
                    Some(parsed) => parsed,
                    // Anything unusual: the general path, for its errors.
                    None => parse_node(item.to_value(), registry, file),
                };
                match parsed {
                    Ok(node) => nodes.push(node),
                    Err((name, errs)) => {
                        for e in errs {
                            problems.push(at.at_node(pname, i, name.as_deref(), e));
                        }
                    }
                }
            }
        }
        // The node list is only read here: its values are moved into the
        // nodes, not copied (the key stays, so `resolve` sees the same keys).
        match spec.get_mut("nodes").map(Value::take) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                nodes.reserve(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match parse_node(item, registry, file) {
                        Ok(node) => nodes.push(node),
                        Err((name, errs)) => {
                            for e in errs {
                                problems.push(at.at_node(pname, i, name.as_deref(), e));
                            }
                        }
                    }
                }
            }
            Some(other) => {
                problems.push(at.at_pipeline(pname, format!("`nodes` must be a list, got {other}")))
            }
        }
        own_nodes.insert(pname.clone(), nodes);
    }
    // Resolve `pipelines:` references, namespaces and mappings.
    let mut resolved: BTreeMap<String, Pipeline> = BTreeMap::new();
    let declared: BTreeSet<String> = own_nodes.keys().cloned().collect();
    let names_in_order: Vec<String> = own_nodes.keys().cloned().collect();
    let mut own_nodes: BTreeMap<String, Option<Vec<Node>>> =
        own_nodes.into_iter().map(|(k, v)| (k, Some(v))).collect();
    for pname in &names_in_order {
        let mut visiting = Vec::new();
        resolve(
            pname,
            &top,
            &mut own_nodes,
            &mut resolved,
            &mut visiting,
            &at,
            &mut problems,
        );
    }
    if !problems.is_empty() {
        problems.dedup();
        return Err(SessionError::PipelineYaml {
            file: file.to_path_buf(),
            problems,
        });
    }
    if !declared.contains(DEFAULT_PIPELINE) {
        let mut all = Pipeline::empty();
        for p in resolved.values() {
            all = all.union(p).map_err(|e| SessionError::PipelineYaml {
                file: file.to_path_buf(),
                problems: vec![format!(
                    "the implicit `__default__` (union of every pipeline) is invalid: {e}"
                )],
            })?;
        }
        resolved.insert(DEFAULT_PIPELINE.into(), all);
    }
    Ok(resolved)
}

fn resolve(
    pname: &str,
    top: &serde_json::Map<String, Value>,
    own_nodes: &mut BTreeMap<String, Option<Vec<Node>>>,
    resolved: &mut BTreeMap<String, Pipeline>,
    visiting: &mut Vec<String>,
    at: &Located<'_>,
    problems: &mut Vec<String>,
) -> Option<Pipeline> {
    if let Some(p) = resolved.get(pname) {
        return Some(p.clone());
    }
    if visiting.iter().any(|v| v == pname) {
        visiting.push(pname.to_string());
        problems.push(at.at_pipeline(
            pname,
            format!("pipelines include each other: {}", visiting.join(" -> ")),
        ));
        visiting.pop();
        return None;
    }
    let spec = top.get(pname)?.as_object()?;
    visiting.push(pname.to_string());
    let mut ok = true;
    // Each pipeline's own nodes are used once: taken, not copied.
    let nodes = own_nodes
        .get_mut(pname)
        .and_then(Option::take)
        .unwrap_or_default();
    let mut pipeline = match Pipeline::new(nodes) {
        Ok(p) => p,
        Err(e) => {
            problems.push(at.at_pipeline(pname, e.to_string()));
            ok = false;
            Pipeline::empty()
        }
    };
    match names(spec.get("pipelines"), "pipelines") {
        Ok(children) => {
            for child in children {
                if !own_nodes.contains_key(&child) {
                    let available: Vec<&str> = own_nodes.keys().map(String::as_str).collect();
                    problems.push(at.at_pipeline(
                        pname,
                        format!(
                            "includes unknown pipeline `{child}` (available: {})",
                            available.join(", ")
                        ),
                    ));
                    ok = false;
                    continue;
                }
                match resolve(&child, top, own_nodes, resolved, visiting, at, problems) {
                    Some(p) => match pipeline.union(&p) {
                        Ok(u) => pipeline = u,
                        Err(e) => {
                            problems.push(at.at_pipeline(pname, format!("including `{child}`: {e}")));
                            ok = false;
                        }
                    },
                    None => ok = false,
                }
            }
        }
        Err(e) => {
            problems.push(at.at_pipeline(pname, e));
            ok = false;
        }
    }
    visiting.pop();
    let namespace = match spec.get("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            problems.push(at.at_pipeline(pname, format!("`namespace` must be a string, got {other}")));
            return None;
        }
    };
    let maps = (
        string_map(spec.get("inputs"), "inputs"),
        string_map(spec.get("outputs"), "outputs"),
        string_map(spec.get("parameters"), "parameters"),
        names(spec.get("tags"), "tags"),
    );
    let (inputs, outputs, parameters, tags) = match maps {
        (Ok(i), Ok(o), Ok(p), Ok(t)) => (i, o, p, t),
        (i, o, p, t) => {
            for e in [i.err(), o.err(), p.err(), t.err()].into_iter().flatten() {
                problems.push(at.at_pipeline(pname, e));
            }
            return None;
        }
    };
    if !ok {
        return None;
    }
    let has_wrapping =
        namespace.is_some() || !inputs.is_empty() || !outputs.is_empty() || !parameters.is_empty();
    if has_wrapping || !tags.is_empty() {
        let opts = NamespaceOptions {
            namespace,
            inputs,
            outputs,
            parameters,
            tags,
        };
        match pipeline.namespaced(&opts) {
            Ok(p) => pipeline = p,
            Err(e) => {
                problems.push(at.at_pipeline(pname, e.to_string()));
                return None;
            }
        }
    }
    resolved.insert(pname.to_string(), pipeline.clone());
    Some(pipeline)
}

/// Takes the value of `key` out of a node's map.
pub(crate) fn take(map: &mut serde_json::Map<String, Value>, key: &str) -> Option<Value> {
    map.get_mut(key).map(Value::take)
}

/// Dataset or tag names, moved out of the value (see [`names`]).
pub(crate) fn owned_names(value: Option<Value>, what: &str) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(items
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect()),
        Some(other) => names(Some(&other), what),
    }
}

pub(crate) fn parse_node(
    item: Value,
    registry: &FunctionRegistry,
    file: &Path,
) -> Result<Node, (Option<String>, Vec<String>)> {
    let Value::Object(mut map) = item else {
        return Err((
            None,
            vec![format!(
                "a node must be a map with `func`, `inputs`, `outputs`; got {item}"
            )],
        ));
    };
    if map.contains_key("cycle") {
        return crate::yaml_cycle::parse_cycle_node(map, registry, file);
    }
    let mut errs = Vec::new();
    for key in map.keys() {
        if !NODE_KEYS.contains(&key.as_str()) {
            errs.push(format!("unknown key `{key}` (allowed: {})", NODE_KEYS.join(", ")));
        }
    }
    let name = match take(&mut map, "name") {
        None => None,
        Some(Value::String(n)) => Some(n),
        Some(v) => {
            errs.push(format!("`name` must be a string, got {v}"));
            None
        }
    };
    if map.contains_key("command") {
        return crate::command_yaml::parse_command_node(map, name, file, errs);
    }
    for key in COMMAND_KEYS {
        if map.contains_key(*key) {
            errs.push(format!(
                "`{key}` is only for command nodes (those with `command:`)"
            ));
        }
    }
    let awaits = take(&mut map, "await_input");
    let func = match take(&mut map, "func") {
        Some(Value::String(f)) => Some(f),
        Some(other) => {
            errs.push(format!("`func` must be a function name, got {other}"));
            None
        }
        None if awaits.is_some() => Some(weft_pipeline::AWAIT_INPUT.to_string()),
        None => {
            errs.push("missing `func` (the registered function to call)".into());
            None
        }
    };
    let request = match awaits {
        None => None,
        Some(_) if func.as_deref().is_some_and(|f| f != weft_pipeline::AWAIT_INPUT) => {
            errs.push(
                "`await_input` and `func` exclude each other (an `await_input` node calls no function)"
                    .into(),
            );
            None
        }
        Some(v) => parse_input_request(v).map_err(|e| errs.extend(e)).ok(),
    };
    let inputs = owned_names(take(&mut map, "inputs"), "inputs")
        .map_err(|e| errs.push(e))
        .ok();
    let outputs = owned_names(take(&mut map, "outputs"), "outputs")
        .map_err(|e| errs.push(e))
        .ok();
    let tags = owned_names(take(&mut map, "tags"), "tags")
        .map_err(|e| errs.push(e))
        .ok();
    let timeout = node_timeout(take(&mut map, "timeout"), &mut errs);
    let limits = node_limits(&mut map, &mut errs);
    let namespace = match take(&mut map, "namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            errs.push(format!("`namespace` must be a string, got {other}"));
            None
        }
    };
    let (Some(func), Some(inputs), Some(outputs), Some(tags)) = (func, inputs, outputs, tags) else {
        return Err((name, errs));
    };
    if !errs.is_empty() {
        return Err((name, errs));
    }
    if let Some(request) = request {
        return build_await_node(name, request, inputs, outputs, tags, namespace)
            .map(|n| n.with_timeout(timeout).with_limits(limits));
    }
    if func == weft_pipeline::AWAIT_INPUT {
        return Err((
            name,
            vec!["an `await_input` node needs an `await_input: {prompt, schema}` block".into()],
        ));
    }
    build_node(registry, name, &func, inputs, outputs, tags, namespace)
        .map(|n| n.with_timeout(timeout).with_limits(limits))
}

/// A node's `memory_limit:` (a size such as `512MiB`) and `cpu_limit:` (a
/// duration such as `30s`); bad ones are pushed onto `errs`.
pub(crate) fn node_limits(
    map: &mut serde_json::Map<String, Value>,
    errs: &mut Vec<String>,
) -> weft_pipeline::NodeLimits {
    let memory_bytes = match take(map, "memory_limit") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => weft_pipeline::parse_size(&t)
            .map_err(|e| errs.push(format!("`memory_limit`: {e}")))
            .ok(),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|b| b > 0) => n.as_u64(),
        Some(other) => {
            errs.push(format!(
                "`memory_limit` must be a size such as `512MiB` (`2G`, or a number of bytes), got {other}"
            ));
            None
        }
    };
    let cpu_time = match take(map, "cpu_limit") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => weft_pipeline::parse_duration(&t)
            .map_err(|e| errs.push(format!("`cpu_limit`: {e}")))
            .ok(),
        Some(other) => {
            errs.push(format!(
                "`cpu_limit` must be a duration such as `30s` (`500ms`, `5m`), got {other}"
            ));
            None
        }
    };
    weft_pipeline::NodeLimits {
        memory_bytes,
        cpu_time,
    }
}

/// A node's `timeout:` value (the same grammar and messages for every
/// kind of node); a bad one is pushed onto `errs`.
pub(crate) fn node_timeout(value: Option<Value>, errs: &mut Vec<String>) -> Option<std::time::Duration> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => weft_pipeline::parse_duration(&t)
            .map_err(|e| errs.push(format!("`timeout`: {e}")))
            .ok(),
        Some(other) => {
            errs.push(format!(
                "`timeout` must be a duration such as `30s` (`500ms`, `5m`, `1h`), got {other}"
            ));
            None
        }
    }
}

/// The `await_input: {prompt, schema}` block of a node.
fn parse_input_request(value: Value) -> Result<weft_pipeline::InputRequest, Vec<String>> {
    let Value::Object(mut map) = value else {
        return Err(vec![format!(
            "`await_input` must be a map with `prompt` and `schema`, got {value}"
        )]);
    };
    let mut errs = Vec::new();
    for key in map.keys() {
        if !AWAIT_INPUT_KEYS.contains(&key.as_str()) {
            errs.push(format!(
                "`await_input`: unknown key `{key}` (allowed: {})",
                AWAIT_INPUT_KEYS.join(", ")
            ));
        }
    }
    let prompt = match take(&mut map, "prompt") {
        Some(Value::String(p)) if !p.trim().is_empty() => Some(p),
        Some(other) => {
            errs.push(format!(
                "`await_input.prompt` must be a non-empty string, got {other}"
            ));
            None
        }
        None => {
            errs.push("`await_input` needs a `prompt` (what to ask)".into());
            None
        }
    };
    let schema = take(&mut map, "schema").unwrap_or_else(|| serde_json::json!({}));
    if let Err(e) = crate::answers::check_schema(&schema) {
        errs.push(format!("`await_input.schema`: {e}"));
    }
    match prompt {
        Some(prompt) if errs.is_empty() => Ok(weft_pipeline::InputRequest { prompt, schema }),
        _ => Err(errs),
    }
}

/// An `await_input` node whose fields all have the right shape.
fn build_await_node(
    name: Option<String>,
    request: weft_pipeline::InputRequest,
    inputs: Vec<String>,
    outputs: Vec<String>,
    tags: Vec<String>,
    namespace: Option<String>,
) -> Result<Node, (Option<String>, Vec<String>)> {
    let [output] = <[String; 1]>::try_from(outputs).map_err(|outputs| {
        (
            name.clone(),
            vec![format!(
                "an `await_input` node has exactly one output (the answer), got {outputs:?}"
            )],
        )
    })?;
    let mut builder = weft_pipeline::await_input(request.prompt, request.schema, inputs, output).tags(tags);
    if let Some(n) = &name {
        builder = builder.name(n.clone());
    }
    if let Some(ns) = namespace {
        builder = builder.namespace(ns);
    }
    builder.build().map_err(|e| (name, vec![e.to_string()]))
}

/// A node, or its name (when known) and its problems.
type NodeResult = Result<Node, (Option<String>, Vec<String>)>;

/// A node whose fields all have the right shape.
fn build_node(
    registry: &FunctionRegistry,
    name: Option<String>,
    func: &str,
    inputs: Vec<String>,
    outputs: Vec<String>,
    tags: Vec<String>,
    namespace: Option<String>,
) -> Result<Node, (Option<String>, Vec<String>)> {
    let builder = registry
        .node(func, inputs, outputs)
        .map_err(|e| (name.clone(), vec![e.to_string()]))?;
    let mut builder = builder.tags(tags);
    if let Some(n) = &name {
        builder = builder.name(n.clone());
    }
    if let Some(ns) = namespace {
        builder = builder.namespace(ns);
    }
    builder.build().map_err(|e| (name, vec![e.to_string()]))
}

/// Names from a borrowed tree, when they have a valid shape (a string, a
/// list of strings, a map of strings, or null).
fn simple_names(value: Option<&Simple<'_>>) -> Option<Vec<String>> {
    match value {
        None | Some(Simple::Other(Value::Null)) => Some(Vec::new()),
        Some(Simple::Str(s)) => Some(vec![(*s).to_string()]),
        Some(Simple::List(items)) => items.iter().map(|v| v.as_str().map(str::to_string)).collect(),
        Some(Simple::Map(entries)) => entries
            .iter()
            .map(|(_, v)| v.as_str().map(str::to_string))
            .collect(),
        Some(Simple::Other(_)) => None,
    }
}

/// A node straight from the borrowed tree when every field has a valid
/// shape; `None` when anything is off, so [`parse_node`] reports it in its
/// usual words.
fn parse_simple_node(item: &Simple<'_>, registry: &FunctionRegistry) -> Option<NodeResult> {
    let Simple::Map(fields) = item else {
        return None;
    };
    let (mut name, mut func, mut namespace) = (None, None, None);
    let (mut inputs, mut outputs, mut tags) = (None, None, None);
    for (key, value) in fields {
        match *key {
            "name" => name = Some(value.as_str()?),
            "func" => func = Some(value.as_str()?),
            "inputs" => inputs = Some(value),
            "outputs" => outputs = Some(value),
            "tags" => tags = Some(value),
            "namespace" => match value {
                Simple::Str(s) => namespace = Some(*s),
                Simple::Other(Value::Null) => {}
                _ => return None,
            },
            _ => return None,
        }
    }
    let func = func?;
    let inputs = simple_names(inputs)?;
    let outputs = simple_names(outputs)?;
    let tags = simple_names(tags)?;
    Some(build_node(
        registry,
        name.map(str::to_string),
        func,
        inputs,
        outputs,
        tags,
        namespace.map(str::to_string),
    ))
}

/// Reads and parses a pipelines file. A missing or empty file is an error
/// naming it (Kedro refuses an empty pipeline); projects whose pipelines
/// come from Rust code use [`load_pipelines_optional`].
pub fn load_pipelines(
    file: &Path,
    registry: &FunctionRegistry,
) -> Result<BTreeMap<String, Pipeline>, SessionError> {
    load_pipelines_optional(file, registry)?.ok_or_else(|| SessionError::PipelineYaml {
        file: file.to_path_buf(),
        problems: vec![
            "the file is missing: declare the project's pipelines there, or supply them from Rust code"
                .into(),
        ],
    })
}

/// Like [`load_pipelines`], for projects that may supply their pipelines
/// from Rust code: `None` when the file is missing or holds nothing but
/// blanks and comments; any other problem is still an error.
pub fn load_pipelines_optional(
    file: &Path,
    registry: &FunctionRegistry,
) -> Result<Option<BTreeMap<String, Pipeline>>, SessionError> {
    match std::fs::read_to_string(file) {
        Ok(text) if is_blank_yaml(&text) => Ok(None),
        Ok(text) => parse_pipelines(file, &text, registry).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SessionError::Io {
            path: file.to_path_buf(),
            source,
        }),
    }
}

/// Only blanks, comments and document markers.
fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> FunctionRegistry {
        FunctionRegistry::with_builtins()
    }

    #[test]
    fn empty_or_missing_pipelines_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pipelines.yml");
        let missing = load_pipelines(&file, &registry()).unwrap_err().to_string();
        assert!(
            missing.contains("pipelines.yml") && missing.contains("missing"),
            "{missing}"
        );
        for text in ["", "# nothing yet\n", "---\n", "_anchors: {a: 1}\n", "{}\n"] {
            std::fs::write(&file, text).unwrap();
            let err = load_pipelines(&file, &registry()).unwrap_err().to_string();
            assert!(
                err.contains("pipelines.yml") && (err.contains("no pipeline") || err.contains("missing")),
                "{text:?}: {err}"
            );
        }
        // The opt-out for projects whose pipelines come from Rust code.
        std::fs::remove_file(&file).unwrap();
        assert!(load_pipelines_optional(&file, &registry()).unwrap().is_none());
        std::fs::write(&file, "# pipelines come from code\n").unwrap();
        assert!(load_pipelines_optional(&file, &registry()).unwrap().is_none());
        std::fs::write(&file, "{}\n").unwrap();
        assert!(
            load_pipelines_optional(&file, &registry()).is_err(),
            "a map without pipelines is still an error"
        );
        std::fs::write(
            &file,
            "p:\n  nodes:\n    - {name: a, func: noop, inputs: x, outputs: y}\n",
        )
        .unwrap();
        let loaded = load_pipelines_optional(&file, &registry()).unwrap().unwrap();
        assert_eq!(loaded[DEFAULT_PIPELINE].nodes().len(), 1);
    }

    #[test]
    fn every_node_problem_is_reported_with_its_node() {
        let text = "p:\n  nodes:\n    - {name: a, func: 3, inputs: [x, 1], outputs: {o: 2}, tags: t, namespace: 4, colour: red}\n    - name: b\n      inputs: x\n    - {name: 5, func: noop, inputs: x, outputs: y}\n    - [not, a, map]\n    - {name: c, func: noop, inputs: {first: x, second: w}, outputs: [z], tags: [ok]}\n";
        let err = parse_pipelines(Path::new("pipelines.yml"), text, &registry()).unwrap_err();
        let SessionError::PipelineYaml { problems, .. } = err else {
            panic!("expected PipelineYaml, got {err}");
        };
        assert_eq!(
            problems,
            [
                "pipelines.yml: pipeline `p`, node `a`: unknown key `colour` (allowed: name, func, await_input, command, env, cwd, timeout, memory_limit, cpu_limit, inputs, outputs, tags, namespace, cycle)",
                "pipelines.yml: pipeline `p`, node `a`: `func` must be a function name, got 3",
                "pipelines.yml: pipeline `p`, node `a`: `inputs` entries must be strings, got 1",
                "pipelines.yml: pipeline `p`, node `a`: `outputs.o` must be a dataset name, got 2",
                "pipelines.yml: pipeline `p`, node `a`: `namespace` must be a string, got 4",
                "pipelines.yml:4: pipeline `p`, node `b`: missing `func` (the registered function to call)",
                "pipelines.yml: pipeline `p`, node #3: `name` must be a string, got 5",
                "pipelines.yml: pipeline `p`, node #4: a node must be a map with `func`, `inputs`, `outputs`; got [\"not\",\"a\",\"map\"]",
            ]
        );
        // The valid node of the same file builds as declared.
        let ok = "p:\n  nodes:\n    - {name: c, func: identity, inputs: {first: x}, outputs: [z], tags: [t1, t2], namespace: ns}\n";
        let p = &parse_pipelines(Path::new("pipelines.yml"), ok, &registry()).unwrap()["p"];
        let c = p.node("ns.c").unwrap();
        assert_eq!(
            (c.inputs(), c.outputs()),
            (&["x".to_string()][..], &["z".to_string()][..])
        );
        assert_eq!(c.tags().iter().collect::<Vec<_>>(), ["t1", "t2"]);
    }

    #[test]
    fn node_timeouts_parse_and_bad_ones_name_file_pipeline_and_node() {
        let ok = "p:\n  nodes:\n    - {name: a, func: identity, inputs: x, outputs: y, timeout: 1.5s}\n    - name: b\n      func: identity\n      inputs: y\n      outputs: z\n      timeout: 5m\n    - {name: c, func: identity, inputs: z, outputs: w}\n";
        let p = &parse_pipelines(Path::new("pipelines.yml"), ok, &registry()).unwrap()["p"];
        let t = |n: &str| p.node(n).unwrap().timeout();
        assert_eq!(t("a"), Some(std::time::Duration::from_millis(1500)));
        assert_eq!(t("b"), Some(std::time::Duration::from_secs(300)));
        assert_eq!(t("c"), None);
        let bad = "train:\n  nodes:\n    - name: train_model\n      func: identity\n      inputs: x\n      outputs: y\n      timeout: 30\n    - name: score\n      func: identity\n      inputs: y\n      outputs: z\n      timeout: 3 weeks\n";
        let err = parse_pipelines(Path::new("conf/pipelines.yml"), bad, &registry()).unwrap_err();
        let SessionError::PipelineYaml { problems, .. } = err else {
            panic!("expected PipelineYaml, got {err}");
        };
        assert_eq!(
            problems,
            [
                "conf/pipelines.yml:3: pipeline `train`, node `train_model`: `timeout` must be a duration such as `30s` (`500ms`, `5m`, `1h`), got 30",
                "conf/pipelines.yml:8: pipeline `train`, node `score`: `timeout`: `3 weeks` has an unknown unit `weeks`; write a number and a unit: `500ms`, `30s`, `5m` or `1h`",
            ]
        );
    }

    #[test]
    fn node_limits_parse_and_bad_ones_name_file_pipeline_and_node() {
        let ok = "p:\n  nodes:\n    - {name: a, func: identity, inputs: x, outputs: y, memory_limit: 512MiB, cpu_limit: 30s}\n    - {name: b, func: identity, inputs: y, outputs: z, memory_limit: 1048576}\n    - {name: c, func: identity, inputs: z, outputs: w}\n";
        let p = &parse_pipelines(Path::new("pipelines.yml"), ok, &registry()).unwrap()["p"];
        let l = |n: &str| p.node(n).unwrap().limits();
        assert_eq!(
            l("a"),
            weft_pipeline::NodeLimits {
                memory_bytes: Some(512 << 20),
                cpu_time: Some(std::time::Duration::from_secs(30)),
            }
        );
        assert_eq!(l("b").memory_bytes, Some(1_048_576));
        assert!(l("c").is_empty());
        let bad = "train:\n  nodes:\n    - name: train_model\n      func: identity\n      inputs: x\n      outputs: y\n      memory_limit: lots\n      cpu_limit: 10\n    - name: report\n      command: [\"true\"]\n      memory_limit: 1G\n";
        let err = parse_pipelines(Path::new("conf/pipelines.yml"), bad, &registry()).unwrap_err();
        let SessionError::PipelineYaml { problems, .. } = err else {
            panic!("expected PipelineYaml, got {err}");
        };
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].starts_with("conf/pipelines.yml:3: pipeline `train`, node `train_model`: `memory_limit`: `lots`: unknown unit `lots`"),
            "{problems:#?}"
        );
        assert_eq!(
            problems[1],
            "conf/pipelines.yml:3: pipeline `train`, node `train_model`: `cpu_limit` must be a duration such as `30s` (`500ms`, `5m`), got 10"
        );
        assert!(
            problems[2].contains("node `report`: `memory_limit` is for function nodes run by the `process` runner"),
            "{problems:#?}"
        );
    }

    /// What a parse gives, comparable: each pipeline's nodes with every
    /// field, or the problems.
    fn summary(text: &str) -> Result<Vec<(String, Vec<String>)>, String> {
        match parse_pipelines(Path::new("pipelines.yml"), text, &registry()) {
            Ok(pipelines) => Ok(pipelines
                .iter()
                .map(|(name, p)| {
                    let nodes = p
                        .nodes()
                        .iter()
                        .map(|n| {
                            format!(
                                "{} {} {:?} {:?} {:?} {:?}",
                                n.name(),
                                n.func_name(),
                                n.inputs(),
                                n.outputs(),
                                n.tags(),
                                n.namespace()
                            )
                        })
                        .collect();
                    (name.clone(), nodes)
                })
                .collect()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn the_borrowed_fast_path_builds_what_the_general_path_builds() {
        let docs = [
            "__default__:\n  nodes:\n    - {name: a, func: add_one, inputs: params:start, outputs: d1, tags: [t1, t2]}\n    - {name: b, func: identity, inputs: [d1], outputs: [d2], namespace: ns}\n    - func: identity\n      inputs: {x: d2}\n      outputs: d3\n      tags: solo\n",
            "a:\n  nodes:\n    - name: n1\n      func: sum\n      inputs: [x, y]\n      outputs: z\n      tags: []\n      namespace: ~\nb:\n  pipelines: [a]\n  namespace: w\n  inputs: {x: outer_x}\n",
            "a:\n  nodes:\n    - {name: 1, func: identity, inputs: x, outputs: y}\n    - {name: b, func: 2, inputs: x, outputs: y}\n    - {name: c, func: identity, inputs: [x, 3], outputs: y, colour: red}\n    - {name: d, func: identity, inputs: x, outputs: y, namespace: 4}\n    - {name: e, func: nope, inputs: x, outputs: y}\n    - plain\n",
            "a:\n  nodes: {name: x}\n",
            "a:\n  nodes:\n    - {name: a, func: identity, inputs: x, outputs: y}\n    - {name: a, func: identity, inputs: y, outputs: z}\n",
            "_shared: {x: 1}\na:\n  nodes: []\n  tags: [t]\n",
        ];
        for doc in docs {
            assert!(weft_config::yaml::parse_simple(doc).is_some(), "{doc}");
            // A quote anywhere (here in a comment) sends the file to the full parser.
            let general = format!("{doc}# \"general path\"\n");
            assert!(weft_config::yaml::parse_simple(&general).is_none());
            assert_eq!(summary(doc), summary(&general), "{doc}");
        }
    }

    #[test]
    fn duplicate_keys_are_reported_in_our_words() {
        let text = "p:\n  nodes:\n    - name: a\n      func: noop\n      func: identity\n";
        let err = parse_pipelines(Path::new("pipelines.yml"), text, &registry()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pipelines.yml:5: duplicate key `func` (first at line 4)"
        );
    }

    #[test]
    fn a_100000_node_pipelines_file_loads() {
        let n = 100_000;
        let mut text = String::with_capacity(n * 90);
        text.push_str("__default__:\n  nodes:\n");
        for i in 0..n {
            text.push_str(&format!(
                "    - name: n{i}\n      func: identity\n      inputs: d{i}\n      outputs: d{}\n      tags: [t{}]\n",
                i + 1,
                i % 7
            ));
        }
        let pipelines = parse_pipelines(Path::new("pipelines.yml"), &text, &registry()).unwrap();
        let p = &pipelines[DEFAULT_PIPELINE];
        assert_eq!(p.nodes().len(), n);
        let first = p.node("n0").unwrap();
        assert_eq!(
            (first.inputs(), first.outputs()),
            (&["d0".to_string()][..], &["d1".to_string()][..])
        );
        let last = p.node(&format!("n{}", n - 1)).unwrap();
        assert_eq!(last.outputs(), [format!("d{n}")]);
        assert!(last.tags().contains(&format!("t{}", (n - 1) % 7)));
    }
}
