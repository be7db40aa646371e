//! A fast path for the plain block-style YAML most configuration files use
//! (`key: value`, `- item`, `- key: value`, `[a, b]`, comments). It returns
//! `None` as soon as it sees anything else (anchors, tags, quotes, block
//! scalars, multi-line scalars, complex flow collections, duplicate or merge
//! keys, tabs...), and the full parser then reads the file: results are the
//! same, errors always come from the full parser.
//!
//! The reader builds any [`Tree`]: a `serde_json::Value`, or a
//! [`Simple`] tree borrowing its strings from the text (no copy, no
//! hashing), which `pipelines.yml` reading uses.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::yaml::{Resolved, resolve_plain};

struct Line<'a> {
    indent: usize,
    content: &'a str,
}

/// What the reader builds.
pub(crate) trait Tree<'a>: Sized {
    /// A plain scalar (already checked to be one), typed as YAML types it;
    /// `None` when it is invalid (the full parser reports it).
    fn scalar(s: &'a str) -> Option<Self>;
    /// A sequence.
    fn list(items: Vec<Self>) -> Self;
    /// A mapping; `None` when a key repeats (the full parser reports it).
    fn map(entries: Vec<(&'a str, Self)>) -> Option<Self>;
}

impl<'a> Tree<'a> for Value {
    fn scalar(s: &'a str) -> Option<Self> {
        match resolve_plain(s) {
            Resolved::Value(v) => Some(v),
            Resolved::Str => Some(Value::String(s.to_string())),
            Resolved::Invalid(_) => None,
        }
    }
    fn list(items: Vec<Self>) -> Self {
        Value::Array(items)
    }
    fn map(entries: Vec<(&'a str, Self)>) -> Option<Self> {
        let mut map = Map::with_capacity(entries.len());
        for (k, v) in entries {
            if map.insert(k.to_string(), v).is_some() {
                return None;
            }
        }
        Some(Value::Object(map))
    }
}

/// A document of the simple subset, borrowing its strings from the text.
/// [`Simple::to_value`] gives exactly what [`crate::yaml::from_str`] gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Simple<'a> {
    /// A scalar that YAML types as a string.
    Str(&'a str),
    /// Any other scalar (number, boolean, null).
    Other(Value),
    /// A sequence.
    List(Vec<Simple<'a>>),
    /// A mapping, in document order (keys are unique).
    Map(Vec<(&'a str, Simple<'a>)>),
}

impl Simple<'_> {
    /// The same document as a `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        match self {
            Simple::Str(s) => Value::String((*s).to_string()),
            Simple::Other(v) => v.clone(),
            Simple::List(items) => Value::Array(items.iter().map(Simple::to_value).collect()),
            Simple::Map(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (k, v) in entries {
                    map.insert((*k).to_string(), v.to_value());
                }
                Value::Object(map)
            }
        }
    }

    /// The string, if this is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Simple::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl<'a> Tree<'a> for Simple<'a> {
    fn scalar(s: &'a str) -> Option<Self> {
        match resolve_plain(s) {
            Resolved::Value(v) => Some(Simple::Other(v)),
            Resolved::Str => Some(Simple::Str(s)),
            Resolved::Invalid(_) => None,
        }
    }
    fn list(items: Vec<Self>) -> Self {
        Simple::List(items)
    }
    fn map(entries: Vec<(&'a str, Self)>) -> Option<Self> {
        let unique = if entries.len() <= 16 {
            entries
                .iter()
                .enumerate()
                .all(|(i, (k, _))| entries[..i].iter().all(|(e, _)| e != k))
        } else {
            let mut seen = HashSet::with_capacity(entries.len());
            entries.iter().all(|(k, _)| seen.insert(*k))
        };
        unique.then_some(Simple::Map(entries))
    }
}

/// Parses `text` if it is in the simple subset.
pub(crate) fn parse(text: &str) -> Option<Value> {
    parse_tree(text)
}

/// Parses `text` into any [`Tree`] if it is in the simple subset.
pub(crate) fn parse_tree<'a, T: Tree<'a>>(text: &'a str) -> Option<T> {
    if text.contains([
        '\t', '\r', '"', '\'', '&', '*', '!', '|', '>', '%', '`', '?', '\u{feff}',
    ]) {
        return None;
    }
    let mut lines = Vec::new();
    for raw in text.split('\n') {
        let content = raw.trim_start_matches(' ');
        let trimmed = content.trim_end_matches(' ');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if trimmed.contains('#') || trimmed.starts_with("---") || trimmed.starts_with("...") {
            return None;
        }
        lines.push(Line {
            indent: raw.len() - content.len(),
            content: trimmed,
        });
    }
    if lines.is_empty() {
        return None;
    }
    let mut i = 0;
    let indent = lines[0].indent;
    let v = block(&lines, &mut i, indent, 0)?;
    (i == lines.len()).then_some(v)
}

/// A block (mapping or sequence) whose lines start at `indent`.
fn block<'a, T: Tree<'a>>(lines: &[Line<'a>], i: &mut usize, indent: usize, depth: usize) -> Option<T> {
    if depth >= crate::yaml::MAX_DEPTH {
        return None;
    }
    let first = lines.get(*i)?;
    if first.indent != indent {
        return None;
    }
    if is_item(first.content) {
        sequence(lines, i, indent, depth)
    } else {
        mapping(lines, i, indent, None, depth)
    }
}

fn is_item(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

fn sequence<'a, T: Tree<'a>>(lines: &[Line<'a>], i: &mut usize, indent: usize, depth: usize) -> Option<T> {
    let mut items = Vec::new();
    while let Some(line) = lines.get(*i) {
        if line.indent < indent {
            break;
        }
        if line.indent > indent {
            return None;
        }
        if !is_item(line.content) {
            break;
        }
        let rest = line.content.strip_prefix('-')?;
        let after = rest.trim_start_matches(' ');
        if after.is_empty() {
            return None;
        }
        let col = indent + 1 + (rest.len() - after.len());
        if key_value(after).is_some() {
            items.push(mapping(lines, i, col, Some(after), depth + 1)?);
        } else {
            *i += 1;
            items.push(inline_value(after)?);
            if lines.get(*i).is_some_and(|l| l.indent > indent) {
                return None;
            }
        }
    }
    Some(T::list(items))
}

/// `key: rest` or `key:`; the key plain and simple.
fn key_value(content: &str) -> Option<(&str, &str)> {
    let (key, rest) = match content.find(": ") {
        Some(p) => (&content[..p], content[p + 2..].trim_start_matches(' ')),
        None => (content.strip_suffix(':')?, ""),
    };
    let simple = !key.is_empty()
        && key != "<<"
        && !key.starts_with(['-', '[', '{', ':', ',', ']', '}', ' '])
        && !key.ends_with(' ')
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-@/$+ ".contains(&c));
    simple.then_some((key, rest))
}

/// A mapping at `indent`; `first` is an entry already on the current line
/// (after `- `).
fn mapping<'a, T: Tree<'a>>(
    lines: &[Line<'a>],
    i: &mut usize,
    indent: usize,
    first: Option<&'a str>,
    depth: usize,
) -> Option<T> {
    if depth >= crate::yaml::MAX_DEPTH {
        return None;
    }
    let mut entries = Vec::new();
    let mut pending = first;
    loop {
        let content = match pending.take() {
            Some(c) => c,
            None => {
                let Some(line) = lines.get(*i) else { break };
                if line.indent < indent {
                    break;
                }
                if line.indent > indent {
                    return None;
                }
                line.content
            }
        };
        let (key, rest) = key_value(content)?;
        *i += 1;
        let value = if !rest.is_empty() {
            let v = inline_value(rest)?;
            if lines.get(*i).is_some_and(|l| l.indent > indent) {
                return None;
            }
            v
        } else {
            match lines.get(*i) {
                Some(next) if next.indent > indent => block(lines, i, next.indent, depth + 1)?,
                Some(next) if next.indent == indent && is_item(next.content) => {
                    sequence(lines, i, indent, depth + 1)?
                }
                _ => T::scalar("~")?,
            }
        };
        entries.push((key, value));
    }
    T::map(entries)
}

/// A scalar, a flow list of plain scalars, or a one-line flow mapping of
/// simple keys to such values (`{name: n1, inputs: [a, params:x]}`).
fn inline_value<'a, T: Tree<'a>>(s: &'a str) -> Option<T> {
    if s.starts_with('{') {
        return flow_mapping(s);
    }
    if s.starts_with('[') {
        return flow_list(s);
    }
    if s.contains(": ") || s.ends_with(':') || s.contains(['{', '}', '[', ']']) {
        return None;
    }
    plain(s)
}

/// `[a, b, params:x]`: plain scalars only (no nesting, no empty items).
fn flow_list<'a, T: Tree<'a>>(s: &'a str) -> Option<T> {
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    if inner.trim_matches(' ').is_empty() {
        return Some(T::list(Vec::new()));
    }
    inner
        .split(',')
        .map(|item| flow_scalar(item.trim_matches(' ')))
        .collect::<Option<Vec<_>>>()
        .map(T::list)
}

/// A plain scalar inside a flow collection: `:` only when not followed by
/// a space or ending it (so `params:x` is one scalar), no indicators.
fn flow_scalar<'a, T: Tree<'a>>(item: &'a str) -> Option<T> {
    if item.is_empty()
        || item.contains(['[', ']', '{', '}'])
        || item.contains(": ")
        || item.ends_with(':')
        || item.starts_with(':')
    {
        return None;
    }
    plain(item)
}

/// `{k: v, k: [a, b]}` on one line: simple keys, flow scalars or flat lists.
fn flow_mapping<'a, T: Tree<'a>>(s: &'a str) -> Option<T> {
    let inner = s.strip_prefix('{')?.strip_suffix('}')?;
    if inner.trim_matches(' ').is_empty() {
        return T::map(Vec::new());
    }
    // Entry boundaries first (commas outside lists), so the entries are
    // allocated once at their final size.
    let mut depth = 0usize;
    let mut count = 1;
    for c in inner.bytes() {
        match c {
            b'[' => depth += 1,
            b']' => depth = depth.checked_sub(1)?,
            b'{' | b'}' => return None,
            b',' if depth == 0 => count += 1,
            _ => {}
        }
    }
    if depth != 0 {
        return None;
    }
    let mut entries = Vec::with_capacity(count);
    let mut rest = inner;
    for _ in 0..count {
        let mut depth = 0usize;
        let end = rest
            .bytes()
            .position(|c| {
                match c {
                    b'[' => depth += 1,
                    b']' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                c == b',' && depth == 0
            })
            .unwrap_or(rest.len());
        let entry = rest[..end].trim_matches(' ');
        rest = rest.get(end + 1..).unwrap_or("");
        let (key, value) = key_value(entry)?;
        let value = value.trim_end_matches(' ');
        if value.is_empty() {
            return None;
        }
        let value = if value.starts_with('[') {
            flow_list(value)?
        } else {
            flow_scalar(value)?
        };
        entries.push((key, value));
    }
    T::map(entries)
}

fn plain<'a, T: Tree<'a>>(s: &'a str) -> Option<T> {
    if s.starts_with([',', '[', ']', '{', '}', '#', '@', ':']) || s == "-" || s.starts_with("- ") {
        return None;
    }
    T::scalar(s)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Documents in and out of the subset: whenever the fast path answers,
    /// it answers what the full parser does.
    const DOCS: &[&str] = &[
        "a: 1\nb: x\n",
        "a:\n  b:\n    c: [1, 2, x]\n  d: yes\n  e: ~\n  f:\n",
        "__default__:\n  nodes:\n    - name: n1\n      func: add_one\n      inputs: [a, b]\n      outputs: c\n      tags: []\n",
        "a:\n- x\n- y\nb: 1\n",
        "- 1\n- two\n- 3.5\n- on\n- n\n",
        "- - a\n  - b\n",
        "- a: 1\n  b: 2\n- c: 3\n",
        "a: 1 # comment\n",
        "# only a comment\na: 1\n",
        "a: 'quoted'\n",
        "a: &x 1\nb: *x\n",
        "a: |\n  text\n",
        "a: 1\na: 2\n",
        "a: b: c\n",
        "a: multi\n  line\n",
        "a:\n  - x\n   - y\n",
        "a: [1, [2]]\n",
        "a: {x: 1}\n",
        "a: {}\nb: []\n",
        "a: .inf\n",
        "a: -1\nb: -x\nc: 0x1f\nd: 017\ne: 1e3\nf: 2024-01-01\ng: 1_000\n",
        "a: x,y\nb: http://h:1/p\nc: a:b\n",
        "key with spaces: 1\n1: one\ntrue: t\n",
        "<<: {a: 1}\n",
        "a:\tb\n",
        "a: 1\r\nb: 2\r\n",
        "scalar\n",
        "a:\n  b: 1\n c: 2\n",
        "---\na: 1\n",
        "-\n  a: 1\n",
        "a: - x\n",
        "a: [x, - y]\n",
        "a: [ ]\nb: [,]\n",
        "- {name: n0, func: add_one, inputs: params:start, outputs: d1}\n",
        "- {name: n1, func: sum, inputs: [params:a, d1, x], outputs: [y, z], tags: []}\n",
        "a: {x: 1, y: [1, 2], z: yes, w: ~}\n",
        "a: {x: 1,}\n",
        "a: {x: 1, x: 2}\n",
        "a: {x: {y: 1}}\n",
        "a: {x:1}\n",
        "a: {x: a:b, y: :z}\n",
        "a: {x: [a:b, c]}\n",
        "a: {x: [a: b]}\n",
        "a: {x: 1, y}\n",
        "a: {x: 1} trailing\n",
        "a: [a:b, c:]\n",
        "__default__:\n  nodes:\n    - {name: n0, func: add_one, inputs: params:start, outputs: d1}\n    - {name: n1, func: add_one, inputs: d1, outputs: d2}\n",
    ];

    #[test]
    fn one_line_flow_nodes_take_the_fast_path() {
        let doc = "__default__:\n  nodes:\n    - {name: n0, func: add_one, inputs: [params:a, d1], outputs: d2, tags: []}\n";
        let fast = parse(doc).expect("in the subset");
        let full = crate::yaml::from_str_full(doc, Path::new("t.yml")).unwrap();
        assert_eq!(fast, full);
        assert_eq!(fast["__default__"]["nodes"][0]["inputs"][0], "params:a");
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_parser() {
        let file = Path::new("t.yml");
        let mut fast_answers = 0;
        for doc in DOCS {
            // The borrowed tree answers exactly when the value reader does,
            // with the same document.
            let simple = crate::yaml::parse_simple(doc).map(|t| t.to_value());
            assert_eq!(simple, parse(doc), "{doc:?}");
            if let Some(v) = parse(doc) {
                fast_answers += 1;
                let full = crate::yaml::from_str_full(doc, file);
                assert_eq!(full.ok().as_ref(), Some(&v), "{doc:?}");
            }
        }
        assert!(
            fast_answers >= 10,
            "the fast path answered only {fast_answers} documents"
        );
    }

    #[test]
    fn pipeline_and_config_files_take_the_fast_path() {
        let mut chain = String::from("__default__:\n  nodes:\n");
        for i in 0..50 {
            chain.push_str(&format!(
                "    - name: n{i}\n      func: add_one\n      inputs: d{i}\n      outputs: d{}\n      tags: [a, b]\n",
                i + 1
            ));
        }
        let catalog = "companies:\n  type: csv\n  filepath: data/01_raw/companies.csv\n\nmodel:\n  type: json\n  filepath: data/06_models/model.json\n  versioned: true\n";
        for doc in [chain.as_str(), catalog] {
            let fast = parse(doc).expect("fast path");
            assert_eq!(fast, crate::yaml::from_str_full(doc, Path::new("t.yml")).unwrap());
        }
    }

    /// Random block documents from pieces that are in and out of the
    /// subset: the fast path, when it answers, agrees with the full parser.
    mod random {
        use proptest::prelude::*;

        fn scalar() -> impl Strategy<Value = String> {
            prop::sample::select(vec![
                "1",
                "-2",
                "+3",
                "0",
                "017",
                "09",
                "0x1f",
                "0b11",
                "1_000",
                "1.5",
                ".5",
                "1.",
                "1e3",
                "1e",
                "-.5e-3",
                "yes",
                "No",
                "ON",
                "off",
                "y",
                "n",
                "true",
                "FALSE",
                "~",
                "null",
                "Null",
                "abc",
                "a b",
                "a,b",
                "a:b",
                "http://h:1/x",
                "-x",
                "x-",
                "2024-01-01",
                "1:30",
                "190:20:30.5",
                ".inf",
                "a.b",
                "$x",
                "a/b",
                "é",
                "1 2",
                "[]",
                "[a, 1]",
                "[a,b,c]",
                "{}",
                "[1, [2]]",
                "- x",
                "-",
                "@x",
                ",x",
                ":x",
                "x:",
                "a: b",
                "[a",
                "[params:a, d1]",
                "[a:b, c:]",
                "{x: 1}",
                "{x: 1, y: [a:b, 2], z: on}",
                "{x: a:b}",
                "{x: 1,}",
                "{x: 1, x: 2}",
                "{x: {y: 1}}",
                "{x: [1, [2]]}",
                "{x:1}",
                "{ x : 1 }",
                "{a: b, c: :d}",
            ])
            .prop_map(str::to_string)
        }

        fn key() -> impl Strategy<Value = String> {
            prop::sample::select(vec![
                "a", "b", "c", "k1", "1", "on", "a b", "x.y", "-k", "<<", "k:",
            ])
            .prop_map(str::to_string)
        }

        /// A block at `indent`: lines of a mapping or a sequence.
        fn block(depth: u32) -> BoxedStrategy<Vec<(usize, String)>> {
            let leaf = prop::collection::vec((key(), scalar()), 1..4).prop_map(|kv| {
                kv.into_iter()
                    .map(|(k, v)| (0, format!("{k}: {v}")))
                    .collect::<Vec<_>>()
            });
            if depth == 0 {
                return leaf.boxed();
            }
            let map = prop::collection::vec(
                (key(), prop::option::of(block(depth - 1)), scalar(), 0usize..3),
                1..4,
            )
            .prop_map(|entries| {
                let mut lines = Vec::new();
                for (k, child, v, extra) in entries {
                    match child {
                        Some(c) => {
                            lines.push((0, format!("{k}:")));
                            lines.extend(c.into_iter().map(|(i, l)| (i + 2 + extra % 2, l)));
                        }
                        None => lines.push((0, format!("{k}: {v}"))),
                    }
                }
                lines
            });
            let seq = prop::collection::vec(prop::option::of(block(depth - 1)), 1..4).prop_map(|items| {
                let mut lines = Vec::new();
                for item in items {
                    match item {
                        Some(c) if !c.is_empty() => {
                            let mut it = c.into_iter();
                            let (_, first) = it.next().expect("non-empty");
                            lines.push((0, format!("- {first}")));
                            lines.extend(it.map(|(i, l)| (i + 2, l)));
                        }
                        _ => lines.push((0, "- x".to_string())),
                    }
                }
                lines
            });
            prop_oneof![leaf, map, seq].boxed()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]
            #[test]
            fn fast_path_agrees(lines in block(3), comment in any::<bool>()) {
                let mut doc = String::new();
                for (i, l) in lines {
                    doc.push_str(&" ".repeat(i));
                    doc.push_str(&l);
                    doc.push('\n');
                    if comment {
                        doc.push_str("# note\n");
                    }
                }
                let simple = crate::yaml::parse_simple(&doc).map(|t| t.to_value());
                prop_assert_eq!(&simple, &super::super::parse(&doc), "{}", doc);
                if let Some(fast) = super::super::parse(&doc) {
                    let full = crate::yaml::from_str_full(&doc, std::path::Path::new("t.yml"));
                    prop_assert_eq!(full.ok(), Some(fast), "{}", doc);
                }
            }
        }
    }
}
