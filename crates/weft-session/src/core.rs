//! What `Session` and `ServiceSession` share: opening a project, loading
//! configuration, preparing runs, executing prepared runs, recording them.
//!
//! The flow is one way: `RunConfig` → [`SessionCore::prepare`] (everything
//! resolved once, or every problem at once) → [`PreparedRun`] →
//! [`SessionCore::execute`] → a typed [`RunResult`] → the recorder.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use weft_catalog::{CatalogConfig, DatasetTypeRegistry};
use weft_core::{RunContext, RunFailure, RunResult, RunStatus};
use weft_pipeline::{CancelToken, FunctionRegistry, Pipeline};
use weft_runner::{Hooks, RunJob, RunnerRegistry, TypeCheck, run_pipeline};
use weft_store::{BlockingStore, SessionRecord};

use crate::prepare::PreparedRun;
use crate::recorder::Recorder;
use crate::run_config::new_session_id;
use crate::yaml_pipelines::{DEFAULT_PIPELINE, load_pipelines, load_pipelines_optional};
use crate::{Project, RunSpec, SessionError};

/// Code a project brings: functions, dataset types, runners and pipelines
/// built in Rust.
#[derive(Clone)]
pub struct ProjectCode {
    /// Functions YAML pipelines may call (default: the built-ins).
    pub functions: Arc<FunctionRegistry>,
    /// Dataset types the catalog may use, and the storage schemes of their
    /// `filepath` URLs (default: the built-ins with `weft_object_store`'s
    /// `s3`, `gs`, `az` and `memory`).
    pub dataset_types: Arc<DatasetTypeRegistry>,
    /// Runners run configurations may name (default: the built-ins).
    pub runners: Arc<RunnerRegistry>,
    /// Pipelines defined in Rust, added to the YAML ones (a name in both is an error).
    pub pipelines: BTreeMap<String, Pipeline>,
}

impl Default for ProjectCode {
    fn default() -> Self {
        ProjectCode {
            functions: Arc::new(FunctionRegistry::with_builtins()),
            // The built-ins, Excel workbooks, SQL tables and queries, HTTP
            // APIs, charts, pickle, and object-store URLs (s3://, gs://,
            // az://, memory://).
            dataset_types: Arc::new(default_dataset_types()),
            runners: Arc::new(RunnerRegistry::with_builtins()),
            pipelines: BTreeMap::new(),
        }
    }
}

/// The dataset types of [`ProjectCode::default`]: weft-catalog's built-ins,
/// `pandas.ExcelDataset` ([`weft_excel`]), `pandas.SQLTableDataset` and
/// `pandas.SQLQueryDataset` ([`weft_sql`]), `api.APIDataset`
/// ([`weft_api`]), the chart datasets ([`weft_charts`]),
/// `pickle.PickleDataset` ([`weft_pickle`]) and the object-store schemes.
pub fn default_dataset_types() -> weft_catalog::DatasetTypeRegistry {
    let mut types = weft_object_store::dataset_types();
    weft_excel::register(&mut types).expect("the Excel type names are not built-in names");
    weft_sql::register(&mut types).expect("the SQL type names are not built-in names");
    weft_api::register(&mut types).expect("the API type name is not a built-in name");
    weft_charts::register(&mut types).expect("the chart type names are not built-in names");
    weft_pickle::register(&mut types).expect("the pickle type name is not a built-in name");
    types
}

/// The pipelines of `project`: its `pipelines.yml` and `code`'s Rust
/// pipelines (a name defined in both is an error).
fn project_pipelines(
    project: &Project,
    code: &ProjectCode,
) -> Result<BTreeMap<String, Pipeline>, SessionError> {
    let mut pipelines = if code.pipelines.is_empty() {
        load_pipelines(&project.pipelines_file(), &code.functions)?
    } else {
        load_pipelines_optional(&project.pipelines_file(), &code.functions)?
            .unwrap_or_else(|| [(DEFAULT_PIPELINE.to_string(), Pipeline::empty())].into())
    };
    for (name, p) in &code.pipelines {
        let yaml_has = pipelines
            .get(name)
            .is_some_and(|y| !(name == DEFAULT_PIPELINE && y.is_empty()));
        if yaml_has {
            return Err(SessionError::Project {
                path: project.pipelines_file(),
                message: format!("pipeline `{name}` is defined both in YAML and in Rust code"),
            });
        }
        pipelines.insert(name.clone(), p.clone());
    }
    Ok(pipelines)
}

/// The pipelines of the project at `project_dir` (`pipelines.yml` and
/// `code`'s Rust pipelines), without opening a session: what a node host
/// (`weft node-host`) serves.
pub fn load_project_pipelines(
    project_dir: &Path,
    code: &ProjectCode,
) -> Result<BTreeMap<String, Pipeline>, SessionError> {
    project_pipelines(&Project::open(project_dir)?, code)
}

/// Where runs are recorded. Resolved by the caller (the CLI or the server
/// reads flags and environment variables); the library reads no environment.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum StoreChoice {
    /// `weft.toml`'s `[store] url`, else `<project>/.weft/weft.db`.
    #[default]
    ProjectDefault,
    /// This URL or SQLite path.
    Url(String),
    /// Record nothing (tests, benchmarks).
    Disabled,
}

/// Who started a session and from what: recorded with the session. The
/// caller (CLI, server) collects it at the edge; see `weft_cli` for the
/// `git` probe.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Provenance {
    /// The user name.
    pub username: Option<String>,
    /// The project's git commit, when it is a git repository.
    pub git_commit: Option<String>,
    /// Whether the work tree had uncommitted changes.
    pub git_dirty: Option<bool>,
    /// The command line that started the session.
    pub command: Vec<String>,
}

/// How to open a session.
#[derive(Clone, Default)]
pub struct SessionOptions {
    /// Configuration environment (default `local`).
    pub env: Option<String>,
    /// Parameters deep-merged over the project's for every run of the session.
    pub runtime_params: Value,
    /// Configuration folder (default: `weft.toml`'s `conf_source`).
    pub conf_source: Option<PathBuf>,
    /// Functions, dataset types, runners and Rust pipelines.
    pub code: ProjectCode,
    /// Lifecycle hooks, called in order.
    pub hooks: Hooks,
    /// Where runs are recorded.
    pub store: StoreChoice,
    /// Who started the session (recorded).
    pub provenance: Provenance,
    /// Connection validation mode (default: `weft.toml`'s, else strict).
    pub type_check: Option<TypeCheck>,
    /// Environment variables credentials' `${oc.env:NAME}` may read, handed
    /// in by the caller (the library reads no process environment).
    pub environment: Arc<BTreeMap<String, String>>,
    /// The session's id (default: a new one). The server passes its own
    /// session's id so runs carry it.
    pub session_id: Option<String>,
    /// The program the `process` runner starts as `PROGRAM node-host
    /// --project DIR` (the CLI and the server pass their own executable);
    /// `None`: runs on the `process` runner fail with an explanation.
    pub node_host_program: Option<PathBuf>,
}

/// The default configuration environment.
pub const DEFAULT_ENV: &str = "local";

/// How many distinct (env, runtime params) configurations a session keeps
/// loaded. Beyond it the oldest is dropped, so a long sweep over distinct
/// parameters stays flat in memory.
pub(crate) const CONFIG_CACHE_LIMIT: usize = 64;

/// Configuration loaded for one (env, runtime params) pair. Immutable; each
/// run still builds its own catalog and parameter copy from it.
pub(crate) struct LoadedConfig {
    pub(crate) parameters: Value,
    pub(crate) catalog: CatalogConfig,
}

/// Config, catalog, parameters and pipelines for ONE run; always fresh.
pub struct Context {
    /// The run's environment.
    pub env: String,
    /// The run's parameters (project parameters with runtime params merged in; a copy).
    pub parameters: Value,
    /// The run's own catalog.
    pub catalog: weft_catalog::Catalog,
}

/// A bounded map of loaded configurations, oldest dropped first.
#[derive(Default)]
struct ConfigCache {
    entries: HashMap<(String, String), Arc<LoadedConfig>>,
    order: VecDeque<(String, String)>,
}

impl ConfigCache {
    fn get(&self, key: &(String, String)) -> Option<Arc<LoadedConfig>> {
        self.entries.get(key).cloned()
    }

    fn insert(&mut self, key: (String, String), value: Arc<LoadedConfig>) {
        if self.entries.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
            while self.order.len() > CONFIG_CACHE_LIMIT {
                if let Some(old) = self.order.pop_front() {
                    self.entries.remove(&old);
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

pub(crate) struct SessionCore {
    pub(crate) id: String,
    pub(crate) project: Project,
    pub(crate) env: String,
    pub(crate) runtime_params: Value,
    pub(crate) conf_dir: PathBuf,
    pub(crate) code: ProjectCode,
    pub(crate) hooks: Hooks,
    pipelines: BTreeMap<String, Pipeline>,
    pub(crate) recorder: Recorder,
    pub(crate) type_check: TypeCheck,
    pub(crate) default_runner: String,
    environment: Arc<BTreeMap<String, String>>,
    config_cache: Mutex<ConfigCache>,
    /// Whether any configuration file mentions `runtime_params:`; when none
    /// does, runtime params only merge over parameters, so one loaded
    /// configuration per env serves every parameter point.
    conf_uses_runtime_params: OnceLock<bool>,
    /// The most recent run ids of this session (bounded), to spot runs that
    /// read another run's unpinned output.
    recent_runs: Mutex<VecDeque<String>>,
    /// Connection validation of this session's runs, summed.
    validation: Mutex<weft_core::ValidationStats>,
}

/// How many recent run ids a session remembers without asking the store.
const RECENT_RUNS: usize = 1024;

impl SessionCore {
    pub(crate) fn open(
        project_dir: &Path,
        options: SessionOptions,
        kind: &str,
    ) -> Result<Self, SessionError> {
        let project = Project::open(project_dir)?;
        let env = options
            .env
            .clone()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| DEFAULT_ENV.into());
        let conf_dir = project.conf_dir(options.conf_source.as_deref());
        check_env(&conf_dir, &env).map_err(|message| SessionError::field("env", message))?;
        let pipelines = project_pipelines(&project, &options.code)?;
        let mut options = options;
        if let Some(program) = &options.node_host_program {
            // The session's node hosts: warm between its runs, killed when
            // the session (the last run holding the pool) goes.
            let warm = std::thread::available_parallelism().map_or(2, |n| n.get());
            let pool = weft_runner::process_runner::NodeHostPool::new(
                weft_runner::process_runner::NodeHostCommand::weft(program, project.root()),
                warm,
            )
            .only_tagged(project.settings().run.process_tag.clone());
            let mut runners = (*options.code.runners).clone();
            runners.with_node_hosts(Arc::new(pool));
            options.code.runners = Arc::new(runners);
        }
        let settings_file = project.root().join(crate::project::PROJECT_FILE);
        let type_check = match options.type_check {
            Some(t) => t,
            None => match &project.settings().run.type_check {
                Some(s) => s.parse().map_err(|message| SessionError::Project {
                    path: settings_file.clone(),
                    message: format!("[run] type_check: {message}"),
                })?,
                None => TypeCheck::Strict,
            },
        };
        let default_runner = project
            .settings()
            .run
            .runner
            .clone()
            .unwrap_or_else(|| "sequential".into());
        if let Err(e) = options.code.runners.build(&default_runner, None) {
            return Err(SessionError::Project {
                path: settings_file,
                message: format!("[run] runner: {e}"),
            });
        }
        let store = match &options.store {
            StoreChoice::Disabled => None,
            StoreChoice::Url(url) => Some(BlockingStore::open(url)?),
            StoreChoice::ProjectDefault => Some(match &project.settings().store.url {
                Some(url) => BlockingStore::open(url)?,
                None => BlockingStore::open_project_default(project.root())?,
            }),
        };
        let recorder = Recorder::new(store);
        let mut hooks = options.hooks;
        if let Some(progress) = recorder.progress_hook() {
            hooks.push(progress);
        }
        let core = SessionCore {
            id: options.session_id.clone().unwrap_or_else(new_session_id),
            env,
            runtime_params: if options.runtime_params.is_null() {
                Value::Object(Default::default())
            } else {
                options.runtime_params.clone()
            },
            conf_dir,
            code: options.code,
            hooks,
            pipelines,
            recorder,
            type_check,
            default_runner,
            environment: options.environment,
            config_cache: Mutex::new(ConfigCache::default()),
            conf_uses_runtime_params: OnceLock::new(),
            recent_runs: Mutex::new(VecDeque::new()),
            validation: Mutex::new(weft_core::ValidationStats::default()),
            project,
        };
        let provenance = options.provenance;
        core.recorder.session_opened(&SessionRecord {
            session_id: core.id.clone(),
            kind: kind.into(),
            project_path: core.project.root().display().to_string(),
            env: core.env.clone(),
            runtime_params: core.runtime_params.clone(),
            created_at: jiff::Timestamp::now(),
            closed_at: None,
            username: provenance.username,
            git_commit: provenance.git_commit,
            git_dirty: provenance.git_dirty,
            command: provenance.command,
        })?;
        Ok(core)
    }

    pub(crate) fn pipelines(&self) -> &BTreeMap<String, Pipeline> {
        &self.pipelines
    }

    /// How many configurations are loaded (bounded by [`CONFIG_CACHE_LIMIT`]).
    pub(crate) fn cached_configs(&self) -> usize {
        self.config_cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn uses_runtime_params(&self) -> bool {
        *self
            .conf_uses_runtime_params
            .get_or_init(|| mentions(&self.conf_dir, "runtime_params"))
    }

    /// The configuration of one (env, runtime params) pair, loaded once.
    pub(crate) fn loaded_config(&self, env: &str, params: &Value) -> Result<Arc<LoadedConfig>, SessionError> {
        let empty = Value::Object(Default::default());
        let per_env = !self.uses_runtime_params();
        let load_params = if per_env { &empty } else { params };
        let key = (env.to_string(), load_params.to_string());
        let cached = self
            .config_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key);
        let base = match cached {
            Some(hit) => hit,
            None => {
                let loader = self
                    .project
                    .config_loader(Some(&self.conf_dir), env, load_params.clone())?
                    .with_environment(Arc::clone(&self.environment));
                let parameters = loader.parameters()?;
                let catalog = loader.get("catalog")?;
                let credentials = loader.get("credentials")?;
                let locator = weft_config::KeyLocator::new(&loader, "catalog")?;
                let catalog = CatalogConfig::parse_located(
                    &catalog,
                    &credentials,
                    &self.code.dataset_types,
                    &|path: &[&str]| locator.locate(path),
                )?;
                let loaded = Arc::new(LoadedConfig { parameters, catalog });
                self.config_cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, Arc::clone(&loaded));
                loaded
            }
        };
        if !per_env || params.as_object().is_none_or(|m| m.is_empty()) {
            return Ok(base);
        }
        let mut parameters = base.parameters.clone();
        weft_config::deep_merge(&mut parameters, params.clone());
        Ok(Arc::new(LoadedConfig {
            parameters,
            catalog: base.catalog.clone(),
        }))
    }

    /// The pipeline a run asks for: the union of the named pipelines, filtered.
    pub(crate) fn select_pipeline(
        &self,
        names: &[String],
        cfg: &crate::RunConfig,
    ) -> Result<Pipeline, SessionError> {
        let lookup = |name: &String| {
            self.pipelines
                .get(name)
                .ok_or_else(|| SessionError::UnknownPipeline {
                    name: name.clone(),
                    available: self.pipelines.keys().cloned().collect(),
                })
        };
        let mut pipeline = match names {
            [one] => lookup(one)?.clone(),
            _ => Pipeline::empty(),
        };
        for name in names.iter().skip(usize::from(names.len() == 1)) {
            pipeline = pipeline.union(lookup(name)?)?;
        }
        let filter = cfg.filter();
        if filter.is_empty() {
            Ok(pipeline)
        } else {
            Ok(pipeline.filter(&filter)?)
        }
    }

    /// Turns a run that paused for input into a failed one that nobody will
    /// answer: `why(run_id, node)` says so in its error (kind
    /// `input_required`). Returns the message.
    pub(crate) fn fail_paused_result(
        result: &mut RunResult,
        why: impl FnOnce(&str, &str) -> String,
    ) -> String {
        let node = result.pending_input.take().map(|p| p.node).unwrap_or_default();
        let message = why(&result.run_id, &node);
        result.status = RunStatus::Failed;
        result.end_time = jiff::Timestamp::now();
        result.error = Some(RunFailure::message("input_required", message.clone()));
        message
    }

    /// Executes a prepared run once (one attempt) and returns what happened.
    /// Never panics on user errors or user panics: every failure is in the
    /// result.
    pub(crate) fn execute(
        &self,
        prepared: PreparedRun,
        total_runs: usize,
        attempt: u32,
        cancel: &CancelToken,
    ) -> RunResult {
        let spec = prepared.spec.clone();
        let ctx = RunContext {
            session_id: self.id.clone(),
            run_id: spec.run_id().to_string(),
            run_index: spec.run_index,
            total_runs,
        };
        let span = tracing::info_span!("run", run_id = %ctx.run_id, session_id = %self.id);
        let _enter = span.enter();
        let start_time = jiff::Timestamp::now();
        tracing::info!(attempt, "run started");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.execute_inner(prepared, &ctx, attempt, cancel, start_time)
        }));
        let result = caught.unwrap_or_else(|payload| {
            let message = weft_pipeline::panic_message(payload.as_ref());
            let mut r = self.result_shell(&spec, RunStatus::Failed, start_time, attempt);
            r.error = Some(RunFailure::message(
                "panic",
                format!("run {} panicked outside any node: {message}", ctx.run_id),
            ));
            r
        });
        let duration_ms = result.duration().as_secs_f64() * 1e3;
        match result.status {
            RunStatus::Succeeded => tracing::info!(duration_ms, "run succeeded"),
            RunStatus::InputRequired => tracing::info!(
                duration_ms,
                node = result
                    .pending_input
                    .as_ref()
                    .map(|p| p.node.as_str())
                    .unwrap_or(""),
                "run waits for input"
            ),
            status => tracing::warn!(
                duration_ms,
                error = %result.error.as_ref().map(|e| e.message.as_str()).unwrap_or(""),
                "run {status}"
            ),
        }
        result
    }

    fn execute_inner(
        &self,
        prepared: PreparedRun,
        ctx: &RunContext,
        attempt: u32,
        cancel: &CancelToken,
        start_time: jiff::Timestamp,
    ) -> RunResult {
        let PreparedRun {
            spec,
            pipeline,
            catalog,
            runner,
            warnings,
            timeout,
            ..
        } = prepared;
        self.remember_run(&ctx.run_id);
        self.hooks.after_context_created(ctx);
        self.hooks.after_catalog_created(ctx, &catalog);
        let job = RunJob {
            pipeline: &pipeline,
            catalog: &catalog,
            hooks: &self.hooks,
            context: ctx,
            cancel,
            only_missing_outputs: spec.config.only_missing_outputs,
            type_check: self.type_check,
            timeout,
        };
        let outcome = run_pipeline(&job, runner.as_ref());
        let mut result = self.result_shell(&spec, RunStatus::Succeeded, start_time, attempt);
        result.warnings = warnings;
        result.saved_versions = catalog.saved_versions();
        result.scoped_outputs = catalog
            .scoped_paths()
            .into_iter()
            .map(|(name, path)| (name, path.display().to_string()))
            .collect();
        match outcome {
            Ok(out) => {
                result.metrics = crate::metrics::collect(&out.outputs, &catalog, &self.metric_datasets());
                result.outputs = out.outputs;
                result.node_timings = out.node_timings;
                result.skipped_nodes = out.skipped_nodes;
                result.warnings.extend(out.warnings);
                result.validation = out.validation;
                result
                    .warnings
                    .extend(confirm_checkpoints(&pipeline, &catalog, &ctx.run_id));
            }
            Err(failed) => {
                let asked = weft_pipeline::InputRequired::find(&failed.error);
                result.status = if matches!(failed.error, weft_runner::RunError::Cancelled { .. }) {
                    RunStatus::Cancelled
                } else if asked.is_some() {
                    RunStatus::InputRequired
                } else {
                    RunStatus::Failed
                };
                result.pending_input = asked.map(|asked| weft_core::PendingInput {
                    node: asked.node.clone(),
                    prompt: asked.request.prompt.clone(),
                    schema: asked.request.schema.clone(),
                    requested_at: jiff::Timestamp::now(),
                });
                // A paused run has not failed: what it waits for is its
                // `pending_input`, not an error.
                if result.pending_input.is_none() {
                    result.error = Some(RunFailure::from(&failed.error));
                }
                result.node_timings = failed.node_timings;
                result.skipped_nodes = failed.skipped_nodes;
                result.warnings.extend(failed.warnings);
                result.validation = failed.validation;
            }
        }
        self.validation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(&result.validation);
        result
            .warnings
            .extend(self.cross_run_reads(&spec, &catalog.loaded_versions()));
        for warning in &result.warnings {
            tracing::warn!("{warning}");
        }
        result.end_time = jiff::Timestamp::now();
        // Reading the high-water mark costs a /proc read: only for the store.
        if self.recorder.is_enabled() {
            result.process_peak_rss_bytes = process_peak_rss_bytes();
        }
        result
    }

    /// Connection validation of this session's runs so far, summed.
    pub(crate) fn validation_metrics(&self) -> weft_core::ValidationStats {
        *self.validation.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the sums of [`validation_metrics`](Self::validation_metrics) again.
    pub(crate) fn reset_validation_metrics(&self) {
        *self.validation.lock().unwrap_or_else(|p| p.into_inner()) = weft_core::ValidationStats::default();
    }

    fn remember_run(&self, run_id: &str) {
        let mut recent = self.recent_runs.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT_RUNS {
            recent.pop_front();
        }
        recent.push_back(run_id.to_string());
    }

    /// Whether `version` is the id of another run of this session.
    fn is_session_run(&self, version: &str) -> bool {
        if self
            .recent_runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|r| r == version)
        {
            return true;
        }
        match self.recorder.session_of(version) {
            Some(session) => session == self.id,
            None => false,
        }
    }

    /// Warnings for versions this run loaded without pinning them that
    /// another run of the same session wrote: an accidental cross-run
    /// dependency (`load_versions` makes it explicit and silences this).
    fn cross_run_reads(&self, spec: &RunSpec, loaded: &BTreeMap<String, String>) -> Vec<String> {
        loaded
            .iter()
            .filter(|(dataset, version)| {
                version.as_str() != spec.run_id()
                    && !spec.config.load_versions.contains_key(dataset.as_str())
                    && self.is_session_run(version)
            })
            .map(|(dataset, version)| {
                format!(
                    "run {} read dataset `{dataset}` version {version}, written by run {version} of the same session; \
                     pin it with load_versions ({dataset}:{version}) if the dependency is intended",
                    spec.run_id()
                )
            })
            .collect()
    }

    fn metric_datasets(&self) -> Vec<String> {
        self.project.settings().run.metrics.clone()
    }

    /// A result with the spec's fields filled and nothing else.
    pub(crate) fn result_shell(
        &self,
        spec: &RunSpec,
        status: RunStatus,
        start_time: jiff::Timestamp,
        attempts: u32,
    ) -> RunResult {
        let cfg = &spec.config;
        RunResult {
            run_id: spec.run_id().to_string(),
            session_id: spec.session_id.clone(),
            run_index: spec.run_index,
            status,
            outputs: BTreeMap::new(),
            saved_versions: BTreeMap::new(),
            error: None,
            pending_input: None,
            start_time,
            end_time: jiff::Timestamp::now(),
            attempts,
            env: spec.env().to_string(),
            runtime_params: cfg.runtime_params.clone(),
            pipeline_names: cfg.pipeline_names.clone(),
            filters: cfg.filters_json(),
            load_versions: cfg.load_versions.clone(),
            node_timings: Vec::new(),
            skipped_nodes: Vec::new(),
            warnings: Vec::new(),
            metrics: BTreeMap::new(),
            scoped_outputs: BTreeMap::new(),
            cleaned_up: Vec::new(),
            process_peak_rss_bytes: None,
            validation: weft_core::ValidationStats::default(),
        }
    }

    /// Records a finished run (any status) and tells the hooks.
    pub(crate) fn finish(&self, spec: &RunSpec, result: &RunResult, total_runs: usize) {
        self.recorder.finished(spec, result);
        self.hooks.after_run(
            &RunContext {
                session_id: self.id.clone(),
                run_id: result.run_id.clone(),
                run_index: result.run_index,
                total_runs,
            },
            result,
        );
    }

    /// A result for a planned run that never started (recorded).
    pub(crate) fn not_started(&self, spec: &RunSpec, status: RunStatus, reason: &str) -> RunResult {
        let mut r = self.result_shell(spec, status, jiff::Timestamp::now(), 0);
        r.error = Some(RunFailure::message(status.as_str(), reason));
        self.recorder.finished(spec, &r);
        r
    }

    /// Deletes the versioned outputs a run wrote (`cleanup_on_error`,
    /// retries) and drops them from its `saved_versions`.
    pub(crate) fn remove_saved_versions(&self, result: &mut RunResult) -> Vec<String> {
        let mut removed = Vec::new();
        let catalog = self
            .loaded_config(&result.env, &result.runtime_params)
            .and_then(|loaded| {
                Ok(loaded.catalog.build(&weft_catalog::BuildOptions {
                    project_dir: self.project.root().to_path_buf(),
                    save_version: result.run_id.clone(),
                    parameters: loaded.parameters.clone(),
                    ..Default::default()
                })?)
            });
        let Ok(catalog) = catalog else { return removed };
        let infos = catalog.list();
        let mut kept = BTreeMap::new();
        for (name, version) in std::mem::take(&mut result.saved_versions) {
            let mut all_gone = true;
            // A transcoded dataset (`name@csv`, `name@parquet`) is one logical
            // dataset: every format's version folder goes.
            let described = catalog.describe(&name);
            let transcoded = infos
                .iter()
                .filter(|i| i.name.split_once('@').is_some_and(|(base, _)| base == name))
                .cloned();
            for info in described.into_iter().chain(transcoded) {
                let Some(path) = &info.filepath else { continue };
                let path = path.strip_prefix("file://").unwrap_or(path);
                // On an object store a version is one object,
                // `<url>/<version>/<basename>`, deleted through its storage.
                if weft_catalog::storage::url_scheme(path).is_some_and(|scheme| scheme != "file") {
                    let Some(storage) = catalog.storage_of(&info.name) else {
                        continue;
                    };
                    let url = path.trim_end_matches('/');
                    let basename = url.rsplit('/').next().unwrap_or_default();
                    let object = PathBuf::from(format!("{url}/{version}/{basename}"));
                    match storage.exists(&info.name, &object).and_then(|there| {
                        if there {
                            storage.delete(&info.name, &object).map(|()| true)
                        } else {
                            Ok(false)
                        }
                    }) {
                        Ok(true) => removed.push(object.display().to_string()),
                        Ok(false) => {}
                        Err(e) => {
                            all_gone = false;
                            tracing::warn!("could not remove {}: {e}", object.display());
                        }
                    }
                    continue;
                }
                let mut dir = PathBuf::from(path);
                if dir.is_relative() {
                    dir = self.project.root().join(dir);
                }
                let version_dir = dir.join(&version);
                if version_dir.is_dir() {
                    match std::fs::remove_dir_all(&version_dir) {
                        Ok(()) => removed.push(version_dir.display().to_string()),
                        Err(e) => {
                            all_gone = false;
                            tracing::warn!("could not remove {}: {e}", version_dir.display());
                        }
                    }
                }
            }
            if !all_gone {
                kept.insert(name, version);
            }
        }
        result.saved_versions = kept;
        removed
    }

    pub(crate) fn close(&self) {
        self.recorder.session_closed(&self.id);
    }
}

/// After a run succeeded: advances the checkpoint of every incremental
/// dataset a node `confirms` to the newest partition the run loaded (each
/// dataset once). A confirm that fails (another run confirmed the same
/// checkpoint first, or the file cannot be written) moves nothing and is a
/// warning of the run, which has already succeeded.
fn confirm_checkpoints(pipeline: &Pipeline, catalog: &weft_catalog::Catalog, run_id: &str) -> Vec<String> {
    let names: std::collections::BTreeSet<&str> = pipeline
        .nodes()
        .iter()
        .flat_map(|n| n.confirms())
        .map(String::as_str)
        .collect();
    let mut warnings = Vec::new();
    for name in names {
        match catalog.confirm(name) {
            Ok(weft_catalog::Confirmation::Moved { from, to }) => {
                tracing::info!(dataset = name, from = from.as_deref().unwrap_or(""), to = %to, "checkpoint confirmed");
            }
            Ok(weft_catalog::Confirmation::Unchanged { .. }) => {}
            Err(e) => warnings.push(format!("run {run_id}: checkpoint of `{name}` not confirmed: {e}")),
        }
    }
    warnings
}

/// The configuration environments of a conf folder (its sub-folders, sorted).
pub fn list_envs(conf_dir: &Path) -> Vec<String> {
    let mut envs: Vec<String> = std::fs::read_dir(conf_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    envs.sort();
    envs
}

/// Checks that `env` names a folder of the conf folder (the default env
/// `local` may be absent); the error lists the envs that exist.
pub fn check_env(conf_dir: &Path, env: &str) -> Result<(), String> {
    let safe = !env.is_empty() && !env.contains(['/', '\\']) && env != "." && env != "..";
    if safe && (env == DEFAULT_ENV || conf_dir.join(env).is_dir()) {
        return Ok(());
    }
    let envs = list_envs(conf_dir);
    Err(format!(
        "unknown env `{env}`: no folder {}; envs: {}",
        conf_dir.join(env).display(),
        if envs.is_empty() {
            "none".to_string()
        } else {
            envs.join(", ")
        }
    ))
}

/// Whether any file under `dir` contains `needle` (small config folders).
fn mentions(dir: &Path, needle: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        let path = e.path();
        if path.is_dir() {
            mentions(&path, needle)
        } else {
            std::fs::read_to_string(&path).is_ok_and(|t| t.contains(needle))
        }
    })
}

/// The process's peak resident memory (Linux `VmHWM`), when available.
pub(crate) fn process_peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::default_dataset_types;

    #[test]
    fn kedro_class_names_resolve_with_every_family_registered() {
        let types = default_dataset_types();
        for (name, canonical) in [
            ("pandas.JSONDataset", "json.JSONDataset"),
            ("JSONDataset", "json.JSONDataset"),
            ("plotly.JSONDataset", "plotly.JSONDataset"),
            ("pandas.CSVDataset", "csv.CSVDataset"),
            ("pandas.ParquetDataset", "parquet.ParquetDataset"),
            ("pandas.ExcelDataset", "pandas.ExcelDataset"),
            ("kedro_datasets.pandas.SQLTableDataset", "pandas.SQLTableDataset"),
            ("pickle.PickleDataset", "pickle.PickleDataset"),
            ("matplotlib.MatplotlibDataset", "matplotlib.MatplotlibDataset"),
            ("partitions.IncrementalDataset", "partitions.IncrementalDataset"),
        ] {
            assert_eq!(types.canonical(name), Some(canonical), "{name}");
        }
    }
}
