use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weft_pipeline::Data;

use crate::RunStatus;

/// Identifies one run within a session; passed to every hook call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunContext {
    /// The session the run belongs to.
    pub session_id: String,
    /// The run's unique id (`%Y-%m-%dT%H.%M.%S.%fZ-xxxxxxxx`).
    pub run_id: String,
    /// Position of the run in its batch (0-based; 0 for a single run).
    pub run_index: usize,
    /// Number of runs in its batch (1 for a single run).
    pub total_runs: usize,
}

/// How long one node took.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeTiming {
    /// The node's full name.
    pub node: String,
    /// When it started.
    pub start: jiff::Timestamp,
    /// How long it ran, loads and saves included, in milliseconds.
    pub duration_ms: f64,
    /// Peak memory while it ran, when measured (not measured yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    /// Rows it read: the sum over its inputs whose values know their row
    /// count (`RecordBatch`, lists, JSON arrays); `None` when none does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_in: Option<u64>,
    /// Rows it wrote, counted the same way over its outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_out: Option<u64>,
    /// What a cycle node did: iterations, convergence, per-iteration timings
    /// (`None` for other nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle: Option<weft_pipeline::CycleReport>,
}

/// What checking a run's connections (every node input against its
/// producer's output or its dataset's load type) cost, before any node ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationStats {
    /// Runs validated (1 for one run's figure; sums over many).
    pub validations: u64,
    /// Node inputs checked.
    pub connections: u64,
    /// Problems found (missing inputs, type mismatches; warnings included).
    pub problems: u64,
    /// Time spent validating, in milliseconds.
    pub duration_ms: f64,
}

impl ValidationStats {
    /// Adds `other`'s counts and time to these.
    pub fn add(&mut self, other: &ValidationStats) {
        self.validations += other.validations;
        self.connections += other.connections;
        self.problems += other.problems;
        self.duration_ms += other.duration_ms;
    }
}

/// A run's error, flattened so it can be stored, sent and compared. The typed
/// error (with its sources) is logged where it happens; this is its record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFailure {
    /// `validation`, `node`, `dataset`, `cancelled`, `skipped`, `config`,
    /// `pipeline`, `interrupted`.
    pub kind: String,
    /// The outermost message.
    pub message: String,
    /// The node it happened in, if any.
    pub node: Option<String>,
    /// The full cause chain, outermost first.
    pub causes: Vec<String>,
}

impl RunFailure {
    /// Flattens an error and its `source()` chain.
    pub fn from_error(kind: &str, node: Option<&str>, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut causes = vec![error.to_string()];
        let mut cur = error.source();
        while let Some(c) = cur {
            let text = c.to_string();
            // Wrapping errors often repeat their source's text: keep each once.
            if !causes.last().is_some_and(|last| last.ends_with(&text)) {
                causes.push(text);
            }
            cur = c.source();
        }
        RunFailure {
            kind: kind.into(),
            message: error.to_string(),
            node: node.map(str::to_string),
            causes,
        }
    }

    /// A failure with one message and no deeper cause.
    pub fn message(kind: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        RunFailure {
            kind: kind.into(),
            causes: vec![message.clone()],
            message,
            node: None,
        }
    }
}

/// The question a paused run waits on: which `await_input` node asks what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingInput {
    /// The node's full name (the key of its answer in `answers`).
    pub node: String,
    /// What it asks.
    pub prompt: String,
    /// The JSON Schema the answer must match.
    pub schema: serde_json::Value,
    /// When the run paused.
    pub requested_at: jiff::Timestamp,
}

/// What happened in one run: the result sessions return and hooks receive.
/// Every field is typed; nothing is read back by string keys.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The run's id.
    pub run_id: String,
    /// Its session.
    pub session_id: String,
    /// Position of the run in its batch (0-based; 0 for a single run).
    pub run_index: usize,
    /// How it ended.
    pub status: RunStatus,
    /// Data of the pipeline's free outputs (no copy: shared handles).
    pub outputs: BTreeMap<String, Data>,
    /// Dataset → version the run saved (chain them through `load_versions`).
    pub saved_versions: BTreeMap<String, String>,
    /// The error chain, outermost first, when the run did not succeed.
    pub error: Option<RunFailure>,
    /// What the run waits for, when its status is `input_required`.
    pub pending_input: Option<PendingInput>,
    /// When the run started (for a skipped run: when it was skipped).
    pub start_time: jiff::Timestamp,
    /// When the run ended.
    pub end_time: jiff::Timestamp,
    /// Attempts made (0 for a run that never started).
    pub attempts: u32,
    /// The run's configuration environment.
    pub env: String,
    /// Every runtime parameter of the run (session's and run's, merged).
    pub runtime_params: serde_json::Value,
    /// Pipelines run.
    pub pipeline_names: Vec<String>,
    /// Filters as a JSON object, empty ones left out.
    pub filters: serde_json::Value,
    /// Versions pinned for loading.
    pub load_versions: BTreeMap<String, String>,
    /// One entry per node that finished, in completion order (failed runs too).
    pub node_timings: Vec<NodeTiming>,
    /// Nodes skipped because their outputs already existed.
    pub skipped_nodes: Vec<String>,
    /// Warnings (type checks in `warn` mode, cross-run reads, transcoding).
    pub warnings: Vec<String>,
    /// Numeric metrics: numeric free outputs and declared metrics datasets.
    pub metrics: BTreeMap<String, f64>,
    /// Dataset → file path for outputs written run-scoped (the isolation rule).
    pub scoped_outputs: BTreeMap<String, String>,
    /// Version folders removed by `cleanup_on_error`.
    pub cleaned_up: Vec<String>,
    /// The peak resident memory of the whole process when the run ended (a
    /// process figure: concurrent runs share it).
    pub process_peak_rss_bytes: Option<u64>,
    /// What validating the run's connections cost (zero when it never
    /// reached validation).
    pub validation: ValidationStats,
}

impl RunResult {
    /// The run's duration.
    pub fn duration(&self) -> std::time::Duration {
        let span = self.end_time.duration_since(self.start_time);
        std::time::Duration::try_from(span).unwrap_or_default()
    }

    /// The same result without output data (what histories keep).
    pub fn without_outputs(&self) -> RunResult {
        RunResult {
            outputs: BTreeMap::new(),
            ..self.clone()
        }
    }
}
