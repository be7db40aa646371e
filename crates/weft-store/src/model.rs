use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

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

/// Where a run is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Accepted, not started.
    Queued,
    /// Running.
    Running,
    /// Finished without error.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Never started (its batch stopped).
    Skipped,
    /// Stopped on request.
    Cancelled,
    /// Its process died while it ran.
    Interrupted,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Skipped,
        RunStatus::Cancelled,
        RunStatus::Interrupted,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Whether the run is over.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    /// The one place run transitions are decided:
    /// `queued → running → succeeded | failed | cancelled | interrupted`,
    /// `queued → skipped | cancelled | interrupted` (the process that
    /// planned it died before it started), and `failed | interrupted →
    /// queued | running` (retries, recovery). A `queued` or `running` run may be
    /// rewritten with the same status (progress updates); a finished one may
    /// not.
    pub fn can_transition(from: RunStatus, to: RunStatus) -> bool {
        use RunStatus::*;
        (from == to && !from.is_terminal())
            || matches!(
                (from, to),
                (Queued, Running | Skipped | Cancelled | Interrupted)
                    | (Running, Succeeded | Failed | Cancelled | Interrupted)
                    | (Failed | Interrupted, Queued | Running)
            )
    }

    /// [`RunStatus::can_transition`] as a `Result`: the error every update
    /// of run `run_id` reports for a forbidden change.
    pub fn check_transition(run_id: &str, from: RunStatus, to: RunStatus) -> Result<(), crate::StoreError> {
        if RunStatus::can_transition(from, to) {
            Ok(())
        } else {
            Err(crate::StoreError::InvalidTransition {
                run_id: run_id.to_string(),
                from: from.to_string(),
                to: to.to_string(),
            })
        }
    }

    /// Statuses from which `to` may be reached.
    pub fn sources(to: RunStatus) -> Vec<RunStatus> {
        RunStatus::ALL
            .into_iter()
            .filter(|from| RunStatus::can_transition(*from, to))
            .collect()
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown run status `{s}`; expected one of {}",
                    RunStatus::ALL.map(|s| s.as_str()).join(", ")
                )
            })
    }
}

/// A failed run's error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunErrorRecord {
    /// Error kind (`node`, `dataset`, `validation`, ...).
    pub kind: String,
    /// The outermost message.
    pub message: String,
    /// The node it happened in.
    pub node: Option<String>,
    /// The full cause chain, outermost first.
    pub causes: Vec<String>,
}

/// How long one node ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeTiming {
    /// Node name.
    pub node: String,
    /// When it started.
    pub start: Timestamp,
    /// Duration in milliseconds.
    pub duration_ms: f64,
    /// Peak memory while it ran, when measured.
    pub peak_memory_bytes: Option<u64>,
}

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
    /// Peak resident memory of the process running it.
    pub peak_memory_bytes: Option<u64>,
    /// Numeric metrics by name (numeric outputs, metrics datasets), sorted
    /// by name. Nested objects are stored flattened with dotted names
    /// (`model.r2`); a non-finite value is stored as `null` and reads back
    /// as NaN.
    #[serde(default, with = "metrics_serde")]
    pub metrics: BTreeMap<String, f64>,
    /// `host:pid` of the process running it.
    pub owner: Option<String>,
    /// When the run last made progress: set by the store on every insert,
    /// update and [`crate::Store::update_progress`]. A run found
    /// interrupted keeps this as its end time.
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
}

/// Numeric metrics from a JSON value, as [`RunRecord::metrics`] stores
/// them: numbers of nested objects under dotted names (`{"model": {"r2":
/// 0.9}}` → `model.r2`), `null` as NaN, anything else (strings, lists,
/// booleans) left out. For a session turning numeric outputs or a metrics
/// dataset into metrics.
pub fn metrics_from_json(v: &serde_json::Value) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    metrics_serde::flatten("", v, &mut out);
    out
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

    pub(super) fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, f64>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            Value::Number(n) if !prefix.is_empty() => {
                if let Some(f) = n.as_f64() {
                    out.insert(prefix.to_string(), f);
                }
            }
            Value::Null if !prefix.is_empty() => {
                out.insert(prefix.to_string(), f64::NAN);
            }
            _ => {}
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        use RunStatus::*;
        assert!(RunStatus::can_transition(Queued, Running));
        assert!(RunStatus::can_transition(Running, Interrupted));
        assert!(RunStatus::can_transition(Failed, Running));
        assert!(!RunStatus::can_transition(Succeeded, Running));
        assert!(!RunStatus::can_transition(Queued, Succeeded));
        assert!(!RunStatus::can_transition(Skipped, Running));
        assert_eq!("failed".parse::<RunStatus>().unwrap(), Failed);
        assert!(
            "done"
                .parse::<RunStatus>()
                .unwrap_err()
                .contains("expected one of")
        );
        assert!(Succeeded.is_terminal() && !Running.is_terminal());
        assert!(RunStatus::can_transition(Running, Running));
        assert!(!RunStatus::can_transition(Succeeded, Succeeded));
        assert!(RunStatus::can_transition(Interrupted, Queued));
        assert!(RunStatus::can_transition(Queued, Skipped));
        assert!(!RunStatus::can_transition(Running, Skipped));
        for s in RunStatus::ALL {
            assert_eq!(s.to_string().parse::<RunStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!(RunStatus::can_transition(Queued, Interrupted));
    }

    fn minimal_record(metrics: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "run_id": "r", "session_id": "s", "run_index": 0, "status": "running",
            "env": "local", "runtime_params": {}, "pipeline_names": [], "filters": {},
            "load_versions": {}, "saved_versions": {}, "start_time": null, "end_time": null,
            "duration_ms": null, "error": null, "attempts": 1, "node_timings": [],
            "peak_memory_bytes": null, "metrics": metrics, "owner": null
        })
    }

    #[test]
    fn metrics_are_typed_numbers_and_old_records_decode() {
        // An older record: no `updated_at`, nested and non-numeric metrics.
        let old =
            minimal_record(serde_json::json!({"r2": 0.5, "model": {"mae": 2, "name": "lin"}, "gone": null}));
        let r: RunRecord = serde_json::from_value(old).unwrap();
        assert_eq!(r.updated_at, None);
        assert_eq!(r.metrics.keys().collect::<Vec<_>>(), ["gone", "model.mae", "r2"]);
        assert_eq!(r.metrics["model.mae"], 2.0);
        assert!(r.metrics["gone"].is_nan());
        let mut r: RunRecord = serde_json::from_value(minimal_record(serde_json::json!({}))).unwrap();
        assert!(r.metrics.is_empty());
        // A non-finite value is written as null and still decodes.
        r.metrics = BTreeMap::from([("inf".to_string(), f64::INFINITY), ("x".to_string(), 1.5)]);
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""metrics":{"inf":null,"x":1.5}"#), "{text}");
        let back: RunRecord = serde_json::from_str(&text).unwrap();
        assert!(back.metrics["inf"].is_nan());
        assert_eq!(back.metrics["x"], 1.5);
        assert_eq!(
            RunStatus::sources(RunStatus::Interrupted),
            vec![RunStatus::Queued, RunStatus::Running]
        );
    }
}
