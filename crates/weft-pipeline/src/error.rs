//! The pipeline crate's error type.

/// Everything that can go wrong while building nodes, registries and pipelines.
///
/// Every variant is a problem with what the user declared (node wiring,
/// names, filters); none is an internal failure.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A node's wiring does not fit its function or is malformed.
    #[error("invalid node `{node}`:\n  - {}", problems.join("\n  - "))]
    InvalidNode {
        /// The node's full name.
        node: String,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// A function name is registered twice.
    #[error("function `{0}` is already registered; function names must be unique")]
    DuplicateFunction(String),
    /// A function name is not registered.
    #[error("unknown function `{name}`{}", did_you_mean(suggestions))]
    UnknownFunction {
        /// The requested name.
        name: String,
        /// Close registered names.
        suggestions: Vec<String>,
    },
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
