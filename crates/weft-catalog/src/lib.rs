//! The data catalog of weft: datasets and the per-run [`Catalog`].
//!
//! * [`Dataset`]: load, save, exists, release, describe.
//! * Built-in types: `MemoryDataset` (readers share one `Arc`), JSON, YAML,
//!   CSV (rows via serde), Parquet and Arrow IPC (Arrow `RecordBatch`, or
//!   serde rows), text, bytes, and `partitions.PartitionedDataset`.
//! * File datasets decode straight into the type the node asks for; writes
//!   are atomic (temporary file + rename).
//! * Versioning: `<filepath>/<version>/<basename>`; loads read this run's
//!   version, else the pinned one, else the newest; versions are never
//!   overwritten.
//! * [`CatalogConfig`] parses `catalog.yml` once (every error at once,
//!   factory patterns, credentials) and builds a fresh [`Catalog`] per run.

mod catalog;
mod csv_de;
mod dataset;
mod error;
pub mod file;
mod formats;
mod memory;
mod partitioned;
mod registry;

pub use catalog::{BuildOptions, Catalog, CatalogConfig, Pattern};
pub use dataset::{Dataset, DatasetInfo, LoadType};
pub use error::{CatalogError, Fault};
pub use formats::{FileDataset, Format};
pub use memory::MemoryDataset;
pub use partitioned::{PartitionedDataset, Partitions};
pub use registry::{DatasetFactory, DatasetSpec, DatasetTypeRegistry, FILE_TYPES};
