//! Namespaces and dataset mapping: Kedro's modular `pipeline(pipe,
//! namespace=, inputs=, outputs=, parameters=, tags=)`.
//!
//! [`Pipeline::namespaced`] returns a copy of a pipeline in which
//!
//! * node names get the `ns.` prefix and node namespaces become `ns` (or
//!   `ns.inner` for nodes already namespaced: namespaces compose);
//! * every dataset `d` becomes `ns.d`, unless it is mapped through
//!   `inputs` or `outputs` (mapped names are used verbatim, without prefix);
//! * every parameter `params:x` becomes `params:ns.x`, unless mapped through
//!   `parameters` (keys and values may be written with or without
//!   `params:`); `parameters` (all parameters) never changes;
//! * transcoded names keep their format: `a@pandas` becomes `ns.a@pandas`,
//!   and a mapping of the base name `a` applies to every `a@*`.
//!
//! Mappings are checked first, and every problem is reported at once: an
//! `inputs` key must be a free input, an `outputs` key must be written by a
//! node, a `parameters` key must be a parameter the pipeline reads, and a
//! dataset may not be mapped both as `a` and as `a@fmt`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, did_you_mean};
use crate::filter::suggest;
use crate::node::Node;
use crate::pipeline::{Pipeline, default_node_name, quote_all};
use crate::transcode;

/// How [`Pipeline::namespaced`] renames a pipeline (Kedro's `pipeline()`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamespaceOptions {
    /// Prefix for node names, datasets and parameters.
    pub namespace: Option<String>,
    /// Free inputs → names used verbatim instead of prefixing.
    pub inputs: BTreeMap<String, String>,
    /// Outputs → names used verbatim instead of prefixing.
    pub outputs: BTreeMap<String, String>,
    /// Parameters (`x` or `params:x`) → names used verbatim (`y` or `params:y`).
    pub parameters: BTreeMap<String, String>,
    /// Tags added to every node.
    pub tags: Vec<String>,
}

impl NamespaceOptions {
    /// Options that only set a namespace.
    pub fn namespace(ns: impl Into<String>) -> Self {
        NamespaceOptions {
            namespace: Some(ns.into()),
            ..Default::default()
        }
    }
}

const PARAMS: &str = "params:";

/// Whether a name is a parameter (`parameters` or `params:x`).
pub(crate) fn is_param(name: &str) -> bool {
    name == "parameters" || name.starts_with(PARAMS)
}

/// Whether a tag has only letters, digits, `_`, `.` and `-` (as node tags must).
fn valid_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.chars().all(|c| c.is_alphanumeric() || "_.-".contains(c))
}

/// What the mapping checks need to know about the pipeline.
struct Facts<'a> {
    /// Logical dataset name → the spellings nodes use (parameters excluded).
    forms: BTreeMap<&'a str, BTreeSet<&'a str>>,
    /// Logical names of the free inputs.
    free: BTreeSet<&'a str>,
    /// Parameters read (`params:x`).
    params: BTreeSet<&'a str>,
}

impl<'a> Facts<'a> {
    fn of(p: &'a Pipeline) -> Self {
        let mut forms: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut params = BTreeSet::new();
        for n in p.nodes() {
            for d in n.inputs().iter().chain(n.outputs()) {
                if is_param(d) {
                    if d != "parameters" {
                        params.insert(d.as_str());
                    }
                } else {
                    forms.entry(transcode::strip(d)).or_default().insert(d.as_str());
                }
            }
        }
        let free = p.inner.inputs.iter().map(|i| transcode::strip(i)).collect();
        Facts { forms, free, params }
    }
}

fn check_value(field: &str, key: &str, value: &str, problems: &mut Vec<String>) {
    if value.trim().is_empty() {
        problems.push(format!("{field}: `{key}` is mapped to an empty name"));
    } else if !transcode::is_valid(value) {
        problems.push(format!(
            "{field}: `{key}` is mapped to `{value}`, which has more than one `@` (expected `name@format`)"
        ));
    } else if is_param(value) {
        problems.push(format!(
            "{field}: `{key}` is mapped to the parameter `{value}`; datasets cannot become parameters"
        ));
    }
}

/// Checks one `inputs` or `outputs` mapping.
fn check_datasets(
    field: &str,
    map: &BTreeMap<String, String>,
    p: &Pipeline,
    facts: &Facts<'_>,
    problems: &mut Vec<String>,
) {
    let inputs = field == "inputs";
    for (key, value) in map {
        if is_param(key) {
            problems.push(format!(
                "{field}: `{key}` is a parameter; parameters should be mapped under `parameters`"
            ));
            continue;
        }
        if !transcode::is_valid(key) {
            problems.push(format!(
                "{field}: `{key}` has more than one `@` (expected `name@format`)"
            ));
            continue;
        }
        let base = transcode::strip(key);
        let Some(forms) = facts.forms.get(base) else {
            let all = facts.forms.values().flatten().copied();
            problems.push(format!(
                "{field}: `{key}` is not a dataset of the pipeline{}",
                did_you_mean(&suggest(key, all))
            ));
            continue;
        };
        if transcode::is_transcoded(key) && !forms.contains(key.as_str()) {
            problems.push(format!(
                "{field}: `{key}` is not used by the pipeline, which uses {}; map the name exactly as the nodes use it, or the bare name `{base}`",
                quote_all(forms)
            ));
            continue;
        }
        if !transcode::is_transcoded(key)
            && transcode::is_transcoded(value)
            && forms.iter().any(|f| transcode::is_transcoded(f))
        {
            problems.push(format!(
                "{field}: `{key}` is used with transcoding ({}), so it must be mapped to a name without `@`, not `{value}`",
                quote_all(forms)
            ));
            continue;
        }
        if inputs && !facts.free.contains(base) {
            let writer = p.producer_of(base).map(Node::name).unwrap_or_default();
            problems.push(format!(
                "inputs: `{key}` is an output of node `{writer}`, not a free input of the pipeline; inputs must not be outputs from another node in the same pipeline (map it under `outputs`)"
            ));
            continue;
        }
        if !inputs && p.producer_of(base).is_none() {
            problems.push(format!(
                "outputs: `{key}` is not an output of any node of the pipeline (it is a free input; map it under `inputs`)"
            ));
            continue;
        }
        check_value(field, key, value, problems);
    }
}

impl Pipeline {
    /// Wraps the pipeline in a namespace and maps datasets and parameters,
    /// with Kedro's rules (see the [module documentation](crate::namespace)).
    ///
    /// ```
    /// use weft_pipeline::{FunctionRegistry, NamespaceOptions, Pipeline};
    /// let reg = FunctionRegistry::with_builtins();
    /// let train = reg.node("noop", ["features", "params:alpha"], "model").unwrap().name("train").build().unwrap();
    /// let p = Pipeline::new([train]).unwrap();
    /// let mut opts = NamespaceOptions::namespace("ds");
    /// opts.inputs.insert("features".into(), "model_input".into());
    /// let ns = p.namespaced(&opts).unwrap();
    /// let n = ns.node("ds.train").unwrap();
    /// assert_eq!(n.inputs(), ["model_input", "params:ds.alpha"]);
    /// assert_eq!(n.outputs(), ["ds.model"]);
    /// assert_eq!(n.namespace(), Some("ds"));
    /// ```
    pub fn namespaced(&self, opts: &NamespaceOptions) -> Result<Pipeline, PipelineError> {
        let ns = opts.namespace.as_deref().filter(|s| !s.is_empty());
        let mut problems = Vec::new();
        if let Some(ns) = ns
            && (ns.contains(transcode::SEPARATOR)
                || ns.starts_with('.')
                || ns.ends_with('.')
                || ns.contains("..")
                || ns.contains(':')
                || ns.chars().any(char::is_whitespace))
        {
            problems.push(format!(
                "namespace `{ns}` is invalid: use dot-separated names without `@`, `:` or spaces"
            ));
        }
        for tag in &opts.tags {
            if !valid_tag(tag) {
                problems.push(format!(
                    "tag `{tag}` may only contain letters, digits, `_`, `.` and `-`"
                ));
            }
        }

        let facts = Facts::of(self);
        check_datasets("inputs", &opts.inputs, self, &facts, &mut problems);
        check_datasets("outputs", &opts.outputs, self, &facts, &mut problems);

        // A dataset mapped both as `a` and as `a@fmt` is ambiguous.
        let mut keys_by_base: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for key in opts.inputs.keys().chain(opts.outputs.keys()) {
            if !is_param(key) {
                keys_by_base.entry(transcode::strip(key)).or_default().insert(key);
            }
        }
        for (base, keys) in &keys_by_base {
            if keys.contains(base) && keys.len() > 1 {
                problems.push(format!(
                    "`{base}` is mapped both as a whole and per format ({}); map either `{base}` or its transcoded names",
                    quote_all(keys)
                ));
            }
        }

        let mut mapping: HashMap<String, String> = HashMap::new();
        for (key, value) in opts.inputs.iter().chain(&opts.outputs) {
            mapping.insert(key.clone(), value.clone());
        }
        for (key, value) in &opts.parameters {
            if key == "parameters" {
                if value != "parameters" {
                    problems.push(format!(
                        "parameters: `parameters` (all parameters) cannot be renamed to `{value}`"
                    ));
                }
                continue;
            }
            let short = key.strip_prefix(PARAMS).unwrap_or(key);
            let full = format!("{PARAMS}{short}");
            if short.is_empty() || !facts.params.contains(full.as_str()) {
                problems.push(format!(
                    "parameters: `{full}` is not a parameter used by the pipeline{}",
                    did_you_mean(&suggest(&full, facts.params.iter().copied()))
                ));
                continue;
            }
            let target = value.strip_prefix(PARAMS).unwrap_or(value);
            if target.trim().is_empty() || target == "parameters" {
                problems.push(format!(
                    "parameters: `{full}` is mapped to `{value}`; expected a parameter name"
                ));
                continue;
            }
            mapping.insert(full, format!("{PARAMS}{target}"));
        }
        if !problems.is_empty() {
            return Err(PipelineError::NamespaceMapping { problems });
        }

        let rename = |name: &str| -> String {
            if let Some(to) = mapping.get(name) {
                return to.clone();
            }
            if name == "parameters" {
                return name.to_string();
            }
            if transcode::is_transcoded(name)
                && let Some(to) = mapping.get(transcode::strip(name))
            {
                return transcode::with_format_of(to, name);
            }
            match (ns, name.strip_prefix(PARAMS)) {
                (Some(ns), Some(param)) => format!("{PARAMS}{ns}.{param}"),
                (Some(ns), None) => format!("{ns}.{name}"),
                (None, _) => name.to_string(),
            }
        };

        let extra: BTreeSet<String> = opts.tags.iter().cloned().collect();
        let nodes: Vec<Node> = self
            .nodes()
            .iter()
            .map(|n| {
                let inputs: Vec<String> = n.inputs().iter().map(|i| rename(i)).collect();
                let outputs: Vec<String> = n.outputs().iter().map(|o| rename(o)).collect();
                let short = n.short_name();
                let base = if short == default_node_name(n.func_name(), n.inputs(), n.outputs()) {
                    // Unnamed nodes are named after their wiring, as in Kedro.
                    default_node_name(n.func_name(), &inputs, &outputs)
                } else {
                    short.to_string()
                };
                let namespace = match (ns, n.namespace()) {
                    (Some(outer), Some(inner)) => Some(format!("{outer}.{inner}")),
                    (Some(outer), None) => Some(outer.to_string()),
                    (None, inner) => inner.map(str::to_string),
                };
                let name = match &namespace {
                    Some(space) => format!("{space}.{base}"),
                    None => base,
                };
                let confirms = n.confirms().iter().map(|c| rename(c)).collect();
                n.with_wiring(name, inputs, outputs, namespace, &extra)
                    .with_confirms(confirms)
            })
            .collect();
        Pipeline::new(nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_tags() {
        assert!(is_param("parameters"));
        assert!(is_param("params:x.y"));
        assert!(!is_param("paramsx"));
        assert!(valid_tag("a-b_c.d"));
        assert!(!valid_tag("a b"));
        assert!(!valid_tag(""));
        assert_eq!(NamespaceOptions::namespace("x").namespace.as_deref(), Some("x"));
    }
}
