//! A session's launcher resources: what `POST /v1/sessions` asks for in
//! `resources` (partition, account, time limit, CPUs, memory, GPUs), stored
//! with the session (`extra.resources` of its record) and carried to the
//! launcher in every [`crate::WorkerRequest`]. Each field set here
//! overrides the server's flag default for that session's workers:
//!
//! | field | Slurm | Kubernetes | Ray | process |
//! |---|---|---|---|---|
//! | `partition` | `--partition` | ignored | ignored | ignored |
//! | `account` | `--account` | ignored | ignored | ignored |
//! | `time_limit` | `--time` | Pod `activeDeadlineSeconds` | ignored | ignored |
//! | `cpus` | `--cpus-per-task` | `cpu` request = limit | `entrypoint_num_cpus` | ignored |
//! | `memory` | `--mem` (MiB, rounded up) | `memory` request = limit | `entrypoint_memory` | the worker's memory limit (`--memory-limit`) |
//! | `gpus` | `--gpus` | `nvidia.com/gpu` limit | `entrypoint_num_gpus` | ignored |

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Launcher resources of one session (every field optional: unset ones
/// take the server's flag default).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionResources {
    /// Slurm partition of the session's worker jobs.
    #[serde(default)]
    pub partition: Option<String>,
    /// Slurm account the worker jobs are charged to.
    #[serde(default)]
    pub account: Option<String>,
    /// Time limit of each worker, in Slurm's forms (`30` minutes, `1:00:00`,
    /// `2-00`, `UNLIMITED`).
    #[serde(default)]
    pub time_limit: Option<String>,
    /// CPUs of each worker.
    #[serde(default)]
    pub cpus: Option<u32>,
    /// Memory of each worker, in bytes (the API also takes a size string
    /// such as `2GiB`, see [`MemoryField`]).
    #[serde(default)]
    pub memory: Option<u64>,
    /// GPUs of each worker.
    #[serde(default)]
    pub gpus: Option<u32>,
}

/// A memory amount as the API takes it: bytes, or a size string (`512MiB`,
/// `2G`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum MemoryField {
    /// A number of bytes.
    Bytes(u64),
    /// A size string, parsed by [`crate::parse_size`].
    Text(String),
}

/// `resources` as `POST /v1/sessions` takes it, before validation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcesRequest {
    /// See [`SessionResources::partition`].
    #[serde(default)]
    pub partition: Option<String>,
    /// See [`SessionResources::account`].
    #[serde(default)]
    pub account: Option<String>,
    /// See [`SessionResources::time_limit`].
    #[serde(default)]
    pub time_limit: Option<String>,
    /// See [`SessionResources::cpus`].
    #[serde(default)]
    pub cpus: Option<u32>,
    /// See [`SessionResources::memory`].
    #[serde(default)]
    pub memory: Option<MemoryField>,
    /// See [`SessionResources::gpus`].
    #[serde(default)]
    pub gpus: Option<u32>,
}

/// A resource the request got wrong: the field's path
/// (`resources.time_limit`) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ResourceProblem {
    /// The JSON path of the field.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// The most characters of a partition or account name.
pub const NAME_MAX: usize = 200;

impl ResourcesRequest {
    /// The checked resources, or the first bad field.
    pub fn validate(self) -> Result<SessionResources, ResourceProblem> {
        let problem = |field: &str, message: String| ResourceProblem {
            path: format!("resources.{field}"),
            message,
        };
        for (field, value) in [("partition", &self.partition), ("account", &self.account)] {
            if let Some(v) = value
                && !is_slurm_name(v)
            {
                return Err(problem(
                    field,
                    format!(
                        "{v:?} is not a Slurm {field} name (1 to {NAME_MAX} letters, digits, `_`, `-`, `.`{})",
                        if field == "partition" { " or `,`" } else { "" }
                    ),
                ));
            }
            if field == "account"
                && let Some(v) = value
                && v.contains(',')
            {
                return Err(problem(field, format!("{v:?}: an account is one name (no `,`)")));
            }
        }
        if let Some(t) = &self.time_limit {
            time_limit_seconds(t).map_err(|m| problem("time_limit", m))?;
        }
        if self.cpus == Some(0) {
            return Err(problem("cpus", "must be at least 1".into()));
        }
        if self.gpus == Some(0) {
            return Err(problem(
                "gpus",
                "must be at least 1 (leave it out for none)".into(),
            ));
        }
        let memory = match self.memory {
            None => None,
            Some(MemoryField::Bytes(0)) => return Err(problem("memory", "must be at least 1 byte".into())),
            Some(MemoryField::Bytes(n)) => Some(n),
            Some(MemoryField::Text(t)) => Some(crate::parse_size(&t).map_err(|m| problem("memory", m))?),
        };
        Ok(SessionResources {
            partition: self.partition,
            account: self.account,
            time_limit: self.time_limit,
            cpus: self.cpus,
            memory,
            gpus: self.gpus,
        })
    }
}

impl SessionResources {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == SessionResources::default()
    }

    /// The resources stored in a session record's `extra` (none when
    /// absent; a value that does not read back is logged and ignored).
    pub fn from_extra(extra: &Value) -> Self {
        match extra.get("resources") {
            None | Some(Value::Null) => SessionResources::default(),
            Some(v) => serde_json::from_value(v.clone()).unwrap_or_else(|e| {
                tracing::warn!("ignoring the session's stored resources {v}: {e}");
                SessionResources::default()
            }),
        }
    }

    /// The JSON shown by `GET /v1/sessions/{id}` (every field, unset ones null).
    pub fn view(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The time limit in seconds (`None`: no limit set, or `UNLIMITED`/`0`).
    pub fn time_limit_seconds(&self) -> Option<u64> {
        self.time_limit
            .as_deref()
            .and_then(|t| time_limit_seconds(t).ok().flatten())
    }
}

/// Whether `s` is a Slurm partition (or comma-separated partitions) or
/// account name this API takes.
fn is_slurm_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= NAME_MAX
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ','))
}

/// A Slurm time limit in seconds: `MINUTES`, `MINUTES:SECONDS`,
/// `HOURS:MINUTES:SECONDS`, `DAYS-HOURS`, `DAYS-HOURS:MINUTES`,
/// `DAYS-HOURS:MINUTES:SECONDS`; `Ok(None)` for no limit (`UNLIMITED`,
/// `INFINITE`, `0`).
pub fn time_limit_seconds(text: &str) -> Result<Option<u64>, String> {
    let bad = || {
        format!(
            "{text:?} is not a Slurm time limit (MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, \
             DAYS-HOURS, DAYS-HOURS:MINUTES, DAYS-HOURS:MINUTES:SECONDS or UNLIMITED)"
        )
    };
    if text.eq_ignore_ascii_case("unlimited") || text.eq_ignore_ascii_case("infinite") {
        return Ok(None);
    }
    let number = |s: &str| -> Result<u64, String> {
        if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (days, rest) = match text.split_once('-') {
        Some((d, rest)) => (Some(number(d)?), rest),
        None => (None, text),
    };
    let parts = rest
        .split(':')
        .map(number)
        .collect::<Result<Vec<u64>, String>>()?;
    let seconds = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) => h * 3600 + m * 60 + s,
        (Some(d), [h]) => d * 86_400 + h * 3600,
        (Some(d), [h, m]) => d * 86_400 + h * 3600 + m * 60,
        (Some(d), [h, m, s]) => d * 86_400 + h * 3600 + m * 60 + s,
        _ => return Err(bad()),
    };
    Ok((seconds > 0).then_some(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<SessionResources, String> {
        let req: ResourcesRequest = serde_json::from_value(v).map_err(|e| e.to_string())?;
        req.validate().map_err(|p| p.to_string())
    }

    #[test]
    fn time_limits_in_every_slurm_form() {
        assert_eq!(time_limit_seconds("5"), Ok(Some(300)));
        assert_eq!(time_limit_seconds("5:30"), Ok(Some(330)));
        assert_eq!(time_limit_seconds("1:00:00"), Ok(Some(3600)));
        assert_eq!(time_limit_seconds("2-00"), Ok(Some(172_800)));
        assert_eq!(time_limit_seconds("1-2:03"), Ok(Some(93_780)));
        assert_eq!(time_limit_seconds("1-2:03:04"), Ok(Some(93_784)));
        assert_eq!(time_limit_seconds("UNLIMITED"), Ok(None));
        assert_eq!(time_limit_seconds("0"), Ok(None));
        for bad in [
            "",
            "abc",
            "1:2:3:4",
            "-5",
            "5-",
            "1-2:3:4:5",
            " 5",
            "5m",
            "1234567890",
        ] {
            let err = time_limit_seconds(bad).unwrap_err();
            assert!(err.contains("not a Slurm time limit"), "{bad}: {err}");
        }
    }

    #[test]
    fn memory_takes_bytes_or_a_size_string() {
        let r = parse(json!({"memory": "100MiB", "cpus": 2})).unwrap();
        assert_eq!(r.memory, Some(100 << 20));
        assert_eq!(r.cpus, Some(2));
        assert_eq!(parse(json!({"memory": 4096})).unwrap().memory, Some(4096));
        let err = parse(json!({"memory": "lots"})).unwrap_err();
        assert!(
            err.starts_with("resources.memory: ") && err.contains("lots"),
            "{err}"
        );
        let err = parse(json!({"memory": 0})).unwrap_err();
        assert!(err.starts_with("resources.memory: "), "{err}");
    }

    #[test]
    fn bad_fields_are_named() {
        let err = parse(json!({"partition": "a b"})).unwrap_err();
        assert!(err.starts_with("resources.partition: "), "{err}");
        let err = parse(json!({"account": "x,y"})).unwrap_err();
        assert!(err.starts_with("resources.account: "), "{err}");
        let err = parse(json!({"time_limit": "soon"})).unwrap_err();
        assert!(err.starts_with("resources.time_limit: "), "{err}");
        let err = parse(json!({"cpus": 0})).unwrap_err();
        assert!(err.starts_with("resources.cpus: "), "{err}");
        let err = parse(json!({"cpu": 1})).unwrap_err();
        assert!(err.contains("unknown field `cpu`"), "{err}");
    }

    #[test]
    fn stored_resources_read_back() {
        let r = parse(json!({"partition": "debug", "time_limit": "5", "memory": "1GiB", "gpus": 1})).unwrap();
        let extra = json!({"resources": r.view(), "next_action": null});
        assert_eq!(SessionResources::from_extra(&extra), r);
        assert_eq!(r.time_limit_seconds(), Some(300));
        assert!(SessionResources::from_extra(&json!({})).is_empty());
        assert!(SessionResources::from_extra(&json!({"resources": "junk"})).is_empty());
    }
}
