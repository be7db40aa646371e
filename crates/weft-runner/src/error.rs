use std::time::Duration;

use weft_catalog::CatalogError;
use weft_pipeline::NodeFnError;

/// Why a run did not succeed.
///
/// Grouped by who is at fault: `Validation` is the user's wiring or input,
/// `Node` and `Dataset` are failures while running (user code or data),
/// `Cancelled` is a request from outside.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The run was not started: the pipeline does not fit the catalog.
    #[error("run validation failed:\n  - {}", problems.join("\n  - "))]
    Validation {
        /// Every problem found.
        problems: Vec<String>,
    },
    /// A node function returned an error.
    #[error("node `{node}` failed: {source}{}", hint(resume_from))]
    Node {
        /// The failing node.
        node: String,
        /// What the function reported.
        #[source]
        source: NodeFnError,
        /// Nodes to resume from with `--from-nodes`.
        resume_from: Vec<String>,
    },
    /// Loading or saving a dataset failed while running a node.
    #[error(
        "node `{node}` could not {action} dataset `{dataset}`: {source}{}",
        hint(resume_from)
    )]
    Dataset {
        /// The node being run.
        node: String,
        /// The dataset.
        dataset: String,
        /// `load` or `save`.
        action: &'static str,
        /// The catalog's error.
        #[source]
        source: Box<CatalogError>,
        /// Nodes to resume from with `--from-nodes`.
        resume_from: Vec<String>,
    },
    /// A node, or the run, exceeded its `timeout`.
    #[error("{}{}", timeout_message(node.as_deref(), *limit, *scope), hint(resume_from))]
    Timeout {
        /// The node that was running (none when the run's limit passed
        /// between nodes).
        node: Option<String>,
        /// The limit that was exceeded.
        limit: Duration,
        /// Whose limit: the node's own or the run's.
        scope: TimeoutScope,
        /// Nodes to resume from with `--from-nodes`.
        resume_from: Vec<String>,
    },
    /// The run was cancelled before it finished.
    #[error("run cancelled after {completed} of {total} nodes")]
    Cancelled {
        /// Nodes that finished.
        completed: usize,
        /// Nodes in the run.
        total: usize,
    },
}

/// Whose time limit a [`RunError::Timeout`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutScope {
    /// The node's own `timeout` (in `pipelines.yml` or [`NodeBuilder::timeout`](weft_pipeline::NodeBuilder::timeout)).
    Node,
    /// The run's `timeout` (run config, `--timeout`, `[run] timeout`).
    Run,
}

fn timeout_message(node: Option<&str>, limit: Duration, scope: TimeoutScope) -> String {
    let limit = weft_pipeline::format_duration(limit);
    match (node, scope) {
        (Some(node), TimeoutScope::Node) => format!("node `{node}` exceeded its {limit} timeout"),
        (Some(node), TimeoutScope::Run) => format!("node `{node}` exceeded the run's {limit} timeout"),
        (None, _) => format!("the run exceeded its {limit} timeout"),
    }
}

fn hint(resume_from: &[String]) -> String {
    if resume_from.is_empty() {
        String::new()
    } else {
        format!(
            "\nhint: to resume, run again with --from-nodes \"{}\"",
            resume_from.join(",")
        )
    }
}

impl RunError {
    /// The node the error happened in, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            RunError::Node { node, .. } | RunError::Dataset { node, .. } => Some(node),
            RunError::Timeout { node, .. } => node.as_deref(),
            _ => None,
        }
    }

    /// A short machine-readable kind: `validation`, `node`, `dataset`,
    /// `timeout`, `cancelled`.
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::Validation { .. } => "validation",
            RunError::Node { .. } => "node",
            RunError::Dataset { .. } => "dataset",
            RunError::Timeout { .. } => "timeout",
            RunError::Cancelled { .. } => "cancelled",
        }
    }

    /// The error and every cause below it, outermost first.
    pub fn chain(&self) -> Vec<String> {
        let mut out = vec![self.to_string()];
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = cur {
            out.push(e.to_string());
            cur = e.source();
        }
        out
    }

    /// Nodes to resume from, for failures during the run.
    pub fn resume_from(&self) -> &[String] {
        match self {
            RunError::Node { resume_from, .. }
            | RunError::Dataset { resume_from, .. }
            | RunError::Timeout { resume_from, .. } => resume_from,
            _ => &[],
        }
    }

    pub(crate) fn set_resume_from(&mut self, nodes: Vec<String>) {
        if let RunError::Node { resume_from, .. }
        | RunError::Dataset { resume_from, .. }
        | RunError::Timeout { resume_from, .. } = self
        {
            *resume_from = nodes;
        }
    }
}

/// A run that did not succeed, with what it did before it stopped.
///
/// Displays as its [`error`](RunFailed::error), and its
/// [`source`](std::error::Error::source) is the error's own source, so an
/// error chain shows each cause once; the typed [`RunError`] stays in the
/// `error` field.
#[derive(Debug)]
pub struct RunFailed {
    /// Why the run stopped (the node, the dataset, the cause).
    pub error: RunError,
    /// One entry per node that finished before the failure, in completion order.
    pub node_timings: Vec<crate::NodeTiming>,
    /// Nodes skipped because their outputs already existed.
    pub skipped_nodes: Vec<String>,
    /// Warnings from validation (type check in `warn` mode).
    pub warnings: Vec<String>,
    /// What validating the run's connections cost (zero when the run
    /// failed before validation).
    pub validation: weft_core::ValidationStats,
}

impl RunFailed {
    /// A failure before any node ran: no timings, skips or warnings.
    pub fn new(error: RunError) -> Self {
        RunFailed {
            error,
            node_timings: Vec::new(),
            skipped_nodes: Vec::new(),
            warnings: Vec::new(),
            validation: weft_core::ValidationStats::default(),
        }
    }
}

impl From<RunError> for RunFailed {
    fn from(error: RunError) -> Self {
        RunFailed::new(error)
    }
}

impl From<RunFailed> for RunError {
    fn from(failed: RunFailed) -> Self {
        failed.error
    }
}

impl std::fmt::Display for RunFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for RunFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}
