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
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::data::{Data, DataType, DataValue};
use crate::error::PipelineError;

/// The error a node function returns.
pub type NodeFnError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Cooperative cancellation flag shared by a run and its nodes.
///
/// A [`child`](CancelToken::child) token is cancelled with its parent and
/// can also be cancelled alone: a runner hands each node a child of the
/// run's token, so a node that exceeds its timeout is cancelled without
/// cancelling the run.
#[derive(Clone, Default, Debug)]
pub struct CancelToken {
    own: Arc<AtomicBool>,
    parent: Option<Arc<CancelToken>>,
}

impl CancelToken {
    /// A fresh, not cancelled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// A token cancelled when this one is, or on its own.
    pub fn child(&self) -> CancelToken {
        CancelToken {
            own: Arc::new(AtomicBool::new(false)),
            parent: Some(Arc::new(self.clone())),
        }
    }

    /// Requests cancellation (of this token and its children, not its parent).
    pub fn cancel(&self) {
        self.own.store(true, Ordering::SeqCst);
    }

    /// Whether cancellation was requested, here or on a parent.
    pub fn is_cancelled(&self) -> bool {
        self.own.load(Ordering::SeqCst) || self.parent.as_ref().is_some_and(|p| p.is_cancelled())
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

/// The future an async node function returns: it owns what it needs (its
/// inputs are [`Data`], reference-counted), so a runner can spawn it.
pub type NodeFuture = Pin<Box<dyn Future<Output = Result<Vec<Data>, NodeFnError>> + Send + 'static>>;

/// A type-erased node function, as stored in the registry and called by runners.
///
/// Every function can be called both ways: [`call`](NodeFn::call) blocks
/// until it is done (an async function blocks on its future, see
/// [`block_on_node`]), [`call_async`](NodeFn::call_async) returns a future
/// (a sync function runs at once and returns a ready future). The `async`
/// runner awaits the functions that say [`is_async`](NodeFn::is_async) and
/// sends the others to a blocking pool; the other runners call `call`.
pub trait NodeFn: Send + Sync + 'static {
    /// What the function takes and returns.
    fn signature(&self) -> Signature;
    /// Runs the function, blocking until it is done.
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
    /// The command a command node runs ([`crate::command`]); runners run
    /// it on the datasets' files instead of calling [`NodeFn::call`].
    fn command(&self) -> Option<&crate::command::CommandSpec> {
        None
    }
    /// Whether the function waits rather than computes: the `async` runner
    /// awaits [`call_async`](NodeFn::call_async) without holding a thread.
    fn is_async(&self) -> bool {
        false
    }
    /// The function as a future. The default runs [`call`](NodeFn::call)
    /// now and returns its result, ready.
    fn call_async(&self, call: NodeCall<'_>) -> NodeFuture {
        Box::pin(std::future::ready(self.call(call)))
    }
}

/// Runs an async node function's future to completion on the calling
/// thread (a small current-thread Tokio runtime with timers and I/O), for
/// runners that call nodes synchronously. It stops with an error once
/// `cancel` is cancelled (the future is dropped), checking every 5 ms.
/// Called from inside a Tokio runtime, it runs on a scoped helper thread,
/// since a runtime cannot block on another inside itself.
pub fn block_on_node(fut: NodeFuture, cancel: &CancelToken, node: &str) -> Result<Vec<Data>, NodeFnError> {
    let run = move || -> Result<Vec<Data>, NodeFnError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("node `{node}`: could not start a runtime for its async function: {e}"))?;
        rt.block_on(async {
            tokio::select! {
                out = fut => out,
                () = cancelled(cancel) => Err(format!("node `{node}` was cancelled").into()),
            }
        })
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return run();
    }
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("weft-block-on".into())
            .spawn_scoped(scope, run)
            .map_err(|e| format!("node `{node}`: could not start a thread for its async function: {e}"))?;
        handle
            .join()
            .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
    })
}

/// Resolves once `cancel` is cancelled (checked every 5 ms).
pub async fn cancelled(cancel: &CancelToken) {
    while !cancel.is_cancelled() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
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

/// Converts an async function or closure into an async [`NodeFn`].
///
/// The function takes its inputs as `Arc<T>` (clones of the loaded
/// [`Data`], no copy) so the future it returns can own them, and the
/// future's output is what a sync node function returns (a value, a tuple,
/// `()` or a `Result`). `Args` is a tuple of the argument types; it only
/// guides inference.
pub trait IntoAsyncNodeFn<Args, Fut>: Send + Sync + Sized + 'static {
    /// The erased function.
    fn into_async_node_fn(self) -> Arc<dyn NodeFn>;
    /// A readable name for the function (its Rust path's last segment).
    fn func_name(&self) -> String {
        let full = std::any::type_name::<Self>();
        let trimmed = full.split('<').next().unwrap_or(full);
        trimmed.rsplit("::").next().unwrap_or(trimmed).to_string()
    }
}

/// An async function as a [`NodeFn`] (see [`IntoAsyncNodeFn`]).
///
/// ```
/// use std::sync::Arc;
/// use weft_pipeline::{CancelToken, Data, async_fn};
/// let f = async_fn(|x: Arc<i64>| async move { *x + 1 });
/// assert!(f.is_async());
/// ```
pub fn async_fn<Args, Fut, F: IntoAsyncNodeFn<Args, Fut>>(f: F) -> Arc<dyn NodeFn> {
    f.into_async_node_fn()
}

/// Starts building a node from an async function (see [`IntoAsyncNodeFn`]).
pub fn node_async<Args, Fut, F: IntoAsyncNodeFn<Args, Fut>>(
    func: F,
    inputs: impl IntoNames,
    outputs: impl IntoNames,
) -> NodeBuilder {
    let func_name = func.func_name();
    NodeBuilder::from_dyn(func_name, func.into_async_node_fn(), inputs, outputs)
}

struct AsyncTypedFn<F, Args, Fut> {
    f: F,
    _marker: PhantomData<fn(Args) -> Fut>,
}

macro_rules! async_typed_fn {
    ($($a:ident),*) => {
        impl<Func, Fut, $($a),*> NodeFn for AsyncTypedFn<Func, ($($a,)*), Fut>
        where
            Func: Fn($(Arc<$a>),*) -> Fut + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: IntoOutputs,
            $($a: DataValue,)*
        {
            fn signature(&self) -> Signature {
                Signature {
                    inputs: Ports::Fixed(vec![$(Some(DataType::of::<$a>())),*]),
                    outputs: Ports::Fixed(<Fut::Output as IntoOutputs>::output_types()),
                }
            }
            fn is_async(&self) -> bool {
                true
            }
            fn call(&self, call: NodeCall<'_>) -> Result<Vec<Data>, NodeFnError> {
                let (cancel, node) = (call.cancel, call.node);
                block_on_node(self.call_async(call), cancel, node)
            }
            #[allow(non_snake_case, unused_mut, unused_variables, unused_assignments)]
            fn call_async(&self, call: NodeCall<'_>) -> NodeFuture {
                let mut inputs = call.inputs.iter();
                let mut index = 0usize;
                $(
                    let $a = match inputs.next() {
                        Some(data) => match input_as::<$a>(call.node, index, data) {
                            Ok(v) => v,
                            Err(e) => return Box::pin(std::future::ready(Err(e))),
                        },
                        None => {
                            let e: NodeFnError = format!("node `{}`: missing input #{index}", call.node).into();
                            return Box::pin(std::future::ready(Err(e)));
                        }
                    };
                    index += 1;
                )*
                let fut = (self.f)($($a),*);
                Box::pin(async move { fut.await.into_outputs() })
            }
        }

        impl<Func, Fut, $($a),*> IntoAsyncNodeFn<($($a,)*), Fut> for Func
        where
            Func: Fn($(Arc<$a>),*) -> Fut + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: IntoOutputs,
            $($a: DataValue,)*
        {
            fn into_async_node_fn(self) -> Arc<dyn NodeFn> {
                Arc::new(AsyncTypedFn::<Func, ($($a,)*), Fut> { f: self, _marker: PhantomData })
            }
        }
    };
}
async_typed_fn!();
async_typed_fn!(A1);
async_typed_fn!(A1, A2);
async_typed_fn!(A1, A2, A3);
async_typed_fn!(A1, A2, A3, A4);
async_typed_fn!(A1, A2, A3, A4, A5);
async_typed_fn!(A1, A2, A3, A4, A5, A6);

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

/// Resource limits of one node's function, beside its
/// [`timeout`](Node::timeout). Only a runner that runs the function in a
/// process of its own can enforce them (the `process` runner, with
/// `setrlimit`); the others report them as unenforced when a run is
/// prepared. Exceeding one fails the node with an error that names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeLimits {
    /// Most bytes of memory the function may allocate while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Most CPU time the function may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_time: Option<Duration>,
}

impl NodeLimits {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        self.memory_bytes.is_none() && self.cpu_time.is_none()
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
    pub(crate) timeout: Option<Duration>,
    pub(crate) limits: NodeLimits,
    pub(crate) confirms: Vec<String>,
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
        timeout: None,
        limits: NodeLimits::default(),
        confirms: Vec::new(),
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
    timeout: Option<Duration>,
    limits: NodeLimits,
    confirms: Vec<String>,
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
            timeout: None,
            limits: NodeLimits::default(),
            confirms: Vec::new(),
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

    /// Limits how long the node's function may run (see [`Node::timeout`]).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Names incremental datasets whose checkpoint advances to the newest
    /// partition the run loaded, once the run succeeds (Kedro's
    /// `node(..., confirms=...)`; see [`Node::confirms`]).
    pub fn confirms(mut self, datasets: impl IntoNames) -> Self {
        for name in datasets.into_names() {
            if !self.confirms.contains(&name) {
                self.confirms.push(name);
            }
        }
        self
    }

    /// Limits the memory the node may allocate while it runs, in bytes
    /// (enforced by the `process` runner; see [`NodeLimits`]).
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.limits.memory_bytes = Some(bytes);
        self
    }

    /// Limits the CPU time the node's function may use (enforced by the
    /// `process` runner; see [`NodeLimits`]).
    pub fn cpu_limit(mut self, limit: Duration) -> Self {
        self.limits.cpu_time = Some(limit);
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
        for ds in &self.confirms {
            if ds.trim().is_empty() {
                problems.push("`confirms` names an empty dataset".into());
            }
        }
        if self.limits.memory_bytes == Some(0) {
            problems.push("`memory_limit` must be more than zero".into());
        }
        if self.limits.cpu_time.is_some_and(|t| t.is_zero()) {
            problems.push("`cpu_limit` must be more than zero".into());
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
            timeout: self.timeout,
            limits: self.limits,
            confirms: self.confirms,
        })
    }
}

impl Node {
    /// What the node asks its caller for, when it is an `await_input` node.
    pub fn input_request(&self) -> Option<&crate::input::InputRequest> {
        self.input_request.as_deref()
    }

    /// What the node runs, when it is a command node ([`crate::command`]).
    pub fn command(&self) -> Option<&crate::command::CommandSpec> {
        self.func.command()
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

    /// How long the node's function may run, if limited: runners fail the
    /// node with a timeout error once it is exceeded (loading and saving
    /// are not counted).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// This node with its timeout set (or removed).
    pub fn with_timeout(mut self, limit: Option<Duration>) -> Node {
        self.timeout = limit;
        self
    }

    /// The incremental datasets this node confirms: when the run succeeds,
    /// each one's checkpoint advances to the newest partition the run
    /// loaded (a failed run moves nothing). Kedro confirms when the node
    /// finishes; weft waits for the whole run.
    pub fn confirms(&self) -> &[String] {
        &self.confirms
    }

    /// This node with its confirmed datasets replaced.
    pub fn with_confirms(mut self, datasets: Vec<String>) -> Node {
        self.confirms = datasets;
        self
    }

    /// The memory and CPU-time limits of the node's function.
    pub fn limits(&self) -> NodeLimits {
        self.limits
    }

    /// This node with its limits replaced.
    pub fn with_limits(mut self, limits: NodeLimits) -> Node {
        self.limits = limits;
        self
    }

    /// Whether the node's function is async ([`NodeFn::is_async`]).
    pub fn is_async(&self) -> bool {
        self.func.is_async()
    }

    /// The function as a future on loaded inputs, checking the output
    /// count when it resolves; `cancel` is the node's token (the future
    /// may clone it).
    pub fn run_async(&self, inputs: Vec<Data>, cancel: &CancelToken) -> NodeFuture {
        let fut = self.func.call_async(NodeCall {
            node: &self.name,
            inputs,
            outputs: self.outputs.len(),
            cancel,
        });
        let (name, declared) = (self.name.clone(), self.outputs.len());
        Box::pin(async move {
            let outputs = fut.await?;
            if outputs.len() != declared {
                return Err(format!(
                    "node `{name}` returned {} values but declares {declared} outputs",
                    outputs.len()
                )
                .into());
            }
            Ok(outputs)
        })
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
            timeout: self.timeout,
            limits: self.limits,
            confirms: self.confirms.clone(),
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
            .field("timeout", &self.timeout)
            .field("limits", &self.limits)
            .field("confirms", &self.confirms)
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
            && self.timeout == other.timeout
            && self.limits == other.limits
            && self.confirms == other.confirms
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
    fn child_tokens_follow_their_parent_but_not_the_reverse() {
        let run = CancelToken::new();
        let a = run.child();
        let b = run.child();
        a.cancel();
        assert!(a.is_cancelled() && !b.is_cancelled() && !run.is_cancelled());
        run.cancel();
        assert!(b.is_cancelled() && b.child().is_cancelled());
    }

    #[test]
    fn async_functions_run_from_sync_callers_and_inside_a_runtime() {
        let n = node_async(
            |x: Arc<i64>, y: Arc<String>| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                format!("{y}{x}")
            },
            ["x", "y"],
            "z",
        )
        .name("fmt")
        .build()
        .unwrap();
        assert!(n.is_async());
        assert_eq!(n.input_type(0).unwrap().name(), DataType::of::<i64>().name());
        let inputs = || vec![Data::new(4i64), Data::new("n".to_string())];
        let out = n.run(inputs(), &CancelToken::new()).unwrap();
        assert_eq!(out[0].downcast_ref::<String>().unwrap(), "n4");
        // Inside a runtime, `run` blocks on a helper thread instead of panicking.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let out = rt
            .block_on(async { n.run(inputs(), &CancelToken::new()) })
            .unwrap();
        assert_eq!(out[0].downcast_ref::<String>().unwrap(), "n4");
        let out = rt.block_on(n.run_async(inputs(), &CancelToken::new())).unwrap();
        assert_eq!(out[0].downcast_ref::<String>().unwrap(), "n4");
        // A wrong input type is the node's error, from either call.
        let err = n
            .run(
                vec![Data::new("x".to_string()), Data::new(1i64)],
                &CancelToken::new(),
            )
            .unwrap_err();
        assert!(err.to_string().contains("node `fmt`: input #0"), "{err}");
    }

    #[test]
    fn a_cancelled_token_stops_a_blocked_on_async_function() {
        let n = node_async(
            |_: Arc<i64>| async move { tokio::time::sleep(Duration::from_secs(600)).await },
            "x",
            (),
        )
        .name("forever")
        .build()
        .unwrap();
        let cancel = CancelToken::new();
        let c = cancel.clone();
        let err = std::thread::scope(|s| {
            let h = s.spawn(|| n.run(vec![Data::new(1i64)], &cancel));
            std::thread::sleep(Duration::from_millis(20));
            c.cancel();
            h.join().unwrap()
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "node `forever` was cancelled");
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

    #[test]
    fn confirms_are_kept_deduplicated_and_renamed_by_namespacing() {
        let n = node(|x: &i64| *x, "events", "y")
            .name("n")
            .confirms(["events", "events", "other"])
            .build()
            .unwrap();
        assert_eq!(n.confirms(), ["events", "other"]);
        let tagged = crate::Pipeline::new(vec![n.clone()]).unwrap().tag(&["t"]);
        assert_eq!(tagged.node("n").unwrap().confirms(), ["events", "other"]);
        let spaced = crate::Pipeline::new(vec![n])
            .unwrap()
            .namespaced(&crate::NamespaceOptions::namespace("ns"))
            .unwrap();
        let inner = spaced.node("ns.n").unwrap();
        assert_eq!(inner.inputs(), ["ns.events"]);
        assert_eq!(inner.confirms(), ["ns.events", "ns.other"]);
        let err = node(|x: &i64| *x, "x", "y").confirms("").build().unwrap_err();
        assert!(
            err.to_string().contains("`confirms` names an empty dataset"),
            "{err}"
        );
    }
}
