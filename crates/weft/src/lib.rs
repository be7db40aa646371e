//! weft: reproducible data pipelines with sessions.
//!
//! This facade re-exports the public API of the layer crates:
//!
//! | layer | crate | what |
//! |---|---|---|
//! | pipeline model | [`pipeline`] | `Data`, typed nodes, `FunctionRegistry`, immutable `Pipeline` |
//! | catalog | [`catalog`] | `Dataset`, built-in datasets, `Catalog` |
//! | config | [`config`] | `conf/base` + `conf/<env>` loading, runtime params |
//! | runner | [`runner`] | sequential, thread and async runners, hooks, run results |
//! | store | [`store`] | durable session and run records (SQLite, PostgreSQL) |
//! | session | [`session`] | projects, YAML pipelines, `Session`, `ServiceSession` |
//! | edge | [`cli`] | the `weft` command line: [`main_with`] for a project's own binary, [`run_with`] in-process |
//!
//! A project with its own functions needs only this crate:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! fn main() -> std::process::ExitCode {
//!     let mut functions = weft::FunctionRegistry::with_builtins();
//!     // functions.register("my_node", my_node)?;
//!     weft::main_with(weft::ProjectCode {
//!         functions: Arc::new(functions),
//!         ..Default::default()
//!     })
//! }
//! ```

pub use weft_catalog as catalog;
pub use weft_cli as cli;
pub use weft_config as config;
pub use weft_pipeline as pipeline;
pub use weft_runner as runner;
pub use weft_session as session;
pub use weft_store as store;

pub use weft_catalog::{Catalog, Dataset};
pub use weft_cli::{Environment, main_with, run_with};
pub use weft_pipeline::{
    CancelToken, Data, DataType, DataValue, FunctionRegistry, Node, Pipeline, PipelineError, async_fn, node,
    node_async, opaque_data, serde_data,
};
pub use weft_runner::{
    AsyncRunner, Hook, Hooks, RunContext, RunResult, RunStatus, SequentialRunner, ThreadRunner,
};
pub use weft_session::{
    CloseMode, Policy, ProjectCode, RunConfig, ServiceOptions, ServiceSession, Session, SessionError,
    SessionOptions, StoreChoice,
};
