//! The one component that maps runs to store records: a planned run becomes
//! a `queued` row before anything starts, then `running`, then its terminal
//! status with the whole result. Store failures are logged, never fatal to a
//! run that already started; failures to record a *planned* run refuse the
//! run (a dispatch is written before it is acknowledged).

use weft_core::{RunResult, RunStatus};
use weft_store::{BlockingStore, RunRecord, SessionRecord, StoreError};

use crate::RunSpec;

/// Writes session and run records, or nothing when the store is disabled.
pub(crate) struct Recorder {
    store: Option<BlockingStore>,
    owner: String,
}

impl Recorder {
    pub(crate) fn new(store: Option<BlockingStore>) -> Self {
        Recorder {
            store,
            owner: weft_store::current_owner(),
        }
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
        if let Some(store) = &self.store
            && let Err(e) = store.close_session(session_id, jiff::Timestamp::now())
        {
            tracing::error!("could not record the close of session {session_id}: {e}");
        }
    }

    /// Whether a run id is already recorded (a caller-supplied id must be new).
    pub(crate) fn run_exists(&self, run_id: &str) -> Result<bool, StoreError> {
        match &self.store {
            Some(store) => Ok(store.get_run(run_id)?.is_some()),
            None => Ok(false),
        }
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
        if let Err(e) = store.update_run(&record) {
            tracing::error!(run_id = spec.run_id(), "could not record run start: {e}");
        }
    }

    /// Records a run's end (any terminal status, skipped included).
    pub(crate) fn finished(&self, spec: &RunSpec, result: &RunResult) {
        let Some(store) = &self.store else { return };
        let record = self.record_of(spec, result);
        if let Err(e) = store.update_run(&record) {
            tracing::error!(run_id = spec.run_id(), "could not record run end: {e}");
        }
    }

    fn base_record(&self, spec: &RunSpec, status: RunStatus) -> RunRecord {
        let cfg = &spec.config;
        RunRecord {
            run_id: spec.run_id().to_string(),
            session_id: spec.session_id.clone(),
            run_index: u32::try_from(spec.run_index).unwrap_or(u32::MAX),
            status,
            env: spec.env().to_string(),
            runtime_params: cfg.runtime_params.clone(),
            pipeline_names: cfg.pipeline_names.clone(),
            filters: cfg.filters_json(),
            load_versions: cfg.load_versions.clone(),
            saved_versions: Default::default(),
            start_time: None,
            end_time: None,
            duration_ms: None,
            error: None,
            attempts: 0,
            node_timings: Vec::new(),
            peak_memory_bytes: None,
            metrics: serde_json::Value::Object(Default::default()),
            owner: Some(self.owner.clone()),
        }
    }

    /// The store record of a finished run.
    pub(crate) fn record_of(&self, spec: &RunSpec, result: &RunResult) -> RunRecord {
        let mut record = self.base_record(spec, result.status);
        let started = result.attempts > 0;
        record.start_time = started.then_some(result.start_time);
        record.end_time = Some(result.end_time);
        record.duration_ms = started.then(|| result.duration().as_secs_f64() * 1e3);
        record.saved_versions = result.saved_versions.clone();
        record.error = result.error.clone();
        record.attempts = result.attempts;
        record.node_timings = result.node_timings.clone();
        record.peak_memory_bytes = result.process_peak_rss_bytes;
        record.metrics = serde_json::to_value(&result.metrics).unwrap_or_default();
        record
    }
}
