//! Runtime parameters (`--params "a=1,b.c=x"`) and YAML-like scalars.

use serde_json::Value;

use crate::ConfigError;
use crate::overrides::{parse_params_value, split_params_items};

/// Types a raw string like a YAML 1.2 scalar: `1`, `0x1f`, `0o17` int,
/// `1.5`, `1e3` float, `true`/`false` bool, `null`/`~`/empty null, anything
/// else a string (surrounding quotes stripped). YAML 1.1 words (`yes`, `on`,
/// ...) and non-finite floats (`.inf`) stay strings.
pub fn scalar(raw: &str) -> Value {
    let s = raw.trim();
    match s {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        "" | "null" | "Null" | "NULL" | "~" => return Value::Null,
        _ => {}
    }
    if let Ok(i) = s.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(u) = s.parse::<u64>() {
        return Value::from(u);
    }
    let (sign, digits) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    for (prefix, radix) in [("0x", 16), ("0o", 8)] {
        if let Some(d) = digits.strip_prefix(prefix)
            && let Ok(i) = i64::from_str_radix(d, radix)
        {
            return Value::from(sign * i);
        }
    }
    if s.chars().any(|c| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
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
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("empty segment in the dotted key `{key}`"));
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

/// Parses `"a=1,b.c=x"` into a nested object, like Kedro's `--params`.
///
/// Items are separated by top-level commas (commas inside brackets, braces,
/// parentheses, quotes or `${...}`, and escaped `\,`, do not split); key and
/// value by `=` or `:` (whichever comes first, so `url=http://h:1` and
/// `url:http://h` both work). Dotted keys nest (blanks around segments are
/// trimmed). Values follow the override grammar of
/// [`crate::overrides`] (so `a=[1,2]`, `d={x:1}`, `s='a,b'`, `n=int('5')`
/// work), one value per key. As in Kedro, a value that is not a list, map,
/// quoted string or known function call is free text up to the next
/// separating comma (any character, `\,` for a comma; typed when it is
/// exactly an int, float, bool or null), and an empty value is null. Empty items are skipped; a later item
/// overrides an earlier one. An item without separator, an empty key or key
/// segment (`a..b`, `.a`, `a.`), nesting under a plain value, or a
/// malformed value is an error naming the item.
pub fn parse_runtime_params(s: &str) -> Result<Value, ConfigError> {
    let mut out = Value::Object(Default::default());
    let mut previous: Option<String> = None;
    for raw in split_params_items(s) {
        let item = raw.trim();
        if item.is_empty() {
            continue;
        }
        let err = |message: &str| ConfigError::RuntimeParams {
            item: item.into(),
            message: message.into(),
        };
        let Some(at) = item.find(['=', ':']) else {
            let looks_like_a_value = item.starts_with(|c: char| c.is_ascii_digit() || "+-.[{'\"".contains(c));
            return Err(match &previous {
                Some(p) if looks_like_a_value => err(&format!(
                    "expected `key=value` (or `key:value`); several values for `{p}` (a sweep) are for `weft multirun`"
                )),
                _ => err("expected `key=value` (or `key:value`)"),
            });
        };
        let key = item[..at].trim();
        if key.is_empty() {
            return Err(err("the parameter name before the separator is empty"));
        }
        let value_start = item[..at + 1].chars().count();
        let value =
            parse_params_value(item, value_start).map_err(|source| ConfigError::RuntimeParamValue {
                item: item.into(),
                source,
            })?;
        set_dotted(&mut out, key, value).map_err(|m| err(&m))?;
        previous = Some(key.to_string());
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

/// Replaces every leaf scalar of a credentials tree (strings, numbers,
/// booleans and nulls) with `"***"`, keeping the shape (keys, array
/// lengths) so the CLI can show which credentials exist.
pub fn mask_credentials(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), mask_credentials(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(mask_credentials).collect()),
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
        assert_eq!(scalar("+3"), json!(3));
        assert_eq!(scalar("0x1f"), json!(31));
        assert_eq!(scalar("-0o17"), json!(-15));
        assert_eq!(scalar("18446744073709551615"), json!(u64::MAX));
        assert_eq!(scalar("1.5"), json!(1.5));
        assert_eq!(scalar("1e3"), json!(1000.0));
        assert_eq!(scalar(".5"), json!(0.5));
        assert_eq!(scalar("true"), json!(true));
        assert_eq!(scalar("False"), json!(false));
        assert_eq!(scalar("null"), json!(null));
        assert_eq!(scalar("~"), json!(null));
        assert_eq!(scalar(""), json!(null));
        assert_eq!(scalar("abc"), json!("abc"));
        assert_eq!(scalar(" padded "), json!("padded"));
        assert_eq!(scalar("'1'"), json!("1"));
        assert_eq!(scalar("\"true\""), json!("true"));
        assert_eq!(scalar("yes"), json!("yes"));
        assert_eq!(scalar("inf"), json!("inf"));
        assert_eq!(scalar(".inf"), json!(".inf"));
        assert_eq!(scalar("1.2.3"), json!("1.2.3"));
        assert_eq!(scalar("2024-01-01"), json!("2024-01-01"));
    }

    #[test]
    fn runtime_params_nest_and_type() {
        let v = parse_runtime_params("a=1,b.c=x,b.d=2.5,e:true,url=http://h:1,n=null,empty=").unwrap();
        assert_eq!(
            v,
            json!({"a": 1, "b": {"c": "x", "d": 2.5}, "e": true, "url": "http://h:1", "n": null, "empty": null})
        );
        // The first separator wins, as in Kedro: `a:b=c` is a = "b=c".
        assert_eq!(parse_runtime_params("a:b=c").unwrap(), json!({"a": "b=c"}));
        assert_eq!(
            parse_runtime_params(" x . y = 2 ,, ").unwrap(),
            json!({"x": {"y": 2}})
        );
        assert_eq!(parse_runtime_params("").unwrap(), json!({}));
        assert_eq!(parse_runtime_params("a=1,a=2").unwrap(), json!({"a": 2}));
    }

    #[test]
    fn malformed_runtime_params_name_the_item() {
        let msg = |s: &str| parse_runtime_params(s).unwrap_err().to_string();
        assert_eq!(
            msg("a=1,oops"),
            "invalid runtime parameter `oops`: expected `key=value` (or `key:value`)"
        );
        assert_eq!(
            msg("=1"),
            "invalid runtime parameter `=1`: the parameter name before the separator is empty"
        );
        assert_eq!(
            msg("a=1,a.b=2"),
            "invalid runtime parameter `a.b=2`: `a` is already set to a plain value"
        );
        assert_eq!(
            msg("a..b=1"),
            "invalid runtime parameter `a..b=1`: empty segment in the dotted key `a..b`"
        );
    }

    #[test]
    fn deep_merge_merges_objects_and_replaces_the_rest() {
        let mut base = json!({"a": {"x": 1, "y": {"k": 1}}, "b": [1], "c": 1, "e": {"z": 1}});
        deep_merge(
            &mut base,
            json!({"a": {"y": {"j": 2}, "z": 4}, "b": [2], "d": 5, "e": 3}),
        );
        assert_eq!(
            base,
            json!({"a": {"x": 1, "y": {"k": 1, "j": 2}, "z": 4}, "b": [2], "c": 1, "e": 3, "d": 5})
        );
        let mut scalar_base = json!(1);
        deep_merge(&mut scalar_base, json!({"a": 1}));
        assert_eq!(scalar_base, json!({"a": 1}));
    }

    #[test]
    fn masking_keeps_shape_and_hides_every_leaf() {
        assert_eq!(
            mask_credentials(&json!({"u": "a", "p": {"x": 1, "n": null, "t": true}, "l": ["s", 2], "e": {}})),
            json!({"u": "***", "p": {"x": "***", "n": "***", "t": "***"}, "l": ["***", "***"], "e": {}})
        );
    }
}
