//! The one component that maps runs to store records: a planned run becomes
//! a `queued` row before anything starts (a waited write: a dispatch is
//! durable before it is acknowledged), then `running`, progress after each
//! node and its terminal status with the whole result (deferred writes the
//! store's writer commits in groups, so recording costs little per run; a
//! crash loses at most the last few milliseconds of them, and the orphan
//! sweep then marks the run `interrupted` with its last progress as its end).
//! Store failures are logged, never fatal to a run that already started.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use weft_core::{NodeTiming, RunContext, RunResult, RunStatus};
use weft_pipeline::{Data, Node};
use weft_runner::Hook;
use weft_store::{BlockingStore, RunRecord, SessionRecord, StoreError};

use crate::RunSpec;

/// Writes session and run records, or nothing when the store is disabled.
pub(crate) struct Recorder {
    store: Option<Arc<BlockingStore>>,
    owner: String,
}

impl Recorder {
    pub(crate) fn new(store: Option<BlockingStore>) -> Self {
        Recorder {
            store: store.map(Arc::new),
            owner: weft_store::current_owner(),
        }
    }

    /// A hook that records each finished node as the run's progress.
    pub(crate) fn progress_hook(&self) -> Option<Arc<dyn Hook>> {
        self.store.as_ref().map(|store| {
            Arc::new(ProgressHook {
                store: Arc::clone(store),
                started: Mutex::new(HashMap::new()),
            }) as Arc<dyn Hook>
        })
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.store.is_some()
    }

    pub(crate) fn session_opened(&self, record: &SessionRecord) -> Result<(), StoreError> {
        match &self.store {
            Some(store) => store.create_session(record),
            None => Ok(()),
        }
    }

    pub(crate) fn session_closed(&self, session_id: &str) {
        let Some(store) = &self.store else { return };
        if let Err(e) = store.flush() {
            tracing::error!("could not record every run update of session {session_id}: {e}");
        }
        if let Err(e) = store.close_session(session_id, jiff::Timestamp::now()) {
            tracing::error!("could not record the close of session {session_id}: {e}");
        }
    }

    /// Commits every deferred update: when a session call returns, its runs'
    /// records are in the store for every reader.
    pub(crate) fn flush(&self) {
        if let Some(store) = &self.store
            && let Err(e) = store.flush()
        {
            tracing::error!("could not record run updates: {e}");
        }
    }

    /// Whether a run id is already recorded (a caller-supplied id must be new).
    pub(crate) fn run_exists(&self, run_id: &str) -> Result<bool, StoreError> {
        match &self.store {
            Some(store) => Ok(store.get_run(run_id)?.is_some()),
            None => Ok(false),
        }
    }

    /// The session a recorded run belongs to.
    pub(crate) fn session_of(&self, run_id: &str) -> Option<String> {
        let store = self.store.as_ref()?;
        store.get_run(run_id).ok().flatten().map(|r| r.session_id)
    }

    /// Records planned runs as `queued`, in one transaction.
    pub(crate) fn planned(&self, specs: &[&RunSpec]) -> Result<(), StoreError> {
        let Some(store) = &self.store else { return Ok(()) };
        let records: Vec<RunRecord> = specs
            .iter()
            .map(|s| self.base_record(s, RunStatus::Queued))
            .collect();
        match records.as_slice() {
            [one] => store.insert_run(one),
            _ => store.insert_runs(&records),
        }
    }

    /// Marks a planned run as running (attempt `attempt`).
    pub(crate) fn started(&self, spec: &RunSpec, attempt: u32) {
        let Some(store) = &self.store else { return };
        let mut record = self.base_record(spec, RunStatus::Running);
        record.start_time = Some(jiff::Timestamp::now());
        record.attempts = attempt;
        if let Err(e) = store.update_run_deferred(&record) {
            tracing::error!(run_id = spec.run_id(), "could not record run start: {e}");
        }
    }

    /// Records a run's end (any terminal status, skipped included).
    pub(crate) fn finished(&self, spec: &RunSpec, result: &RunResult) {
        let Some(store) = &self.store else { return };
        let record = self.record_of(spec, result);
        if let Err(e) = store.update_run_deferred(&record) {
            tracing::error!(run_id = spec.run_id(), "could not record run end: {e}");
        }
    }

    /// Records a run that paused for input as failed: nobody will answer
    /// it (`message` says why).
    pub(crate) fn fail_paused(&self, result: &RunResult, message: &str) {
        let Some(store) = &self.store else { return };
        let stored = match store.get_run(&result.run_id) {
            Ok(Some(r)) if r.status == RunStatus::InputRequired => r,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(run_id = %result.run_id, "could not read the paused run: {e}");
                return;
            }
        };
        let record = RunRecord {
            status: RunStatus::Failed,
            end_time: Some(jiff::Timestamp::now()),
            error: Some(weft_core::RunFailure::message("input_required", message)),
            pending_input: None,
            ..stored
        };
        if let Err(e) = store.update_run_deferred(&record) {
            tracing::error!(run_id = %result.run_id, "could not record the paused run as failed: {e}");
        }
    }

    fn base_record(&self, spec: &RunSpec, status: RunStatus) -> RunRecord {
        run_record(spec, status, &self.owner)
    }

    /// The store record of a finished run.
    pub(crate) fn record_of(&self, spec: &RunSpec, result: &RunResult) -> RunRecord {
        finished_record(spec, result, &self.owner)
    }
}

/// The store record of a run that has not started: its spec, `status`, and
/// `owner` (`host:pid` of the process that records it).
pub fn run_record(spec: &RunSpec, status: RunStatus, owner: &str) -> RunRecord {
    let cfg = &spec.config;
    RunRecord {
        run_index: u32::try_from(spec.run_index).unwrap_or(u32::MAX),
        env: spec.env().to_string(),
        runtime_params: cfg.runtime_params.clone(),
        pipeline_names: cfg.pipeline_names.clone(),
        filters: cfg.filters_json(),
        load_versions: cfg.load_versions.clone(),
        owner: Some(owner.to_string()),
        ..RunRecord::new(spec.run_id(), spec.session_id.clone(), status)
    }
}

/// The store record of a finished run: [`run_record`] plus the result's
/// status, times, versions, error, timings and metrics.
pub fn finished_record(spec: &RunSpec, result: &RunResult, owner: &str) -> RunRecord {
    let mut record = run_record(spec, result.status, owner);
    let started = result.attempts > 0;
    record.start_time = started.then_some(result.start_time);
    record.end_time = Some(result.end_time);
    record.duration_ms = started.then(|| result.duration().as_secs_f64() * 1e3);
    record.saved_versions = result.saved_versions.clone();
    record.error = result.error.clone();
    record.attempts = result.attempts;
    record.node_timings = result.node_timings.clone();
    record.validation = (result.validation.validations > 0).then_some(result.validation);
    record.process_peak_rss_bytes = result.process_peak_rss_bytes;
    record.metrics = result.metrics.clone();
    record.outputs = outputs_json(result);
    record.pending_input = result.pending_input.clone();
    record
}

/// Largest JSON text of one recorded output, and of all of them.
const OUTPUT_LIMIT: usize = 256 << 10;
const OUTPUTS_LIMIT: usize = 1 << 20;

/// The free outputs that convert to JSON within the limits.
fn outputs_json(result: &RunResult) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut total = 0;
    let mut out = std::collections::BTreeMap::new();
    for (name, data) in &result.outputs {
        let Ok(value) = data.to_json() else { continue };
        let size = serde_json::to_string(&value).map_or(usize::MAX, |t| t.len());
        if size > OUTPUT_LIMIT || total + size > OUTPUTS_LIMIT {
            tracing::debug!(run_id = %result.run_id, output = %name, size, "output too large to record");
            continue;
        }
        total += size;
        out.insert(name.clone(), value);
    }
    out
}

/// Records a node's timing as its run's progress once the node finished
/// (outputs saved), so a run that dies keeps what it did.
struct ProgressHook {
    store: Arc<BlockingStore>,
    started: Mutex<HashMap<(String, String), (Instant, jiff::Timestamp)>>,
}

impl Hook for ProgressHook {
    fn before_node_run(&self, ctx: &RunContext, node: &Node, _inputs: &[Data]) {
        self.started.lock().unwrap_or_else(|p| p.into_inner()).insert(
            (ctx.run_id.clone(), node.name().to_string()),
            (Instant::now(), jiff::Timestamp::now()),
        );
    }

    fn after_node_run(&self, ctx: &RunContext, node: &Node, _inputs: &[Data], _outputs: &[Data]) {
        let key = (ctx.run_id.clone(), node.name().to_string());
        let Some((t0, start)) = self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key)
        else {
            return;
        };
        let timing = NodeTiming {
            node: key.1,
            start,
            duration_ms: t0.elapsed().as_secs_f64() * 1e3,
            peak_memory_bytes: None,
            rows_in: None,
            rows_out: None,
            cycle: None,
        };
        if let Err(e) = self.store.update_progress(&ctx.run_id, timing) {
            tracing::warn!(run_id = %ctx.run_id, "could not record progress: {e}");
        }
    }

    fn on_node_error(&self, ctx: &RunContext, node: &Node, _error: &weft_runner::RunError) {
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(ctx.run_id.clone(), node.name().to_string()));
    }
}
