//! Runtime parameter assignments and Hydra-style sweeps.
//!
//! `--params "a=1,b.c=x"` assigns several keys (commas separate pairs).
//! In `weft multirun`, an item without `=` is one more value for the key
//! before it, so `--params "lr=0.001,0.01,0.1"` sweeps `lr` over three
//! values; `range(start,stop[,step])` and `choice(a,b,...)` are also values
//! lists. The sweep is the cartesian product of every key's values.

use serde_json::Value;

/// A malformed assignment or sweep.
#[derive(Debug)]
pub struct SweepError(pub String);

impl std::fmt::Display for SweepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SweepError {}

/// Splits on commas that are not inside parentheses or brackets.
fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A YAML-like typed scalar (`1` int, `1.5` float, `true` bool, `null`, else string).
fn scalar(raw: &str) -> Result<Value, SweepError> {
    let parsed =
        weft_config::parse_runtime_params(&format!("v={raw}")).map_err(|e| SweepError(e.to_string()))?;
    Ok(parsed.get("v").cloned().unwrap_or(Value::Null))
}

fn number(raw: &str, what: &str) -> Result<f64, SweepError> {
    raw.trim()
        .parse::<f64>()
        .map_err(|_| SweepError(format!("{what}: `{raw}` is not a number")))
}

/// Expands one value spec: `range(...)`, `choice(...)` or a single scalar.
fn expand_value(key: &str, raw: &str) -> Result<Vec<Value>, SweepError> {
    let raw = raw.trim();
    if let Some(inner) = raw.strip_prefix("range(").and_then(|r| r.strip_suffix(')')) {
        let parts: Vec<&str> = inner.split(',').collect();
        let (start, stop, step) = match parts.as_slice() {
            [stop] => (0.0, number(stop, key)?, 1.0),
            [start, stop] => (number(start, key)?, number(stop, key)?, 1.0),
            [start, stop, step] => (number(start, key)?, number(stop, key)?, number(step, key)?),
            _ => {
                return Err(SweepError(format!(
                    "`{key}`: range takes 1 to 3 arguments, got `{raw}`"
                )));
            }
        };
        if step == 0.0 {
            return Err(SweepError(format!("`{key}`: range step must not be 0")));
        }
        let integral = [start, stop, step].iter().all(|v| v.fract() == 0.0);
        let mut values = Vec::new();
        let mut v = start;
        while (step > 0.0 && v < stop) || (step < 0.0 && v > stop) {
            values.push(if integral {
                Value::from(v as i64)
            } else {
                Value::from(v)
            });
            v += step;
            if values.len() > 100_000 {
                return Err(SweepError(format!("`{key}`: range has more than 100000 values")));
            }
        }
        if values.is_empty() {
            return Err(SweepError(format!("`{key}`: `{raw}` is empty")));
        }
        return Ok(values);
    }
    if let Some(inner) = raw.strip_prefix("choice(").and_then(|r| r.strip_suffix(')')) {
        let values: Result<Vec<Value>, _> = split_top_level(inner).iter().map(|v| scalar(v)).collect();
        let values = values?;
        if values.is_empty() {
            return Err(SweepError(format!("`{key}`: choice() needs at least one value")));
        }
        return Ok(values);
    }
    Ok(vec![scalar(raw)?])
}

/// Parses `--params` strings into `(dotted key, values)` in order. With
/// `allow_sweeps = false` (plain `weft run`), a key with several values is
/// an error.
pub fn parse_assignments(
    specs: &[String],
    allow_sweeps: bool,
) -> Result<Vec<(String, Vec<Value>)>, SweepError> {
    let mut out: Vec<(String, Vec<Value>)> = Vec::new();
    for spec in specs {
        let mut last: Option<usize> = None;
        for item in split_top_level(spec) {
            let split = item.find(['=', ':']).filter(|&i| !item[..i].contains('('));
            match split {
                Some(i) => {
                    let key = item[..i].trim().to_string();
                    if key.is_empty() {
                        return Err(SweepError(format!("`{item}`: missing parameter name before `=`")));
                    }
                    let values = expand_value(&key, &item[i + 1..])?;
                    if let Some(pos) = out.iter().position(|(k, _)| *k == key) {
                        out[pos].1 = values;
                        last = Some(pos);
                    } else {
                        out.push((key, values));
                        last = Some(out.len() - 1);
                    }
                }
                None => match last {
                    Some(pos) if allow_sweeps => {
                        let key = out[pos].0.clone();
                        out[pos].1.extend(expand_value(&key, &item)?);
                    }
                    Some(pos) => {
                        return Err(SweepError(format!(
                            "`{item}` is not a `key=value` pair (after `{}`); several values per key are for `weft multirun`",
                            out[pos].0
                        )));
                    }
                    None => return Err(SweepError(format!("`{item}` is not a `key=value` pair"))),
                },
            }
        }
    }
    if !allow_sweeps && let Some((k, _)) = out.iter().find(|(_, v)| v.len() != 1) {
        return Err(SweepError(format!(
            "`{k}` has several values; sweeps are for `weft multirun`"
        )));
    }
    Ok(out)
}

/// Reads a sweep file: a YAML map of dotted key → list of values, a
/// `range(...)`/`choice(...)` string, or a single value.
pub fn parse_sweep_file(path: &std::path::Path) -> Result<Vec<(String, Vec<Value>)>, SweepError> {
    let doc = weft_config::yaml::load_file(path).map_err(|e| SweepError(e.to_string()))?;
    let Value::Object(map) = doc else {
        return Err(SweepError(format!(
            "{}: a sweep file must be a map of parameter -> values",
            path.display()
        )));
    };
    let mut out = Vec::new();
    for (key, v) in map {
        let values = match v {
            Value::Array(items) if items.is_empty() => {
                return Err(SweepError(format!("{}: `{key}` has no values", path.display())));
            }
            Value::Array(items) => items,
            Value::String(s) if s.starts_with("range(") || s.starts_with("choice(") => {
                expand_value(&key, &s)?
            }
            other => vec![other],
        };
        out.push((key, values));
    }
    Ok(out)
}

/// Sets `dotted.key` in a JSON object, creating nested objects.
pub fn set_dotted(target: &mut Value, key: &str, value: Value) {
    let mut cur = target;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        let map = cur.as_object_mut().expect("object");
        if i == parts.len() - 1 {
            map.insert(part.to_string(), value);
            return;
        }
        cur = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
}

/// The cartesian product of every key's values, as runtime-params objects,
/// in a stable order (the last key varies fastest).
pub fn expand_sweeps(assignments: &[(String, Vec<Value>)]) -> Vec<Value> {
    let mut combos = vec![Value::Object(Default::default())];
    for (key, values) in assignments {
        let mut next = Vec::with_capacity(combos.len() * values.len());
        for combo in &combos {
            for v in values {
                let mut c = combo.clone();
                set_dotted(&mut c, key, v.clone());
                next.push(c);
            }
        }
        combos = next;
    }
    combos
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_assignments() {
        let a = parse_assignments(&["a=1,b.c=x,d=1.5,e=true".into()], false).unwrap();
        assert_eq!(
            expand_sweeps(&a),
            vec![json!({"a": 1, "b": {"c": "x"}, "d": 1.5, "e": true})]
        );
        let err = parse_assignments(&["lr=0.1,0.2".into()], false).unwrap_err();
        assert!(err.to_string().contains("multirun"), "{err}");
    }

    #[test]
    fn sweeps_are_cartesian() {
        let a = parse_assignments(
            &["lr=0.001,0.01,0.1".into(), "batch=range(16,65,16)".into()],
            true,
        )
        .unwrap();
        assert_eq!(a[0].1, vec![json!(0.001), json!(0.01), json!(0.1)]);
        assert_eq!(a[1].1, vec![json!(16), json!(32), json!(48), json!(64)]);
        let combos = expand_sweeps(&a);
        assert_eq!(combos.len(), 12);
        assert_eq!(combos[0], json!({"lr": 0.001, "batch": 16}));
        assert_eq!(combos[11], json!({"lr": 0.1, "batch": 64}));
        let c = parse_assignments(&["opt=choice(adam,sgd),x=1".into()], true).unwrap();
        assert_eq!(expand_sweeps(&c).len(), 2);
        assert!(parse_assignments(&["x=range(1,1)".into()], true).is_err());
        assert!(parse_assignments(&["=1".into()], true).is_err());
    }
}
