//! Command implementations.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use weft_pipeline::{Node, Pipeline};
use weft_runner::{Hook, Hooks, RunContext, RunResult, RunStatus, TypeCheck};
use weft_session::{
    Policy, ProjectCode, RunConfig, ServiceOptions, ServiceSession, Session, SessionError, SessionOptions,
    StoreChoice,
};

use crate::args::*;
use crate::sweep::Sweep;

/// Runs a parsed command; returns the process exit code.
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

fn node_json(n: &Node) -> Value {
    json!({
        "name": n.name(),
        "func": n.func_name(),
        "inputs": n.inputs(),
        "outputs": n.outputs(),
        "tags": n.tags(),
        "namespace": n.namespace(),
    })
}

fn filter_config(f: &FilterArgs) -> RunConfig {
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

fn runtime_params(specs: &[String]) -> anyhow::Result<Value> {
    let mut params = Value::Object(Default::default());
    for spec in specs {
        let parsed = weft_config::parse_runtime_params(spec).context("invalid --params")?;
        weft_config::deep_merge(&mut params, parsed);
    }
    Ok(params)
}

fn load_versions(specs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
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

fn session_options(
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
        command: std::env::args().collect(),
        type_check,
    })
}

fn open_session(
    project: &std::path::Path,
    args: &SessionArgs,
    params: Value,
    code: ProjectCode,
    inspect_only: bool,
) -> anyhow::Result<Session> {
    Ok(Session::create(
        project,
        session_options(args, params, code, inspect_only)?,
    )?)
}

/// Shows progress: a bar on a terminal, plain lines otherwise.
struct ProgressHook {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: std::sync::atomic::AtomicUsize,
}

impl Hook for ProgressHook {
    fn after_node_run(
        &self,
        _ctx: &RunContext,
        node: &Node,
        _i: &[weft_pipeline::Data],
        _o: &[weft_pipeline::Data],
    ) {
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(node.name().to_string());
                bar.inc(1);
            }
            None => eprintln!("[{done}/{}] {} done", self.total, node.name()),
        }
    }
}

fn run(project: &std::path::Path, args: &RunArgs, code: ProjectCode) -> anyhow::Result<u8> {
    let params = runtime_params(&args.params)?;
    let mut options = session_options(&args.session, params, code, false)?;
    let mut config = filter_config(&args.filter);
    config.load_versions = load_versions(&args.load_versions)?;
    config.runner = args.runner.clone();
    config.max_workers = args.max_workers;
    config.only_missing_outputs = args.only_missing_outputs;
    // Count the nodes first so the progress display knows the total.
    let probe = Session::create(
        project,
        SessionOptions {
            store: StoreChoice::Disabled,
            hooks: Hooks::new(),
            ..options.clone()
        },
    )?;
    let total = probe.select_pipeline(&config)?.len();
    drop(probe);
    let bar = (std::io::stderr().is_terminal() && !args.json).then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} nodes  {elapsed_precise}  {msg}")
                .expect("valid template"),
        );
        bar
    });
    let hook = Arc::new(ProgressHook {
        bar: bar.clone(),
        total,
        done: Default::default(),
    });
    if !args.json {
        options.hooks.push(hook);
    }
    let mut session = Session::create(project, options)?;
    let outcome = session.run(config);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match outcome {
        Ok(result) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&result_json(&result, &[]))?);
            } else {
                eprintln!(
                    "run {} succeeded in {:.3}s ({} nodes)",
                    result.run_id,
                    result.duration().as_secs_f64(),
                    total
                );
            }
            Ok(0)
        }
        Err(SessionError::RunFailed(result)) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&result_json(&result, &[]))?);
            }
            let err = result.error.clone().unwrap_or_else(|| weft_runner::RunFailure {
                kind: "unknown".into(),
                message: "run failed".into(),
                node: None,
                causes: vec![],
            });
            eprintln!("error: run {} {}", result.run_id, result.status);
            for (i, cause) in err.causes.iter().enumerate() {
                if i == 0 {
                    eprintln!("  {cause}");
                } else {
                    eprintln!("  caused by: {cause}");
                }
            }
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

fn data_json(d: &weft_pipeline::Data) -> Value {
    d.to_json()
        .unwrap_or_else(|_| json!(format!("<{}>", d.type_name())))
}

fn result_json(r: &RunResult, params_keys: &[String]) -> Value {
    let params = r.metadata.get("runtime_params").cloned().unwrap_or(Value::Null);
    let shown = if params_keys.is_empty() {
        params
    } else {
        let mut m = serde_json::Map::new();
        for k in params_keys {
            m.insert(
                k.clone(),
                lookup_dotted(&params, k).cloned().unwrap_or(Value::Null),
            );
        }
        Value::Object(m)
    };
    json!({
        "run_id": r.run_id,
        "session_id": r.metadata.get("session_id"),
        "status": r.status,
        "params": shown,
        "start_time": r.start_time.to_string(),
        "end_time": r.end_time.to_string(),
        "duration_s": r.duration().as_secs_f64(),
        "attempts": r.metadata.get("attempts"),
        "saved_versions": r.saved_versions,
        "skipped_nodes": r.metadata.get("skipped_nodes"),
        "outputs": r.outputs.iter().map(|(k, v)| (k.clone(), data_json(v))).collect::<BTreeMap<_, _>>(),
        "error": r.error,
    })
}

fn lookup_dotted<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(v, |cur, part| cur.get(part))
}

fn multirun(project: &std::path::Path, args: &MultirunArgs, code: ProjectCode) -> anyhow::Result<u8> {
    let mut sweep = Sweep::parse(&args.run.params).context("invalid --params")?;
    if let Some(file) = &args.sweep_file {
        sweep.extend(Sweep::from_file(file)?);
    }
    let varying = sweep.varying_keys();
    let combos = sweep.expand(args.max_runs)?;
    let policy: Policy = args.policy.parse().map_err(anyhow::Error::msg)?;
    let policy = Policy {
        cleanup_on_error: args.cleanup_on_error,
        ..policy
    };
    let mut session_opts = session_options(&args.run.session, Value::Null, code, false)?;
    let bar = (std::io::stderr().is_terminal() && !args.run.json).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} runs  {elapsed_precise}  ETA {eta}",
            )
            .expect("valid template"),
        );
        bar
    });
    if !args.run.json {
        session_opts.hooks.push(Arc::new(RunStatusLines {
            bar: bar.clone(),
            params: varying.clone(),
        }));
    }
    let service = ServiceSession::create(
        project,
        ServiceOptions {
            session: session_opts,
            max_workers: args.run.max_workers,
            history_limit: None,
        },
    )?;
    let mut template = filter_config(&args.run.filter);
    template.load_versions = load_versions(&args.run.load_versions)?;
    template.runner = args.run.runner.clone();
    template.only_missing_outputs = args.run.only_missing_outputs;
    let configs: Vec<RunConfig> = combos
        .into_iter()
        .map(|params| {
            service.create_run_config(RunConfig {
                runtime_params: params,
                ..template.clone()
            })
        })
        .collect::<Result<_, _>>()?;
    let total = configs.len();
    if let Some(bar) = &bar {
        bar.set_length(total as u64);
    }
    let progress = |done: usize, _total: usize| {
        if let Some(bar) = &bar {
            bar.set_position(done as u64);
        }
    };
    let results = service.run_all(configs, &policy, Some(&progress))?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    service.close(weft_session::CloseMode::Wait);
    let failed = results
        .iter()
        .filter(|r| r.status != RunStatus::Succeeded)
        .count();
    if args.run.json {
        let list: Vec<Value> = results.iter().map(|r| result_json(r, &varying)).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        print!("{}", multirun_table(&results, &varying, &args.metrics));
        eprintln!(
            "{} runs: {} succeeded, {} not",
            results.len(),
            results.len() - failed,
            failed
        );
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

/// Prints one status line per finished run (above the progress bar on a terminal).
struct RunStatusLines {
    bar: Option<indicatif::ProgressBar>,
    params: Vec<String>,
}

impl Hook for RunStatusLines {
    fn after_run(&self, ctx: &RunContext, result: &RunResult) {
        let params = result
            .metadata
            .get("runtime_params")
            .cloned()
            .unwrap_or(Value::Null);
        let shown: Vec<String> = self
            .params
            .iter()
            .map(|k| {
                format!(
                    "{k}={}",
                    lookup_dotted(&params, k).map(compact).unwrap_or_default()
                )
            })
            .collect();
        let line = format!(
            "[{}/{}] {} {} in {:.3}s {}{}",
            ctx.run_index + 1,
            ctx.total_runs,
            result.run_id,
            result.status,
            result.duration().as_secs_f64(),
            shown.join(" "),
            result
                .error
                .as_ref()
                .map(|e| format!("  {}", e.message.lines().next().unwrap_or("")))
                .unwrap_or_default()
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

fn multirun_table(results: &[RunResult], varying: &[String], metrics: &[String]) -> String {
    let mut header = vec!["run_id".to_string()];
    header.extend(varying.iter().cloned());
    header.extend(["status".to_string(), "duration".to_string()]);
    header.extend(metrics.iter().cloned());
    header.push("error".into());
    let mut rows = vec![header];
    for r in results {
        let params = r.metadata.get("runtime_params").cloned().unwrap_or(Value::Null);
        let mut row = vec![r.run_id.clone()];
        for k in varying {
            row.push(lookup_dotted(&params, k).map(compact).unwrap_or_default());
        }
        row.push(r.status.to_string());
        row.push(format!("{:.3}s", r.duration().as_secs_f64()));
        for m in metrics {
            row.push(
                r.outputs
                    .get(m)
                    .map(|d| compact(&data_json(d)))
                    .unwrap_or_default(),
            );
        }
        row.push(
            r.error
                .as_ref()
                .map(|e| e.message.lines().next().unwrap_or("").to_string())
                .unwrap_or_default(),
        );
        rows.push(row);
    }
    weft_store::report::table(&rows)
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn config_show(
    project: &std::path::Path,
    section: Option<String>,
    params: &[String],
    show_credentials: bool,
    args: &SessionArgs,
) -> anyhow::Result<u8> {
    let runtime = runtime_params(params)?;
    let proj = weft_session::Project::open(project)?;
    let env = args.env.clone().unwrap_or_else(|| "local".to_string());
    let loader = proj.config_loader(args.conf_source.as_deref(), &env, runtime)?;
    let sections = ["parameters", "catalog", "globals", "credentials"];
    let wanted: Vec<&str> = match &section {
        Some(s) if sections.contains(&s.as_str()) => vec![s.as_str()],
        Some(s) => bail!("unknown section `{s}`; expected one of {}", sections.join(", ")),
        None => sections.to_vec(),
    };
    let mut out = serde_json::Map::new();
    for s in wanted {
        let mut value = if s == "parameters" {
            loader.parameters()?
        } else {
            loader.get(s)?
        };
        if s == "credentials" && !show_credentials {
            value = weft_config::mask_credentials(&value);
        }
        out.insert(s.to_string(), value);
    }
    let value = match section {
        Some(s) => out.remove(&s).unwrap_or(Value::Null),
        None => Value::Object(out),
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(0)
}

fn catalog_list(
    project: &std::path::Path,
    json_out: bool,
    pipelines: &[String],
    args: &SessionArgs,
    code: ProjectCode,
) -> anyhow::Result<u8> {
    let session = open_session(project, args, Value::Null, code, true)?;
    let context = session.load_context(&RunConfig::default())?;
    let mut rows: BTreeMap<String, Value> = BTreeMap::new();
    for info in context.catalog.list() {
        rows.insert(info.name.clone(), serde_json::to_value(&info)?);
    }
    let selected: Vec<&Pipeline> = if pipelines.is_empty() {
        session.pipelines().values().collect()
    } else {
        pipelines
            .iter()
            .map(|p| {
                session.pipelines().get(p).ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown pipeline `{p}`; available: {}",
                        session.pipelines().keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let mut used = BTreeSet::new();
    for p in selected {
        for n in p.nodes() {
            used.extend(n.inputs().iter().cloned());
            used.extend(n.outputs().iter().cloned());
        }
    }
    for name in used {
        if rows.contains_key(&name) {
            continue;
        }
        let info = if name == "parameters" || name.starts_with("params:") {
            json!({"name": name, "type_name": "parameters", "filepath": null, "versioned": false})
        } else if let Some(info) = context.catalog.describe(&name) {
            serde_json::to_value(info)?
        } else {
            json!({"name": name, "type_name": "MemoryDataset", "filepath": null, "versioned": false, "default": true})
        };
        rows.insert(name, info);
    }
    if json_out {
        let list: Vec<&Value> = rows.values().collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "datasets": list }))?);
    } else {
        let mut table = vec![vec![
            "name".to_string(),
            "type".into(),
            "path".into(),
            "versioned".into(),
        ]];
        for v in rows.values() {
            table.push(vec![
                v["name"].as_str().unwrap_or("").to_string(),
                v["type_name"].as_str().unwrap_or("").to_string(),
                v["filepath"].as_str().unwrap_or("-").to_string(),
                v["versioned"].as_bool().unwrap_or(false).to_string(),
            ]);
        }
        print!("{}", weft_store::report::table(&table));
    }
    Ok(0)
}

fn ident(s: &str) -> String {
    let mut out = String::from("n_");
    for c in s.chars() {
        out.push(if c.is_ascii_alphanumeric() { c } else { '_' });
    }
    out
}

fn mermaid(p: &Pipeline) -> String {
    let mut out = String::from("flowchart TD\n");
    let mut datasets = BTreeSet::new();
    for n in p.nodes() {
        out.push_str(&format!("    {}[\"{}\"]\n", ident(n.name()), n.name()));
        datasets.extend(n.inputs().iter().cloned());
        datasets.extend(n.outputs().iter().cloned());
    }
    for d in &datasets {
        out.push_str(&format!("    {}[(\"{}\")]\n", ident(&format!("ds {d}")), d));
    }
    for n in p.nodes() {
        for i in n.inputs() {
            out.push_str(&format!(
                "    {} --> {}\n",
                ident(&format!("ds {i}")),
                ident(n.name())
            ));
        }
        for o in n.outputs() {
            out.push_str(&format!(
                "    {} --> {}\n",
                ident(n.name()),
                ident(&format!("ds {o}"))
            ));
        }
    }
    out
}

fn dot(p: &Pipeline) -> String {
    let mut out = String::from("digraph pipeline {\n    rankdir=TB;\n");
    let mut datasets = BTreeSet::new();
    for n in p.nodes() {
        out.push_str(&format!("    \"{}\" [shape=box];\n", n.name()));
        datasets.extend(n.inputs().iter().cloned());
        datasets.extend(n.outputs().iter().cloned());
    }
    for d in &datasets {
        out.push_str(&format!("    \"ds:{d}\" [shape=cylinder, label=\"{d}\"];\n"));
    }
    for n in p.nodes() {
        for i in n.inputs() {
            out.push_str(&format!("    \"ds:{i}\" -> \"{}\";\n", n.name()));
        }
        for o in n.outputs() {
            out.push_str(&format!("    \"{}\" -> \"ds:{o}\";\n", n.name()));
        }
    }
    out.push_str("}\n");
    out
}

fn open_store(project: &std::path::Path, url: Option<&str>) -> anyhow::Result<weft_store::BlockingStore> {
    if let Some(url) = url {
        return Ok(weft_store::BlockingStore::open(url)?);
    }
    let proj = weft_session::Project::open(project)?;
    Ok(match &proj.settings().store.url {
        Some(url) => weft_store::BlockingStore::open(url)?,
        None => weft_store::BlockingStore::open_project_default(proj.root())?,
    })
}

fn runs(project: &std::path::Path, cmd: RunsCommand) -> anyhow::Result<u8> {
    match cmd {
        RunsCommand::List {
            session,
            status,
            limit,
            json,
            store,
        } => {
            let store = open_store(project, store.as_deref())?;
            let status = match status {
                Some(s) => Some(
                    s.parse::<weft_store::RunStatus>()
                        .map_err(|e| anyhow::anyhow!("--status: {e}"))?,
                ),
                None => None,
            };
            let runs = store.list_runs(&weft_store::RunFilter {
                session_id: session,
                status,
                limit,
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                print!("{}", weft_store::report::runs_table(&runs));
            }
            Ok(0)
        }
        RunsCommand::Show { run_id, json, store } => {
            let store = open_store(project, store.as_deref())?;
            let Some(run) = store.get_run(&run_id)? else {
                bail!("no run `{run_id}` in the store");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                print!("{}", weft_store::report::run_detail(&run));
            }
            Ok(0)
        }
        RunsCommand::Compare {
            run_a,
            run_b,
            json,
            store,
        } => {
            let store = open_store(project, store.as_deref())?;
            let a = store
                .get_run(&run_a)?
                .ok_or_else(|| anyhow::anyhow!("no run `{run_a}` in the store"))?;
            let b = store
                .get_run(&run_b)?
                .ok_or_else(|| anyhow::anyhow!("no run `{run_b}` in the store"))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&weft_store::report::compare_json(&a, &b))?
                );
            } else {
                print!("{}", weft_store::report::compare(&a, &b));
            }
            Ok(0)
        }
    }
}

const SCAFFOLD_PIPELINES: &str = r#"# Pipelines declared in YAML; `func` names a registered function.
# Built-ins: noop, identity, add_one, sum, concat, sleep_ms, spin_ms, fail.
__default__:
  nodes:
    - name: increment
      func: add_one
      inputs: params:start
      outputs: incremented
    - name: total
      func: sum
      inputs: [incremented, params:offset]
      outputs: total
"#;

const SCAFFOLD_CATALOG: &str = r#"# Datasets by name. Anything not declared here is kept in memory.
total:
  type: json.JSONDataset
  filepath: data/total.json
  versioned: true
"#;

const SCAFFOLD_PARAMETERS: &str = "start: 41\noffset: 0.5\n";

fn new_project(name: &str) -> anyhow::Result<u8> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("invalid project name `{name}`: use a plain directory name");
    }
    let root = std::path::Path::new(name);
    if root.exists() {
        bail!("`{name}` already exists; choose another name");
    }
    let files: [(&str, String); 7] = [
        (
            "weft.toml",
            format!("[project]\nname = \"{name}\"\ndefault_pipeline = \"__default__\"\n"),
        ),
        ("pipelines.yml", SCAFFOLD_PIPELINES.into()),
        ("conf/base/catalog.yml", SCAFFOLD_CATALOG.into()),
        ("conf/base/parameters.yml", SCAFFOLD_PARAMETERS.into()),
        ("conf/local/.gitkeep", String::new()),
        ("data/.gitkeep", String::new()),
        (
            ".gitignore",
            "/data/*\n!/data/.gitkeep\n/.weft/\n/logs/\n/conf/local/credentials*\n".into(),
        ),
    ];
    for (path, content) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("has parent"))?;
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("created project `{name}`; try: weft --project {name} run");
    Ok(0)
}
