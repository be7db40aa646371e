//! `weft runs ...` and `weft sessions ...`: the run store.

use anyhow::bail;

use super::*;

pub(super) fn open_store(
    project: &std::path::Path,
    url: Option<&str>,
) -> anyhow::Result<weft_store::BlockingStore> {
    if let Some(url) = url {
        return Ok(weft_store::BlockingStore::open(url)?);
    }
    let proj = weft_session::Project::open(project)?;
    Ok(match &proj.settings().store.url {
        Some(url) => weft_store::BlockingStore::open(url)?,
        None => weft_store::BlockingStore::open_project_default(proj.root())?,
    })
}

pub(super) fn runs(project: &std::path::Path, cmd: RunsCommand) -> anyhow::Result<u8> {
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
