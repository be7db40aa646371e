//! What runs on the database: queries as JSON rows, table existence, and
//! a table save in one transaction.

use serde_json::{Map, Value};
use sqlx::postgres::{PgArguments, PgConnection, Postgres};
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{AssertSqlSafe, Column, Connection, Row, TypeInfo, ValueRef};

use crate::con::Conn;
use crate::text::{ColumnType, Dialect, create_table, quote_ident};

/// Rows per `INSERT` on PostgreSQL (sent as one JSON parameter).
const PG_ROWS_PER_INSERT: usize = 5_000;
/// Bound values per `INSERT` on SQLite (its limit is 32,766).
const SQLITE_VALUES_PER_INSERT: usize = 30_000;

/// A database's own error, or a refusal of weft's.
#[derive(Debug)]
pub(crate) enum ExecError {
    /// The database refused or failed (its message).
    Database(String),
    /// The table exists and `if_exists` is `fail`.
    Exists,
}

impl ExecError {
    /// The message of a load or existence check (which never refuse).
    pub(crate) fn into_message(self) -> String {
        match self {
            ExecError::Database(m) => m,
            ExecError::Exists => "the table already exists".into(),
        }
    }
}

impl From<sqlx::Error> for ExecError {
    fn from(e: sqlx::Error) -> Self {
        ExecError::Database(db_message(&e))
    }
}

/// The database's message for `e` (without sqlx's prefix for server errors).
pub(crate) fn db_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => match d.code() {
            Some(code) => format!("{} (code {code})", d.message()),
            None => d.message().to_string(),
        },
        other => other.to_string(),
    }
}

/// What `if_exists` says to do with a table that is already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IfExists {
    Fail,
    Replace,
    Append,
}

impl IfExists {
    pub(crate) fn parse(v: Option<&Value>) -> Result<Self, String> {
        match v {
            None | Some(Value::Null) => Ok(IfExists::Fail),
            Some(Value::String(s)) if s == "fail" => Ok(IfExists::Fail),
            Some(Value::String(s)) if s == "replace" => Ok(IfExists::Replace),
            Some(Value::String(s)) if s == "append" => Ok(IfExists::Append),
            Some(other) => Err(format!(
                "if_exists: expected `fail`, `replace` or `append`, got {other}"
            )),
        }
    }
}

/// One table save: where, how, and what.
pub(crate) struct Save<'a> {
    /// The quoted, schema-qualified table name.
    pub table: &'a str,
    /// The schema, if the table is qualified.
    pub schema: Option<&'a str>,
    /// The table's plain name (for the existence check).
    pub name: &'a str,
    pub if_exists: IfExists,
    pub columns: &'a [(String, ColumnType)],
    pub rows: &'a [Map<String, Value>],
}

impl Conn {
    /// Runs a query; each result row as a JSON object keyed by column.
    /// On PostgreSQL the query is wrapped (`SELECT row_to_json(q) FROM
    /// (<sql>) q`), so the server renders every type (dates, numerics,
    /// JSON) as JSON.
    pub(crate) async fn rows(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Value>, ExecError> {
        match self {
            Conn::Postgres(c) => {
                let wrapped = format!("SELECT row_to_json(q)::text FROM (\n{sql}\n) AS q");
                let mut q = sqlx::query(AssertSqlSafe(wrapped));
                for p in params {
                    q = bind_pg(q, p);
                }
                let rows = q.fetch_all(&mut *c).await?;
                rows.iter()
                    .map(|r| {
                        let text: String = r.try_get(0)?;
                        serde_json::from_str(&text)
                            .map_err(|e| ExecError::Database(format!("a row's JSON did not parse: {e}")))
                    })
                    .collect()
            }
            Conn::Sqlite(c) => {
                let mut q = sqlx::query(AssertSqlSafe(sql.to_string()));
                for p in params {
                    q = bind_sqlite(q, p);
                }
                let rows = q.fetch_all(&mut *c).await?;
                rows.iter().map(sqlite_row).collect()
            }
        }
    }

    /// Whether the table (or view) exists.
    pub(crate) async fn table_exists(&mut self, schema: Option<&str>, name: &str) -> Result<bool, ExecError> {
        match self {
            Conn::Postgres(c) => pg_exists(c, &crate::text::qualified(schema, name)).await,
            Conn::Sqlite(c) => sqlite_exists(c, schema, name).await,
        }
    }

    /// Saves rows into a table in one transaction: nothing changes unless
    /// every step succeeds.
    pub(crate) async fn save(&mut self, save: &Save<'_>) -> Result<(), ExecError> {
        match self {
            Conn::Postgres(c) => {
                let mut tx = c.begin().await?;
                // Saves of one table take turns (until commit or rollback),
                // so two cannot both find it missing and both create it.
                sqlx::query("SELECT pg_advisory_xact_lock(7271831, hashtext($1))")
                    .bind(save.table.to_string())
                    .execute(&mut *tx)
                    .await?;
                let exists = pg_exists(&mut tx, save.table).await?;
                for statement in table_statements(save, exists, Dialect::Postgres)? {
                    sqlx::query(AssertSqlSafe(statement)).execute(&mut *tx).await?;
                }
                if !save.columns.is_empty() {
                    let cols: Vec<String> = save.columns.iter().map(|(n, _)| quote_ident(n)).collect();
                    let cols = cols.join(", ");
                    let insert = format!(
                        "INSERT INTO {t} ({cols}) SELECT {cols} FROM json_populate_recordset(NULL::{t}, $1::json)",
                        t = save.table
                    );
                    for chunk in save.rows.chunks(PG_ROWS_PER_INSERT) {
                        let json = serde_json::to_string(chunk)
                            .map_err(|e| ExecError::Database(format!("rows did not encode as JSON: {e}")))?;
                        sqlx::query(AssertSqlSafe(insert.clone()))
                            .bind(json)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }
            Conn::Sqlite(c) => {
                // IMMEDIATE: take the write lock before looking, so two
                // saves cannot both find the table missing.
                let mut tx = c.begin_with("BEGIN IMMEDIATE").await?;
                let exists = sqlite_exists(&mut tx, save.schema, save.name).await?;
                for statement in table_statements(save, exists, Dialect::Sqlite)? {
                    sqlx::query(AssertSqlSafe(statement)).execute(&mut *tx).await?;
                }
                if !save.columns.is_empty() {
                    let cols: Vec<String> = save.columns.iter().map(|(n, _)| quote_ident(n)).collect();
                    let one = format!("({})", vec!["?"; cols.len()].join(", "));
                    let per_insert = (SQLITE_VALUES_PER_INSERT / cols.len()).max(1);
                    for chunk in save.rows.chunks(per_insert) {
                        let insert = format!(
                            "INSERT INTO {} ({}) VALUES {}",
                            save.table,
                            cols.join(", "),
                            vec![one.as_str(); chunk.len()].join(", ")
                        );
                        let mut q = sqlx::query(AssertSqlSafe(insert));
                        for row in chunk {
                            for (name, _) in save.columns {
                                q = bind_sqlite(q, row.get(name).unwrap_or(&Value::Null));
                            }
                        }
                        q.execute(&mut *tx).await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }
        }
    }
}

/// The statements `if_exists` asks for: none (append), drop and create
/// (replace), create (missing); an existing table with `fail` is refused.
fn table_statements(save: &Save<'_>, exists: bool, dialect: Dialect) -> Result<Vec<String>, ExecError> {
    match (exists, save.if_exists) {
        (true, IfExists::Fail) => Err(ExecError::Exists),
        (true, IfExists::Append) => Ok(Vec::new()),
        (true, IfExists::Replace) | (false, _) => {
            if save.columns.is_empty() {
                return Err(ExecError::Database(
                    "the data has no columns, so there is no table to create".into(),
                ));
            }
            let mut statements = Vec::new();
            if exists {
                statements.push(format!("DROP TABLE {}", save.table));
            }
            statements.push(create_table(save.table, save.columns, dialect));
            Ok(statements)
        }
    }
}

async fn pg_exists(c: &mut PgConnection, qualified: &str) -> Result<bool, ExecError> {
    let row = sqlx::query("SELECT to_regclass($1) IS NOT NULL")
        .bind(qualified.to_string())
        .fetch_one(&mut *c)
        .await?;
    Ok(row.try_get::<bool, _>(0)?)
}

async fn sqlite_exists(
    c: &mut SqliteConnection,
    schema: Option<&str>,
    name: &str,
) -> Result<bool, ExecError> {
    let master = format!("{}.sqlite_master", quote_ident(schema.unwrap_or("main")));
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT count(*) FROM {master} WHERE type IN ('table', 'view') AND name = ?1"
    )))
    .bind(name.to_string())
    .fetch_one(&mut *c)
    .await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}

fn bind_pg<'q>(q: Query<'q, Postgres, PgArguments>, v: &Value) -> Query<'q, Postgres, PgArguments> {
    match v {
        Value::Null => q.bind(None::<String>),
        Value::Bool(b) => q.bind(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => q.bind(i),
            None => q.bind(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => q.bind(s.clone()),
        nested => q.bind(sqlx::types::Json(nested.clone())),
    }
}

fn bind_sqlite<'q>(q: Query<'q, Sqlite, SqliteArguments>, v: &Value) -> Query<'q, Sqlite, SqliteArguments> {
    match v {
        Value::Null => q.bind(None::<String>),
        Value::Bool(b) => q.bind(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => q.bind(i),
            None => q.bind(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => q.bind(s.clone()),
        nested => q.bind(nested.to_string()),
    }
}

/// A SQLite row as a JSON object: integers, reals, text, `null`; an
/// integer in a column declared `BOOLEAN` is a boolean; a BLOB is a list
/// of byte values.
fn sqlite_row(row: &SqliteRow) -> Result<Value, ExecError> {
    let mut object = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i)?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            let storage = raw.type_info().name().to_string();
            match storage.as_str() {
                "INTEGER" if column.type_info().name() == "BOOLEAN" => {
                    Value::Bool(row.try_get::<i64, _>(i)? != 0)
                }
                "INTEGER" => Value::from(row.try_get::<i64, _>(i)?),
                "REAL" => {
                    let f: f64 = row.try_get(i)?;
                    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
                }
                "TEXT" => Value::String(row.try_get(i)?),
                _ => Value::from(row.try_get::<Vec<u8>, _>(i)?),
            }
        };
        object.insert(column.name().to_string(), value);
    }
    Ok(Value::Object(object))
}
