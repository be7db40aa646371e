//! A folder of files, one per partition (Kedro's PartitionedDataset).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use weft_pipeline::{Data, DataType};

use crate::file::FileTarget;
use crate::formats::{FileDataset, Format};
use crate::{CatalogError, Dataset, DatasetInfo, LoadType};

/// The partitions of a [`PartitionedDataset`]: partition id → lazily loaded data.
pub struct Partitions {
    dataset: String,
    format: Format,
    type_name: String,
    load_args: Value,
    entries: BTreeMap<String, PathBuf>,
}

weft_pipeline::opaque_data!(Partitions);

impl Partitions {
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
            target: FileTarget::new(&self.dataset, path.to_path_buf(), false, "", None),
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

fn collect(
    dir: &Path,
    root: &Path,
    suffix: &str,
    out: &mut BTreeMap<String, PathBuf>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(&path, root, suffix, out)?;
        } else if name.ends_with(suffix) {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .to_string();
            let id = rel.strip_suffix(suffix).unwrap_or(&rel).to_string();
            out.insert(id, path);
        }
    }
    Ok(())
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
            target: FileTarget::new(&self.name, path.clone(), false, "", None),
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
        let mut entries = BTreeMap::new();
        collect(&self.path, &self.path, &self.suffix, &mut entries).map_err(|source| CatalogError::Io {
            dataset: self.name.clone(),
            path: self.path.clone(),
            source,
        })?;
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
        let mut entries = BTreeMap::new();
        Ok(collect(&self.path, &self.path, &self.suffix, &mut entries).is_ok() && !entries.is_empty())
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

    fn unavailable(&self) -> Option<crate::Unavailable> {
        let reason = match std::fs::metadata(&self.path) {
            Ok(m) if m.is_dir() => return None,
            Ok(_) => "it is not a folder".to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "the folder does not exist".to_string(),
            Err(e) => e.to_string(),
        };
        Some(crate::Unavailable {
            dataset: self.name.clone(),
            path: Some(self.path.clone()),
            reason,
        })
    }
}
