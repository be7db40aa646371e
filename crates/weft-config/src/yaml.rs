//! YAML (and JSON) files as `serde_json::Value`, with file and line in errors.
//!
//! Configuration is read the way Kedro's loader (OmegaConf on PyYAML's
//! `SafeLoader`, YAML 1.1) reads it, so a Kedro project's files mean the
//! same in weft. Quoted and block scalars (`'yes'`, `"on"`, `|`, `>`) are
//! always strings; plain (unquoted) scalars are typed by this table, which
//! is PyYAML's resolver table (`resolver.py`) with OmegaConf's float rule
//! and without timestamps (OmegaConf drops PyYAML's timestamp resolver):
//!
//! | plain scalar | value |
//! |---|---|
//! | `yes` `Yes` `YES` `on` `On` `ON` `true` `True` `TRUE` | `true` |
//! | `no` `No` `NO` `off` `Off` `OFF` `false` `False` `FALSE` | `false` |
//! | `y` `n` `yEs` `oN` ... (any other spelling) | string (PyYAML does not treat them as booleans) |
//! | `~` `null` `Null` `NULL`, empty | null |
//! | `12`, `-3`, `+4`, `1_000` | integer |
//! | `0b1010`, `017` (octal), `0x1f`, `190:20:30` (base 60) | integer (YAML 1.1 forms) |
//! | `0o17`, `09` | string (not YAML 1.1 integers) |
//! | `1.5`, `1.`, `.5`, `1e3`, `1.5e-3`, `1_000.5`, `190:20:30.15` | float (OmegaConf also accepts `1e3` without a dot) |
//! | `.inf`, `-.Inf`, `.nan` | an error: JSON-based configuration cannot hold non-finite floats (quote them to keep the text) |
//! | `2024-01-01` and anything else | string |
//!
//! The core tags `!!str`, `!!int`, `!!float`, `!!bool` and `!!null` force a
//! type; other tags are ignored. Mapping keys are always their text
//! (`1: a` has the key `"1"`, `on: x` the key `"on"`). Anchors, aliases and
//! merge keys (`<<: *base`, `<<: [*a, *b]`) are resolved (explicit keys win
//! over merged ones, earlier merged maps over later ones).
//!
//! Problems are reported in weft's words with the file and line: duplicate
//! keys in one mapping (`parameters.yml:7: duplicate key `lr` (first at
//! line 3)`), several documents in one file, nesting deeper than
//! [`MAX_DEPTH`] levels, and more than [`MAX_NODES`] values once aliases are
//! expanded (an "alias bomb"). Files of millions of plain values load: there
//! is no other size limit.

use std::path::Path;

use granit_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Value};

use crate::ConfigError;

/// Deepest nesting of mappings and sequences accepted in one file.
pub const MAX_DEPTH: usize = 255;

/// Most values (scalars, mappings, sequences) one file may expand to, alias
/// copies included.
pub const MAX_NODES: usize = 10_000_000;

/// Parses YAML text (JSON is YAML too) into a JSON value, typing scalars
/// as Kedro does (see the module docs).
pub fn from_str(text: &str, origin: &Path) -> Result<Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    if let Some(v) = crate::yaml_fast::parse(text) {
        return Ok(v);
    }
    Builder::new(origin).run(text)
}

pub use crate::yaml_fast::Simple;

/// Reads `text` without copying its strings when it is in the simple subset
/// the fast path reads (plain block mappings and sequences, one-line flow
/// lists and mappings, comments): `Some(tree)`, whose
/// [`Simple::to_value`] is what [`from_str`] returns. `None` for anything
/// else, including invalid YAML: call [`from_str`] then, for the value or
/// the error.
pub fn parse_simple(text: &str) -> Option<Simple<'_>> {
    crate::yaml_fast::parse_tree(text)
}

/// [`from_str`] without the fast path for simple block YAML (tests compare
/// the two).
#[doc(hidden)]
pub fn from_str_full(text: &str, origin: &Path) -> Result<Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    Builder::new(origin).run(text)
}

/// A mapping or sequence under construction.
enum Frame {
    Map {
        entries: Vec<(String, usize, Value)>,
        merges: Vec<Map<String, Value>>,
        pending_key: Option<(String, usize)>,
        anchor: usize,
        nodes: usize,
    },
    Seq {
        items: Vec<Value>,
        anchor: usize,
        nodes: usize,
    },
}

struct Builder<'a> {
    file: &'a Path,
    stack: Vec<Frame>,
    /// Anchored values by anchor id, with their node counts.
    anchors: Vec<Option<(Value, usize)>>,
    total_nodes: usize,
    root: Option<Value>,
    documents: usize,
}

impl<'a> Builder<'a> {
    fn new(file: &'a Path) -> Self {
        Builder {
            file,
            stack: Vec::new(),
            anchors: Vec::new(),
            total_nodes: 0,
            root: None,
            documents: 0,
        }
    }

    fn err(&self, line: usize, column: Option<usize>, message: String) -> ConfigError {
        ConfigError::Parse {
            file: self.file.to_path_buf(),
            line: Some(line).filter(|l| *l > 0),
            column: column.filter(|c| *c > 0),
            message,
        }
    }

    fn run(mut self, text: &str) -> Result<Value, ConfigError> {
        let parser = Parser::new_from_str(text);
        for event in parser {
            let (event, span) = event.map_err(|e| {
                let m = e.marker();
                let info = e.info();
                let message = if info.contains("recursion limit") {
                    format!("mappings and lists nested deeper than {MAX_DEPTH} levels")
                } else {
                    info
                };
                self.err(m.line(), Some(m.col() + 1), message)
            })?;
            self.event(event, span)?;
        }
        Ok(self.root.take().unwrap_or(Value::Null))
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), ConfigError> {
        let line = span.start.line();
        match event {
            Event::DocumentStart(..) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(self.err(
                        line,
                        None,
                        "a second YAML document (`---`): a configuration file holds one".into(),
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag
                    .as_ref()
                    .map(|t| (t.handle().to_string(), t.suffix().to_string()));
                let is_key = matches!(
                    self.stack.last(),
                    Some(Frame::Map {
                        pending_key: None,
                        ..
                    })
                );
                if is_key {
                    if let Some(Frame::Map { pending_key, .. }) = self.stack.last_mut() {
                        *pending_key = Some((text.to_string(), line));
                    }
                    return Ok(());
                }
                let value = self.scalar(&text, style, tag.as_ref(), &span)?;
                self.store_anchor(anchor, &value, 1);
                self.push_value(value, 1, line)?;
            }
            Event::SequenceStart(_, anchor, _) => {
                self.check_depth(line)?;
                self.check_key_position(line, "a sequence")?;
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                    nodes: 1,
                });
            }
            Event::MappingStart(_, anchor, _) => {
                self.check_depth(line)?;
                self.check_key_position(line, "a mapping")?;
                self.stack.push(Frame::Map {
                    entries: Vec::new(),
                    merges: Vec::new(),
                    pending_key: None,
                    anchor,
                    nodes: 1,
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { items, anchor, nodes }) = self.stack.pop() {
                    let value = Value::Array(items);
                    self.store_anchor(anchor, &value, nodes);
                    self.push_value(value, nodes, line)?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    entries,
                    merges,
                    anchor,
                    nodes,
                    ..
                }) = self.stack.pop()
                {
                    let value = Value::Object(self.finish_map(entries, merges)?);
                    self.store_anchor(anchor, &value, nodes);
                    self.push_value(value, nodes, line)?;
                }
            }
            Event::Alias(id) => {
                let nodes = match self.anchors.get(id) {
                    Some(Some((_, nodes))) => *nodes,
                    _ => 0,
                };
                // Refuse before copying anything.
                if self.total_nodes.saturating_add(nodes) > MAX_NODES {
                    return Err(self.too_many(line));
                }
                let Some(Some((value, nodes))) = self.anchors.get(id).cloned() else {
                    return Err(self.err(line, None, "an alias (`*name`) to an unknown anchor".into()));
                };
                if matches!(
                    self.stack.last(),
                    Some(Frame::Map {
                        pending_key: None,
                        ..
                    })
                ) {
                    return Err(self.err(line, None, "an alias used as a mapping key".into()));
                }
                self.push_value(value, nodes, line)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn too_many(&self, line: usize) -> ConfigError {
        self.err(
            line,
            None,
            format!("the file expands to more than {MAX_NODES} values once aliases (`*name`) are copied"),
        )
    }

    fn check_depth(&self, line: usize) -> Result<(), ConfigError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.err(
                line,
                None,
                format!("mappings and lists nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn check_key_position(&self, line: usize, what: &str) -> Result<(), ConfigError> {
        if matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: None,
                ..
            })
        ) {
            return Err(self.err(
                line,
                None,
                format!("{what} used as a mapping key (keys must be plain text)"),
            ));
        }
        Ok(())
    }

    fn store_anchor(&mut self, anchor: usize, value: &Value, nodes: usize) {
        if anchor == 0 {
            return;
        }
        if self.anchors.len() <= anchor {
            self.anchors.resize(anchor + 1, None);
        }
        self.anchors[anchor] = Some((value.clone(), nodes));
    }

    /// Adds a finished value to its parent (or makes it the root).
    fn push_value(&mut self, value: Value, nodes: usize, line: usize) -> Result<(), ConfigError> {
        self.total_nodes = self.total_nodes.saturating_add(nodes);
        if self.total_nodes > MAX_NODES {
            return Err(self.too_many(line));
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, nodes: n, .. }) => {
                *n += nodes;
                items.push(value);
            }
            Some(Frame::Map {
                entries,
                merges,
                pending_key,
                nodes: n,
                ..
            }) => {
                *n += nodes;
                let (key, key_line) = pending_key.take().unwrap_or_default();
                if key == "<<" {
                    match value {
                        Value::Object(m) => merges.push(m),
                        Value::Array(items) if items.iter().all(Value::is_object) => {
                            merges.extend(items.into_iter().filter_map(|v| match v {
                                Value::Object(m) => Some(m),
                                _ => None,
                            }));
                        }
                        _ => {
                            return Err(self.err(
                                key_line,
                                None,
                                "a merge key (`<<`) takes a mapping or a list of mappings".into(),
                            ));
                        }
                    }
                } else {
                    entries.push((key, key_line, value));
                }
            }
        }
        Ok(())
    }

    fn finish_map(
        &self,
        entries: Vec<(String, usize, Value)>,
        merges: Vec<Map<String, Value>>,
    ) -> Result<Map<String, Value>, ConfigError> {
        let mut map = Map::new();
        for m in merges {
            for (k, v) in m {
                if !map.contains_key(&k) {
                    map.insert(k, v);
                }
            }
        }
        let mut own =
            std::collections::HashSet::with_capacity(if entries.len() > 8 { entries.len() } else { 0 });
        for (i, (key, line, _)) in entries.iter().enumerate() {
            let seen = if entries.len() > 8 {
                !own.insert(key.as_str())
            } else {
                entries[..i].iter().any(|(k, _, _)| k == key)
            };
            if seen {
                let first = entries
                    .iter()
                    .find(|(k, _, _)| k == key)
                    .map_or(0, |(_, l, _)| *l);
                return Err(self.err(
                    *line,
                    None,
                    format!("duplicate key `{key}` (first at line {first})"),
                ));
            }
        }
        for (key, _, value) in entries {
            map.insert(key, value);
        }
        Ok(map)
    }

    /// Types one scalar (see the module docs).
    fn scalar(
        &self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&(String, String)>,
        span: &Span,
    ) -> Result<Value, ConfigError> {
        let line = span.start.line();
        let core = tag.and_then(|(h, s)| (h == "tag:yaml.org,2002:").then_some(s.as_str()));
        let plain = style == ScalarStyle::Plain;
        let bad = |what: &str| {
            self.err(
                line,
                Some(span.start.col() + 1),
                format!("`{text}` is not {what}"),
            )
        };
        match core {
            Some("str") => return Ok(Value::String(text.to_string())),
            Some("null") => return Ok(Value::Null),
            Some("bool") => return yaml11_bool(text).map(Value::Bool).ok_or_else(|| bad("a boolean")),
            Some("int") => {
                return yaml11_int(text)
                    .ok_or_else(|| bad("an integer"))?
                    .map_err(|m| bad(&m));
            }
            Some("float") => {
                return match yaml11_int(text) {
                    Some(Ok(Value::Number(n))) => Ok(Value::from(n.as_f64().unwrap_or(0.0))),
                    _ => match yaml11_float(text) {
                        Some(Ok(v)) => Ok(v),
                        Some(Err(m)) => Err(bad(&m)),
                        None => Err(bad("a float")),
                    },
                };
            }
            _ => {}
        }
        if !plain {
            return Ok(Value::String(text.to_string()));
        }
        Ok(match resolve_plain(text) {
            Resolved::Value(v) => v,
            Resolved::Str => Value::String(text.to_string()),
            Resolved::Invalid(m) => {
                return Err(self.err(line, Some(span.start.col() + 1), m));
            }
        })
    }
}

pub(crate) enum Resolved {
    Value(Value),
    Str,
    Invalid(String),
}

/// PyYAML's boolean spellings (YAML 1.1, `resolver.py`).
pub fn yaml11_bool(s: &str) -> Option<bool> {
    match s {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// Types a plain scalar as PyYAML's resolver with OmegaConf's float rule.
pub(crate) fn resolve_plain(s: &str) -> Resolved {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Value(Value::Null),
        _ => {}
    }
    let Some(first) = s.chars().next() else {
        return Resolved::Value(Value::Null);
    };
    if let Some(b) = yaml11_bool(s) {
        return Resolved::Value(Value::Bool(b));
    }
    if !(first.is_ascii_digit() || "+-.".contains(first)) {
        return Resolved::Str;
    }
    if let Some(r) = yaml11_int(s) {
        return match r {
            Ok(v) => Resolved::Value(v),
            Err(m) => Resolved::Invalid(m),
        };
    }
    match yaml11_float(s) {
        Some(Ok(v)) => Resolved::Value(v),
        Some(Err(m)) => Resolved::Invalid(m),
        None => Resolved::Str,
    }
}

fn split_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

fn int_value(neg: bool, magnitude: u128, text: &str) -> Result<Value, String> {
    if neg {
        if magnitude <= i64::MAX as u128 + 1 {
            return Ok(Value::from((-(magnitude as i128)) as i64));
        }
    } else if magnitude <= u64::MAX as u128 {
        return Ok(Value::from(magnitude as u64));
    }
    Err(format!("the integer `{text}` is out of the 64-bit range"))
}

/// YAML 1.1 integers: `0b...`, `0...` (octal), decimal, `0x...`, base 60.
/// `None` when `s` is not an integer; `Some(Err)` when it is one that does
/// not fit in 64 bits.
pub fn yaml11_int(s: &str) -> Option<Result<Value, String>> {
    let (neg, body) = split_sign(s);
    let digits_in = |b: &str, ok: fn(u8) -> bool| !b.is_empty() && b.bytes().all(|c| c == b'_' || ok(c));
    let parse = |b: &str, radix: u32| -> Option<Result<Value, String>> {
        let clean: String = b.chars().filter(|&c| c != '_').collect();
        if clean.is_empty() {
            return None;
        }
        Some(match u128::from_str_radix(&clean, radix) {
            Ok(m) => int_value(neg, m, s),
            Err(_) => Err(format!("the integer `{s}` is out of the 64-bit range")),
        })
    };
    if let Some(b) = body.strip_prefix("0b") {
        return digits_in(b, |c| c == b'0' || c == b'1')
            .then(|| parse(b, 2))
            .flatten();
    }
    if let Some(b) = body.strip_prefix("0x") {
        return digits_in(b, |c| c.is_ascii_hexdigit())
            .then(|| parse(b, 16))
            .flatten();
    }
    if body == "0" {
        return Some(Ok(Value::from(0)));
    }
    if let Some(b) = body.strip_prefix('0') {
        return digits_in(b, |c| (b'0'..=b'7').contains(&c))
            .then(|| parse(b, 8))
            .flatten();
    }
    if body.starts_with(|c: char| ('1'..='9').contains(&c)) {
        if digits_in(body, |c| c.is_ascii_digit()) {
            return parse(body, 10);
        }
        // Base 60: `[1-9][0-9_]*(:[0-5]?[0-9])+`.
        let mut parts = body.split(':');
        let head = parts.next()?;
        let rest: Vec<&str> = parts.collect();
        if !rest.is_empty()
            && digits_in(head, |c| c.is_ascii_digit())
            && rest.iter().all(|p| sexagesimal_digit(p))
        {
            let mut total: u128 = head.replace('_', "").parse().ok()?;
            for p in rest {
                total = total.checked_mul(60)?.checked_add(p.parse().ok()?)?;
            }
            return Some(int_value(neg, total, s));
        }
    }
    None
}

/// `[0-5]?[0-9]`.
fn sexagesimal_digit(p: &str) -> bool {
    match p.as_bytes() {
        [d] => d.is_ascii_digit(),
        [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
        _ => false,
    }
}

/// OmegaConf's YAML float rule. `None` when `s` is not a float;
/// `Some(Err)` for `.inf`/`.nan` (not representable in JSON).
pub fn yaml11_float(s: &str) -> Option<Result<Value, String>> {
    let (neg, body) = split_sign(s);
    if matches!(body, ".inf" | ".Inf" | ".INF") || (matches!(body, ".nan" | ".NaN" | ".NAN") && s == body) {
        return Some(Err(format!(
            "`{s}` is a non-finite float, which JSON-based configuration cannot hold (quote it to keep the text)"
        )));
    }
    let digits_us = |b: &str| b.bytes().all(|c| c == b'_' || c.is_ascii_digit());
    let exp_ok = |e: &str, sign_required: bool| {
        let (has_sign, d) = match e.as_bytes().first() {
            Some(b'+' | b'-') => (true, &e[1..]),
            _ => (false, e),
        };
        (has_sign || !sign_required) && !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit())
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let ok = if let Some(frac) = mantissa.strip_prefix('.') {
        // `\.[0-9_]+([eE][-+][0-9]+)?` (no sign allowed before the dot form
        // in PyYAML's rule; OmegaConf keeps it so).
        s == body && !frac.is_empty() && digits_us(frac) && exponent.is_none_or(|e| exp_ok(e, true))
    } else if let Some((int, frac)) = mantissa.split_once('.') {
        // `[0-9][0-9_]*\.[0-9_]*([eE][-+]?[0-9]+)?`
        int.starts_with(|c: char| c.is_ascii_digit())
            && digits_us(int)
            && digits_us(frac)
            && exponent.is_none_or(|e| exp_ok(e, false))
            && !int.contains(':')
    } else {
        // `[0-9][0-9_]*[eE][-+]?[0-9]+`
        mantissa.starts_with(|c: char| c.is_ascii_digit())
            && digits_us(mantissa)
            && exponent.is_some_and(|e| exp_ok(e, false))
    };
    if ok {
        let clean: String = s.chars().filter(|&c| c != '_').collect();
        return clean.parse::<f64>().ok().map(|f| {
            if f.is_finite() {
                Ok(Value::from(f))
            } else {
                Err(format!("the float `{s}` is out of range"))
            }
        });
    }
    // Base 60 float: `[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`.
    if exponent.is_none()
        && let Some((head, frac)) = mantissa.rsplit_once('.')
        && head.contains(':')
        && digits_us(frac)
    {
        let mut parts = head.split(':');
        let first = parts.next()?;
        let rest: Vec<&str> = parts.collect();
        if first.starts_with(|c: char| c.is_ascii_digit())
            && digits_us(first)
            && rest.iter().all(|p| sexagesimal_digit(p))
        {
            let mut total: f64 = first.replace('_', "").parse().ok()?;
            for (i, p) in rest.iter().enumerate() {
                let last = i + 1 == rest.len();
                let v: f64 = if last {
                    format!("{p}.{}", frac.replace('_', "")).parse().ok()?
                } else {
                    p.parse().ok()?
                };
                total = total * 60.0 + v;
            }
            return Some(Ok(Value::from(if neg { -total } else { total })));
        }
    }
    None
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
    fn scalars_are_typed_as_pyyaml_types_them() {
        // Every spelling PyYAML's resolver treats as a boolean, and a few it does not.
        let text = "a: yes\nb: Yes\nc: YES\nd: on\ne: On\nf: ON\ng: true\nh: True\ni: TRUE\n\
                    j: no\nk: No\nl: NO\nm: off\nn: Off\no: OFF\np: false\nq: False\nr: FALSE\n\
                    s: y\nt: n\nu: Y\nv: yEs\nw: oN\nx: 'yes'\ny: \"on\"\nz: |\n  no\n";
        let v = from_str(text, Path::new("t.yml")).unwrap();
        for k in ["a", "b", "c", "d", "e", "f", "g", "h", "i"] {
            assert_eq!(v[k], true, "{k}");
        }
        for k in ["j", "k", "l", "m", "n", "o", "p", "q", "r"] {
            assert_eq!(v[k], false, "{k}");
        }
        assert_eq!(
            [
                &v["s"], &v["t"], &v["u"], &v["v"], &v["w"], &v["x"], &v["y"], &v["z"]
            ],
            ["y", "n", "Y", "yEs", "oN", "yes", "on", "no\n"]
        );
        let v = from_str(
            "a: 12\nb: -3\nc: 1_000\nd: 0b101\ne: 017\nf: 0x1f\ng: 190:20:30\nh: 0o17\ni: 09\n\
             j: 1.5\nk: 1.\nl: .5\nm: 1e3\nn: 1.5e-3\no: 2024-01-01\np: ~\nq: null\nr:\ns: !!str 12\n\
             t: !!int '7'\nu: !!float 1\nv: +4\nw: 1_000.5\nx: abc\n",
            Path::new("t.yml"),
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": 12, "b": -3, "c": 1000, "d": 5, "e": 15, "f": 31, "g": 685230,
                "h": "0o17", "i": "09", "j": 1.5, "k": 1.0, "l": 0.5, "m": 1000.0, "n": 0.0015,
                "o": "2024-01-01", "p": null, "q": null, "r": null, "s": "12", "t": 7, "u": 1.0,
                "v": 4, "w": 1000.5, "x": "abc"})
        );
        let err = from_str("a: .inf\n", Path::new("t.yml")).unwrap_err().to_string();
        assert!(
            err.starts_with("t.yml:1:4: `.inf` is a non-finite float"),
            "{err}"
        );
        assert_eq!(from_str("a: '.inf'\n", Path::new("t.yml")).unwrap()["a"], ".inf");
    }

    #[test]
    fn duplicate_keys_and_limits_are_reported_in_our_words() {
        let text = "a: 1\nlr: 0.1\nb:\n  x: 1\n\nc: 2\nlr: 0.2\n";
        let err = from_str(text, Path::new("conf/base/parameters.yml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "conf/base/parameters.yml:7: duplicate key `lr` (first at line 2)"
        );
        let nested = from_str("m: {k: 1, j: 2, k: 3}\n", Path::new("p.yml")).unwrap_err();
        assert_eq!(nested.to_string(), "p.yml:1: duplicate key `k` (first at line 1)");
        let flow = format!("{}1{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let block: String = (0..=MAX_DEPTH)
            .map(|i| format!("{}k:\n", "  ".repeat(i)))
            .collect();
        for deep in [flow, block] {
            let err = from_str(&deep, Path::new("d.yml")).unwrap_err().to_string();
            assert!(err.contains("nested deeper than 255 levels"), "{err}");
        }
        let ok: String = (0..MAX_DEPTH - 1)
            .map(|i| format!("{}k:\n", "  ".repeat(i)))
            .collect();
        assert!(from_str(&ok, Path::new("d.yml")).is_ok());
        // An alias bomb: 10 levels of 10 copies is 10^10 values.
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = from_str(&bomb, Path::new("b.yml")).unwrap_err().to_string();
        assert!(err.contains("more than 10000000 values once aliases"), "{err}");
        for msg in [
            err,
            from_str("a: 1\n---\nb: 2\n", Path::new("m.yml"))
                .unwrap_err()
                .to_string(),
        ] {
            assert!(!msg.contains("budget") && !msg.contains("Budget"), "{msg}");
        }
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
