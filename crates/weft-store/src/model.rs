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
    /// Peak resident memory of the process running it.
    pub peak_memory_bytes: Option<u64>,
    /// User metrics.
    pub metrics: serde_json::Value,
    /// `host:pid` of the process running it.
    pub owner: Option<String>,
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
