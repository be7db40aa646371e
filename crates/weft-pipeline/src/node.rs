//! Nodes: named functions with named inputs and outputs.
//!
//! Node functions are ordinary typed Rust functions or closures, like axum
//! handlers: `fn split(rows: &Vec<Row>, p: &SplitParams) -> (Vec<Row>, Vec<Row>)`.
//! [`IntoNodeFn`] converts them into the type-erased [`NodeFn`] the runner
//! calls: every argument is borrowed from the loaded [`Data`] (no copy), and
//! the return value becomes the node's outputs (a tuple is several outputs,
//! `()` is none, `Result<_, E>` reports `E` as the node's error).

use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::data::{Data, DataType, DataValue};
use crate::error::PipelineError;

/// The error a node function returns.
pub type NodeFnError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Cooperative cancellation flag shared by a run and its nodes.
#[derive(Clone, Default, Debug)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, not cancelled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The declared ports (inputs or outputs) of a node function.
#[derive(Clone, Debug)]
pub enum Ports {
    /// Exactly these ports, each with its type when known.
    Fixed(Vec<Option<DataType>>),
    /// Any number of ports, all of this type when known.
    Variadic(Option<DataType>),
}

impl Ports {
    /// Whether `n` ports fit this declaration.
    pub fn accepts(&self, n: usize) -> bool {
        match self {
            Ports::Fixed(types) => types.len() == n,
            Ports::Variadic(_) => true,
        }
    }

    /// The type of port `i`, when known.
    pub fn type_at(&self, i: usize) -> Option<DataType> {
        match self {
            Ports::Fixed(types) => types.get(i).copied().flatten(),
            Ports::Variadic(ty) => *ty,
        }
    }

    fn describe(&self) -> String {
        match self {
            Ports::Fixed(types) => types.len().to_string(),
            Ports::Variadic(_) => "any number of".into(),
        }
    }
}

/// What a node function takes and returns.
#[derive(Clone, Debug)]
pub struct Signature {
    /// The inputs.
    pub inputs: Ports,
    /// The outputs.
    pub outputs: Ports,
}

/// One invocation of a node function.
pub struct NodeCall<'a> {
    /// Full name of the node being run (for error messages).
    pub node: &'a str,
    /// Loaded inputs, in the node's input order.
    pub inputs: Vec<Data>,
    /// How many outputs the node declares.
    pub outputs: usize,
    /// The run's cancellation flag; long-running functions should poll it.
    pub cancel: &'a CancelToken,
}

/// A type-erased node function, as stored in the registry and called by runners.
pub trait NodeFn: Send + Sync + 'static {
    /// What the function takes and returns.
    fn signature(&self) -> Signature;
    /// Runs the function.
    fn call(&self, call: NodeCall<'_>) -> Result<Vec<Data>, NodeFnError>;

    /// Runs the function and reports what a cycle did (runners record it on
    /// the node's timing). Only cycle nodes report anything.
    fn call_detailed(
        &self,
        call: NodeCall<'_>,
    ) -> Result<(Vec<Data>, Option<crate::cycle::CycleReport>), NodeFnError> {
        self.call(call).map(|outputs| (outputs, None))
    }

    /// The cycle's declaration, when this function is a cycle.
    fn cycle(&self) -> Option<crate::cycle::CycleInfo<'_>> {
        None
    }
}

/// A node function built from a closure over [`NodeCall`]: the escape hatch
/// for functions whose arity or types are only known at run time.
pub struct DynFn<F> {
    signature: Signature,
    f: F,
}

/// Builds a dynamic node function.
pub fn dyn_fn<F>(signature: Signature, f: F) -> Arc<dyn NodeFn>
where
    F: Fn(NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> + Send + Sync + 'static,
{
    Arc::new(DynFn { signature, f })
}

impl<F> NodeFn for DynFn<F>
where
    F: Fn(NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> + Send + Sync + 'static,
{
    fn signature(&self) -> Signature {
        self.signature.clone()
    }
    fn call(&self, call: NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> {
        (self.f)(call)
    }
}

/// What a typed node function may return.
pub trait IntoOutputs: 'static {
    /// Types of the outputs, in order.
    fn output_types() -> Vec<Option<DataType>>;
    /// Converts the returned value into output data.
    fn into_outputs(self) -> Result<Vec<Data>, NodeFnError>;
}

impl<T: DataValue> IntoOutputs for T {
    fn output_types() -> Vec<Option<DataType>> {
        vec![Some(DataType::of::<T>())]
    }
    fn into_outputs(self) -> Result<Vec<Data>, NodeFnError> {
        Ok(vec![Data::new(self)])
    }
}

impl IntoOutputs for () {
    fn output_types() -> Vec<Option<DataType>> {
        Vec::new()
    }
    fn into_outputs(self) -> Result<Vec<Data>, NodeFnError> {
        Ok(Vec::new())
    }
}

impl<R, E> IntoOutputs for Result<R, E>
where
    R: IntoOutputs,
    E: Into<NodeFnError> + 'static,
{
    fn output_types() -> Vec<Option<DataType>> {
        R::output_types()
    }
    fn into_outputs(self) -> Result<Vec<Data>, NodeFnError> {
        self.map_err(Into::into)?.into_outputs()
    }
}

macro_rules! tuple_outputs {
    ($($t:ident),+) => {
        impl<$($t: DataValue),+> IntoOutputs for ($($t,)+) {
            fn output_types() -> Vec<Option<DataType>> {
                vec![$(Some(DataType::of::<$t>())),+]
            }
            #[allow(non_snake_case)]
            fn into_outputs(self) -> Result<Vec<Data>, NodeFnError> {
                let ($($t,)+) = self;
                Ok(vec![$(Data::new($t)),+])
            }
        }
    };
}
tuple_outputs!(A, B);
tuple_outputs!(A, B, C);
tuple_outputs!(A, B, C, D);
tuple_outputs!(A, B, C, D, E);
tuple_outputs!(A, B, C, D, E, F);

/// Converts a typed function or closure into a [`NodeFn`].
///
/// `Args` is a tuple of the argument types; it only guides inference.
pub trait IntoNodeFn<Args, Out>: Send + Sync + Sized + 'static {
    /// The erased function.
    fn into_node_fn(self) -> Arc<dyn NodeFn>;
    /// A readable name for the function (its Rust path's last segment).
    fn func_name(&self) -> String {
        let full = std::any::type_name::<Self>();
        let trimmed = full.split('<').next().unwrap_or(full);
        trimmed.rsplit("::").next().unwrap_or(trimmed).to_string()
    }
}

impl IntoNodeFn<(), ()> for Arc<dyn NodeFn> {
    fn into_node_fn(self) -> Arc<dyn NodeFn> {
        self
    }
    fn func_name(&self) -> String {
        "dynamic".into()
    }
}

/// Borrows or converts input `index` into a `T`.
fn input_as<T: DataValue>(call_node: &str, index: usize, data: &Data) -> Result<Arc<T>, NodeFnError> {
    if let Some(value) = data.downcast_arc::<T>() {
        return Ok(value);
    }
    let converted = data.convert_to(&DataType::of::<T>()).map_err(|e| {
        format!(
            "node `{call_node}`: input #{index} has type `{}` but the function takes `{}`: {e}",
            data.type_name(),
            std::any::type_name::<T>()
        )
    })?;
    Ok(converted
        .downcast_arc::<T>()
        .expect("convert_to returns the requested type"))
}

struct TypedFn<F, Args, Out> {
    f: F,
    _marker: PhantomData<fn(Args) -> Out>,
}

macro_rules! typed_fn {
    ($($a:ident),*) => {
        impl<Func, Out, $($a),*> NodeFn for TypedFn<Func, ($($a,)*), Out>
        where
            Func: Fn($(&$a),*) -> Out + Send + Sync + 'static,
            Out: IntoOutputs,
            $($a: DataValue,)*
        {
            fn signature(&self) -> Signature {
                Signature {
                    inputs: Ports::Fixed(vec![$(Some(DataType::of::<$a>())),*]),
                    outputs: Ports::Fixed(Out::output_types()),
                }
            }
            #[allow(non_snake_case, unused_mut, unused_variables, unused_assignments)]
            fn call(&self, call: NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> {
                let mut inputs = call.inputs.iter();
                let mut index = 0usize;
                $(
                    let data = inputs.next().ok_or_else(|| format!("node `{}`: missing input #{index}", call.node))?;
                    let $a = input_as::<$a>(call.node, index, data)?;
                    index += 1;
                )*
                (self.f)($(&*$a),*).into_outputs()
            }
        }

        impl<Func, Out, $($a),*> IntoNodeFn<($($a,)*), Out> for Func
        where
            Func: Fn($(&$a),*) -> Out + Send + Sync + 'static,
            Out: IntoOutputs,
            $($a: DataValue,)*
        {
            fn into_node_fn(self) -> Arc<dyn NodeFn> {
                Arc::new(TypedFn::<Func, ($($a,)*), Out> { f: self, _marker: PhantomData })
            }
        }
    };
}
typed_fn!();
typed_fn!(A1);
typed_fn!(A1, A2);
typed_fn!(A1, A2, A3);
typed_fn!(A1, A2, A3, A4);
typed_fn!(A1, A2, A3, A4, A5);
typed_fn!(A1, A2, A3, A4, A5, A6);
typed_fn!(A1, A2, A3, A4, A5, A6, A7);
typed_fn!(A1, A2, A3, A4, A5, A6, A7, A8);

/// Dataset names given to a node: one name, a list, or none.
pub trait IntoNames {
    /// The names, in order.
    fn into_names(self) -> Vec<String>;
}

impl IntoNames for &str {
    fn into_names(self) -> Vec<String> {
        vec![self.to_string()]
    }
}
impl IntoNames for String {
    fn into_names(self) -> Vec<String> {
        vec![self]
    }
}
impl IntoNames for () {
    fn into_names(self) -> Vec<String> {
        Vec::new()
    }
}
impl<S: Into<String>> IntoNames for Vec<S> {
    fn into_names(self) -> Vec<String> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<S: Into<String>, const N: usize> IntoNames for [S; N] {
    fn into_names(self) -> Vec<String> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<S: Into<String> + Clone> IntoNames for &[S] {
    fn into_names(self) -> Vec<String> {
        self.iter().cloned().map(Into::into).collect()
    }
}
impl<S: Into<String>> IntoNames for Option<S> {
    fn into_names(self) -> Vec<String> {
        self.into_iter().map(Into::into).collect()
    }
}

/// A node: a function wired to datasets by name. Immutable once built.
#[derive(Clone)]
pub struct Node {
    pub(crate) name: String,
    pub(crate) func_name: String,
    pub(crate) func: Arc<dyn NodeFn>,
    pub(crate) inputs: Vec<String>,
    pub(crate) outputs: Vec<String>,
    pub(crate) tags: BTreeSet<String>,
    pub(crate) namespace: Option<String>,
    pub(crate) signature: Signature,
    pub(crate) input_request: Option<Arc<crate::input::InputRequest>>,
}

/// Starts building a node from a typed function (see [`IntoNodeFn`]).
///
/// ```
/// use weft_pipeline::node;
/// fn double(x: &i64) -> i64 { x * 2 }
/// let n = node(double, "a", "b").name("double_a").build().unwrap();
/// assert_eq!(n.name(), "double_a");
/// ```
pub fn node<Args, Out, F: IntoNodeFn<Args, Out>>(
    func: F,
    inputs: impl IntoNames,
    outputs: impl IntoNames,
) -> NodeBuilder {
    let func_name = func.func_name();
    NodeBuilder {
        func_name,
        func: func.into_node_fn(),
        inputs: inputs.into_names(),
        outputs: outputs.into_names(),
        name: None,
        tags: BTreeSet::new(),
        namespace: None,
        input_request: None,
    }
}

/// Builder for [`Node`]; `build()` validates the wiring.
pub struct NodeBuilder {
    func_name: String,
    func: Arc<dyn NodeFn>,
    inputs: Vec<String>,
    outputs: Vec<String>,
    name: Option<String>,
    tags: BTreeSet<String>,
    namespace: Option<String>,
    input_request: Option<Arc<crate::input::InputRequest>>,
}

impl NodeBuilder {
    /// Starts a node from an already erased function (e.g. from the registry).
    pub fn from_dyn(
        func_name: impl Into<String>,
        func: Arc<dyn NodeFn>,
        inputs: impl IntoNames,
        outputs: impl IntoNames,
    ) -> Self {
        NodeBuilder {
            func_name: func_name.into(),
            func,
            inputs: inputs.into_names(),
            outputs: outputs.into_names(),
            name: None,
            tags: BTreeSet::new(),
            namespace: None,
            input_request: None,
        }
    }

    /// Sets the node's name (default: `func([inputs]) -> [outputs]`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds tags.
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Adds one tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.insert(tag.into());
        self
    }

    /// Marks the node as one that asks its caller for input
    /// ([`crate::await_input`]).
    pub(crate) fn awaiting(mut self, request: Arc<crate::input::InputRequest>) -> Self {
        self.input_request = Some(request);
        self
    }

    /// Sets the node's namespace; its full name becomes `namespace.name`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        let ns = namespace.into();
        self.namespace = (!ns.is_empty()).then_some(ns);
        self
    }

    /// Validates and builds the node.
    pub fn build(mut self) -> Result<Node, PipelineError> {
        let base = self.name.take().unwrap_or_else(|| {
            format!(
                "{}([{}]) -> [{}]",
                self.func_name,
                self.inputs.join(","),
                self.outputs.join(",")
            )
        });
        let name = match &self.namespace {
            Some(ns)
                if !base
                    .strip_prefix(ns.as_str())
                    .is_some_and(|rest| rest.starts_with('.')) =>
            {
                format!("{ns}.{base}")
            }
            _ => base,
        };
        let mut problems = Vec::new();
        let signature = self.func.signature();
        if !signature.inputs.accepts(self.inputs.len()) {
            problems.push(format!(
                "function `{}` takes {} inputs but {} were given ({:?})",
                self.func_name,
                signature.inputs.describe(),
                self.inputs.len(),
                self.inputs
            ));
        }
        if !signature.outputs.accepts(self.outputs.len()) {
            problems.push(format!(
                "function `{}` returns {} outputs but {} were declared ({:?})",
                self.func_name,
                signature.outputs.describe(),
                self.outputs.len(),
                self.outputs
            ));
        }
        for ds in self.inputs.iter().chain(&self.outputs) {
            if ds.trim().is_empty() {
                problems.push("dataset names must not be empty".into());
            }
        }
        // Few outputs (the usual case): compare with the earlier ones.
        let mut seen = BTreeSet::new();
        let few = self.outputs.len() <= 16;
        for (k, out) in self.outputs.iter().enumerate() {
            let repeated = if few {
                self.outputs[..k].contains(out)
            } else {
                !seen.insert(out)
            };
            if repeated {
                problems.push(format!("output `{out}` is declared twice"));
            }
            if self.inputs.contains(out) {
                problems.push(format!("`{out}` is both an input and an output of the node"));
            }
            if out.starts_with("params:") || out == "parameters" {
                problems.push(format!("`{out}` is a parameter and cannot be an output"));
            }
        }
        for tag in &self.tags {
            if tag.is_empty() || !tag.chars().all(|c| c.is_alphanumeric() || "_.-".contains(c)) {
                problems.push(format!(
                    "tag `{tag}` may only contain letters, digits, `_`, `.` and `-`"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(PipelineError::InvalidNode { node: name, problems });
        }
        Ok(Node {
            name,
            func_name: self.func_name,
            func: self.func,
            inputs: self.inputs,
            outputs: self.outputs,
            tags: self.tags,
            namespace: self.namespace,
            signature,
            input_request: self.input_request,
        })
    }
}

impl Node {
    /// What the node asks its caller for, when it is an `await_input` node.
    pub fn input_request(&self) -> Option<&crate::input::InputRequest> {
        self.input_request.as_deref()
    }

    /// Full name (including the namespace prefix).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name without the namespace prefix.
    pub fn short_name(&self) -> &str {
        match &self.namespace {
            Some(ns) => self
                .name
                .strip_prefix(ns.as_str())
                .and_then(|s| s.strip_prefix('.'))
                .unwrap_or(&self.name),
            None => &self.name,
        }
    }

    /// The registered or Rust name of the node's function.
    pub fn func_name(&self) -> &str {
        &self.func_name
    }

    /// The function.
    pub fn func(&self) -> &Arc<dyn NodeFn> {
        &self.func
    }

    /// Input dataset names, in argument order.
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// Output dataset names, in return order.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    /// Tags.
    pub fn tags(&self) -> &BTreeSet<String> {
        &self.tags
    }

    /// Namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The type the function expects for input `i`, when known.
    pub fn input_type(&self, i: usize) -> Option<DataType> {
        self.signature.inputs.type_at(i)
    }

    /// The type the function returns for output `i`, when known.
    pub fn output_type(&self, i: usize) -> Option<DataType> {
        self.signature.outputs.type_at(i)
    }

    /// Calls the function on loaded inputs and checks the output count.
    pub fn run(&self, inputs: Vec<Data>, cancel: &CancelToken) -> Result<Vec<Data>, NodeFnError> {
        let outputs = self.func.call(NodeCall {
            node: &self.name,
            inputs,
            outputs: self.outputs.len(),
            cancel,
        })?;
        self.check_outputs(outputs)
    }

    /// Like [`Node::run`], and returns what a cycle node did (iterations,
    /// convergence, per-iteration timings); `None` for other nodes.
    pub fn run_detailed(
        &self,
        inputs: Vec<Data>,
        cancel: &CancelToken,
    ) -> Result<(Vec<Data>, Option<crate::cycle::CycleReport>), NodeFnError> {
        let (outputs, report) = self.func.call_detailed(NodeCall {
            node: &self.name,
            inputs,
            outputs: self.outputs.len(),
            cancel,
        })?;
        Ok((self.check_outputs(outputs)?, report))
    }

    /// The cycle's declaration, when the node is a cycle
    /// ([`crate::cycle::cycle`]).
    pub fn cycle(&self) -> Option<crate::cycle::CycleInfo<'_>> {
        self.func.cycle()
    }

    fn check_outputs(&self, outputs: Vec<Data>) -> Result<Vec<Data>, NodeFnError> {
        if outputs.len() != self.outputs.len() {
            return Err(format!(
                "node `{}` returned {} values but declares {} outputs",
                self.name,
                outputs.len(),
                self.outputs.len()
            )
            .into());
        }
        Ok(outputs)
    }

    /// A copy with new identity and wiring (used by namespacing); the
    /// function and signature are kept.
    pub fn with_wiring(
        &self,
        name: String,
        inputs: Vec<String>,
        outputs: Vec<String>,
        namespace: Option<String>,
        extra_tags: &BTreeSet<String>,
    ) -> Node {
        let mut tags = self.tags.clone();
        tags.extend(extra_tags.iter().cloned());
        Node {
            name,
            func_name: self.func_name.clone(),
            func: self.func.clone(),
            inputs,
            outputs,
            tags,
            namespace,
            signature: self.signature.clone(),
            input_request: self.input_request.clone(),
        }
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("func", &self.func_name)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("tags", &self.tags)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.func_name == other.func_name
            && self.inputs == other.inputs
            && self.outputs == other.outputs
            && self.tags == other.tags
            && self.namespace == other.namespace
            && self.input_request == other.input_request
    }
}

impl Eq for Node {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct SplitParams {
        at: usize,
    }
    crate::serde_data!(SplitParams);

    #[allow(clippy::ptr_arg)] // node functions borrow the stored value, here a `Vec<i64>`
    fn split(rows: &Vec<i64>, p: &SplitParams) -> (Vec<i64>, Vec<i64>) {
        (rows[..p.at].to_vec(), rows[p.at..].to_vec())
    }

    fn checked(x: &i64) -> Result<i64, String> {
        if *x < 0 {
            Err(format!("negative: {x}"))
        } else {
            Ok(*x)
        }
    }

    #[test]
    fn typed_function_runs_with_borrowed_inputs() {
        let n = node(split, ["rows", "params:split"], ["a", "b"]).build().unwrap();
        assert_eq!(n.name(), "split([rows,params:split]) -> [a,b]");
        assert_eq!(n.func_name(), "split");
        let out = n
            .run(
                vec![
                    Data::new(vec![1i64, 2, 3]),
                    Data::new(serde_json::json!({"at": 1})),
                ],
                &CancelToken::new(),
            )
            .unwrap();
        assert_eq!(out[0].downcast_ref::<Vec<i64>>().unwrap(), &vec![1]);
        assert_eq!(out[1].downcast_ref::<Vec<i64>>().unwrap(), &vec![2, 3]);
        assert_eq!(
            n.input_type(1).unwrap().name(),
            DataType::of::<SplitParams>().name()
        );
    }

    #[test]
    fn result_errors_reach_the_caller() {
        let n = node(checked, "x", "y").name("check").build().unwrap();
        let err = n.run(vec![Data::new(-1i64)], &CancelToken::new()).unwrap_err();
        assert_eq!(err.to_string(), "negative: -1");
        let ok = n.run(vec![Data::new(4i64)], &CancelToken::new()).unwrap();
        assert_eq!(ok[0].downcast_ref::<i64>(), Some(&4));
    }

    #[test]
    fn closures_and_wrong_input_types() {
        let n = node(|x: &i64| x + 1, "x", "y").name("inc").build().unwrap();
        let err = n
            .run(vec![Data::new("a".to_string())], &CancelToken::new())
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("node `inc`") && msg.contains("String") && msg.contains("i64"),
            "{msg}"
        );
    }

    #[test]
    fn build_reports_every_problem() {
        let err = node(split, ["rows"], ["a", "a"])
            .name("bad")
            .tag("no spaces")
            .build()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("takes 2 inputs but 1"), "{msg}");
        assert!(msg.contains("output `a` is declared twice"), "{msg}");
        assert!(msg.contains("tag `no spaces`"), "{msg}");
        let err = node(|x: &i64| *x, "x", "x").name("loop").build().unwrap_err();
        assert!(err.to_string().contains("both an input and an output"));
    }

    #[test]
    fn namespace_prefixes_name() {
        let n = node(|x: &i64| *x, "x", "y")
            .name("n")
            .namespace("ns")
            .build()
            .unwrap();
        assert_eq!(n.name(), "ns.n");
        assert_eq!(n.short_name(), "n");
        assert_eq!(n.namespace(), Some("ns"));
    }
}
