//! Command implementations. Every command writes through [`Io`]; none
//! prints directly.

mod inspect;
mod interrupt;
mod k8s;
mod multirun;
mod new;
mod remote;
mod run;
mod runs;
mod serve;
mod test;
mod viz;
mod worker;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use weft_pipeline::Node;
use weft_runner::{Hooks, RunResult, TypeCheck};
use weft_session::{ProjectCode, Provenance, RunConfig, SessionOptions};

use crate::Io;
use crate::args::*;
use crate::error::UsageError;
use crate::settings::{Environment, Settings};

/// What every command gets from the edge besides its arguments.
pub(crate) struct Edge<'a> {
    /// The project directory (flag, then `WEFT_PROJECT`, then `.`).
    pub project: PathBuf,
    /// The environment variables, captured once.
    pub environment: &'a Environment,
    /// The command line, as recorded with a session.
    pub command: Vec<String>,
}

/// Runs a parsed command; returns the process exit code.
pub(crate) fn dispatch(
    cli: Cli,
    environment: &Environment,
    command: Vec<String>,
    code: ProjectCode,
    io: &mut Io<'_>,
) -> anyhow::Result<u8> {
    let edge = Edge {
        project: crate::settings::project_dir(cli.project.as_deref(), environment),
        environment,
        command,
    };
    let token = match &cli.token_file {
        Some(path) => Some(remote::read_token(path)?),
        None => environment.get("WEFT_TOKEN").map(str::to_string),
    };
    if let Some(url) = remote::server_url(cli.server.as_deref(), environment) {
        if let Command::K8s(cmd) = cli.command {
            // `weft k8s reconcile` reads and closes the sessions of --server.
            return k8s::k8s(cmd, Some(url), token, io);
        }
        let client = remote::Client::new(&url, token)?;
        return match cli.command {
            Command::Run(args) => remote::run(&client, &args, io),
            Command::Multirun(args) => remote::multirun(&client, &args, io),
            Command::Runs(cmd) => remote::runs(&client, cmd, io),
            Command::Sessions(cmd) => remote::sessions(&client, cmd, io),
            _ => Err(UsageError::new(
                "--server (or WEFT_SERVER) works with run, multirun, runs and sessions only",
            )
            .into()),
        };
    }
    match cli.command {
        Command::New { name } => new::new_project(Path::new("."), &name, io),
        Command::Run(args) => run::run(&edge, &args, code, io),
        Command::Multirun(args) => multirun::multirun(&edge, &args, code, io),
        Command::Pipeline(cmd) => inspect::pipeline(&edge, cmd, code, io),
        Command::Config(ConfigCommand::Show {
            section,
            params,
            show_credentials,
            json: _,
            session,
        }) => inspect::config_show(&edge, section, &params, show_credentials, &session, io),
        Command::Catalog(CatalogCommand::List {
            json,
            pipelines,
            session,
        }) => inspect::catalog_list(&edge, json, &pipelines, &session, code, io),
        Command::Viz(args) => viz::viz(&edge, &args, code, io),
        Command::Sessions(cmd) => runs::sessions(&edge, cmd, io),
        Command::Runs(cmd) => runs::runs(&edge, cmd, io),
        Command::Serve(args) => serve::serve(&edge, &args, token, code, io),
        Command::Worker(args) => worker::worker(&edge, &args, token, code, io),
        Command::NodeHost => worker::node_host(&edge, &code),
        Command::Test(args) => test::test(&edge, &args, code, io),
        Command::K8s(cmd) => k8s::k8s(cmd, None, token, io),
    }
}

/// Writes `value` as pretty JSON and a newline.
pub(super) fn write_json(out: &mut dyn Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    // One write: serializing straight into an unbuffered stdout costs a
    // system call per token.
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    out.write_all(&text)?;
    Ok(())
}

pub(super) fn node_json(n: &Node) -> Value {
    json!({
        "name": n.name(),
        "func": n.func_name(),
        "inputs": n.inputs(),
        "outputs": n.outputs(),
        "tags": n.tags(),
        "namespace": n.namespace(),
    })
}

pub(super) fn filter_config(f: &FilterArgs) -> RunConfig {
    RunConfig {
        pipeline_names: f.pipelines.clone(),
        tags: f.tags.clone(),
        node_names: f.nodes.clone(),
        from_nodes: f.from_nodes.clone(),
        to_nodes: f.to_nodes.clone(),
        from_inputs: f.from_inputs.clone(),
        to_outputs: f.to_outputs.clone(),
        namespaces: f.namespaces.clone(),
        ..RunConfig::default()
    }
}

/// `--inputs FILE`: a JSON object of dataset name → value.
pub(super) fn read_inputs(path: &Path) -> Result<BTreeMap<String, Value>, UsageError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError::caused_by(format!("--inputs {}: cannot read it", path.display()), e))?;
    serde_json::from_str(&text).map_err(|e| {
        UsageError::caused_by(
            format!(
                "--inputs {}: line {}, column {}: expected a JSON object of dataset name to value",
                path.display(),
                e.line(),
                e.column()
            ),
            e,
        )
    })
}

/// `--input NODE=FILE` answers: node name → the JSON in FILE.
pub(super) fn read_answers(specs: &[String]) -> Result<BTreeMap<String, Value>, UsageError> {
    let mut answers = BTreeMap::new();
    for spec in specs {
        let Some((node, file)) = spec
            .split_once('=')
            .filter(|(n, f)| !n.is_empty() && !f.is_empty())
        else {
            return Err(UsageError::new(format!(
                "--input {spec}: expected NODE=FILE (the await_input node and a JSON file with its answer)"
            )));
        };
        let value = read_answer_file(Path::new(file))
            .map_err(|e| UsageError::caused_by(format!("--input {node}={file}"), e))?;
        if answers.insert(node.to_string(), value).is_some() {
            return Err(UsageError::new(format!("--input {node} is given twice")));
        }
    }
    Ok(answers)
}

/// The JSON answer in a file (`weft runs answer RUN FILE`).
pub(super) fn read_answer_file(file: &Path) -> Result<Value, UsageError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| UsageError::caused_by(format!("{}: cannot read it", file.display()), e))?;
    serde_json::from_str(&text).map_err(|e| {
        UsageError::caused_by(
            format!(
                "{}: line {}, column {}: not valid JSON",
                file.display(),
                e.line(),
                e.column()
            ),
            e,
        )
    })
}

/// Asks for the answer to a run waiting at `node` on the terminal, until
/// one matches the node's schema; `None` when there is no terminal or it
/// is closed (end of input).
pub(super) fn ask(
    io: &mut Io<'_>,
    run_id: &str,
    pending: &weft_core::PendingInput,
) -> anyhow::Result<Option<Value>> {
    let Some(prompt) = io.prompt.as_mut() else {
        return Ok(None);
    };
    writeln!(io.err, "run {run_id} waits for input at node `{}`:", pending.node)?;
    writeln!(io.err, "  {}", pending.prompt)?;
    if pending.schema.as_object().is_some_and(|o| !o.is_empty()) {
        writeln!(io.err, "  answer with JSON matching {}", pending.schema)?;
    }
    loop {
        write!(io.err, "{}> ", pending.node)?;
        io.err.flush()?;
        let mut line = String::new();
        if prompt.read_line(&mut line)? == 0 {
            writeln!(io.err)?;
            return Ok(None);
        }
        let value: Value = match serde_json::from_str(line.trim()) {
            Ok(v) => v,
            // A bare word is a string: `yes` as well as `"yes"`.
            Err(_) if !line.trim().is_empty() && !line.trim().starts_with(['{', '[', '"']) => {
                Value::String(line.trim().to_string())
            }
            Err(e) => {
                writeln!(io.err, "  not valid JSON: {e}")?;
                continue;
            }
        };
        let problems = weft_session::answers::check_answer(&pending.schema, &value);
        if problems.is_empty() {
            return Ok(Some(value));
        }
        for p in problems {
            writeln!(io.err, "  {p}")?;
        }
    }
}

/// `--params` of one run (no sweeps): a usage error when malformed.
pub(super) fn runtime_params(specs: &[String]) -> Result<Value, UsageError> {
    let mut params = Value::Object(Default::default());
    for spec in specs {
        let parsed = weft_config::parse_runtime_params(spec)
            .map_err(|e| UsageError::caused_by("invalid --params", e))?;
        weft_config::deep_merge(&mut params, parsed);
    }
    Ok(params)
}

/// `--load-versions ds:version,...`: a usage error when malformed.
pub(super) fn load_versions(specs: &[String]) -> Result<BTreeMap<String, String>, UsageError> {
    let mut out = BTreeMap::new();
    for spec in specs {
        match spec.split_once(':') {
            Some((ds, version)) if !ds.is_empty() && !version.is_empty() => {
                out.insert(ds.to_string(), version.to_string());
            }
            _ => {
                return Err(UsageError::new(format!(
                    "invalid --load-versions item `{spec}`: expected `dataset:version`"
                )));
            }
        }
    }
    Ok(out)
}

/// `--type-check`: a usage error when unknown.
fn type_check(arg: Option<&str>) -> Result<Option<TypeCheck>, UsageError> {
    arg.map(|t| {
        t.parse::<TypeCheck>()
            .map_err(|e| UsageError::new(format!("--type-check: {e}")))
    })
    .transpose()
}

/// Session options with every value resolved at the edge; `provenance` is
/// what the session records about who started it
/// ([`crate::settings::provenance`], or the default for inspection).
pub(super) fn session_options(
    args: &SessionArgs,
    settings: &Settings,
    params: Value,
    code: ProjectCode,
    provenance: Provenance,
) -> Result<SessionOptions, UsageError> {
    Ok(SessionOptions {
        env: Some(settings.env.clone()),
        runtime_params: params,
        conf_source: args.conf_source.clone(),
        code,
        hooks: Hooks::new(),
        store: settings.store.clone(),
        provenance,
        type_check: type_check(args.type_check.as_deref())?,
        environment: settings.variables.clone(),
        session_id: None,
        node_host_program: node_host_program(),
    })
}

/// The program the `process` runner starts as `node-host`: this one (the
/// `weft` binary, or a project binary built on [`crate::main_with`], which
/// has the project's functions).
pub(super) fn node_host_program() -> Option<std::path::PathBuf> {
    std::env::current_exe().ok()
}

pub(super) fn data_json(d: &weft_pipeline::Data) -> Value {
    d.to_json()
        .unwrap_or_else(|_| json!(format!("<{}>", d.type_name())))
}

pub(super) fn result_json(r: &RunResult, params_keys: &[String]) -> Value {
    let params = &r.runtime_params;
    let shown = if params_keys.is_empty() {
        params.clone()
    } else {
        let mut m = serde_json::Map::new();
        for k in params_keys {
            m.insert(
                k.clone(),
                lookup_dotted(params, k).cloned().unwrap_or(Value::Null),
            );
        }
        Value::Object(m)
    };
    json!({
        "run_id": r.run_id,
        "session_id": r.session_id,
        "status": r.status,
        "params": shown,
        "start_time": r.start_time.to_string(),
        "end_time": r.end_time.to_string(),
        "duration_s": r.duration().as_secs_f64(),
        "attempts": r.attempts,
        "saved_versions": r.saved_versions,
        "skipped_nodes": r.skipped_nodes,
        "scoped_outputs": r.scoped_outputs,
        "metrics": r.metrics,
        "warnings": r.warnings,
        "node_timings": r.node_timings,
        "validation": r.validation,
        "outputs": r.outputs.iter().map(|(k, v)| (k.clone(), data_json(v))).collect::<BTreeMap<_, _>>(),
        "error": r.error,
        "pending_input": r.pending_input,
    })
}

/// Writes the runs' metrics to `path` in Prometheus's text format (the
/// series of `weft serve`'s `/metrics`, [`weft_core::RunMetrics`]), through
/// a temporary file renamed over it, so a collector reading the folder
/// (node_exporter's textfile collector) never sees half a file.
pub(super) fn write_metrics_file<'a>(
    path: &std::path::Path,
    results: impl IntoIterator<Item = &'a RunResult>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let metrics = weft_core::RunMetrics::default();
    for r in results {
        metrics.record_result(r);
    }
    let name = path
        .file_name()
        .with_context(|| format!("--metrics-file {}: not a file path", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, metrics.to_text())
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write the metrics file {}", path.display()))?;
    Ok(())
}

pub(super) fn lookup_dotted<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(v, |cur, part| cur.get(part))
}

pub(super) fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
