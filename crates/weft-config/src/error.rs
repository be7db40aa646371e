use std::path::PathBuf;

/// Everything that can go wrong loading configuration.
///
/// All variants but `Io` are problems in the configuration files or runtime
/// parameters the user wrote; each names the file (and line or key) at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A YAML or JSON file does not parse.
    #[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Parse {
        /// The file.
        file: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What the parser said.
        message: String,
    },
    /// Several problems at once (duplicate keys, interpolation errors...).
    #[error("invalid configuration ({section}):\n  - {}", problems.join("\n  - "))]
    Invalid {
        /// The section being loaded (`catalog`, `parameters`, ...).
        section: String,
        /// Every problem found, each naming its file and key.
        problems: Vec<String>,
    },
    /// The `base` environment folder is missing.
    #[error("configuration folder {} has no `base` environment (expected {})", conf_source.display(), conf_source.join("base").display())]
    MissingBase {
        /// The configuration folder.
        conf_source: PathBuf,
    },
    /// Malformed runtime parameters (`--params`).
    #[error("invalid runtime parameter `{item}`: {message}")]
    RuntimeParams {
        /// The offending item.
        item: String,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
