//! Inspection commands: `pipeline list/show`, `config show`, `catalog list`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use weft_pipeline::Pipeline;
use weft_session::{Project, ProjectCode, RunConfig, Session, StoreChoice};

use super::*;
use crate::error::EXIT_OK;

/// A session for reading the project (nothing is recorded).
pub(super) fn open_for_inspection(
    edge: &Edge<'_>,
    args: &SessionArgs,
    code: ProjectCode,
) -> anyhow::Result<Session> {
    let project = Project::open(&edge.project)?;
    let mut settings = crate::settings::resolve(args, None, edge.environment, &project)?;
    settings.store = StoreChoice::Disabled;
    let options = session_options(args, &settings, Value::Null, code, Default::default())?;
    Ok(Session::create(&edge.project, options)?)
}

pub(super) fn pipeline(
    edge: &Edge<'_>,
    cmd: PipelineCommand,
    code: ProjectCode,
    io: &mut Io<'_>,
) -> anyhow::Result<u8> {
    match cmd {
        PipelineCommand::List { json, session } => {
            let s = open_for_inspection(edge, &session, code)?;
            if json {
                let list: Vec<Value> = s
                    .pipelines()
                    .iter()
                    .map(|(n, p)| json!({"name": n, "nodes": p.len()}))
                    .collect();
                write_json(io.out, &json!({ "pipelines": list }))?;
            } else {
                for (n, p) in s.pipelines() {
                    writeln!(io.out, "{n}  ({} nodes)", p.len())?;
                }
            }
        }
        PipelineCommand::Show {
            json,
            filter,
            session,
        } => {
            let s = open_for_inspection(edge, &session, code)?;
            let pipeline = s.select_pipeline(&filter_config(&filter))?;
            if json {
                let nodes: Vec<Value> = pipeline.nodes().iter().map(node_json).collect();
                write_json(io.out, &json!({ "nodes": nodes }))?;
            } else {
                for n in pipeline.nodes() {
                    let tags = if n.tags().is_empty() {
                        String::new()
                    } else {
                        format!(
                            "  tags: {}",
                            n.tags().iter().cloned().collect::<Vec<_>>().join(",")
                        )
                    };
                    writeln!(
                        io.out,
                        "{}  [{}]  ({}) -> ({}){tags}",
                        n.name(),
                        n.func_name(),
                        n.inputs().join(", "),
                        n.outputs().join(", "),
                    )?;
                }
            }
        }
    }
    Ok(EXIT_OK)
}

pub(super) fn config_show(
    edge: &Edge<'_>,
    section: Option<String>,
    params: &[String],
    show_credentials: bool,
    args: &SessionArgs,
    io: &mut Io<'_>,
) -> anyhow::Result<u8> {
    let runtime = runtime_params(params)?;
    let sections = ["parameters", "catalog", "globals", "credentials"];
    let wanted: Vec<&str> = match &section {
        Some(s) if sections.contains(&s.as_str()) => vec![s.as_str()],
        Some(s) => {
            return Err(UsageError::new(format!(
                "--section: unknown section `{s}`; expected one of {}",
                sections.join(", ")
            ))
            .into());
        }
        None => sections.to_vec(),
    };
    let proj = Project::open(&edge.project)?;
    let settings = crate::settings::resolve(args, None, edge.environment, &proj)?;
    let loader = proj
        .config_loader(args.conf_source.as_deref(), &settings.env, runtime)?
        .with_environment(settings.variables.clone());
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
    write_json(io.out, &value)?;
    Ok(EXIT_OK)
}

pub(super) fn catalog_list(
    edge: &Edge<'_>,
    json_out: bool,
    pipelines: &[String],
    args: &SessionArgs,
    code: ProjectCode,
    io: &mut Io<'_>,
) -> anyhow::Result<u8> {
    let session = open_for_inspection(edge, args, code)?;
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
                    UsageError::new(format!(
                        "unknown pipeline `{p}`; available: {}",
                        session.pipelines().keys().cloned().collect::<Vec<_>>().join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?
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
        write_json(io.out, &json!({ "datasets": list }))?;
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
        write!(io.out, "{}", weft_store::report::table(&table))?;
    }
    Ok(EXIT_OK)
}
