use std::fmt;
use std::path::PathBuf;

/// One problem in the catalog configuration, with where it was written
/// when the caller passed a locator (see [`crate::CatalogConfig::parse_located`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The dataset (catalog entry or pattern) at fault, if any.
    pub dataset: Option<String>,
    /// The key of the entry at fault (`type`, `filepath`, ...), if any.
    pub key: Option<String>,
    /// The configuration file that defines the entry, when known.
    pub file: Option<PathBuf>,
    /// 1-based line in `file`, when known.
    pub line: Option<usize>,
    /// What is wrong (names the dataset and key).
    pub message: String,
}

impl ConfigProblem {
    /// A problem with no known location.
    pub fn new(dataset: Option<&str>, key: Option<&str>, message: impl Into<String>) -> Self {
        ConfigProblem {
            dataset: dataset.map(str::to_string),
            key: key.map(str::to_string),
            file: None,
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

/// One invalid entry of `load_versions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadVersionProblem {
    /// The dataset name as given.
    pub dataset: String,
    /// The version as given.
    pub version: String,
    /// Why it is refused.
    pub reason: String,
}

impl fmt::Display for LoadVersionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` = `{}`: {}", self.dataset, self.version, self.reason)
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  - ")
}

/// Everything that can go wrong with datasets and the catalog.
///
/// Grouped by who is at fault (see [`CatalogError::fault`]): `Config` and
/// `LoadVersions` are the user's catalog configuration and run options
/// (every problem names its dataset and key or version); `NotSaved`,
/// `Load`, `Save`, `VersionExists`, `NoVersion`, `Conversion` and
/// `DuplicateColumn` are about the data of one dataset (named in every
/// message, with the file path where there is one); `Io`, `SaveIo` and
/// `NotAFile` are the environment; `Storage` (an object-store request) is
/// the data when the object does not exist, else the environment.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The catalog configuration is invalid; every problem is listed.
    #[error("invalid catalog configuration:\n  - {}", join(problems))]
    Config {
        /// Every problem, each naming its dataset and key (and file and
        /// line when known).
        problems: Vec<ConfigProblem>,
    },
    /// `load_versions` names unknown or unversioned datasets, or versions
    /// that are not plain folder names; every problem is listed.
    #[error("invalid load versions:\n  - {}", join(problems))]
    LoadVersions {
        /// Every refused entry.
        problems: Vec<LoadVersionProblem>,
    },
    /// A CSV header names one column twice (loading would drop one).
    #[error("failed to load dataset `{dataset}` from {}: column `{column}` appears twice in the header (columns {first} and {second})", path.display())]
    DuplicateColumn {
        /// The dataset.
        dataset: String,
        /// The CSV file.
        path: PathBuf,
        /// The repeated column name.
        column: String,
        /// 1-based position of its first occurrence.
        first: usize,
        /// 1-based position of its second occurrence.
        second: usize,
    },
    /// A save would replace something that is not a regular file.
    #[error("could not save `{dataset}` to {}: it is {kind}, not a regular file; refusing to replace it", path.display())]
    NotAFile {
        /// The dataset.
        dataset: String,
        /// The path (after following symlinks).
        path: PathBuf,
        /// What is there (`a directory`, `a FIFO`, ...).
        kind: String,
    },
    /// A memory dataset was loaded before anything saved it.
    #[error("dataset `{dataset}` has no data: nothing has saved it yet in this run")]
    NotSaved {
        /// The dataset.
        dataset: String,
    },
    /// Reading or decoding failed.
    #[error("failed to load dataset `{dataset}`{}: {message}", at(path))]
    Load {
        /// The dataset.
        dataset: String,
        /// The file, if any.
        path: Option<PathBuf>,
        /// What went wrong.
        message: String,
    },
    /// Encoding or writing failed.
    #[error("could not save `{dataset}`{}: {message}", to(path))]
    Save {
        /// The dataset.
        dataset: String,
        /// The file, if any.
        path: Option<PathBuf>,
        /// What went wrong.
        message: String,
    },
    /// A versioned dataset would overwrite an existing version.
    #[error("dataset `{dataset}`: version {version} already exists at {}; versions are never overwritten", path.display())]
    VersionExists {
        /// The dataset.
        dataset: String,
        /// The version.
        version: String,
        /// Its file.
        path: PathBuf,
    },
    /// A versioned dataset has no (or not the pinned) version to load.
    #[error("dataset `{dataset}`: {}{}", match version { Some(v) => format!("version {v} not found at {}", path.display()), None => format!("no version found under {}", path.display()) }, match found_as { Some(p) => format!(" (this version exists as {}, written through another transcoding)", p.display()), None => String::new() })]
    NoVersion {
        /// The dataset.
        dataset: String,
        /// The version looked for (pinned, saved in this run, or newest), if any.
        version: Option<String>,
        /// Where versions live (the file looked for when `version` is set).
        path: PathBuf,
        /// Where a transcoded sibling holds this version, if one does.
        found_as: Option<PathBuf>,
    },
    /// Loaded data cannot become the type the node asks for.
    #[error("dataset `{dataset}` holds `{from}` but `{to}` was requested: {message}")]
    Conversion {
        /// The dataset.
        dataset: String,
        /// What it holds.
        from: String,
        /// What was requested.
        to: String,
        /// Why it failed.
        message: String,
    },
    /// Writing a file failed (permissions, disk full, missing folder...).
    #[error("could not save `{dataset}` to {}: {source}", path.display())]
    SaveIo {
        /// The dataset.
        dataset: String,
        /// The path being written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An object-store request (read, write, list, delete, existence check)
    /// failed or timed out; the URL is the object (or prefix) asked for.
    #[error("dataset `{dataset}`: could not {action} {url}: {source}")]
    Storage {
        /// The dataset.
        dataset: String,
        /// The object URL (`s3://bucket/key`).
        url: String,
        /// What was attempted (`read`, `write`, `list`, `delete`, `check`).
        action: &'static str,
        /// The cause (the backend's error kept inside).
        #[source]
        source: crate::storage::StorageError,
    },
    /// A node confirms a dataset that has no checkpoint.
    #[error(
        "dataset `{dataset}` ({type_name}) has no checkpoint to confirm; only incremental datasets (partitions.IncrementalDataset) do"
    )]
    NotIncremental {
        /// The dataset.
        dataset: String,
        /// Its type.
        type_name: String,
    },
    /// Confirming an incremental dataset found its checkpoint moved since
    /// this run loaded it (another run confirmed first); nothing moved.
    #[error("dataset `{dataset}`: checkpoint {} holds {} but this run loaded from {}; another run confirmed it first, so the checkpoint was not moved to `{wanted}`", path.display(), shown(found), shown(expected))]
    CheckpointConflict {
        /// The dataset.
        dataset: String,
        /// The checkpoint file.
        path: PathBuf,
        /// The checkpoint this run loaded from (`None`: there was none).
        expected: Option<String>,
        /// The checkpoint found when confirming.
        found: Option<String>,
        /// The partition id this run would have recorded.
        wanted: String,
    },
    /// A file system operation failed.
    #[error("dataset `{dataset}`: {}: {source}", path.display())]
    Io {
        /// The dataset.
        dataset: String,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Who has to act to fix a [`CatalogError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The catalog configuration (or the dataset types registered) is wrong.
    Config,
    /// The data is missing, malformed or of the wrong type.
    Data,
    /// The file system (permissions, disk, missing folders) failed.
    Environment,
}

impl CatalogError {
    /// Who is at fault: the configuration, the data, or the environment.
    pub fn fault(&self) -> Fault {
        match self {
            CatalogError::Config { .. } | CatalogError::LoadVersions { .. } => Fault::Config,
            CatalogError::NotSaved { .. }
            | CatalogError::Load { .. }
            | CatalogError::Save { .. }
            | CatalogError::VersionExists { .. }
            | CatalogError::NoVersion { .. }
            | CatalogError::Conversion { .. }
            | CatalogError::DuplicateColumn { .. }
            | CatalogError::CheckpointConflict { .. } => Fault::Data,
            CatalogError::NotIncremental { .. } => Fault::Config,
            CatalogError::Storage {
                source: crate::storage::StorageError::NotFound { .. },
                ..
            } => Fault::Data,
            CatalogError::Io { .. }
            | CatalogError::SaveIo { .. }
            | CatalogError::NotAFile { .. }
            | CatalogError::Storage { .. } => Fault::Environment,
        }
    }

    /// The dataset the error is about (`None` only for configuration errors,
    /// whose problems each name their dataset).
    pub fn dataset(&self) -> Option<&str> {
        match self {
            CatalogError::Config { .. } | CatalogError::LoadVersions { .. } => None,
            CatalogError::NotSaved { dataset }
            | CatalogError::Load { dataset, .. }
            | CatalogError::Save { dataset, .. }
            | CatalogError::VersionExists { dataset, .. }
            | CatalogError::NoVersion { dataset, .. }
            | CatalogError::Conversion { dataset, .. }
            | CatalogError::DuplicateColumn { dataset, .. }
            | CatalogError::NotIncremental { dataset, .. }
            | CatalogError::CheckpointConflict { dataset, .. }
            | CatalogError::NotAFile { dataset, .. }
            | CatalogError::SaveIo { dataset, .. }
            | CatalogError::Io { dataset, .. }
            | CatalogError::Storage { dataset, .. } => Some(dataset),
        }
    }
}

fn shown(checkpoint: &Option<String>) -> String {
    match checkpoint {
        Some(id) => format!("`{id}`"),
        None => "no checkpoint".into(),
    }
}

fn to(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" to {}", p.display()))
        .unwrap_or_default()
}

fn at(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" from {}", p.display()))
        .unwrap_or_default()
}
