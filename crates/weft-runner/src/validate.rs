use std::collections::HashMap;
use std::str::FromStr;

use weft_catalog::{Catalog, LoadType};
use weft_pipeline::{DataType, Pipeline};

use crate::RunError;

/// What to do when a node's declared input type does not match what its
/// producer outputs or its dataset loads ("connection validation").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TypeCheck {
    /// Refuse to start the run (default).
    #[default]
    Strict,
    /// Log every mismatch and run anyway.
    Warn,
    /// Do not check.
    Off,
}

impl FromStr for TypeCheck {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(TypeCheck::Strict),
            "warn" => Ok(TypeCheck::Warn),
            "off" => Ok(TypeCheck::Off),
            other => Err(format!(
                "unknown type check mode `{other}`; expected strict, warn or off"
            )),
        }
    }
}

fn is_param(name: &str) -> bool {
    name == "parameters" || name.starts_with("params:")
}

/// Checks a run before anything executes: every free input must be in the
/// catalog, and (unless `mode` is `off`) declared types must agree.
///
/// Returns the type warnings in `warn` mode; every problem is reported at
/// once in the error.
pub fn validate_run(
    pipeline: &Pipeline,
    catalog: &Catalog,
    mode: TypeCheck,
) -> Result<Vec<String>, RunError> {
    let mut missing = Vec::new();
    let free = pipeline.inputs();
    let known = || -> Vec<String> {
        let mut names: Vec<String> = catalog.list().into_iter().map(|i| i.name).collect();
        names.extend(pipeline.all_outputs());
        names.sort();
        names.dedup();
        names
    };
    for input in &free {
        if !catalog.contains(input) {
            let needed_by = pipeline
                .nodes()
                .iter()
                .find(|n| n.inputs().iter().any(|i| i == input))
                .map(|n| format!(" (needed by node `{}`)", n.name()))
                .unwrap_or_default();
            let close: Vec<String> = known()
                .into_iter()
                .filter(|k| k != input && weft_pipeline::registry::edit_distance(k, input) <= 2)
                .take(3)
                .map(|k| format!("`{k}`"))
                .collect();
            let hint = if close.is_empty() {
                String::new()
            } else {
                format!("; did you mean {}?", close.join(", "))
            };
            if is_param(input) {
                missing.push(format!(
                    "parameter `{input}`{needed_by} is not defined in the run's parameters{hint}"
                ));
            } else {
                missing.push(format!(
                    "pipeline input `{input}`{needed_by} is not in the catalog{hint}"
                ));
            }
        }
    }
    let mut type_problems = Vec::new();
    if mode != TypeCheck::Off {
        let json = DataType::of::<serde_json::Value>();
        let mut produced: HashMap<&str, (&str, Option<DataType>)> = HashMap::new();
        for node in pipeline.nodes() {
            for (k, out) in node.outputs().iter().enumerate() {
                produced.insert(out.as_str(), (node.name(), node.output_type(k)));
            }
        }
        for node in pipeline.nodes() {
            for (k, input) in node.inputs().iter().enumerate() {
                let Some(want) = node.input_type(k) else { continue };
                if let Some((producer, have)) = produced.get(input.as_str()) {
                    if let Some(have) = have
                        && *have != want
                        && *have != json
                    {
                        type_problems.push(format!(
                            "node `{}` takes `{want}` as `{input}`, but node `{producer}` outputs `{have}`",
                            node.name()
                        ));
                    }
                    continue;
                }
                if is_param(input) {
                    if want != json && !want.is_decodable() {
                        type_problems.push(format!(
                            "node `{}` takes `{want}` as `{input}`, which cannot be decoded from parameters (declare it with serde_data!)",
                            node.name()
                        ));
                    }
                    continue;
                }
                if !catalog.contains(input) {
                    continue;
                }
                match catalog.load_type(input) {
                    LoadType::Any => {}
                    LoadType::Decodes => {
                        if !want.is_decodable() {
                            type_problems.push(format!(
                                "node `{}` takes `{want}` as `{input}`, but that dataset decodes files and `{want}` is not serde-backed",
                                node.name()
                            ));
                        }
                    }
                    LoadType::Table => {
                        if want != DataType::of::<arrow_array::RecordBatch>() && !want.is_decodable() {
                            type_problems.push(format!(
                                "node `{}` takes `{want}` as `{input}`, but that dataset loads an Arrow table (RecordBatch or serde-backed rows)",
                                node.name()
                            ));
                        }
                    }
                    LoadType::Exact(have) => {
                        if have != want && !(want.is_decodable() && have == json) {
                            type_problems.push(format!(
                                "node `{}` takes `{want}` as `{input}`, but that dataset loads `{have}`",
                                node.name()
                            ));
                        }
                    }
                }
            }
        }
    }
    let mut problems = missing;
    let warnings = match mode {
        TypeCheck::Strict => {
            problems.extend(type_problems);
            Vec::new()
        }
        _ => type_problems,
    };
    if problems.is_empty() {
        Ok(warnings)
    } else {
        Err(RunError::Validation { problems })
    }
}
