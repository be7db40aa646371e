//! Runtime parameters (`--params "a=1,b.c=x"`) and YAML-like scalars.

use serde_json::Value;

use crate::ConfigError;

/// Types a raw string like a YAML scalar: `1` int, `1.5` float,
/// `true`/`false` bool, `null`/`~` null, anything else a string (quotes
/// stripped).
pub fn scalar(raw: &str) -> Value {
    let s = raw.trim();
    match s {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        "null" | "Null" | "NULL" | "~" => return Value::Null,
        _ => {}
    }
    if let Ok(i) = s.parse::<i64>() {
        return Value::from(i);
    }
    if s.chars().any(|c| c.is_ascii_digit())
        && let Ok(f) = s.parse::<f64>()
        && f.is_finite()
    {
        return Value::from(f);
    }
    let unquoted = s
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        .unwrap_or(s);
    Value::String(unquoted.to_string())
}

/// Sets `dotted.key` in an object, creating nested objects on the way.
pub(crate) fn set_dotted(target: &mut Value, key: &str, value: Value) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err("empty key segment".into());
    }
    let mut cur = target;
    for (i, part) in parts.iter().enumerate() {
        let map = cur
            .as_object_mut()
            .ok_or_else(|| format!("`{}` is already set to a plain value", parts[..i].join(".")))?;
        if i == parts.len() - 1 {
            map.insert(part.to_string(), value);
            return Ok(());
        }
        cur = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}

/// Parses `"a=1,b.c=x"` (Kedro also accepts `key:value`) into a nested
/// object. Dotted keys nest; values are typed like YAML scalars.
pub fn parse_runtime_params(s: &str) -> Result<Value, ConfigError> {
    let mut out = Value::Object(Default::default());
    for item in s.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let split = item.find('=').or_else(|| item.find(':'));
        let Some(at) = split else {
            return Err(ConfigError::RuntimeParams {
                item: item.into(),
                message: "expected `key=value`".into(),
            });
        };
        let key = item[..at].trim();
        if key.is_empty() {
            return Err(ConfigError::RuntimeParams {
                item: item.into(),
                message: "missing the parameter name before `=`".into(),
            });
        }
        set_dotted(&mut out, key, scalar(&item[at + 1..])).map_err(|message| ConfigError::RuntimeParams {
            item: item.into(),
            message,
        })?;
    }
    Ok(out)
}

/// Deep-merges `over` into `base`: objects merge key by key, recursively;
/// anything else replaces.
pub fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Replaces every leaf of a credentials tree with `"***"`.
pub fn mask_credentials(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), mask_credentials(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(mask_credentials).collect()),
        Value::Null => Value::Null,
        _ => Value::String("***".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_are_typed_like_yaml() {
        assert_eq!(scalar("1"), json!(1));
        assert_eq!(scalar("-2"), json!(-2));
        assert_eq!(scalar("1.5"), json!(1.5));
        assert_eq!(scalar("1e3"), json!(1000.0));
        assert_eq!(scalar("true"), json!(true));
        assert_eq!(scalar("null"), json!(null));
        assert_eq!(scalar("abc"), json!("abc"));
        assert_eq!(scalar("'1'"), json!("1"));
        assert_eq!(scalar("inf"), json!("inf"));
    }

    #[test]
    fn runtime_params_nest_and_type() {
        let v = parse_runtime_params("a=1,b.c=x,b.d=2.5,e:true,url=http://h:1").unwrap();
        assert_eq!(
            v,
            json!({"a": 1, "b": {"c": "x", "d": 2.5}, "e": true, "url": "http://h:1"})
        );
        let err = parse_runtime_params("a=1,oops").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid runtime parameter `oops`: expected `key=value`"
        );
        assert!(parse_runtime_params("=1").is_err());
        assert!(
            parse_runtime_params("a=1,a.b=2")
                .unwrap_err()
                .to_string()
                .contains("`a` is already set")
        );
        assert!(parse_runtime_params("a..b=1").is_err());
    }

    #[test]
    fn deep_merge_merges_objects_and_replaces_the_rest() {
        let mut base = json!({"a": {"x": 1, "y": 2}, "b": [1], "c": 1});
        deep_merge(&mut base, json!({"a": {"y": 3, "z": 4}, "b": [2], "d": 5}));
        assert_eq!(
            base,
            json!({"a": {"x": 1, "y": 3, "z": 4}, "b": [2], "c": 1, "d": 5})
        );
        assert_eq!(
            mask_credentials(&json!({"u": "a", "p": {"x": 1}})),
            json!({"u": "***", "p": {"x": "***"}})
        );
    }
}
