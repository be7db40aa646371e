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
//!   `bytes.BytesDataset`, and `partitions.PartitionedDataset` ([`Partitions`]).
//! * Type name aliases: a type resolves by its canonical name, after
//!   stripping a leading `kedro_datasets.`, and by its class name alone when
//!   exactly one registered type has it; so `pandas.CSVDataset`,
//!   `kedro_datasets.json.JSONDataset` and `JSONDataset` all work.
//! * File datasets resolve relative paths against the project folder, create
//!   parent folders, and write atomically (temporary file + rename).
//! * Versioning: `<filepath>/<version>/<basename>`; loads read this run's
//!   version, else the pinned one, else the newest; versions are never
//!   overwritten.
//! * [`CatalogConfig`] parses `catalog.yml` once (every error at once,
//!   factory patterns, credentials) and builds a fresh [`Catalog`] per run.
//!   Patterns follow Kedro's precedence: an explicit entry, else the first
//!   matching pattern ordered by more literal characters, then more
//!   placeholders (as Kedro's `_sort_patterns` does), then alphabetically;
//!   the single catch-all (`"{default}"`) comes last, then a memory dataset.
//! * [`CatalogError`] says who is at fault ([`Fault`]): configuration, data
//!   or environment, and always names the dataset (and file).
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
mod memory;
mod partitioned;
mod registry;

pub use catalog::{BuildOptions, Catalog, CatalogConfig, Locator, Pattern, RunScope};
pub use dataset::{Dataset, DatasetInfo, LoadType, Unavailable};
pub use error::{CatalogError, ConfigProblem, Fault, LoadVersionProblem};
pub use formats::{FileDataset, Format};
pub use memory::MemoryDataset;
pub use partitioned::{PartitionedDataset, Partitions};
pub use registry::{DatasetFactory, DatasetSpec, DatasetTypeRegistry, FILE_TYPES};
