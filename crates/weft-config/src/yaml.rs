//! YAML (and JSON) files as `serde_json::Value`, with file and line in errors.

use std::path::Path;

use serde_json::Value;

use crate::ConfigError;

/// Parses YAML text (JSON is YAML too) into a JSON value. Anchors and merge
/// keys (`<<: *base`) are resolved; duplicate keys in one mapping are an error.
pub fn from_str(text: &str, origin: &Path) -> Result<Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str_with_options::<Value>(text, yaml_options()).map_err(|e| ConfigError::Parse {
        file: origin.to_path_buf(),
        line: e.location().map(|l| l.line() as usize).filter(|l| *l > 0),
        message: first_line(&e.to_string()),
    })
}

/// YAML 1.2 core booleans only: `y`, `n`, `on`, `off`, `yes`, `no` stay
/// strings (they are common dataset and parameter names).
pub fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_string()
}

/// Reads and parses a YAML or JSON file.
pub fn load_file(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if path.extension().is_some_and(|e| e == "json") {
        return serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
            file: path.to_path_buf(),
            line: Some(e.line()),
            message: e.to_string(),
        });
    }
    from_str(&text, path)
}

fn key_of(line: &str) -> Option<(usize, &str)> {
    let indent = line.len() - line.trim_start().len();
    let rest = line.trim_start().trim_start_matches("- ");
    let (key, _) = rest.split_once(':')?;
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty() && !key.starts_with('#')).then_some((indent, key))
}

/// Best effort: the 1-based line where the mapping key path (for example
/// `["__default__", "nodes"]`) is defined in block-style YAML text.
pub fn line_of(text: &str, key_path: &[&str]) -> Option<usize> {
    let mut depth = 0usize;
    let mut min_indent = 0usize;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if depth > 0 && indent < min_indent {
            return None;
        }
        if let Some((key_indent, key)) = key_of(line)
            && key == key_path[depth]
            && key_indent >= min_indent
        {
            depth += 1;
            if depth == key_path.len() {
                return Some(i + 1);
            }
            min_indent = key_indent + 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_anchors_and_merge_keys() {
        let v = from_str(
            "_base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  b: 3\n",
            Path::new("t.yml"),
        )
        .unwrap();
        assert_eq!(v["x"], serde_json::json!({"a": 1, "b": 3}));
    }

    #[test]
    fn yaml_1_1_booleans_stay_strings() {
        let v = from_str("a: y\nb: on\nc: true\nd: no\n", Path::new("t.yml")).unwrap();
        assert_eq!(v, serde_json::json!({"a": "y", "b": "on", "c": true, "d": "no"}));
    }

    #[test]
    fn errors_carry_file_and_line() {
        let err = from_str("a: 1\nb: [1, 2\nc: 3\n", Path::new("conf/base/x.yml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("conf/base/x.yml:"), "{msg}");
        let ConfigError::Parse { line, .. } = err else {
            panic!()
        };
        assert!(line.is_some_and(|l| (2..=4).contains(&l)), "{line:?}");
    }

    #[test]
    fn finds_lines_of_key_paths() {
        let text = "a:\n  nodes:\n    - x\nb:\n  nodes: []\n  other: 1\n";
        assert_eq!(line_of(text, &["a"]), Some(1));
        assert_eq!(line_of(text, &["a", "nodes"]), Some(2));
        assert_eq!(line_of(text, &["b", "nodes"]), Some(5));
        assert_eq!(line_of(text, &["b", "other"]), Some(6));
        assert_eq!(line_of(text, &["c"]), None);
    }
}
