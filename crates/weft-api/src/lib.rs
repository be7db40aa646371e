//! HTTP API datasets for weft's catalog: `api.APIDataset` loads the answer
//! of a request (JSON or text) and saves by sending the data as JSON, on
//! [ureq] (blocking, so it works from any thread).
//!
//! Kedro's argument names, plus weft's `format` and `retries`:
//!
//! - `url` (required): an `http://` URL (this build has no TLS, so
//!   `https://` is refused when the catalog is built).
//! - `method`: the load's method, `GET` (default), `POST`, `PUT`, `PATCH`,
//!   `DELETE`.
//! - `load_args` / `save_args`: `params` (a map of query parameters),
//!   `headers` (a map), `json` (a JSON body; loads only: a save sends its
//!   data), `timeout` (seconds, default 30: the whole request),
//!   `retries` (default 0: how many times a connection error, a timeout,
//!   HTTP 429 or 5xx is retried, waiting 0.2 s, 0.4 s, ... up to 5 s), and
//!   for loads `format`: `json` (default) or `text`. `save_args.method`:
//!   `POST` (default) or `PUT`; `save_args.chunk_size`: send a list in
//!   requests of at most this many items (default: the whole list in one).
//! - `credentials`: `{username, password}` or Kedro's `[username,
//!   password]` for basic auth, or `{token}` for a bearer token.
//!
//! A status of 400 or more is an error naming the dataset, the method and
//! URL, the status and the start of the answer's body. Credentials never
//! appear in errors or `describe()`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use weft_catalog::{CatalogError, Dataset, DatasetInfo, DatasetSpec, DatasetTypeRegistry, LoadType};
use weft_pipeline::{Data, DataType};

/// The type names this crate registers.
pub const TYPE_NAMES: &[&str] = &["api.APIDataset"];

/// The most of an error answer's body an error message shows.
const BODY_EXCERPT: usize = 300;
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Registers the API dataset type in `registry` (a name registered twice
/// is an error).
pub fn register(registry: &mut DatasetTypeRegistry) -> Result<(), CatalogError> {
    for name in TYPE_NAMES {
        registry.register(name, Arc::new(factory))?;
    }
    Ok(())
}

/// An HTTP method this dataset sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn parse(v: Option<&Value>, default: Method, allowed: &[Method], field: &str) -> Result<Method, String> {
        let m = match v {
            None | Some(Value::Null) => return Ok(default),
            Some(Value::String(s)) => match s.to_ascii_uppercase().as_str() {
                "GET" => Method::Get,
                "POST" => Method::Post,
                "PUT" => Method::Put,
                "PATCH" => Method::Patch,
                "DELETE" => Method::Delete,
                _ => return Err(format!("{field}: unknown method `{s}`")),
            },
            Some(other) => return Err(format!("{field}: expected a method name, got {other}")),
        };
        if !allowed.contains(&m) {
            return Err(format!(
                "{field}: `{}` is not allowed here (use {})",
                m.name(),
                allowed.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(m)
    }

    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// How an answer is handed to the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Text,
}

/// Authentication from the entry's credentials.
#[derive(Clone)]
enum Auth {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

impl Auth {
    fn parse(credentials: Option<&Value>) -> Result<Auth, String> {
        let text = |v: &Value, key: &str| -> Result<String, String> {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("credentials.{key}: expected text"))
        };
        match credentials {
            None | Some(Value::Null) => Ok(Auth::None),
            Some(Value::Array(pair)) if pair.len() == 2 => Ok(Auth::Basic {
                username: text(&pair[0], "0")?,
                password: text(&pair[1], "1")?,
            }),
            Some(Value::Object(m)) => {
                if let Some(k) = m
                    .keys()
                    .find(|k| !["username", "password", "token"].contains(&k.as_str()))
                {
                    return Err(format!(
                        "credentials: unknown key `{k}` (use `username` and `password` for basic auth, or `token` for a bearer token)"
                    ));
                }
                match (m.get("username"), m.get("password"), m.get("token")) {
                    (Some(u), Some(p), None) => Ok(Auth::Basic {
                        username: text(u, "username")?,
                        password: text(p, "password")?,
                    }),
                    (None, None, Some(t)) => Ok(Auth::Bearer(text(t, "token")?)),
                    _ => Err(
                        "credentials: give `username` and `password` (basic auth) or `token` (bearer), not a mix".into(),
                    ),
                }
            }
            Some(_) => Err(
                "credentials: expected `{username, password}`, `[username, password]` or `{token}`".into(),
            ),
        }
    }

    fn header(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Basic { username, password } => Some(format!(
                "Basic {}",
                base64(format!("{username}:{password}").as_bytes())
            )),
            Auth::Bearer(t) => Some(format!("Bearer {t}")),
        }
    }
}

/// Standard base64 with padding (for basic auth).
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One direction's request settings.
#[derive(Clone, Debug)]
struct RequestArgs {
    params: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    timeout: Duration,
    retries: u32,
}

impl RequestArgs {
    fn parse(args: &Value, field: &str) -> Result<Self, String> {
        let pairs = |key: &str| -> Result<Vec<(String, String)>, String> {
            match args.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => Ok((k.clone(), s.clone())),
                        Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                        other => Err(format!(
                            "{field}.{key}.{k}: expected text, a number or a boolean, got {other}"
                        )),
                    })
                    .collect(),
                Some(other) => Err(format!("{field}.{key}: expected a map, got {other}")),
            }
        };
        let timeout = match args.get("timeout") {
            None | Some(Value::Null) => Duration::from_secs(30),
            Some(v) => v
                .as_f64()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("{field}.timeout: expected a number of seconds above 0, got {v}"))?,
        };
        let retries = match args.get("retries") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n <= 20)
                .ok_or_else(|| format!("{field}.retries: expected a count from 0 to 20, got {v}"))?,
        };
        Ok(RequestArgs {
            params: pairs("params")?,
            headers: pairs("headers")?,
            timeout,
            retries,
        })
    }
}

fn check_keys(args: &Value, field: &str, allowed: &[&str]) -> Result<(), String> {
    if let Value::Object(map) = args
        && let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str()))
    {
        return Err(format!(
            "{field}: unknown key `{k}` (supported: {})",
            allowed.join(", ")
        ));
    }
    Ok(())
}

fn factory(spec: &DatasetSpec<'_>) -> Result<Arc<dyn Dataset>, String> {
    if spec.versioned()? {
        return Err("`versioned`: an HTTP API cannot be versioned".into());
    }
    let raw = spec.required("url")?;
    let url = url::Url::parse(raw).map_err(|e| format!("`url`: not a valid URL: {e}"))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(format!(
                "`url`: {}: https is not supported in this build (its HTTP client has no TLS); use an http:// endpoint or a TLS-terminating proxy",
                shown(&url)
            ));
        }
        other => {
            return Err(format!(
                "`url`: expected an http:// URL, got the scheme `{other}`"
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("`url`: put the user and password in `credentials`, not in the URL".into());
    }
    let all = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
    ];
    let method = Method::parse(spec.config.get("method"), Method::Get, &all, "`method`")?;
    let load_args = spec.args("load_args")?;
    let save_args = spec.args("save_args")?;
    check_keys(
        &load_args,
        "load_args",
        &["params", "headers", "json", "timeout", "retries", "format"],
    )?;
    check_keys(
        &save_args,
        "save_args",
        &["params", "headers", "timeout", "retries", "method", "chunk_size"],
    )?;
    let format = match load_args.get("format") {
        None | Some(Value::Null) => Format::Json,
        Some(Value::String(s)) if s == "json" => Format::Json,
        Some(Value::String(s)) if s == "text" => Format::Text,
        Some(other) => {
            return Err(format!(
                "load_args.format: expected `json` or `text`, got {other}"
            ));
        }
    };
    let save_method = Method::parse(
        save_args.get("method"),
        Method::Post,
        &[Method::Post, Method::Put],
        "save_args.method",
    )?;
    let chunk_size = match save_args.get("chunk_size") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("save_args.chunk_size: expected a count above 0, got {v}"))?,
        ),
    };
    let auth = Auth::parse(spec.credentials)?;
    Ok(Arc::new(ApiDataset {
        name: spec.name.to_string(),
        type_name: spec.type_name.to_string(),
        url: url.to_string(),
        method,
        load: RequestArgs::parse(&load_args, "load_args")?,
        load_json: load_args.get("json").cloned().filter(|v| !v.is_null()),
        format,
        save: RequestArgs::parse(&save_args, "save_args")?,
        save_method,
        chunk_size,
        auth,
    }))
}

fn shown(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// One HTTP endpoint (`api.APIDataset`).
pub struct ApiDataset {
    name: String,
    type_name: String,
    url: String,
    method: Method,
    load: RequestArgs,
    load_json: Option<Value>,
    format: Format,
    save: RequestArgs,
    save_method: Method,
    chunk_size: Option<usize>,
    auth: Auth,
}

/// Why one attempt failed, and whether another may succeed.
struct Failure {
    message: String,
    retryable: bool,
}

impl ApiDataset {
    /// Sends one request (with retries); the answer's body on success.
    fn request(&self, method: Method, args: &RequestArgs, body: Option<&Value>) -> Result<String, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(args.timeout))
            .build()
            .into();
        let what = format!("{} {}", method.name(), self.url);
        let mut attempt = 0;
        loop {
            match self.attempt(&agent, method, args, body) {
                Ok(text) => return Ok(text),
                Err(f) if f.retryable && attempt < args.retries => {
                    let wait = Duration::from_millis(200u64 << attempt.min(10)).min(MAX_BACKOFF);
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Err(f) => {
                    let tries = if attempt > 0 {
                        format!(" (after {} attempts)", attempt + 1)
                    } else {
                        String::new()
                    };
                    return Err(format!("{what}{tries}: {}", f.message));
                }
            }
        }
    }

    fn attempt(
        &self,
        agent: &ureq::Agent,
        method: Method,
        args: &RequestArgs,
        body: Option<&Value>,
    ) -> Result<String, Failure> {
        macro_rules! prepare {
            ($req:expr) => {{
                let mut req = $req;
                for (k, v) in &args.params {
                    req = req.query(k, v);
                }
                for (k, v) in &args.headers {
                    req = req.header(k, v);
                }
                if let Some(h) = self.auth.header() {
                    req = req.header("Authorization", &h);
                }
                req
            }};
        }
        let url = self.url.as_str();
        let response = match (method, body) {
            (Method::Get, None) => prepare!(agent.get(url)).call(),
            (Method::Delete, None) => prepare!(agent.delete(url)).call(),
            (m, body) => {
                let req = match m {
                    Method::Get => agent.get(url).force_send_body(),
                    Method::Delete => agent.delete(url).force_send_body(),
                    Method::Post => agent.post(url),
                    Method::Put => agent.put(url),
                    Method::Patch => agent.patch(url),
                };
                let req = prepare!(req);
                match body {
                    Some(json) => req
                        .header("Content-Type", "application/json")
                        .send(json.to_string().as_bytes()),
                    None => req.send_empty(),
                }
            }
        };
        let mut response = response.map_err(|e| Failure {
            retryable: matches!(
                e,
                ureq::Error::Io(_)
                    | ureq::Error::Timeout(_)
                    | ureq::Error::ConnectionFailed
                    | ureq::Error::HostNotFound
            ),
            message: transport_message(&e),
        })?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .map_err(|e| Failure {
                retryable: matches!(e, ureq::Error::Io(_) | ureq::Error::Timeout(_)),
                message: format!("reading the answer failed: {}", transport_message(&e)),
            })?;
        if status.as_u16() >= 400 {
            let excerpt: String = text.chars().take(BODY_EXCERPT).collect();
            let more = if text.chars().count() > BODY_EXCERPT {
                "..."
            } else {
                ""
            };
            return Err(Failure {
                retryable: status.as_u16() == 429 || status.is_server_error(),
                message: format!("HTTP {status}: {}{more}", excerpt.trim()),
            });
        }
        Ok(text)
    }

    fn load_err(&self, message: String) -> CatalogError {
        CatalogError::Load {
            dataset: self.name.clone(),
            path: None,
            message,
        }
    }

    fn save_err(&self, message: String) -> CatalogError {
        CatalogError::Save {
            dataset: self.name.clone(),
            path: None,
            message,
        }
    }
}

fn transport_message(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::ConnectionFailed => "could not connect".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        other => other.to_string(),
    }
}

impl Dataset for ApiDataset {
    fn load(&self, request: Option<&DataType>) -> Result<Data, CatalogError> {
        let text = self
            .request(self.method, &self.load, self.load_json.as_ref())
            .map_err(|e| self.load_err(e))?;
        let wants_text = request.is_some_and(|t| *t == DataType::of::<String>());
        if self.format == Format::Text || wants_text {
            return match request {
                Some(ty) if *ty != DataType::of::<String>() && ty.is_decodable() => ty
                    .decode_json(&Value::String(text))
                    .map_err(|e| self.load_err(e.to_string())),
                _ => Ok(Data::new(text)),
            };
        }
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            let excerpt: String = text.chars().take(80).collect();
            self.load_err(format!(
                "{} {}: the answer is not JSON ({e}); it starts with {excerpt:?} (set load_args.format: text to load it as text)",
                self.method.name(),
                self.url
            ))
        })?;
        match request {
            Some(ty) if ty.is_decodable() => ty.decode_json(&value).map_err(|e| self.load_err(e.to_string())),
            _ => Ok(Data::new(value)),
        }
    }

    fn save(&self, data: &Data) -> Result<(), CatalogError> {
        let value = data.to_json().map_err(|_| {
            self.save_err(format!(
                "values of type `{}` cannot be sent as JSON; save a serde-backed value",
                data.type_name()
            ))
        })?;
        match (&value, self.chunk_size) {
            (Value::Array(items), Some(size)) => {
                let chunks: Vec<&[Value]> = items.chunks(size).collect();
                for (i, chunk) in chunks.iter().enumerate() {
                    let body = Value::Array(chunk.to_vec());
                    self.request(self.save_method, &self.save, Some(&body))
                        .map_err(|e| {
                            self.save_err(format!(
                                "{e} (chunk {} of {}; the {} before it were sent)",
                                i + 1,
                                chunks.len(),
                                i
                            ))
                        })?;
                }
                Ok(())
            }
            _ => self
                .request(self.save_method, &self.save, Some(&value))
                .map(|_| ())
                .map_err(|e| self.save_err(e)),
        }
    }

    fn exists(&self) -> Result<bool, CatalogError> {
        // An endpoint is asked when loaded, not before: it may be costly
        // or change what it answers.
        Ok(true)
    }

    fn describe(&self) -> DatasetInfo {
        DatasetInfo {
            name: self.name.clone(),
            type_name: self.type_name.clone(),
            filepath: None,
            versioned: false,
            pattern: None,
        }
    }

    fn load_type(&self) -> LoadType {
        LoadType::Decodes
    }
}

impl std::fmt::Debug for ApiDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiDataset")
            .field("name", &self.name)
            .field("method", &self.method)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b"ada:s3cret"), "YWRhOnMzY3JldA==");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn credentials_shapes() {
        let basic = Auth::parse(Some(&serde_json::json!(["ada", "pw"]))).unwrap();
        assert_eq!(basic.header().unwrap(), format!("Basic {}", base64(b"ada:pw")));
        let bearer = Auth::parse(Some(&serde_json::json!({"token": "t0k"}))).unwrap();
        assert_eq!(bearer.header().unwrap(), "Bearer t0k");
        assert!(Auth::parse(Some(&serde_json::json!({"user": "x"}))).is_err());
        assert!(Auth::parse(Some(&serde_json::json!({"username": "x", "token": "y"}))).is_err());
    }
}
