use std::path::PathBuf;

/// Everything that can go wrong with datasets and the catalog.
///
/// Grouped by who is at fault (see [`CatalogError::fault`]): `Config` is the
/// user's catalog configuration (every problem names its dataset and key);
/// `NotSaved`, `Load`, `Save`, `VersionExists`, `NoVersion` and
/// `Conversion` are about the data of one dataset (named in every message,
/// with the file path where there is one); `Io` is the environment.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The catalog configuration is invalid; every problem is listed.
    #[error("invalid catalog configuration:\n  - {}", problems.join("\n  - "))]
    Config {
        /// Every problem, each naming its dataset and key.
        problems: Vec<String>,
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
    #[error("failed to save dataset `{dataset}`{}: {message}", at(path))]
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
    #[error("dataset `{dataset}`: {}", match version { Some(v) => format!("version {v} not found at {}", path.display()), None => format!("no version found under {}", path.display()) })]
    NoVersion {
        /// The dataset.
        dataset: String,
        /// The pinned version, if any.
        version: Option<String>,
        /// Where versions live.
        path: PathBuf,
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
            CatalogError::Config { .. } => Fault::Config,
            CatalogError::NotSaved { .. }
            | CatalogError::Load { .. }
            | CatalogError::Save { .. }
            | CatalogError::VersionExists { .. }
            | CatalogError::NoVersion { .. }
            | CatalogError::Conversion { .. } => Fault::Data,
            CatalogError::Io { .. } => Fault::Environment,
        }
    }

    /// The dataset the error is about (`None` only for configuration errors,
    /// whose problems each name their dataset).
    pub fn dataset(&self) -> Option<&str> {
        match self {
            CatalogError::Config { .. } => None,
            CatalogError::NotSaved { dataset }
            | CatalogError::Load { dataset, .. }
            | CatalogError::Save { dataset, .. }
            | CatalogError::VersionExists { dataset, .. }
            | CatalogError::NoVersion { dataset, .. }
            | CatalogError::Conversion { dataset, .. }
            | CatalogError::Io { dataset, .. } => Some(dataset),
        }
    }
}

fn at(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" from {}", p.display()))
        .unwrap_or_default()
}
