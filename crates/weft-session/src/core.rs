//! What `Session` and `ServiceSession` share: opening a project, loading
//! configuration, building a fresh context per run, running it, recording it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use weft_catalog::{BuildOptions, Catalog, CatalogConfig, DatasetTypeRegistry};
use weft_pipeline::{CancelToken, FunctionRegistry, Pipeline};
use weft_runner::{
    Hooks, RunContext, RunError, RunFailure, RunJob, RunResult, RunStatus, TypeCheck, run_pipeline,
    runner_by_name,
};
use weft_store::{BlockingStore, RunRecord, SessionRecord};

use crate::run_config::{RunConfig, new_session_id};
use crate::yaml_pipelines::{DEFAULT_PIPELINE, load_pipelines, load_pipelines_optional};
use crate::{Project, SessionError};

/// Code a project brings: functions, dataset types and pipelines built in Rust.
#[derive(Clone)]
pub struct ProjectCode {
    /// Functions YAML pipelines may call (default: the built-ins).
    pub functions: Arc<FunctionRegistry>,
    /// Dataset types the catalog may use (default: the built-ins).
    pub dataset_types: Arc<DatasetTypeRegistry>,
    /// Pipelines defined in Rust, added to the YAML ones (a name in both is an error).
    pub pipelines: BTreeMap<String, Pipeline>,
}

impl Default for ProjectCode {
    fn default() -> Self {
        ProjectCode {
            functions: Arc::new(FunctionRegistry::with_builtins()),
            dataset_types: Arc::new(DatasetTypeRegistry::with_builtins()),
            pipelines: BTreeMap::new(),
        }
    }
}

/// Where runs are recorded.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum StoreChoice {
    /// `weft.toml`'s `[store] url`, else `WEFT_STORE_URL`, else `<project>/.weft/weft.db`.
    #[default]
    ProjectDefault,
    /// This URL or SQLite path.
    Url(String),
    /// Record nothing (tests, benchmarks).
    Disabled,
}

/// How to open a session.
#[derive(Clone, Default)]
pub struct SessionOptions {
    /// Configuration environment (default `WEFT_ENV`, else `local`).
    pub env: Option<String>,
    /// Parameters deep-merged over the project's for every run of the session.
    pub runtime_params: Value,
    /// Configuration folder (default: `weft.toml`'s `conf_source`).
    pub conf_source: Option<PathBuf>,
    /// Functions, dataset types and Rust pipelines.
    pub code: ProjectCode,
    /// Lifecycle hooks, called in order.
    pub hooks: Hooks,
    /// Where runs are recorded.
    pub store: StoreChoice,
    /// The command line that started the session (recorded).
    pub command: Vec<String>,
    /// Connection validation mode (default: `weft.toml`'s, else strict).
    pub type_check: Option<TypeCheck>,
}

/// Configuration loaded for one (env, runtime params) pair. Immutable; each
/// run still builds its own catalog and parameter copy from it.
pub(crate) struct LoadedConfig {
    parameters: Value,
    catalog: CatalogConfig,
}

/// Config, catalog, parameters and pipelines for ONE run; always fresh.
pub struct Context {
    /// The run's environment.
    pub env: String,
    /// The run's parameters (project parameters with runtime params merged in; a copy).
    pub parameters: Value,
    /// The run's own catalog.
    pub catalog: Catalog,
}

/// A successful attempt: the runner's output and the versions it saved.
type Attempt = (weft_runner::RunOutput, BTreeMap<String, String>);
/// A failed attempt: the error, the status it ends in, and the versions saved before it failed.
type Failed = (RunFailure, RunStatus, BTreeMap<String, String>);

pub(crate) struct SessionCore {
    pub(crate) id: String,
    pub(crate) project: Project,
    pub(crate) env: String,
    pub(crate) runtime_params: Value,
    conf_dir: PathBuf,
    pub(crate) code: ProjectCode,
    pub(crate) hooks: Hooks,
    pipelines: BTreeMap<String, Pipeline>,
    pub(crate) store: Option<BlockingStore>,
    type_check: TypeCheck,
    config_cache: Mutex<HashMap<(String, String), Arc<LoadedConfig>>>,
}

fn git_info(dir: &std::path::Path) -> (Option<String>, Option<bool>) {
    // Spawning git costs milliseconds: skip it outside a repository.
    if !dir.ancestors().any(|d| d.join(".git").exists()) {
        return (None, None);
    }
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = run(&["rev-parse", "HEAD"]);
    let dirty = commit
        .as_ref()
        .and_then(|_| run(&["status", "--porcelain"]))
        .map(|s| !s.is_empty());
    (commit, dirty)
}

impl SessionCore {
    pub(crate) fn open(
        project_dir: &std::path::Path,
        options: SessionOptions,
        kind: &str,
    ) -> Result<Self, SessionError> {
        let project = Project::open(project_dir)?;
        let env = options
            .env
            .clone()
            .or_else(|| std::env::var("WEFT_ENV").ok().filter(|e| !e.is_empty()))
            .unwrap_or_else(|| "local".into());
        let conf_dir = project.conf_dir(options.conf_source.as_deref());
        let mut pipelines = if options.code.pipelines.is_empty() {
            load_pipelines(&project.pipelines_file(), &options.code.functions)?
        } else {
            load_pipelines_optional(&project.pipelines_file(), &options.code.functions)?
                .unwrap_or_else(|| [(DEFAULT_PIPELINE.to_string(), Pipeline::empty())].into())
        };
        for (name, p) in &options.code.pipelines {
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
        let type_check = match options.type_check {
            Some(t) => t,
            None => match &project.settings().run.type_check {
                Some(s) => s.parse().map_err(|message| SessionError::Project {
                    path: project.root().join(crate::project::PROJECT_FILE),
                    message: format!("[run] type_check: {message}"),
                })?,
                None => TypeCheck::Strict,
            },
        };
        let store = match &options.store {
            StoreChoice::Disabled => None,
            StoreChoice::Url(url) => Some(BlockingStore::open(url)?),
            StoreChoice::ProjectDefault => {
                let url = project
                    .settings()
                    .store
                    .url
                    .clone()
                    .or_else(|| std::env::var("WEFT_STORE_URL").ok().filter(|u| !u.is_empty()));
                Some(match url {
                    Some(url) => BlockingStore::open(&url)?,
                    None => BlockingStore::open_project_default(project.root())?,
                })
            }
        };
        let core = SessionCore {
            id: new_session_id(),
            env,
            runtime_params: if options.runtime_params.is_null() {
                Value::Object(Default::default())
            } else {
                options.runtime_params.clone()
            },
            conf_dir,
            code: options.code,
            hooks: options.hooks,
            pipelines,
            store,
            type_check,
            config_cache: Mutex::new(HashMap::new()),
            project,
        };
        if let Some(store) = &core.store {
            let (git_commit, git_dirty) = git_info(core.project.root());
            store.create_session(&SessionRecord {
                session_id: core.id.clone(),
                kind: kind.into(),
                project_path: core.project.root().display().to_string(),
                env: core.env.clone(),
                runtime_params: core.runtime_params.clone(),
                created_at: jiff::Timestamp::now(),
                closed_at: None,
                username: std::env::var("USER")
                    .ok()
                    .or_else(|| std::env::var("USERNAME").ok()),
                git_commit,
                git_dirty,
                command: options.command,
            })?;
        }
        Ok(core)
    }

    pub(crate) fn pipelines(&self) -> &BTreeMap<String, Pipeline> {
        &self.pipelines
    }

    /// The run's effective runtime params: the session's, with the run's merged in.
    fn run_params(&self, cfg: &RunConfig) -> Value {
        let mut params = self.runtime_params.clone();
        if !cfg.runtime_params.is_null() {
            weft_config::deep_merge(&mut params, cfg.runtime_params.clone());
        }
        params
    }

    fn run_env(&self, cfg: &RunConfig) -> String {
        cfg.env.clone().unwrap_or_else(|| self.env.clone())
    }

    fn loaded_config(&self, env: &str, params: &Value) -> Result<Arc<LoadedConfig>, SessionError> {
        let key = (env.to_string(), params.to_string());
        if let Some(hit) = self.config_cache.lock().expect("config cache lock").get(&key) {
            return Ok(Arc::clone(hit));
        }
        let loader = self
            .project
            .config_loader(Some(&self.conf_dir), env, params.clone())?;
        let parameters = loader.parameters()?;
        let catalog = loader.get("catalog")?;
        let credentials = loader.get("credentials")?;
        let catalog = CatalogConfig::parse(&catalog, &credentials, &self.code.dataset_types)?;
        let loaded = Arc::new(LoadedConfig { parameters, catalog });
        self.config_cache
            .lock()
            .expect("config cache lock")
            .insert(key, Arc::clone(&loaded));
        Ok(loaded)
    }

    /// Builds the run's context: fresh parameters copy and a fresh catalog.
    pub(crate) fn build_context(&self, cfg: &RunConfig, run_id: &str) -> Result<Context, SessionError> {
        let env = self.run_env(cfg);
        let params = self.run_params(cfg);
        let loaded = self.loaded_config(&env, &params)?;
        let parameters = loaded.parameters.clone();
        let catalog = loaded.catalog.build(&BuildOptions {
            project_dir: self.project.root().to_path_buf(),
            save_version: run_id.to_string(),
            load_versions: cfg.load_versions.clone(),
            parameters: parameters.clone(),
        })?;
        Ok(Context {
            env,
            parameters,
            catalog,
        })
    }

    /// The pipeline a run asks for: the union of the named pipelines, filtered.
    pub(crate) fn select_pipeline(&self, cfg: &RunConfig) -> Result<Pipeline, SessionError> {
        let names = if cfg.pipeline_names.is_empty() {
            vec![self.project.settings().project.default_pipeline.clone()]
        } else {
            cfg.pipeline_names.clone()
        };
        let lookup = |name: &String| {
            self.pipelines
                .get(name)
                .ok_or_else(|| SessionError::UnknownPipeline {
                    name: name.clone(),
                    available: self.pipelines.keys().cloned().collect(),
                })
        };
        let mut pipeline = match names.as_slice() {
            [one] => lookup(one)?.clone(),
            _ => Pipeline::empty(),
        };
        for name in names.iter().skip(usize::from(names.len() == 1)) {
            let p = self
                .pipelines
                .get(name)
                .ok_or_else(|| SessionError::UnknownPipeline {
                    name: name.clone(),
                    available: self.pipelines.keys().cloned().collect(),
                })?;
            pipeline = pipeline.union(p)?;
        }
        let filter = cfg.filter();
        if filter.is_empty() {
            Ok(pipeline)
        } else {
            Ok(pipeline.filter(&filter)?)
        }
    }

    /// Checks a run configuration without running anything.
    pub(crate) fn check_run_config(&self, cfg: &RunConfig) -> Result<(), SessionError> {
        let mut problems = Vec::new();
        if let Some(r) = &cfg.runner
            && let Err(e) = runner_by_name(r, cfg.max_workers)
        {
            problems.push(e.to_string());
        }
        if cfg.max_workers == Some(0) {
            problems.push("max_workers must be at least 1".into());
        }
        if !cfg.runtime_params.is_null() && !cfg.runtime_params.is_object() {
            problems.push(format!(
                "runtime_params must be a map, got {}",
                cfg.runtime_params
            ));
        }
        if let Some(env) = &cfg.env
            && (env.is_empty() || env.contains('/') || env.contains(".."))
        {
            problems.push(format!("invalid env `{env}`"));
        }
        if !problems.is_empty() {
            return Err(SessionError::InvalidRun { problems });
        }
        self.select_pipeline(cfg)?;
        Ok(())
    }

    fn run_record(&self, cfg: &RunConfig, run_id: &str, ctx: &RunContext) -> RunRecord {
        let pipeline_names = if cfg.pipeline_names.is_empty() {
            vec![self.project.settings().project.default_pipeline.clone()]
        } else {
            cfg.pipeline_names.clone()
        };
        RunRecord {
            run_id: run_id.to_string(),
            session_id: self.id.clone(),
            run_index: ctx.run_index as u32,
            status: weft_store::RunStatus::Running,
            env: self.run_env(cfg),
            runtime_params: self.run_params(cfg),
            pipeline_names,
            filters: cfg.filters_json(),
            load_versions: cfg.load_versions.clone(),
            saved_versions: BTreeMap::new(),
            start_time: Some(jiff::Timestamp::now()),
            end_time: None,
            duration_ms: None,
            error: None,
            attempts: 1,
            node_timings: Vec::new(),
            peak_memory_bytes: None,
            metrics: Value::Object(Default::default()),
            owner: Some(weft_store::current_owner()),
        }
    }

    /// Runs one configuration once (one attempt) and returns what happened.
    /// Never panics on user errors: every failure is in the result.
    pub(crate) fn execute(
        &self,
        cfg: &RunConfig,
        run_id: &str,
        run_index: usize,
        total_runs: usize,
        attempt: u32,
        cancel: &CancelToken,
    ) -> RunResult {
        let ctx = RunContext {
            session_id: self.id.clone(),
            run_id: run_id.to_string(),
            run_index,
            total_runs,
        };
        let span = tracing::info_span!("run", run_id = %run_id, session_id = %self.id);
        let _enter = span.enter();
        let start_time = jiff::Timestamp::now();
        let mut record = self.run_record(cfg, run_id, &ctx);
        record.attempts = attempt;
        if let Some(store) = &self.store {
            let stored = if attempt == 1 {
                store.insert_run(&record)
            } else {
                store.update_run(&record)
            };
            if let Err(e) = stored {
                tracing::error!("could not record run start: {e}");
            }
        }
        tracing::info!(attempt, "run started");
        let outcome = self.execute_inner(cfg, &ctx, cancel);
        let end_time = jiff::Timestamp::now();
        let (status, outputs, error, timings, saved_versions, warnings, skipped) = match outcome {
            Ok((out, saved)) => (
                RunStatus::Succeeded,
                out.outputs,
                None,
                out.node_timings,
                saved,
                out.warnings,
                out.skipped_nodes,
            ),
            Err(failed) => {
                let (failure, status, saved) = *failed;
                (
                    status,
                    BTreeMap::new(),
                    Some(failure),
                    Vec::new(),
                    saved,
                    Vec::new(),
                    Vec::new(),
                )
            }
        };
        let duration_ms = end_time.duration_since(start_time).as_secs_f64() * 1e3;
        // Reading the high-water mark costs a /proc read: only for the store.
        let peak = self.store.as_ref().and_then(|_| peak_rss_bytes());
        let node_timings: Vec<Value> = timings
            .iter()
            .map(|t| serde_json::json!({"node": t.node, "start": t.start.to_string(), "duration_ms": t.duration_ms}))
            .collect();
        let result = RunResult {
            run_id: run_id.to_string(),
            status,
            outputs,
            saved_versions: saved_versions.clone(),
            error: error.clone(),
            start_time,
            end_time,
            metadata: serde_json::json!({
                "session_id": self.id,
                "run_index": run_index,
                "attempts": attempt,
                "env": record.env,
                "runtime_params": record.runtime_params,
                "pipeline_names": record.pipeline_names,
                "filters": record.filters,
                "load_versions": record.load_versions,
                "node_timings": node_timings,
                "peak_memory_bytes": peak,
                "warnings": warnings,
                "skipped_nodes": skipped,
            }),
        };
        match status {
            RunStatus::Succeeded => tracing::info!(duration_ms, "run succeeded"),
            _ => tracing::warn!(
                duration_ms,
                error = %error.as_ref().map(|e| e.message.as_str()).unwrap_or(""),
                "run {status}"
            ),
        }
        if let Some(store) = &self.store {
            record.status = match status {
                RunStatus::Succeeded => weft_store::RunStatus::Succeeded,
                RunStatus::Failed => weft_store::RunStatus::Failed,
                RunStatus::Cancelled => weft_store::RunStatus::Cancelled,
                RunStatus::Skipped => weft_store::RunStatus::Skipped,
            };
            record.saved_versions = saved_versions;
            record.end_time = Some(end_time);
            record.duration_ms = Some(duration_ms);
            record.error = error.map(|e| weft_store::RunErrorRecord {
                kind: e.kind,
                message: e.message,
                node: e.node,
                causes: e.causes,
            });
            record.node_timings = timings
                .into_iter()
                .map(|t| weft_store::NodeTiming {
                    node: t.node,
                    start: t.start,
                    duration_ms: t.duration_ms,
                    peak_memory_bytes: None,
                })
                .collect();
            record.peak_memory_bytes = peak;
            if let Err(e) = store.update_run(&record) {
                tracing::error!("could not record run end: {e}");
            }
        }
        self.hooks.after_run(&ctx, &result);
        result
    }

    fn execute_inner(
        &self,
        cfg: &RunConfig,
        ctx: &RunContext,
        cancel: &CancelToken,
    ) -> Result<Attempt, Box<Failed>> {
        let fail = |kind: &str, e: &dyn std::error::Error| {
            let mut causes = vec![e.to_string()];
            let mut cur = e.source();
            while let Some(c) = cur {
                causes.push(c.to_string());
                cur = c.source();
            }
            Box::new((
                RunFailure {
                    kind: kind.into(),
                    message: e.to_string(),
                    node: None,
                    causes,
                },
                RunStatus::Failed,
                BTreeMap::new(),
            ))
        };
        let pipeline = self.select_pipeline(cfg).map_err(|e| fail("pipeline", &e))?;
        let context = self
            .build_context(cfg, &ctx.run_id)
            .map_err(|e| fail("config", &e))?;
        self.hooks.after_context_created(ctx);
        self.hooks.after_catalog_created(ctx, &context.catalog);
        let runner = runner_by_name(cfg.runner.as_deref().unwrap_or("sequential"), cfg.max_workers)
            .map_err(|e| fail("validation", &e))?;
        let job = RunJob {
            pipeline: &pipeline,
            catalog: &context.catalog,
            hooks: &self.hooks,
            context: ctx,
            cancel,
            only_missing_outputs: cfg.only_missing_outputs,
            type_check: self.type_check,
        };
        let result = run_pipeline(&job, runner.as_ref());
        let saved = context.catalog.saved_versions();
        match result {
            Ok(out) => Ok((out, saved)),
            Err(e) => {
                let status = if matches!(e, RunError::Cancelled { .. }) {
                    RunStatus::Cancelled
                } else {
                    RunStatus::Failed
                };
                Err(Box::new((RunFailure::from_run_error(&e), status, saved)))
            }
        }
    }

    /// Deletes the versioned outputs a run wrote (`cleanup_on_error`, retries).
    pub(crate) fn remove_saved_versions(&self, result: &RunResult, cfg: &RunConfig) -> Vec<String> {
        let mut removed = Vec::new();
        let Ok(context) = self.build_context(cfg, &result.run_id) else {
            return removed;
        };
        for info in context.catalog.list() {
            let Some(version) = result.saved_versions.get(&info.name) else {
                continue;
            };
            let Some(path) = &info.filepath else { continue };
            let mut dir = PathBuf::from(path);
            if dir.is_relative() {
                dir = self.project.root().join(dir);
            }
            let version_dir = dir.join(version);
            if version_dir.is_dir() && std::fs::remove_dir_all(&version_dir).is_ok() {
                removed.push(version_dir.display().to_string());
            }
        }
        removed
    }

    pub(crate) fn close(&self) {
        if let Some(store) = &self.store
            && let Err(e) = store.close_session(&self.id, jiff::Timestamp::now())
        {
            tracing::error!("could not record session close: {e}");
        }
    }

    /// A result for a run that never started.
    pub(crate) fn skipped_result(
        &self,
        cfg: &RunConfig,
        run_id: &str,
        run_index: usize,
        reason: &str,
    ) -> RunResult {
        let now = jiff::Timestamp::now();
        if let Some(store) = &self.store {
            let ctx = RunContext {
                session_id: self.id.clone(),
                run_id: run_id.into(),
                run_index,
                total_runs: 0,
            };
            let mut record = self.run_record(cfg, run_id, &ctx);
            record.status = weft_store::RunStatus::Skipped;
            record.start_time = None;
            record.attempts = 0;
            record.error = Some(weft_store::RunErrorRecord {
                kind: "skipped".into(),
                message: reason.into(),
                node: None,
                causes: vec![reason.into()],
            });
            if let Err(e) = store.insert_run(&record) {
                tracing::error!("could not record skipped run: {e}");
            }
        }
        RunResult {
            run_id: run_id.into(),
            status: RunStatus::Skipped,
            outputs: BTreeMap::new(),
            saved_versions: BTreeMap::new(),
            error: Some(RunFailure {
                kind: "skipped".into(),
                message: reason.into(),
                node: None,
                causes: vec![reason.into()],
            }),
            start_time: now,
            end_time: now,
            metadata: serde_json::json!({"session_id": self.id, "run_index": run_index, "attempts": 0}),
        }
    }
}

/// The process's peak resident memory (Linux `VmHWM`), when available.
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
