//! `${...}` interpolation, OmegaConf-style as Kedro uses it.
//!
//! * `${globals:key.path}` / `${globals:key.path,default}`
//! * `${runtime_params:key.path,default}`
//! * `${env:VAR,default}` (credentials only)
//! * `${key.path}`: another key of the same merged section
//!
//! A value that is exactly one reference takes the referenced value's type;
//! a reference inside a longer string is rendered into it.

use serde_json::Value;

use crate::params::scalar;

pub(crate) struct Sources<'a> {
    pub section: &'a str,
    pub globals: &'a Value,
    pub runtime_params: &'a Value,
    pub allow_env: bool,
    pub root: &'a Value,
}

pub(crate) fn lookup<'v>(v: &'v Value, dotted: &str) -> Option<&'v Value> {
    dotted.split('.').try_fold(v, |cur, part| match cur {
        Value::Object(m) => m.get(part),
        Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Resolves every reference in `value`; `path` is where it sits (for errors
/// and cycle detection).
pub(crate) fn resolve(
    value: &Value,
    src: &Sources<'_>,
    stack: &mut Vec<String>,
    path: &str,
) -> Result<Value, String> {
    match value {
        Value::String(s) if s.contains("${") => resolve_string(s, src, stack, path),
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.insert(k.clone(), resolve(v, src, stack, &child)?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| resolve(v, src, stack, &format!("{path}.{i}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

fn resolve_string(s: &str, src: &Sources<'_>, stack: &mut Vec<String>, path: &str) -> Result<Value, String> {
    let trimmed = s.trim();
    if trimmed.starts_with("${")
        && trimmed.ends_with('}')
        && trimmed[2..].find('}') == Some(trimmed.len() - 3)
    {
        return evaluate(&trimmed[2..trimmed.len() - 1], src, stack, path);
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{path}`: unterminated `${{` in {s:?}"))?;
        out.push_str(&render(&evaluate(&after[..end], src, stack, path)?));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

fn evaluate(expr: &str, src: &Sources<'_>, stack: &mut Vec<String>, path: &str) -> Result<Value, String> {
    let expr = expr.trim();
    let (resolver, arg) = match expr.split_once(':') {
        Some((r, a)) if ["globals", "runtime_params", "env", "oc.env"].contains(&r.trim()) => {
            (Some(r.trim()), a)
        }
        _ => (None, expr),
    };
    let (key, default) = match arg.split_once(',') {
        Some((k, d)) => (k.trim(), Some(scalar(d.trim()))),
        None => (arg.trim(), None),
    };
    let missing = |what: &str| -> Result<Value, String> {
        match &default {
            Some(d) => Ok(d.clone()),
            None => Err(format!(
                "`{path}`: {what} (in `${{{expr}}}`; add a default with `,value`)"
            )),
        }
    };
    match resolver {
        Some("globals") => match lookup(src.globals, key) {
            Some(v) => Ok(v.clone()),
            None => missing(&format!("no global `{key}`")),
        },
        Some("runtime_params") => match lookup(src.runtime_params, key) {
            Some(v) => Ok(v.clone()),
            None => missing(&format!("no runtime parameter `{key}`")),
        },
        Some(_) => {
            if !src.allow_env {
                return Err(format!(
                    "`{path}`: the `env` resolver is only allowed in credentials, not in {} (`${{{expr}}}`)",
                    src.section
                ));
            }
            match std::env::var(key) {
                Ok(v) => Ok(Value::String(v)),
                Err(_) => missing(&format!("environment variable `{key}` is not set")),
            }
        }
        None => {
            if stack.iter().any(|p| p == key) {
                stack.push(key.to_string());
                let cycle = stack.join(" -> ");
                stack.pop();
                return Err(format!("`{path}`: interpolation cycle {cycle}"));
            }
            let Some(target) = lookup(src.root, key) else {
                return missing(&format!("no key `{key}` in {}", src.section));
            };
            stack.push(key.to_string());
            let resolved = resolve(target, src, stack, key);
            stack.pop();
            resolved
        }
    }
}
