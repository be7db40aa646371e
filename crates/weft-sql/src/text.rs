//! SQL text: identifier quoting, named parameters rewritten to the
//! driver's positional ones, and the statements a table save runs.

use std::collections::BTreeMap;

use serde_json::Value;

/// Which SQL dialect a statement is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

/// `name` as a quoted identifier: `"name"`, inner `"` doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`, or `"table"` without a schema.
pub(crate) fn qualified(schema: Option<&str>, table: &str) -> String {
    match schema {
        Some(s) => format!("{}.{}", quote_ident(s), quote_ident(table)),
        None => quote_ident(table),
    }
}

/// The query without trailing `;` and whitespace (it is wrapped in a
/// subquery on PostgreSQL).
pub(crate) fn trim_statement(sql: &str) -> &str {
    sql.trim_end_matches(|c: char| c == ';' || c.is_whitespace())
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Rewrites `:name` parameters to the driver's positional ones (`$1` on
/// PostgreSQL, `?1` on SQLite), outside string literals, quoted
/// identifiers, comments, PostgreSQL dollar-quoted strings and `::` casts.
/// A name used twice binds the same value. Returns the SQL and the values
/// in position order; every name used must be in `params` and every entry
/// of `params` must be used.
pub(crate) fn bind_named(
    sql: &str,
    params: &serde_json::Map<String, Value>,
    dialect: Dialect,
) -> Result<(String, Vec<Value>), String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut order: Vec<String> = Vec::new();
    let mut positions: BTreeMap<String, usize> = BTreeMap::new();
    let mut missing: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' | '"' | '`' => {
                // A quoted literal or identifier; a doubled quote stays inside.
                let end = closing_quote(&chars, i + 1, c);
                out.extend(&chars[i..end]);
                i = end;
            }
            '-' if next == Some('-') => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(chars.len(), |p| i + p);
                out.extend(&chars[i..end]);
                i = end;
            }
            '/' if next == Some('*') => {
                let end = find(&chars, i + 2, &['*', '/']).map_or(chars.len(), |p| p + 2);
                out.extend(&chars[i..end]);
                i = end;
            }
            '$' if dialect == Dialect::Postgres => {
                // `$tag$ ... $tag$` (tag may be empty); `$1` is left alone.
                let tag_end = chars[i + 1..]
                    .iter()
                    .position(|&c| !is_ident_char(c))
                    .map_or(chars.len(), |p| i + 1 + p);
                let tag_ok = chars.get(i + 1).is_none_or(|&c| !c.is_ascii_digit());
                if tag_ok && chars.get(tag_end) == Some(&'$') {
                    let tag: Vec<char> = chars[i..=tag_end].to_vec();
                    let end = find(&chars, tag_end + 1, &tag).map_or(chars.len(), |p| p + tag.len());
                    out.extend(&chars[i..end]);
                    i = end;
                } else {
                    out.push(c);
                    i += 1;
                }
            }
            ':' if next == Some(':') => {
                out.push_str("::");
                i += 2;
            }
            ':' if next.is_some_and(is_ident_start) && !(i > 0 && is_ident_char(chars[i - 1])) => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| !is_ident_char(c))
                    .map_or(chars.len(), |p| i + 1 + p);
                let name: String = chars[i + 1..end].iter().collect();
                if !params.contains_key(&name) && !missing.contains(&name) {
                    missing.push(name.clone());
                }
                let n = match positions.get(&name) {
                    Some(n) => *n,
                    None => {
                        order.push(name.clone());
                        positions.insert(name, order.len());
                        order.len()
                    }
                };
                match dialect {
                    Dialect::Postgres => out.push_str(&format!("${n}")),
                    Dialect::Sqlite => out.push_str(&format!("?{n}")),
                }
                i = end;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "the query uses {} but load_args.params has no such key{} (it has: {})",
            missing
                .iter()
                .map(|m| format!(":{m}"))
                .collect::<Vec<_>>()
                .join(", "),
            if missing.len() == 1 { "" } else { "s" },
            keys(params)
        ));
    }
    let unused: Vec<&String> = params.keys().filter(|k| !positions.contains_key(*k)).collect();
    if !unused.is_empty() {
        return Err(format!(
            "load_args.params has {} that the query does not use (write `:name` in the query)",
            unused
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let values = order.iter().map(|n| params[n].clone()).collect();
    Ok((out, values))
}

fn keys(params: &serde_json::Map<String, Value>) -> String {
    if params.is_empty() {
        return "nothing".into();
    }
    params
        .keys()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The index just past the quote closing one opened before `from`.
fn closing_quote(chars: &[char], from: usize, quote: char) -> usize {
    let mut i = from;
    while i < chars.len() {
        if chars[i] == quote {
            if chars.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    chars.len()
}

/// Where `needle` next starts at or after `from`.
fn find(chars: &[char], from: usize, needle: &[char]) -> Option<usize> {
    if needle.is_empty() || from > chars.len() {
        return None;
    }
    chars[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// A column's type when weft creates the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColumnType {
    Integer,
    Float,
    Bool,
    Text,
    Json,
    Date,
    Timestamp,
}

impl ColumnType {
    pub(crate) fn sql(self, dialect: Dialect) -> &'static str {
        match (self, dialect) {
            (ColumnType::Integer, Dialect::Postgres) => "BIGINT",
            (ColumnType::Integer, Dialect::Sqlite) => "INTEGER",
            (ColumnType::Float, Dialect::Postgres) => "DOUBLE PRECISION",
            (ColumnType::Float, Dialect::Sqlite) => "REAL",
            (ColumnType::Bool, _) => "BOOLEAN",
            (ColumnType::Text, _) => "TEXT",
            (ColumnType::Json, Dialect::Postgres) => "JSONB",
            (ColumnType::Json, Dialect::Sqlite) => "TEXT",
            (ColumnType::Date, _) => "DATE",
            (ColumnType::Timestamp, _) => "TIMESTAMP",
        }
    }

    fn of(value: &Value) -> Option<ColumnType> {
        match value {
            Value::Null => None,
            Value::Bool(_) => Some(ColumnType::Bool),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(ColumnType::Integer),
            Value::Number(_) => Some(ColumnType::Float),
            Value::String(_) => Some(ColumnType::Text),
            Value::Array(_) | Value::Object(_) => Some(ColumnType::Json),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ColumnType::Integer => "integers",
            ColumnType::Float => "numbers",
            ColumnType::Bool => "booleans",
            ColumnType::Text => "text",
            ColumnType::Json => "lists or maps",
            ColumnType::Date => "dates",
            ColumnType::Timestamp => "timestamps",
        }
    }
}

/// The columns of `rows` (objects) in first-seen order with the type their
/// values share; `known` gives types already fixed (from an Arrow schema).
/// A column whose values mix kinds (text and numbers, say) is an error
/// naming the column and both rows; integers and floats make a float
/// column; a column of nulls only is text.
pub(crate) fn infer_columns(
    rows: &[serde_json::Map<String, Value>],
    known: &[(String, Option<ColumnType>)],
) -> Result<Vec<(String, ColumnType)>, String> {
    let mut columns: Vec<(String, Option<(ColumnType, usize)>)> = known
        .iter()
        .map(|(n, t)| (n.clone(), t.map(|t| (t, 0))))
        .collect();
    let fixed: Vec<String> = known
        .iter()
        .filter(|(_, t)| t.is_some())
        .map(|(n, _)| n.clone())
        .collect();
    for (r, row) in rows.iter().enumerate() {
        for (name, value) in row {
            let idx = match columns.iter().position(|(n, _)| n == name) {
                Some(i) => i,
                None => {
                    columns.push((name.clone(), None));
                    columns.len() - 1
                }
            };
            if fixed.contains(name) {
                continue;
            }
            let Some(kind) = ColumnType::of(value) else {
                continue;
            };
            let slot = &mut columns[idx].1;
            *slot = match *slot {
                None => Some((kind, r)),
                Some((seen, at)) if seen == kind => Some((seen, at)),
                Some((ColumnType::Integer, at)) if kind == ColumnType::Float => Some((ColumnType::Float, at)),
                Some((ColumnType::Float, at)) if kind == ColumnType::Integer => Some((ColumnType::Float, at)),
                Some((seen, at)) => {
                    return Err(format!(
                        "column `{name}` holds {} (row {}) and {} (row {}); a SQL column has one type",
                        seen.describe(),
                        at + 1,
                        kind.describe(),
                        r + 1
                    ));
                }
            };
        }
    }
    Ok(columns
        .into_iter()
        .map(|(n, t)| (n, t.map_or(ColumnType::Text, |(t, _)| t)))
        .collect())
}

/// `CREATE TABLE` for these columns.
pub(crate) fn create_table(table: &str, columns: &[(String, ColumnType)], dialect: Dialect) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|(n, t)| format!("{} {}", quote_ident(n), t.sql(dialect)))
        .collect();
    format!("CREATE TABLE {table} ({})", cols.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> serde_json::Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn identifiers_are_quoted_and_inner_quotes_doubled() {
        assert_eq!(quote_ident("shuttles"), "\"shuttles\"");
        assert_eq!(quote_ident("we\"ird; DROP"), "\"we\"\"ird; DROP\"");
        assert_eq!(qualified(Some("s"), "t"), "\"s\".\"t\"");
    }

    #[test]
    fn named_parameters_become_positional_outside_literals_comments_and_casts() {
        let params = map(json!({"min": 3, "kind": "x"}));
        let sql = "SELECT ':min', \"a:b\", x::text -- :kind here\n FROM t /* :min */ WHERE a >= :min AND k = :kind OR b = :min";
        let (pg, values) = bind_named(sql, &params, Dialect::Postgres).unwrap();
        assert_eq!(
            pg,
            "SELECT ':min', \"a:b\", x::text -- :kind here\n FROM t /* :min */ WHERE a >= $1 AND k = $2 OR b = $1"
        );
        assert_eq!(values, vec![json!(3), json!("x")]);
        let (lite, _) = bind_named(
            "SELECT * FROM t WHERE a = :kind AND b = :min",
            &params,
            Dialect::Sqlite,
        )
        .unwrap();
        assert_eq!(lite, "SELECT * FROM t WHERE a = ?1 AND b = ?2");
        let (dollar, v) = bind_named(
            "SELECT $q$ :min $q$, :min::int",
            &params_of("min"),
            Dialect::Postgres,
        )
        .unwrap();
        assert_eq!(dollar, "SELECT $q$ :min $q$, $1::int");
        assert_eq!(v, vec![json!(1)]);
    }

    fn params_of(name: &str) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert(name.to_string(), json!(1));
        m
    }

    #[test]
    fn missing_and_unused_parameters_are_named() {
        let e = bind_named("SELECT :a, :b", &params_of("a"), Dialect::Sqlite).unwrap_err();
        assert!(e.contains(":b") && e.contains("`a`"), "{e}");
        let e = bind_named("SELECT :a", &map(json!({"a": 1, "extra": 2})), Dialect::Sqlite).unwrap_err();
        assert!(e.contains("`extra`"), "{e}");
    }

    #[test]
    fn column_types_are_inferred_and_mixed_kinds_refused() {
        let rows = vec![
            map(json!({"id": 1, "score": 1, "name": "a", "tags": null})),
            map(json!({"id": 2, "score": 2.5, "name": "b", "ok": true})),
        ];
        assert_eq!(
            infer_columns(&rows, &[]).unwrap(),
            vec![
                ("id".into(), ColumnType::Integer),
                ("score".into(), ColumnType::Float),
                ("name".into(), ColumnType::Text),
                ("tags".into(), ColumnType::Text),
                ("ok".into(), ColumnType::Bool),
            ]
        );
        let bad = vec![map(json!({"id": 1})), map(json!({"id": "two"}))];
        let e = infer_columns(&bad, &[]).unwrap_err();
        assert!(
            e.contains("`id`") && e.contains("row 1") && e.contains("row 2"),
            "{e}"
        );
        assert_eq!(trim_statement("SELECT 1 ;\n "), "SELECT 1");
    }
}
