//! Dataset types by name: an explicit registry (no global state), so a
//! project can add its own types.
//!
//! Name policy: built-in types have a canonical `module.ClassName` name
//! (`json.JSONDataset`); a type name also resolves after stripping a
//! leading `kedro_datasets.`, and by its class name alone when exactly one
//! registered type has that class name (or, when several do, exactly one
//! built-in file type does), so Kedro catalogs such as `pandas.CSVDataset`
//! or `JSONDataset` work unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::file::{FileTarget, VersionGroup};
use crate::formats::{FileDataset, Format};
use crate::incremental::{IncrementalConfig, IncrementalDataset};
use crate::memory::MemoryDataset;
use crate::partitioned::PartitionedDataset;
use crate::storage::{LocalStorage, Storage, StorageFactory, StorageRegistry, url_scheme};
use crate::{CatalogError, Dataset};

/// Everything a factory needs to build one dataset for one run.
pub struct DatasetSpec<'a> {
    /// Catalog name.
    pub name: &'a str,
    /// The entry's `type`.
    pub type_name: &'a str,
    /// The whole catalog entry (placeholders already substituted).
    pub config: &'a serde_json::Map<String, Value>,
    /// Relative paths resolve against this folder.
    pub project_dir: &'a Path,
    /// The run's save version (its run id).
    pub save_version: &'a str,
    /// The pinned load version for this dataset, if any.
    pub load_version: Option<&'a str>,
    /// Resolved credentials, if the entry names some.
    pub credentials: Option<&'a Value>,
    /// When set, the run scopes this dataset: an unversioned path resolves
    /// under this folder (see [`crate::file::scoped_path`]); versioned
    /// datasets ignore it.
    pub run_scope: Option<&'a Path>,
    /// The version state shared by the transcoded entries of this logical
    /// dataset (versioned file datasets use it; `None` makes a group of one).
    pub version_group: Option<Arc<VersionGroup>>,
    /// The storage backends object-store URLs resolve through.
    pub storage: &'a StorageRegistry,
}

/// Where a file or folder dataset lives (see [`DatasetSpec::location`]).
#[derive(Clone, Debug)]
pub struct Location {
    /// What `describe` shows: the path or URL as configured, or the
    /// run-scoped location when the run scopes the dataset.
    pub shown: String,
    /// The resolved path, or the object URL held as a path.
    pub path: PathBuf,
    /// The storage that reads and writes it.
    pub storage: Arc<dyn Storage>,
}

impl DatasetSpec<'_> {
    /// A string key of the entry.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.config.get(key).and_then(Value::as_str)
    }

    /// A required string key, or an error naming it.
    pub fn required(&self, key: &str) -> Result<&str, String> {
        self.str(key)
            .ok_or_else(|| format!("`{key}` is required for type `{}`", self.type_name))
    }

    /// A path key resolved against the project: the text to show and the
    /// path to use. When the run scopes this (unversioned) dataset, both
    /// are the run-scoped location.
    pub fn path(&self, key: &str) -> Result<(String, PathBuf), String> {
        let raw = self.required(key)?;
        let raw = raw.strip_prefix("file://").unwrap_or(raw);
        if raw.contains("://") {
            return Err(format!("`{key}`: only local paths are supported, got `{raw}`"));
        }
        let p = Path::new(raw);
        let resolved = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.project_dir.join(p)
        };
        match self.run_scope {
            Some(scope) if !self.versioned()? => {
                let scoped = crate::file::scoped_path(self.project_dir, scope, &resolved);
                Ok((scoped.display().to_string(), scoped))
            }
            _ => Ok((raw.to_string(), resolved)),
        }
    }

    /// A path key that may also be an object-store URL (`s3://bucket/key`,
    /// any scheme of [`DatasetSpec::storage`]): local paths resolve as in
    /// [`DatasetSpec::path`]; a URL resolves to its backend (built from the
    /// entry's `credentials`), and when the run scopes this unversioned
    /// dataset it moves to [`crate::storage::scoped_url`].
    pub fn location(&self, key: &str) -> Result<Location, String> {
        let raw = self.required(key)?;
        match url_scheme(raw) {
            None | Some("file") => {
                let (shown, path) = self.path(key)?;
                Ok(Location {
                    shown,
                    path,
                    storage: LocalStorage::shared(),
                })
            }
            Some(_) => {
                let storage = self
                    .storage
                    .resolve(self.name, raw, self.credentials)
                    .map_err(|e| format!("`{key}`: {e}"))?;
                let (shown, url) = match self.run_scope {
                    Some(scope) if !self.versioned()? => {
                        let scoped = crate::storage::scoped_url(scope, raw);
                        (scoped.clone(), scoped)
                    }
                    _ => (raw.to_string(), raw.to_string()),
                };
                Ok(Location {
                    shown,
                    path: PathBuf::from(url),
                    storage,
                })
            }
        }
    }

    /// The file target of a one-file dataset at `key` (`filepath`):
    /// versioned when the entry says so, in the run's version group when it
    /// has one, on the storage of its URL; and the path as configured.
    pub fn file_target(&self, key: &str) -> Result<(FileTarget, String), String> {
        let Location { shown, path, storage } = self.location(key)?;
        let versioned = self.versioned()?;
        let target = match &self.version_group {
            Some(group) if versioned => {
                FileTarget::with_group(self.name, path, versioned, self.save_version, Arc::clone(group))
            }
            _ => FileTarget::new(
                self.name,
                path,
                versioned,
                self.save_version,
                self.load_version.map(str::to_string),
            ),
        }
        .with_storage(storage);
        Ok((target, shown))
    }

    /// Whether the entry says `versioned: true`.
    pub fn versioned(&self) -> Result<bool, String> {
        match self.config.get("versioned") {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!("`versioned` must be true or false, got {other}")),
        }
    }

    /// `load_args` / `save_args` (a map or absent).
    pub fn args(&self, key: &str) -> Result<Value, String> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(Value::Object(Default::default())),
            Some(v @ Value::Object(_)) => Ok(v.clone()),
            Some(other) => Err(format!("`{key}` must be a map, got {other}")),
        }
    }
}

/// Builds a dataset from its catalog entry.
pub type DatasetFactory = Arc<dyn Fn(&DatasetSpec<'_>) -> Result<Arc<dyn Dataset>, String> + Send + Sync>;

/// Dataset type name → factory.
#[derive(Clone, Default)]
pub struct DatasetTypeRegistry {
    types: BTreeMap<String, DatasetFactory>,
    storage: StorageRegistry,
}

/// The built-in file formats and their canonical type names.
pub const FILE_TYPES: &[(&str, Format)] = &[
    ("json.JSONDataset", Format::Json),
    ("yaml.YAMLDataset", Format::Yaml),
    ("csv.CSVDataset", Format::Csv),
    ("parquet.ParquetDataset", Format::Parquet),
    ("arrow.ArrowIPCDataset", Format::ArrowIpc),
    ("text.TextDataset", Format::Text),
    ("bytes.BytesDataset", Format::Bytes),
];

fn file_factory(format: Format) -> DatasetFactory {
    Arc::new(move |spec: &DatasetSpec<'_>| {
        let (target, filepath) = spec.file_target("filepath")?;
        Ok(Arc::new(FileDataset {
            target,
            format,
            type_name: spec.type_name.to_string(),
            filepath,
            load_args: spec.args("load_args")?,
            save_args: spec.args("save_args")?,
        }) as Arc<dyn Dataset>)
    })
}

impl DatasetTypeRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in types.
    pub fn with_builtins() -> Self {
        let mut r = Self::new();
        r.register(
            "MemoryDataset",
            Arc::new(
                |spec: &DatasetSpec<'_>| Ok(Arc::new(MemoryDataset::new(spec.name)) as Arc<dyn Dataset>),
            ),
        )
        .expect("unique");
        for (name, format) in FILE_TYPES {
            r.register(name, file_factory(*format)).expect("unique");
        }
        r.register(
            "partitions.PartitionedDataset",
            Arc::new(|spec: &DatasetSpec<'_>| {
                let Location {
                    shown: filepath,
                    path,
                    storage,
                } = spec.location("path")?;
                if spec.config.contains_key("checkpoint") {
                    return Err("`checkpoint`: only `partitions.IncrementalDataset` has a checkpoint; a partitioned dataset loads every partition".into());
                }
                let (canonical, format, load_args, save_args) = partition_type(spec)?;
                let suffix = spec.str("filename_suffix").unwrap_or("").to_string();
                Ok(Arc::new(PartitionedDataset {
                    name: spec.name.to_string(),
                    path,
                    filepath,
                    storage,
                    format,
                    type_name: canonical.to_string(),
                    suffix,
                    load_args,
                    save_args,
                }) as Arc<dyn Dataset>)
            }),
        )
        .expect("unique");
        r.register("partitions.IncrementalDataset", Arc::new(incremental_factory))
            .expect("unique");
        r
    }

    /// Registers a type; a name registered twice is an error.
    pub fn register(&mut self, name: &str, factory: DatasetFactory) -> Result<(), CatalogError> {
        if self.types.contains_key(name) {
            return Err(CatalogError::Config {
                problems: vec![crate::ConfigProblem::new(
                    None,
                    None,
                    format!("dataset type `{name}` is already registered"),
                )],
            });
        }
        self.types.insert(name.to_string(), factory);
        Ok(())
    }

    /// Registers the storage backend of a URL scheme (see
    /// [`StorageRegistry::register`]: a scheme registered twice is an error).
    pub fn register_storage(&mut self, scheme: &str, factory: StorageFactory) -> Result<(), CatalogError> {
        self.storage.register(scheme, factory)
    }

    /// The storage backends `filepath` URLs resolve through.
    pub fn storage(&self) -> &StorageRegistry {
        &self.storage
    }

    /// The canonical name a type name resolves to (see the module docs).
    pub fn canonical(&self, type_name: &str) -> Option<&str> {
        if let Some((k, _)) = self.types.get_key_value(type_name) {
            return Some(k);
        }
        let stripped = type_name.strip_prefix("kedro_datasets.").unwrap_or(type_name);
        if let Some((k, _)) = self.types.get_key_value(stripped) {
            return Some(k);
        }
        let class = stripped.rsplit('.').next().unwrap_or(stripped);
        let matches: Vec<&String> = self
            .types
            .keys()
            .filter(|k| k.rsplit('.').next() == Some(class))
            .collect();
        match matches.as_slice() {
            [one] => Some(one.as_str()),
            // `JSONDataset` (or `pandas.JSONDataset`) when `plotly.JSONDataset`
            // is registered too: the built-in file type, as before.
            several => {
                let mut builtin = several
                    .iter()
                    .filter(|k| FILE_TYPES.iter().any(|(name, _)| *name == k.as_str()));
                match (builtin.next(), builtin.next()) {
                    (Some(one), None) => Some(one.as_str()),
                    _ => None,
                }
            }
        }
    }

    /// The factory for a type name.
    pub fn get(&self, type_name: &str) -> Option<&DatasetFactory> {
        self.canonical(type_name).and_then(|k| self.types.get(k))
    }

    /// Registered canonical names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }
}

/// The `dataset:` of a folder entry (a type name, or a map with `type`,
/// `load_args`, `save_args`): its canonical type, format and arguments.
fn partition_type(spec: &DatasetSpec<'_>) -> Result<(&'static str, Format, Value, Value), String> {
    let (sub_type, load_args, save_args) = match spec.config.get("dataset") {
        Some(Value::String(t)) => (t.clone(), Value::Null, Value::Null),
        Some(Value::Object(m)) => (
            m.get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            m.get("load_args").cloned().unwrap_or(Value::Null),
            m.get("save_args").cloned().unwrap_or(Value::Null),
        ),
        _ => return Err("`dataset` (the type of each partition) is required".into()),
    };
    let (canonical, format) = resolve_file_type(&sub_type)
        .ok_or_else(|| format!("`dataset`: `{sub_type}` is not a file dataset type"))?;
    Ok((canonical, format, load_args, save_args))
}

/// `partitions.IncrementalDataset`: Kedro's `path`, `dataset`,
/// `filename_suffix`, `checkpoint`, `load_args`, `credentials`.
fn incremental_factory(spec: &DatasetSpec<'_>) -> Result<Arc<dyn Dataset>, String> {
    let raw = spec.required("path")?;
    if url_scheme(raw).is_some_and(|s| s != "file") {
        return Err(format!(
            "`path`: `{raw}` is an object-store URL; incremental datasets need a local folder (the checkpoint is updated under a file lock)"
        ));
    }
    if spec.versioned()? {
        return Err(
            "`versioned`: an incremental dataset is not versioned (its checkpoint records progress)".into(),
        );
    }
    let (filepath, path) = spec.path("path")?;
    let (canonical, format, load_args, save_args) = partition_type(spec)?;
    let suffix = match spec.config.get("filename_suffix") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("`filename_suffix` must be a string, got {other}")),
    };
    match spec.args("load_args")? {
        Value::Object(m) if !m.is_empty() => {
            let keys: Vec<&str> = m.keys().map(String::as_str).collect();
            return Err(format!(
                "`load_args`: {} not supported (Kedro passes these to fsspec's `find`; weft lists every file under `path`)",
                keys.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        _ => {}
    }
    let (checkpoint, force_checkpoint) =
        crate::incremental::parse_checkpoint(spec.config.get("checkpoint"), &path, spec.project_dir)?;
    Ok(Arc::new(IncrementalDataset::new(IncrementalConfig {
        name: spec.name.to_string(),
        path,
        filepath,
        format,
        type_name: canonical.to_string(),
        suffix,
        load_args,
        save_args,
        checkpoint,
        force_checkpoint,
    })) as Arc<dyn Dataset>)
}

/// Resolves a file type name (for partitions) with the same alias policy.
fn resolve_file_type(name: &str) -> Option<(&'static str, Format)> {
    let stripped = name.strip_prefix("kedro_datasets.").unwrap_or(name);
    let class = stripped.rsplit('.').next().unwrap_or(stripped);
    FILE_TYPES
        .iter()
        .find(|(n, _)| *n == stripped || n.rsplit('.').next() == Some(class))
        .map(|(n, f)| (*n, *f))
}
