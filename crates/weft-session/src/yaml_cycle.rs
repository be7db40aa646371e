//! The `cycle:` block of a node in `pipelines.yml`: a sub-pipeline that
//! repeats until a condition holds (see [`weft_pipeline::cycle`]).
//!
//! ```yaml
//! __default__:
//!   nodes:
//!     - name: newton
//!       cycle:
//!         nodes:                      # the body, written like any node list
//!           - {name: step, func: newton_step, inputs: [x, params:target], outputs: [x_next, delta]}
//!         state: {x: x_next}          # iteration k+1's `x` is iteration k's `x_next`
//!         max_iterations: 50
//!         converge_when: delta < 1e-12   # or {predicate: fn, inputs: [...]}, optionally with `condition:`
//!         on_no_convergence: fail     # or warn
//!       outputs: [x_next]             # default: the state's carried outputs
//! ```
//!
//! The cycle node's inputs are the body's free inputs (`x` gives iteration
//! 1's state); its outputs are read after the last iteration.

use serde_json::Value;
use weft_pipeline::cycle::{Condition, NoConvergence, Predicate, cycle};
use weft_pipeline::{FunctionRegistry, Node, Pipeline};

const CYCLE_NODE_KEYS: &[&str] = &["name", "cycle", "outputs", "tags", "namespace"];
const CYCLE_KEYS: &[&str] = &[
    "nodes",
    "state",
    "max_iterations",
    "converge_when",
    "on_no_convergence",
];
const CONVERGE_KEYS: &[&str] = &["condition", "predicate", "inputs"];

/// Parses a node map that has a `cycle:` key. Errors name the field
/// (`cycle.max_iterations`); the caller adds file, line, pipeline and node.
pub(crate) fn parse_cycle_node(
    mut map: serde_json::Map<String, Value>,
    registry: &FunctionRegistry,
    file: &std::path::Path,
) -> Result<Node, (Option<String>, Vec<String>)> {
    let mut errs = Vec::new();
    for key in map.keys() {
        if !CYCLE_NODE_KEYS.contains(&key.as_str()) {
            errs.push(format!(
                "unknown key `{key}` for a cycle node (allowed: {}; a cycle's inputs are its body's free inputs)",
                CYCLE_NODE_KEYS.join(", ")
            ));
        }
    }
    let name = match map.remove("name") {
        Some(Value::String(n)) => Some(n),
        Some(v) => {
            errs.push(format!("`name` must be a string, got {v}"));
            None
        }
        None => {
            errs.push("a cycle node needs a `name`".into());
            None
        }
    };
    let outputs = crate::yaml_pipelines::names(map.get("outputs"), "outputs")
        .map_err(|e| errs.push(e))
        .unwrap_or_default();
    let tags = crate::yaml_pipelines::names(map.get("tags"), "tags")
        .map_err(|e| errs.push(e))
        .unwrap_or_default();
    let namespace = match map.get("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            errs.push(format!("`namespace` must be a string, got {other}"));
            None
        }
    };
    let Some(Value::Object(mut spec)) = map.remove("cycle") else {
        errs.push("`cycle` must be a map with `nodes`, `state`, `max_iterations` and `converge_when`".into());
        return Err((name, errs));
    };
    for key in spec.keys() {
        if !CYCLE_KEYS.contains(&key.as_str()) {
            errs.push(format!(
                "`cycle`: unknown key `{key}` (allowed: {})",
                CYCLE_KEYS.join(", ")
            ));
        }
    }
    let mut body_nodes = Vec::new();
    match spec.remove("nodes") {
        Some(Value::Array(items)) if !items.is_empty() => {
            for (i, item) in items.into_iter().enumerate() {
                match crate::yaml_pipelines::parse_node(item, registry, file) {
                    Ok(n) => body_nodes.push(n),
                    Err((node, problems)) => {
                        let label = node.map_or(format!("#{}", i + 1), |n| format!("`{n}`"));
                        for p in problems {
                            errs.push(format!("`cycle.nodes` {label}: {p}"));
                        }
                    }
                }
            }
        }
        Some(other) => {
            errs.push(format!(
                "`cycle.nodes` must be a non-empty list of nodes, got {other}"
            ));
        }
        None => errs.push("`cycle.nodes` is required (the body that repeats)".into()),
    }
    let mut state = Vec::new();
    match spec.remove("state") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (var, next) in m {
                match next {
                    Value::String(next) => state.push((var, next)),
                    other => errs.push(format!(
                        "`cycle.state.{var}` must name the body output carried into `{var}`, got {other}"
                    )),
                }
            }
        }
        Some(other) => errs.push(format!(
            "`cycle.state` must be a map of state variable -> body output (e.g. {{x: x_next}}), got {other}"
        )),
    }
    let max_iterations = match spec.remove("max_iterations") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {
            n.as_u64().and_then(|n| usize::try_from(n).ok())
        }
        None => {
            errs.push("`cycle.max_iterations` is required".into());
            None
        }
        Some(other) => {
            errs.push(format!(
                "`cycle.max_iterations` must be a whole number of at least 1, got {other}"
            ));
            None
        }
    };
    let on_no_convergence = match spec.remove("on_no_convergence") {
        None | Some(Value::Null) => NoConvergence::Fail,
        Some(Value::String(s)) => NoConvergence::parse(&s).unwrap_or_else(|| {
            errs.push(format!(
                "`cycle.on_no_convergence` must be `fail` or `warn`, got `{s}`"
            ));
            NoConvergence::Fail
        }),
        Some(other) => {
            errs.push(format!(
                "`cycle.on_no_convergence` must be `fail` or `warn`, got {other}"
            ));
            NoConvergence::Fail
        }
    };
    let (condition, predicate) = converge_when(spec.remove("converge_when"), registry, &mut errs);
    let body = match Pipeline::new(body_nodes) {
        Ok(p) => Some(p),
        Err(e) => {
            errs.push(format!("`cycle.nodes`: {e}"));
            None
        }
    };
    let (Some(name), Some(body), Some(max)) = (name.clone(), body, max_iterations) else {
        return Err((name, errs));
    };
    if !errs.is_empty() {
        return Err((Some(name), errs));
    }
    let mut builder = cycle(name.clone(), body)
        .max_iterations(max)
        .on_no_convergence(on_no_convergence)
        .outputs(outputs)
        .tags(tags);
    for (var, next) in state {
        builder = builder.state(var, next);
    }
    if let Some(c) = condition {
        builder = builder.converge_when(c);
    }
    if let Some(p) = predicate {
        builder = builder.predicate(p);
    }
    if let Some(ns) = namespace {
        builder = builder.namespace(ns);
    }
    builder.build().map_err(|e| match e {
        weft_pipeline::PipelineError::InvalidCycle { problems, .. } => (
            Some(name.clone()),
            problems
                .into_iter()
                .map(|p| {
                    if p.starts_with('`') {
                        format!("cycle: {p}")
                    } else {
                        format!("`cycle`: {p}")
                    }
                })
                .collect(),
        ),
        other => (Some(name.clone()), vec![other.to_string()]),
    })
}

fn parse_condition(text: &str, field: &str, errs: &mut Vec<String>) -> Option<Condition> {
    Condition::parse(text)
        .map_err(|e| errs.push(format!("`{field}`: {e} in `{text}`")))
        .ok()
}

/// `converge_when`: a condition string, or `{condition?, predicate, inputs}`.
fn converge_when(
    value: Option<Value>,
    registry: &FunctionRegistry,
    errs: &mut Vec<String>,
) -> (Option<Condition>, Option<Predicate>) {
    match value {
        None | Some(Value::Null) => (None, None),
        Some(Value::String(text)) => (parse_condition(&text, "cycle.converge_when", errs), None),
        Some(Value::Object(mut m)) => {
            for key in m.keys() {
                if !CONVERGE_KEYS.contains(&key.as_str()) {
                    errs.push(format!(
                        "`cycle.converge_when`: unknown key `{key}` (allowed: {})",
                        CONVERGE_KEYS.join(", ")
                    ));
                }
            }
            let condition = match m.remove("condition") {
                None | Some(Value::Null) => None,
                Some(Value::String(text)) => parse_condition(&text, "cycle.converge_when.condition", errs),
                Some(other) => {
                    errs.push(format!(
                        "`cycle.converge_when.condition` must be a string such as `delta < 1e-6`, got {other}"
                    ));
                    None
                }
            };
            let inputs = crate::yaml_pipelines::names(m.get("inputs"), "cycle.converge_when.inputs")
                .map_err(|e| errs.push(e))
                .unwrap_or_default();
            let predicate = match m.remove("predicate") {
                None | Some(Value::Null) => {
                    if condition.is_none() {
                        errs.push("`cycle.converge_when` needs a `condition` or a `predicate`".into());
                    }
                    None
                }
                Some(Value::String(func)) => match registry.get(&func) {
                    Ok(f) => Some(Predicate {
                        name: func,
                        func: f.func.clone(),
                        inputs,
                    }),
                    Err(e) => {
                        errs.push(format!("`cycle.converge_when.predicate`: {e}"));
                        None
                    }
                },
                Some(other) => {
                    errs.push(format!(
                        "`cycle.converge_when.predicate` must be a registered function name, got {other}"
                    ));
                    None
                }
            };
            (condition, predicate)
        }
        Some(other) => {
            errs.push(format!(
                "`cycle.converge_when` must be a condition such as `delta < 1e-6` or a map with `predicate` and `inputs`, got {other}"
            ));
            (None, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use weft_pipeline::{CancelToken, Data};

    use crate::SessionError;
    use crate::yaml_pipelines::parse_pipelines;

    fn registry() -> weft_pipeline::FunctionRegistry {
        let mut r = weft_pipeline::FunctionRegistry::with_builtins();
        r.register("newton_step", |x: &f64, target: &f64| {
            let next = x - (x * x - target) / (2.0 * x);
            (next, (next - x).abs())
        })
        .unwrap();
        r.register("close_enough", |a: &f64, b: &f64| (a - b).abs() < 1e-9)
            .unwrap();
        r
    }

    const NEWTON: &str = "\
__default__:
  nodes:
    - name: newton
      cycle:
        nodes:
          - {name: step, func: newton_step, inputs: [x, params:target], outputs: [x_next, delta]}
        state: {x: x_next}
        max_iterations: 50
        converge_when: delta < 1e-12
      outputs: [x_next]
      tags: [solver]
";

    #[test]
    fn a_cycle_block_builds_one_node_that_converges() {
        let pipelines = parse_pipelines(Path::new("pipelines.yml"), NEWTON, &registry()).unwrap();
        let p = &pipelines["__default__"];
        assert_eq!(p.nodes().len(), 1);
        let n = p.node("newton").unwrap();
        assert_eq!(n.inputs(), ["params:target", "x"]);
        assert_eq!(n.outputs(), ["x_next"]);
        assert!(n.tags().contains("solver"));
        let info = n.cycle().unwrap();
        assert_eq!((info.max_iterations, info.condition), (50, "delta < 1e-12"));
        let (out, report) = n
            .run_detailed(vec![Data::new(2.0f64), Data::new(1.0f64)], &CancelToken::new())
            .unwrap();
        assert!((out[0].downcast_ref::<f64>().unwrap() - 2f64.sqrt()).abs() < 1e-15);
        assert!(report.unwrap().converged);
    }

    #[test]
    fn a_registered_predicate_decides_convergence() {
        let text = NEWTON.replace(
            "converge_when: delta < 1e-12",
            "converge_when: {predicate: close_enough, inputs: [x, x_next]}\n        on_no_convergence: warn",
        );
        let pipelines = parse_pipelines(Path::new("pipelines.yml"), &text, &registry()).unwrap();
        let n = pipelines["__default__"].node("newton").unwrap();
        let (out, report) = n
            .run_detailed(vec![Data::new(2.0f64), Data::new(1.0f64)], &CancelToken::new())
            .unwrap();
        let report = report.unwrap();
        assert!(report.converged, "{report:?}");
        assert_eq!(report.condition, "close_enough(x, x_next)");
        assert!((out[0].downcast_ref::<f64>().unwrap() - 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn a_bad_cycle_block_names_file_pipeline_node_and_field() {
        let text = NEWTON
            .replace("max_iterations: 50", "max_iterations: -3")
            .replace("delta < 1e-12", "delta < small")
            .replace("state: {x: x_next}", "state: {x: x_nxt}\n        colour: red");
        let err = parse_pipelines(Path::new("conf/pipelines.yml"), &text, &registry()).unwrap_err();
        let SessionError::PipelineYaml { problems, .. } = err else {
            panic!("expected PipelineYaml, got {err}");
        };
        assert_eq!(
            problems,
            [
                "conf/pipelines.yml:3: pipeline `__default__`, node `newton`: `cycle`: unknown key `colour` (allowed: nodes, state, max_iterations, converge_when, on_no_convergence)",
                "conf/pipelines.yml:3: pipeline `__default__`, node `newton`: `cycle.max_iterations` must be a whole number of at least 1, got -3",
                "conf/pipelines.yml:3: pipeline `__default__`, node `newton`: `cycle.converge_when`: expected a number after `delta <` (at character 9) in `delta < small`",
            ]
        );
        // Problems found once the body is known: the state names and outputs.
        let text = NEWTON.replace("state: {x: x_next}", "state: {y: x_nxt}");
        let err = parse_pipelines(Path::new("pipelines.yml"), &text, &registry())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "pipeline `__default__`, node `newton`: cycle: `state.y`: `y` is not a free input of the body"
            ),
            "{err}"
        );
        // A body node's own problem names the body node.
        let text = NEWTON.replace("func: newton_step", "func: newton_stp");
        let err = parse_pipelines(Path::new("pipelines.yml"), &text, &registry())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("node `newton`: `cycle.nodes` `step`: unknown function `newton_stp` (did you mean `newton_step`?)"),
            "{err}"
        );
    }
}
