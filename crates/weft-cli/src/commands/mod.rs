//! Command implementations.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use weft_pipeline::Node;
use weft_runner::{Hooks, RunResult, TypeCheck};
use weft_session::{ProjectCode, RunConfig, Session, SessionOptions, StoreChoice};

use crate::args::*;
use crate::sweep::{expand_sweeps, parse_assignments};

/// Runs a parsed command; returns the process exit code.
mod inspect;
mod multirun;
mod new;
mod run;
mod runs;
mod viz;

use inspect::*;
use multirun::*;
use new::*;
use run::*;
use runs::*;
use viz::*;

pub fn dispatch(cli: Cli, code: ProjectCode) -> anyhow::Result<u8> {
    let project = cli.project.clone();
    match cli.command {
        Command::New { name } => new_project(&name),
        Command::Run(args) => run(&project, &args, code),
        Command::Multirun(args) => multirun(&project, &args, code),
        Command::Pipeline(PipelineCommand::List { json, session }) => {
            let s = open_session(&project, &session, Value::Null, code, true)?;
            let names: Vec<&String> = s.pipelines().keys().collect();
            if json {
                let list: Vec<Value> = s
                    .pipelines()
                    .iter()
                    .map(|(n, p)| json!({"name": n, "nodes": p.len()}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&json!({ "pipelines": list }))?);
            } else {
                for n in names {
                    println!("{n}  ({} nodes)", s.pipelines()[n].len());
                }
            }
            Ok(0)
        }
        Command::Pipeline(PipelineCommand::Show {
            json,
            filter,
            session,
        }) => {
            let s = open_session(&project, &session, Value::Null, code, true)?;
            let pipeline = s.select_pipeline(&filter_config(&filter))?;
            if json {
                let nodes: Vec<Value> = pipeline.nodes().iter().map(node_json).collect();
                println!("{}", serde_json::to_string_pretty(&json!({ "nodes": nodes }))?);
            } else {
                for n in pipeline.nodes() {
                    println!(
                        "{}  [{}]  ({}) -> ({}){}",
                        n.name(),
                        n.func_name(),
                        n.inputs().join(", "),
                        n.outputs().join(", "),
                        if n.tags().is_empty() {
                            String::new()
                        } else {
                            format!(
                                "  tags: {}",
                                n.tags().iter().cloned().collect::<Vec<_>>().join(",")
                            )
                        }
                    );
                }
            }
            Ok(0)
        }
        Command::Config(ConfigCommand::Show {
            section,
            params,
            show_credentials,
            session,
        }) => config_show(&project, section, &params, show_credentials, &session),
        Command::Catalog(CatalogCommand::List {
            json,
            pipelines,
            session,
        }) => catalog_list(&project, json, &pipelines, &session, code),
        Command::Viz(args) => {
            let s = open_session(&project, &args.session, Value::Null, code, true)?;
            let pipeline = s.select_pipeline(&filter_config(&args.filter))?;
            print!(
                "{}",
                match args.format {
                    VizFormat::Mermaid => mermaid(&pipeline),
                    VizFormat::Dot => dot(&pipeline),
                }
            );
            Ok(0)
        }
        Command::Sessions(SessionsCommand::List { json, limit, store }) => {
            let store = open_store(&project, store.as_deref())?;
            let sessions = store.list_sessions(limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&sessions)?);
            } else {
                print!("{}", weft_store::report::sessions_table(&sessions));
            }
            Ok(0)
        }
        Command::Runs(cmd) => runs(&project, cmd),
    }
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

pub(super) fn runtime_params(specs: &[String]) -> anyhow::Result<Value> {
    let assignments = parse_assignments(specs, false).context("invalid --params")?;
    Ok(expand_sweeps(&assignments).pop().unwrap_or(Value::Null))
}

pub(super) fn load_versions(specs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let Some((ds, version)) = spec.split_once(':') else {
            bail!("invalid --load-versions item `{spec}`: expected `dataset:version`");
        };
        if ds.is_empty() || version.is_empty() {
            bail!("invalid --load-versions item `{spec}`: expected `dataset:version`");
        }
        out.insert(ds.to_string(), version.to_string());
    }
    Ok(out)
}

pub(super) fn session_options(
    project: &std::path::Path,
    args: &SessionArgs,
    params: Value,
    code: ProjectCode,
    inspect_only: bool,
) -> anyhow::Result<SessionOptions> {
    let type_check = match &args.type_check {
        Some(t) => Some(t.parse::<TypeCheck>().map_err(anyhow::Error::msg)?),
        None => None,
    };
    let store = if inspect_only || args.no_store {
        StoreChoice::Disabled
    } else {
        match &args.store {
            Some(url) => StoreChoice::Url(url.clone()),
            None => StoreChoice::ProjectDefault,
        }
    };
    Ok(SessionOptions {
        env: args.env.clone(),
        runtime_params: params,
        conf_source: args.conf_source.clone(),
        code,
        hooks: Hooks::new(),
        store,
        provenance: if inspect_only { weft_session::Provenance::default() } else { provenance(Some(project)) },
        type_check,
    })
}

/// Who runs the session and from what, read here at the edge: the user
/// name from the environment, the project's git commit and dirty flag (two
/// `git` calls, skipped outside a repository), the command line.
pub(super) fn provenance(project: Option<&std::path::Path>) -> weft_session::Provenance {
    let (git_commit, git_dirty) = project.map(git_info).unwrap_or((None, None));
    weft_session::Provenance {
        username: std::env::var("USER")
            .ok()
            .or_else(|| std::env::var("USERNAME").ok())
            .filter(|u| !u.is_empty()),
        git_commit,
        git_dirty,
        command: std::env::args().collect(),
    }
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

pub(super) fn open_session(
    project: &std::path::Path,
    args: &SessionArgs,
    params: Value,
    code: ProjectCode,
    inspect_only: bool,
) -> anyhow::Result<Session> {
    Ok(Session::create(
        project,
        session_options(project, args, params, code, inspect_only)?,
    )?)
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
        "outputs": r.outputs.iter().map(|(k, v)| (k.clone(), data_json(v))).collect::<BTreeMap<_, _>>(),
        "error": r.error,
    })
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
