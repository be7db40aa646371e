//! Run preparation: one step that resolves a [`RunConfig`] into a
//! [`PreparedRun`] (run id, env, merged params, the filtered pipeline,
//! runner, catalog, load versions, isolation), or reports every problem at
//! once. Nothing runs and nothing is recorded here.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use weft_catalog::{BuildOptions, Catalog, RunScope};
use weft_pipeline::Pipeline;
use weft_runner::Runner;

use crate::core::SessionCore;
use crate::run_config::{check_run_id, new_run_id};
use crate::{Isolation, RunConfig, RunSpec, SessionError};

/// A run with everything resolved, ready to execute once. Build it with
/// `ServiceSession::prepare` (or let `run` do it); its [`RunSpec`] is the
/// serializable part.
pub struct PreparedRun {
    pub(crate) spec: RunSpec,
    pub(crate) pipeline: Pipeline,
    pub(crate) catalog: Catalog,
    pub(crate) runner: Box<dyn Runner>,
    pub(crate) warnings: Vec<String>,
    pub(crate) timeout: Option<std::time::Duration>,
}

impl PreparedRun {
    /// The serializable, resolved specification.
    pub fn spec(&self) -> &RunSpec {
        &self.spec
    }

    /// The filtered pipeline the run executes.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The run's own catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Warnings found while preparing (the run still starts).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Whether runs of a session can overlap in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Overlap {
    /// Never (a `Session`, or a service session with one worker).
    Never,
    /// Possibly: non-versioned persisted outputs are written run-scoped.
    Possible,
}

impl SessionCore {
    /// Resolves a configuration for the session's `run_index`-th run. A
    /// caller-supplied run id must be new.
    pub(crate) fn prepare(
        &self,
        cfg: &RunConfig,
        run_index: usize,
        overlap: Overlap,
    ) -> Result<PreparedRun, SessionError> {
        self.prepare_with(cfg, run_index, overlap, true)
    }

    fn prepare_with(
        &self,
        cfg: &RunConfig,
        run_index: usize,
        overlap: Overlap,
        id_must_be_new: bool,
    ) -> Result<PreparedRun, SessionError> {
        let mut problems = Vec::new();
        let run_id = match &cfg.run_id {
            Some(id) => {
                if let Err(m) = check_run_id(id) {
                    problems.push(SessionError::field("run_id", m));
                } else if id_must_be_new {
                    match self.recorder.run_exists(id) {
                        Ok(true) => problems.push(SessionError::field(
                            "run_id",
                            format!("run `{id}` already exists in the run store; run ids must be new"),
                        )),
                        Ok(false) => {}
                        Err(e) => problems.push(e.into()),
                    }
                }
                id.clone()
            }
            None => new_run_id(),
        };
        let runner_name = cfg.runner.clone().unwrap_or_else(|| self.default_runner.clone());
        if cfg.max_workers == Some(0) {
            problems.push(SessionError::field("max_workers", "must be at least 1"));
        }
        let runner = match self.code.runners.build(&runner_name, cfg.max_workers) {
            Ok(r) => Some(r),
            Err(e) => {
                problems.push(SessionError::field("runner", e.to_string()));
                None
            }
        };
        // The run's timeout: its own, else `[run] timeout` in weft.toml.
        let timeout_text = cfg
            .timeout
            .clone()
            .or_else(|| self.project.settings().run.timeout.clone());
        let timeout = match timeout_text.as_deref().map(weft_pipeline::parse_duration) {
            None => None,
            Some(Ok(d)) => Some(d),
            Some(Err(m)) => {
                let field = if cfg.timeout.is_some() {
                    "timeout"
                } else {
                    "weft.toml [run] timeout"
                };
                problems.push(SessionError::field(field, m));
                None
            }
        };
        let mut runtime_params = self.runtime_params.clone();
        match &cfg.runtime_params {
            Value::Null => {}
            Value::Object(_) => weft_config::deep_merge(&mut runtime_params, cfg.runtime_params.clone()),
            other => problems.push(SessionError::field(
                "runtime_params",
                format!("must be a map of parameter names to values, got {other}"),
            )),
        }
        let env = cfg.env.clone().unwrap_or_else(|| self.env.clone());
        let env_ok = match crate::core::check_env(&self.conf_dir, &env) {
            Ok(()) => true,
            Err(m) => {
                problems.push(SessionError::field("env", m));
                false
            }
        };
        let pipeline_names = if cfg.pipeline_names.is_empty() {
            vec![self.project.settings().project.default_pipeline.clone()]
        } else {
            cfg.pipeline_names.clone()
        };
        let pipeline = match self
            .select_pipeline(&pipeline_names, cfg)
            .and_then(|p| answer_nodes(p, &cfg.answers))
        {
            Ok(p) if p.is_empty() => {
                problems.push(SessionError::field(
                    "filters",
                    format!(
                        "pipeline {} has no nodes left after the filters {}",
                        pipeline_names.join(" + "),
                        cfg.filters_json()
                    ),
                ));
                None
            }
            Ok(p) => Some(p),
            Err(SessionError::InvalidRun { problems: found }) => {
                problems.extend(found);
                None
            }
            Err(e) => {
                problems.push(e);
                None
            }
        };
        let isolation = match overlap {
            Overlap::Never => Isolation::Shared,
            Overlap::Possible => Isolation::RunScoped {
                dir: self.project.root().join(".weft").join("runs").join(&run_id),
            },
        };
        let mut spec_config = cfg.clone();
        spec_config.run_id = Some(run_id.clone());
        spec_config.env = Some(env.clone());
        spec_config.runner = Some(runner_name);
        spec_config.timeout = timeout_text;
        spec_config.pipeline_names = pipeline_names;
        spec_config.runtime_params = runtime_params.clone();
        let spec = RunSpec {
            session_id: self.id.clone(),
            run_index,
            config: spec_config,
            isolation,
        };

        let mut catalog = None;
        let mut warnings = Vec::new();
        if let (Some(p), Some(r)) = (&pipeline, &runner)
            && r.name() != "process"
        {
            for node in p.nodes().iter().filter(|n| !n.limits().is_empty()) {
                warnings.push(format!(
                    "node `{}` has a memory_limit or cpu_limit, which only the `process` runner enforces (this run uses `{}`)",
                    node.name(),
                    r.name()
                ));
            }
        }
        if env_ok && runtime_params.is_object() {
            match self.loaded_config(&env, &runtime_params) {
                Ok(loaded) => {
                    let run_scope = match (&spec.isolation, &pipeline) {
                        (Isolation::RunScoped { dir }, Some(p)) => Some(RunScope {
                            dir: dir.clone(),
                            datasets: p
                                .all_outputs()
                                .into_iter()
                                .filter(|name| loaded.catalog.is_shared_file(name))
                                .collect(),
                        }),
                        _ => None,
                    };
                    let opts = BuildOptions {
                        project_dir: self.project.root().to_path_buf(),
                        save_version: run_id.clone(),
                        load_versions: cfg.load_versions.clone(),
                        parameters: loaded.parameters.clone(),
                        run_scope,
                    };
                    match loaded.catalog.build(&opts) {
                        Ok(mut c) => {
                            if let Some(p) = &pipeline {
                                problems.extend(inject_inputs(p, &mut c, &cfg.inputs));
                            }
                            catalog = Some(c);
                        }
                        Err(e) => problems.push(e.into()),
                    }
                }
                Err(e) => problems.push(e),
            }
        }
        // Runs that can overlap must not share a persisted dataset the
        // isolation rule cannot move (a custom type without a file path).
        if let (Isolation::RunScoped { .. }, Some(p), Some(c)) = (&spec.isolation, &pipeline, &catalog) {
            problems.extend(unscopable_outputs(p, c));
        }
        // `confirms` must name incremental datasets (they have a checkpoint).
        if let (Some(p), Some(c)) = (&pipeline, &catalog) {
            problems.extend(unconfirmable(p, c));
        }
        // With only_missing_outputs, nodes whose outputs exist are skipped
        // and their inputs need not exist: the runner reports what is missing.
        if let (Some(p), Some(c), false) = (&pipeline, &catalog, cfg.only_missing_outputs) {
            problems.extend(missing_inputs(p, c));
        }
        match (problems.is_empty(), pipeline, catalog, runner) {
            (true, Some(pipeline), Some(catalog), Some(runner)) => Ok(PreparedRun {
                spec,
                pipeline,
                catalog,
                runner,
                warnings,
                timeout,
            }),
            _ => Err(SessionError::InvalidRun { problems }),
        }
    }

    /// Prepares a spec again under its own run id (a retry, or a spec
    /// received from elsewhere). The spec's params already hold the
    /// session's, so merging them again changes nothing.
    pub(crate) fn prepare_spec(&self, spec: &RunSpec) -> Result<PreparedRun, SessionError> {
        let overlap = match spec.isolation {
            Isolation::Shared => Overlap::Never,
            Isolation::RunScoped { .. } => Overlap::Possible,
        };
        self.prepare_with(&spec.config, spec.run_index, overlap, false)
    }
}

/// The pipeline with its answered `await_input` nodes replaced by their
/// answers, every answer checked against its node's schema first.
fn answer_nodes(pipeline: Pipeline, answers: &BTreeMap<String, Value>) -> Result<Pipeline, SessionError> {
    if answers.is_empty() {
        return Ok(pipeline);
    }
    let mut problems = Vec::new();
    for (node, answer) in answers {
        if let Some(request) = pipeline.node(node).and_then(|n| n.input_request()) {
            for p in crate::answers::check_answer(&request.schema, answer) {
                problems.push(SessionError::field(
                    "answers",
                    format!("node `{node}`: the answer does not match its schema: {p}"),
                ));
            }
        }
    }
    match pipeline.answered(answers) {
        Ok(p) if problems.is_empty() => Ok(p),
        Ok(_) => Err(SessionError::InvalidRun { problems }),
        Err(e) => {
            problems.insert(0, SessionError::field("answers", e.to_string()));
            Err(SessionError::InvalidRun { problems })
        }
    }
}

/// Puts each injected input in the run's catalog as data; a name that is
/// not a free input of the pipeline is a problem (the value would be
/// ignored or overwritten).
fn inject_inputs(
    pipeline: &Pipeline,
    catalog: &mut Catalog,
    inputs: &BTreeMap<String, Value>,
) -> Vec<SessionError> {
    if inputs.is_empty() {
        return Vec::new();
    }
    let free = pipeline.inputs();
    let mut problems = Vec::new();
    for (name, value) in inputs {
        if free.contains(name) && !name.starts_with("params:") && name != "parameters" {
            catalog.add_data(name.clone(), weft_pipeline::Data::new(value.clone()));
        } else {
            let listed: Vec<&str> = free
                .iter()
                .map(String::as_str)
                .filter(|n| !n.starts_with("params:") && *n != "parameters")
                .collect();
            problems.push(SessionError::field(
                "inputs",
                format!(
                    "`{name}` is not a free input of the pipeline (free inputs: {})",
                    if listed.is_empty() {
                        "none".to_string()
                    } else {
                        listed.join(", ")
                    }
                ),
            ));
        }
    }
    problems
}

/// Outputs of the pipeline that are persisted, unversioned and have no file
/// path: overlapping runs would share them, so the run is refused with the
/// ways out.
fn unscopable_outputs(pipeline: &Pipeline, catalog: &Catalog) -> Vec<SessionError> {
    pipeline
        .all_outputs()
        .into_iter()
        .filter(|name| catalog.contains(name) && !catalog.is_memory(name))
        .filter_map(|name| catalog.describe(&name).map(|info| (name, info)))
        .filter(|(_, info)| !info.versioned && info.filepath.is_none())
        .map(|(name, info)| {
            SessionError::field(
                "isolation",
                format!(
                    "dataset `{name}` ({}) is persisted without a file path, so runs that overlap would share it; \
                     run with max_workers = 1, make it versioned, or give it a filepath",
                    info.type_name
                ),
            )
        })
        .collect()
}

/// Every `confirms` of a node naming a dataset that is not incremental
/// (nothing to confirm), naming the node and the dataset.
fn unconfirmable(pipeline: &Pipeline, catalog: &Catalog) -> Vec<SessionError> {
    let mut problems = Vec::new();
    for node in pipeline.nodes() {
        for name in node.confirms() {
            if catalog.is_incremental(name) {
                continue;
            }
            let what = match catalog.describe(name) {
                Some(info) => format!("a {}", info.type_name),
                None => "not in the catalog (a memory dataset)".to_string(),
            };
            problems.push(SessionError::field(
                "confirms",
                format!(
                    "node `{}` confirms dataset `{name}`, which is {what}; only incremental datasets (partitions.IncrementalDataset) have a checkpoint to confirm",
                    node.name()
                ),
            ));
        }
    }
    problems
}

/// Every free input of the pipeline that cannot be loaded, naming the
/// dataset, its path and a node that needs it.
fn missing_inputs(pipeline: &Pipeline, catalog: &Catalog) -> Vec<SessionError> {
    let free: BTreeSet<String> = pipeline.inputs();
    let names: Vec<&str> = free
        .iter()
        .map(String::as_str)
        .filter(|n| *n != "parameters" && !n.starts_with("params:"))
        .collect();
    let mut consumers: BTreeMap<&str, &str> = BTreeMap::new();
    for node in pipeline.nodes() {
        for input in node.inputs() {
            consumers.entry(input.as_str()).or_insert(node.name());
        }
    }
    let unavailable = catalog.check_available(&names);
    if unavailable.is_empty() {
        return Vec::new();
    }
    let mut known: Vec<String> = catalog.list().into_iter().map(|i| i.name).collect();
    known.extend(pipeline.all_outputs());
    unavailable
        .into_iter()
        .map(|u| {
            let close: Vec<String> = known
                .iter()
                .filter(|k| **k != u.dataset && weft_pipeline::registry::edit_distance(k, &u.dataset) <= 2)
                .take(3)
                .map(|k| format!("`{k}`"))
                .collect();
            let reason = if close.is_empty() {
                u.reason
            } else {
                format!("{}; did you mean {}?", u.reason, close.join(", "))
            };
            SessionError::MissingInput {
                node: consumers
                    .get(u.dataset.as_str())
                    .copied()
                    .unwrap_or("?")
                    .to_string(),
                dataset: u.dataset,
                path: u.path,
                reason,
            }
        })
        .collect()
}
