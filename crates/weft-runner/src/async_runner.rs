//! The `async` runner: nodes as tasks on a Tokio runtime.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use tokio::task::JoinSet;
use tracing::Instrument;
use tracing::instrument::WithSubscriber;
use weft_pipeline::{Data, NodeFnError};

use crate::execution::{Deadline, Started};
use crate::panic::{PanicStage, panic_message};
use crate::{Execution, RunError, Runner, TimeoutScope};

/// Runs every node as soon as its inputs exist, as a task on a Tokio
/// runtime: async node functions ([`NodeFn::is_async`](weft_pipeline::NodeFn::is_async),
/// e.g. `sleep_ms` or one registered with
/// [`FunctionRegistry::register_async`](weft_pipeline::FunctionRegistry::register_async))
/// are awaited concurrently without holding a thread, sync ones run on the
/// runtime's blocking pool. At most `max_workers` nodes (default 64) are in
/// flight at once.
///
/// The runtime is the run's own (built by `execute`, shut down before it
/// returns) unless one is handed in with [`AsyncRunner::with_handle`].
/// Loading and saving datasets happen on the thread that drives the run,
/// between node calls. Semantics match the thread runner: a panicking node
/// is a failed node, after the first failure or a cancel no node starts
/// (nodes in flight finish after a failure; on a cancel their futures are
/// dropped and sync nodes' tokens cancelled), hooks and memory release are
/// the same. A node past its timeout has its future dropped (a sync node:
/// its token cancelled; see the README's limits section). Every task is
/// joined or aborted before `execute` returns.
#[derive(Clone, Debug)]
pub struct AsyncRunner {
    max_workers: usize,
    handle: Option<Handle>,
}

impl AsyncRunner {
    /// Nodes in flight at once when `max_workers` is not given.
    pub const DEFAULT_MAX_WORKERS: usize = 64;

    /// A runner that builds its own runtime for each run, with at most
    /// `max_workers` nodes in flight (default [`Self::DEFAULT_MAX_WORKERS`]).
    pub fn new(max_workers: Option<usize>) -> Self {
        AsyncRunner {
            max_workers: max_workers.unwrap_or(Self::DEFAULT_MAX_WORKERS).max(1),
            handle: None,
        }
    }

    /// A runner that runs its nodes on the caller's runtime, which must be
    /// a multi-thread one (a current-thread handle is refused). `execute`
    /// still blocks its thread until the run is over (on a helper thread
    /// when called from inside a runtime).
    pub fn with_handle(handle: Handle, max_workers: Option<usize>) -> Self {
        AsyncRunner {
            handle: Some(handle),
            ..Self::new(max_workers)
        }
    }

    /// Nodes in flight at once.
    pub fn max_workers(&self) -> usize {
        self.max_workers
    }

    fn runtime(&self) -> Result<Runtime, std::io::Error> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(self.max_workers)
            .thread_name("weft-async")
            .enable_all()
            .build()
    }
}

impl Default for AsyncRunner {
    fn default() -> Self {
        Self::new(None)
    }
}

/// What a node's task reports.
enum Outcome {
    /// The function returned.
    Done(Result<(Vec<Data>, Option<weft_pipeline::CycleReport>), NodeFnError>),
    /// The function panicked (the message).
    Panicked(String),
    /// The function was still running at its deadline.
    TimedOut(Deadline),
}

/// Counts sync node functions still running on the blocking pool, so the
/// runner knows whether the runtime can be shut down by waiting.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Running(Arc::clone(count))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How often the driver looks at the cancel flag and the run's deadline.
const TICK: Duration = Duration::from_millis(5);

impl Runner for AsyncRunner {
    fn name(&self) -> &'static str {
        "async"
    }

    fn execute(&self, exec: &Execution<'_>) -> Result<(), RunError> {
        if exec.job().pipeline.nodes().is_empty() {
            return Ok(());
        }
        if let Some(h) = &self.handle
            && h.runtime_flavor() == RuntimeFlavor::CurrentThread
        {
            return Err(RunError::Validation {
                problems: vec![
                    "the async runner needs the handle of a multi-thread Tokio runtime (a current-thread runtime cannot run nodes while its thread waits for the run)"
                        .into(),
                ],
            });
        }
        let whole = || self.execute_here(exec);
        if Handle::try_current().is_err() {
            return whole();
        }
        // Inside a runtime, blocking on (or dropping) another needs a
        // thread of its own.
        std::thread::scope(|scope| {
            match std::thread::Builder::new()
                .name("weft-async-driver".into())
                .spawn_scoped(scope, whole)
            {
                Ok(t) => t.join().unwrap_or_else(|payload| {
                    Err(exec.panic_error(0, PanicStage::Runner, panic_message(payload)))
                }),
                Err(e) => Err(exec.panic_error(
                    0,
                    PanicStage::Runner,
                    format!("could not start the async runner's driver thread: {e}"),
                )),
            }
        })
    }
}

impl AsyncRunner {
    /// Runs the whole run on this thread, which is outside any runtime.
    fn execute_here(&self, exec: &Execution<'_>) -> Result<(), RunError> {
        let blocking = Arc::new(AtomicUsize::new(0));
        let owned = match &self.handle {
            Some(_) => None,
            None => match self.runtime() {
                Ok(rt) => Some(rt),
                Err(e) => {
                    return Err(exec.panic_error(
                        0,
                        PanicStage::Runner,
                        format!("could not start the async runner's runtime: {e}"),
                    ));
                }
            },
        };
        let handle = match (&owned, &self.handle) {
            (Some(rt), _) => rt.handle().clone(),
            (None, Some(h)) => h.clone(),
            (None, None) => unreachable!("a runtime is built when none is handed in"),
        };
        let result = handle.block_on(drive(exec, self.max_workers, &blocking));
        if let Some(rt) = owned {
            let stragglers = blocking.load(Ordering::SeqCst);
            if stragglers == 0 {
                drop(rt);
            } else {
                // Sync nodes that ignored their cancelled token: the run is
                // over, their threads end when their functions return.
                tracing::warn!(
                    stragglers,
                    "sync nodes still running after a timeout or cancel; their threads end when they return"
                );
                rt.shutdown_background();
            }
        }
        result
    }
}

/// Starts node `i` (its inputs are loaded) as a task.
fn spawn_node(
    exec: &Execution<'_>,
    i: usize,
    started: &mut Started,
    tasks: &mut JoinSet<(usize, Outcome)>,
    blocking: &Arc<AtomicUsize>,
) {
    let node = &exec.job().pipeline.nodes()[i];
    let inputs = std::mem::take(&mut started.call_inputs);
    let token = started.token.clone();
    let deadline = started.deadline;
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let span = tracing::Span::current();
    if node.is_async() {
        // Building the future runs user code too: a panic there is the node's.
        let fut = match catch_unwind(AssertUnwindSafe(|| node.run_async(inputs, &token))) {
            Ok(fut) => fut,
            Err(payload) => {
                let message = panic_message(payload);
                tasks.spawn(async move { (i, Outcome::Panicked(message)) });
                return;
            }
        };
        let task = async move {
            let guarded = AssertUnwindSafe(fut).catch_unwind();
            let outcome = match deadline {
                None => guarded.await,
                Some(d) => match tokio::time::timeout_at(d.at.into(), guarded).await {
                    Ok(out) => out,
                    Err(_) => return (i, Outcome::TimedOut(d)),
                },
            };
            match outcome {
                Ok(result) => (i, Outcome::Done(result.map(|outputs| (outputs, None)))),
                Err(payload) => (i, Outcome::Panicked(panic_message(payload))),
            }
        };
        tasks.spawn(task.instrument(span).with_subscriber(dispatch));
    } else {
        let owned = node.clone();
        let running = Running::new(blocking);
        let (call_dispatch, call_span) = (dispatch.clone(), span.clone());
        let call = move || {
            let _running = running;
            tracing::dispatcher::with_default(&call_dispatch, || {
                let _entered = call_span.enter();
                catch_unwind(AssertUnwindSafe(|| owned.run_detailed(inputs, &token))).map_err(panic_message)
            })
        };
        let node_token = started.token.clone();
        let task = async move {
            let joined = tokio::task::spawn_blocking(call);
            let joined = match deadline {
                None => joined.await,
                Some(d) => match tokio::time::timeout_at(d.at.into(), joined).await {
                    Ok(out) => out,
                    Err(_) => {
                        node_token.cancel();
                        return (i, Outcome::TimedOut(d));
                    }
                },
            };
            match joined {
                Ok(Ok(result)) => (i, Outcome::Done(result)),
                Ok(Err(message)) => (i, Outcome::Panicked(message)),
                Err(e) => (i, Outcome::Panicked(format!("the blocking task failed: {e}"))),
            }
        };
        tasks.spawn(task.instrument(span).with_subscriber(dispatch));
    }
}

/// The run: ready nodes started as they become ready, results saved as
/// they come.
async fn drive(
    exec: &Execution<'_>,
    max_workers: usize,
    blocking: &Arc<AtomicUsize>,
) -> Result<(), RunError> {
    let pipeline = exec.job().pipeline;
    let n = pipeline.nodes().len();
    let parents = pipeline.parents();
    let children = pipeline.children();
    let mut waiting: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let complete = |i: usize, waiting: &mut Vec<usize>, ready: &mut BinaryHeap<Reverse<usize>>| {
        for &c in &children[i] {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.push(Reverse(c));
            }
        }
    };
    let mut tasks: JoinSet<(usize, Outcome)> = JoinSet::new();
    let mut in_flight: Vec<Option<Started>> = (0..n).map(|_| None).collect();
    let mut first_error: Option<RunError> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        while first_error.is_none() && tasks.len() < max_workers {
            let Some(Reverse(i)) = ready.pop() else { break };
            if !exec.should_run(i) {
                complete(i, &mut waiting, &mut ready);
                continue;
            }
            if let Err(e) = exec.check_cancelled() {
                first_error = Some(e);
                break;
            }
            if exec.job().pipeline.nodes()[i].command().is_some() {
                // A command node stages its files through the catalog and
                // waits for its child: it runs whole, here, one at a time.
                match exec.run_node(i) {
                    Ok(()) => complete(i, &mut waiting, &mut ready),
                    Err(e) => first_error = Some(e),
                }
                continue;
            }
            match exec.start_node(i) {
                Ok(mut started) => {
                    spawn_node(exec, i, &mut started, &mut tasks, blocking);
                    in_flight[i] = Some(started);
                }
                Err(e) => first_error = Some(e),
            }
        }
        if tasks.is_empty() {
            break;
        }
        tokio::select! {
            joined = tasks.join_next() => {
                let Some(joined) = joined else { continue };
                let (i, outcome) = match joined {
                    Ok(report) => report,
                    Err(e) => {
                        // Tasks are only aborted below, after which this loop
                        // is left; a task that failed otherwise is a bug.
                        if first_error.is_none() {
                            let i = in_flight.iter().position(Option::is_some).unwrap_or(0);
                            first_error = Some(exec.node_failed(i, exec.panic_error(i, PanicStage::Runner, format!("a node task failed: {e}"))));
                        }
                        continue;
                    }
                };
                let Some(started) = in_flight[i].take() else { continue };
                let result = match outcome {
                    Outcome::Done(Ok((outputs, cycle))) => {
                        let mut started = started;
                        started.cycle = cycle;
                        exec.finish_node(i, started, outputs)
                    }
                    Outcome::Done(Err(source)) => Err(exec.call_error(i, source)),
                    Outcome::Panicked(message) => Err(exec.node_failed(i, exec.panic_error(i, PanicStage::Run, message))),
                    Outcome::TimedOut(deadline) => Err(exec.timeout_error(i, deadline)),
                };
                match result {
                    Ok(()) => complete(i, &mut waiting, &mut ready),
                    Err(e) => {
                        if first_error.is_none() {
                            first_error = Some(e);
                        }
                    }
                }
            }
            _ = tick.tick() => {
                let stop = if exec.job().cancel.is_cancelled() {
                    exec.check_cancelled().err()
                } else {
                    exec.run_deadline().filter(|d| Instant::now() >= d.at).map(|d| {
                        // The run's time is up while nodes run: the first of
                        // them (in topological order) is named.
                        match in_flight.iter().position(Option::is_some) {
                            Some(i) => exec.timeout_error(i, d),
                            None => RunError::Timeout { node: None, limit: d.limit, scope: TimeoutScope::Run, resume_from: Vec::new() },
                        }
                    })
                };
                if let Some(e) = stop {
                    // Drop every in-flight future; sync nodes get their
                    // token cancelled and are not waited for.
                    for started in in_flight.iter().flatten() {
                        started.token.cancel();
                    }
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                    break;
                }
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
