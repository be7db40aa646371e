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
    serde_saphyr::from_str_with_options::<Value>(text, yaml_options()).map_err(|e| {
        let location = e.location();
        ConfigError::Parse {
            file: origin.to_path_buf(),
            line: location.map(|l| l.line() as usize).filter(|l| *l > 0),
            column: location.map(|l| l.column() as usize).filter(|c| *c > 0),
            message: first_line(&e.to_string()),
        }
    })
}

/// YAML 1.2 core booleans only: `y`, `n`, `on`, `off`, `yes`, `no` stay
/// strings (they are common dataset and parameter names).
pub fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options
}

/// The parser's first message line without its own `error: line N column M:`
/// prefix (the location is reported separately).
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s).trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    if let Some(rest) = line.strip_prefix("line ")
        && let Some((loc, msg)) = rest.split_once(": ")
        && loc
            .split(" column ")
            .all(|n| n.chars().all(|c| c.is_ascii_digit()))
    {
        return msg.trim().to_string();
    }
    line.to_string()
}

/// Reads and parses a YAML or JSON file (by extension: `.json` is parsed
/// as strict JSON, anything else as YAML).
pub fn load_file(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_text(&text, path)
}

/// Parses already-read text of `path` (JSON or YAML by extension).
pub(crate) fn parse_text(text: &str, path: &Path) -> Result<Value, ConfigError> {
    if path.extension().is_some_and(|e| e == "json") {
        return serde_json::from_str(text).map_err(|e| ConfigError::Parse {
            file: path.to_path_buf(),
            line: Some(e.line()).filter(|l| *l > 0),
            column: Some(e.column()).filter(|c| *c > 0),
            message: e.to_string(),
        });
    }
    from_str(text, path)
}

/// The column and text of the mapping key a block-style line defines, if any
/// (`key: value`, `key:`, `"quoted key": value`, `- key: value`).
fn key_of(line: &str) -> Option<(usize, &str)> {
    let mut rest = line.trim_start();
    while let Some(r) = rest.strip_prefix("- ") {
        rest = r.trim_start();
    }
    let col = line.len() - rest.len();
    let key = match rest.chars().next()? {
        q @ ('"' | '\'') => {
            let end = rest[1..].find(q)? + 1;
            rest[end + 1..].trim_start().strip_prefix(':')?;
            &rest[1..end]
        }
        '#' | '{' | '[' | '-' => return None,
        _ => match rest.split_once(": ") {
            Some((k, _)) => k,
            None => rest
                .split_once(" #")
                .map_or(rest, |(k, _)| k)
                .trim_end()
                .strip_suffix(':')?,
        }
        .trim_end(),
    };
    (!key.is_empty()).then_some((col, key))
}

/// Best effort: the 1-based line where the mapping key path (for example
/// `["__default__", "nodes"]`) is defined in block-style YAML (or
/// pretty-printed JSON) text. Only direct children are matched at each
/// level; `None` when the path is not found.
pub fn line_of(text: &str, key_path: &[&str]) -> Option<usize> {
    if key_path.is_empty() {
        return None;
    }
    let mut depth = 0usize;
    let mut parent_col: Option<usize> = None;
    let mut child_col: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if parent_col.is_some_and(|p| indent <= p) {
            // Left the parent's block without finding the child.
            return None;
        }
        let Some((col, key)) = key_of(line) else {
            continue;
        };
        match child_col {
            None => child_col = Some(col),
            Some(c) if c != col => continue,
            Some(_) => {}
        }
        if key == key_path[depth] {
            depth += 1;
            if depth == key_path.len() {
                return Some(i + 1);
            }
            parent_col = Some(col);
            child_col = None;
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
