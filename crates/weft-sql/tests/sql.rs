//! SQL datasets on real databases: SQLite files always, and the real
//! PostgreSQL that `scripts/with-postgres.sh` starts. PostgreSQL tests
//! fail, never skip, when `WEFT_TEST_POSTGRES_URL` is unset (as the
//! store's do): run them with
//! `scripts/with-postgres.sh cargo nextest run --workspace -E 'binary(sql)'`.
//! Each PostgreSQL test works in its own schema, so tests run in parallel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, Date32Array, Int64Array, RecordBatch, StringArray};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Row};
use weft_catalog::{BuildOptions, Catalog, CatalogConfig, CatalogError, DatasetTypeRegistry};
use weft_pipeline::{Data, DataType, FunctionRegistry};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, empty database: a SQLite file in a temp project, or a new
/// PostgreSQL schema (the URL selects it through `search_path`).
struct Db {
    kind: Kind,
    /// The `con` a catalog entry uses.
    con: String,
    /// The URL the test itself connects with (sqlx's form).
    raw_url: String,
    /// The project folder (relative SQLite paths resolve here).
    root: PathBuf,
    _dir: tempfile::TempDir,
}

fn pg_base_url() -> String {
    std::env::var("WEFT_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "WEFT_TEST_POSTGRES_URL is not set: PostgreSQL tests need a real server; run them \
             through scripts/with-postgres.sh, e.g. `scripts/with-postgres.sh cargo nextest run --workspace -E 'binary(sql)'`"
        )
    })
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn db(kind: Kind) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    match kind {
        Kind::Sqlite => {
            let file = root.join("data").join("shop.db");
            Db {
                kind,
                con: "sqlite:///data/shop.db".into(),
                raw_url: format!("sqlite://{}?mode=rwc", file.display()),
                root,
                _dir: dir,
            }
        }
        Kind::Postgres => {
            let base = pg_base_url();
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            block(async {
                let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
                sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut c)
                    .await
                    .unwrap();
                c.close().await.unwrap();
            });
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
            Db {
                kind,
                con: url.clone(),
                raw_url: url,
                root,
                _dir: dir,
            }
        }
    }
}

impl Db {
    /// Runs raw SQL statements, bypassing the datasets.
    fn exec(&self, statements: &[&str]) {
        let statements: Vec<String> = statements.iter().map(|s| s.to_string()).collect();
        block(async {
            match self.kind {
                Kind::Sqlite => {
                    std::fs::create_dir_all(self.root.join("data")).unwrap();
                    let mut c = sqlx::SqliteConnection::connect(&self.raw_url).await.unwrap();
                    for s in statements {
                        sqlx::query(AssertSqlSafe(s)).execute(&mut c).await.unwrap();
                    }
                    c.close().await.unwrap();
                }
                Kind::Postgres => {
                    let mut c = sqlx::PgConnection::connect(&self.raw_url).await.unwrap();
                    for s in statements {
                        sqlx::query(AssertSqlSafe(s)).execute(&mut c).await.unwrap();
                    }
                    c.close().await.unwrap();
                }
            }
        })
    }

    /// One text column of a query, every row (NULL as "NULL"), read raw.
    fn texts(&self, sql: &str) -> Vec<String> {
        let sql = sql.to_string();
        block(async {
            match self.kind {
                Kind::Sqlite => {
                    let mut c = sqlx::SqliteConnection::connect(&self.raw_url).await.unwrap();
                    let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(&mut c).await.unwrap();
                    c.close().await.unwrap();
                    rows.iter()
                        .map(|r| r.get::<Option<String>, _>(0).unwrap_or_else(|| "NULL".into()))
                        .collect()
                }
                Kind::Postgres => {
                    let mut c = sqlx::PgConnection::connect(&self.raw_url).await.unwrap();
                    let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(&mut c).await.unwrap();
                    c.close().await.unwrap();
                    rows.iter()
                        .map(|r| r.get::<Option<String>, _>(0).unwrap_or_else(|| "NULL".into()))
                        .collect()
                }
            }
        })
    }

    fn credentials(&self) -> Value {
        json!({"db": {"con": self.con}})
    }

    fn try_catalog(&self, entries: Value) -> Result<Catalog, CatalogError> {
        CatalogConfig::parse(&entries, &self.credentials(), &registry())?.build(&BuildOptions {
            project_dir: self.root.clone(),
            save_version: "v1".into(),
            load_versions: BTreeMap::new(),
            parameters: Value::Null,
            run_scope: None,
        })
    }

    fn catalog(&self, entries: Value) -> Catalog {
        self.try_catalog(entries).unwrap()
    }
}

fn registry() -> DatasetTypeRegistry {
    let mut r = DatasetTypeRegistry::with_builtins();
    weft_sql::register(&mut r).unwrap();
    r
}

fn table(name: &str, save_args: Value) -> Value {
    json!({"type": "pandas.SQLTableDataset", "table_name": name, "credentials": "db", "save_args": save_args})
}

fn rows(catalog: &Catalog, name: &str) -> Value {
    catalog
        .load(name, None)
        .unwrap()
        .downcast_ref::<Value>()
        .unwrap()
        .clone()
}

fn shuttles() -> Value {
    json!([
        {"id": 1, "engine": "Quantum", "capacity": 4.5, "approved": true},
        {"id": 2, "engine": "Plasma", "capacity": 7, "approved": false},
        {"id": 3, "engine": null, "capacity": 2.0, "approved": true},
    ])
}

#[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
struct Shuttle {
    id: i64,
    engine: Option<String>,
    capacity: f64,
    approved: bool,
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(super::db(super::Kind::Sqlite))
            }
            #[test]
            fn postgres() {
                super::$name(super::db(super::Kind::Postgres))
            }
        }
    };
}

// ------------------------------------------------------------------ tables

both!(a_saved_table_loads_as_rows_typed_rows_and_a_record_batch);
fn a_saved_table_loads_as_rows_typed_rows_and_a_record_batch(db: Db) {
    let c = db.catalog(json!({"shuttles": table("shuttles", json!(null))}));
    assert!(!c.exists("shuttles").unwrap());
    c.save("shuttles", Data::new(shuttles())).unwrap();
    assert!(c.exists("shuttles").unwrap());
    // The table was created from the data's columns and types.
    let loaded = rows(&c, "shuttles");
    let loaded = loaded.as_array().unwrap();
    assert_eq!(loaded.len(), 3);
    assert_eq!(
        loaded[0],
        json!({"id": 1, "engine": "Quantum", "capacity": 4.5, "approved": true})
    );
    assert_eq!(loaded[2]["engine"], Value::Null);
    let keys: Vec<&String> = loaded[1].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "engine", "capacity", "approved"]);
    let typed = c.load("shuttles", Some(&DataType::of::<Vec<Shuttle>>())).unwrap();
    let typed = typed.downcast_ref::<Vec<Shuttle>>().unwrap();
    let expected: Vec<Shuttle> = serde_json::from_value(shuttles()).unwrap();
    assert_eq!(typed, &expected);
    let batch = c.load("shuttles", Some(&DataType::of::<RecordBatch>())).unwrap();
    let batch = batch.downcast_ref::<RecordBatch>().unwrap();
    assert_eq!(batch.num_rows(), 3);
    let ids = batch
        .column_by_name("id")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(ids.values(), &[1, 2, 3]);
    // The columns got real SQL types (not text): sums work in the database.
    assert_eq!(
        db.texts("SELECT CAST(SUM(capacity) AS TEXT) FROM shuttles"),
        vec!["13.5"]
    );
    // load_args.columns selects columns in the given order.
    let some = db.catalog(json!({"s": {
        "type": "sql.SQLTableDataset", "table_name": "shuttles", "credentials": "db",
        "load_args": {"columns": ["engine", "id"]},
    }}));
    assert_eq!(rows(&some, "s")[0], json!({"engine": "Quantum", "id": 1}));
    let keys: Vec<String> = rows(&some, "s")[0].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, vec!["engine", "id"]);
}

both!(if_exists_fail_replace_and_append);
fn if_exists_fail_replace_and_append(db: Db) {
    let entries = json!({
        "default": table("t", json!(null)),
        "fail": table("t", json!({"if_exists": "fail"})),
        "replace": table("t", json!({"if_exists": "replace"})),
        "append": table("t", json!({"if_exists": "append"})),
    });
    let c = db.catalog(entries);
    c.save("default", Data::new(json!([{"id": 1, "name": "a"}])))
        .unwrap();
    for name in ["default", "fail"] {
        let e = c
            .save(name, Data::new(json!([{"id": 9, "name": "z"}])))
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("`{name}`"))
                && msg.contains("table `t`")
                && msg.contains("already exists")
                && msg.contains("if_exists"),
            "{msg}"
        );
    }
    assert_eq!(rows(&c, "default"), json!([{"id": 1, "name": "a"}]));
    c.save(
        "append",
        Data::new(json!([{"id": 2, "name": "b"}, {"name": "c", "id": 3}])),
    )
    .unwrap();
    assert_eq!(
        rows(&c, "default"),
        json!([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}])
    );
    // replace takes the new data's columns too.
    c.save("replace", Data::new(json!([{"code": "x", "score": 0.5}])))
        .unwrap();
    assert_eq!(rows(&c, "default"), json!([{"code": "x", "score": 0.5}]));
    // append to a missing table creates it.
    let other = db.catalog(json!({"n": table("new_one", json!({"if_exists": "append"}))}));
    other.save("n", Data::new(json!([{"k": 1}]))).unwrap();
    assert_eq!(rows(&other, "n"), json!([{"k": 1}]));
}

/// A table as a user made it, with typed columns and a key; rows 1–2 good.
fn strict_table(db: &Db) {
    match db.kind {
        Kind::Sqlite => db.exec(&[
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL, note TEXT) STRICT",
            "INSERT INTO orders VALUES (1, 10, 'first'), (2, 20, 'second')",
        ]),
        Kind::Postgres => db.exec(&[
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL, note TEXT)",
            "INSERT INTO orders VALUES (1, 10, 'first'), (2, 20, 'second')",
        ]),
    }
}

fn orders(db: &Db) -> Vec<String> {
    db.texts("SELECT CAST(id AS TEXT) || ':' || CAST(qty AS TEXT) || ':' || note FROM orders ORDER BY id")
}

both!(a_failed_save_leaves_the_table_exactly_as_it_was);
fn a_failed_save_leaves_the_table_exactly_as_it_was(db: Db) {
    strict_table(&db);
    let before = orders(&db);
    assert_eq!(before, vec!["1:10:first", "2:20:second"]);
    let c = db.catalog(json!({
        "append": table("orders", json!({"if_exists": "append"})),
        "replace": table("orders", json!({"if_exists": "replace"})),
        "fail": table("orders", json!(null)),
    }));
    // Append: two good rows, then a value the INTEGER column refuses.
    let type_error = json!([
        {"id": 3, "qty": 30, "note": "ok"},
        {"id": 4, "qty": 40, "note": "ok"},
        {"id": 5, "qty": "forty", "note": "bad"},
    ]);
    // The data itself is not mixed per column once `qty` is all text, so
    // the database is what refuses it, mid-way.
    let mid_way = json!([
        {"id": 3, "qty": "30", "note": "ok"},
        {"id": 4, "qty": "40", "note": "ok"},
        {"id": 5, "qty": "forty", "note": "bad"},
    ]);
    let e = c.save("append", Data::new(type_error)).unwrap_err().to_string();
    assert!(
        e.contains("`append`") && e.contains("column `qty`") && e.contains("row 3"),
        "{e}"
    );
    let e = c.save("append", Data::new(mid_way)).unwrap_err().to_string();
    assert!(
        e.contains("`append`") && e.contains("table `orders`") && e.contains("rolled back"),
        "{e}"
    );
    assert_eq!(orders(&db), before);
    // Append: a duplicate key on the third row (a constraint, mid-way).
    let duplicate = json!([
        {"id": 3, "qty": 30, "note": "ok"},
        {"id": 4, "qty": 40, "note": "ok"},
        {"id": 1, "qty": 50, "note": "dup"},
    ]);
    let e = c
        .save("append", Data::new(duplicate.clone()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("rolled back"), "{e}");
    assert_eq!(orders(&db), before);
    // Replace: the drop and create are undone with what failed after
    // them; the user's table (its constraints too) is still there.
    let e = c
        .save("replace", Data::new(replace_breaker(db.kind)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`replace`") && e.contains("rolled back"), "{e}");
    assert_eq!(orders(&db), before);
    // Fail: refused before anything is written.
    assert!(c.save("fail", Data::new(json!([{"id": 9, "qty": 9}]))).is_err());
    assert_eq!(orders(&db), before);
    // The primary key still holds (the original table, not a copy).
    let e = c
        .save("append", Data::new(json!([{"id": 2, "qty": 1, "note": "x"}])))
        .unwrap_err()
        .to_string();
    assert!(
        e.to_lowercase().contains("unique") || e.contains("duplicate"),
        "{e}"
    );
}

/// Rows whose replace fails after the `DROP TABLE`: on SQLite the new
/// table's `CREATE` (column names differ only in case, which SQLite takes
/// as one name), on PostgreSQL the insert of a value too big for `BIGINT`
/// after good rows.
fn replace_breaker(kind: Kind) -> Value {
    match kind {
        Kind::Sqlite => json!([{"id": 1, "ID": 2}]),
        Kind::Postgres => json!([
            {"id": 1, "qty": 1},
            {"id": 2, "qty": 2},
            {"id": 3, "qty": 18446744073709551615u64},
        ]),
    }
}

both!(a_record_batch_saves_with_its_arrow_types);
fn a_record_batch_saves_with_its_arrow_types(db: Db) {
    let schema = Arc::new(arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("id", arrow_schema::DataType::Int64, false),
        arrow_schema::Field::new("name", arrow_schema::DataType::Utf8, true),
        arrow_schema::Field::new("day", arrow_schema::DataType::Date32, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec![Some("a"), None])),
            Arc::new(Date32Array::from(vec![Some(20_454), None])),
        ],
    )
    .unwrap();
    let c = db.catalog(json!({"b": table("batches", json!({"if_exists": "replace"}))}));
    c.save("b", Data::new(batch)).unwrap();
    assert_eq!(
        rows(&c, "b"),
        json!([{"id": 1, "name": "a", "day": "2026-01-01"}, {"id": 2, "name": null, "day": null}])
    );
    let back = c.load("b", Some(&DataType::of::<RecordBatch>())).unwrap();
    let back = back.downcast_ref::<RecordBatch>().unwrap();
    assert_eq!(back.num_rows(), 2);
    assert!(back.column_by_name("name").unwrap().is_null(1));
    let declared = match db.kind {
        Kind::Sqlite => db.texts("SELECT type FROM pragma_table_info('batches') WHERE name = 'day'"),
        Kind::Postgres => db.texts(
            "SELECT data_type::text FROM information_schema.columns WHERE table_name = 'batches' AND column_name = 'day' AND table_schema = current_schema()",
        ),
    };
    assert_eq!(
        declared,
        vec![if db.kind == Kind::Sqlite { "DATE" } else { "date" }]
    );
}

both!(identifiers_are_quoted);
fn identifiers_are_quoted(db: Db) {
    let name = "odd \"name\"; DROP TABLE x";
    let c = db.catalog(json!({"odd": table(name, json!(null))}));
    c.save("odd", Data::new(json!([{"select": 1, "a b": "x\"y"}])))
        .unwrap();
    assert_eq!(rows(&c, "odd"), json!([{"select": 1, "a b": "x\"y"}]));
}

#[test]
fn postgres_renders_dates_numerics_and_jsonb_as_json() {
    let db = db(Kind::Postgres);
    db.exec(&[
        "CREATE TABLE events (id SERIAL PRIMARY KEY, day DATE, at TIMESTAMPTZ, price NUMERIC(8, 2), tags JSONB, ok BOOLEAN)",
        "SET TIME ZONE 'UTC'",
        "INSERT INTO events (day, at, price, tags, ok) VALUES ('2026-03-01', '2026-03-01 12:30:00+00', 12.50, '{\"a\": [1, 2]}', TRUE)",
    ]);
    let c = db.catalog(json!({
        "events": table("events", json!({"if_exists": "append"})),
        "on_day": query(json!("SELECT id, price FROM events WHERE day = :day::date"), json!({"day": "2026-03-01"})),
    }));
    let loaded = rows(&c, "events");
    assert_eq!(loaded[0]["day"], json!("2026-03-01"));
    assert!(
        loaded[0]["at"].as_str().unwrap().starts_with("2026-03-01T"),
        "{loaded}"
    );
    assert_eq!(loaded[0]["price"], json!(12.5));
    assert_eq!(loaded[0]["tags"], json!({"a": [1, 2]}));
    assert_eq!(rows(&c, "on_day"), json!([{"id": 1, "price": 12.5}]));
    // Appending converts JSON values into the table's own column types.
    c.save(
        "events",
        Data::new(json!([{"day": "2026-03-02", "price": 3.25, "tags": {"b": true}, "ok": false}])),
    )
    .unwrap();
    assert_eq!(
        db.texts("SELECT day::text || ' ' || price::text || ' ' || (tags->>'b') FROM events WHERE id = 2"),
        vec!["2026-03-02 3.25 true"]
    );
}

// ----------------------------------------------------------------- queries

fn query(sql: Value, params: Value) -> Value {
    let mut entry =
        json!({"type": "pandas.SQLQueryDataset", "credentials": "db", "load_args": {"params": params}});
    let key = if sql.as_str().is_some_and(|s| s.ends_with(".sql")) {
        "filepath"
    } else {
        "sql"
    };
    entry[key] = sql;
    if entry["load_args"]["params"].is_null() {
        entry.as_object_mut().unwrap().remove("load_args");
    }
    entry
}

fn seed(db: &Db) {
    let c = db.catalog(json!({"shuttles": table("shuttles", json!(null))}));
    c.save("shuttles", Data::new(shuttles())).unwrap();
}

both!(queries_bind_named_and_positional_parameters);
fn queries_bind_named_and_positional_parameters(db: Db) {
    seed(&db);
    let positional = match db.kind {
        Kind::Sqlite => "SELECT id FROM shuttles WHERE capacity >= ? AND approved = ? ORDER BY id",
        Kind::Postgres => "SELECT id FROM shuttles WHERE capacity >= $1 AND approved = $2 ORDER BY id",
    };
    std::fs::create_dir_all(db.root.join("queries")).unwrap();
    std::fs::write(
        db.root.join("queries/by_engine.sql"),
        "-- engines by name\nSELECT id, engine FROM shuttles\nWHERE engine = :engine OR :engine = 'all' -- all\nORDER BY id;\n",
    )
    .unwrap();
    let c = db.catalog(json!({
        "named": query(json!("SELECT id, engine FROM shuttles WHERE capacity > :min AND engine <> ':min' ORDER BY id"), json!({"min": 3})),
        "positional": query(json!(positional), json!([2.5, true])),
        "from_file": query(json!("queries/by_engine.sql"), json!({"engine": "Plasma"})),
        "plain": query(json!("SELECT COUNT(*) AS n FROM shuttles;"), json!(null)),
    }));
    assert_eq!(
        rows(&c, "named"),
        json!([{"id": 1, "engine": "Quantum"}, {"id": 2, "engine": "Plasma"}])
    );
    assert_eq!(rows(&c, "positional"), json!([{"id": 1}]));
    assert_eq!(rows(&c, "from_file"), json!([{"id": 2, "engine": "Plasma"}]));
    assert_eq!(rows(&c, "plain"), json!([{"n": 3}]));
    let batch = c.load("named", Some(&DataType::of::<RecordBatch>())).unwrap();
    assert_eq!(batch.downcast_ref::<RecordBatch>().unwrap().num_rows(), 2);
    assert_eq!(
        c.describe("from_file").unwrap().filepath.as_deref(),
        Some("queries/by_engine.sql")
    );
    // The file is read at each load.
    std::fs::write(
        db.root.join("queries/by_engine.sql"),
        "SELECT 1 AS one WHERE :engine = 'Plasma'",
    )
    .unwrap();
    assert_eq!(rows(&c, "from_file"), json!([{"one": 1}]));
}

both!(query_errors_name_dataset_file_and_database_message);
fn query_errors_name_dataset_file_and_database_message(db: Db) {
    seed(&db);
    std::fs::create_dir_all(db.root.join("queries")).unwrap();
    std::fs::write(db.root.join("queries/broken.sql"), "SELEC id FROM shuttles").unwrap();
    let c = db.catalog(json!({
        "broken": query(json!("queries/broken.sql"), json!(null)),
        "absent": query(json!("queries/absent.sql"), json!(null)),
        "no_table": query(json!("SELECT * FROM nowhere"), json!(null)),
        "missing_param": query(json!("SELECT :a AS a, :b AS b"), json!({"a": 1})),
    }));
    let e = c.load("broken", None).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("`broken`") && msg.contains("queries/broken.sql") && msg.contains("syntax"),
        "{msg}"
    );
    let msg = c.load("absent", None).unwrap_err().to_string();
    assert!(msg.contains("`absent`") && msg.contains("absent.sql"), "{msg}");
    assert!(!c.exists("absent").unwrap());
    let msg = c.load("no_table", None).unwrap_err().to_string();
    assert!(msg.contains("`no_table`") && msg.contains("nowhere"), "{msg}");
    let msg = c.load("missing_param", None).unwrap_err().to_string();
    assert!(msg.contains(":b") && msg.contains("load_args.params"), "{msg}");
    let msg = c.save("no_table", Data::new(json!([]))).unwrap_err().to_string();
    assert!(msg.contains("`no_table`") && msg.contains("load-only"), "{msg}");
}

both!(table_errors_name_dataset_table_and_database_message);
fn table_errors_name_dataset_table_and_database_message(db: Db) {
    seed(&db);
    let c = db.catalog(json!({"gone": table("no_such_table", json!(null))}));
    let msg = c.load("gone", None).unwrap_err().to_string();
    assert!(
        msg.contains("`gone`") && msg.contains("table `no_such_table`"),
        "{msg}"
    );
    let db_says = match db.kind {
        Kind::Sqlite => "no such table",
        Kind::Postgres => "does not exist",
    };
    assert!(msg.contains(db_says), "{msg}");
    assert!(!c.exists("gone").unwrap());
    let msg = c
        .save("gone", Data::new(json!({"not": "rows"})))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("`gone`") && msg.contains("rows"), "{msg}");
    let msg = c.save("gone", Data::new(json!([1, 2]))).unwrap_err().to_string();
    assert!(msg.contains("row 1"), "{msg}");
}

both!(loads_work_from_inside_a_tokio_runtime);
fn loads_work_from_inside_a_tokio_runtime(db: Db) {
    seed(&db);
    let c = Arc::new(db.catalog(json!({"shuttles": table("shuttles", json!({"if_exists": "append"}))})));
    for flavor in ["current", "multi"] {
        let rt = match flavor {
            "current" => tokio::runtime::Builder::new_current_thread().enable_all().build(),
            _ => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build(),
        }
        .unwrap();
        let c = Arc::clone(&c);
        let n = rt.block_on(async move {
            // Called on a runtime thread, as the async runner and `weft serve` do.
            let loaded = c.load("shuttles", None).unwrap();
            c.save(
                "shuttles",
                Data::new(json!([{"id": 9, "engine": "x", "capacity": 1, "approved": true}])),
            )
            .unwrap();
            loaded.downcast_ref::<Value>().unwrap().as_array().unwrap().len()
        });
        assert!(n >= 3, "{flavor}: {n}");
    }
    assert_eq!(rows(&c, "shuttles").as_array().unwrap().len(), 5);
}

/// The same from `#[tokio::test]` bodies (a current-thread runtime, and a
/// multi-thread one), where a `Runtime::block_on` inside the dataset
/// would panic.
mod inside_tokio_test {
    use super::*;

    async fn load_and_save(kind: Kind) {
        let db = db_async(kind).await;
        seed(&db);
        let c = db.catalog(json!({
            "shuttles": table("shuttles", json!({"if_exists": "append"})),
            "q": query(json!("SELECT COUNT(*) AS n FROM shuttles"), json!(null)),
        }));
        assert_eq!(rows(&c, "shuttles").as_array().unwrap().len(), 3);
        c.save(
            "shuttles",
            Data::new(json!([{"id": 4, "engine": "x", "capacity": 1.5, "approved": false}])),
        )
        .unwrap();
        assert_eq!(rows(&c, "q"), json!([{"n": 4}]));
    }

    /// [`db`] builds its PostgreSQL schema on a runtime of its own, so it
    /// runs on a plain thread here.
    async fn db_async(kind: Kind) -> Db {
        std::thread::scope(|s| s.spawn(move || db(kind)).join().unwrap())
    }

    #[tokio::test]
    async fn sqlite_current_thread() {
        load_and_save(Kind::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_multi_thread() {
        load_and_save(Kind::Sqlite).await
    }

    #[tokio::test]
    async fn postgres_current_thread() {
        load_and_save(Kind::Postgres).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_multi_thread() {
        load_and_save(Kind::Postgres).await
    }
}

// --------------------------------------------------- configuration errors

#[test]
fn configuration_errors_name_the_dataset_and_field() {
    let parse = |entries: Value, creds: Value| {
        CatalogConfig::parse(&entries, &creds, &registry())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let e = parse(
        json!({"t": {"type": "pandas.SQLTableDataset", "table_name": "x"}}),
        json!({}),
    );
    assert!(
        e.contains("`t`") && e.contains("`credentials` is required"),
        "{e}"
    );
    let e = parse(
        json!({"t": {"type": "pandas.SQLTableDataset", "table_name": "x", "credentials": "db"}}),
        json!({"db": {"con": "mysql://u:p@h/d"}}),
    );
    assert!(
        e.contains("`t`") && e.contains("credentials.con") && e.contains("`mysql`"),
        "{e}"
    );
    let e = parse(
        json!({"t": {"type": "pandas.SQLTableDataset", "table_name": "x", "credentials": {"con": "postgresql://u:hunter2@h:99999/d"}}}),
        json!({}),
    );
    assert!(
        e.contains("`t`") && e.contains("credentials.con") && !e.contains("hunter2"),
        "{e}"
    );
    let e = parse(
        json!({"t": {"type": "pandas.SQLTableDataset", "credentials": {"con": "sqlite:///x.db"}}}),
        json!({}),
    );
    assert!(e.contains("`table_name` is required"), "{e}");
    let e = parse(
        json!({"t": {"type": "pandas.SQLTableDataset", "table_name": "x", "credentials": {"con": "sqlite:///x.db"}, "save_args": {"if_exists": "overwrite"}}}),
        json!({}),
    );
    assert!(
        e.contains("save_args.if_exists") && e.contains("overwrite"),
        "{e}"
    );
    let e = parse(
        json!({"q": {"type": "pandas.SQLQueryDataset", "credentials": {"con": "sqlite:///x.db"}}}),
        json!({}),
    );
    assert!(
        e.contains("`q`") && e.contains("`sql`") && e.contains("`filepath`"),
        "{e}"
    );
    let e = parse(
        json!({"q": {"type": "pandas.SQLQueryDataset", "sql": "SELECT 1", "credentials": {"con": "sqlite:///x.db"}, "load_args": {"params": 5}}}),
        json!({}),
    );
    assert!(e.contains("load_args.params"), "{e}");
    let e = parse(
        json!({"q": {"type": "pandas.SQLQueryDataset", "sql": "SELECT 1", "credentials": {"con": "sqlite:///x.db"}, "versioned": true}}),
        json!({}),
    );
    assert!(e.contains("cannot be versioned"), "{e}");
}

#[test]
fn a_missing_sqlite_file_is_a_load_error_and_exists_is_false() {
    let dir = tempfile::tempdir().unwrap();
    let c = CatalogConfig::parse(
        &json!({"t": {"type": "pandas.SQLTableDataset", "table_name": "x", "credentials": "db"}}),
        &json!({"db": {"con": "sqlite:///data/missing.db"}}),
        &registry(),
    )
    .unwrap()
    .build(&BuildOptions {
        project_dir: dir.path().to_path_buf(),
        ..Default::default()
    })
    .unwrap();
    assert!(!c.exists("t").unwrap());
    let msg = c.load("t", None).unwrap_err().to_string();
    assert!(
        msg.contains("`t`") && msg.contains("missing.db") && msg.contains("does not exist"),
        "{msg}"
    );
    assert!(
        !dir.path().join("data/missing.db").exists(),
        "a load must not create the file"
    );
}

#[test]
fn a_wrong_password_is_never_shown() {
    let base = pg_base_url();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_password(Some("hunter2-wrong")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = CatalogConfig::parse(
        &json!({"t": {"type": "pandas.SQLTableDataset", "table_name": "x", "credentials": "db"}}),
        &json!({"db": {"con": url.to_string()}}),
        &registry(),
    )
    .unwrap()
    .build(&BuildOptions {
        project_dir: dir.path().to_path_buf(),
        ..Default::default()
    })
    .unwrap();
    let msg = c.load("t", None).unwrap_err().to_string();
    assert!(!msg.contains("hunter2-wrong"), "{msg}");
    assert!(
        msg.contains("`t`") && msg.contains(":***@") && msg.contains("password"),
        "{msg}"
    );
    let info = format!("{:?}", c.describe("t").unwrap());
    assert!(!info.contains("hunter2"), "{info}");
}

#[test]
fn an_unreachable_server_is_a_load_error_naming_the_dataset() {
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let c = CatalogConfig::parse(
        &json!({"t": {"type": "pandas.SQLTableDataset", "table_name": "x", "credentials": "db"}}),
        &json!({"db": {"con": format!("postgresql://u:secret-pw@127.0.0.1:{port}/d")}}),
        &registry(),
    )
    .unwrap()
    .build(&BuildOptions {
        project_dir: dir.path().to_path_buf(),
        ..Default::default()
    })
    .unwrap();
    let msg = c.load("t", None).unwrap_err().to_string();
    assert!(
        msg.contains("`t`") && msg.contains("could not connect") && !msg.contains("secret-pw"),
        "{msg}"
    );
}

// ------------------------------------------------------ through a session

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const CATALOG: &str = r#"
shuttles:
  type: pandas.SQLTableDataset
  table_name: shuttles
  credentials: db_credentials
approved_shuttles:
  type: pandas.SQLTableDataset
  table_name: approved
  credentials: db_credentials
  save_args:
    if_exists: replace
big_shuttles:
  type: pandas.SQLQueryDataset
  sql: "SELECT id, engine FROM shuttles WHERE capacity >= ${globals:min_capacity} AND engine <> :skip ORDER BY id"
  credentials: db_credentials
  load_args:
    params:
      skip: Warp
"#;

const PIPELINES: &str = r#"
__default__:
  nodes:
    - name: approve
      func: keep_approved
      inputs: shuttles
      outputs: approved_shuttles
    - name: count_big
      func: count_rows
      inputs: big_shuttles
      outputs: big_count
"#;

fn sql_project(db: &Db) {
    let root = &db.root;
    write(root, "weft.toml", "[project]\nname = \"sql\"\n");
    write(root, "pipelines.yml", PIPELINES);
    write(root, "conf/base/catalog.yml", CATALOG);
    write(root, "conf/base/globals.yml", "min_capacity: 4\n");
    write(root, "conf/base/parameters.yml", "{}\n");
    write(
        root,
        "conf/local/credentials.yml",
        &format!("db_credentials:\n  con: \"{}\"\n", db.con),
    );
    seed(db);
    // A row the query's bound parameter filters out.
    db.exec(&["INSERT INTO shuttles (id, engine, capacity, approved) VALUES (4, 'Warp', 9.0, FALSE)"]);
}

fn code() -> weft_session::ProjectCode {
    let mut functions = FunctionRegistry::with_builtins();
    functions
        .register("keep_approved", |rows: &Vec<Shuttle>| -> Vec<Shuttle> {
            rows.iter()
                .filter(|s| s.approved)
                .map(|s| Shuttle {
                    id: s.id,
                    engine: s.engine.clone(),
                    capacity: s.capacity,
                    approved: s.approved,
                })
                .collect()
        })
        .unwrap();
    functions
        .register("count_rows", |rows: &Value| -> i64 {
            rows.as_array().map_or(0, |r| r.len() as i64)
        })
        .unwrap();
    weft_session::ProjectCode {
        functions: Arc::new(functions),
        ..Default::default()
    }
}

fn a_session_runs_a_pipeline_over_sql_tables_and_queries(db: Db) {
    sql_project(&db);
    let mut s = weft_session::Session::create(
        &db.root,
        weft_session::SessionOptions {
            code: code(),
            store: weft_session::StoreChoice::Disabled,
            ..Default::default()
        },
    )
    .unwrap();
    let result = s.run(weft_session::RunConfig::default()).unwrap();
    assert_eq!(
        result.status,
        weft_core::RunStatus::Succeeded,
        "{:?}",
        result.error
    );
    // capacity >= 4 and engine <> 'Warp': shuttles 1 and 2.
    assert_eq!(result.outputs["big_count"].to_json().unwrap(), json!(2));
    assert_eq!(
        db.texts("SELECT CAST(id AS TEXT) FROM approved ORDER BY id"),
        vec!["1", "3"]
    );
}
both!(a_session_runs_a_pipeline_over_sql_tables_and_queries);

fn overlapping_runs_refuse_a_sql_table_output(db: Db) {
    sql_project(&db);
    let s = weft_session::ServiceSession::create(
        &db.root,
        weft_session::ServiceOptions {
            session: weft_session::SessionOptions {
                code: code(),
                store: weft_session::StoreChoice::Disabled,
                ..Default::default()
            },
            max_workers: Some(2),
            history_limit: None,
        },
    )
    .unwrap();
    let err = s.run(weft_session::RunConfig::default()).unwrap_err().to_string();
    assert!(
        err.contains("`approved_shuttles`")
            && err.contains("pandas.SQLTableDataset")
            && err.contains("max_workers = 1"),
        "{err}"
    );
    // Nothing ran: the output table was never created.
    let tables = match db.kind {
        Kind::Sqlite => db.texts("SELECT name FROM sqlite_master WHERE name = 'approved'"),
        Kind::Postgres => db.texts("SELECT CAST(to_regclass('approved') AS TEXT)"),
    };
    assert!(tables.is_empty() || tables == vec!["NULL"], "{tables:?}");
}
both!(overlapping_runs_refuse_a_sql_table_output);

both!(concurrent_appends_all_land_and_concurrent_creates_make_one_table);
fn concurrent_appends_all_land_and_concurrent_creates_make_one_table(db: Db) {
    let c = Arc::new(db.catalog(json!({
        "log": table("log", json!({"if_exists": "append"})),
        "once": table("once", json!(null)),
    })));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let c = Arc::clone(&c);
                s.spawn(move || {
                    for i in 0..5 {
                        let rows: Vec<Value> = (0..3).map(|k| json!({"worker": w, "n": i * 3 + k})).collect();
                        c.save("log", Data::new(Value::Array(rows))).unwrap();
                    }
                    // Every worker tries to create `once` with `fail`: one wins.
                    c.save("once", Data::new(json!([{"by": w}]))).is_ok()
                })
            })
            .collect();
        let winners = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|won| *won)
            .count();
        assert_eq!(winners, 1);
    });
    assert_eq!(rows(&c, "log").as_array().unwrap().len(), 60);
    assert_eq!(rows(&c, "once").as_array().unwrap().len(), 1);
}
