//! `Session`: open a project, run once, record the run, close.

use std::collections::BTreeMap;
use std::path::Path;

use weft_core::{RunResult, RunStatus};
use weft_pipeline::{CancelToken, Pipeline};

use crate::core::{Context, SessionCore, SessionOptions};
use crate::prepare::{Overlap, PreparedRun};
use crate::{RunConfig, RunSpec, SessionError};

/// Exactly one run of a project, like a Kedro session.
///
/// A second `run` after a completed one is an error; a failed run may be
/// retried in the same session (as in Kedro).
pub struct Session {
    core: SessionCore,
    completed: bool,
    closed: bool,
    /// The run that paused at an `await_input` node, until it is resumed.
    paused: Option<(RunSpec, RunResult)>,
}

impl Session {
    /// Opens the project at `project_dir` (reads `weft.toml`, `pipelines.yml`,
    /// and records the session in the store).
    pub fn create(project_dir: impl AsRef<Path>, options: SessionOptions) -> Result<Session, SessionError> {
        Ok(Session {
            core: SessionCore::open(project_dir.as_ref(), options, "session")?,
            completed: false,
            closed: false,
            paused: None,
        })
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

    /// The session's configuration environment.
    pub fn env(&self) -> &str {
        &self.core.env
    }

    /// The project's pipelines (YAML and Rust).
    pub fn pipelines(&self) -> &BTreeMap<String, Pipeline> {
        self.core.pipelines()
    }

    /// Prepares a configuration (everything resolved and checked, every
    /// problem at once) without running it.
    pub fn prepare(&self, config: &RunConfig) -> Result<PreparedRun, SessionError> {
        self.core.prepare(config, 0, Overlap::Never)
    }

    /// The pipeline a configuration selects (after filters), without running it.
    pub fn select_pipeline(&self, config: &RunConfig) -> Result<Pipeline, SessionError> {
        Ok(self.prepare(config)?.pipeline)
    }

    /// Loads a fresh context (parameters and catalog) as a run would see it.
    pub fn load_context(&self, config: &RunConfig) -> Result<Context, SessionError> {
        let prepared = self.prepare(config)?;
        let params = self
            .core
            .loaded_config(prepared.spec.env(), &prepared.spec.config.runtime_params)?
            .parameters
            .clone();
        Ok(Context {
            env: prepared.spec.env().to_string(),
            parameters: params,
            catalog: prepared.catalog,
        })
    }

    /// Runs once. A failed run is returned as [`SessionError::RunFailed`]
    /// carrying the whole result.
    pub fn run(&mut self, config: RunConfig) -> Result<RunResult, SessionError> {
        self.run_with_cancel(config, &CancelToken::new())
    }

    /// Runs once, cancellable from another thread through `cancel`.
    pub fn run_with_cancel(
        &mut self,
        config: RunConfig,
        cancel: &CancelToken,
    ) -> Result<RunResult, SessionError> {
        self.ensure_runnable()?;
        let prepared = self.prepare(&config)?;
        self.run_prepared(prepared, cancel)
    }

    fn ensure_runnable(&self) -> Result<(), SessionError> {
        if self.closed {
            return Err(SessionError::Session(format!(
                "session {} is closed",
                self.core.id
            )));
        }
        if self.completed {
            return Err(SessionError::Session(format!(
                "session {} has already completed a run; a Session runs exactly once \
                 (create a new Session, or use a ServiceSession for several runs)",
                self.core.id
            )));
        }
        Ok(())
    }

    /// Runs a run prepared by [`Session::prepare`] (so a caller that
    /// inspected it, e.g. to count its nodes, does not prepare it twice).
    pub fn run_prepared(
        &mut self,
        prepared: PreparedRun,
        cancel: &CancelToken,
    ) -> Result<RunResult, SessionError> {
        self.ensure_runnable()?;
        let spec = prepared.spec.clone();
        self.core.recorder.planned(&[&spec])?;
        self.core.recorder.started(&spec, 1);
        let result = self.core.execute(prepared, 1, 1, cancel);
        self.core.finish(&spec, &result, 1);
        self.core.recorder.flush();
        self.settle(spec, result)
    }

    /// The caller's view of a finished (or paused) run.
    fn settle(&mut self, spec: RunSpec, result: RunResult) -> Result<RunResult, SessionError> {
        self.core
            .hooks
            .after_all_runs(&self.core.id, std::slice::from_ref(&result));
        match result.status {
            RunStatus::Succeeded => {
                self.completed = true;
                Ok(result)
            }
            RunStatus::InputRequired => {
                let mut result = result;
                // Answered, it runs again under the same run id and saves anew.
                self.core.remove_saved_versions(&mut result);
                self.paused = Some((spec, result.clone()));
                Err(SessionError::InputRequired(Box::new(result)))
            }
            _ => Err(SessionError::RunFailed(Box::new(result))),
        }
    }

    /// What the paused run waits for, if a run paused at an `await_input`
    /// node (after [`SessionError::InputRequired`]).
    pub fn pending_input(&self) -> Option<&weft_core::PendingInput> {
        self.paused.as_ref().and_then(|(_, r)| r.pending_input.as_ref())
    }

    /// Runs the paused run again, under its run id, with `answers` (node →
    /// payload) added to the ones it had. An answer that does not match
    /// its node's schema is refused and the run stays paused. The run may
    /// pause again at a later `await_input` node.
    pub fn resume(
        &mut self,
        answers: BTreeMap<String, serde_json::Value>,
        cancel: &CancelToken,
    ) -> Result<RunResult, SessionError> {
        let Some((spec, _)) = &self.paused else {
            return Err(SessionError::Session(format!(
                "session {} has no run waiting for input",
                self.core.id
            )));
        };
        let mut spec = spec.clone();
        spec.config.answers.extend(answers);
        let prepared = self.core.prepare_spec(&spec)?;
        self.paused = None;
        self.core.recorder.started(&spec, 1);
        let result = self.core.execute(prepared, 1, 1, cancel);
        self.core.finish(&spec, &result, 1);
        self.core.recorder.flush();
        self.settle(spec, result)
    }

    /// Closes the session (records the close time). Also done on drop.
    pub fn close(mut self) {
        self.close_inner();
    }

    fn close_inner(&mut self) {
        if !self.closed {
            self.closed = true;
            // Nobody can answer a paused run once its session is closed.
            if let Some((spec, mut result)) = self.paused.take() {
                SessionCore::fail_paused_result(&mut result, |run_id, node| {
                    format!("run {run_id} was waiting for input at node `{node}` when its session closed")
                });
                self.core.finish(&spec, &result, 1);
                self.core.recorder.flush();
            }
            self.core.close();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close_inner();
    }
}
