//! The pipeline crate's error type.

/// Everything that can go wrong while building nodes, registries and pipelines.
///
/// Every variant but the `Cycle*`/`NoConvergence` ones is a problem with
/// what the user declared (node wiring, names, filters); those are how a
/// cycle node fails while it runs (the runner reports them as the node's
/// error). None is an internal failure.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A cycle's declaration is invalid.
    #[error("invalid cycle `{cycle}`:\n  - {}", problems.join("\n  - "))]
    InvalidCycle {
        /// The cycle node's full name.
        cycle: String,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// A node of a cycle's body failed.
    #[error("cycle `{cycle}`, iteration {iteration}, node `{node}`: {source}")]
    CycleNode {
        /// The cycle node.
        cycle: String,
        /// The iteration (1-based).
        iteration: usize,
        /// The body node (or predicate) that failed.
        node: String,
        /// Its error.
        #[source]
        source: crate::node::NodeFnError,
    },
    /// A cycle's condition could not be evaluated.
    #[error("cycle `{cycle}`, iteration {iteration}: {message}")]
    CycleCondition {
        /// The cycle node.
        cycle: String,
        /// The iteration (1-based).
        iteration: usize,
        /// What went wrong.
        message: String,
    },
    /// The run was cancelled while the cycle iterated.
    #[error("cycle `{cycle}` cancelled before iteration {iteration}")]
    CycleCancelled {
        /// The cycle node.
        cycle: String,
        /// The iteration that did not start.
        iteration: usize,
    },
    /// A cycle with `on_no_convergence: fail` reached its limit first.
    #[error(
        "cycle `{cycle}` did not converge within {iterations} iterations: `{condition}` never held (last values: {last_values})"
    )]
    NoConvergence {
        /// The cycle node.
        cycle: String,
        /// Iterations run (= `max_iterations`).
        iterations: usize,
        /// The condition as written.
        condition: String,
        /// The condition's values after the last iteration.
        last_values: String,
    },
    /// A node's wiring does not fit its function or is malformed.
    #[error("invalid node `{node}`:\n  - {}", problems.join("\n  - "))]
    InvalidNode {
        /// The node's full name.
        node: String,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// A command node's declaration is malformed ([`crate::command`]).
    #[error("invalid command:\n  - {}", problems.join("\n  - "))]
    InvalidCommand {
        /// Every problem found.
        problems: Vec<String>,
    },
    /// Answers given to nodes that cannot take them ([`crate::Pipeline::answered`]).
    #[error("invalid answers:\n  - {}", problems.join("\n  - "))]
    Answers {
        /// Every problem found.
        problems: Vec<String>,
    },
    /// A function name is registered twice.
    #[error("function `{0}` is already registered; function names must be unique")]
    DuplicateFunction(String),
    /// The nodes do not form a valid pipeline; every problem is listed.
    #[error("invalid pipeline:\n  - {}", problems.join("\n  - "))]
    InvalidPipeline {
        /// Every problem found.
        problems: Vec<String>,
    },
    /// A filter names nodes the pipeline does not have.
    #[error(
        "pipeline does not contain nodes {}{}",
        quoted(names),
        did_you_mean(suggestions)
    )]
    UnknownNodes {
        /// The unknown names.
        names: Vec<String>,
        /// Nodes whose name ends with a given name, or is close to it.
        suggestions: Vec<String>,
    },
    /// A filter names datasets no node of the pipeline uses.
    #[error("pipeline does not use datasets {}", quoted(names))]
    UnknownDatasets {
        /// The unknown datasets.
        names: Vec<String>,
    },
    /// A filter names namespaces no node of the pipeline is in.
    #[error("pipeline does not contain namespaces {}", quoted(names))]
    UnknownNamespaces {
        /// The unknown namespaces.
        names: Vec<String>,
    },
    /// Filtering left no node.
    #[error(
        "pipeline contains no nodes after applying all provided filters ({filters}); please ensure that the filters are correct"
    )]
    EmptyAfterFilter {
        /// The filters that were applied.
        filters: String,
    },
    /// A namespace mapping refers to datasets or parameters the pipeline does not have.
    #[error("failed to map datasets and/or parameters onto the pipeline:\n  - {}", problems.join("\n  - "))]
    NamespaceMapping {
        /// Every problem found.
        problems: Vec<String>,
    },
    /// A function name is not registered.
    #[error("unknown function `{name}`{}", did_you_mean(suggestions))]
    UnknownFunction {
        /// The requested name.
        name: String,
        /// Close registered names.
        suggestions: Vec<String>,
    },
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Formats a "did you mean" suffix (empty when there is nothing to suggest).
pub fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!(" (did you mean `{one}`?)"),
        many => format!(
            " (did you mean one of {}?)",
            many.iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
