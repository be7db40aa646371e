use std::sync::Arc;

use weft_catalog::Catalog;
use weft_pipeline::{Data, Node, Pipeline};

use crate::{RunContext, RunError, RunResult};

/// An observer of the run lifecycle. Every method has a no-op default, so a
/// hook implements only what it needs. Every call carries the run's
/// [`RunContext`] (`session_id`, `run_id`, `run_index`, `total_runs`).
///
/// Hooks are called from the thread that runs the node, so with the thread
/// runner they may be called concurrently: implementations must be
/// `Send + Sync` and keep their own synchronisation.
#[allow(unused_variables)]
pub trait Hook: Send + Sync {
    /// The run's context (config, parameters) was created.
    fn after_context_created(&self, ctx: &RunContext) {}
    /// The run's catalog was built.
    fn after_catalog_created(&self, ctx: &RunContext, catalog: &Catalog) {}
    /// The pipeline is about to run.
    fn before_pipeline_run(&self, ctx: &RunContext, pipeline: &Pipeline) {}
    /// The pipeline finished; `outputs` holds its free outputs.
    fn after_pipeline_run(
        &self,
        ctx: &RunContext,
        pipeline: &Pipeline,
        outputs: &std::collections::BTreeMap<String, Data>,
    ) {
    }
    /// The pipeline failed.
    fn on_pipeline_error(&self, ctx: &RunContext, pipeline: &Pipeline, error: &RunError) {}
    /// A node is about to run with these inputs (in the node's input order).
    fn before_node_run(&self, ctx: &RunContext, node: &Node, inputs: &[Data]) {}
    /// A node ran and produced these outputs (in the node's output order).
    fn after_node_run(&self, ctx: &RunContext, node: &Node, inputs: &[Data], outputs: &[Data]) {}
    /// A node failed.
    fn on_node_error(&self, ctx: &RunContext, node: &Node, error: &RunError) {}
    /// A dataset is about to be loaded for `node`.
    fn before_dataset_loaded(&self, ctx: &RunContext, dataset: &str, node: &Node) {}
    /// A dataset was loaded for `node`.
    fn after_dataset_loaded(&self, ctx: &RunContext, dataset: &str, data: &Data, node: &Node) {}
    /// A dataset is about to be saved by `node`.
    fn before_dataset_saved(&self, ctx: &RunContext, dataset: &str, data: &Data, node: &Node) {}
    /// A dataset was saved by `node`.
    fn after_dataset_saved(&self, ctx: &RunContext, dataset: &str, data: &Data, node: &Node) {}
    /// A run of a session finished (any status).
    fn after_run(&self, ctx: &RunContext, result: &RunResult) {}
    /// Every run of a batch finished.
    fn after_all_runs(&self, session_id: &str, results: &[RunResult]) {}
}

/// An ordered set of hooks, called in registration order.
#[derive(Clone, Default)]
pub struct Hooks {
    hooks: Vec<Arc<dyn Hook>>,
}

macro_rules! fan_out {
    ($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        pub fn $name(&self, $($arg: $ty),*) {
            for hook in &self.hooks {
                hook.$name($($arg),*);
            }
        }
    };
}

impl Hooks {
    /// No hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a hook after the existing ones.
    pub fn push(&mut self, hook: Arc<dyn Hook>) -> &mut Self {
        self.hooks.push(hook);
        self
    }

    /// Builder form of [`Hooks::push`].
    pub fn with(mut self, hook: Arc<dyn Hook>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Whether no hook is registered (lets hot paths skip work).
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Number of hooks.
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    fan_out!(
        /// Calls [`Hook::after_context_created`] on every hook.
        after_context_created(ctx: &RunContext)
    );
    fan_out!(
        /// Calls [`Hook::after_catalog_created`] on every hook.
        after_catalog_created(ctx: &RunContext, catalog: &Catalog)
    );
    fan_out!(
        /// Calls [`Hook::before_pipeline_run`] on every hook.
        before_pipeline_run(ctx: &RunContext, pipeline: &Pipeline)
    );
    fan_out!(
        /// Calls [`Hook::after_pipeline_run`] on every hook.
        after_pipeline_run(
            ctx: &RunContext,
            pipeline: &Pipeline,
            outputs: &std::collections::BTreeMap<String, Data>
        )
    );
    fan_out!(
        /// Calls [`Hook::on_pipeline_error`] on every hook.
        on_pipeline_error(ctx: &RunContext, pipeline: &Pipeline, error: &RunError)
    );
    fan_out!(
        /// Calls [`Hook::before_node_run`] on every hook.
        before_node_run(ctx: &RunContext, node: &Node, inputs: &[Data])
    );
    fan_out!(
        /// Calls [`Hook::after_node_run`] on every hook.
        after_node_run(ctx: &RunContext, node: &Node, inputs: &[Data], outputs: &[Data])
    );
    fan_out!(
        /// Calls [`Hook::on_node_error`] on every hook.
        on_node_error(ctx: &RunContext, node: &Node, error: &RunError)
    );
    fan_out!(
        /// Calls [`Hook::before_dataset_loaded`] on every hook.
        before_dataset_loaded(ctx: &RunContext, dataset: &str, node: &Node)
    );
    fan_out!(
        /// Calls [`Hook::after_dataset_loaded`] on every hook.
        after_dataset_loaded(ctx: &RunContext, dataset: &str, data: &Data, node: &Node)
    );
    fan_out!(
        /// Calls [`Hook::before_dataset_saved`] on every hook.
        before_dataset_saved(ctx: &RunContext, dataset: &str, data: &Data, node: &Node)
    );
    fan_out!(
        /// Calls [`Hook::after_dataset_saved`] on every hook.
        after_dataset_saved(ctx: &RunContext, dataset: &str, data: &Data, node: &Node)
    );
    fan_out!(
        /// Calls [`Hook::after_run`] on every hook.
        after_run(ctx: &RunContext, result: &RunResult)
    );
    fan_out!(
        /// Calls [`Hook::after_all_runs`] on every hook.
        after_all_runs(session_id: &str, results: &[RunResult])
    );
}
