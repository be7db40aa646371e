//! The function registry: names → node functions.
//!
//! YAML pipelines and HTTP run specs refer to functions by name, so a
//! pipeline can change without recompiling. The registry is an explicit
//! value (never a process global): each project or test builds its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::PipelineError;
use crate::node::{IntoAsyncNodeFn, IntoNames, IntoNodeFn, NodeBuilder, NodeFn};

/// One registered function.
#[derive(Clone)]
pub struct RegisteredFn {
    /// The name it is registered under.
    pub name: String,
    /// A one-line description for `--help`-like listings.
    pub description: String,
    /// The function.
    pub func: Arc<dyn NodeFn>,
}

/// Names → node functions.
#[derive(Clone, Default)]
pub struct FunctionRegistry {
    functions: BTreeMap<String, RegisteredFn>,
}

impl FunctionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry holding the built-in functions (see [`crate::builtins`]).
    pub fn with_builtins() -> Self {
        let mut registry = Self::new();
        crate::builtins::register_builtins(&mut registry).expect("built-in function names are unique");
        registry
    }

    /// Registers a typed function or closure under `name`.
    pub fn register<Args, Out, F: IntoNodeFn<Args, Out>>(
        &mut self,
        name: impl Into<String>,
        func: F,
    ) -> Result<&mut Self, PipelineError> {
        self.register_dyn(name, "", func.into_node_fn())
    }

    /// Registers an async function or closure under `name`: it takes its
    /// inputs as `Arc<T>` and returns a future (see
    /// [`IntoAsyncNodeFn`]). The `async` runner awaits it without holding
    /// a thread; the other runners block on it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use weft_pipeline::FunctionRegistry;
    /// let mut registry = FunctionRegistry::new();
    /// registry.register_async("slow_double", |x: Arc<i64>| async move { *x * 2 })?;
    /// assert!(registry.get("slow_double")?.func.is_async());
    /// # Ok::<(), weft_pipeline::PipelineError>(())
    /// ```
    pub fn register_async<Args, Fut, F: IntoAsyncNodeFn<Args, Fut>>(
        &mut self,
        name: impl Into<String>,
        func: F,
    ) -> Result<&mut Self, PipelineError> {
        self.register_dyn(name, "", func.into_async_node_fn())
    }

    /// Registers an erased function with a description.
    pub fn register_dyn(
        &mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        func: Arc<dyn NodeFn>,
    ) -> Result<&mut Self, PipelineError> {
        let name = name.into();
        if name.trim().is_empty() {
            return Err(PipelineError::InvalidNode {
                node: name,
                problems: vec!["function names must not be empty".into()],
            });
        }
        if self.functions.contains_key(&name) {
            return Err(PipelineError::DuplicateFunction(name));
        }
        self.functions.insert(
            name.clone(),
            RegisteredFn {
                name,
                description: description.into(),
                func,
            },
        );
        Ok(self)
    }

    /// Adds every function of `other`; a name present in both is an error.
    pub fn merge(&mut self, other: &FunctionRegistry) -> Result<&mut Self, PipelineError> {
        for f in other.functions.values() {
            self.register_dyn(f.name.clone(), f.description.clone(), f.func.clone())?;
        }
        Ok(self)
    }

    /// Looks a function up.
    pub fn get(&self, name: &str) -> Result<&RegisteredFn, PipelineError> {
        self.functions
            .get(name)
            .ok_or_else(|| PipelineError::UnknownFunction {
                name: name.to_string(),
                suggestions: self.similar(name),
            })
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// Every registered function, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &RegisteredFn> {
        self.functions.values()
    }

    /// Starts a node that calls the function registered as `func`.
    pub fn node(
        &self,
        func: &str,
        inputs: impl IntoNames,
        outputs: impl IntoNames,
    ) -> Result<NodeBuilder, PipelineError> {
        let f = self.get(func)?;
        Ok(NodeBuilder::from_dyn(
            f.name.clone(),
            f.func.clone(),
            inputs,
            outputs,
        ))
    }

    fn similar(&self, name: &str) -> Vec<String> {
        let lower = name.to_lowercase();
        self.functions
            .keys()
            .filter(|k| {
                let k = k.to_lowercase();
                k.contains(&lower) || lower.contains(&k) || edit_distance(&k, &lower) <= 2
            })
            .take(3)
            .cloned()
            .collect()
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_names_are_rejected() {
        let mut r = FunctionRegistry::new();
        r.register("double", |x: &i64| x * 2).unwrap();
        let err = r.register("double", |x: &i64| x * 3).err().unwrap();
        assert!(matches!(err, PipelineError::DuplicateFunction(ref n) if n == "double"));
        let mut builtins = FunctionRegistry::with_builtins();
        let err = builtins.register("identity", |x: &i64| *x).err().unwrap();
        assert!(err.to_string().contains("`identity` is already registered"));
        assert!(builtins.merge(&FunctionRegistry::with_builtins()).is_err());
    }

    #[test]
    fn unknown_names_get_suggestions() {
        let r = FunctionRegistry::with_builtins();
        let err = r.get("add_on").err().unwrap();
        assert_eq!(
            err.to_string(),
            "unknown function `add_on` (did you mean `add_one`?)"
        );
        let err = r.get("zzzzzz").err().unwrap();
        assert_eq!(err.to_string(), "unknown function `zzzzzz`");
    }

    #[test]
    fn registry_builds_nodes() {
        let mut r = FunctionRegistry::new();
        r.register("double", |x: &i64| x * 2).unwrap();
        let n = r.node("double", "a", "b").unwrap().name("d").build().unwrap();
        assert_eq!(n.func_name(), "double");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
