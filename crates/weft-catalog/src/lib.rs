//! The data catalog of weft: datasets and the per-run [`Catalog`], with
//! Kedro's `DataCatalog` semantics.
//!
//! * [`Dataset`]: load (decoding straight into the requested type), save,
//!   exists, release, describe, [`LoadType`] for type checks before a run.
//! * Built-in types, registered in an explicit [`DatasetTypeRegistry`] (no
//!   global state; registering a name twice is an error): `MemoryDataset`
//!   (readers share one `Arc`), `json.JSONDataset`, `yaml.YAMLDataset`,
//!   `csv.CSVDataset` (rows via a serde deserializer over the records),
//!   `parquet.ParquetDataset` and `arrow.ArrowIPCDataset` (one Arrow
//!   `RecordBatch`, or rows decoded into any serde type), `text.TextDataset`,
//!   `bytes.BytesDataset`, `partitions.PartitionedDataset` ([`Partitions`]),
//!   and `partitions.IncrementalDataset` ([`IncrementalDataset`]: only the
//!   partitions after its checkpoint; [`Catalog::confirm`] advances it).
//! * Type name aliases: a type resolves by its canonical name, after
//!   stripping a leading `kedro_datasets.`, and by its class name alone when
//!   exactly one registered type has it; so `pandas.CSVDataset`,
//!   `kedro_datasets.json.JSONDataset` and `JSONDataset` all work.
//! * File datasets resolve relative paths against the project folder, create
//!   parent folders, and write safely ([`file::atomic_write`]): a locked
//!   temporary sibling renamed into place; temporary files a killed save
//!   left are removed by the next save of that file; a save through a
//!   symlink writes its target (the link stays), and a save never replaces
//!   a directory, FIFO, socket or device node ([`CatalogError::NotAFile`]).
//!   Save errors say where: ``could not save `x` to data/x.json: ...``.
//! * Storage ([`storage`]): every file and folder dataset reads, writes,
//!   lists and checks through a [`Storage`]: [`LocalStorage`] (the rules
//!   above) for plain paths and `file://`, or an object-store backend for
//!   URLs whose scheme is registered in the [`DatasetTypeRegistry`]'s
//!   [`StorageRegistry`] (`weft-object-store` registers `s3`, `gs`, `az`,
//!   `memory`). Versioning, pins and run scope are the same on both; a
//!   run-scoped object URL moves to `<scheme>://<bucket>/.weft/runs/<run>/<key>`
//!   ([`storage::scoped_url`]). An unknown scheme is a configuration
//!   problem naming the entry and the URL; a failed request is
//!   [`CatalogError::Storage`].
//! * CSV: a header that names a column twice is an error naming the file,
//!   the column and both positions ([`CatalogError::DuplicateColumn`]).
//! * Versioning: `<filepath>/<version>/<basename>`; loads read this run's
//!   version, else the pinned one, else the newest; versions are never
//!   overwritten.
//! * Transcoding: `cars@csv` and `cars@parquet` are one logical dataset for
//!   versioning. Each entry keeps its own `filepath`, so a version's path
//!   shows its format (`data/cars.csv/<version>/cars.csv`); entries sharing
//!   one `filepath` (`cars@json` and `cars@text`) share its files. The
//!   version saved in this run, the pin (`load_versions` keyed by the base
//!   name `cars`; a full name works too) and the newest version are
//!   resolved for the logical dataset across every side; a side that lacks
//!   that version is an error naming where it exists
//!   ([`CatalogError::NoVersion`]), never a silent read of an older one.
//!   [`Catalog::saved_versions`] keys by base name.
//! * `load_versions` are checked when a catalog is built: a version that is
//!   empty or contains `/`, `\` or `..`, a name the catalog does not know
//!   (no entry, no pattern), an unversioned dataset, or two different pins
//!   for one logical dataset are all reported at once
//!   ([`CatalogError::LoadVersions`]).
//! * Run scope ([`RunScope`] in [`BuildOptions::run_scope`]), the isolation
//!   rule for runs that can overlap: each listed dataset that is persisted
//!   and not versioned (file and folder datasets, pattern entries, both
//!   sides of a transcoded pair) loads and saves at
//!   `<scope dir>/<its path relative to the project>`; a path outside the
//!   project maps to `<scope dir>/_abs/<path without its root>`. Versioned,
//!   memory and `params:` datasets are unchanged. `describe`/`list` show the
//!   scoped path, [`Catalog::scoped_paths`] lists them, and
//!   [`CatalogConfig::is_shared_file`] tells, without building a catalog,
//!   whether a name would be shared by concurrent runs.
//! * [`Catalog::check_available`] lists the inputs that have nothing to load
//!   (missing file, folder, version or pinned version; empty memory
//!   dataset; unknown name) with the path and the reason, at about one
//!   `stat` each.
//! * [`CatalogConfig`] parses `catalog.yml` once (every error at once,
//!   factory patterns, credentials) and builds a fresh [`Catalog`] per run.
//!   Patterns follow Kedro's precedence: an explicit entry, else the first
//!   matching pattern ordered by more literal characters, then more
//!   placeholders (as Kedro's `_sort_patterns` does), then alphabetically;
//!   the single catch-all (`"{default}"`) comes last, then a memory dataset.
//! * [`CatalogError`] says who is at fault ([`Fault`]): configuration, data
//!   or environment, and always names the dataset (and file).
//!   [`CatalogConfig::parse_located`] takes a [`Locator`] (for a project,
//!   `weft_config::KeyLocator::locate`) so that configuration problems
//!   (unknown type, missing or unknown key, ...) name their file and line
//!   ([`ConfigProblem`]).
//!
//! ```
//! use serde_json::json;
//! use weft_catalog::{BuildOptions, CatalogConfig, DatasetTypeRegistry};
//! use weft_pipeline::{Data, DataType};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = CatalogConfig::parse(
//!     &json!({"{name}_json": {"type": "JSONDataset", "filepath": "data/{name}.json"}}),
//!     &json!({}),
//!     &DatasetTypeRegistry::with_builtins(),
//! )
//! .unwrap();
//! let catalog = config
//!     .build(&BuildOptions { project_dir: dir.path().into(), ..Default::default() })
//!     .unwrap();
//! catalog.save("scores_json", Data::new(vec![1.5f64, 2.0])).unwrap();
//! let back = catalog.load("scores_json", Some(&DataType::of::<Vec<f64>>())).unwrap();
//! assert_eq!(back.downcast_ref::<Vec<f64>>().unwrap(), &vec![1.5, 2.0]);
//! assert!(dir.path().join("data/scores.json").is_file());
//! ```

mod catalog;
mod csv_de;
mod dataset;
mod error;
pub mod file;
mod formats;
mod incremental;
mod memory;
mod partitioned;
mod registry;
pub mod storage;

pub use catalog::{BuildOptions, Catalog, CatalogConfig, Locator, Pattern, RunScope};
pub use dataset::{Dataset, DatasetInfo, LoadType, Unavailable};
pub use error::{CatalogError, ConfigProblem, Fault, LoadVersionProblem};
pub use formats::{FileDataset, Format, batch_to_json, rows_to_batch};
pub use incremental::{Confirmation, DEFAULT_CHECKPOINT, IncrementalConfig, IncrementalDataset};
pub use memory::MemoryDataset;
pub use partitioned::{PartitionedDataset, Partitions};
pub use registry::{DatasetFactory, DatasetSpec, DatasetTypeRegistry, FILE_TYPES, Location};
pub use storage::{LocalStorage, Storage, StorageError, StorageRegistry};
