//! `ServiceSession`: many isolated runs of one project in one session.
//!
//! Concurrency and isolation are properties of the session: at most
//! `max_workers` runs execute at once, whoever starts them (`run` from
//! several threads, `run_all`, `run_sequential`), and when that number is
//! above one every run writes its non-versioned persisted outputs
//! run-scoped (see [`Isolation`]), so no run can read another's files.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use weft_core::{RunResult, RunStatus};
use weft_pipeline::{CancelToken, Pipeline};

use crate::core::{SessionCore, SessionOptions};
use crate::prepare::{Overlap, PreparedRun};
use crate::{Isolation, RunConfig, RunSpec, SessionError};

/// What a batch does when a run fails.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Stop the batch at the first failed run (runs not started are
    /// `skipped`, running ones are cancelled). When false, every run runs.
    pub fail_fast: bool,
    /// Re-run a failed run up to this many times before it counts as failed.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further retry.
    pub retry_backoff: Duration,
    /// Delete the versioned outputs a failed run wrote.
    pub cleanup_on_error: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            fail_fast: true,
            retries: 0,
            retry_backoff: Duration::from_millis(100),
            cleanup_on_error: false,
        }
    }
}

impl Policy {
    /// Fail-fast (the default).
    pub fn fail_fast() -> Self {
        Self::default()
    }

    /// Continue on error: run everything, report every failure.
    pub fn continue_on_error() -> Self {
        Policy {
            fail_fast: false,
            ..Self::default()
        }
    }

    /// Retry each failed run up to `n` times (then fail-fast).
    pub fn retry(n: u32) -> Self {
        Policy {
            retries: n,
            ..Self::default()
        }
    }
}

impl FromStr for Policy {
    type Err = String;
    /// `fail-fast`, `continue`, or `retry:N` (retry failed runs N times, then fail fast).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fail-fast" | "fail_fast" => Ok(Policy::fail_fast()),
            "continue" | "continue-on-error" => Ok(Policy::continue_on_error()),
            other => match other.strip_prefix("retry:").map(str::parse::<u32>) {
                Some(Ok(n)) => Ok(Policy::retry(n)),
                _ => Err(format!(
                    "unknown policy `{other}`; expected fail-fast, continue or retry:N"
                )),
            },
        }
    }
}

/// How `close` treats runs still in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseMode {
    /// Wait for them to finish.
    Wait,
    /// Cancel them (cooperatively, between nodes), then wait.
    Cancel,
}

/// Options of a service session.
#[derive(Clone, Default)]
pub struct ServiceOptions {
    /// Options shared with `Session`.
    pub session: SessionOptions,
    /// Most runs at once, whoever starts them (default: the machine's
    /// parallelism). Above one, runs write non-versioned outputs run-scoped.
    pub max_workers: Option<usize>,
    /// How many finished runs `results()` keeps in memory (default 1,000);
    /// older ones are only in the run store, so memory stays flat.
    pub history_limit: Option<usize>,
}

/// The session's mutable bookkeeping, behind one lock.
#[derive(Default)]
struct State {
    closed: bool,
    /// Runs holding a worker slot, with their cancel tokens.
    in_flight: HashMap<String, CancelToken>,
    /// Batches still running (close waits for them to record every run).
    active_batches: usize,
}

/// Many runs of one project in one session: sequential or concurrent, each
/// with its own context, catalog, parameters and env.
///
/// All methods take `&self`: share it between threads with `Arc`.
pub struct ServiceSession {
    core: SessionCore,
    max_workers: usize,
    overlap: Overlap,
    results: Mutex<VecDeque<RunResult>>,
    history_limit: usize,
    state: Mutex<State>,
    changed: Condvar,
}

/// The progress callback: `(completed, total)`.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// A worker slot held by one run; released (and waiters woken) on drop,
/// whatever way the run ends.
struct Slot<'a> {
    session: &'a ServiceSession,
    run_id: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut state = self.session.lock_state();
        state.in_flight.remove(&self.run_id);
        drop(state);
        self.session.changed.notify_all();
    }
}

/// Counts a batch as active until dropped.
struct BatchGuard<'a>(&'a ServiceSession);

impl Drop for BatchGuard<'_> {
    fn drop(&mut self) {
        self.0.lock_state().active_batches -= 1;
        self.0.changed.notify_all();
    }
}

/// Why fail-fast skipped a run.
const FAIL_FAST_SKIP: &str = "not started: an earlier run of the batch failed (fail-fast)";

/// One batch's fail-fast state: its own stop flag and the tokens of its own
/// running runs, so a failure never cancels another batch's runs.
#[derive(Default)]
struct BatchControl {
    stop: AtomicBool,
    running: Mutex<Vec<CancelToken>>,
}

impl BatchControl {
    fn stop_all(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.running.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            t.cancel();
        }
    }
}

impl ServiceSession {
    /// Opens the project for many runs.
    pub fn create(project_dir: impl AsRef<Path>, options: ServiceOptions) -> Result<Self, SessionError> {
        let default = std::thread::available_parallelism().map_or(2, |n| n.get());
        let max_workers = options.max_workers.unwrap_or(default).max(1);
        Ok(ServiceSession {
            core: SessionCore::open(project_dir.as_ref(), options.session, "service")?,
            max_workers,
            overlap: if max_workers > 1 {
                Overlap::Possible
            } else {
                Overlap::Never
            },
            results: Mutex::new(VecDeque::new()),
            history_limit: options.history_limit.unwrap_or(1000),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        })
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session's id.
    pub fn id(&self) -> &str {
        &self.core.id
    }

    /// Connection validation of this session's runs so far: runs validated,
    /// node inputs checked, problems found and the time it took, summed
    /// (each run's own figure is its result's `validation`).
    pub fn validation_metrics(&self) -> weft_core::ValidationStats {
        self.core.validation_metrics()
    }

    /// Starts the sums of [`validation_metrics`](Self::validation_metrics) again.
    pub fn reset_validation_metrics(&self) {
        self.core.reset_validation_metrics();
    }

    /// Most concurrent runs.
    pub fn max_workers(&self) -> usize {
        self.max_workers
    }

    /// Whether runs of this session write non-versioned outputs run-scoped.
    pub fn isolates_outputs(&self) -> bool {
        self.overlap == Overlap::Possible
    }

    /// The project's pipelines.
    pub fn pipelines(&self) -> &BTreeMap<String, Pipeline> {
        self.core.pipelines()
    }

    /// The datasets a recorded run of this project saved, found again
    /// through the run's own catalog (its env and runtime parameters):
    /// versioned ones pinned to the versions it saved, run-scoped ones under
    /// its own folder (see [`SavedDataset`]).
    pub fn saved_datasets(
        &self,
        record: &weft_store::RunRecord,
    ) -> Result<Vec<crate::SavedDataset>, SessionError> {
        self.core.saved_datasets(record)
    }

    /// How many loaded configurations the session holds (bounded).
    pub fn cached_configs(&self) -> usize {
        self.core.cached_configs()
    }

    /// Validates a run configuration (everything `prepare` checks) and gives
    /// it a fresh run id. Nothing runs.
    pub fn create_run_config(&self, mut template: RunConfig) -> Result<RunConfig, SessionError> {
        let prepared = self.prepare(&template)?;
        template.run_id = Some(prepared.spec.run_id().to_string());
        Ok(template)
    }

    /// The project's parameters for `env` (default: the session's) with the
    /// session's runtime parameters merged in: what every run starts from.
    pub fn parameters(&self, env: Option<&str>) -> Result<serde_json::Value, SessionError> {
        let env = env.unwrap_or(&self.core.env);
        crate::core::check_env(&self.core.conf_dir, env).map_err(|m| SessionError::field("env", m))?;
        Ok(self
            .core
            .loaded_config(env, &self.core.runtime_params)?
            .parameters
            .clone())
    }

    /// Resolves a configuration into a prepared run (every problem at
    /// once); nothing runs and nothing is recorded.
    pub fn prepare(&self, config: &RunConfig) -> Result<PreparedRun, SessionError> {
        self.ensure_open()?;
        self.core.prepare(config, 0, self.overlap)
    }

    /// Prepares a resolved spec (queued earlier, or received from another
    /// process) under its own run id.
    pub fn prepare_spec(&self, spec: &RunSpec) -> Result<PreparedRun, SessionError> {
        self.ensure_open()?;
        self.core.prepare_spec(spec)
    }

    fn ensure_open(&self) -> Result<(), SessionError> {
        if self.lock_state().closed {
            return Err(SessionError::Session(format!(
                "service session {} is closed",
                self.core.id
            )));
        }
        Ok(())
    }

    /// Runs one configuration (after preparing it). A failed run is a
    /// result with status `failed`, not an error; errors are for invalid
    /// configurations and closed sessions.
    pub fn run(&self, config: RunConfig) -> Result<RunResult, SessionError> {
        let prepared = self.prepare(&config)?;
        self.run_prepared(prepared)
    }

    /// Runs a prepared run: records it as queued, waits for a worker slot,
    /// runs it.
    pub fn run_prepared(&self, prepared: PreparedRun) -> Result<RunResult, SessionError> {
        self.run_prepared_with(prepared, &CancelToken::new())
    }

    /// [`ServiceSession::run_prepared`] with the caller's cancel token: once
    /// cancelled (even before the run got a worker slot), the run stops
    /// between nodes, or does not start, and ends `cancelled`.
    pub fn run_prepared_with(
        &self,
        prepared: PreparedRun,
        cancel: &CancelToken,
    ) -> Result<RunResult, SessionError> {
        self.core.recorder.planned(&[&prepared.spec])?;
        let token = cancel.clone();
        let result = match self.acquire(prepared.spec.run_id(), &token) {
            Ok(slot) => {
                let r = self.run_with_policy(prepared, 1, &Policy::default(), &token, None);
                drop(slot);
                r
            }
            Err(reason) => self.core.not_started(&prepared.spec, RunStatus::Skipped, &reason),
        };
        self.core.recorder.flush();
        self.core
            .hooks
            .after_all_runs(&self.core.id, std::slice::from_ref(&result));
        Ok(result)
    }

    /// Turns a run that paused for input into a failed one, in the result
    /// and in the store: for callers that will not answer (a sweep on the
    /// command line). Other results are left as they are.
    pub fn fail_paused(&self, result: &mut RunResult) {
        if result.status != RunStatus::InputRequired {
            return;
        }
        let message = SessionCore::fail_paused_result(result, |run_id, node| {
            format!(
                "run {run_id} waits for input at node `{node}` and nobody will answer it; pass the answer with --input {node}=FILE"
            )
        });
        self.core.recorder.fail_paused(result, &message);
        self.core.recorder.flush();
    }

    /// Waits for a worker slot; refuses when the session closes meanwhile or
    /// the run id is already running.
    fn acquire(&self, run_id: &str, token: &CancelToken) -> Result<Slot<'_>, String> {
        let mut state = self.lock_state();
        loop {
            if state.closed {
                return Err(format!("not started: session {} was closed", self.core.id));
            }
            if state.in_flight.contains_key(run_id) {
                return Err(format!("not started: run `{run_id}` is already running"));
            }
            if state.in_flight.len() < self.max_workers {
                state.in_flight.insert(run_id.to_string(), token.clone());
                return Ok(Slot {
                    session: self,
                    run_id: run_id.to_string(),
                });
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Runs every configuration concurrently, at most `max_workers` at once.
    /// Results come back in the order of `configs`.
    pub fn run_all(
        &self,
        configs: Vec<RunConfig>,
        policy: &Policy,
        progress: Option<Progress<'_>>,
    ) -> Result<Vec<RunResult>, SessionError> {
        self.batch(configs, policy, progress, self.max_workers)
    }

    /// Runs every configuration one after another.
    pub fn run_sequential(
        &self,
        configs: Vec<RunConfig>,
        policy: &Policy,
        progress: Option<Progress<'_>>,
    ) -> Result<Vec<RunResult>, SessionError> {
        self.batch(configs, policy, progress, 1)
    }

    fn batch(
        &self,
        configs: Vec<RunConfig>,
        policy: &Policy,
        progress: Option<Progress<'_>>,
        workers: usize,
    ) -> Result<Vec<RunResult>, SessionError> {
        self.ensure_open()?;
        let total = configs.len();
        let mut problems = Vec::new();
        let mut prepared = Vec::with_capacity(total);
        let mut seen = BTreeSet::new();
        for (i, cfg) in configs.iter().enumerate() {
            match self.core.prepare(cfg, i, self.overlap) {
                Ok(p) => {
                    if !seen.insert(p.spec.run_id().to_string()) {
                        problems.push((
                            i,
                            SessionError::field(
                                "run_id",
                                format!("run id `{}` appears twice in the batch", p.spec.run_id()),
                            ),
                        ));
                    }
                    prepared.push(p);
                }
                Err(e) => problems.push((i, e)),
            }
        }
        if !problems.is_empty() {
            return Err(SessionError::InvalidBatch { problems });
        }
        warn_mixed_transcodings(&mut prepared);
        let specs: Vec<RunSpec> = prepared.iter().map(|p| p.spec.clone()).collect();
        self.core.recorder.planned(&specs.iter().collect::<Vec<_>>())?;
        {
            let mut state = self.lock_state();
            if state.closed {
                drop(state);
                return Err(SessionError::Session(format!(
                    "service session {} is closed",
                    self.core.id
                )));
            }
            state.active_batches += 1;
        }
        let _batch = BatchGuard(self);
        let control = BatchControl::default();
        let queue: Vec<Mutex<Option<PreparedRun>>> =
            prepared.into_iter().map(|p| Mutex::new(Some(p))).collect();
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<RunResult>>> = (0..total).map(|_| Mutex::new(None)).collect();
        let worker = || {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    break;
                }
                let taken = queue[i].lock().unwrap_or_else(|p| p.into_inner()).take();
                let Some(run) = taken else { continue };
                let result = self.batch_run(run, total, policy, &control);
                *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                let completed = done.fetch_add(1, Ordering::SeqCst) + 1;
                if let Some(p) = progress {
                    p(completed, total);
                }
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..workers.min(total) {
                scope.spawn(worker);
            }
            if total > 0 {
                worker();
            }
        });
        let results: Vec<RunResult> = slots
            .into_iter()
            .zip(&specs)
            .map(|(slot, spec)| {
                slot.into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .unwrap_or_else(|| {
                        // Only reachable if a worker thread died outside any run.
                        self.core
                            .not_started(spec, RunStatus::Skipped, "not started: its worker stopped")
                    })
            })
            .collect();
        self.core.recorder.flush();
        self.core.hooks.after_all_runs(&self.core.id, &results);
        Ok(results)
    }

    /// One run of a batch: skipped when the batch stopped or the session
    /// closed, else run with the policy.
    fn batch_run(
        &self,
        run: PreparedRun,
        total: usize,
        policy: &Policy,
        control: &BatchControl,
    ) -> RunResult {
        if control.stop.load(Ordering::SeqCst) {
            return self
                .core
                .not_started(&run.spec, RunStatus::Skipped, FAIL_FAST_SKIP);
        }
        let token = CancelToken::new();
        let slot = match self.acquire(run.spec.run_id(), &token) {
            Ok(slot) => slot,
            Err(reason) => return self.core.not_started(&run.spec, RunStatus::Skipped, &reason),
        };
        // Fail-fast may have tripped while this run waited for its slot.
        if control.stop.load(Ordering::SeqCst) {
            drop(slot);
            return self
                .core
                .not_started(&run.spec, RunStatus::Skipped, FAIL_FAST_SKIP);
        }
        control
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(token.clone());
        let result = self.run_with_policy(run, total, policy, &token, Some(control));
        drop(slot);
        if result.status == RunStatus::Failed && policy.fail_fast {
            control.stop_all();
        }
        result
    }

    /// One run with the policy's retries; the caller holds its slot.
    fn run_with_policy(
        &self,
        mut run: PreparedRun,
        total: usize,
        policy: &Policy,
        token: &CancelToken,
        control: Option<&BatchControl>,
    ) -> RunResult {
        let spec = run.spec.clone();
        let stopped = || control.is_some_and(|c| c.stop.load(Ordering::SeqCst)) || token.is_cancelled();
        let mut attempt = 1;
        let mut result = loop {
            self.core.recorder.started(&spec, attempt);
            let mut r = self.core.execute(run, total, attempt, token);
            if r.status != RunStatus::Failed || attempt > policy.retries || stopped() {
                break r;
            }
            // Same run id next time: remove what this attempt saved first.
            self.core.remove_saved_versions(&mut r);
            let wait = policy.retry_backoff * 2u32.saturating_pow(attempt - 1);
            tracing::info!(run_id = spec.run_id(), attempt, ?wait, "retrying failed run");
            let deadline = std::time::Instant::now() + wait;
            while std::time::Instant::now() < deadline && !token.is_cancelled() {
                std::thread::sleep(Duration::from_millis(5).min(wait));
            }
            match self.core.prepare_spec(&spec) {
                Ok(again) => run = again,
                Err(e) => {
                    r.error = Some(weft_core::RunFailure::from_error("validation", None, &e));
                    break r;
                }
            }
            attempt += 1;
        };
        if result.status == RunStatus::InputRequired {
            // Answered, it runs again under the same run id and saves anew.
            self.core.remove_saved_versions(&mut result);
        } else if result.status != RunStatus::Succeeded && policy.cleanup_on_error {
            result.cleaned_up = self.core.remove_saved_versions(&mut result);
        }
        if let Isolation::RunScoped { .. } = spec.isolation
            && !result.scoped_outputs.is_empty()
        {
            tracing::info!(
                run_id = spec.run_id(),
                "non-versioned outputs written run-scoped: {:?}",
                result.scoped_outputs
            );
        }
        self.core.finish(&spec, &result, total);
        {
            let mut history = self.results.lock().unwrap_or_else(|p| p.into_inner());
            if self.history_limit > 0 {
                if history.len() == self.history_limit {
                    history.pop_front();
                }
                history.push_back(result.without_outputs());
            }
        }
        result
    }

    /// The session's most recent runs (up to `history_limit`), in completion
    /// order. Output data is not kept here (only in the results handed to the
    /// caller), and older runs live only in the store, so a long-lived
    /// session's memory stays flat.
    pub fn results(&self) -> Vec<RunResult> {
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Cancels one in-flight run; false if it is not running.
    pub fn cancel(&self, run_id: &str) -> bool {
        match self.lock_state().in_flight.get(run_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Closes the session: no run starts afterwards (runs of running
    /// batches that have not started are recorded `skipped`), in-flight
    /// runs finish (`Wait`) or are cancelled between nodes (`Cancel`), and
    /// the close is recorded once every batch has recorded all its runs.
    /// Idempotent; safe to call from another thread (a signal handler's).
    pub fn close(&self, mode: CloseMode) {
        let mut state = self.lock_state();
        let first = !state.closed;
        state.closed = true;
        if mode == CloseMode::Cancel {
            for token in state.in_flight.values() {
                token.cancel();
            }
        }
        self.changed.notify_all();
        while !state.in_flight.is_empty() || state.active_batches > 0 {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        drop(state);
        if first {
            self.core.close();
        }
    }
}

/// Runs of one batch that use different transcodings of one dataset
/// (`cars@csv` in one, `cars@parquet` in another) read and write one
/// logical dataset through different files: each such run gets a warning.
fn warn_mixed_transcodings(runs: &mut [PreparedRun]) {
    let used: Vec<BTreeSet<(String, String)>> = runs
        .iter()
        .map(|r| {
            let p = r.pipeline();
            p.all_inputs()
                .into_iter()
                .chain(p.all_outputs())
                .filter_map(|name| name.split_once('@').map(|(b, f)| (b.to_string(), f.to_string())))
                .collect()
        })
        .collect();
    let mut formats: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for set in &used {
        for (base, fmt) in set {
            formats.entry(base).or_default().insert(fmt);
        }
    }
    for (run, set) in runs.iter_mut().zip(&used) {
        let mut seen = BTreeSet::new();
        for (base, _) in set {
            let fmts = &formats[base.as_str()];
            if fmts.len() > 1 && seen.insert(base) {
                let listed: Vec<String> = fmts.iter().map(|f| format!("{base}@{f}")).collect();
                let warning = format!(
                    "runs of this batch use different transcodings of dataset `{base}` ({}): they read and write one logical dataset through different files",
                    listed.join(", ")
                );
                run.warnings.push(warning);
            }
        }
    }
}

impl Drop for ServiceSession {
    fn drop(&mut self) {
        self.close(CloseMode::Cancel);
    }
}
