//! weft: reproducible data pipelines with sessions.
//!
//! This facade re-exports the public API of the layer crates:
//!
//! | layer | crate | what |
//! |---|---|---|
//! | pipeline model | [`pipeline`] | `Data`, typed nodes, `FunctionRegistry`, immutable `Pipeline` |
//! | catalog | [`catalog`] | `Dataset`, built-in datasets, `Catalog` |
//! | config | [`config`] | `conf/base` + `conf/<env>` loading, runtime params |
//! | runner | [`runner`] | sequential and thread runners, hooks, run results |
//! | store | [`store`] | durable session and run records (SQLite, PostgreSQL) |
//! | session | [`session`] | projects, YAML pipelines, `Session`, `ServiceSession` |

pub use weft_catalog as catalog;
pub use weft_config as config;
pub use weft_pipeline as pipeline;
pub use weft_runner as runner;
pub use weft_session as session;
pub use weft_store as store;

pub use weft_catalog::{Catalog, Dataset};
pub use weft_pipeline::{
    Data, DataType, DataValue, FunctionRegistry, Node, Pipeline, node, opaque_data, serde_data,
};
pub use weft_runner::{Hook, Hooks, RunContext, RunResult, RunStatus, SequentialRunner, ThreadRunner};
pub use weft_session::{
    Policy, ProjectCode, RunConfig, ServiceOptions, ServiceSession, Session, SessionError, SessionOptions,
};
