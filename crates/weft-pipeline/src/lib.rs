//! The pipeline model of weft: data values, typed nodes, the function
//! registry and immutable pipelines (operators, filters, transcoding,
//! namespaces, topological order).
//!
//! This crate knows nothing of files, catalogs or runners: it is the bottom
//! layer every other crate builds on.

pub mod builtins;
pub mod command;
pub mod cycle;
pub mod data;
mod duration;
pub mod error;
pub mod filter;
pub mod input;
pub mod namespace;
pub mod node;
mod panic;
pub mod pipeline;
pub mod registry;
mod size;
pub mod transcode;

pub use cycle::{Condition, CycleReport, NoConvergence, cycle};
pub use data::{Data, DataType, DataValue, DecodeError, Empty};
pub use duration::{format_duration, parse_duration};
pub use error::PipelineError;
pub use input::{AWAIT_INPUT, InputRequest, InputRequired, await_input};
pub use node::{
    CancelToken, IntoAsyncNodeFn, IntoNames, IntoNodeFn, IntoOutputs, Node, NodeBuilder, NodeCall, NodeFn,
    NodeFnError, NodeFuture, NodeLimits, Ports, Signature, async_fn, block_on_node, cancelled, dyn_fn, node,
    node_async,
};
pub use panic::panic_message;
pub use pipeline::{NamespaceOptions, Pipeline, PipelineFilter};
pub use registry::{FunctionRegistry, RegisteredFn};
pub use size::{format_size, parse_size};

#[doc(hidden)]
pub mod __private {
    pub use erased_serde;
}
