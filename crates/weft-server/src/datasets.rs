//! `GET /v1/runs/{id}/datasets` and `GET /v1/runs/{id}/datasets/{name}`:
//! the files a run saved (charts included), as that run saved them.
//!
//! Datasets are found through the run's own catalog (weft-session's
//! [`ServiceSession::saved_datasets`]): the outputs of the nodes it ran,
//! versioned ones pinned to the version it recorded, run-scoped ones in its
//! own folder, others at their configured path (`pinned: false`: a later
//! run may have replaced the file). A name is only ever looked up among
//! those outputs, never joined to a path, so no name reaches a file outside
//! its dataset's own location; names with `/`, `\` or control characters
//! are refused outright.

use std::path::Path;
use std::sync::Arc;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use weft_session::{SavedDataset, ServiceSession};
use weft_store::RunRecord;

use crate::error::ServerError;
use crate::server::Server;

/// What a dataset's file is served as, by its extension: the content type
/// and whether a browser may show it inline.
fn content_type(path: &Path) -> (&'static str, bool) {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "png" => ("image/png", true),
        "jpg" | "jpeg" => ("image/jpeg", true),
        "gif" => ("image/gif", true),
        "webp" => ("image/webp", true),
        "svg" => ("image/svg+xml", true),
        "json" | "geojson" => ("application/json", true),
        "jsonl" | "ndjson" => ("application/x-ndjson", true),
        "csv" => ("text/csv; charset=utf-8", true),
        "tsv" => ("text/tab-separated-values; charset=utf-8", true),
        "txt" | "log" | "md" | "sql" => ("text/plain; charset=utf-8", true),
        "yml" | "yaml" => ("application/yaml", true),
        "parquet" | "pq" => ("application/vnd.apache.parquet", false),
        "xlsx" => (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            false,
        ),
        "xls" => ("application/vnd.ms-excel", false),
        "ods" => ("application/vnd.oasis.opendocument.spreadsheet", false),
        "pkl" | "pickle" => ("application/octet-stream", false),
        // HTML and anything else: bytes to download, never a page.
        _ => ("application/octet-stream", false),
    }
}

/// `image` (PNG/SVG charts), `plotly` (Plotly figure JSON) or `None`.
fn chart_kind(type_name: &str) -> Option<&'static str> {
    if weft_charts::IMAGE_TYPE_NAMES.contains(&type_name) {
        Some("image")
    } else if weft_charts::PLOTLY_JSON_TYPE_NAMES.contains(&type_name)
        || weft_charts::PLOTLY_TYPE_NAMES.contains(&type_name)
    {
        Some("plotly")
    } else {
        None
    }
}

/// Refuses names that could only be meant as paths (`.` and `..` are
/// simply no dataset of the run: 404).
fn check_name(name: &str) -> Result<(), ServerError> {
    if name.is_empty() || name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        return Err(ServerError::BadRequest {
            message: format!(
                "`{}` is not a dataset name (names have no `/`, `\\` or control characters)",
                name.escape_debug()
            ),
            path: Some("name".into()),
        });
    }
    Ok(())
}

/// The run and its saved datasets. The session's project is the live
/// session's when it is live, else opened again from the project folder
/// the store recorded for it.
async fn saved(server: &Arc<Server>, run_id: &str) -> Result<(RunRecord, Vec<SavedDataset>), ServerError> {
    let record = server.stored_run(run_id).await?;
    let service: Arc<ServiceSession> = match server.live(&record.session_id) {
        Some(s) => Arc::clone(s.service()),
        None => {
            let session = server
                .store()
                .get_server_session(&record.session_id)
                .await?
                .ok_or_else(|| {
                    ServerError::Internal(format!(
                        "run `{run_id}` belongs to session `{}`, which the store does not have",
                        record.session_id
                    ))
                })?;
            let mut options = server.config().session_options.clone();
            options.env = session.env.clone().or(options.env);
            let project = std::path::PathBuf::from(&session.project_path);
            let id = session.session_id.clone();
            let opened = tokio::task::spawn_blocking(move || {
                crate::worker::open_served_session(&project, options, &id, 1)
            })
            .await
            .map_err(|e| ServerError::Internal(format!("opening the project failed: {e}")))?;
            Arc::new(opened.map_err(|e| {
                ServerError::Conflict(format!(
                    "the project of session `{}` ({}) no longer opens, so run `{run_id}`'s datasets cannot be found: {e}",
                    session.session_id, session.project_path
                ))
            })?)
        }
    };
    let r = record.clone();
    let found = tokio::task::spawn_blocking(move || service.saved_datasets(&r))
        .await
        .map_err(|e| ServerError::Internal(format!("finding the run's datasets failed: {e}")))?
        .map_err(|e| {
            ServerError::Conflict(format!(
                "the catalog of run `{run_id}` (env `{}`) cannot be built again: {e}",
                record.env
            ))
        })?;
    Ok((record, found))
}

/// The JSON of one saved file.
fn view(run_id: &str, d: &SavedDataset) -> Value {
    let file = d.file();
    let (path, available) = match &file {
        Some(Ok(p)) => (Some(p.clone()), true),
        _ => (None, false),
    };
    let size = path
        .as_ref()
        .filter(|_| d.is_local())
        .and_then(|p| std::fs::metadata(p).ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len());
    let available = available && (size.is_some() || !d.is_local());
    let (kind, _) = path
        .as_deref()
        .map_or(("application/octet-stream", false), content_type);
    json!({
        "name": d.name,
        "type": d.type_name,
        "version": d.version,
        "pinned": d.pinned,
        "content_type": kind,
        "size": size,
        "available": available,
        "chart": chart_kind(&d.type_name),
        "url": format!("/v1/runs/{}/datasets/{}", urlencode(run_id), urlencode(&d.name)),
    })
}

/// Percent-encodes everything but unreserved characters.
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /v1/runs/{id}/datasets`.
pub(crate) async fn list(server: Arc<Server>, run_id: String) -> Result<Response, ServerError> {
    let (record, found) = saved(&server, &run_id).await?;
    let list = tokio::task::spawn_blocking(move || {
        found
            .iter()
            .filter(|d| d.has_file())
            .map(|d| view(&record.run_id, d))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ServerError::Internal(format!("listing the run's datasets failed: {e}")))?;
    Ok(axum::Json(json!({ "run_id": run_id, "datasets": list })).into_response())
}

/// `GET /v1/runs/{id}/datasets/{name}`: the file's bytes.
pub(crate) async fn fetch(
    server: Arc<Server>,
    run_id: String,
    name: String,
) -> Result<Response, ServerError> {
    check_name(&name)?;
    let (_, found) = saved(&server, &run_id).await?;
    let what = format!("dataset of run {run_id}");
    let Some(d) = found.into_iter().find(|d| d.name == name) else {
        return Err(ServerError::Missing {
            message: format!(
                "run `{run_id}` saved no dataset `{name}` (it lists the outputs of the nodes it ran at /v1/runs/{run_id}/datasets)"
            ),
        });
    };
    if !d.has_file() {
        let why = if d.type_name == "MemoryDataset" {
            "a MemoryDataset keeps its data in memory only".to_string()
        } else if d.storage().is_some() {
            format!("it is versioned and run `{run_id}` recorded no version of it")
        } else {
            format!("a {} is not one file (a folder, a table or memory)", d.type_name)
        };
        return Err(ServerError::Missing {
            message: format!("dataset `{name}` of run `{run_id}` has no file to serve: {why}"),
        });
    }
    let limit = server.config().dataset_limit;
    let served = tokio::task::spawn_blocking(move || read(&d, limit))
        .await
        .map_err(|e| ServerError::Internal(format!("reading the {what} failed: {e}")))??;
    Ok(served)
}

/// Reads the file (at most `limit` bytes) and answers it with its content
/// type; SVG and everything else carry `Content-Security-Policy: sandbox`.
fn read(d: &SavedDataset, limit: u64) -> Result<Response, ServerError> {
    let name = &d.name;
    let path = match d.file() {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            return Err(ServerError::Missing {
                message: format!("the file of dataset `{name}` is gone: {e}"),
            });
        }
        None => {
            return Err(ServerError::Missing {
                message: format!("dataset `{name}` has no file"),
            });
        }
    };
    let bytes = if d.is_local() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| ServerError::Missing {
            message: format!("the file of dataset `{name}` ({}) is gone: {e}", path.display()),
        })?;
        if !meta.is_file() {
            return Err(ServerError::Missing {
                message: format!(
                    "dataset `{name}`'s path {} is not a regular file (a folder or a symbolic link is not served)",
                    path.display()
                ),
            });
        }
        if meta.len() > limit {
            return Err(ServerError::DatasetTooLarge {
                dataset: name.clone(),
                size: meta.len(),
                limit,
            });
        }
        std::fs::read(&path).map_err(|source| ServerError::Io {
            context: format!("reading dataset `{name}` ({})", path.display()),
            source,
        })?
    } else {
        let storage = d.storage().ok_or_else(|| ServerError::Missing {
            message: format!("dataset `{name}` has no file"),
        })?;
        let bytes = storage.read(name, &path).map_err(|e| ServerError::Missing {
            message: format!("the object of dataset `{name}` cannot be read: {e}"),
        })?;
        if bytes.len() as u64 > limit {
            return Err(ServerError::DatasetTooLarge {
                dataset: name.clone(),
                size: bytes.len() as u64,
                limit,
            });
        }
        bytes
    };
    let (kind, inline) = content_type(&path);
    let file_name: String = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_else(|| name.clone())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut r = ([(header::CONTENT_TYPE, kind)], bytes).into_response();
    let h = r.headers_mut();
    let disposition = format!(
        "{}; filename=\"{file_name}\"",
        if inline { "inline" } else { "attachment" }
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    // An SVG opened directly runs no script and loads nothing.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
    );
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "x-weft-pinned",
        HeaderValue::from_static(if d.pinned { "true" } else { "false" }),
    );
    if let Some(v) = d.version.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
        h.insert("x-weft-version", v);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type(Path::new("a/b.PNG")), ("image/png", true));
        assert_eq!(content_type(Path::new("c.svg")).0, "image/svg+xml");
        assert_eq!(content_type(Path::new("c.json")).0, "application/json");
        assert_eq!(content_type(Path::new("c.csv")).0, "text/csv; charset=utf-8");
        assert_eq!(
            content_type(Path::new("c.html")),
            ("application/octet-stream", false)
        );
        assert_eq!(
            content_type(Path::new("noext")),
            ("application/octet-stream", false)
        );
    }

    #[test]
    fn path_like_names_are_refused() {
        for bad in ["a/b", "../x", "a\\b", "a\0b", "\u{9a}", ""] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["chart", "ns.chart", "cars@csv", "a..b"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn names_are_encoded_in_urls() {
        assert_eq!(urlencode("a b/c"), "a%20b%2Fc");
        assert_eq!(urlencode("ns.x_y-z"), "ns.x_y-z");
    }
}
