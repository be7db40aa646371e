//! SQL datasets for weft's catalog, on PostgreSQL and SQLite (through
//! [sqlx]): `pandas.SQLTableDataset` (and `sql.SQLTableDataset`) loads and
//! saves one table; `pandas.SQLQueryDataset` (and `sql.SQLQueryDataset`)
//! loads the rows of a query.
//!
//! Kedro's argument names:
//!
//! - `credentials`: an entry of `credentials.yml` with `con`, the database
//!   URL: `postgresql://user:password@host:5432/db` (`postgres://` and
//!   SQLAlchemy's `postgresql+psycopg2://` too) or `sqlite:///data/db.sqlite`
//!   (SQLAlchemy's form: three slashes and a path relative to the project,
//!   four for an absolute path). Other keys are refused; in-memory SQLite
//!   is refused (each load and save opens its own connection).
//! - Table: `table_name`; `load_args.schema` / `save_args.schema` (the
//!   PostgreSQL schema or attached SQLite database; both must agree when
//!   both are given); `load_args.columns` (a list: only these columns);
//!   `save_args.if_exists`: `fail` (the default, as in Kedro), `replace` or
//!   `append`; `save_args.index` may only be `false` (rows have no index).
//! - Query: `sql` (inline; `${...}` in it is resolved by weft's config
//!   loader like any catalog value) or `filepath` to a `.sql` file
//!   (relative to the project, read at each load); `load_args.params`
//!   binds values: a map binds `:name` placeholders (SQLAlchemy's style,
//!   rewritten to the driver's positional ones outside literals, comments
//!   and `::` casts; every name must be given and every key used); a list
//!   binds the driver's own positional placeholders in order (`$1, $2` on
//!   PostgreSQL, `?` or `?1` on SQLite). Integers bind as `BIGINT`, other
//!   numbers as `DOUBLE PRECISION`, text as `TEXT`, lists and maps as
//!   `JSONB` (SQLite: JSON text); cast in the SQL for other types
//!   (`:day::date`). A query is a `SELECT` (or `WITH`, `VALUES`, `TABLE`):
//!   on PostgreSQL it runs as a subquery. Saving to a query is an error.
//!
//! Loads give rows (JSON objects keyed by column, in the query's column
//! order), any serde-backed type the node asks for, or an Arrow
//! `RecordBatch`. PostgreSQL renders every column type as JSON
//! (`row_to_json`: dates and timestamps as ISO text, `NUMERIC` as numbers,
//! `JSON`/`JSONB` as nested values); SQLite gives integers, reals, text,
//! `null`, booleans for columns declared `BOOLEAN`, and BLOBs as lists of
//! bytes.
//!
//! A table save runs in one transaction: the existence check, `DROP` (for
//! `replace`), `CREATE TABLE` (when missing, from the data's columns and
//! types: `BIGINT`/`INTEGER`, `DOUBLE PRECISION`/`REAL`, `BOOLEAN`,
//! `TEXT`, `JSONB`, and `DATE`/`TIMESTAMP` from Arrow columns) and the
//! inserts; so a save that fails anywhere (a value the column refuses, a
//! constraint, `fail` with an existing table) leaves the table as it was.
//! Concurrent saves of one table take turns (a transaction-scoped advisory
//! lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), so two saves never
//! both create it. Identifiers are always quoted. A column whose values mix kinds (text
//! and numbers) is refused before anything is written.
//!
//! sqlx is async and [`Dataset`] is not: every call runs on a private
//! current-thread runtime in a scoped thread (joined before the call
//! returns), so loads and saves work from any thread, including a Tokio
//! runtime's (`weft serve`, the async runner).
//!
//! A table is shared by every run that writes it, so it has no
//! [`Dataset::path`]: the session refuses it as an output of runs that can
//! overlap. Errors name the dataset, the table or query file, the database
//! URL with its password replaced by `***`, and the database's message.

mod con;
mod exec;
mod text;

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use serde_json::{Map, Value};
use weft_catalog::{CatalogError, Dataset, DatasetInfo, DatasetSpec, DatasetTypeRegistry, LoadType};
use weft_pipeline::{Data, DataType};

use crate::con::{Database, kind, run_blocking};
use crate::exec::{ExecError, IfExists, Save};
use crate::text::{ColumnType, bind_named, infer_columns, qualified, quote_ident, trim_statement};

/// The table type names this crate registers.
pub const TABLE_TYPE_NAMES: &[&str] = &["pandas.SQLTableDataset", "sql.SQLTableDataset"];

/// The query type names this crate registers.
pub const QUERY_TYPE_NAMES: &[&str] = &["pandas.SQLQueryDataset", "sql.SQLQueryDataset"];

/// Registers the SQL dataset types in `registry` (a name registered twice
/// is an error).
pub fn register(registry: &mut DatasetTypeRegistry) -> Result<(), CatalogError> {
    for name in TABLE_TYPE_NAMES {
        registry.register(name, Arc::new(table_factory))?;
    }
    for name in QUERY_TYPE_NAMES {
        registry.register(name, Arc::new(query_factory))?;
    }
    Ok(())
}

fn not_versioned(spec: &DatasetSpec<'_>) -> Result<(), String> {
    if spec.versioned()? {
        return Err(format!(
            "`versioned`: a database table cannot be versioned (type `{}`); save to a versioned file dataset to keep versions",
            spec.type_name
        ));
    }
    Ok(())
}

fn check_keys(args: &Value, field: &str, allowed: &[&str]) -> Result<(), String> {
    if let Value::Object(map) = args
        && let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str()))
    {
        return Err(format!(
            "{field}: unknown key `{k}` (supported: {})",
            allowed.join(", ")
        ));
    }
    Ok(())
}

fn optional_name(args: &Value, field: &str, key: &str) -> Result<Option<String>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(other) => Err(format!("{field}.{key}: expected a name, got {other}")),
    }
}

fn table_factory(spec: &DatasetSpec<'_>) -> Result<Arc<dyn Dataset>, String> {
    not_versioned(spec)?;
    for key in ["sql", "filepath"] {
        if spec.config.contains_key(key) {
            return Err(format!(
                "`{key}` is for pandas.SQLQueryDataset; a `{}` has `table_name`",
                spec.type_name
            ));
        }
    }
    let table = match spec.config.get("table_name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(other) => return Err(format!("`table_name`: expected the table's name, got {other}")),
        None => return Err(format!("`table_name` is required for type `{}`", spec.type_name)),
    };
    let load_args = spec.args("load_args")?;
    let save_args = spec.args("save_args")?;
    check_keys(&load_args, "load_args", &["schema", "columns"])?;
    check_keys(&save_args, "save_args", &["schema", "if_exists", "index"])?;
    let load_schema = optional_name(&load_args, "load_args", "schema")?;
    let save_schema = optional_name(&save_args, "save_args", "schema")?;
    let schema = match (load_schema, save_schema) {
        (Some(l), Some(s)) if l != s => {
            return Err(format!(
                "load_args.schema `{l}` and save_args.schema `{s}` differ: one dataset is one table"
            ));
        }
        (l, s) => l.or(s),
    };
    let columns = match load_args.get("columns") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) if !items.is_empty() => Some(
            items
                .iter()
                .map(|c| match c {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(format!("load_args.columns: expected column names, got {other}")),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(other) => {
            return Err(format!(
                "load_args.columns: expected a list of column names, got {other}"
            ));
        }
    };
    let if_exists = IfExists::parse(save_args.get("if_exists")).map_err(|e| format!("save_args.{e}"))?;
    match save_args.get("index") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(other) => {
            return Err(format!(
                "save_args.index: only `false` is supported (rows have no index to write), got {other}"
            ));
        }
    }
    let db = Database::from_credentials(spec.credentials, spec.project_dir)?;
    Ok(Arc::new(SqlTableDataset {
        name: spec.name.to_string(),
        type_name: spec.type_name.to_string(),
        db,
        table,
        schema,
        columns,
        if_exists,
    }))
}

fn query_factory(spec: &DatasetSpec<'_>) -> Result<Arc<dyn Dataset>, String> {
    not_versioned(spec)?;
    if spec.config.contains_key("table_name") {
        return Err(format!(
            "`table_name` is for pandas.SQLTableDataset; a `{}` has `sql` or `filepath`",
            spec.type_name
        ));
    }
    if spec.config.contains_key("save_args") {
        return Err(format!("`save_args`: a `{}` is load-only", spec.type_name));
    }
    let source = match (spec.config.get("sql"), spec.config.get("filepath")) {
        (Some(_), Some(_)) => {
            return Err("give either `sql` (the query) or `filepath` (a .sql file), not both".into());
        }
        (Some(Value::String(sql)), None) if !sql.trim().is_empty() => QuerySource::Inline(sql.clone()),
        (Some(other), None) => return Err(format!("`sql`: expected the query as text, got {other}")),
        (None, Some(Value::String(raw))) if !raw.is_empty() => {
            let raw_path = raw.strip_prefix("file://").unwrap_or(raw);
            if raw_path.contains("://") {
                return Err(format!(
                    "`filepath`: only local .sql files are supported, got `{raw}`"
                ));
            }
            let p = std::path::Path::new(raw_path);
            let path = if p.is_absolute() {
                p.to_path_buf()
            } else {
                spec.project_dir.join(p)
            };
            QuerySource::File {
                shown: raw.clone(),
                path,
            }
        }
        (None, Some(other)) => {
            return Err(format!("`filepath`: expected a path to a .sql file, got {other}"));
        }
        (None, None) => {
            return Err(format!(
                "`sql` (the query) or `filepath` (a .sql file) is required for type `{}`",
                spec.type_name
            ));
        }
    };
    let load_args = spec.args("load_args")?;
    check_keys(&load_args, "load_args", &["params"])?;
    let params = match load_args.get("params") {
        None | Some(Value::Null) => Params::None,
        Some(Value::Object(m)) => Params::Named(m.clone()),
        Some(Value::Array(items)) => Params::Positional(items.clone()),
        Some(other) => {
            return Err(format!(
                "load_args.params: expected a map (for `:name` placeholders) or a list (for positional ones), got {}",
                kind(other)
            ));
        }
    };
    let db = Database::from_credentials(spec.credentials, spec.project_dir)?;
    Ok(Arc::new(SqlQueryDataset {
        name: spec.name.to_string(),
        type_name: spec.type_name.to_string(),
        db,
        source,
        params,
    }))
}

/// Rows of a load as the node asks for them: a `RecordBatch`, a
/// serde-backed type, or JSON rows.
fn to_request(rows: Vec<Value>, request: Option<&DataType>) -> Result<Data, String> {
    match request {
        Some(ty) if *ty == DataType::of::<RecordBatch>() => weft_catalog::rows_to_batch(&rows).map(Data::new),
        Some(ty) if ty.is_decodable() => ty.decode_json(&Value::Array(rows)).map_err(|e| e.to_string()),
        _ => Ok(Data::new(Value::Array(rows))),
    }
}

/// One database table (`pandas.SQLTableDataset`).
pub struct SqlTableDataset {
    name: String,
    type_name: String,
    db: Database,
    table: String,
    schema: Option<String>,
    columns: Option<Vec<String>>,
    if_exists: IfExists,
}

impl SqlTableDataset {
    fn shown_table(&self) -> String {
        match &self.schema {
            Some(s) => format!("`{s}.{}`", self.table),
            None => format!("`{}`", self.table),
        }
    }

    fn message(&self, what: impl std::fmt::Display) -> String {
        self.db.scrub(&format!(
            "table {} on {}: {what}",
            self.shown_table(),
            self.db.shown()
        ))
    }

    fn load_err(&self, what: impl std::fmt::Display) -> CatalogError {
        CatalogError::Load {
            dataset: self.name.clone(),
            path: None,
            message: self.message(what),
        }
    }

    fn save_err(&self, what: impl std::fmt::Display) -> CatalogError {
        CatalogError::Save {
            dataset: self.name.clone(),
            path: None,
            message: self.message(what),
        }
    }

    /// Rows (objects) and the columns whose types the data fixes (an
    /// Arrow schema's).
    fn rows_of(&self, data: &Data) -> Result<(Vec<Map<String, Value>>, KnownColumns), String> {
        let (json, known) = if let Some(batch) = data.downcast_ref::<RecordBatch>() {
            let bytes = weft_catalog::batch_to_json(batch)?;
            let json: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            let known = batch
                .schema()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), arrow_column_type(f.data_type())))
                .collect();
            (json, known)
        } else {
            let json = data.to_json().map_err(|_| {
                format!(
                    "values of type `{}` cannot be written to a table; save rows (a list of objects keyed by column) or a RecordBatch",
                    data.type_name()
                )
            })?;
            (json, Vec::new())
        };
        let Value::Array(items) = json else {
            return Err(format!(
                "a table needs rows (a list of objects keyed by column), got {}",
                kind(&json)
            ));
        };
        let rows = items
            .into_iter()
            .enumerate()
            .map(|(i, row)| match row {
                Value::Object(m) => Ok(m),
                other => Err(format!(
                    "row {}: expected an object keyed by column, got {}",
                    i + 1,
                    kind(&other)
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rows, known))
    }

    fn select(&self) -> String {
        let cols = match &self.columns {
            Some(cols) => cols.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", "),
            None => "*".to_string(),
        };
        format!(
            "SELECT {cols} FROM {}",
            qualified(self.schema.as_deref(), &self.table)
        )
    }
}

/// Columns whose type the data fixes (an Arrow schema's), in order.
type KnownColumns = Vec<(String, Option<ColumnType>)>;

/// The column type an Arrow type gives a new table, when it fixes one.
fn arrow_column_type(t: &arrow_schema::DataType) -> Option<ColumnType> {
    use arrow_schema::DataType as A;
    Some(match t {
        A::Boolean => ColumnType::Bool,
        A::Int8 | A::Int16 | A::Int32 | A::Int64 | A::UInt8 | A::UInt16 | A::UInt32 | A::UInt64 => {
            ColumnType::Integer
        }
        A::Float16 | A::Float32 | A::Float64 | A::Decimal128(..) | A::Decimal256(..) => ColumnType::Float,
        A::Utf8 | A::LargeUtf8 | A::Utf8View => ColumnType::Text,
        A::Date32 | A::Date64 => ColumnType::Date,
        A::Timestamp(..) => ColumnType::Timestamp,
        A::List(_) | A::LargeList(_) | A::Struct(_) | A::Map(..) => ColumnType::Json,
        _ => return None,
    })
}

impl Dataset for SqlTableDataset {
    fn load(&self, request: Option<&DataType>) -> Result<Data, CatalogError> {
        let sql = self.select();
        let rows = run_blocking(async {
            let mut conn = self.db.connect(false).await?;
            let rows = conn.rows(&sql, &[]).await;
            conn.close().await;
            rows.map_err(ExecError::into_message)
        })
        .map_err(|e| self.load_err(e))?;
        to_request(rows, request).map_err(|e| self.load_err(e))
    }

    fn save(&self, data: &Data) -> Result<(), CatalogError> {
        let (rows, known) = self.rows_of(data).map_err(|e| self.save_err(e))?;
        let columns = infer_columns(&rows, &known).map_err(|e| self.save_err(e))?;
        let table = qualified(self.schema.as_deref(), &self.table);
        let save = Save {
            table: &table,
            schema: self.schema.as_deref(),
            name: &self.table,
            if_exists: self.if_exists,
            columns: &columns,
            rows: &rows,
        };
        run_blocking(async {
            let mut conn = self.db.connect(true).await?;
            let saved = conn.save(&save).await;
            conn.close().await;
            saved.map_err(|e| match e {
                ExecError::Database(m) => {
                    format!("{m}; nothing was written (the save was rolled back)")
                }
                ExecError::Exists => {
                    "the table already exists and save_args.if_exists is `fail` (Kedro's default); \
                                      set it to `replace` or `append`"
                        .into()
                }
            })
        })
        .map_err(|e| self.save_err(e))
    }

    fn exists(&self) -> Result<bool, CatalogError> {
        if self.db.sqlite_file_missing() {
            return Ok(false);
        }
        run_blocking(async {
            let mut conn = self.db.connect(false).await?;
            let found = conn.table_exists(self.schema.as_deref(), &self.table).await;
            conn.close().await;
            found.map_err(ExecError::into_message)
        })
        .map_err(|e| self.load_err(e))
    }

    fn describe(&self) -> DatasetInfo {
        DatasetInfo {
            name: self.name.clone(),
            type_name: self.type_name.clone(),
            // A table is not a file: no path (so overlapping runs refuse
            // it as an output, see the crate docs).
            filepath: None,
            versioned: false,
            pattern: None,
        }
    }

    fn load_type(&self) -> LoadType {
        LoadType::Table
    }
}

impl std::fmt::Debug for SqlTableDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlTableDataset")
            .field("name", &self.name)
            .field("database", &self.db.shown())
            .field("table", &self.table)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Where a query's SQL comes from.
#[derive(Clone, Debug)]
enum QuerySource {
    Inline(String),
    File { shown: String, path: PathBuf },
}

/// `load_args.params`.
#[derive(Clone, Debug)]
enum Params {
    None,
    Named(Map<String, Value>),
    Positional(Vec<Value>),
}

/// The rows of one query (`pandas.SQLQueryDataset`); load-only.
pub struct SqlQueryDataset {
    name: String,
    type_name: String,
    db: Database,
    source: QuerySource,
    params: Params,
}

impl SqlQueryDataset {
    fn load_err(&self, what: impl std::fmt::Display) -> CatalogError {
        let (path, query) = match &self.source {
            QuerySource::Inline(_) => (None, "the query (`sql`)".to_string()),
            QuerySource::File { shown, path } => (Some(path.clone()), format!("the query in `{shown}`")),
        };
        CatalogError::Load {
            dataset: self.name.clone(),
            path,
            message: self.db.scrub(&format!("{query} on {}: {what}", self.db.shown())),
        }
    }

    fn sql(&self) -> Result<String, String> {
        match &self.source {
            QuerySource::Inline(sql) => Ok(sql.clone()),
            QuerySource::File { path, .. } => {
                std::fs::read_to_string(path).map_err(|e| format!("could not read {}: {e}", path.display()))
            }
        }
    }
}

impl Dataset for SqlQueryDataset {
    fn load(&self, request: Option<&DataType>) -> Result<Data, CatalogError> {
        let sql = self.sql().map_err(|e| self.load_err(e))?;
        let sql = trim_statement(&sql);
        let dialect = self.db.dialect();
        let (sql, values) = match &self.params {
            Params::None => (sql.to_string(), Vec::new()),
            Params::Positional(v) => (sql.to_string(), v.clone()),
            Params::Named(m) => bind_named(sql, m, dialect).map_err(|e| self.load_err(e))?,
        };
        let rows = run_blocking(async {
            let mut conn = self.db.connect(false).await?;
            let rows = conn.rows(&sql, &values).await;
            conn.close().await;
            rows.map_err(ExecError::into_message)
        })
        .map_err(|e| self.load_err(e))?;
        to_request(rows, request).map_err(|e| self.load_err(e))
    }

    fn save(&self, _data: &Data) -> Result<(), CatalogError> {
        Err(CatalogError::Save {
            dataset: self.name.clone(),
            path: None,
            message: format!(
                "a `{}` is load-only: a query's rows cannot be saved; save to a pandas.SQLTableDataset instead",
                self.type_name
            ),
        })
    }

    fn exists(&self) -> Result<bool, CatalogError> {
        Ok(match &self.source {
            QuerySource::Inline(_) => true,
            QuerySource::File { path, .. } => path.is_file(),
        })
    }

    fn describe(&self) -> DatasetInfo {
        DatasetInfo {
            name: self.name.clone(),
            type_name: self.type_name.clone(),
            filepath: match &self.source {
                QuerySource::Inline(_) => None,
                QuerySource::File { shown, .. } => Some(shown.clone()),
            },
            versioned: false,
            pattern: None,
        }
    }

    fn load_type(&self) -> LoadType {
        LoadType::Table
    }
}

impl std::fmt::Debug for SqlQueryDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlQueryDataset")
            .field("name", &self.name)
            .field("database", &self.db.shown())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}
