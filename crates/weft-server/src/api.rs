//! The HTTP API: `fn app(server) -> Router`. Every error is a JSON body
//! `{"error": {"code", "message", "path"?, "problems"?}}` with the status of
//! [`ServerError::status`]; no input yields a 500 unless the store fails.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use weft_core::RunStatus;
use weft_session::{CloseMode, RunConfig};
use weft_store::{RunFilter, RunRecord};

use crate::error::ServerError;
use crate::events::{Next as EventNext, resume_cursor};
use crate::server::{CreateSession, Server, session_view};
use crate::states::SessionState;

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        match &self {
            ServerError::BadRequest { path: Some(p), .. } | ServerError::InvalidField { path: p, .. } => {
                error["path"] = json!(p)
            }
            ServerError::Invalid { problems } => error["problems"] = json!(problems),
            ServerError::InvalidInput { node, problems } => {
                error["node"] = json!(node);
                error["problems"] = json!(problems.iter().map(ToString::to_string).collect::<Vec<_>>());
                error["errors"] = json!(problems);
            }
            ServerError::Session(e) => error["problems"] = json!(crate::error::problems_of(e)),
            _ => {}
        }
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!("request failed: {self}");
        }
        let mut response = (status, axum::Json(json!({ "error": error }))).into_response();
        if let ServerError::TooMany { retry_after_s, .. } = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if matches!(self, ServerError::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

type ApiResult = Result<Response, ServerError>;

/// The router over a server.
pub fn app(server: Arc<Server>) -> Router {
    let v1 = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/sessions", post(create_session).get(list_sessions))
        .route("/sessions/{id}", get(get_session).delete(delete_session))
        .route("/sessions/{id}/heartbeat", post(heartbeat))
        .route("/sessions/{id}/runs", post(submit_runs).get(list_session_runs))
        .route("/sessions/{id}/events", get(events))
        .route("/sessions/{id}/pipelines", get(list_pipelines))
        .route("/sessions/{id}/pipelines/{name}", get(get_pipeline))
        .route("/sessions/{id}/pipelines/{name}/svg", get(pipeline_svg))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/cancel", post(cancel_run))
        .route("/runs/{id}/input", post(provide_input))
        .route("/runs/{id}/logs", get(run_logs))
        .route("/runs/{id}/datasets", get(list_run_datasets))
        .route("/runs/{id}/datasets/{name}", get(get_run_dataset));
    Router::new()
        .nest("/v1", v1)
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&server), auth))
        .route("/healthz", get(healthz))
        .merge(crate::web::routes())
        .with_state(server)
}

/// Whether the request may pass: no token configured, or `Authorization:
/// Bearer TOKEN` with the token (compared in constant time). Shared by the
/// server's and the workers' routers.
pub(crate) fn bearer_accepted(headers: &HeaderMap, token: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

async fn auth(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    if !bearer_accepted(request.headers(), server.config().token.as_deref()) {
        return ServerError::Unauthorized.into_response();
    }
    next.run(request).await
}

async fn not_found(request: Request) -> ServerError {
    ServerError::NotFound {
        what: "route",
        id: request.uri().path().to_string(),
    }
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn readyz(State(server): State<Arc<Server>>) -> Response {
    if server.accepting() {
        axum::Json(json!({"status": "ready"})).into_response()
    } else {
        ServerError::ShuttingDown.into_response()
    }
}

async fn metrics(State(server): State<Arc<Server>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        server.render_metrics().await,
    )
        .into_response()
}

async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}

/// Parses a JSON body, naming the path of a bad field.
/// A `T` read only from a JSON object. serde's derived structs also take
/// an array of their fields in order (`"resources": [null, null]`), which
/// the API's schemas do not allow; inside the object, field errors keep
/// their paths (`resources.cpus`).
pub(crate) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Fields<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        d.deserialize_map(Fields(std::marker::PhantomData))
    }
}

/// `deserialize_with` for an optional field that must be an object or null
/// (see [`Object`]).
pub(crate) fn object_or_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<Object<T>>::deserialize(d).map(|o| o.map(|Object(t)| t))
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ServerError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_slice(b"{}").map_err(|_| ServerError::bad("the request needs a JSON body"));
    }
    let mut value: Value = serde_json::from_slice(body).map_err(|e| ServerError::BadRequest {
        message: format!("malformed JSON body: {e}"),
        path: None,
    })?;
    integral_floats(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ServerError::BadRequest {
            message: if path == "." {
                format!("malformed JSON body: {inner}")
            } else {
                format!("malformed JSON body at `{path}`: {inner}")
            },
            path: (path != ".").then_some(path),
        }
    })
}

/// JSON Schema's `integer` includes `30.0`: integral floats become integers
/// (outside the free-form `runtime_params`, `inputs`, `answers` and
/// `input`, which are the caller's data and kept as sent).
fn integral_floats(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
            {
                if f >= 0.0 && f < u64::MAX as f64 {
                    *v = json!(f as u64);
                } else if f < 0.0 && f >= i64::MIN as f64 {
                    *v = json!(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats),
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if !matches!(k.as_str(), "runtime_params" | "inputs" | "answers" | "input") {
                    integral_floats(x);
                }
            }
        }
        _ => {}
    }
}

async fn read_body(server: &Server, body: Body) -> Result<Bytes, ServerError> {
    axum::body::to_bytes(body, server.config().body_limit)
        .await
        .map_err(|_| ServerError::TooLarge {
            limit: server.config().body_limit,
        })
}

fn parse_query<T: serde::de::DeserializeOwned>(query: Option<&str>) -> Result<T, ServerError> {
    let q = query.unwrap_or("");
    serde_urlencoded_like(q)
}

/// Query strings go through the same path-naming errors as bodies.
fn serde_urlencoded_like<T: serde::de::DeserializeOwned>(q: &str) -> Result<T, ServerError> {
    Query::<T>::try_from_uri(
        &format!("/?{q}")
            .parse()
            .map_err(|_| ServerError::bad("malformed query string"))?,
    )
    .map(|Query(t)| t)
    .map_err(|e| ServerError::bad(format!("malformed query: {}", e.body_text())))
}

async fn create_session(State(server): State<Arc<Server>>, body: Body) -> ApiResult {
    let bytes = read_body(&server, body).await?;
    let req: CreateSession = parse_json(&bytes)?;
    let (view, created) = server.create_session(req).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(view)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListSessions {
    state: Option<String>,
    #[serde(default)]
    all: Option<bool>,
}

async fn list_sessions(State(server): State<Arc<Server>>, request: Request) -> ApiResult {
    let q: ListSessions = parse_query(request.uri().query())?;
    let wanted = match q.state.as_deref() {
        Some(s) => Some(s.parse::<SessionState>().map_err(|m| ServerError::BadRequest {
            message: m,
            path: Some("state".into()),
        })?),
        None => None,
    };
    let live_only = !q.all.unwrap_or(false) && wanted.is_none_or(|s| !s.is_terminal());
    let mut out = Vec::new();
    for record in server.store().list_server_sessions(live_only).await? {
        let view = match server.live(&record.session_id) {
            Some(s) => s.view(),
            None => session_view(
                &record,
                record.state.parse().unwrap_or(SessionState::Closed),
                None,
            ),
        };
        if wanted.is_none_or(|w| view["state"] == w.as_str()) {
            out.push(view);
        }
    }
    Ok(axum::Json(json!({ "sessions": out })).into_response())
}

async fn get_session(State(server): State<Arc<Server>>, Path(id): Path<String>) -> ApiResult {
    if let Some(s) = server.live(&id) {
        return Ok(axum::Json(s.view()).into_response());
    }
    let record = server
        .store()
        .get_server_session(&id)
        .await?
        .ok_or_else(|| ServerError::NotFound {
            what: "session",
            id: id.clone(),
        })?;
    let state = record.state.parse().unwrap_or(SessionState::Closed);
    let counts = server.store().run_status_counts(&id).await?;
    Ok(axum::Json(session_view(&record, state, Some(&counts))).into_response())
}

async fn heartbeat(State(server): State<Arc<Server>>, Path(id): Path<String>) -> ApiResult {
    Ok(axum::Json(server.heartbeat(&id).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    mode: Option<String>,
}

async fn delete_session(
    State(server): State<Arc<Server>>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult {
    let q: DeleteQuery = parse_query(request.uri().query())?;
    let mode = match q.mode.as_deref() {
        None | Some("drain") => CloseMode::Wait,
        Some("cancel") => CloseMode::Cancel,
        Some(other) => {
            return Err(ServerError::BadRequest {
                message: format!("unknown mode `{other}`; expected drain or cancel"),
                path: Some("mode".into()),
            });
        }
    };
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(server.terminate(&id, mode).await?),
    )
        .into_response())
}

/// The body of `POST /v1/sessions/{id}/runs`: a list of specs, or one spec
/// and sweep overrides in the `weft multirun` grammar.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitRuns {
    runs: Option<Vec<Object<RunConfig>>>,
    #[serde(default, deserialize_with = "object_or_null")]
    spec: Option<RunConfig>,
    #[serde(default)]
    sweep: Vec<String>,
    /// Re-queue a run interrupted by a crash up to this many times.
    #[serde(default)]
    retries: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitQuery {
    wait: Option<bool>,
    timeout_s: Option<f64>,
}

fn expand(server: &Server, req: SubmitRuns) -> Result<Vec<RunConfig>, ServerError> {
    let limit = server.config().max_runs_per_request;
    match (req.runs, req.spec) {
        (Some(_), Some(_)) => Err(ServerError::BadRequest {
            message: "give either `runs` or `spec` (with `sweep`), not both".into(),
            path: Some("spec".into()),
        }),
        (Some(runs), None) => {
            if !req.sweep.is_empty() {
                return Err(ServerError::BadRequest {
                    message: "`sweep` goes with `spec`, not with `runs`".into(),
                    path: Some("sweep".into()),
                });
            }
            if runs.len() as u64 > limit {
                return Err(ServerError::TooMany {
                    message: format!("{} runs in one request; the limit is {limit}", runs.len()),
                    retry_after_s: 0,
                });
            }
            Ok(runs.into_iter().map(|Object(run)| run).collect())
        }
        (None, Some(spec)) => {
            if req.sweep.is_empty() {
                return Ok(vec![spec]);
            }
            // Well-formed JSON whose overrides do not parse: 422, like an
            // unknown parameter (the document's schema cannot say more than
            // "a list of strings").
            let sweep =
                weft_config::overrides::Sweep::parse(&req.sweep).map_err(|e| ServerError::Invalid {
                    problems: vec![format!("sweep: {e}")],
                })?;
            let points = sweep.expand(limit).map_err(|e| match e {
                weft_config::overrides::OverrideError::TooManyRuns { .. } => ServerError::TooMany {
                    message: e.to_string(),
                    retry_after_s: 0,
                },
                other => ServerError::Invalid {
                    problems: vec![format!("sweep: {other}")],
                },
            })?;
            let mut out = Vec::new();
            for point in points {
                let mut config = spec.clone();
                let mut params = if config.runtime_params.is_object() {
                    config.runtime_params.clone()
                } else {
                    json!({})
                };
                weft_config::deep_merge(&mut params, point);
                config.runtime_params = params;
                out.push(config);
            }
            Ok(out)
        }
        (None, None) => Err(ServerError::BadRequest {
            message: "the body needs `runs` (a list of specs) or `spec` (with optional `sweep`)".into(),
            path: Some("runs".into()),
        }),
    }
}

async fn submit_runs(
    State(server): State<Arc<Server>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> ApiResult {
    let q: SubmitQuery = parse_query(request.uri().query())?;
    if let Some(t) = q.timeout_s
        && !(t.is_finite() && t >= 0.0)
    {
        return Err(ServerError::BadRequest {
            message: format!("timeout_s must be a finite number of seconds >= 0, not {t}"),
            path: Some("timeout_s".into()),
        });
    }
    let bytes = read_body(&server, request.into_body()).await?;
    let req: SubmitRuns = parse_json(&bytes)?;
    let retries = req.retries;
    let configs = expand(&server, req)?;
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .ok_or_else(|| ServerError::BadRequest {
                    message: "Idempotency-Key must be 1 to 200 visible ASCII characters".into(),
                    path: Some("Idempotency-Key".into()),
                })
        })
        .transpose()?;
    let cursor = server.live(&id).map(|s| s.events().next_seq());
    let run_ids = server
        .submit(&id, configs, retries.saturating_add(1), key)
        .await?;
    if q.wait != Some(true) {
        return Ok((StatusCode::ACCEPTED, axum::Json(json!({ "run_ids": run_ids }))).into_response());
    }
    let timeout = Duration::from_secs_f64(q.timeout_s.unwrap_or(60.0).clamp(0.0, 3600.0));
    // The final records come from the runs' completion in this process;
    // a run finished elsewhere (another server, before the watch) is read
    // from the store.
    let watch = server.watch_results(&run_ids);
    let finished = wait_for(&server, &id, &run_ids, cursor, timeout).await;
    let mut runs = Vec::with_capacity(run_ids.len());
    for (run_id, kept) in run_ids.iter().zip(watch.take()) {
        let record = match kept {
            Some(r) => Some(r),
            None => server.store().get_run(run_id).await?,
        };
        if let Some(r) = record {
            runs.push(run_view(&r));
        }
    }
    drop(watch);
    let status = if finished {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        axum::Json(json!({ "run_ids": run_ids, "runs": runs, "timed_out": !finished })),
    )
        .into_response())
}

/// Waits until every run has a final status or waits for input, woken by the session's
/// events from `cursor` (taken before the runs were submitted, so no
/// event of theirs is missed). Without a cursor, or after a gap in the
/// events (the ring overflowed), the runs still pending are checked in
/// the store.
async fn wait_for(
    server: &Server,
    session_id: &str,
    run_ids: &[String],
    cursor: Option<u64>,
    timeout: Duration,
) -> bool {
    let mut pending: std::collections::HashSet<&str> = run_ids.iter().map(String::as_str).collect();
    if cursor.is_none() {
        drop_finished(server, &mut pending).await;
    }
    let mut cursor = cursor.unwrap_or(1);
    let Some(s) = server.live(session_id) else {
        return pending.is_empty();
    };
    let deadline = tokio::time::Instant::now() + timeout;
    // The events wake the waiter; the store is asked too, now and then,
    // so a missed wake-up costs a second, never the whole time-out.
    let mut recheck = tokio::time::Instant::now() + STORE_RECHECK;
    while !pending.is_empty() {
        let next = tokio::time::timeout_at(deadline.min(recheck), s.events().next(cursor)).await;
        match next {
            Err(_) if tokio::time::Instant::now() >= deadline => {
                drop_finished(server, &mut pending).await;
                return pending.is_empty();
            }
            Err(_) => {
                let before = pending.len();
                drop_finished(server, &mut pending).await;
                if pending.len() < before {
                    tracing::warn!(
                        session = session_id,
                        runs = before - pending.len(),
                        "runs finished without their run_finished event reaching the waiter"
                    );
                }
                recheck = tokio::time::Instant::now() + STORE_RECHECK;
            }
            Ok(EventNext::Closed) => break,
            Ok(EventNext::Gap { resume_at, .. }) => {
                cursor = resume_at;
                drop_finished(server, &mut pending).await;
            }
            Ok(EventNext::Events(events)) => {
                for e in events {
                    cursor = e.seq + 1;
                    let requeued = e.data.get("requeued").and_then(Value::as_bool).unwrap_or(false);
                    // A run paused for input is settled for the waiter: it
                    // answers with the run's `pending_input`.
                    if (e.kind == "run_finished" || e.kind == "input_required")
                        && !requeued
                        && let Some(id) = e.data.get("run_id").and_then(Value::as_str)
                    {
                        pending.remove(id);
                    }
                }
            }
        }
    }
    pending.is_empty()
}

/// How often a `?wait=true` request also asks the store about its runs.
const STORE_RECHECK: Duration = Duration::from_secs(1);

/// Removes the runs the store has in a final status, or waiting for
/// input, from `pending`.
async fn drop_finished(server: &Server, pending: &mut std::collections::HashSet<&str>) {
    let ids: Vec<&str> = pending.iter().copied().collect();
    for id in ids {
        if let Ok(Some(r)) = server.store().get_run(id).await
            && (r.status.is_terminal() || r.status == RunStatus::InputRequired)
        {
            pending.remove(id);
        }
    }
}

/// The JSON form of a run record.
pub fn run_view(r: &RunRecord) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("id".into(), json!(r.run_id));
    }
    v
}

async fn get_run(State(server): State<Arc<Server>>, Path(id): Path<String>) -> ApiResult {
    let r = server.stored_run(&id).await?;
    Ok(axum::Json(run_view(&r)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListRunsQuery {
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list_session_runs(
    State(server): State<Arc<Server>>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult {
    let q: ListRunsQuery = parse_query(request.uri().query())?;
    if server.live(&id).is_none() && server.store().get_server_session(&id).await?.is_none() {
        return Err(ServerError::NotFound { what: "session", id });
    }
    let status = match q.status.as_deref() {
        Some(s) => Some(s.parse::<RunStatus>().map_err(|m| ServerError::BadRequest {
            message: m,
            path: Some("status".into()),
        })?),
        None => None,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let runs = server
        .store()
        .list_runs(&RunFilter {
            session_id: Some(id),
            status,
            limit: Some(limit + 1),
            before: q.cursor,
        })
        .await?;
    let next_cursor = (runs.len() > limit as usize).then(|| runs[limit as usize - 1].run_id.clone());
    let views: Vec<Value> = runs.iter().take(limit as usize).map(run_view).collect();
    Ok(axum::Json(json!({ "runs": views, "next_cursor": next_cursor })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    follow: Option<bool>,
}

/// One run's log lines as text; `?follow=true` streams new lines until the
/// run has finished.
async fn run_logs(State(server): State<Arc<Server>>, Path(id): Path<String>, request: Request) -> ApiResult {
    let q: LogsQuery = parse_query(request.uri().query())?;
    if server.store().get_run(&id).await?.is_none() {
        return Err(ServerError::NotFound { what: "run", id });
    }
    let Some(dir) = server.config().logs_dir.clone() else {
        return Err(ServerError::NotFound {
            what: "log of run",
            id,
        });
    };
    let read = {
        let dir = dir.clone();
        let id = id.clone();
        move || {
            let dir = dir.clone();
            let id = id.clone();
            async move {
                tokio::task::spawn_blocking(move || weft_session::run_logs::run_log(&dir, &id))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
                    .unwrap_or_default()
            }
        }
    };
    let text = read().await;
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if q.follow != Some(true) {
        return Ok((headers, text).into_response());
    }
    // Follow: send what is there, then what is added, until the run is over.
    let first = Bytes::from(text.clone());
    let state = (server, id, text.len(), false, read);
    let rest = stream::unfold(state, |(server, id, sent, done, read)| async move {
        if done {
            return None;
        }
        loop {
            let finished = server
                .store()
                .get_run(&id)
                .await
                .ok()
                .flatten()
                .is_none_or(|r| r.status.is_terminal());
            let text = read().await;
            if text.len() > sent {
                let chunk = Bytes::from(text[sent..].to_string());
                return Some((
                    Ok::<_, Infallible>(chunk),
                    (server, id, text.len(), finished, read),
                ));
            }
            if finished {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    use futures_util::StreamExt;
    let body = Body::from_stream(stream::once(async move { Ok::<_, Infallible>(first) }).chain(rest));
    Ok((headers, body).into_response())
}

async fn list_run_datasets(State(server): State<Arc<Server>>, Path(id): Path<String>) -> ApiResult {
    crate::datasets::list(server, id).await
}

async fn get_run_dataset(
    State(server): State<Arc<Server>>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult {
    crate::datasets::fetch(server, id, name).await
}

async fn cancel_run(State(server): State<Arc<Server>>, Path(id): Path<String>) -> ApiResult {
    let record = server.cancel_run(&id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(run_view(&record))).into_response())
}

/// `POST /v1/runs/{id}/input`: the answer to a run waiting at an
/// `await_input` node.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvideInput {
    /// The answer (any JSON value the node's schema accepts).
    input: Value,
    /// The node it answers (default: the one the run waits at).
    node: Option<String>,
}

async fn provide_input(
    State(server): State<Arc<Server>>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult {
    let bytes = read_body(&server, request.into_body()).await?;
    let req: ProvideInput = parse_json(&bytes)?;
    let run = server.provide_input(&id, req.node.as_deref(), req.input).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(run_view(&run))).into_response())
}

async fn events(State(server): State<Arc<Server>>, Path(id): Path<String>, headers: HeaderMap) -> ApiResult {
    let s = match server.live(&id) {
        Some(s) => s,
        None => {
            return Err(match server.store().get_server_session(&id).await? {
                Some(r) => {
                    ServerError::Conflict(format!("session `{id}` is {}; it has no live events", r.state))
                }
                None => ServerError::NotFound { what: "session", id },
            });
        }
    };
    let boot = server.boot().to_string();
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let cursor = resume_cursor(last, &boot);
    let log = Arc::clone(s.events());
    // Greeting: the session's current state, so a client needs no extra GET.
    let hello = SseEvent::default().event("hello").data(s.view().to_string());
    let stream = stream::once(async move { Ok::<_, Infallible>(hello) }).chain_events(log, cursor, boot);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

trait ChainEvents: Stream<Item = Result<SseEvent, Infallible>> + Sized {
    fn chain_events(
        self,
        log: Arc<crate::events::EventLog>,
        cursor: u64,
        boot: String,
    ) -> impl Stream<Item = Result<SseEvent, Infallible>> {
        use futures_util::StreamExt;
        // The buffer holds the log's shared events and each is formatted
        // only when it is sent: a subscriber behind by a whole ring costs
        // a list of pointers, not a formatted copy of every event.
        let rest = stream::unfold(
            (
                log,
                cursor,
                boot,
                std::collections::VecDeque::<Arc<crate::events::Event>>::new(),
                false,
            ),
            |(log, mut cursor, boot, mut buf, done)| async move {
                loop {
                    if let Some(e) = buf.pop_front() {
                        let ev = sse_of(&boot, &e);
                        return Some((Ok(ev), (log, cursor, boot, buf, done)));
                    }
                    if done {
                        return None;
                    }
                    match log.next(cursor).await {
                        EventNext::Events(events) => {
                            if let Some(last) = events.last() {
                                cursor = last.seq + 1;
                            }
                            buf.extend(events);
                        }
                        EventNext::Gap {
                            missed_from,
                            resume_at,
                        } => {
                            cursor = resume_at;
                            let gap = SseEvent::default().event("gap").data(
                                json!({"missed_from": missed_from, "resume_at": resume_at}).to_string(),
                            );
                            return Some((Ok(gap), (log, cursor, boot, buf, done)));
                        }
                        EventNext::Closed => {
                            return None;
                        }
                    }
                }
            },
        );
        self.chain(rest)
    }
}

impl<S: Stream<Item = Result<SseEvent, Infallible>>> ChainEvents for S {}

fn sse_of(boot: &str, e: &crate::events::Event) -> SseEvent {
    SseEvent::default()
        .id(format!("{boot}-{}", e.seq))
        .event(e.kind)
        .data(e.data.to_string())
}

/// The pipelines of a live session's project (a closed session has none
/// loaded: 409; an unknown session: 404).
async fn session_pipelines(
    server: &Server,
    id: &str,
) -> Result<Arc<crate::server::LiveSession>, ServerError> {
    match server.live(id) {
        Some(s) => Ok(s),
        None => Err(match server.store().get_server_session(id).await? {
            Some(r) => ServerError::Conflict(format!(
                "session `{id}` is {}; its pipelines are not loaded",
                r.state
            )),
            None => ServerError::NotFound {
                what: "session",
                id: id.to_string(),
            },
        }),
    }
}

async fn list_pipelines(State(server): State<Arc<Server>>, Path(id): Path<String>) -> ApiResult {
    let s = session_pipelines(&server, &id).await?;
    let list: Vec<Value> = s
        .service()
        .pipelines()
        .iter()
        .map(|(name, p)| crate::web::pipeline_summary(name, p))
        .collect();
    Ok(axum::Json(json!({ "pipelines": list })).into_response())
}

async fn get_pipeline(
    State(server): State<Arc<Server>>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult {
    let s = session_pipelines(&server, &id).await?;
    let p = s
        .service()
        .pipelines()
        .get(&name)
        .ok_or_else(|| ServerError::NotFound {
            what: "pipeline",
            id: name.clone(),
        })?;
    Ok(axum::Json(crate::web::pipeline_view(&name, p)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SvgQuery {
    /// Namespaces drawn as one box each, comma-separated.
    collapse: Option<String>,
    /// Only nodes with any of these tags, comma-separated.
    tags: Option<String>,
    /// Colour nodes by this run's node states.
    run: Option<String>,
}

fn comma_list(s: Option<&str>) -> std::collections::BTreeSet<String> {
    s.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// Node states of a run: `succeeded` for nodes with a timing, `failed` for
/// the node its error names, `running` or `pending` for the others of a
/// run still going, nothing for nodes it did not reach.
fn node_states(
    run: &RunRecord,
    pipeline: &weft_pipeline::Pipeline,
) -> std::collections::BTreeMap<String, String> {
    let mut states = std::collections::BTreeMap::new();
    let going = matches!(run.status, RunStatus::Queued | RunStatus::Running);
    // The run's filters (tags, node names, from/to, namespaces) applied:
    // nodes outside them are `excluded`.
    let list = |k: &str| -> Vec<String> {
        run.filters
            .get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let filter = weft_pipeline::PipelineFilter {
        tags: list("tags"),
        node_names: list("node_names"),
        from_nodes: list("from_nodes"),
        to_nodes: list("to_nodes"),
        from_inputs: list("from_inputs"),
        to_outputs: list("to_outputs"),
        node_namespaces: list("namespaces"),
    };
    let included: Option<std::collections::BTreeSet<String>> = if filter.is_empty() {
        None
    } else {
        pipeline
            .filter(&filter)
            .ok()
            .map(|p| p.nodes().iter().map(|n| n.name().to_string()).collect())
    };
    for n in pipeline.nodes() {
        let inside = included.as_ref().is_none_or(|i| i.contains(n.name()));
        if !inside {
            states.insert(n.name().to_string(), "excluded".to_string());
        } else if going {
            states.insert(n.name().to_string(), "pending".to_string());
        }
    }
    for t in &run.node_timings {
        states.insert(t.node.clone(), "succeeded".to_string());
    }
    if let Some(node) = run.error.as_ref().and_then(|e| e.node.as_ref()) {
        states.insert(node.clone(), "failed".to_string());
    }
    states
}

async fn pipeline_svg(
    State(server): State<Arc<Server>>,
    Path((id, name)): Path<(String, String)>,
    request: Request,
) -> ApiResult {
    let q: SvgQuery = parse_query(request.uri().query())?;
    let s = session_pipelines(&server, &id).await?;
    let p = s
        .service()
        .pipelines()
        .get(&name)
        .ok_or_else(|| ServerError::NotFound {
            what: "pipeline",
            id: name.clone(),
        })?;
    let tags = comma_list(q.tags.as_deref());
    let filtered;
    let p = if tags.is_empty() {
        p
    } else {
        filtered = p.only_nodes_with_tags(&tags.iter().collect::<Vec<_>>());
        &filtered
    };
    let states = match q.run.as_deref() {
        Some(run_id) => {
            let run = server.stored_run(run_id).await?;
            node_states(&run, p)
        }
        None => Default::default(),
    };
    let collapse = comma_list(q.collapse.as_deref());
    Ok(crate::web::svg_response(crate::web::layout::draw(
        p, &collapse, &states,
    )))
}
