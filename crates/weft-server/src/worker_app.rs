//! The HTTP side of `weft worker`: one process serving ONE session's runs,
//! one spec at a time, for a session master in another process.
//!
//! Routes (JSON bodies; every route but `/healthz` needs the bearer token
//! when one is set):
//! - `GET /healthz`: 200 `{"status": "ready", ...}` once the project is
//!   loaded ([`WorkerState::set_ready`]), 503 `starting` before and
//!   `stopping` after a stop or recycle;
//! - `POST /run_spec` `{"spec": RunSpec}`: runs the spec to its end and
//!   answers 200 `{"record": RunRecord, "recycle": bool}`; single-flight (a
//!   second dispatch while one runs gets 409 `busy`); a spec the project
//!   refuses is 422 with its problems. `recycle` is true on the answer that
//!   reaches `max_runs`: the worker then stops accepting and exits once the
//!   answer is sent ([`WorkerState::stopped`] resolves). Refused dispatches
//!   do not count. With `Accept: application/x-ndjson` the answer streams
//!   one JSON object per line: the run's progress as it happens
//!   (`{"event": "pipeline_started", "total"}`, `{"event": "node_started",
//!   "node"}`, `{"event": "node_finished", "node", "start", "duration_ms"}`,
//!   sent by [`WorkerState::progress_hook`]), then the answer itself as the
//!   last line (`{"record", "recycle"}`, or `{"error": {"status", "code",
//!   "message"}}` when the run could not be carried out); refusals before
//!   the run starts keep their status codes;
//! - `POST /cancel` `{"run_id"}`: cancels the running run between nodes
//!   (404 when that run is not running here);
//! - `POST /stop` `{"mode": "wait" | "cancel"}` (default `wait`): stops
//!   accepting, cancels the running run with `cancel`, and exits after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use weft_pipeline::{CancelToken, Data, Node};
use weft_runner::{Hook, RunContext};
use weft_session::{CloseMode, RunSpec, ServiceSession, SessionError, finished_record};

use crate::error::ServerError;
use crate::limits::WorkerLimits;

/// The largest `/run_spec` body a worker accepts (specs with injected inputs).
pub const WORKER_BODY_LIMIT: usize = 64 << 20;

/// The run executing in a worker.
struct Current {
    run_id: String,
    cancel: CancelToken,
}

/// What one `weft worker` process shares between its routes.
pub struct WorkerState {
    session_id: String,
    token: Option<String>,
    max_runs: Option<u32>,
    session: OnceLock<Arc<ServiceSession>>,
    current: Mutex<Option<Current>>,
    runs: AtomicU32,
    stopping: AtomicBool,
    stop: watch::Sender<bool>,
    owner: String,
    limits: WorkerLimits,
    /// Where the running run's progress lines go (a streamed `/run_spec`).
    progress: Mutex<Option<tokio::sync::mpsc::UnboundedSender<String>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WorkerState {
    /// A worker for session `session_id` that requires `token` (when set)
    /// and recycles after `max_runs` answered dispatches (when set). It is
    /// not ready until [`WorkerState::set_ready`].
    pub fn new(session_id: impl Into<String>, token: Option<String>, max_runs: Option<u32>) -> Arc<Self> {
        Self::limited(session_id, token, max_runs, WorkerLimits::default())
    }

    /// Like [`WorkerState::new`], for a process that enforces `limits`: the
    /// CPU-time limit is re-armed before each run (the memory limit is the
    /// process's own, applied once at start-up by the caller:
    /// [`WorkerLimits::apply_memory`]).
    pub fn limited(
        session_id: impl Into<String>,
        token: Option<String>,
        max_runs: Option<u32>,
        limits: WorkerLimits,
    ) -> Arc<Self> {
        let (stop, _) = watch::channel(false);
        Arc::new(WorkerState {
            session_id: session_id.into(),
            token,
            max_runs: max_runs.filter(|n| *n > 0),
            session: OnceLock::new(),
            current: Mutex::new(None),
            runs: AtomicU32::new(0),
            stopping: AtomicBool::new(false),
            stop,
            owner: weft_store::current_owner(),
            limits,
            progress: Mutex::new(None),
        })
    }

    /// The project is loaded: `/healthz` says ready and dispatches run on
    /// `session` (a second call changes nothing).
    pub fn set_ready(&self, session: Arc<ServiceSession>) {
        let _ = self.session.set(session);
    }

    /// Whether the project is loaded and the worker accepts dispatches.
    pub fn is_ready(&self) -> bool {
        self.session.get().is_some() && !self.stopping.load(Ordering::SeqCst)
    }

    /// The session this worker serves.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Dispatches answered so far (refused ones not counted).
    pub fn runs(&self) -> u32 {
        self.runs.load(Ordering::SeqCst)
    }

    /// Counts an answered run; true when it is the last before a recycle
    /// (the worker then stops accepting and exits once the answer is sent).
    fn answered(&self) -> bool {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        let recycle = self.max_runs.is_some_and(|max| n >= max);
        if recycle {
            self.stop(CloseMode::Wait);
        }
        recycle
    }

    /// The hook that turns the running run's pipeline and node events into
    /// progress lines of a streamed `/run_spec` answer: add it to the
    /// worker's session options.
    pub fn progress_hook(self: &Arc<Self>) -> Arc<dyn Hook> {
        Arc::new(ProgressLines {
            state: Arc::downgrade(self),
            started: Mutex::new(HashMap::new()),
        })
    }

    fn send_progress(&self, line: Value) {
        if let Some(tx) = lock(&self.progress).as_ref() {
            let _ = tx.send(line.to_string());
        }
    }

    /// Stops accepting dispatches and asks the process to exit once the
    /// running run (if any) ended; `Cancel` cancels that run between nodes.
    pub fn stop(&self, mode: CloseMode) {
        self.stopping.store(true, Ordering::SeqCst);
        if mode == CloseMode::Cancel
            && let Some(current) = lock(&self.current).as_ref()
        {
            current.cancel.cancel();
        }
        self.stop.send_replace(true);
    }

    /// Resolves once a stop or a recycle was asked for (serve with
    /// graceful shutdown on it: the answer in flight is still sent).
    pub async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

/// The media type of a streamed `/run_spec` answer: one JSON object per line.
pub const NDJSON: &str = "application/x-ndjson";

/// Progress lines of the running run (see [`WorkerState::progress_hook`]).
struct ProgressLines {
    state: Weak<WorkerState>,
    started: Mutex<HashMap<String, (Instant, jiff::Timestamp)>>,
}

impl Hook for ProgressLines {
    fn before_pipeline_run(&self, ctx: &RunContext, pipeline: &weft_pipeline::Pipeline) {
        if let Some(state) = self.state.upgrade() {
            state.send_progress(
                json!({"event": "pipeline_started", "run_id": ctx.run_id, "total": pipeline.nodes().len()}),
            );
        }
    }

    fn before_node_run(&self, ctx: &RunContext, node: &Node, _inputs: &[Data]) {
        lock(&self.started).insert(node.name().to_string(), (Instant::now(), jiff::Timestamp::now()));
        if let Some(state) = self.state.upgrade() {
            state.send_progress(json!({"event": "node_started", "run_id": ctx.run_id, "node": node.name()}));
        }
    }

    fn after_node_run(&self, ctx: &RunContext, node: &Node, _inputs: &[Data], _outputs: &[Data]) {
        let Some((t0, start)) = lock(&self.started).remove(node.name()) else {
            return;
        };
        if let Some(state) = self.state.upgrade() {
            state.send_progress(json!({
                "event": "node_finished",
                "run_id": ctx.run_id,
                "node": node.name(),
                "start": start,
                "duration_ms": t0.elapsed().as_secs_f64() * 1e3,
            }));
        }
    }

    fn on_node_error(&self, _ctx: &RunContext, node: &Node, _error: &weft_runner::RunError) {
        lock(&self.started).remove(node.name());
    }
}

/// A worker route's error: `{"error": {"code", "message", "problems"?}}`.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

/// The router of a `weft worker` over `state`.
pub fn worker_app(state: Arc<WorkerState>) -> Router {
    let guarded = Router::new()
        .route("/run_spec", post(run_spec))
        .route("/cancel", post(cancel))
        .route("/stop", post(stop))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), auth));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(guarded)
        .fallback(|request: Request| async move {
            error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("route `{}` not found", request.uri().path()),
            )
        })
        .layer(DefaultBodyLimit::max(WORKER_BODY_LIMIT))
        .with_state(state)
}

async fn auth(State(state): State<Arc<WorkerState>>, request: Request, next: Next) -> Response {
    if !crate::api::bearer_accepted(request.headers(), state.token.as_deref()) {
        return ServerError::Unauthorized.into_response();
    }
    next.run(request).await
}

async fn healthz(State(state): State<Arc<WorkerState>>) -> Response {
    let status = if state.stopping.load(Ordering::SeqCst) {
        "stopping"
    } else if state.session.get().is_some() {
        "ready"
    } else {
        "starting"
    };
    let body = json!({
        "status": status,
        "session_id": state.session_id,
        "pid": std::process::id(),
        "runs": state.runs(),
        "busy": lock(&state.current).is_some(),
    });
    let code = if status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ServerError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ServerError::BadRequest {
            message: format!("invalid body: {}", e.inner()),
            path: (path != ".").then_some(path),
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunSpecBody {
    spec: RunSpec,
}

/// Clears the worker's current run when the run's thread ends (not when
/// the request ends: a dropped connection leaves the run executing, and
/// single-flight holds until it finished).
struct ClearCurrent(Arc<WorkerState>);

impl Drop for ClearCurrent {
    fn drop(&mut self) {
        *lock(&self.0.current) = None;
    }
}

/// Cancels the run if the request goes away before its answer (the master
/// that asked is gone: nobody would record the result).
struct CancelOnDrop(Option<CancelToken>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.cancel();
        }
    }
}

async fn run_spec(State(state): State<Arc<WorkerState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(session) = state.session.get().cloned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting",
            "the worker is still loading its project",
        );
    };
    if state.stopping.load(Ordering::SeqCst) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the worker is stopping",
        );
    }
    let RunSpecBody { spec } = match parse(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    if spec.session_id != state.session_id {
        return ServerError::BadRequest {
            message: format!(
                "the spec belongs to session `{}`; this worker serves `{}`",
                spec.session_id, state.session_id
            ),
            path: Some("spec.session_id".into()),
        }
        .into_response();
    }
    let streaming = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(NDJSON));
    let cancel = CancelToken::new();
    {
        let mut current = lock(&state.current);
        if let Some(running) = current.as_ref() {
            return error(
                StatusCode::CONFLICT,
                "busy",
                format!("the worker is running `{}`", running.run_id),
            );
        }
        *current = Some(Current {
            run_id: spec.run_id().to_string(),
            cancel: cancel.clone(),
        });
    }
    let clear = ClearCurrent(Arc::clone(&state));
    if let Err(e) = state.limits.arm_cpu() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "limits", e.to_string());
    }
    let mut on_drop = CancelOnDrop(Some(cancel.clone()));
    // Prepared before an answer starts: a spec the project refuses is still
    // a plain 422, streamed or not.
    let prepared = {
        let session = Arc::clone(&session);
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || session.prepare_spec(&spec)).await
    };
    let prepared = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return ServerError::from(e).into_response(),
        Err(join) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "worker_panic",
                format!("preparing the run panicked: {join}"),
            );
        }
    };
    let owner = state.owner.clone();
    if streaming {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        *lock(&state.progress) = Some(tx.clone());
        let st = Arc::clone(&state);
        let hang_up = cancel.clone();
        let run = tokio::task::spawn_blocking(move || {
            let _clear = clear;
            let outcome = session.run_prepared_with(prepared, &cancel);
            lock(&st.progress).take();
            let last = match outcome {
                Ok(result) => {
                    let record = finished_record(&spec, &result, &owner);
                    json!({"record": record, "recycle": st.answered()})
                }
                Err(e) => {
                    let e = ServerError::from(e);
                    json!({"error": {"status": e.status(), "code": e.code(), "message": e.to_string()}})
                }
            };
            let _ = tx.send(last.to_string());
        });
        on_drop.0 = None;
        // The run is cancelled if the master hangs up before the last line.
        let guard = CancelOnDrop(Some(hang_up));
        let lines = futures_util::stream::unfold(
            (rx, Some(run), guard),
            |(mut rx, run, mut guard)| async move {
                if let Some(mut line) = rx.recv().await {
                    line.push('\n');
                    return Some((
                        Ok::<_, std::convert::Infallible>(Bytes::from(line)),
                        (rx, run, guard),
                    ));
                }
                guard.0 = None;
                let joined = match run {
                    Some(run) => run.await,
                    None => return None,
                };
                let line = match joined {
                    Ok(()) => return None,
                    Err(join) => {
                        json!({"error": {"status": 500, "code": "worker_panic", "message": format!("the run's thread died: {join}")}})
                    }
                };
                Some((Ok(Bytes::from(format!("{line}\n"))), (rx, None, guard)))
            },
        );
        return ([(header::CONTENT_TYPE, NDJSON)], Body::from_stream(lines)).into_response();
    }
    let run = tokio::task::spawn_blocking(move || {
        let _clear = clear;
        let result = session.run_prepared_with(prepared, &cancel)?;
        Ok::<_, SessionError>(finished_record(&spec, &result, &owner))
    })
    .await;
    on_drop.0 = None;
    match run {
        Ok(Ok(record)) => {
            let recycle = state.answered();
            axum::Json(json!({"record": record, "recycle": recycle})).into_response()
        }
        Ok(Err(e)) => ServerError::from(e).into_response(),
        Err(join) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "worker_panic",
            format!("the run's thread died: {join}"),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    run_id: String,
}

async fn cancel(State(state): State<Arc<WorkerState>>, body: Bytes) -> Response {
    let CancelBody { run_id } = match parse(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match lock(&state.current).as_ref() {
        Some(current) if current.run_id == run_id => {
            current.cancel.cancel();
            axum::Json(json!({"run_id": run_id, "cancelled": true})).into_response()
        }
        _ => ServerError::NotFound {
            what: "run",
            id: run_id,
        }
        .into_response(),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StopBody {
    #[serde(default)]
    mode: Option<String>,
}

async fn stop(State(state): State<Arc<WorkerState>>, body: Bytes) -> Response {
    let StopBody { mode } = if body.iter().all(u8::is_ascii_whitespace) {
        StopBody::default()
    } else {
        match parse(&body) {
            Ok(b) => b,
            Err(e) => return e.into_response(),
        }
    };
    let mode = match mode.as_deref() {
        None | Some("wait") => CloseMode::Wait,
        Some("cancel") => CloseMode::Cancel,
        Some(other) => {
            return ServerError::BadRequest {
                message: format!("unknown stop mode `{other}` (wait or cancel)"),
                path: Some("mode".into()),
            }
            .into_response();
        }
    };
    state.stop(mode);
    let body: Value = json!({"status": "stopping", "busy": lock(&state.current).is_some()});
    axum::Json(body).into_response()
}

/// Serves [`worker_app`] on `listener` until [`WorkerState::stop`] (or a
/// recycle); the answer in flight is still sent.
pub async fn serve_worker(
    state: Arc<WorkerState>,
    listener: tokio::net::TcpListener,
) -> Result<(), ServerError> {
    let stopper = Arc::clone(&state);
    axum::serve(listener, worker_app(state))
        .with_graceful_shutdown(async move { stopper.stopped().await })
        .await
        .map_err(|source| ServerError::Io {
            context: "serving the worker's HTTP".into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use std::path::Path;
    use std::time::Duration;
    use tower::ServiceExt;
    use weft_session::RunConfig;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "weft.toml", "[project]\nname = \"w\"\n");
        write(
            root,
            "pipelines.yml",
            "__default__:\n  nodes:\n    - name: wait\n      func: sleep_ms\n      inputs: [params:delay, params:start]\n      outputs: waited\n    - name: next\n      func: add_one\n      inputs: waited\n      outputs: out\n",
        );
        write(root, "conf/base/parameters.yml", "start: 1\ndelay: 0\n");
        std::fs::create_dir_all(root.join("conf/local")).unwrap();
        dir
    }

    fn open(root: &Path, id: &str) -> Arc<ServiceSession> {
        Arc::new(crate::worker::open_served_session(root, Default::default(), id, 1).unwrap())
    }

    fn spec(session: &ServiceSession, params: Value) -> RunSpec {
        let config = RunConfig {
            runtime_params: params,
            ..RunConfig::default()
        };
        session.prepare(&config).unwrap().spec().clone()
    }

    async fn call(app: &Router, method: &str, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn healthz_is_ready_only_once_the_project_is_loaded() {
        let dir = project();
        let state = WorkerState::new("s1", None, None);
        let app = worker_app(Arc::clone(&state));
        let (status, v) = call(&app, "GET", "/healthz", Value::Null, None).await;
        assert_eq!((status, v["status"].as_str()), (503, Some("starting")));
        let session = open(dir.path(), "s1");
        let s = spec(&session, json!({}));
        let (status, v) = call(&app, "POST", "/run_spec", json!({"spec": s}), None).await;
        assert_eq!((status, v["error"]["code"].as_str()), (503, Some("starting")));
        state.set_ready(session);
        let (status, v) = call(&app, "GET", "/healthz", Value::Null, None).await;
        assert_eq!((status, v["status"].as_str()), (200, Some("ready")), "{v}");
        assert_eq!(v["pid"], json!(std::process::id()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_streamed_answer_sends_each_nodes_progress_then_the_record() {
        let dir = project();
        let state = WorkerState::new("s1", None, Some(1));
        let mut options = weft_session::SessionOptions::default();
        options.hooks.push(state.progress_hook());
        let session = Arc::new(crate::worker::open_served_session(dir.path(), options, "s1", 1).unwrap());
        state.set_ready(Arc::clone(&session));
        let app = worker_app(Arc::clone(&state));
        let spec = spec(&session, json!({"start": 41}));
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/run_spec")
            .header("content-type", "application/json")
            .header("accept", NDJSON)
            .body(Body::from(json!({"spec": spec}).to_string()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], NDJSON);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let lines: Vec<Value> = std::str::from_utf8(&bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let events: Vec<(&str, &str)> = lines
            .iter()
            .filter_map(|l| Some((l["event"].as_str()?, l["node"].as_str().unwrap_or(""))))
            .collect();
        assert_eq!(
            events,
            [
                ("pipeline_started", ""),
                ("node_started", "wait"),
                ("node_finished", "wait"),
                ("node_started", "next"),
                ("node_finished", "next"),
            ],
            "{lines:?}"
        );
        assert_eq!(lines[0]["total"], 2);
        assert!(lines[2]["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(
            lines[2]["start"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .is_ok()
        );
        let last = lines.last().unwrap();
        assert_eq!(last["record"]["outputs"]["out"], json!(42), "{last}");
        assert_eq!(
            last["recycle"], true,
            "the answer that reaches --max-runs 1 says recycle"
        );
        assert_eq!(state.runs(), 1);
        // A refusal before the run keeps its status, streamed or not.
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/run_spec")
            .header("content-type", "application/json")
            .header("accept", NDJSON)
            .body(Body::from(json!({"spec": {"session_id": "other"}}).to_string()))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert!(
            response.status().is_client_error() || response.status() == 503,
            "{}",
            response.status()
        );
    }

    #[tokio::test]
    async fn runs_a_spec_and_recycles_after_max_runs() {
        let dir = project();
        let session = open(dir.path(), "s1");
        let state = WorkerState::new("s1", None, Some(2));
        state.set_ready(Arc::clone(&session));
        let app = worker_app(Arc::clone(&state));
        let (status, v) = call(
            &app,
            "POST",
            "/run_spec",
            json!({"spec": spec(&session, json!({"start": 41}))}),
            None,
        )
        .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["record"]["status"], "succeeded", "{v}");
        assert_eq!(v["record"]["outputs"]["out"], json!(42), "{v}");
        assert_eq!(v["recycle"], false);
        assert!(state.is_ready());
        let (status, v) = call(
            &app,
            "POST",
            "/run_spec",
            json!({"spec": spec(&session, json!({}))}),
            None,
        )
        .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["recycle"], true, "the second of --max-runs 2 says recycle");
        // The worker asked to exit, and accepts nothing more.
        tokio::time::timeout(Duration::from_secs(5), state.stopped())
            .await
            .unwrap();
        let (status, v) = call(&app, "GET", "/healthz", Value::Null, None).await;
        assert_eq!((status, v["status"].as_str()), (503, Some("stopping")));
        let (status, _) = call(
            &app,
            "POST",
            "/run_spec",
            json!({"spec": spec(&session, json!({}))}),
            None,
        )
        .await;
        assert_eq!(status, 503);
        assert_eq!(state.runs(), 2);
    }

    #[tokio::test]
    async fn refused_dispatches_do_not_count_toward_recycle() {
        let dir = project();
        let session = open(dir.path(), "s1");
        let state = WorkerState::new("s1", None, Some(1));
        state.set_ready(Arc::clone(&session));
        let app = worker_app(Arc::clone(&state));
        let mut bad = spec(&session, json!({}));
        bad.config.pipeline_names = vec!["nope".into()];
        let (status, v) = call(&app, "POST", "/run_spec", json!({"spec": bad}), None).await;
        assert_eq!(status, 422, "{v}");
        assert!(v["error"]["problems"].to_string().contains("nope"), "{v}");
        let (status, v) = call(&app, "POST", "/run_spec", json!({"spec": {"nonsense": 1}}), None).await;
        assert_eq!(status, 400, "{v}");
        let mut other = spec(&session, json!({}));
        other.session_id = "someone-else".into();
        let (status, _) = call(&app, "POST", "/run_spec", json!({"spec": other}), None).await;
        assert_eq!(status, 400);
        assert_eq!(state.runs(), 0);
        assert!(state.is_ready(), "refusals do not recycle");
        let (status, v) = call(
            &app,
            "POST",
            "/run_spec",
            json!({"spec": spec(&session, json!({}))}),
            None,
        )
        .await;
        assert_eq!((status, v["recycle"].as_bool()), (200, Some(true)), "{v}");
    }

    #[tokio::test]
    async fn a_second_concurrent_dispatch_is_busy_and_cancel_stops_the_first() {
        let dir = project();
        let session = open(dir.path(), "s1");
        let state = WorkerState::new("s1", None, None);
        state.set_ready(Arc::clone(&session));
        let app = worker_app(Arc::clone(&state));
        let slow = spec(&session, json!({"delay": 3000}));
        let slow_id = slow.run_id().to_string();
        let first = {
            let app = app.clone();
            tokio::spawn(async move { call(&app, "POST", "/run_spec", json!({"spec": slow}), None).await })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while lock(&state.current).is_none() {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (status, v) = call(
            &app,
            "POST",
            "/run_spec",
            json!({"spec": spec(&session, json!({}))}),
            None,
        )
        .await;
        assert_eq!((status, v["error"]["code"].as_str()), (409, Some("busy")), "{v}");
        let (status, _) = call(&app, "POST", "/cancel", json!({"run_id": "other"}), None).await;
        assert_eq!(status, 404);
        let (status, v) = call(&app, "POST", "/cancel", json!({"run_id": slow_id}), None).await;
        assert_eq!(status, 200, "{v}");
        let (status, v) = first.await.unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["record"]["status"], "cancelled", "{v}");
        // Free again: the busy refusal was not counted and did not stick.
        let (status, v) = call(
            &app,
            "POST",
            "/run_spec",
            json!({"spec": spec(&session, json!({}))}),
            None,
        )
        .await;
        assert_eq!(
            (status, v["record"]["status"].as_str()),
            (200, Some("succeeded")),
            "{v}"
        );
    }

    #[tokio::test]
    async fn the_token_guards_every_route_but_healthz() {
        let dir = project();
        let session = open(dir.path(), "s1");
        let state = WorkerState::new("s1", Some("sekret".into()), None);
        state.set_ready(Arc::clone(&session));
        let app = worker_app(Arc::clone(&state));
        let (status, _) = call(&app, "GET", "/healthz", Value::Null, None).await;
        assert_eq!(status, 200);
        for path in ["/run_spec", "/cancel", "/stop"] {
            let (status, _) = call(&app, "POST", path, json!({}), Some("wrong")).await;
            assert_eq!(status, 401, "{path}");
        }
        let (status, v) = call(
            &app,
            "POST",
            "/run_spec",
            json!({"spec": spec(&session, json!({}))}),
            Some("sekret"),
        )
        .await;
        assert_eq!(status, 200, "{v}");
    }

    #[tokio::test]
    async fn stop_stops_accepting() {
        let dir = project();
        let session = open(dir.path(), "s1");
        let state = WorkerState::new("s1", None, None);
        state.set_ready(Arc::clone(&session));
        let app = worker_app(Arc::clone(&state));
        let (status, _) = call(&app, "POST", "/stop", json!({"mode": "sideways"}), None).await;
        assert_eq!(status, 400);
        assert!(state.is_ready());
        let (status, v) = call(&app, "POST", "/stop", json!({"mode": "cancel"}), None).await;
        assert_eq!(status, 200, "{v}");
        tokio::time::timeout(Duration::from_secs(5), state.stopped())
            .await
            .unwrap();
        let (status, _) = call(
            &app,
            "POST",
            "/run_spec",
            json!({"spec": spec(&session, json!({}))}),
            None,
        )
        .await;
        assert_eq!(status, 503);
    }
}
