//! Runners by name: the built-in ones and any a project registers.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::process_runner::{NodeHostPool, ProcessRunner};
use crate::{AsyncRunner, RunError, Runner, SequentialRunner, ThreadRunner};

/// Builds a runner for one run from the run's `max_workers` (if given).
pub type RunnerFactory = Arc<dyn Fn(Option<usize>) -> Box<dyn Runner> + Send + Sync>;

/// Why a runner could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunnerRegistryError {
    /// The name is already taken (built-in names included).
    #[error("runner `{name}` is already registered; runner names must be unique")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// The name is empty or only whitespace.
    #[error("a runner name must not be empty")]
    EmptyName,
}

/// Runner name → factory, for CLIs, sessions and run specs that name their
/// runner. An explicit value (no global registry): build one, register
/// project runners into it, hand it to whoever builds runners.
///
/// ```
/// use weft_runner::{RunnerRegistry, SequentialRunner};
///
/// let mut runners = RunnerRegistry::with_builtins();
/// runners.register("careful", |_| Box::new(SequentialRunner))?;
/// assert_eq!(runners.build("careful", None)?.name(), "sequential");
/// assert!(runners.register("thread", |_| Box::new(SequentialRunner)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct RunnerRegistry {
    factories: BTreeMap<String, RunnerFactory>,
}

impl std::fmt::Debug for RunnerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.factories.keys()).finish()
    }
}

impl RunnerRegistry {
    /// A registry with no runner.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in runners: `sequential` and `thread`, also under their
    /// Kedro names `SequentialRunner` and `ThreadRunner`, `async`, and
    /// `process` (without node hosts until [`RunnerRegistry::with_node_hosts`]
    /// gives it a pool).
    pub fn with_builtins() -> Self {
        let mut registry = Self::new();
        let sequential: RunnerFactory = Arc::new(|_| Box::new(SequentialRunner));
        let thread: RunnerFactory = Arc::new(|max_workers| Box::new(ThreadRunner::new(max_workers)));
        let asynchronous: RunnerFactory = Arc::new(|max_workers| Box::new(AsyncRunner::new(max_workers)));
        let process: RunnerFactory = Arc::new(|max_workers| Box::new(ProcessRunner::new(max_workers, None)));
        for (name, factory) in [
            ("sequential", &sequential),
            ("SequentialRunner", &sequential),
            ("thread", &thread),
            ("ThreadRunner", &thread),
            ("async", &asynchronous),
            ("process", &process),
        ] {
            registry.factories.insert(name.to_string(), Arc::clone(factory));
        }
        registry
    }

    /// Gives the `process` runner its node hosts: runs built from this
    /// registry run their nodes in hosts of `pool` (a session's).
    pub fn with_node_hosts(&mut self, pool: Arc<NodeHostPool>) -> &mut Self {
        let factory: RunnerFactory =
            Arc::new(move |max_workers| Box::new(ProcessRunner::new(max_workers, Some(Arc::clone(&pool)))));
        self.factories.insert("process".to_string(), factory);
        self
    }

    /// Registers `factory` under `name`; a name already registered is an
    /// error (the registry is unchanged).
    pub fn register<F>(
        &mut self,
        name: impl Into<String>,
        factory: F,
    ) -> Result<&mut Self, RunnerRegistryError>
    where
        F: Fn(Option<usize>) -> Box<dyn Runner> + Send + Sync + 'static,
    {
        let name = name.into();
        if name.trim().is_empty() {
            return Err(RunnerRegistryError::EmptyName);
        }
        match self.factories.entry(name) {
            std::collections::btree_map::Entry::Occupied(e) => Err(RunnerRegistryError::Duplicate {
                name: e.key().clone(),
            }),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(Arc::new(factory));
                Ok(self)
            }
        }
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.factories.contains_key(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }

    /// Builds the runner registered as `name`; an unknown name is a
    /// [`RunError::Validation`] that lists the known names.
    pub fn build(&self, name: &str, max_workers: Option<usize>) -> Result<Box<dyn Runner>, RunError> {
        match self.factories.get(name) {
            Some(factory) => Ok(factory(max_workers)),
            None => Err(RunError::Validation {
                problems: vec![format!(
                    "unknown runner `{name}`; known runners: {}",
                    self.names()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )],
            }),
        }
    }
}
