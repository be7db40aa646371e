//! A folder of partitions that loads only the partitions newer than a
//! checkpoint (Kedro's `IncrementalDataset`).
//!
//! * A load returns the [`Partitions`] whose id sorts after the checkpoint
//!   (`id > checkpoint`, Kedro's default `operator.gt`); no checkpoint yet:
//!   every partition. Nothing new is an empty map, not an error.
//! * The checkpoint is a text file holding the last processed partition id:
//!   `<path>/CHECKPOINT` by default, or `checkpoint.filepath`.
//!   `checkpoint.force_checkpoint` replaces the file's value for loading
//!   (`""`: load every partition).
//! * [`IncrementalDataset::confirm`] advances the checkpoint to the newest
//!   partition this dataset loaded, as a compare-and-swap: the dataset
//!   remembers the checkpoint file's value when it first loaded, and the new
//!   value is written only if the file still holds it, under an exclusive
//!   lock on `.<checkpoint>.lock` beside the file; the write is a temporary
//!   file renamed into place ([`crate::file::atomic_write`]). A second
//!   confirmer of the same old value gets [`CatalogError::CheckpointConflict`]
//!   and nothing moves. The checkpoint never moves backwards.
//! * Only local folders: the compare-and-swap needs a file lock.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use weft_pipeline::{Data, DataType};

use crate::formats::Format;
use crate::partitioned::{PartitionedDataset, Partitions, collect};
use crate::storage::{LocalStorage, Storage};
use crate::{CatalogError, Dataset, DatasetInfo, LoadType};

/// The checkpoint file's name inside the folder when `checkpoint.filepath`
/// is not given (Kedro's default).
pub const DEFAULT_CHECKPOINT: &str = "CHECKPOINT";

/// What [`IncrementalDataset::confirm`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirmation {
    /// The checkpoint moved from `from` (`None`: there was none) to `to`.
    Moved {
        /// The checkpoint before.
        from: Option<String>,
        /// The checkpoint now: the newest partition id the run loaded.
        to: String,
    },
    /// Nothing to record: the dataset loaded no partition in this run, or
    /// only partitions at or before the checkpoint (a `force_checkpoint`
    /// below it); the checkpoint stays `checkpoint`.
    Unchanged {
        /// The checkpoint, unchanged (`None`: there is none).
        checkpoint: Option<String>,
    },
}

/// How an [`IncrementalDataset`] is laid out (the parsed catalog entry).
#[derive(Clone, Debug)]
pub struct IncrementalConfig {
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
    /// Suffix of partition files (e.g. `.csv`).
    pub suffix: String,
    /// `load_args` for each partition.
    pub load_args: Value,
    /// `save_args` for each partition.
    pub save_args: Value,
    /// The checkpoint file (resolved).
    pub checkpoint: PathBuf,
    /// `checkpoint.force_checkpoint`: loads compare with this instead of
    /// the file's value.
    pub force_checkpoint: Option<String>,
}

/// What the loads of this run saw.
#[derive(Default)]
struct LoadState {
    /// Whether the dataset has loaded in this run.
    loaded: bool,
    /// The checkpoint file's value at the first load (what confirming
    /// compares against).
    base: Option<String>,
    /// The newest partition id loaded, not confirmed yet.
    newest: Option<String>,
}

/// A partitioned folder that loads only partitions newer than its
/// checkpoint (see the module docs); saves like a [`PartitionedDataset`].
pub struct IncrementalDataset {
    config: IncrementalConfig,
    folder: PartitionedDataset,
    state: Mutex<LoadState>,
}

impl IncrementalDataset {
    /// A dataset for one run (its load state starts empty).
    pub fn new(config: IncrementalConfig) -> Self {
        let folder = PartitionedDataset {
            name: config.name.clone(),
            path: config.path.clone(),
            filepath: config.filepath.clone(),
            storage: LocalStorage::shared(),
            format: config.format,
            type_name: config.type_name.clone(),
            suffix: config.suffix.clone(),
            load_args: config.load_args.clone(),
            save_args: config.save_args.clone(),
        };
        IncrementalDataset {
            config,
            folder,
            state: Mutex::new(LoadState::default()),
        }
    }

    /// The layout it was built with.
    pub fn config(&self) -> &IncrementalConfig {
        &self.config
    }

    /// The checkpoint file's value now (`None`: no file). A trailing line
    /// break (from `echo id > CHECKPOINT`) is not part of the id.
    pub fn read_checkpoint(&self) -> Result<Option<String>, CatalogError> {
        read_checkpoint(&self.config.name, &self.config.checkpoint)
    }

    /// The ids a load now would return, and the checkpoint file's value it
    /// compared with (or the forced one).
    fn select(&self) -> Result<(Option<String>, BTreeMap<String, PathBuf>), CatalogError> {
        let c = &self.config;
        let file_value = self.read_checkpoint()?;
        let compare = c.force_checkpoint.clone().or_else(|| file_value.clone());
        // A folder not there yet has no partitions (as in Kedro); a run
        // that needs it is refused when prepared (`unavailable`).
        let mut entries = if c.path.exists() {
            collect(&LocalStorage, &c.name, &c.path, &c.suffix)?
        } else {
            BTreeMap::new()
        };
        entries
            .retain(|id, path| *path != c.checkpoint && compare.as_deref().is_none_or(|cp| id.as_str() > cp));
        Ok((file_value, entries))
    }

    /// Advances the checkpoint to the newest partition this dataset loaded,
    /// if the checkpoint file still holds what it held at the first load
    /// (see the module docs).
    pub fn confirm_checkpoint(&self) -> Result<Confirmation, CatalogError> {
        let c = &self.config;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(newest) = state.newest.clone().filter(|_| state.loaded) else {
            return Ok(Confirmation::Unchanged {
                checkpoint: if state.loaded {
                    state.base.clone()
                } else {
                    self.read_checkpoint()?
                },
            });
        };
        let _lock = CheckpointLock::acquire(&c.name, &c.checkpoint)?;
        let current = self.read_checkpoint()?;
        if current != state.base {
            return Err(CatalogError::CheckpointConflict {
                dataset: c.name.clone(),
                path: c.checkpoint.clone(),
                expected: state.base.clone(),
                found: current,
                wanted: newest,
            });
        }
        if current.as_deref().is_some_and(|cur| newest.as_str() <= cur) {
            state.newest = None;
            return Ok(Confirmation::Unchanged { checkpoint: current });
        }
        crate::file::atomic_write(&c.name, &c.checkpoint, |w| {
            w.write_all(newest.as_bytes()).map_err(|e| e.to_string())
        })?;
        state.base = Some(newest.clone());
        state.newest = None;
        Ok(Confirmation::Moved {
            from: current,
            to: newest,
        })
    }
}

fn read_checkpoint(dataset: &str, path: &Path) -> Result<Option<String>, CatalogError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| CatalogError::Load {
                dataset: dataset.to_string(),
                path: Some(path.to_path_buf()),
                message: "the checkpoint file is not UTF-8 text".into(),
            })?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            Ok(Some(text.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CatalogError::Io {
            dataset: dataset.to_string(),
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// An exclusive lock on `.<checkpoint>.lock` beside the checkpoint file,
/// held until dropped (the lock file itself stays; the operating system
/// releases the lock when its holder exits, so no lock goes stale).
struct CheckpointLock {
    _file: std::fs::File,
}

impl CheckpointLock {
    fn acquire(dataset: &str, checkpoint: &Path) -> Result<Self, CatalogError> {
        let dir = checkpoint.parent().unwrap_or(Path::new("."));
        let basename = checkpoint
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let path = dir.join(format!(".{basename}.lock"));
        let io = |source| CatalogError::SaveIo {
            dataset: dataset.to_string(),
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        Ok(CheckpointLock { _file: file })
    }
}

impl Dataset for IncrementalDataset {
    fn load(&self, _request: Option<&DataType>) -> Result<Data, CatalogError> {
        let (file_value, entries) = self.select()?;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.loaded {
            state.loaded = true;
            state.base = file_value;
        }
        if let Some(last) = entries.keys().next_back()
            && state.newest.as_ref().is_none_or(|n| last > n)
        {
            state.newest = Some(last.clone());
        }
        let c = &self.config;
        Ok(Data::new(Partitions::new(
            &c.name,
            c.format,
            &c.type_name,
            c.load_args.clone(),
            entries,
            LocalStorage::shared(),
        )))
    }

    fn save(&self, data: &Data) -> Result<(), CatalogError> {
        self.folder.save(data)
    }

    fn exists(&self) -> Result<bool, CatalogError> {
        Ok(self.config.path.is_dir())
    }

    fn describe(&self) -> DatasetInfo {
        DatasetInfo {
            name: self.config.name.clone(),
            type_name: "partitions.IncrementalDataset".into(),
            filepath: Some(self.config.filepath.clone()),
            versioned: false,
            pattern: None,
        }
    }

    fn load_type(&self) -> LoadType {
        LoadType::Exact(DataType::of::<Partitions>())
    }

    fn path(&self) -> Option<PathBuf> {
        Some(self.config.path.clone())
    }

    fn storage(&self) -> Option<Arc<dyn Storage>> {
        Some(LocalStorage::shared())
    }

    fn unavailable(&self) -> Option<crate::Unavailable> {
        let reason = LocalStorage.folder_unavailable(&self.config.name, &self.config.path)?;
        Some(crate::Unavailable {
            dataset: self.config.name.clone(),
            path: Some(self.config.path.clone()),
            reason,
        })
    }

    fn is_incremental(&self) -> bool {
        true
    }

    fn confirm(&self) -> Result<Confirmation, CatalogError> {
        self.confirm_checkpoint()
    }
}

/// Parses an entry's `checkpoint:` (Kedro's checkpoint config): the
/// checkpoint file (default `<folder>/CHECKPOINT`) and `force_checkpoint`.
pub(crate) fn parse_checkpoint(
    value: Option<&Value>,
    folder: &Path,
    project_dir: &Path,
) -> Result<(PathBuf, Option<String>), String> {
    let default = folder.join(DEFAULT_CHECKPOINT);
    let map = match value {
        None | Some(Value::Null) => return Ok((default, None)),
        Some(Value::String(t)) => {
            check_checkpoint_type(t)?;
            return Ok((default, None));
        }
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(format!(
                "`checkpoint` must be a map (filepath, force_checkpoint, comparison_func), got {other}"
            ));
        }
    };
    for key in map.keys() {
        if !["type", "filepath", "force_checkpoint", "comparison_func"].contains(&key.as_str()) {
            return Err(format!(
                "`checkpoint.{key}` is not supported (allowed: type, filepath, force_checkpoint, comparison_func)"
            ));
        }
    }
    match map.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) => check_checkpoint_type(t)?,
        Some(other) => return Err(format!("`checkpoint.type` must be a string, got {other}")),
    }
    match map.get("comparison_func") {
        None | Some(Value::Null) => {}
        Some(Value::String(f)) if ["operator.gt", "gt", ">"].contains(&f.as_str()) => {}
        Some(other) => {
            return Err(format!(
                "`checkpoint.comparison_func`: {other} is not supported; weft loads the partitions whose id sorts after the checkpoint (`operator.gt`) only"
            ));
        }
    }
    let force = match map.get("force_checkpoint") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(format!(
                "`checkpoint.force_checkpoint` must be a partition id (a string), got {other}"
            ));
        }
    };
    let file = match map.get("filepath") {
        None | Some(Value::Null) => default,
        Some(Value::String(p)) => {
            let raw = p.strip_prefix("file://").unwrap_or(p);
            if raw.contains("://") {
                return Err(format!(
                    "`checkpoint.filepath`: only local paths are supported (the checkpoint is updated under a file lock), got `{raw}`"
                ));
            }
            if raw.is_empty() {
                return Err("`checkpoint.filepath` must not be empty".into());
            }
            let p = Path::new(raw);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                project_dir.join(p)
            }
        }
        Some(other) => return Err(format!("`checkpoint.filepath` must be a path, got {other}")),
    };
    Ok((file, force))
}

fn check_checkpoint_type(t: &str) -> Result<(), String> {
    let stripped = t.strip_prefix("kedro_datasets.").unwrap_or(t);
    if ["text.TextDataset", "TextDataset", "pandas.TextDataset"].contains(&stripped) {
        Ok(())
    } else {
        Err(format!(
            "`checkpoint.type`: `{t}` is not supported; the checkpoint is a text file (`text.TextDataset`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(dir: &Path, force: Option<&str>) -> IncrementalDataset {
        IncrementalDataset::new(IncrementalConfig {
            name: "events".into(),
            path: dir.to_path_buf(),
            filepath: dir.display().to_string(),
            format: Format::Json,
            type_name: "json.JSONDataset".into(),
            suffix: ".json".into(),
            load_args: Value::Null,
            save_args: Value::Null,
            checkpoint: dir.join(DEFAULT_CHECKPOINT),
            force_checkpoint: force.map(str::to_string),
        })
    }

    fn ids(ds: &IncrementalDataset) -> Vec<String> {
        let data = ds.load(None).unwrap();
        let parts = data.downcast_ref::<Partitions>().unwrap();
        parts.ids().map(str::to_string).collect()
    }

    fn write(dir: &Path, id: &str) {
        std::fs::write(dir.join(format!("{id}.json")), format!("{{\"id\": \"{id}\"}}")).unwrap();
    }

    #[test]
    fn loads_only_partitions_after_the_checkpoint_and_confirm_moves_it() {
        let dir = tempfile::tempdir().unwrap();
        for id in ["2024-01-01", "2024-01-02"] {
            write(dir.path(), id);
        }
        let first = dataset(dir.path(), None);
        assert_eq!(ids(&first), ["2024-01-01", "2024-01-02"]);
        assert_eq!(
            first.confirm_checkpoint().unwrap(),
            Confirmation::Moved {
                from: None,
                to: "2024-01-02".into()
            }
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("CHECKPOINT")).unwrap(),
            "2024-01-02"
        );
        // The checkpoint file is not a partition, even with no suffix.
        write(dir.path(), "2024-01-03");
        let second = dataset(dir.path(), None);
        assert_eq!(ids(&second), ["2024-01-03"]);
        // A confirm twice in one run records once.
        assert!(matches!(
            second.confirm_checkpoint().unwrap(),
            Confirmation::Moved { .. }
        ));
        assert_eq!(
            second.confirm_checkpoint().unwrap(),
            Confirmation::Unchanged {
                checkpoint: Some("2024-01-03".into())
            }
        );
        let third = dataset(dir.path(), None);
        assert!(ids(&third).is_empty());
        assert_eq!(
            third.confirm_checkpoint().unwrap(),
            Confirmation::Unchanged {
                checkpoint: Some("2024-01-03".into())
            }
        );
    }

    #[test]
    fn a_stale_confirmer_is_refused_and_nothing_moves() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a");
        let one = dataset(dir.path(), None);
        let two = dataset(dir.path(), None);
        assert_eq!(ids(&one), ["a"]);
        assert_eq!(ids(&two), ["a"]);
        write(dir.path(), "b");
        let three = dataset(dir.path(), None);
        assert_eq!(ids(&three), ["a", "b"]);
        assert!(matches!(
            three.confirm_checkpoint().unwrap(),
            Confirmation::Moved { .. }
        ));
        let err = one.confirm_checkpoint().unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, CatalogError::CheckpointConflict { .. }), "{text}");
        assert!(text.contains("`events`") && text.contains("CHECKPOINT"), "{text}");
        assert!(two.confirm_checkpoint().is_err());
        assert_eq!(one.read_checkpoint().unwrap().as_deref(), Some("b"));
    }

    #[test]
    fn force_checkpoint_replaces_the_files_value_and_never_moves_it_back() {
        let dir = tempfile::tempdir().unwrap();
        for id in ["a", "b", "c"] {
            write(dir.path(), id);
        }
        std::fs::write(dir.path().join("CHECKPOINT"), "c\n").unwrap();
        assert!(ids(&dataset(dir.path(), None)).is_empty());
        let forced = dataset(dir.path(), Some("a"));
        assert_eq!(ids(&forced), ["b", "c"]);
        assert_eq!(
            forced.confirm_checkpoint().unwrap(),
            Confirmation::Unchanged {
                checkpoint: Some("c".into())
            }
        );
        let all = dataset(dir.path(), Some(""));
        assert_eq!(ids(&all), ["a", "b", "c"]);
    }

    #[test]
    fn checkpoint_config_errors_name_the_field() {
        let folder = Path::new("/data/in");
        let project = Path::new("/p");
        let bad = |v: Value| parse_checkpoint(Some(&v), folder, project).unwrap_err();
        assert!(
            bad(serde_json::json!({"comparison_func": "operator.lt"})).contains("checkpoint.comparison_func")
        );
        assert!(bad(serde_json::json!({"force_checkpoint": [1]})).contains("checkpoint.force_checkpoint"));
        assert!(bad(serde_json::json!({"type": "pickle.PickleDataset"})).contains("checkpoint.type"));
        assert!(bad(serde_json::json!({"colour": 1})).contains("checkpoint.colour"));
        assert!(bad(serde_json::json!({"filepath": "s3://b/cp"})).contains("checkpoint.filepath"));
        assert!(bad(serde_json::json!(3)).contains("`checkpoint` must be a map"));
        let (file, force) = parse_checkpoint(
            Some(&serde_json::json!({"filepath": "state/cp", "force_checkpoint": "x", "comparison_func": "operator.gt"})),
            folder,
            project,
        )
        .unwrap();
        assert_eq!(
            (file, force.as_deref()),
            (PathBuf::from("/p/state/cp"), Some("x"))
        );
        assert_eq!(
            parse_checkpoint(None, folder, project).unwrap(),
            (PathBuf::from("/data/in/CHECKPOINT"), None)
        );
    }

    proptest::proptest! {
        /// Over any sequence of partitions arriving and runs loading and
        /// confirming: a load returns exactly the partitions after the
        /// checkpoint, and the checkpoint only moves forward.
        #[test]
        fn loads_are_what_is_after_the_checkpoint_which_only_moves_forward(
            steps in proptest::collection::vec((proptest::collection::vec(0u16..500, 0..4), proptest::bool::ANY), 1..12)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut present = std::collections::BTreeSet::new();
            let mut last: Option<String> = None;
            for (arrivals, confirm) in steps {
                for n in arrivals {
                    let id = format!("p{n:03}");
                    write(dir.path(), &id);
                    present.insert(id);
                }
                let ds = dataset(dir.path(), None);
                let got = ids(&ds);
                let want: Vec<String> = present
                    .iter()
                    .filter(|id| last.as_ref().is_none_or(|cp| *id > cp))
                    .cloned()
                    .collect();
                proptest::prop_assert_eq!(&got, &want);
                if confirm {
                    ds.confirm_checkpoint().unwrap();
                    let now = ds.read_checkpoint().unwrap();
                    proptest::prop_assert!(now >= last, "moved back from {:?} to {:?}", last, now);
                    if let Some(newest) = got.last() {
                        proptest::prop_assert_eq!(now.as_ref(), Some(newest));
                    }
                    last = now;
                }
            }
        }
    }
}
