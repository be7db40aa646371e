use std::path::PathBuf;

/// Everything that can go wrong opening a project or running a session.
///
/// Grouped by who is at fault: the project's files (`Project`, `Config`,
/// `Catalog`, `PipelineYaml`, `UnknownPipeline`), the caller's use of the
/// API (`Session`, `InvalidRun`, `InvalidBatch`, `Field`, `MissingInput`),
/// and the environment (`Store`, `Io`). Sources stay typed: a problem list
/// holds the errors themselves, not their text.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// `weft.toml` is missing or invalid.
    #[error("project {}: {message}", path.display())]
    Project {
        /// The project file or directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Loading configuration failed.
    #[error(transparent)]
    Config(#[from] weft_config::ConfigError),
    /// The catalog configuration is invalid or a dataset could not be built.
    #[error(transparent)]
    Catalog(#[from] weft_catalog::CatalogError),
    /// `pipelines.yml` is invalid; every problem is listed.
    #[error("{}: invalid pipelines:\n  - {}", file.display(), problems.join("\n  - "))]
    PipelineYaml {
        /// The pipelines file.
        file: PathBuf,
        /// Every problem, each with pipeline, node and line where known.
        problems: Vec<String>,
    },
    /// A pipeline, filter or namespace problem.
    #[error(transparent)]
    Pipeline(#[from] weft_pipeline::PipelineError),
    /// A requested pipeline does not exist.
    #[error("unknown pipeline `{name}`; available: {}", available.join(", "))]
    UnknownPipeline {
        /// The requested name.
        name: String,
        /// The project's pipelines.
        available: Vec<String>,
    },
    /// The session was used against its rules (e.g. a second run).
    #[error("{0}")]
    Session(String),
    /// One field of a run configuration is wrong.
    #[error("{field}: {message}")]
    Field {
        /// The field (`runner`, `env`, `run_id`, ...).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A free input of the selected pipeline cannot be loaded.
    #[error(
        "input `{dataset}` needed by node `{node}` is not available{}: {reason}",
        path.as_ref().map(|p| format!(" at {}", p.display())).unwrap_or_default()
    )]
    MissingInput {
        /// The dataset.
        dataset: String,
        /// Where it was looked for.
        path: Option<PathBuf>,
        /// A node that needs it.
        node: String,
        /// Why it is unavailable.
        reason: String,
    },
    /// The run configuration is invalid; nothing was started.
    #[error("invalid run configuration: {}", join(problems))]
    InvalidRun {
        /// Every problem found.
        problems: Vec<SessionError>,
    },
    /// Some runs of a batch are invalid; nothing was started.
    #[error("invalid batch, nothing started:\n  - {}", problems.iter().map(|(i, e)| format!("run #{i}: {e}")).collect::<Vec<_>>().join("\n  - "))]
    InvalidBatch {
        /// Each invalid run's position in the batch and its error.
        problems: Vec<(usize, SessionError)>,
    },
    /// The run failed; the result holds the status, error chain and timings.
    #[error("run {} {}: {}", .0.run_id, .0.status, .0.error.as_ref().map(|e| e.causes.join("\n  caused by: ")).unwrap_or_default())]
    RunFailed(Box<weft_core::RunResult>),
    /// The run paused at an `await_input` node: the result's
    /// `pending_input` says what it asks; answer with `Session::resume`.
    #[error("run {} waits for input at node `{}`: {}", .0.run_id, .0.pending_input.as_ref().map_or("?", |p| p.node.as_str()), .0.pending_input.as_ref().map_or("", |p| p.prompt.as_str()))]
    InputRequired(Box<weft_core::RunResult>),
    /// The run store failed.
    #[error(transparent)]
    Store(#[from] weft_store::StoreError),
    /// Reading or writing a project file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line of a session's log index is not `RUN_ID START [END]`.
    #[error("{}:{line}: malformed log index entry (expected `RUN_ID START [END]`)", path.display())]
    MalformedLogIndex {
        /// The index file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
    },
}

fn join(problems: &[SessionError]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl SessionError {
    /// A problem with one field of a run configuration.
    pub(crate) fn field(field: &str, message: impl Into<String>) -> Self {
        SessionError::Field {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Every problem of an invalid run (one for other errors).
    pub fn problems(&self) -> Vec<&SessionError> {
        match self {
            SessionError::InvalidRun { problems } => problems.iter().collect(),
            SessionError::InvalidBatch { problems } => problems.iter().map(|(_, e)| e).collect(),
            other => vec![other],
        }
    }
}
