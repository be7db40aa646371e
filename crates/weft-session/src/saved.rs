//! The datasets a recorded run saved, found again after the run: the
//! outputs of the nodes it ran, resolved through the run's own catalog
//! (its env and runtime parameters) with every versioned dataset pinned to
//! the version the run saved and its run-scoped outputs (if it had any)
//! under its own folder. What the web page and `GET /v1/runs/{id}/datasets`
//! show.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use weft_catalog::file::base_name;
use weft_catalog::storage::Storage;
use weft_catalog::{BuildOptions, CatalogError, Dataset, RunScope};
use weft_store::RunRecord;

use crate::SessionError;
use crate::core::SessionCore;

/// One dataset a recorded run saved.
#[derive(Clone)]
pub struct SavedDataset {
    /// The catalog name (`model_chart`, `cars@csv`).
    pub name: String,
    /// The dataset type (`matplotlib.MatplotlibDataset`, `MemoryDataset`...).
    pub type_name: String,
    /// The version the run saved, for versioned datasets.
    pub version: Option<String>,
    /// Whether the file is the run's own: the version it saved, or its
    /// run-scoped copy. `false` for a non-versioned file at its configured
    /// path, which a later run may have replaced since.
    pub pinned: bool,
    dataset: Arc<dyn Dataset>,
}

impl std::fmt::Debug for SavedDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedDataset")
            .field("name", &self.name)
            .field("type_name", &self.type_name)
            .field("version", &self.version)
            .field("pinned", &self.pinned)
            .finish()
    }
}

impl SavedDataset {
    /// Whether the run saved one file for it: not memory, not a folder of
    /// partitions, not a database table, and for a versioned dataset a
    /// version the run recorded.
    pub fn has_file(&self) -> bool {
        self.dataset
            .file_target()
            .is_some_and(|t| !t.versioned || self.version.is_some())
    }

    /// The file holding what the run saved (the pinned version's file for
    /// versioned datasets); `None` without a single file. An error when the
    /// pinned version is gone.
    pub fn file(&self) -> Option<Result<PathBuf, CatalogError>> {
        if !self.has_file() {
            return None;
        }
        self.dataset.file_target().map(|t| t.load_path())
    }

    /// Whether the file is on this machine's file system (not an object store).
    pub fn is_local(&self) -> bool {
        self.dataset
            .file_target()
            .is_some_and(|t| t.storage().scheme() == "file")
    }

    /// The storage the file lives on.
    pub fn storage(&self) -> Option<Arc<dyn Storage>> {
        self.dataset.file_target().map(|t| Arc::clone(t.storage()))
    }
}

impl SessionCore {
    /// The datasets the recorded run `record` saved: the outputs of every
    /// node it ran (its node timings) and every dataset in its
    /// `saved_versions`, by name. Memory, folder and table datasets are
    /// listed too ([`SavedDataset::has_file`] tells them apart).
    pub(crate) fn saved_datasets(&self, record: &RunRecord) -> Result<Vec<SavedDataset>, SessionError> {
        let ran: BTreeSet<&str> = record.node_timings.iter().map(|t| t.node.as_str()).collect();
        let mut outputs: BTreeSet<String> = BTreeSet::new();
        let mut all_outputs: BTreeSet<String> = BTreeSet::new();
        let names = if record.pipeline_names.is_empty() {
            vec![self.project.settings().project.default_pipeline.clone()]
        } else {
            record.pipeline_names.clone()
        };
        for name in &names {
            let Some(p) = self.pipelines().get(name) else {
                continue;
            };
            for n in p.nodes() {
                all_outputs.extend(n.outputs().iter().cloned());
                if ran.contains(n.name()) {
                    outputs.extend(n.outputs().iter().cloned());
                }
            }
        }
        let loaded = self.loaded_config(&record.env, &record.runtime_params)?;
        // A run that could overlap others wrote its non-versioned outputs
        // under `.weft/runs/<run_id>` (see `Isolation::RunScoped`).
        let scope_dir = self
            .project
            .root()
            .join(".weft")
            .join("runs")
            .join(&record.run_id);
        let run_scope = scope_dir.is_dir().then(|| RunScope {
            dir: scope_dir.clone(),
            datasets: all_outputs
                .iter()
                .filter(|n| loaded.catalog.is_shared_file(n))
                .cloned()
                .collect(),
        });
        // Every version the run saved is pinned; a dataset the catalog no
        // longer versions (the project changed since) is left unpinned.
        let mut load_versions = record.saved_versions.clone();
        let build = |load_versions: &BTreeMap<String, String>| {
            loaded.catalog.build(&BuildOptions {
                project_dir: self.project.root().to_path_buf(),
                save_version: record.run_id.clone(),
                load_versions: load_versions.clone(),
                parameters: loaded.parameters.clone(),
                run_scope: run_scope.clone(),
            })
        };
        let catalog = match build(&load_versions) {
            Err(CatalogError::LoadVersions { problems }) => {
                for p in problems {
                    load_versions.remove(&p.dataset);
                }
                build(&load_versions)?
            }
            other => other?,
        };
        // Versions saved under a base name no node output spells that way
        // (a pipeline changed since): listed by the name the run recorded.
        for name in record.saved_versions.keys() {
            if !outputs.iter().any(|o| base_name(o) == name) {
                outputs.insert(name.clone());
            }
        }
        let mut out = Vec::new();
        for name in outputs {
            if name == "parameters" || name.starts_with("params:") {
                continue;
            }
            let Some(dataset) = catalog.dataset(&name)? else {
                out.push(SavedDataset {
                    type_name: "MemoryDataset".into(),
                    version: None,
                    pinned: false,
                    dataset: Arc::new(weft_catalog::MemoryDataset::new(&name)),
                    name,
                });
                continue;
            };
            let info = dataset.describe();
            let version = if info.versioned {
                load_versions.get(base_name(&name)).cloned()
            } else {
                None
            };
            let scoped = !info.versioned
                && dataset
                    .file_target()
                    .is_some_and(|t| t.path.starts_with(&scope_dir));
            out.push(SavedDataset {
                type_name: info.type_name,
                pinned: version.is_some() || scoped,
                version,
                dataset,
                name,
            });
        }
        Ok(out)
    }
}
