//! A folder of files, one per partition (Kedro's PartitionedDataset).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use weft_pipeline::{Data, DataType};

use crate::file::FileTarget;
use crate::formats::{FileDataset, Format};
use crate::storage::Storage;
use crate::{CatalogError, Dataset, DatasetInfo, LoadType};

/// The partitions of a [`PartitionedDataset`]: partition id → lazily loaded data.
pub struct Partitions {
    dataset: String,
    format: Format,
    type_name: String,
    load_args: Value,
    entries: BTreeMap<String, PathBuf>,
    storage: Arc<dyn Storage>,
}

weft_pipeline::opaque_data!(Partitions);

impl Partitions {
    /// Partitions of `dataset`: partition id → file, each read as `format`.
    pub(crate) fn new(
        dataset: &str,
        format: Format,
        type_name: &str,
        load_args: Value,
        entries: BTreeMap<String, PathBuf>,
        storage: Arc<dyn Storage>,
    ) -> Self {
        Partitions {
            dataset: dataset.to_string(),
            format,
            type_name: type_name.to_string(),
            load_args,
            entries,
            storage,
        }
    }

    /// Partition ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Number of partitions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no partition.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Loads one partition (decoded into `request` when given).
    pub fn load(&self, id: &str, request: Option<&DataType>) -> Result<Data, CatalogError> {
        let path = self.entries.get(id).ok_or_else(|| CatalogError::Load {
            dataset: self.dataset.clone(),
            path: None,
            message: format!("no partition `{id}`"),
        })?;
        self.file(path).load(request)
    }

    fn file(&self, path: &Path) -> FileDataset {
        FileDataset {
            target: FileTarget::new(&self.dataset, path.to_path_buf(), false, "", None)
                .with_storage(Arc::clone(&self.storage)),
            format: self.format,
            type_name: self.type_name.clone(),
            filepath: path.display().to_string(),
            load_args: self.load_args.clone(),
            save_args: Value::Null,
        }
    }
}

/// A folder dataset: loads every file under `path` ending in
/// `filename_suffix` as one partition; saves a map of partition id → value.
pub struct PartitionedDataset {
    /// Catalog name.
    pub name: String,
    /// The folder (resolved).
    pub path: PathBuf,
    /// The folder as configured.
    pub filepath: String,
    /// The storage the folder lives on (local, or an object-store prefix).
    pub storage: Arc<dyn Storage>,
    /// Format of each partition.
    pub format: Format,
    /// Type name of each partition.
    pub type_name: String,
    /// Suffix of partition files (e.g. `.json`).
    pub suffix: String,
    /// `load_args` for each partition.
    pub load_args: Value,
    /// `save_args` for each partition.
    pub save_args: Value,
}

/// Partition id → file: every file under `root` (hidden entries skipped,
/// see [`Storage::list`]) whose name ends in `suffix`.
pub(crate) fn collect(
    storage: &dyn Storage,
    dataset: &str,
    root: &Path,
    suffix: &str,
) -> Result<BTreeMap<String, PathBuf>, CatalogError> {
    let mut out = BTreeMap::new();
    for path in storage.list(dataset, root)? {
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if rel.iter().any(|c| c.to_string_lossy().starts_with('.')) || !name.ends_with(suffix) {
            continue;
        }
        let rel = rel.to_string_lossy().to_string();
        let id = rel.strip_suffix(suffix).unwrap_or(&rel).to_string();
        out.insert(id, path);
    }
    Ok(out)
}

impl PartitionedDataset {
    fn partition(&self, id: &str) -> Result<FileDataset, CatalogError> {
        if id.is_empty() || id.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(CatalogError::Save {
                dataset: self.name.clone(),
                path: Some(self.path.clone()),
                message: format!("invalid partition id `{id}`"),
            });
        }
        let path = self.path.join(format!("{id}{}", self.suffix));
        Ok(FileDataset {
            target: FileTarget::new(&self.name, path.clone(), false, "", None)
                .with_storage(Arc::clone(&self.storage)),
            format: self.format,
            type_name: self.type_name.clone(),
            filepath: path.display().to_string(),
            load_args: self.load_args.clone(),
            save_args: self.save_args.clone(),
        })
    }
}

impl Dataset for PartitionedDataset {
    fn load(&self, _request: Option<&DataType>) -> Result<Data, CatalogError> {
        let entries = collect(&*self.storage, &self.name, &self.path, &self.suffix)?;
        if entries.is_empty() {
            return Err(CatalogError::Load {
                dataset: self.name.clone(),
                path: Some(self.path.clone()),
                message: format!("no partitions ending in `{}`", self.suffix),
            });
        }
        Ok(Data::new(Partitions {
            dataset: self.name.clone(),
            format: self.format,
            type_name: self.type_name.clone(),
            load_args: self.load_args.clone(),
            entries,
            storage: Arc::clone(&self.storage),
        }))
    }

    fn save(&self, data: &Data) -> Result<(), CatalogError> {
        if let Some(parts) = data.downcast_ref::<Partitions>() {
            for id in parts.ids() {
                let value = parts.load(id, None)?;
                self.partition(id)?.save(&value)?;
            }
            return Ok(());
        }
        let json = data.to_json().map_err(|e| CatalogError::Save {
            dataset: self.name.clone(),
            path: Some(self.path.clone()),
            message: e.to_string(),
        })?;
        let Value::Object(map) = json else {
            return Err(CatalogError::Save {
                dataset: self.name.clone(),
                path: Some(self.path.clone()),
                message: "a partitioned dataset saves a map of partition id -> value".into(),
            });
        };
        for (id, value) in map {
            self.partition(&id)?.save(&Data::new(value))?;
        }
        Ok(())
    }

    fn exists(&self) -> Result<bool, CatalogError> {
        Ok(collect(&*self.storage, &self.name, &self.path, &self.suffix).is_ok_and(|e| !e.is_empty()))
    }

    fn describe(&self) -> DatasetInfo {
        DatasetInfo {
            name: self.name.clone(),
            type_name: "partitions.PartitionedDataset".into(),
            filepath: Some(self.filepath.clone()),
            versioned: false,
            pattern: None,
        }
    }

    fn load_type(&self) -> LoadType {
        LoadType::Exact(DataType::of::<Partitions>())
    }

    fn path(&self) -> Option<PathBuf> {
        Some(self.path.clone())
    }

    fn storage(&self) -> Option<Arc<dyn Storage>> {
        Some(Arc::clone(&self.storage))
    }

    fn unavailable(&self) -> Option<crate::Unavailable> {
        let reason = self.storage.folder_unavailable(&self.name, &self.path)?;
        Some(crate::Unavailable {
            dataset: self.name.clone(),
            path: Some(self.path.clone()),
            reason,
        })
    }
}
