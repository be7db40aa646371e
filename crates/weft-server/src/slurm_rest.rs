//! Slurm's REST API (`slurmrestd`, OpenAPI plugin v0.0.38, Slurm 22.05),
//! for a [`crate::SlurmLauncher`] configured with [`SlurmRest`]: submit
//! with `POST /slurm/v0.0.38/job/submit`, read a job with `GET
//! /slurm/v0.0.38/job/{id}`, list jobs with `GET /slurm/v0.0.38/jobs`,
//! cancel with `DELETE /slurm/v0.0.38/job/{id}`. Every request carries
//! `X-SLURM-USER-NAME` and `X-SLURM-USER-TOKEN` (a JWT, `scontrol token`;
//! slurmrestd run with `rest_auth/jwt`).

use std::time::Duration;

use serde_json::Value;

/// The API version path of every request.
pub const API: &str = "/slurm/v0.0.38";

/// Where and as whom a Slurm launcher talks to `slurmrestd`.
#[derive(Clone, PartialEq, Eq)]
pub struct SlurmRest {
    /// slurmrestd's base URL (`http://127.0.0.1:6820`; `http://` only).
    pub url: String,
    /// The user the jobs run as (`X-SLURM-USER-NAME`).
    pub user: String,
    /// The user's JWT (`X-SLURM-USER-TOKEN`).
    pub token: String,
}

/// The token stays out of logs and messages.
impl std::fmt::Debug for SlurmRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlurmRest")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A job as `GET /slurm/v0.0.38/job/{id}` or `/jobs` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RestJob {
    /// The job id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The user it runs as.
    pub user: String,
    /// `PENDING`, `RUNNING`, `CANCELLED`, ...
    pub state: String,
    /// Why it is pending (`None` when it is not).
    pub reason: String,
    /// The node running its batch script.
    pub batch_host: Option<String>,
    /// Its exit code (once ended).
    pub exit_code: Option<i64>,
}

/// A client of one slurmrestd.
#[derive(Clone)]
pub(crate) struct RestClient {
    rest: SlurmRest,
    agent: ureq::Agent,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient").field("rest", &self.rest).finish()
    }
}

/// The `error` texts of a v0.0.38 answer's `errors` list, joined.
fn errors(body: &Value) -> Option<String> {
    let list: Vec<String> = body["errors"]
        .as_array()?
        .iter()
        .map(|e| {
            let error = e["error"].as_str().unwrap_or_default();
            match e["description"].as_str().filter(|d| !d.is_empty()) {
                Some(d) if !error.is_empty() => format!("{error} ({d})"),
                Some(d) => d.to_string(),
                None => error.to_string(),
            }
        })
        .filter(|e| !e.is_empty())
        .collect();
    (!list.is_empty()).then(|| list.join("; "))
}

fn job_of(v: &Value) -> Option<RestJob> {
    let id = match &v["job_id"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    let text = |key: &str| v[key].as_str().unwrap_or_default().trim().to_string();
    let host = text("batch_host");
    Some(RestJob {
        id,
        name: text("name"),
        user: text("user_name"),
        state: text("job_state"),
        reason: text("state_reason"),
        batch_host: (!host.is_empty() && host != "(null)").then_some(host),
        exit_code: v["exit_code"].as_i64(),
    })
}

impl RestClient {
    /// A client of `rest`.
    pub fn new(rest: SlurmRest) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(2)))
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        RestClient {
            rest: SlurmRest {
                url: rest.url.trim_end_matches('/').to_string(),
                ..rest
            },
            agent,
        }
    }

    /// The base URL (for messages).
    pub fn url(&self) -> &str {
        &self.rest.url
    }

    /// The user jobs run as.
    pub fn user(&self) -> &str {
        &self.rest.user
    }

    /// `METHOD API+path` with `body` → (status, JSON answer); `Err`: no
    /// answer (what failed, with the URL).
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), String> {
        let url = format!("{}{API}{path}", self.rest.url);
        let name = self.rest.user.as_str();
        let token = self.rest.token.as_str();
        let response = match (method, body) {
            ("POST", Some(body)) => self
                .agent
                .post(&url)
                .header("X-SLURM-USER-NAME", name)
                .header("X-SLURM-USER-TOKEN", token)
                .header("Content-Type", "application/json")
                .send(body.to_string().as_bytes()),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("X-SLURM-USER-NAME", name)
                .header("X-SLURM-USER-TOKEN", token)
                .call(),
            _ => self
                .agent
                .get(&url)
                .header("X-SLURM-USER-NAME", name)
                .header("X-SLURM-USER-TOKEN", token)
                .call(),
        };
        let mut response = response.map_err(|e| format!("slurmrestd at {url}: {e}"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .map_err(|e| format!("slurmrestd at {url}: reading the answer: {e}"))?;
        let v =
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.chars().take(500).collect()));
        Ok((status, v))
    }

    /// Submits a job (`{"script": ..., "job": {...}}`): its id, or why
    /// Slurm (or slurmrestd) refused it.
    pub fn submit(&self, body: &Value) -> Result<String, String> {
        let (status, v) = self.call("POST", "/job/submit", Some(body))?;
        let id = match &v["job_id"] {
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        match id {
            // A job taken but flagged (`Requested partition configuration not
            // available now`) is submitted: the watcher sees it pending.
            Some(id) if (200..300).contains(&status) => {
                if let Some(warn) = errors(&v) {
                    tracing::info!(job_id = %id, "slurmrestd took the job with: {warn}");
                }
                Ok(id)
            }
            _ => Err(match (errors(&v), &v) {
                (Some(e), _) => format!("{e} (HTTP {status})"),
                (None, Value::String(s)) => format!("HTTP {status}: {s}"),
                (None, other) => format!("HTTP {status}: {other}"),
            }),
        }
    }

    /// The job `id` (`Ok(None)`: Slurm does not know it, or no longer).
    pub fn job(&self, id: &str) -> Result<Option<RestJob>, String> {
        let (status, v) = self.call("GET", &format!("/job/{id}"), None)?;
        if let Some(job) = v["jobs"].as_array().and_then(|j| j.first()).and_then(job_of) {
            return Ok(Some(job));
        }
        match errors(&v) {
            Some(e) if e.contains("Invalid job id") => Ok(None),
            Some(e) => Err(format!("HTTP {status}: {e}")),
            None if (200..300).contains(&status) => Ok(None),
            None => Err(format!("HTTP {status}: {v}")),
        }
    }

    /// Every job the controller knows.
    pub fn jobs(&self) -> Result<Vec<RestJob>, String> {
        let (status, v) = self.call("GET", "/jobs", None)?;
        match v["jobs"].as_array() {
            Some(jobs) => Ok(jobs.iter().filter_map(job_of).collect()),
            None => Err(format!(
                "HTTP {status}: {}",
                errors(&v).unwrap_or_else(|| v.to_string())
            )),
        }
    }

    /// Cancels the job `id`.
    pub fn cancel(&self, id: &str) -> Result<(), String> {
        let (status, v) = self.call("DELETE", &format!("/job/{id}"), None)?;
        match errors(&v) {
            Some(e) => Err(format!("HTTP {status}: {e}")),
            None if (200..300).contains(&status) => Ok(()),
            None => Err(format!("HTTP {status}: {v}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jobs_and_errors_read_from_v0_0_38_answers() {
        let v = json!({"jobs": [{"job_id": 12, "name": "weft-s-w0", "user_name": "root",
            "job_state": "PENDING", "state_reason": "PartitionConfig", "batch_host": "", "exit_code": 0}]});
        let job = job_of(&v["jobs"][0]).unwrap();
        assert_eq!(job.id, "12");
        assert_eq!(job.state, "PENDING");
        assert_eq!(job.reason, "PartitionConfig");
        assert_eq!(job.batch_host, None);
        let e = json!({"errors": [{"error_code": 2000, "error": "Invalid partition name specified"}]});
        assert_eq!(errors(&e).unwrap(), "Invalid partition name specified");
        let e = json!({"errors": [{"description": "Unable to find JobId=9", "error": "Invalid job id specified"}]});
        assert_eq!(
            errors(&e).unwrap(),
            "Invalid job id specified (Unable to find JobId=9)"
        );
        assert_eq!(errors(&json!({"errors": []})), None);
    }

    #[test]
    fn the_token_stays_out_of_debug() {
        let rest = SlurmRest {
            url: "http://127.0.0.1:1".into(),
            user: "me".into(),
            token: "secret-jwt".into(),
        };
        assert!(!format!("{rest:?}").contains("secret-jwt"));
        assert!(!format!("{:?}", RestClient::new(rest)).contains("secret-jwt"));
    }
}
