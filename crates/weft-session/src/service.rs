//! `ServiceSession`: many isolated runs of one project in one session.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use weft_pipeline::{CancelToken, Pipeline};
use weft_runner::{RunResult, RunStatus};

use crate::core::{SessionCore, SessionOptions};
use crate::run_config::new_run_id as fresh_run_id;
use crate::{RunConfig, SessionError};

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
    /// Most runs at once in `run_all` (default: the machine's parallelism).
    pub max_workers: Option<usize>,
    /// How many finished runs `results()` keeps in memory (default 1,000);
    /// older ones are only in the run store, so memory stays flat.
    pub history_limit: Option<usize>,
}

/// Many runs of one project in one session: sequential or concurrent, each
/// with its own context, catalog, parameters and env.
///
/// All methods take `&self`: share it between threads with `Arc`.
pub struct ServiceSession {
    core: SessionCore,
    max_workers: usize,
    results: Mutex<std::collections::VecDeque<RunResult>>,
    history_limit: usize,
    next_index: AtomicUsize,
    closed: AtomicBool,
    in_flight: Mutex<Vec<(String, CancelToken)>>,
    idle: Condvar,
}

/// The progress callback: `(completed, total)`.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

impl ServiceSession {
    /// Opens the project for many runs.
    pub fn create(project_dir: impl AsRef<Path>, options: ServiceOptions) -> Result<Self, SessionError> {
        let default = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(ServiceSession {
            core: SessionCore::open(project_dir.as_ref(), options.session, "service")?,
            max_workers: options.max_workers.unwrap_or(default).max(1),
            results: Mutex::new(std::collections::VecDeque::new()),
            history_limit: options.history_limit.unwrap_or(1000),
            next_index: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            in_flight: Mutex::new(Vec::new()),
            idle: Condvar::new(),
        })
    }

    /// The session's id.
    pub fn id(&self) -> &str {
        &self.core.id
    }

    /// Most concurrent runs in `run_all`.
    pub fn max_workers(&self) -> usize {
        self.max_workers
    }

    /// The project's pipelines.
    pub fn pipelines(&self) -> &BTreeMap<String, Pipeline> {
        self.core.pipelines()
    }

    /// Validates a run configuration (runner, pipelines, filters) and gives it
    /// a fresh run id. Nothing runs.
    pub fn create_run_config(&self, mut template: RunConfig) -> Result<RunConfig, SessionError> {
        self.core.check_run_config(&template)?;
        if template.run_id.is_none() {
            template.run_id = Some(fresh_run_id());
        }
        Ok(template)
    }

    fn ensure_open(&self) -> Result<(), SessionError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(SessionError::Session(format!(
                "service session {} is closed",
                self.core.id
            )));
        }
        Ok(())
    }

    /// Runs one configuration (after validating it). A failed run is a
    /// result with status `failed`, not an error; errors are for invalid
    /// configurations and closed sessions.
    pub fn run(&self, config: RunConfig) -> Result<RunResult, SessionError> {
        self.ensure_open()?;
        self.core.check_run_config(&config)?;
        let index = self.next_index.fetch_add(1, Ordering::SeqCst);
        let run_id = config.run_id.clone().unwrap_or_else(fresh_run_id);
        let result = self.run_one(
            &config,
            &run_id,
            index,
            1,
            &Policy::default(),
            &AtomicBool::new(false),
        );
        self.core
            .hooks
            .after_all_runs(&self.core.id, std::slice::from_ref(&result));
        Ok(result)
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
        let mut problems = Vec::new();
        for (i, cfg) in configs.iter().enumerate() {
            if let Err(e) = self.core.check_run_config(cfg) {
                problems.push(format!("run #{i}: {e}"));
            }
        }
        if !problems.is_empty() {
            return Err(SessionError::InvalidRun { problems });
        }
        let total = configs.len();
        let first_index = self.next_index.fetch_add(total, Ordering::SeqCst);
        let ids: Vec<String> = configs
            .iter()
            .map(|c| c.run_id.clone().unwrap_or_else(fresh_run_id))
            .collect();
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let slots: Vec<Mutex<Option<RunResult>>> = (0..total).map(|_| Mutex::new(None)).collect();
        let worker = || {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    break;
                }
                let result = if stop.load(Ordering::SeqCst) {
                    self.core.skipped_result(
                        &configs[i],
                        &ids[i],
                        first_index + i,
                        "not started: an earlier run of the batch failed (fail-fast)",
                    )
                } else {
                    let r = self.run_one(&configs[i], &ids[i], first_index + i, total, policy, &stop);
                    if r.status == RunStatus::Failed && policy.fail_fast && !stop.swap(true, Ordering::SeqCst)
                    {
                        self.cancel_in_flight();
                    }
                    r
                };
                *slots[i].lock().expect("result slot") = Some(result);
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
            .map(|s| {
                s.into_inner()
                    .expect("result slot")
                    .expect("every run has a result")
            })
            .collect();
        self.core.hooks.after_all_runs(&self.core.id, &results);
        Ok(results)
    }

    fn cancel_in_flight(&self) {
        for (_, token) in self.in_flight.lock().expect("in-flight lock").iter() {
            token.cancel();
        }
    }

    /// One run with the policy's retries; registered as in flight meanwhile.
    fn run_one(
        &self,
        cfg: &RunConfig,
        run_id: &str,
        index: usize,
        total: usize,
        policy: &Policy,
        stop: &AtomicBool,
    ) -> RunResult {
        let token = CancelToken::new();
        self.in_flight
            .lock()
            .expect("in-flight lock")
            .push((run_id.to_string(), token.clone()));
        let mut attempt = 1;
        let mut result = loop {
            let r = self.core.execute(cfg, run_id, index, total, attempt, &token);
            if r.status != RunStatus::Failed || attempt > policy.retries || stop.load(Ordering::SeqCst) {
                break r;
            }
            // Same run id next time: remove what this attempt saved first.
            self.core.remove_saved_versions(&r, cfg);
            let wait = policy.retry_backoff * 2u32.saturating_pow(attempt - 1);
            tracing::info!(run_id, attempt, ?wait, "retrying failed run");
            let deadline = std::time::Instant::now() + wait;
            while std::time::Instant::now() < deadline && !token.is_cancelled() {
                std::thread::sleep(Duration::from_millis(5).min(wait));
            }
            attempt += 1;
        };
        if result.status != RunStatus::Succeeded && policy.cleanup_on_error {
            let removed = self.core.remove_saved_versions(&result, cfg);
            if let serde_json::Value::Object(meta) = &mut result.metadata {
                meta.insert("cleaned_up".into(), serde_json::json!(removed));
            }
        }
        {
            let mut in_flight = self.in_flight.lock().expect("in-flight lock");
            in_flight.retain(|(id, _)| id != run_id);
            if in_flight.is_empty() {
                self.idle.notify_all();
            }
        }
        {
            let mut history = self.results.lock().expect("results lock");
            if self.history_limit > 0 {
                if history.len() == self.history_limit {
                    history.pop_front();
                }
                history.push_back(without_outputs(&result));
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
            .expect("results lock")
            .iter()
            .cloned()
            .collect()
    }

    /// Cancels one in-flight run; false if it is not running.
    pub fn cancel(&self, run_id: &str) -> bool {
        let in_flight = self.in_flight.lock().expect("in-flight lock");
        match in_flight.iter().find(|(id, _)| id == run_id) {
            Some((_, token)) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Closes the session: refuses new runs, waits for (or cancels, then
    /// waits for) in-flight runs, and records the close.
    pub fn close(&self, mode: CloseMode) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        if mode == CloseMode::Cancel {
            self.cancel_in_flight();
        }
        let mut in_flight = self.in_flight.lock().expect("in-flight lock");
        while !in_flight.is_empty() {
            in_flight = self.idle.wait(in_flight).expect("in-flight lock");
        }
        drop(in_flight);
        self.core.close();
    }
}

impl Drop for ServiceSession {
    fn drop(&mut self) {
        self.close(CloseMode::Cancel);
    }
}

fn without_outputs(result: &RunResult) -> RunResult {
    RunResult {
        outputs: BTreeMap::new(),
        ..result.clone()
    }
}
