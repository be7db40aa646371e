use serde::Serialize;

/// Identifies one run within a session; passed to every hook call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunContext {
    /// The session the run belongs to.
    pub session_id: String,
    /// The run's unique id (`%Y-%m-%dT%H.%M.%S.%fZ-xxxxxxxx`).
    pub run_id: String,
    /// Position of the run in its batch (0-based).
    pub run_index: usize,
    /// Number of runs in the batch (1 for a single run).
    pub total_runs: usize,
}
