//! `weft runs ...` and `weft sessions ...`: the run store.

use anyhow::bail;
use weft_session::{Project, StoreChoice};
use weft_store::BlockingStore;

use super::*;
use crate::error::EXIT_OK;
use crate::settings::store_choice;

/// The store by the precedence rule: `--store`, `WEFT_STORE_URL`,
/// `weft.toml`, the project's default. The project is opened only when
/// neither the flag nor the environment names a store.
pub(super) fn open_store(edge: &Edge<'_>, flag: Option<&str>) -> anyhow::Result<BlockingStore> {
    if let StoreChoice::Url(url) = store_choice(flag, edge.environment, None)? {
        return Ok(BlockingStore::open(&url)?);
    }
    let project = Project::open(&edge.project)?;
    let choice = store_choice(
        None,
        &crate::settings::Environment::empty(),
        project.settings().store.url.as_deref(),
    )?;
    Ok(match choice {
        StoreChoice::Url(url) => BlockingStore::open(&url)?,
        _ => BlockingStore::open_project_default(project.root())?,
    })
}

pub(super) fn sessions(edge: &Edge<'_>, cmd: SessionsCommand, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let SessionsCommand::List { json, limit, store } = cmd;
    let store = open_store(edge, store.as_deref())?;
    let sessions = store.list_sessions(limit)?;
    if json {
        write_json(io.out, &sessions)?;
    } else {
        write!(io.out, "{}", weft_store::report::sessions_table(&sessions))?;
    }
    Ok(EXIT_OK)
}

pub(super) fn runs(edge: &Edge<'_>, cmd: RunsCommand, io: &mut Io<'_>) -> anyhow::Result<u8> {
    match cmd {
        RunsCommand::List {
            session,
            status,
            limit,
            json,
            store,
        } => {
            let status = status
                .map(|s| {
                    s.parse::<weft_store::RunStatus>()
                        .map_err(|e| UsageError::new(format!("--status: {e}")))
                })
                .transpose()?;
            let store = open_store(edge, store.as_deref())?;
            let runs = store.list_runs(&weft_store::RunFilter {
                session_id: session,
                status,
                limit,
                ..Default::default()
            })?;
            if json {
                write_json(io.out, &runs)?;
            } else {
                write!(io.out, "{}", weft_store::report::runs_table(&runs))?;
            }
        }
        RunsCommand::Show { run_id, json, store } => {
            let store = open_store(edge, store.as_deref())?;
            let Some(run) = store.get_run(&run_id)? else {
                bail!("no run `{run_id}` in the store");
            };
            if json {
                write_json(io.out, &run)?;
            } else {
                write!(io.out, "{}", weft_store::report::run_detail(&run))?;
            }
        }
        RunsCommand::Logs { run_id } => {
            let dir = crate::logging::logs_dir(&edge.project);
            let Some(lines) = crate::logging::run_log(&dir, &run_id)? else {
                bail!("no log of run `{run_id}` under {}", dir.display());
            };
            io.out.write_all(lines.as_bytes())?;
        }
        RunsCommand::Compare {
            run_a,
            run_b,
            json,
            store,
        } => {
            let store = open_store(edge, store.as_deref())?;
            let a = store
                .get_run(&run_a)?
                .ok_or_else(|| anyhow::anyhow!("no run `{run_a}` in the store"))?;
            let b = store
                .get_run(&run_b)?
                .ok_or_else(|| anyhow::anyhow!("no run `{run_b}` in the store"))?;
            if json {
                write_json(io.out, &weft_store::report::compare_json(&a, &b))?;
            } else {
                write!(io.out, "{}", weft_store::report::compare(&a, &b))?;
            }
        }
        RunsCommand::Cancel { run_id, .. } => {
            return Err(UsageError::new(format!(
                "weft runs cancel {run_id}: cancelling needs a server (--server URL or WEFT_SERVER)"
            ))
            .into());
        }
        RunsCommand::Answer { run_id, .. } => {
            return Err(UsageError::new(format!(
                "weft runs answer {run_id}: only a server keeps runs waiting for input (--server URL or WEFT_SERVER); \
                 a local `weft run` asks on the terminal or takes --input NODE=FILE"
            ))
            .into());
        }
    }
    Ok(EXIT_OK)
}
