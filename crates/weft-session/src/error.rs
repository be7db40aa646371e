use std::path::PathBuf;

/// Everything that can go wrong opening a project or running a session.
///
/// Grouped by who is at fault: the project's files (`Project`, `Config`,
/// `Catalog`, `PipelineYaml`, `UnknownPipeline`), the caller's use of the
/// API (`Session`, `InvalidRun`), and the environment (`Store`, `Io`).
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
    /// The run configuration is invalid (nothing was started).
    #[error("invalid run configuration: {}", problems.join("; "))]
    InvalidRun {
        /// Every problem found.
        problems: Vec<String>,
    },
    /// The run failed; the result holds the status, error chain and timings.
    #[error("run {} {}: {}", .0.run_id, .0.status, .0.error.as_ref().map(|e| e.causes.join("\n  caused by: ")).unwrap_or_default())]
    RunFailed(Box<weft_runner::RunResult>),
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
}
