//! What to run: the run configuration shared by `Session`, `ServiceSession`,
//! the CLI and (later) HTTP run specs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weft_pipeline::PipelineFilter;

/// One run's specification. Small, serializable and self-contained: it is
/// what leaves the machine when runs are placed elsewhere.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// The run's id; assigned by `create_run_config` (or at run time) when empty.
    pub run_id: Option<String>,
    /// Pipelines to run (union); empty = the project's default pipeline.
    pub pipeline_names: Vec<String>,
    /// Only nodes with any of these tags.
    pub tags: Vec<String>,
    /// `sequential` (default), `thread` or `async`.
    pub runner: Option<String>,
    /// Threads for the thread runner; nodes in flight for the async runner.
    pub max_workers: Option<usize>,
    /// The run's time limit (`500ms`, `30s`, `5m`, `1h`); default:
    /// `[run] timeout` in `weft.toml`, else none. A node still running at
    /// it fails the run with a timeout error, and no node starts after it.
    pub timeout: Option<String>,
    /// Only these nodes.
    pub node_names: Vec<String>,
    /// These nodes and everything downstream.
    pub from_nodes: Vec<String>,
    /// These nodes and everything upstream.
    pub to_nodes: Vec<String>,
    /// Nodes depending on these datasets.
    pub from_inputs: Vec<String>,
    /// Nodes needed to produce these datasets.
    pub to_outputs: Vec<String>,
    /// Dataset → version to load.
    pub load_versions: BTreeMap<String, String>,
    /// Only nodes in these namespaces.
    pub namespaces: Vec<String>,
    /// Skip nodes whose outputs are all persisted and exist.
    pub only_missing_outputs: bool,
    /// Parameters deep-merged over the project's for this run only.
    pub runtime_params: serde_json::Value,
    /// The configuration environment (default: the session's).
    pub env: Option<String>,
    /// Data injected for this run only: free input dataset name → JSON
    /// value, used as a memory dataset in place of the catalog's entry
    /// (serving a pipeline request/response).
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// Answers to `await_input` nodes: node name → payload (checked against
    /// the node's JSON Schema); an answered node outputs its payload instead
    /// of pausing the run.
    pub answers: BTreeMap<String, serde_json::Value>,
}

impl RunConfig {
    /// The node filter this configuration asks for.
    pub fn filter(&self) -> PipelineFilter {
        PipelineFilter {
            tags: self.tags.clone(),
            node_names: self.node_names.clone(),
            from_nodes: self.from_nodes.clone(),
            to_nodes: self.to_nodes.clone(),
            from_inputs: self.from_inputs.clone(),
            to_outputs: self.to_outputs.clone(),
            node_namespaces: self.namespaces.clone(),
        }
    }

    /// The filters as a JSON object (for the run store), empty ones left out.
    pub fn filters_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        let mut put = |k: &str, v: &Vec<String>| {
            if !v.is_empty() {
                map.insert(k.into(), serde_json::json!(v));
            }
        };
        put("tags", &self.tags);
        put("node_names", &self.node_names);
        put("from_nodes", &self.from_nodes);
        put("to_nodes", &self.to_nodes);
        put("from_inputs", &self.from_inputs);
        put("to_outputs", &self.to_outputs);
        put("namespaces", &self.namespaces);
        if self.only_missing_outputs {
            map.insert("only_missing_outputs".into(), serde_json::json!(true));
        }
        if let Some(r) = &self.runner {
            map.insert("runner".into(), serde_json::json!(r));
        }
        serde_json::Value::Object(map)
    }
}

/// Where a run's non-versioned persisted outputs are written (the isolation
/// rule: runs that can overlap in time never share such a file).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Isolation {
    /// At their configured paths: the run cannot overlap another run of its
    /// session (a `Session`, or a `ServiceSession` with `max_workers = 1`).
    #[default]
    Shared,
    /// Under `dir`, mirroring their paths relative to the project (versioned,
    /// memory and `params:` datasets are unaffected, and inputs no run of the
    /// pipeline writes are read where they are).
    RunScoped {
        /// `<project>/.weft/runs/<run_id>`.
        dir: std::path::PathBuf,
    },
}

/// A run configuration with everything resolved once: run id, env, every
/// runtime parameter (the session's and the run's, merged), pipelines,
/// runner and isolation. Serializable and self-contained: it is what the
/// service queues and what a remote worker receives; preparing it again on
/// any machine with the same project gives the same run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// The session the run belongs to.
    pub session_id: String,
    /// Position of the run in its batch (0 for a single run).
    pub run_index: usize,
    /// The resolved configuration: `run_id`, `env`, `runner` set,
    /// `pipeline_names` non-empty, `runtime_params` the merged object.
    pub config: RunConfig,
    /// Where non-versioned persisted outputs go.
    pub isolation: Isolation,
}

impl RunSpec {
    /// The run's id.
    pub fn run_id(&self) -> &str {
        self.config.run_id.as_deref().unwrap_or_default()
    }

    /// The run's environment.
    pub fn env(&self) -> &str {
        self.config.env.as_deref().unwrap_or_default()
    }
}

/// Checks that a caller-supplied run id is safe in file paths and URLs.
pub(crate) fn check_run_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 {
        return Err(format!("run id `{id}` must be 1 to 128 characters"));
    }
    if id == "." || id == ".." || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(format!(
            "run id `{id}` may contain only ASCII letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

/// A new run id: Kedro's UTC timestamp `%Y-%m-%dT%H.%M.%S.%fZ` (microseconds),
/// `-`, and 8 hex characters of a random UUID. Sortable by time, unique even
/// within one microsecond, and safe in file paths.
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    let stamp = now.strftime("%Y-%m-%dT%H.%M.%S.%6fZ");
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{stamp}-{}", &random[..8])
}

/// A new session id (same shape as a run id).
pub fn new_session_id() -> String {
    new_run_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_have_kedro_shape_and_are_unique() {
        let ids: Vec<String> = (0..1000).map(|_| new_run_id()).collect();
        let set: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
        let id = &ids[0];
        // 2026-11-23T05.24.08.123456Z-0a1b2c3d
        assert_eq!(id.len(), 27 + 1 + 8, "{id}");
        assert_eq!(&id[4..5], "-");
        assert_eq!(&id[10..11], "T");
        assert_eq!(&id[13..14], ".");
        assert_eq!(&id[26..28], "Z-");
        assert!(id[28..].chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!id.contains(':') && !id.contains('/'));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<RunConfig>(r#"{"pipeline": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `pipeline`"), "{err}");
        let cfg: RunConfig = serde_json::from_str(r#"{"tags": ["a"], "runner": "thread"}"#).unwrap();
        assert_eq!(cfg.tags, vec!["a"]);
    }
}
