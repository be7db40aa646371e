use std::collections::BTreeMap;

use serde::Serialize;
use weft_pipeline::Data;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Every node ran.
    Succeeded,
    /// A node or dataset failed, or the run was invalid.
    Failed,
    /// The run never started (an earlier run of its batch failed under fail-fast).
    Skipped,
    /// The run was cancelled while running.
    Cancelled,
}

impl RunStatus {
    /// The lowercase name used in JSON, the CLI and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened in one run: the result sessions return and hooks receive.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The run's id.
    pub run_id: String,
    /// How it ended.
    pub status: RunStatus,
    /// Data of the pipeline's free outputs (no copy: shared handles).
    pub outputs: BTreeMap<String, Data>,
    /// Dataset → version the run saved (chain them through `load_versions`).
    pub saved_versions: BTreeMap<String, String>,
    /// The error chain, outermost first, when the run did not succeed.
    pub error: Option<RunFailure>,
    /// When the run started.
    pub start_time: jiff::Timestamp,
    /// When the run ended.
    pub end_time: jiff::Timestamp,
    /// Anything else worth keeping: node timings, attempts, params, filters.
    pub metadata: serde_json::Value,
}

/// A run's error, flattened so it can be stored, sent and compared.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct RunFailure {
    /// `validation`, `node`, `dataset`, `cancelled`, `skipped`, or another layer's kind.
    pub kind: String,
    /// The outermost message.
    pub message: String,
    /// The node it happened in, if any.
    pub node: Option<String>,
    /// The full cause chain, outermost first.
    pub causes: Vec<String>,
}

impl RunFailure {
    /// Flattens a runner error.
    pub fn from_run_error(e: &crate::RunError) -> Self {
        RunFailure {
            kind: e.kind().to_string(),
            message: e.to_string(),
            node: e.node().map(str::to_string),
            causes: e.chain(),
        }
    }
}

impl RunResult {
    /// The run's duration.
    pub fn duration(&self) -> std::time::Duration {
        let span = self.end_time.duration_since(self.start_time);
        std::time::Duration::try_from(span).unwrap_or_default()
    }
}
