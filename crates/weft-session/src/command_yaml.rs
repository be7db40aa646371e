//! The `command:` form of a node in `pipelines.yml` (see
//! [`weft_pipeline::command`] and `weft-command`):
//!
//! ```yaml
//! - name: train
//!   command: ["python3", "scripts/train.py", "{inputs.features}", "{outputs.model}", "--lr={params.lr}"]
//!   env: {PYTHONHASHSEED: "0"}   # added to the inherited environment
//!   cwd: scripts/..              # relative to the project (default: the project)
//!   timeout: 30s                 # kills the child's process group
//!   inputs: {features: model_input_table}
//!   outputs: {model: regressor}
//! ```

use std::path::Path;

use serde_json::Value;
use weft_pipeline::Node;
use weft_pipeline::command::{CommandDecl, command};

use crate::yaml_pipelines::{owned_names, take};

/// `(key, dataset)` pairs: a list or a single name uses the dataset name
/// as key; a map keeps its keys.
fn ports(value: Option<Value>, what: &str) -> Result<Vec<(String, String)>, String> {
    match value {
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                other => Err(format!("`{what}.{k}` must be a dataset name, got {other}")),
            })
            .collect(),
        other => Ok(owned_names(other, what)?
            .into_iter()
            .map(|n| (n.clone(), n))
            .collect()),
    }
}

fn scalar(value: Value, what: &str) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("{what} must be a string, got {other}")),
    }
}

/// Builds a command node from its YAML map (`name` already taken);
/// `errs` holds the problems found so far (unknown keys, name).
pub(crate) fn parse_command_node(
    mut map: serde_json::Map<String, Value>,
    name: Option<String>,
    file: &Path,
    mut errs: Vec<String>,
) -> Result<Node, (Option<String>, Vec<String>)> {
    for key in ["func", "await_input"] {
        if map.contains_key(key) {
            errs.push(format!(
                "`command` and `{key}` exclude each other (a command node runs a program, not a function)"
            ));
        }
    }
    let mut decl = CommandDecl::default();
    match take(&mut map, "command") {
        Some(Value::Array(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                match scalar(item, &format!("`command[{i}]`")) {
                    Ok(s) => decl.argv.push(s),
                    Err(e) => errs.push(e),
                }
            }
        }
        Some(Value::String(s)) => errs.push(format!(
            "`command` must be a list (no shell runs it), e.g. [{}]",
            s.split_whitespace()
                .map(|w| format!("\"{w}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        other => errs.push(format!(
            "`command` must be a list of strings, got {}",
            other.unwrap_or(Value::Null)
        )),
    }
    match take(&mut map, "env") {
        None | Some(Value::Null) => {}
        Some(Value::Object(env)) => {
            for (k, v) in env {
                match scalar(v, &format!("`env.{k}`")) {
                    Ok(s) => {
                        decl.env.insert(k, s);
                    }
                    Err(e) => errs.push(e),
                }
            }
        }
        Some(other) => errs.push(format!("`env` must be a map of name -> value, got {other}")),
    }
    let project = file.parent().filter(|p| !p.as_os_str().is_empty());
    decl.cwd = match take(&mut map, "cwd") {
        None | Some(Value::Null) => project.map(Path::to_path_buf),
        Some(Value::String(dir)) => Some(match project {
            Some(p) => p.join(dir),
            None => dir.into(),
        }),
        Some(other) => {
            errs.push(format!(
                "`cwd` must be a folder (relative to the project), got {other}"
            ));
            None
        }
    };
    decl.timeout = crate::yaml_pipelines::node_timeout(take(&mut map, "timeout"), &mut errs);
    for key in ["memory_limit", "cpu_limit"] {
        if take(&mut map, key).is_some() {
            errs.push(format!(
                "`{key}` is for function nodes run by the `process` runner; a command node's program is not limited by weft (use `ulimit` or `prlimit` in the command)"
            ));
        }
    }
    let inputs = ports(take(&mut map, "inputs"), "inputs")
        .map_err(|e| errs.push(e))
        .ok();
    let outputs = ports(take(&mut map, "outputs"), "outputs")
        .map_err(|e| errs.push(e))
        .ok();
    let tags = owned_names(take(&mut map, "tags"), "tags")
        .map_err(|e| errs.push(e))
        .ok();
    let namespace = match take(&mut map, "namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            errs.push(format!("`namespace` must be a string, got {other}"));
            None
        }
    };
    let (Some(inputs), Some(outputs), Some(tags)) = (inputs, outputs, tags) else {
        return Err((name, errs));
    };
    if !errs.is_empty() {
        return Err((name, errs));
    }
    let builder = command(decl, inputs, outputs).map_err(|e| match e {
        weft_pipeline::PipelineError::InvalidCommand { problems } => (name.clone(), problems),
        other => (name.clone(), vec![other.to_string()]),
    })?;
    let mut builder = builder.tags(tags);
    if let Some(n) = &name {
        builder = builder.name(n.clone());
    }
    if let Some(ns) = namespace {
        builder = builder.namespace(ns);
    }
    builder.build().map_err(|e| (name, vec![e.to_string()]))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use weft_pipeline::FunctionRegistry;
    use weft_pipeline::command::Piece;

    use crate::parse_pipelines;

    fn parse(text: &str) -> Result<weft_pipeline::Pipeline, String> {
        parse_pipelines(
            Path::new("/proj/pipelines.yml"),
            text,
            &FunctionRegistry::with_builtins(),
        )
        .map(|mut p| p.remove("p").unwrap())
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_command_node_parses_with_env_cwd_timeout_and_map_ports() {
        let p = parse(
            "p:\n  nodes:\n    - name: train\n      command: [python3, train.py, \"{inputs.features}\", \"{outputs.model}\", \"--lr={params.lr}\", 3]\n      env: {SEED: 1}\n      cwd: scripts\n      timeout: 1.5m\n      inputs: {features: table}\n      outputs: {model: regressor}\n",
        )
        .unwrap();
        let n = p.node("train").unwrap();
        assert_eq!(n.inputs(), ["table", "params:lr"]);
        assert_eq!(n.outputs(), ["regressor"]);
        let spec = n.command().unwrap();
        assert_eq!(spec.argv[2].pieces, [Piece::InputPath(0)]);
        assert_eq!(spec.argv[5].pieces, [Piece::Text("3".into())]);
        assert_eq!(spec.cwd.as_deref(), Some(Path::new("/proj/scripts")));
        assert_eq!(spec.timeout, Some(std::time::Duration::from_secs(90)));
        assert_eq!(spec.env["SEED"].pieces, [Piece::Text("1".into())]);
    }

    #[test]
    fn command_problems_are_reported_with_the_node() {
        let err = parse(
            "p:\n  nodes:\n    - name: bad\n      command: python3 x.py\n      func: noop\n      timeout: soon\n      inputs: [a]\n    - name: worse\n      command: [tool, \"{outputs.nope}\"]\n      outputs: [b]\n    - name: fn\n      func: noop\n      env: {A: b}\n",
        )
        .unwrap_err();
        for want in [
            "node `bad`: `command` must be a list (no shell runs it), e.g. [\"python3\", \"x.py\"]",
            "node `bad`: `command` and `func` exclude each other",
            "node `bad`: `timeout`: `soon` is not a duration",
            "node `worse`: `{outputs.nope}`: `{outputs.nope}` names no output (declared: `b`)",
            "node `fn`: `env` is only for command nodes",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
    }
}
