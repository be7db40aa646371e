//! Inspection commands: `pipeline list/show`, `config show`, `catalog list`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use serde_json::{Value, json};
use weft_pipeline::Pipeline;
use weft_session::{ProjectCode, RunConfig};

use super::*;

pub(super) fn config_show(
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

pub(super) fn catalog_list(
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
