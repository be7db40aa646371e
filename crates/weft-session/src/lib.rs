//! Projects and sessions: the layer that turns a project on disk into runs.
//!
//! * [`Project`]: `weft.toml`, `conf/`, `pipelines.yml`.
//! * [`Session`]: exactly one run, recorded in the store (Kedro's session).
//! * [`ServiceSession`]: many isolated runs, sequential or concurrent, with
//!   fail-fast / continue / retry policies and progress.
//!
//! Every run gets a fresh [`Context`] (parameters and catalog); nothing is
//! shared between runs but immutable configuration.

pub mod answers;
mod command_yaml;
mod core;
mod error;
mod metrics;
mod prepare;
pub mod project;
mod recorder;
mod run_config;
pub mod run_logs;
mod saved;
mod service;
mod session;
mod yaml_cycle;
pub mod yaml_pipelines;

pub use crate::core::{
    Context, DEFAULT_ENV, ProjectCode, Provenance, SessionOptions, StoreChoice, check_env,
    default_dataset_types, list_envs, load_project_pipelines,
};
pub use error::SessionError;
pub use prepare::PreparedRun;
pub use project::{Project, ProjectSettings};
pub use recorder::{finished_record, run_record};
pub use run_config::{Isolation, RunConfig, RunSpec, new_run_id};
pub use saved::SavedDataset;
pub use service::{CloseMode, Policy, Progress, ServiceOptions, ServiceSession};
pub use session::Session;
pub use yaml_pipelines::{DEFAULT_PIPELINE, load_pipelines, load_pipelines_optional, parse_pipelines};
