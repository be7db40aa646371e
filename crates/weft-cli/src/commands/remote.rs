//! `--server URL` (or `WEFT_SERVER`): `weft run`, `weft multirun`, `weft
//! runs` and `weft sessions` acting on a `weft serve` instead of the local
//! project. Runs are submitted to a new session, followed live on its
//! events stream, printed like local runs, and the session is drained.

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::*;
use crate::error::{EXIT_FAILURE, EXIT_OK};

/// A `weft serve` client.
pub(crate) struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// Why a request failed: the server's JSON error, or the transport.
fn describe(status: u16, body: &Value) -> String {
    let message = body["error"]["message"].as_str().unwrap_or("no message");
    let mut text = format!("the server answered {status}: {message}");
    if let Some(problems) = body["error"]["problems"].as_array() {
        for p in problems {
            text.push_str(&format!("\n  - {}", p.as_str().unwrap_or_default()));
        }
    }
    text
}

impl Client {
    /// A client of `base` (`http://127.0.0.1:7878`), with the bearer token.
    pub(crate) fn new(base: &str, token: Option<String>) -> Result<Self, UsageError> {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(UsageError::new(format!(
                "--server {base}: expected an http:// or https:// URL"
            )));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .into();
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
        })
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    fn finish(
        &self,
        what: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Value> {
        let mut resp = resp.with_context(|| format!("{what}: cannot reach the server at {}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            bail!("{what}: {}", describe(status, &body));
        }
        Ok(body)
    }

    pub(crate) fn get(&self, path: &str) -> anyhow::Result<Value> {
        let req = self.auth(self.agent.get(&format!("{}{path}", self.base)));
        self.finish(&format!("GET {path}"), req.call())
    }

    /// A text answer (logs), written to `out` as it arrives.
    pub(crate) fn get_text(&self, path: &str, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
        let req = self.auth(self.agent.get(&format!("{}{path}", self.base)));
        let resp = req
            .call()
            .with_context(|| format!("GET {path}: cannot reach the server at {}", self.base))?;
        let status = resp.status().as_u16();
        let mut reader = resp.into_body().into_reader();
        if status >= 400 {
            let mut text = String::new();
            let _ = reader.read_to_string(&mut text);
            bail!(
                "GET {path}: {}",
                describe(status, &serde_json::from_str(&text).unwrap_or(Value::Null))
            );
        }
        std::io::copy(&mut reader, out).context("reading the log")?;
        Ok(())
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let req = self
            .auth(self.agent.post(&format!("{}{path}", self.base)))
            .header("Content-Type", "application/json");
        self.finish(&format!("POST {path}"), req.send(body.to_string().as_bytes()))
    }

    pub(crate) fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let req = self.auth(self.agent.delete(&format!("{}{path}", self.base)));
        self.finish(&format!("DELETE {path}"), req.call())
    }

    /// Follows a session's events until `done` says stop; calls `on_event`
    /// with each (kind, data).
    fn follow(&self, session_id: &str, mut on_event: impl FnMut(&str, &Value) -> bool) -> anyhow::Result<()> {
        let path = format!("/v1/sessions/{session_id}/events");
        let req = self.auth(self.agent.get(&format!("{}{path}", self.base)));
        let resp = req
            .call()
            .with_context(|| format!("GET {path}: cannot reach the server"))?;
        if resp.status().as_u16() >= 400 {
            let status = resp.status().as_u16();
            let mut text = String::new();
            let _ = resp.into_body().into_reader().read_to_string(&mut text);
            bail!(
                "GET {path}: {}",
                describe(status, &serde_json::from_str(&text).unwrap_or(Value::Null))
            );
        }
        let reader = BufReader::new(resp.into_body().into_reader());
        let mut kind = String::new();
        let mut data = String::new();
        for line in reader.lines() {
            let line = line.context("reading the events stream")?;
            if let Some(k) = line.strip_prefix("event: ") {
                kind = k.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            } else if line.is_empty() && !kind.is_empty() {
                let value: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                if !on_event(&kind, &value) {
                    return Ok(());
                }
                kind.clear();
                data.clear();
            }
        }
        Ok(())
    }
}

/// The server URL: `--server`, then `WEFT_SERVER`.
pub(crate) fn server_url(flag: Option<&str>, environment: &crate::settings::Environment) -> Option<String> {
    flag.map(str::to_string)
        .or_else(|| environment.get("WEFT_SERVER").map(str::to_string))
}

/// The run spec the flags describe.
fn spec_of(args: &RunArgs) -> Result<RunConfig, UsageError> {
    let mut config = filter_config(&args.filter);
    config.load_versions = load_versions(&args.load_versions)?;
    config.runner = args.runner.clone();
    config.max_workers = args.max_workers;
    config.timeout = args.timeout.clone();
    config.only_missing_outputs = args.only_missing_outputs;
    config.env = args.session.env.clone();
    if let Some(path) = &args.inputs {
        config.inputs = read_inputs(path)?;
    }
    config.answers = super::read_answers(&args.answers)?;
    Ok(config)
}

fn open_session(client: &Client, args: &RunArgs, max_concurrency: usize) -> anyhow::Result<String> {
    let session = client.post(
        "/v1/sessions",
        &json!({"env": args.session.env, "max_concurrency": max_concurrency.max(1)}),
    )?;
    session["id"]
        .as_str()
        .map(str::to_string)
        .context("the server's session has no id")
}

/// Submits, follows, prints; returns the runs' final records.
fn submit_and_follow(
    client: &Client,
    session_id: &str,
    body: &Value,
    io: &mut Io<'_>,
    per_node: bool,
    json_out: bool,
) -> anyhow::Result<Vec<Value>> {
    let accepted = client.post(&format!("/v1/sessions/{session_id}/runs"), body)?;
    let run_ids: Vec<String> = accepted["run_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let total = run_ids.len();
    let mut pending: std::collections::BTreeSet<String> = run_ids.iter().cloned().collect();
    let mut finished = 0usize;
    let mut lines: Vec<String> = Vec::new();
    let mut waiting: Vec<String> = Vec::new();
    client.follow(session_id, |kind, data| {
        let run_id = data["run_id"].as_str().unwrap_or_default();
        match kind {
            "node_finished" if per_node && !json_out => lines.push(format!(
                "node {} done ({}/{}) in {:.1} ms",
                data["node"].as_str().unwrap_or("?"),
                data["done"],
                data["total"],
                data["duration_ms"].as_f64().unwrap_or(0.0)
            )),
            // A run that asks: answered on the terminal, or left waiting
            // (the session is kept for `weft runs answer`).
            "input_required" if pending.contains(run_id) => {
                let asked = serde_json::from_value::<weft_core::PendingInput>(data["pending_input"].clone())
                    .ok()
                    .map(|p| super::ask(io, run_id, &p));
                match asked {
                    Some(Ok(Some(answer))) => {
                        if let Err(e) =
                            client.post(&format!("/v1/runs/{run_id}/input"), &json!({"input": answer}))
                        {
                            lines.push(format!("run {run_id}: the answer was refused: {e:#}"));
                            pending.remove(run_id);
                        }
                    }
                    _ => {
                        waiting.push(run_id.to_string());
                        pending.remove(run_id);
                    }
                }
            }
            "run_finished" if data["requeued"] != json!(true) && pending.remove(run_id) => {
                finished += 1;
                if !per_node && !json_out {
                    lines.push(format!(
                        "run {finished}/{total} {run_id} {}",
                        data["status"].as_str().unwrap_or("?")
                    ));
                }
            }
            _ => {}
        }
        for line in lines.drain(..) {
            let _ = writeln!(io.err, "{line}");
        }
        !pending.is_empty()
    })?;
    for run_id in &waiting {
        writeln!(
            io.err,
            "run {run_id} waits for input; answer with `weft runs answer {run_id} FILE --server URL`"
        )?;
    }
    run_ids
        .iter()
        .map(|id| client.get(&format!("/v1/runs/{id}")))
        .collect()
}

fn print_runs(runs: &[Value], json_out: bool, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let failed = runs.iter().filter(|r| r["status"] != "succeeded").count();
    if json_out {
        if runs.len() == 1 {
            write_json(io.out, &runs[0])?;
        } else {
            write_json(io.out, &runs)?;
        }
    } else {
        for r in runs {
            writeln!(
                io.out,
                "{}  {}  {:.3}s  {}",
                r["run_id"].as_str().unwrap_or("?"),
                r["status"].as_str().unwrap_or("?"),
                r["duration_ms"].as_f64().unwrap_or(0.0) / 1e3,
                r["runtime_params"]
            )?;
            if let Some(e) = r["error"]["message"].as_str() {
                writeln!(io.out, "  error: {e}")?;
            }
        }
    }
    Ok(if failed == 0 { EXIT_OK } else { EXIT_FAILURE })
}

/// Ends the command's session, unless a run of it waits for input (closing
/// would cancel it).
fn close_unless_waiting(client: &Client, session_id: &str, runs: &anyhow::Result<Vec<Value>>) {
    let waiting = runs
        .as_ref()
        .is_ok_and(|runs| runs.iter().any(|r| r["status"] == "input_required"));
    if !waiting {
        let _ = client.delete(&format!("/v1/sessions/{session_id}"));
    }
}

/// `weft run --server URL`.
pub(super) fn run(client: &Client, args: &RunArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let mut spec = spec_of(args)?;
    spec.runtime_params = runtime_params(&args.params)?;
    let session_id = open_session(client, args, 1)?;
    let body = json!({ "runs": [spec] });
    let runs = submit_and_follow(client, &session_id, &body, io, true, args.json);
    close_unless_waiting(client, &session_id, &runs);
    print_runs(&runs?, args.json, io)
}

/// `weft multirun --server URL`: the sweep goes to the server as written
/// (the same grammar), `--max-workers` becomes the session's concurrency.
pub(super) fn multirun(client: &Client, args: &MultirunArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    // The server's own --launcher decides where its runs execute.
    if args.launcher.launcher != crate::args::LauncherArg::InProcess {
        return Err(UsageError::new(
            "--launcher does not apply with --server: the server's `weft serve --launcher` decides where its runs execute",
        )
        .into());
    }
    let spec = spec_of(&args.run)?;
    // A sweep file is expanded here (the server takes override strings or
    // explicit runs); plain --params sweeps go as written.
    let body = match &args.sweep_file {
        Some(file) => {
            let mut sweep = crate::sweep::Sweep::parse(&args.run.params)
                .map_err(|e| UsageError::caused_by("invalid --params", e))?;
            sweep.extend(
                crate::sweep::Sweep::from_file(file)
                    .map_err(|e| UsageError::caused_by("invalid --sweep-file", e))?,
            );
            let runs: Vec<RunConfig> = sweep
                .expand(args.max_runs)
                .map_err(|e| UsageError::caused_by("invalid sweep", e))?
                .map(|params| RunConfig {
                    runtime_params: params,
                    ..spec.clone()
                })
                .collect();
            json!({ "runs": runs })
        }
        None => json!({ "spec": spec, "sweep": args.run.params }),
    };
    let session_id = open_session(client, &args.run, args.run.max_workers.unwrap_or(1))?;
    let runs = submit_and_follow(client, &session_id, &body, io, false, args.run.json);
    close_unless_waiting(client, &session_id, &runs);
    print_runs(&runs?, args.run.json, io)
}

/// `weft runs ... --server URL`.
pub(super) fn runs(client: &Client, cmd: RunsCommand, io: &mut Io<'_>) -> anyhow::Result<u8> {
    match cmd {
        RunsCommand::List {
            session,
            status,
            limit,
            json,
            ..
        } => {
            let Some(session) = session else {
                return Err(UsageError::new("weft runs list --server needs --session ID").into());
            };
            let mut query = vec![];
            if let Some(s) = status {
                query.push(format!("status={s}"));
            }
            if let Some(l) = limit {
                query.push(format!("limit={l}"));
            }
            let page = client.get(&format!("/v1/sessions/{session}/runs?{}", query.join("&")))?;
            let runs = page["runs"].as_array().cloned().unwrap_or_default();
            print_runs(&runs, json, io).map(|_| EXIT_OK)
        }
        RunsCommand::Show { run_id, json, .. } => {
            let run = client.get(&format!("/v1/runs/{run_id}"))?;
            print_runs(&[run], json, io).map(|_| EXIT_OK)
        }
        RunsCommand::Logs { run_id } => {
            client.get_text(&format!("/v1/runs/{run_id}/logs"), io.out)?;
            Ok(EXIT_OK)
        }
        RunsCommand::Answer {
            run_id,
            file,
            node,
            json,
        } => {
            let answer = super::read_answer_file(&file)?;
            let run = client.post(
                &format!("/v1/runs/{run_id}/input"),
                &json!({"input": answer, "node": node}),
            )?;
            print_runs(&[run], json, io).map(|_| EXIT_OK)
        }
        RunsCommand::Cancel { run_id, json } => {
            let run = client.post(&format!("/v1/runs/{run_id}/cancel"), &json!({}))?;
            print_runs(&[run], json, io).map(|_| EXIT_OK)
        }
        other => Err(UsageError::new(format!("{other:?} is not supported with --server")).into()),
    }
}

/// `weft sessions list --server URL`.
pub(super) fn sessions(client: &Client, cmd: SessionsCommand, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let SessionsCommand::List { json, .. } = cmd;
    let page = client.get("/v1/sessions?all=true")?;
    let sessions = page["sessions"].as_array().cloned().unwrap_or_default();
    if json {
        write_json(io.out, &sessions)?;
    } else {
        for s in &sessions {
            writeln!(
                io.out,
                "{}  {}  {}",
                s["id"].as_str().unwrap_or("?"),
                s["state"].as_str().unwrap_or("?"),
                s["runs"]
            )?;
        }
    }
    Ok(EXIT_OK)
}

/// Reads a token file (trimmed).
pub(crate) fn read_token(path: &std::path::Path) -> Result<String, UsageError> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| UsageError::caused_by(format!("--token-file {}: cannot read it", path.display()), e))?;
    Ok(text.trim().to_string())
}
