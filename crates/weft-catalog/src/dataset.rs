use std::path::PathBuf;

use serde::Serialize;
use weft_pipeline::{Data, DataType};

use crate::CatalogError;

/// What a dataset yields on load, for type checks before a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadType {
    /// Whatever was saved (memory).
    Any,
    /// A serialized format: decodes into any serde-backed requested type.
    Decodes,
    /// Exactly this type (or, through serde, a serde-backed one).
    Exact(DataType),
    /// An Arrow table: a `RecordBatch`, or rows decoded into any serde-backed type.
    Table,
}

/// A dataset as `weft catalog list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetInfo {
    /// Catalog name.
    pub name: String,
    /// Dataset type (`json.JSONDataset`, ...).
    pub type_name: String,
    /// File or folder, if any.
    pub filepath: Option<String>,
    /// Whether saves are versioned.
    pub versioned: bool,
    /// The factory pattern it came from, if any.
    pub pattern: Option<String>,
}

/// A dataset a run needs that has nothing to load (see
/// [`crate::Catalog::check_available`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unavailable {
    /// The dataset's catalog name.
    pub dataset: String,
    /// The file or folder looked at, if the dataset has one.
    pub path: Option<PathBuf>,
    /// Why there is nothing to load.
    pub reason: String,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`", self.dataset)?;
        if let Some(p) = &self.path {
            write!(f, " ({})", p.display())?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Loads and saves one named piece of data.
///
/// Implementations are shared by the threads of one run, so they use
/// interior mutability; each run builds its own datasets, so nothing is
/// shared between runs.
pub trait Dataset: Send + Sync {
    /// Loads the data; when `request` is given, decodes straight into that type.
    fn load(&self, request: Option<&DataType>) -> Result<Data, CatalogError>;
    /// Saves the data.
    fn save(&self, data: &Data) -> Result<(), CatalogError>;
    /// Whether there is data to load.
    fn exists(&self) -> Result<bool, CatalogError>;
    /// Drops data held in memory, if any.
    fn release(&self) {}
    /// What `weft catalog list` shows.
    fn describe(&self) -> DatasetInfo;
    /// What a load yields.
    fn load_type(&self) -> LoadType;
    /// Whether the data lives only in memory (released when no node needs it).
    fn is_memory(&self) -> bool {
        false
    }
    /// The version this dataset saved in this run, if versioned (the
    /// default asks its [`Dataset::file_target`]).
    fn saved_version(&self) -> Option<String> {
        self.file_target()
            .and_then(crate::file::FileTarget::saved_version)
    }
    /// The version the last load of this run read, if versioned (the
    /// default asks its [`Dataset::file_target`]).
    fn loaded_version(&self) -> Option<String> {
        self.file_target()
            .and_then(crate::file::FileTarget::loaded_version)
    }
    /// The file or folder it really reads and writes (resolved, run-scoped
    /// when the run scopes it; the versioned folder for versioned ones; the
    /// default: its [`Dataset::file_target`]'s path).
    fn path(&self) -> Option<PathBuf> {
        self.file_target().map(|t| t.path.clone())
    }
    /// The storage [`Dataset::path`] lives on, for file and folder
    /// datasets (`None`: the local file system, or no path at all; the
    /// default: its [`Dataset::file_target`]'s).
    fn storage(&self) -> Option<std::sync::Arc<dyn crate::storage::Storage>> {
        self.file_target().map(|t| std::sync::Arc::clone(t.storage()))
    }
    /// The single file behind a file dataset, for nodes that hand files to
    /// other programs (command nodes); `None` for memory and folder datasets.
    fn file_target(&self) -> Option<&crate::file::FileTarget> {
        None
    }
    /// Whether the dataset has a checkpoint that nodes may confirm
    /// (`partitions.IncrementalDataset`).
    fn is_incremental(&self) -> bool {
        false
    }
    /// Advances the checkpoint to what this run loaded (incremental
    /// datasets; see [`crate::IncrementalDataset`]); other datasets refuse
    /// with [`CatalogError::NotIncremental`].
    fn confirm(&self) -> Result<crate::Confirmation, CatalogError> {
        let info = self.describe();
        Err(CatalogError::NotIncremental {
            dataset: info.name,
            type_name: info.type_name,
        })
    }
    /// Why a load now would find nothing, if it would not. Must be cheap
    /// (about one `stat`); the default asks its [`Dataset::file_target`],
    /// else [`Dataset::exists`].
    fn unavailable(&self) -> Option<Unavailable> {
        if let Some(target) = self.file_target() {
            return target.unavailable().map(|(path, reason)| Unavailable {
                dataset: target.dataset.clone(),
                path: Some(path),
                reason,
            });
        }
        let reason = match self.exists() {
            Ok(true) => return None,
            Ok(false) => "there is no data to load".to_string(),
            Err(e) => e.to_string(),
        };
        Some(Unavailable {
            dataset: self.describe().name,
            path: self.path(),
            reason,
        })
    }
}
