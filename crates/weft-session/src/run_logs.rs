//! Reading one run's log lines. The CLI's log layer writes every run of a
//! session to `<project>/logs/<session_id>.log` (each line prefixed with
//! its run id) and keeps `<project>/logs/<session_id>.index` (`RUN_ID
//! START` when a run starts, `RUN_ID START END` when it ends: byte offsets
//! into the log). Here is the reader, shared by `weft runs logs` and the
//! server's `GET /v1/runs/{id}/logs`.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use crate::SessionError;

/// The folder of a project's log files.
pub fn logs_dir(project: &Path) -> PathBuf {
    project.join("logs")
}

/// A run or session id usable as a file name and as a line prefix.
pub fn safe_component(component: &str) -> bool {
    !component.is_empty()
        && component != ".."
        && component != "."
        && !component.contains(['/', '\\'])
        && !component.contains(char::is_whitespace)
}

/// Where a run's lines are in its session log.
struct Span {
    session_id: String,
    start: u64,
    end: Option<u64>,
}

/// The index entry of `run_id` in one session's index, if any.
fn find_in_index(path: &Path, run_id: &str) -> Result<Option<(u64, Option<u64>)>, SessionError> {
    let text = std::fs::read_to_string(path).map_err(|source| SessionError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut found = None;
    for (i, line) in text.lines().enumerate() {
        let mut parts = line.split(' ');
        if parts.next() != Some(run_id) {
            continue;
        }
        let malformed = || SessionError::MalformedLogIndex {
            path: path.to_path_buf(),
            line: i + 1,
        };
        let start = parts.next().and_then(|s| s.parse().ok()).ok_or_else(malformed)?;
        let end = match parts.next() {
            None => None,
            Some(e) => Some(e.parse().map_err(|_| malformed())?),
        };
        found = Some((start, end));
    }
    Ok(found)
}

/// Finds the session whose index names `run_id`. Ids start with their UTC
/// creation time, so only sessions created no later than the run are
/// candidates, newest first.
fn locate(dir: &Path, run_id: &str) -> Result<Option<Span>, SessionError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SessionError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut sessions: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".index").map(str::to_string)
        })
        .filter(|session| session.as_str() <= run_id)
        .collect();
    sessions.sort_unstable_by(|a, b| b.cmp(a));
    for session_id in sessions {
        let index = dir.join(format!("{session_id}.index"));
        if let Some((start, end)) = find_in_index(&index, run_id)? {
            return Ok(Some(Span {
                session_id,
                start,
                end,
            }));
        }
    }
    Ok(None)
}

/// The log lines of one run (as written, without the run-id prefix, each
/// ending in a newline), read from the session logs under `dir` (see
/// [`logs_dir`]); `None` when no session log names the run.
///
/// Only the run's part of its session log is read: from the run's start
/// offset to its end offset (to the end of the file while it runs).
pub fn run_log(dir: &Path, run_id: &str) -> Result<Option<String>, SessionError> {
    if !safe_component(run_id) {
        return Ok(None);
    }
    let Some(span) = locate(dir, run_id)? else {
        return Ok(None);
    };
    let path = dir.join(format!("{}.log", span.session_id));
    let io = |source| SessionError::Io {
        path: path.clone(),
        source,
    };
    let mut file = File::open(&path).map_err(io)?;
    file.seek(SeekFrom::Start(span.start)).map_err(io)?;
    let mut bytes = Vec::new();
    match span.end {
        Some(end) => file
            .take(end.saturating_sub(span.start))
            .read_to_end(&mut bytes)
            .map_err(io)?,
        None => file.read_to_end(&mut bytes).map_err(io)?,
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix(run_id).and_then(|r| r.strip_prefix(' ')) {
            out.push_str(rest);
            if !rest.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    Ok(Some(out))
}
