use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A recorded session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Session id.
    pub session_id: String,
    /// `session` (one run) or `service` (many).
    pub kind: String,
    /// The project folder.
    pub project_path: String,
    /// The configuration environment.
    pub env: String,
    /// Session-wide runtime parameters.
    pub runtime_params: serde_json::Value,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was closed.
    pub closed_at: Option<Timestamp>,
    /// Who ran it.
    pub username: Option<String>,
    /// The project's git commit, when it is a git repository.
    pub git_commit: Option<String>,
    /// Whether the work tree had uncommitted changes.
    pub git_dirty: Option<bool>,
    /// The command line that started it.
    pub command: Vec<String>,
}

pub use weft_core::{NodeTiming, RunStatus};

/// A failed run's error: the shared [`weft_core::RunFailure`].
pub type RunErrorRecord = weft_core::RunFailure;

/// A recorded run: one row per run id, updated as the run progresses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Run id.
    pub run_id: String,
    /// Its session.
    pub session_id: String,
    /// Position in its batch.
    pub run_index: u32,
    /// Lifecycle status.
    pub status: RunStatus,
    /// Configuration environment.
    pub env: String,
    /// Runtime parameters of the run.
    pub runtime_params: serde_json::Value,
    /// Pipelines run.
    pub pipeline_names: Vec<String>,
    /// Filters (tags, node names, ...) as a JSON object.
    pub filters: serde_json::Value,
    /// Versions loaded.
    pub load_versions: BTreeMap<String, String>,
    /// Versions saved.
    pub saved_versions: BTreeMap<String, String>,
    /// Start time.
    pub start_time: Option<Timestamp>,
    /// End time.
    pub end_time: Option<Timestamp>,
    /// Duration in milliseconds.
    pub duration_ms: Option<f64>,
    /// The error, when it failed.
    pub error: Option<RunErrorRecord>,
    /// Attempts made (retries count).
    pub attempts: u32,
    /// Per-node timings.
    pub node_timings: Vec<NodeTiming>,
    /// The peak resident memory of the whole process that ran it, read when
    /// the run ended: a process figure (concurrent runs share it), not the
    /// run's own allocations.
    #[serde(alias = "peak_memory_bytes")]
    pub process_peak_rss_bytes: Option<u64>,
    /// What validating the run's connections cost (node inputs checked,
    /// problems, time), when the run reached validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<weft_core::ValidationStats>,
    /// Numeric metrics by name (numeric outputs, metrics datasets), sorted
    /// by name. Nested objects are stored flattened with dotted names
    /// (`model.r2`); a non-finite value is stored as `null` and reads back
    /// as NaN.
    #[serde(default, with = "metrics_serde")]
    pub metrics: BTreeMap<String, f64>,
    /// The run's free outputs (datasets no node reads and the catalog does
    /// not persist) as JSON, for request/response use; outputs that do not
    /// convert to JSON, or over 256 KiB of JSON each (1 MiB in all), are
    /// left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, serde_json::Value>,
    /// What the run waits for, while its status is `input_required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_input: Option<weft_core::PendingInput>,
    /// `host:pid` of the process running it.
    pub owner: Option<String>,
    /// When the run last made progress: set by the store on every insert,
    /// update and [`crate::Store::update_progress`]. A run found
    /// interrupted keeps this as its end time.
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
}

impl RunRecord {
    /// A record with nothing but its ids and status (no times, params,
    /// versions or timings yet).
    pub fn new(run_id: impl Into<String>, session_id: impl Into<String>, status: RunStatus) -> Self {
        RunRecord {
            run_id: run_id.into(),
            session_id: session_id.into(),
            run_index: 0,
            status,
            env: String::new(),
            runtime_params: serde_json::Value::Object(Default::default()),
            pipeline_names: Vec::new(),
            filters: serde_json::Value::Object(Default::default()),
            load_versions: BTreeMap::new(),
            saved_versions: BTreeMap::new(),
            start_time: None,
            end_time: None,
            duration_ms: None,
            error: None,
            attempts: 0,
            node_timings: Vec::new(),
            process_peak_rss_bytes: None,
            validation: None,
            metrics: BTreeMap::new(),
            outputs: BTreeMap::new(),
            pending_input: None,
            owner: None,
            updated_at: None,
        }
    }
}

/// Numeric metrics from a JSON value, as [`RunRecord::metrics`] stores
/// them: numbers of nested objects under dotted names (`{"model": {"r2":
/// 0.9}}` → `model.r2`), `null` as NaN, anything else (strings, lists,
/// booleans) left out. For a session turning numeric outputs or a metrics
/// dataset into metrics.
pub fn metrics_from_json(v: &serde_json::Value) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    metrics_serde::flatten(v, &mut out);
    out
}

/// Calls `f` with every leaf of `v` under its dotted name (`{"a": {"b":
/// 1}}` → `a.b`). Non-empty objects are walked into; anything else,
/// empty objects included, is a leaf. A leaf at the top (no name) is
/// skipped.
pub(crate) fn for_each_leaf(
    prefix: &str,
    v: &serde_json::Value,
    f: &mut dyn FnMut(String, &serde_json::Value),
) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                for_each_leaf(&key, v, f);
            }
        }
        _ if !prefix.is_empty() => f(prefix.to_string(), v),
        _ => {}
    }
}

/// `metrics` on the wire: a JSON object of numbers. Reading is lenient so
/// older records decode: nested objects are flattened with dotted names,
/// `null` reads as NaN, other values (strings, lists, booleans) are
/// dropped.
mod metrics_serde {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, v)| (k, v.is_finite().then_some(*v))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let v = Option::<Value>::deserialize(d)?;
        Ok(v.map(|v| super::metrics_from_json(&v)).unwrap_or_default())
    }

    pub(super) fn flatten(v: &Value, out: &mut BTreeMap<String, f64>) {
        super::for_each_leaf("", v, &mut |key, v| match v {
            Value::Number(n) => {
                if let Some(f) = n.as_f64() {
                    out.insert(key, f);
                }
            }
            Value::Null => {
                out.insert(key, f64::NAN);
            }
            _ => {}
        });
    }
}

/// Which runs to list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFilter {
    /// Only this session's.
    pub session_id: Option<String>,
    /// Only with this status.
    pub status: Option<RunStatus>,
    /// At most this many (newest first).
    pub limit: Option<u32>,
    /// Only runs whose id sorts before this one (the next page after a
    /// page that ended with it).
    pub before: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_keep_numbers_and_nulls_under_dotted_names() {
        let m = metrics_from_json(&serde_json::json!({
            "model": {"r2": 0.9, "extra": {}, "name": "lin", "loss": null},
            "n": 3,
            "tags": [1, 2],
        }));
        assert_eq!(m.keys().collect::<Vec<_>>(), ["model.loss", "model.r2", "n"]);
        assert_eq!(m["model.r2"], 0.9);
        assert_eq!(m["n"], 3.0);
        assert!(m["model.loss"].is_nan());
        assert!(metrics_from_json(&serde_json::json!(1.5)).is_empty());
    }
}
