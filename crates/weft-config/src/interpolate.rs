//! `${...}` interpolation, OmegaConf-style as Kedro uses it.
//!
//! * `${globals:key.path}` / `${globals:key.path,default}`
//! * `${runtime_params:key.path,default}` (not in globals, like Kedro)
//! * `${env:VAR,default}` / `${oc.env:VAR,default}` (credentials only)
//! * `${key.path}`: another key of the same merged section
//! * `\${...}` is the literal text `${...}`
//!
//! A value that is exactly one reference takes the referenced value's type;
//! a reference inside a longer string is rendered into it.

use serde_json::Value;

use crate::params::scalar;

/// Where references are looked up.
pub(crate) struct Sources<'a> {
    pub section: &'a str,
    pub globals: &'a Value,
    pub runtime_params: &'a Value,
    pub allow_env: bool,
    /// What `oc.env` resolves against (handed in by the caller).
    pub environment: &'a std::collections::BTreeMap<String, String>,
    pub allow_runtime_params: bool,
    /// The merged section before `_` keys are dropped.
    pub root: &'a Value,
}

/// One unresolvable reference: the dotted key holding it and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Failure {
    pub path: String,
    pub message: String,
}

/// Follows a dotted path through objects (and arrays by index).
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

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Resolves every reference in `value`, which sits at dotted `path`.
/// Unresolvable references are recorded in `failures` and left as written.
pub(crate) fn resolve(
    value: &Value,
    src: &Sources<'_>,
    stack: &mut Vec<String>,
    path: &str,
    failures: &mut Vec<Failure>,
) -> Value {
    match value {
        Value::String(s) if s.contains("${") => resolve_string(s, src, stack, path, failures),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve(v, src, stack, &join(path, k), failures)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| resolve(v, src, stack, &join(path, &i.to_string()), failures))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The expression of a string that is exactly one `${...}` reference.
fn whole_reference(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("${")?.strip_suffix('}')?;
    (!inner.contains('}') && !inner.contains("${")).then_some(inner)
}

fn resolve_string(
    s: &str,
    src: &Sources<'_>,
    stack: &mut Vec<String>,
    path: &str,
    failures: &mut Vec<Failure>,
) -> Value {
    let fail = |failures: &mut Vec<Failure>, message: String| {
        failures.push(Failure {
            path: path.to_string(),
            message,
        });
        Value::String(s.to_string())
    };
    if let Some(expr) = whole_reference(s) {
        return match evaluate(expr, src, stack, path, failures) {
            Ok(v) => v,
            Err(m) => fail(failures, m),
        };
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('\\') {
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return fail(
                failures,
                format!("`{path}` in {}: unterminated `${{` in {s:?}", src.section),
            );
        };
        match evaluate(&after[..end], src, stack, path, failures) {
            Ok(v) => out.push_str(&render(&v)),
            Err(m) => return fail(failures, m),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Value::String(out)
}

fn evaluate(
    expr: &str,
    src: &Sources<'_>,
    stack: &mut Vec<String>,
    path: &str,
    failures: &mut Vec<Failure>,
) -> Result<Value, String> {
    let reference = format!("${{{expr}}}");
    let section = src.section;
    if expr.contains("${") {
        return Err(format!(
            "`{path}` in {section}: nested interpolation `{reference}...` is not supported"
        ));
    }
    let expr = expr.trim();
    let (resolver, arg) = match expr.split_once(':') {
        Some((r, a)) => (Some(r.trim()), a),
        None => (None, expr),
    };
    let (key, default) = match arg.split_once(',') {
        Some((k, d)) => (k.trim(), Some(scalar(d))),
        None => (arg.trim(), None),
    };
    if key.is_empty() {
        return Err(format!("`{path}` in {section}: empty reference `{reference}`"));
    }
    let hint = match resolver {
        Some(r) => format!(" (write `${{{r}:{key},<default>}}` to give one)"),
        None => String::new(),
    };
    let missing = |what: String| -> Result<Value, String> {
        match &default {
            Some(d) => Ok(d.clone()),
            None => Err(format!(
                "`{path}` in {section}: cannot resolve `{reference}`: {what} and no default{hint}"
            )),
        }
    };
    match resolver {
        Some("globals") => {
            if key.starts_with('_') {
                return Err(format!(
                    "`{path}` in {section}: `{reference}`: keys starting with `_` are not supported for globals"
                ));
            }
            match lookup(src.globals, key) {
                Some(v) => Ok(v.clone()),
                None => missing(format!("no key `{key}` in globals")),
            }
        }
        Some("runtime_params") => {
            if !src.allow_runtime_params {
                return Err(format!(
                    "`{path}` in {section}: `{reference}`: the `runtime_params` resolver is not allowed in {section}"
                ));
            }
            match lookup(src.runtime_params, key) {
                Some(v) => Ok(v.clone()),
                None => missing(format!("no runtime parameter `{key}`")),
            }
        }
        Some("env" | "oc.env") => {
            if !src.allow_env {
                return Err(format!(
                    "`{path}` in {section}: `{reference}`: the env resolver is only allowed in credentials, not in {section}"
                ));
            }
            match src.environment.get(key) {
                Some(v) => Ok(Value::String(v.clone())),
                None => missing(format!("environment variable `{key}` is not set")),
            }
        }
        Some(other) => Err(format!(
            "`{path}` in {section}: `{reference}`: unsupported resolver `{other}` (supported: globals, runtime_params, and oc.env/env in credentials)"
        )),
        None => {
            if key.starts_with('.') {
                return Err(format!(
                    "`{path}` in {section}: `{reference}`: relative references are not supported; use the full key path"
                ));
            }
            if let Some(at) = stack.iter().position(|p| p == key) {
                let mut cycle = stack[at..].to_vec();
                cycle.push(key.to_string());
                return Err(format!(
                    "`{path}` in {section}: interpolation cycle {}",
                    cycle.join(" -> ")
                ));
            }
            let Some(target) = lookup(src.root, key) else {
                return missing(format!("no key `{key}` in {section}"));
            };
            stack.push(key.to_string());
            // A failure inside the target is recorded at the target's own key.
            let resolved = resolve(target, src, stack, key, failures);
            stack.pop();
            Ok(resolved)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(root: &Value, section: &str) -> (Value, Vec<Failure>) {
        let src = Sources {
            section,
            globals: &json!({"g": {"n": 2}}),
            runtime_params: &json!({"r": true}),
            allow_env: false,
            environment: &Default::default(),
            allow_runtime_params: true,
            root,
        };
        let mut failures = Vec::new();
        let v = resolve(root, &src, &mut Vec::new(), "", &mut failures);
        (v, failures)
    }

    #[test]
    fn whole_references_keep_types_embedded_ones_render() {
        let root = json!({
            "a": "${globals:g.n}", "b": "x${globals:g.n}y${runtime_params:r}",
            "c": "${globals:g}", "d": "in ${c}", "e": ["${a}", "\\${a}"], "f": " ${a}"
        });
        let (v, failures) = run(&root, "parameters");
        assert_eq!(failures, []);
        assert_eq!(
            v,
            json!({
                "a": 2, "b": "x2ytrue", "c": {"n": 2}, "d": "in {\"n\":2}",
                "e": [2, "${a}"], "f": " 2"
            })
        );
    }

    #[test]
    fn malformed_expressions_fail_and_stay_as_written() {
        let root = json!({"a": "x ${b", "b": "${globals:${c}}", "c": "${}", "d": "${.a}"});
        let (v, failures) = run(&root, "catalog");
        assert_eq!(v, root);
        let messages: Vec<&str> = failures.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "`a` in catalog: unterminated `${` in \"x ${b\"",
                "`b` in catalog: nested interpolation `${globals:${c}...` is not supported",
                "`c` in catalog: empty reference `${}`",
                "`d` in catalog: `${.a}`: relative references are not supported; use the full key path",
            ]
        );
    }

    #[test]
    fn lookup_follows_objects_and_array_indices() {
        let v = json!({"a": [{"b": 1}]});
        assert_eq!(lookup(&v, "a.0.b"), Some(&json!(1)));
        assert_eq!(lookup(&v, "a.1"), None);
        assert_eq!(lookup(&v, "a.x"), None);
    }
}
