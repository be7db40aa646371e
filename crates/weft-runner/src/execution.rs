use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use weft_catalog::Catalog;
use weft_pipeline::{CancelToken, Data, NodeFnError, Pipeline};

use crate::panic::{NodePanic, PanicStage, panic_message};
use crate::validate::{TypeCheck, validate_run};
use crate::{Hooks, RunContext, RunError, RunFailed, Runner, TimeoutScope, resume_nodes};

/// Locks a mutex even if a panicking thread poisoned it: the data it guards
/// (outputs, timings) stays consistent, and a run never panics on a lock.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything one run needs. Borrowed, so the caller owns the lifetimes
/// (a session builds a fresh catalog per run and drops it afterwards).
pub struct RunJob<'a> {
    /// What to run (already filtered).
    pub pipeline: &'a Pipeline,
    /// The run's own catalog.
    pub catalog: &'a Catalog,
    /// Lifecycle observers.
    pub hooks: &'a Hooks,
    /// Which run this is.
    pub context: &'a RunContext,
    /// Cooperative cancellation, checked before every node.
    pub cancel: &'a CancelToken,
    /// Skip nodes whose outputs are all persisted and exist.
    pub only_missing_outputs: bool,
    /// What to do when declared types do not match.
    pub type_check: TypeCheck,
    /// The run's time limit, counted from the start of execution: no node
    /// starts after it, and a node still running at it fails with a
    /// [`RunError::Timeout`]. Nodes may have their own
    /// [`timeout`](weft_pipeline::Node::timeout) too.
    pub timeout: Option<Duration>,
}

pub use weft_core::NodeTiming;

/// What a successful run produced.
#[derive(Debug, Default)]
pub struct RunOutput {
    /// Data of the pipeline's free outputs.
    pub outputs: BTreeMap<String, Data>,
    /// One entry per node that ran, in completion order.
    pub node_timings: Vec<NodeTiming>,
    /// Nodes skipped because their outputs already existed.
    pub skipped_nodes: Vec<String>,
    /// Warnings from validation (type check in `warn` mode).
    pub warnings: Vec<String>,
    /// What validating the run's connections cost.
    pub validation: weft_core::ValidationStats,
}

/// The per-run state shared by a runner's workers.
pub struct Execution<'a> {
    job: &'a RunJob<'a>,
    /// Per node: run it (false = skipped by `only_missing_outputs`).
    pub(crate) to_run: Vec<bool>,
    input_slots: Vec<Vec<usize>>,
    output_slots: Vec<Vec<usize>>,
    slot_names: Vec<&'a str>,
    releasable: Vec<bool>,
    remaining_loads: Vec<AtomicUsize>,
    is_free_output: Vec<bool>,
    outputs: Mutex<BTreeMap<String, Data>>,
    timings: Mutex<Vec<NodeTiming>>,
    completed: Vec<AtomicBool>,
    completed_count: AtomicUsize,
    failed: AtomicBool,
    run_deadline: Option<Deadline>,
}

/// How long a timed-out node has to notice its cancelled token before the
/// runner goes on without its thread.
const TIMEOUT_GRACE: Duration = Duration::from_millis(50);

/// How a runner calls a node's function once its inputs are loaded:
/// in this process ([`InProcess`]) or elsewhere (the `process` runner's
/// node hosts). Loading, saving, hooks and timings stay in
/// [`Execution::run_node_with`].
pub(crate) trait NodeCaller: Sync {
    /// Calls node `i` on `started.call_inputs`, honouring
    /// `started.deadline` and the node's token; the outputs in order.
    fn call(&self, exec: &Execution<'_>, i: usize, started: &mut Started) -> Result<Vec<Data>, RunError>;
}

/// Calls node functions on the runner's own threads.
pub(crate) struct InProcess;

impl NodeCaller for InProcess {
    fn call(&self, exec: &Execution<'_>, i: usize, started: &mut Started) -> Result<Vec<Data>, RunError> {
        exec.call_sync(i, started)
    }
}

/// When a node's function must be done, and which limit says so.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    pub(crate) at: Instant,
    pub(crate) limit: Duration,
    pub(crate) scope: TimeoutScope,
}

/// A node whose inputs are loaded, about to be (or being) called.
pub(crate) struct Started {
    /// The inputs, kept for the node hooks.
    inputs: Vec<Data>,
    /// The inputs handed to the function.
    pub(crate) call_inputs: Vec<Data>,
    start_wall: jiff::Timestamp,
    start: Instant,
    /// The node's own token: a child of the run's, cancelled on its timeout.
    pub(crate) token: CancelToken,
    /// When the function must be done.
    pub(crate) deadline: Option<Deadline>,
    /// What the node did, when it is a cycle (recorded on its timing).
    pub(crate) cycle: Option<weft_pipeline::CycleReport>,
}

impl<'a> Execution<'a> {
    pub(crate) fn plan(job: &'a RunJob<'a>) -> Result<Self, RunError> {
        let pipeline = job.pipeline;
        let nodes = pipeline.nodes();
        let mut slot_of: HashMap<&'a str, usize> = HashMap::new();
        let mut slot_names: Vec<&'a str> = Vec::new();
        let mut slot = |name: &'a str| -> usize {
            *slot_of.entry(name).or_insert_with(|| {
                slot_names.push(name);
                slot_names.len() - 1
            })
        };
        let input_slots: Vec<Vec<usize>> = nodes
            .iter()
            .map(|n| n.inputs().iter().map(|d| slot(d.as_str())).collect())
            .collect();
        let output_slots: Vec<Vec<usize>> = nodes
            .iter()
            .map(|n| n.outputs().iter().map(|d| slot(d.as_str())).collect())
            .collect();

        let to_run = if job.only_missing_outputs {
            let mut to_run = Vec::with_capacity(nodes.len());
            for node in nodes {
                let mut all_persisted = !node.outputs().is_empty();
                for out in node.outputs() {
                    if job.catalog.is_memory(out) {
                        all_persisted = false;
                        break;
                    }
                    let exists = job.catalog.exists(out).map_err(|source| RunError::Dataset {
                        node: node.name().to_string(),
                        dataset: out.clone(),
                        action: "check",
                        source: Box::new(source),
                        resume_from: Vec::new(),
                    })?;
                    if !exists {
                        all_persisted = false;
                        break;
                    }
                }
                to_run.push(!all_persisted);
            }
            to_run
        } else {
            vec![true; nodes.len()]
        };

        let free_inputs = pipeline.inputs();
        let free_outputs = pipeline.outputs();
        let mut loads = vec![0usize; slot_names.len()];
        for (i, slots) in input_slots.iter().enumerate() {
            if to_run[i] {
                for &s in slots {
                    loads[s] += 1;
                }
            }
        }
        let releasable = slot_names
            .iter()
            .map(|name| {
                !free_inputs.contains(*name)
                    && !free_outputs.contains(*name)
                    && !name.starts_with("params:")
                    && *name != "parameters"
                    && job.catalog.is_memory(name)
            })
            .collect();
        let is_free_output = slot_names.iter().map(|n| free_outputs.contains(*n)).collect();
        Ok(Execution {
            job,
            to_run,
            input_slots,
            output_slots,
            slot_names,
            releasable,
            remaining_loads: loads.into_iter().map(AtomicUsize::new).collect(),
            is_free_output,
            outputs: Mutex::new(BTreeMap::new()),
            timings: Mutex::new(Vec::with_capacity(nodes.len())),
            completed: (0..nodes.len()).map(|_| Default::default()).collect(),
            completed_count: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
            run_deadline: job.timeout.map(|limit| {
                let now = Instant::now();
                Deadline {
                    at: now
                        .checked_add(limit)
                        .unwrap_or(now + Duration::from_secs(86_400 * 365)),
                    limit,
                    scope: TimeoutScope::Run,
                }
            }),
        })
    }

    /// The run's job.
    pub fn job(&self) -> &RunJob<'a> {
        self.job
    }

    /// Whether node `i` (index into `pipeline.nodes()`) must run.
    pub fn should_run(&self, i: usize) -> bool {
        self.to_run[i]
    }

    /// Whether a node of this run failed. Runners start no new node once it
    /// is true (nodes already running finish).
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// The cancellation error if the run was cancelled, or the timeout
    /// error if the run's own timeout has passed. Runners call it before
    /// starting each node.
    pub fn check_cancelled(&self) -> Result<(), RunError> {
        if self.job.cancel.is_cancelled() {
            return Err(self.cancelled_error());
        }
        if let Some(run) = self.run_deadline
            && Instant::now() >= run.at
        {
            return Err(RunError::Timeout {
                node: None,
                limit: run.limit,
                scope: TimeoutScope::Run,
                resume_from: Vec::new(),
            });
        }
        Ok(())
    }

    /// Runs node `i`: loads its inputs, calls it, saves its outputs, releases
    /// memory data no remaining node needs. Calls the hooks around each step;
    /// `after_node_run` (and the node's completion event) come only once
    /// every output is saved.
    ///
    /// A panic anywhere in the step (the node function, a dataset, a hook)
    /// is caught here and returned as a [`RunError::Node`] whose source is a
    /// [`NodePanic`]: it never propagates to the runner. The process's panic
    /// hook still runs (by default it prints the panic).
    pub fn run_node(&self, i: usize) -> Result<(), RunError> {
        self.run_node_with(i, &InProcess)
    }

    /// [`Execution::run_node`], with `caller` calling the node's function
    /// once its inputs are loaded (the `process` runner's node hosts).
    pub(crate) fn run_node_with(&self, i: usize, caller: &dyn NodeCaller) -> Result<(), RunError> {
        let stage = Cell::new(PanicStage::Load);
        match catch_unwind(AssertUnwindSafe(|| self.run_node_inner(i, &stage, caller))) {
            Ok(result) => result,
            Err(payload) => {
                let err = self.panic_error(i, stage.get(), panic_message(payload));
                Err(self.node_failed(i, err))
            }
        }
    }

    /// The node error for a panic of node `i` (`message` is the panic's).
    pub(crate) fn panic_error(&self, i: usize, stage: PanicStage, message: String) -> RunError {
        let node = self.job.pipeline.nodes()[i].name().to_string();
        RunError::Node {
            source: Box::new(NodePanic {
                node: node.clone(),
                run_id: self.job.context.run_id.clone(),
                message,
                stage,
            }),
            node,
            resume_from: Vec::new(),
        }
    }

    fn run_node_inner(
        &self,
        i: usize,
        stage: &Cell<PanicStage>,
        caller: &dyn NodeCaller,
    ) -> Result<(), RunError> {
        if let Some(spec) = self.job.pipeline.nodes()[i].command() {
            return self.run_command_node(i, spec, stage, jiff::Timestamp::now(), Instant::now());
        }
        let mut started = self.load_inputs(i, stage)?;
        let outputs = caller.call(self, i, &mut started)?;
        self.save_outputs(i, started, outputs, stage)
    }

    /// Loads node `i`'s inputs (with the dataset hooks) and calls
    /// `before_node_run`; `stage` ends at [`PanicStage::Run`].
    fn load_inputs(&self, i: usize, stage: &Cell<PanicStage>) -> Result<Started, RunError> {
        let job = self.job;
        let node = &job.pipeline.nodes()[i];
        let hooks = job.hooks;
        let ctx = job.context;
        let start_wall = jiff::Timestamp::now();
        let start = Instant::now();
        let mut inputs = Vec::with_capacity(node.inputs().len());
        for (k, name) in node.inputs().iter().enumerate() {
            if !hooks.is_empty() {
                hooks.before_dataset_loaded(ctx, name, node);
            }
            let request = node.input_type(k);
            let data = job
                .catalog
                .load(name, request.as_ref())
                .map_err(|source| RunError::Dataset {
                    node: node.name().to_string(),
                    dataset: name.clone(),
                    action: "load",
                    source: Box::new(source),
                    resume_from: Vec::new(),
                });
            let data = match data {
                Ok(d) => d,
                Err(e) => return Err(self.node_failed(i, e)),
            };
            if !hooks.is_empty() {
                hooks.after_dataset_loaded(ctx, name, &data, node);
            }
            inputs.push(data);
        }
        stage.set(PanicStage::Run);
        if !hooks.is_empty() {
            hooks.before_node_run(ctx, node, &inputs);
        }
        let call_inputs = if hooks.is_empty() {
            std::mem::take(&mut inputs)
        } else {
            inputs.clone()
        };
        let now = Instant::now();
        Ok(Started {
            inputs,
            call_inputs,
            start_wall,
            start,
            token: job.cancel.child(),
            deadline: self.deadline_of(i, now),
            cycle: None,
        })
    }

    /// When node `i`, starting its function at `now`, must be done: the
    /// earlier of its own timeout and the run's.
    fn deadline_of(&self, i: usize, now: Instant) -> Option<Deadline> {
        let own = self.job.pipeline.nodes()[i].timeout().map(|limit| Deadline {
            at: now
                .checked_add(limit)
                .unwrap_or(now + Duration::from_secs(86_400 * 365)),
            limit,
            scope: TimeoutScope::Node,
        });
        match (own, self.run_deadline) {
            (Some(own), Some(run)) if run.at < own.at => Some(run),
            (Some(own), _) => Some(own),
            (None, run) => run,
        }
    }

    /// Calls node `i`'s function on this thread, or, when a deadline
    /// applies, on a thread of its own that this one stops waiting for at
    /// the deadline (cancelling the node's token first).
    pub(crate) fn call_sync(&self, i: usize, started: &mut Started) -> Result<Vec<Data>, RunError> {
        let node = &self.job.pipeline.nodes()[i];
        let inputs = std::mem::take(&mut started.call_inputs);
        let Some(deadline) = started.deadline else {
            return match node.run_detailed(inputs, &started.token) {
                Ok((outputs, cycle)) => {
                    started.cycle = cycle;
                    Ok(outputs)
                }
                Err(source) => Err(self.call_error(i, source)),
            };
        };
        let (tx, rx) = mpsc::channel();
        let owned = node.clone();
        let token = started.token.clone();
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let span = tracing::Span::current();
        let spawned = std::thread::Builder::new()
            .name(format!("weft-timed-{i}"))
            .spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let _entered = span.enter();
                    let result = catch_unwind(AssertUnwindSafe(|| owned.run_detailed(inputs, &token)));
                    // The runner may have stopped waiting (a timeout): then
                    // nobody wants the result.
                    let _ = tx.send(result.map_err(panic_message));
                });
            });
        let handle = match spawned {
            Ok(h) => h,
            Err(e) => {
                let err = self.call_error(
                    i,
                    format!("could not start a thread for the timed node: {e}").into(),
                );
                return Err(err);
            }
        };
        let wait = deadline.at.saturating_duration_since(Instant::now());
        let received = match rx.recv_timeout(wait) {
            Ok(result) => Some(result),
            Err(RecvTimeoutError::Timeout) => {
                started.token.cancel();
                // A node that honours its token stops within the grace
                // period and its thread is joined; one that ignores it keeps
                // its thread until it returns, and the run goes on without it.
                match rx.recv_timeout(TIMEOUT_GRACE) {
                    Ok(_) => {
                        let _ = handle.join();
                    }
                    Err(_) => tracing::warn!(
                        node = node.name(),
                        "node ignored its cancel token after its timeout; its thread runs until the function returns"
                    ),
                }
                return Err(self.timeout_error(i, deadline));
            }
            Err(RecvTimeoutError::Disconnected) => None,
        };
        // The thread sent its result (or ended without one): it is done.
        let _ = handle.join();
        match received {
            Some(Ok(result)) => match result {
                Ok((outputs, cycle)) => {
                    started.cycle = cycle;
                    Ok(outputs)
                }
                Err(source) => Err(self.call_error(i, source)),
            },
            Some(Err(message)) => Err(self.node_failed(i, self.panic_error(i, PanicStage::Run, message))),
            None => Err(self.node_failed(
                i,
                self.panic_error(
                    i,
                    PanicStage::Runner,
                    "the timed node's thread ended without a result".into(),
                ),
            )),
        }
    }

    /// The run error for a function error of node `i`: `Cancelled` when the
    /// run was cancelled (the node stopped because of it), else `Node`.
    pub(crate) fn call_error(&self, i: usize, source: NodeFnError) -> RunError {
        if self.job.cancel.is_cancelled() {
            return self.cancelled_error();
        }
        let node = self.job.pipeline.nodes()[i].name().to_string();
        self.node_failed(
            i,
            RunError::Node {
                node,
                source,
                resume_from: Vec::new(),
            },
        )
    }

    /// The error for node `i` exceeding `deadline`.
    pub(crate) fn timeout_error(&self, i: usize, deadline: Deadline) -> RunError {
        let node = self.job.pipeline.nodes()[i].name().to_string();
        self.node_failed(
            i,
            RunError::Timeout {
                node: Some(node),
                limit: deadline.limit,
                scope: deadline.scope,
                resume_from: Vec::new(),
            },
        )
    }

    fn cancelled_error(&self) -> RunError {
        RunError::Cancelled {
            completed: self.completed_count.load(Ordering::SeqCst),
            total: self.to_run.iter().filter(|r| **r).count(),
        }
    }

    /// Saves node `i`'s outputs (with the dataset hooks), releases memory
    /// data no remaining node needs, records the timing and calls
    /// `after_node_run`.
    fn save_outputs(
        &self,
        i: usize,
        started: Started,
        outputs: Vec<Data>,
        stage: &Cell<PanicStage>,
    ) -> Result<(), RunError> {
        let job = self.job;
        let node = &job.pipeline.nodes()[i];
        let hooks = job.hooks;
        let ctx = job.context;
        let Started {
            inputs,
            start_wall,
            start,
            cycle,
            ..
        } = started;
        stage.set(PanicStage::Save);
        for (k, data) in outputs.iter().enumerate() {
            self.save_output(i, k, data)?;
        }
        let rows = NodeRows {
            rows_in: count_rows(&inputs),
            rows_out: count_rows(&outputs),
        };
        self.node_done(i, start_wall, start, cycle, rows);
        stage.set(PanicStage::Run);
        if !hooks.is_empty() {
            hooks.after_node_run(ctx, node, &inputs, &outputs);
        }
        Ok(())
    }

    /// Saves output `k` of node `i` and releases or keeps its data.
    fn save_output(&self, i: usize, k: usize, data: &Data) -> Result<(), RunError> {
        let job = self.job;
        let node = &job.pipeline.nodes()[i];
        let (hooks, ctx) = (job.hooks, job.context);
        let name = &node.outputs()[k];
        if !hooks.is_empty() {
            hooks.before_dataset_saved(ctx, name, data, node);
        }
        if let Err(source) = job.catalog.save(name, data.clone()) {
            let err = RunError::Dataset {
                node: node.name().to_string(),
                dataset: name.clone(),
                action: "save",
                source: Box::new(source),
                resume_from: Vec::new(),
            };
            return Err(self.node_failed(i, err));
        }
        if !hooks.is_empty() {
            hooks.after_dataset_saved(ctx, name, data, node);
        }
        let slot = self.output_slots[i][k];
        if self.is_free_output[slot] {
            lock(&self.outputs).insert(name.clone(), data.clone());
        } else if self.releasable[slot] && self.remaining_loads[slot].load(Ordering::SeqCst) == 0 {
            job.catalog.release(name);
        }
        Ok(())
    }

    /// Node `i` has saved every output: releases the inputs no remaining
    /// node needs, records its timing and marks it completed.
    fn node_done(
        &self,
        i: usize,
        start_wall: jiff::Timestamp,
        start: Instant,
        cycle: Option<weft_pipeline::CycleReport>,
        rows: NodeRows,
    ) {
        let job = self.job;
        let node = &job.pipeline.nodes()[i];
        for &slot in &self.input_slots[i] {
            let before = self.remaining_loads[slot].fetch_sub(1, Ordering::SeqCst);
            if before == 1 && self.releasable[slot] {
                job.catalog.release(self.slot_names[slot]);
            }
        }
        let duration_ms = start.elapsed().as_secs_f64() * 1e3;
        lock(&self.timings).push(NodeTiming {
            node: node.name().to_string(),
            start: start_wall,
            duration_ms,
            peak_memory_bytes: None,
            rows_in: rows.rows_in,
            rows_out: rows.rows_out,
            cycle,
        });
        self.completed[i].store(true, Ordering::SeqCst);
        self.completed_count.fetch_add(1, Ordering::SeqCst);
        // Every output is saved: only now is the node done.
        tracing::debug!(node = node.name(), duration_ms, "node completed");
    }

    /// Runs command node `i` ([`weft_command`]): the command reads and
    /// writes its datasets' files; outputs that are memory datasets come
    /// back as values and are saved here. Dataset load hooks are not
    /// called (nothing is loaded); node hooks see no input values.
    fn run_command_node(
        &self,
        i: usize,
        spec: &weft_pipeline::command::CommandSpec,
        stage: &Cell<PanicStage>,
        start_wall: jiff::Timestamp,
        start: Instant,
    ) -> Result<(), RunError> {
        let job = self.job;
        let node = &job.pipeline.nodes()[i];
        let (hooks, ctx) = (job.hooks, job.context);
        stage.set(PanicStage::Run);
        if !hooks.is_empty() {
            hooks.before_node_run(ctx, node, &[]);
        }
        let command = weft_command::CommandJob {
            node,
            spec,
            catalog: job.catalog,
            run_id: &ctx.run_id,
            cancel: job.cancel,
        };
        let outcome = match weft_command::run_command(&command) {
            Ok(outcome) => outcome,
            Err(_) if job.cancel.is_cancelled() => {
                return Err(RunError::Cancelled {
                    completed: self.completed_count.load(Ordering::SeqCst),
                    total: self.to_run.iter().filter(|r| **r).count(),
                });
            }
            Err(source) => {
                let err = RunError::Node {
                    node: node.name().to_string(),
                    source: Box::new(source),
                    resume_from: Vec::new(),
                };
                return Err(self.node_failed(i, err));
            }
        };
        stage.set(PanicStage::Save);
        let mut values = Vec::with_capacity(outcome.memory_outputs.len());
        for (k, data) in outcome.memory_outputs {
            self.save_output(i, k, &data)?;
            values.push(data);
        }
        // The command read its inputs from files: only the rows of the
        // values it handed back are known.
        let rows = NodeRows {
            rows_in: None,
            rows_out: count_rows(&values),
        };
        self.node_done(i, start_wall, start, None, rows);
        stage.set(PanicStage::Run);
        if !hooks.is_empty() {
            hooks.after_node_run(ctx, node, &[], &values);
        }
        Ok(())
    }

    /// The async runner's first step of node `i`: its inputs loaded (a
    /// panic there is the node's error).
    pub(crate) fn start_node(&self, i: usize) -> Result<Started, RunError> {
        let stage = Cell::new(PanicStage::Load);
        match catch_unwind(AssertUnwindSafe(|| self.load_inputs(i, &stage))) {
            Ok(result) => result,
            Err(payload) => {
                let err = self.panic_error(i, stage.get(), panic_message(payload));
                Err(self.node_failed(i, err))
            }
        }
    }

    /// The async runner's last step of node `i`: its outputs saved (a
    /// panic there is the node's error).
    pub(crate) fn finish_node(&self, i: usize, started: Started, outputs: Vec<Data>) -> Result<(), RunError> {
        let stage = Cell::new(PanicStage::Save);
        match catch_unwind(AssertUnwindSafe(|| {
            self.save_outputs(i, started, outputs, &stage)
        })) {
            Ok(result) => result,
            Err(payload) => {
                let err = self.panic_error(i, stage.get(), panic_message(payload));
                Err(self.node_failed(i, err))
            }
        }
    }

    /// The run's own deadline, if it has a timeout.
    pub(crate) fn run_deadline(&self) -> Option<Deadline> {
        self.run_deadline
    }

    pub(crate) fn node_failed(&self, i: usize, err: RunError) -> RunError {
        self.failed.store(true, Ordering::SeqCst);
        let node = &self.job.pipeline.nodes()[i];
        tracing::debug!(node = node.name(), "node failed: {err}");
        if !self.job.hooks.is_empty() {
            // A hook that panics while being told of a failure must not turn
            // the failure into a propagated panic.
            let hooks = self.job.hooks;
            let ctx = self.job.context;
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| hooks.on_node_error(ctx, node, &err))) {
                tracing::error!(
                    node = node.name(),
                    "an on_node_error hook panicked: {}",
                    panic_message(payload)
                );
            }
        }
        err
    }

    fn completed_set(&self) -> Vec<bool> {
        self.completed
            .iter()
            .zip(&self.to_run)
            .map(|(c, run)| c.load(Ordering::SeqCst) || !run)
            .collect()
    }
}

/// Rows a node read and wrote ([`Data::rows`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NodeRows {
    rows_in: Option<u64>,
    rows_out: Option<u64>,
}

/// The rows of `values` whose type knows them, summed; `None` when none does.
fn count_rows(values: &[Data]) -> Option<u64> {
    values
        .iter()
        .filter_map(Data::rows)
        .fold(None, |sum, n| Some(sum.unwrap_or(0) + n))
}

/// Runs one pipeline end to end: validates the job, calls the pipeline
/// hooks, lets `runner` execute the nodes and collects the free outputs.
///
/// On failure the [`RunFailed`] keeps what the run did before it stopped:
/// the timings of every node that finished, the skipped nodes and the
/// validation warnings; its error carries the nodes to resume from.
#[allow(
    clippy::result_large_err,
    reason = "one value per run, moved once; the failure keeps the run's timings by value"
)]
pub fn run_pipeline(job: &RunJob<'_>, runner: &dyn Runner) -> Result<RunOutput, RunFailed> {
    let validation_started = Instant::now();
    let validated = validate_run(job.pipeline, job.catalog, job.type_check);
    let mut validation = weft_core::ValidationStats {
        validations: 1,
        connections: job.pipeline.nodes().iter().map(|n| n.inputs().len() as u64).sum(),
        problems: 0,
        duration_ms: validation_started.elapsed().as_secs_f64() * 1e3,
    };
    let warnings = match validated {
        Ok(warnings) => {
            validation.problems = warnings.len() as u64;
            warnings
        }
        Err(err) => {
            validation.problems = match &err {
                RunError::Validation { problems } => problems.len() as u64,
                _ => 1,
            };
            job.hooks.on_pipeline_error(job.context, job.pipeline, &err);
            return Err(RunFailed {
                validation,
                ..RunFailed::new(err)
            });
        }
    };
    for w in &warnings {
        tracing::warn!(run_id = %job.context.run_id, "{w}");
    }
    let exec = match Execution::plan(job) {
        Ok(exec) => exec,
        Err(err) => {
            job.hooks.on_pipeline_error(job.context, job.pipeline, &err);
            return Err(RunFailed {
                warnings,
                validation,
                ..RunFailed::new(err)
            });
        }
    };
    job.hooks.before_pipeline_run(job.context, job.pipeline);
    let result = runner.execute(&exec);
    let skipped_nodes = job
        .pipeline
        .nodes()
        .iter()
        .zip(&exec.to_run)
        .filter(|(_, run)| !**run)
        .map(|(n, _)| n.name().to_string())
        .collect();
    let node_timings = std::mem::take(&mut *lock(&exec.timings));
    let mut warnings = warnings;
    for t in &node_timings {
        if let Some(w) = t.cycle.as_ref().and_then(|c| c.warning(&t.node)) {
            tracing::warn!(run_id = %job.context.run_id, "{w}");
            warnings.push(w);
        }
    }
    match result {
        Ok(()) => {
            let outputs = std::mem::take(&mut *lock(&exec.outputs));
            job.hooks.after_pipeline_run(job.context, job.pipeline, &outputs);
            Ok(RunOutput {
                outputs,
                node_timings,
                skipped_nodes,
                warnings,
                validation,
            })
        }
        Err(mut err) => {
            if !matches!(err, RunError::Cancelled { .. }) {
                let done = exec.completed_set();
                err.set_resume_from(resume_nodes(job.pipeline, job.catalog, &done));
            }
            job.hooks.on_pipeline_error(job.context, job.pipeline, &err);
            Err(RunFailed {
                error: err,
                node_timings,
                skipped_nodes,
                warnings,
                validation,
            })
        }
    }
}
