use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can go wrong loading configuration.
///
/// The variants are grouped by who has to fix the problem:
///
/// * the configuration files ([`ConfigError::Parse`],
///   [`ConfigError::Invalid`], [`ConfigError::MissingBase`]): each names the
///   file, the line where known, and the key;
/// * the caller's input ([`ConfigError::RuntimeParams`],
///   [`ConfigError::RuntimeParamValue`],
///   [`ConfigError::UnknownSection`]);
/// * the machine ([`ConfigError::Io`]): a file or folder could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // ---- configuration files ----
    /// A YAML or JSON file does not parse.
    #[error("{}: {message}", location(file, *line, *column))]
    Parse {
        /// The file.
        file: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// What the parser said.
        message: String,
    },
    /// One or more problems in a section (duplicate keys, unresolvable
    /// interpolations, unparsable files...), all reported at once.
    #[error(
        "invalid configuration ({section}): {} problem{}:\n  - {}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  - ")
    )]
    Invalid {
        /// The section being loaded (`catalog`, `parameters`, ...).
        section: String,
        /// Every problem found, each naming its file, line and key.
        problems: Vec<Problem>,
    },
    /// The `base` environment folder is missing.
    #[error("configuration folder {} has no `base` environment (expected the folder {})", conf_source.display(), conf_source.join("base").display())]
    MissingBase {
        /// The configuration folder.
        conf_source: PathBuf,
    },

    // ---- the caller's input ----
    /// Malformed runtime parameters (`--params`).
    #[error("invalid runtime parameter `{item}`: {message}")]
    RuntimeParams {
        /// The offending item, as written.
        item: String,
        /// What is wrong.
        message: String,
    },
    /// A malformed value in runtime parameters (`--params "a=[1,2"`).
    #[error("invalid runtime parameter `{item}`")]
    RuntimeParamValue {
        /// The offending item, as written.
        item: String,
        /// What is wrong with its value.
        #[source]
        source: crate::overrides::OverrideError,
    },
    /// A section that is neither built in (`catalog`, `parameters`,
    /// `credentials`, `globals`) nor registered with
    /// [`crate::ConfigLoader::with_patterns`].
    #[error(
        "no config patterns for section `{section}`; built-in sections are catalog, parameters, credentials and globals, register others with with_patterns"
    )]
    UnknownSection {
        /// The requested section.
        section: String,
    },
    /// A file pattern of a section is not a valid glob.
    #[error("section `{section}`: invalid file pattern `{pattern}`: {source}")]
    Pattern {
        /// The section.
        section: String,
        /// The pattern.
        pattern: String,
        /// Why it is invalid.
        #[source]
        source: globset::Error,
    },

    // ---- the machine ----
    /// A file or folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What kind of [`Problem`] was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// The file does not parse as YAML/JSON.
    Syntax,
    /// The file's top level is not a mapping.
    NotAMapping,
    /// A key is defined in two files of the same environment.
    Duplicate {
        /// The file that defined the key first.
        first_file: PathBuf,
        /// The line of the key in `first_file`, when known.
        first_line: Option<usize>,
    },
    /// A `${...}` reference cannot be resolved (missing key without
    /// default, cycle, malformed expression, forbidden resolver).
    Interpolation,
}

/// One problem in one configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What kind of problem.
    pub kind: ProblemKind,
    /// The file at fault, when known.
    pub file: Option<PathBuf>,
    /// 1-based line in `file`, when known.
    pub line: Option<usize>,
    /// 1-based column in `file`, when known (syntax errors).
    pub column: Option<usize>,
    /// The dotted key at fault (empty when the whole file is at fault).
    pub key: String,
    /// Human-readable description (names the key and any reference).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ProblemKind::Duplicate {
                first_file,
                first_line,
            } => {
                let second = match &self.file {
                    Some(file) => location(file, self.line, None),
                    None => "?".into(),
                };
                write!(
                    f,
                    "{} (in {} and {})",
                    self.message,
                    location(first_file, *first_line, None),
                    second
                )
            }
            _ => match &self.file {
                Some(file) => write!(f, "{}: {}", location(file, self.line, self.column), self.message),
                None => f.write_str(&self.message),
            },
        }
    }
}

/// `file:line:column` with the unknown parts left out.
pub(crate) fn location(file: &Path, line: Option<usize>, column: Option<usize>) -> String {
    let mut s = file.display().to_string();
    if let Some(l) = line {
        s.push_str(&format!(":{l}"));
        if let Some(c) = column {
            s.push_str(&format!(":{c}"));
        }
    }
    s
}
