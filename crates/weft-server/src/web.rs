//! The web page served by `weft serve` at `/` and `/ui/...`: server-rendered
//! HTML shells and one small vanilla script ([`APP_JS`]) that reads the JSON
//! API and the events stream, with the pipeline drawn server-side as SVG
//! ([`layout`]). Assets are embedded in the binary and served under names
//! carrying a hash of their content (`Cache-Control: immutable`); pages are
//! `no-cache` with an `ETag`.
//!
//! The shells hold no data, so they are served without a token. The script
//! asks for the API token once and keeps it in `sessionStorage` (gone when
//! the tab closes); every API call, the events stream included, sends it as
//! `Authorization: Bearer` (the stream is read with `fetch`, not
//! `EventSource`, which cannot send headers), so the token never appears in
//! a URL or a server log. Pages carry a `Content-Security-Policy` that
//! allows only this server's script, styles and API.

pub mod layout;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use weft_pipeline::Pipeline;

use crate::server::Server;
use layout::escape;

/// The page script.
pub const APP_JS: &str = include_str!("web/app.js");
/// The page stylesheet.
pub const APP_CSS: &str = include_str!("web/app.css");

/// 64-bit FNV-1a, computed at compile time for the assets' names.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

const JS_HASH: u64 = fnv1a(APP_JS.as_bytes());
const CSS_HASH: u64 = fnv1a(APP_CSS.as_bytes());

static JS_NAME: LazyLock<String> = LazyLock::new(|| format!("app.{:012x}.js", JS_HASH & 0xffff_ffff_ffff));
static CSS_NAME: LazyLock<String> = LazyLock::new(|| format!("app.{:012x}.css", CSS_HASH & 0xffff_ffff_ffff));

/// The versioned path of the script (`/ui/assets/app.HASH.js`).
pub fn script_path() -> String {
    format!("/ui/assets/{}", *JS_NAME)
}

/// The versioned path of the stylesheet.
pub fn style_path() -> String {
    format!("/ui/assets/{}", *CSS_NAME)
}

/// The page routes (no token: the shells carry no data).
pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/", get(sessions_page))
        .route("/ui", get(sessions_page))
        .route("/ui/", get(sessions_page))
        .route("/ui/sessions/{id}", get(session_page))
        .route("/ui/sessions/{id}/pipelines/{name}", get(pipeline_page))
        .route("/ui/runs/{id}", get(run_page))
        .route("/ui/compare", get(compare_page))
        .route("/ui/assets/{file}", get(asset))
}

async fn sessions_page(headers: HeaderMap) -> Response {
    page(&headers, "sessions", "Sessions", &[])
}

async fn session_page(headers: HeaderMap, Path(id): Path<String>) -> Response {
    page(&headers, "session", &format!("Session {id}"), &[("session", &id)])
}

async fn pipeline_page(headers: HeaderMap, Path((id, name)): Path<(String, String)>) -> Response {
    page(
        &headers,
        "pipeline",
        &format!("Pipeline {name}"),
        &[("session", &id), ("pipeline", &name)],
    )
}

async fn run_page(headers: HeaderMap, Path(id): Path<String>) -> Response {
    page(&headers, "run", &format!("Run {id}"), &[("run", &id)])
}

async fn compare_page(headers: HeaderMap) -> Response {
    page(&headers, "compare", "Compare runs", &[])
}

async fn asset(headers: HeaderMap, Path(file): Path<String>) -> Response {
    let (body, kind, etag) = if file == *JS_NAME {
        (APP_JS, "text/javascript; charset=utf-8", JS_HASH)
    } else if file == *CSS_NAME {
        (APP_CSS, "text/css; charset=utf-8", CSS_HASH)
    } else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-cache")],
            format!(
                "no asset `{file}` (this server has {} and {})",
                *JS_NAME, *CSS_NAME
            ),
        )
            .into_response();
    };
    respond(
        &headers,
        body.to_string(),
        kind,
        "public, max-age=31536000, immutable",
        etag,
    )
}

/// A `200` with `ETag`, or a `304` when `If-None-Match` has it.
fn respond(
    headers: &HeaderMap,
    body: String,
    kind: &'static str,
    cache: &'static str,
    hash: u64,
) -> Response {
    let etag = format!("\"{hash:016x}\"");
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, kind)], body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

/// The HTML shell of a page: navigation, a token box and an empty `<main>`
/// that the script fills; `data` goes on `<main>` as `data-*` attributes.
pub fn render_page(kind: &str, title: &str, data: &[(&str, &str)]) -> String {
    let attrs: String = data
        .iter()
        .map(|(k, v)| format!(r#" data-{}="{}""#, escape(k), escape(v)))
        .collect();
    format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · weft</title>
<link rel="stylesheet" href="{css}">
<script defer src="{js}"></script>
</head>
<body>
<a class="skip" href="#app">Skip to content</a>
<header class="top">
<nav aria-label="main"><a class="brand" href="/">weft</a> <a href="/">Sessions</a></nav>
<form id="token-form" class="token" autocomplete="off">
<label for="token-input">API token</label>
<input id="token-input" type="password" placeholder="bearer token (if the server has one)">
<button type="submit">Use</button>
<span id="token-state" role="status"></span>
</form>
</header>
<main id="app" data-page="{kind}"{attrs} tabindex="-1">
<h1>{title}</h1>
<p class="muted" id="loading">Loading…</p>
<noscript>This page needs JavaScript; the same data is at <a href="/v1/openapi.json">the JSON API</a>.</noscript>
</main>
</body>
</html>
"##,
        title = escape(title),
        kind = escape(kind),
        css = style_path(),
        js = script_path(),
    )
}

/// What a page may load: its own script, styles and API only (inline
/// styles for the SVG drawings; no inline script, no frames).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn page(headers: &HeaderMap, kind: &str, title: &str, data: &[(&str, &str)]) -> Response {
    let body = render_page(kind, title, data);
    let hash = fnv1a(body.as_bytes());
    let mut r = respond(headers, body, "text/html; charset=utf-8", "no-cache", hash);
    r.headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    r.headers_mut()
        .insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

/// Every namespace of a node (`a.b.c` gives `a`, `a.b`, `a.b.c`).
fn namespace_prefixes(ns: &str, out: &mut BTreeSet<String>) {
    let mut acc = String::new();
    for part in ns.split('.') {
        if !acc.is_empty() {
            acc.push('.');
        }
        acc.push_str(part);
        out.insert(acc.clone());
    }
}

fn namespaces_and_tags(p: &Pipeline) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut namespaces = BTreeSet::new();
    let mut tags = BTreeSet::new();
    for n in p.nodes() {
        if let Some(ns) = n.namespace() {
            namespace_prefixes(ns, &mut namespaces);
        }
        tags.extend(n.tags().iter().cloned());
    }
    (namespaces, tags)
}

/// The summary of a pipeline in `GET /v1/sessions/{id}/pipelines`.
pub fn pipeline_summary(name: &str, p: &Pipeline) -> Value {
    let (namespaces, tags) = namespaces_and_tags(p);
    json!({
        "name": name,
        "nodes": p.len(),
        "layers": p.layers().len(),
        "namespaces": namespaces,
        "tags": tags,
    })
}

/// The structure of a pipeline in `GET /v1/sessions/{id}/pipelines/{name}`:
/// nodes in topological order with their layer, datasets, tags and
/// namespace; `edges` as `[from, to]` indices into `nodes`.
pub fn pipeline_view(name: &str, p: &Pipeline) -> Value {
    let (namespaces, tags) = namespaces_and_tags(p);
    let mut layer_of = vec![0usize; p.len()];
    let mut i = 0;
    let layers = p.layers();
    for (l, row) in layers.iter().enumerate() {
        for _ in row {
            if let Some(slot) = layer_of.get_mut(i) {
                *slot = l;
            }
            i += 1;
        }
    }
    let nodes: Vec<Value> = p
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({
                "name": n.name(),
                "short_name": n.short_name(),
                "func": n.func_name(),
                "inputs": n.inputs(),
                "outputs": n.outputs(),
                "tags": n.tags(),
                "namespace": n.namespace(),
                "layer": layer_of[i],
            })
        })
        .collect();
    let edges: Vec<[usize; 2]> = p
        .parents()
        .iter()
        .enumerate()
        .flat_map(|(c, ps)| ps.iter().map(move |&q| [q, c]))
        .collect();
    json!({
        "name": name,
        "nodes": nodes,
        "edges": edges,
        "layers": layers.len(),
        "namespaces": namespaces,
        "tags": tags,
        "inputs": p.inputs(),
        "outputs": p.outputs(),
    })
}

/// A pipeline's drawing answered as `image/svg+xml`, with the number of
/// nodes and boxes in headers.
pub fn svg_response(drawing: layout::Drawing) -> Response {
    let mut r = (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        drawing.svg,
    )
        .into_response();
    for (k, v) in [("x-weft-nodes", drawing.nodes), ("x-weft-boxes", drawing.boxes)] {
        if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_names_carry_their_hash() {
        assert!(script_path().starts_with("/ui/assets/app."));
        assert!(script_path().ends_with(".js"));
        assert!(style_path().ends_with(".css"));
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
    }

    #[test]
    fn shells_escape_what_comes_from_the_url() {
        let html = render_page("run", "Run <x>", &[("run", "\"><script>")]);
        assert!(html.contains("data-run=\"&quot;&gt;&lt;script&gt;\""));
        assert!(html.contains("Run &lt;x&gt;"));
        assert!(!html.contains("<script>\""));
    }

    #[test]
    fn namespace_prefixes_are_listed() {
        let mut out = BTreeSet::new();
        namespace_prefixes("a.b.c", &mut out);
        assert_eq!(out.into_iter().collect::<Vec<_>>(), ["a", "a.b", "a.b.c"]);
    }
}
