//! The writer's SQLite connection, called directly on the writer thread
//! (rusqlite over the same bundled SQLite as sqlx): a statement costs no
//! hop to another thread and back, as it did through sqlx's SQLite worker.
//! Errors become [`sqlx::Error::Database`] with the SQLite error kept as
//! the source, so they are classified and reported like the read pool's.

use std::error::Error as StdError;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{CachedStatement, Connection, OpenFlags, Statement};

use crate::writer::{Arg, Col, Val, sqlite_sql};

/// Prepared statements kept per connection (the writer uses a few dozen
/// distinct ones, multi-row statements of several sizes among them).
const STATEMENT_CACHE: usize = 256;

/// Opens the writer's connection with the pool's settings (WAL was set
/// when the store was opened; it is a property of the file).
pub(crate) fn open(path: &Path) -> Result<Connection, sqlx::Error> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(db)?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(db)?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .map_err(db)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

fn prepare<'c>(conn: &'c Connection, sql: &str, args: &[Arg<'_>]) -> rusqlite::Result<CachedStatement<'c>> {
    let mut st = conn.prepare_cached(&sqlite_sql(sql))?;
    bind_from(&mut st, args)?;
    Ok(st)
}

fn bind_from(st: &mut Statement<'_>, args: &[Arg<'_>]) -> rusqlite::Result<()> {
    for (i, a) in args.iter().enumerate() {
        match *a {
            Arg::Str(s) => st.raw_bind_parameter(i + 1, s)?,
            Arg::OptStr(s) => st.raw_bind_parameter(i + 1, s)?,
            Arg::I64(v) => st.raw_bind_parameter(i + 1, v)?,
            Arg::OptI64(v) => st.raw_bind_parameter(i + 1, v)?,
        }
    }
    Ok(())
}

/// Steps a statement to its end; the rows it changed (0 for a read).
fn run_to_end(conn: &Connection, st: &mut Statement<'_>) -> rusqlite::Result<u64> {
    let readonly = st.readonly();
    let mut rows = st.raw_query();
    while rows.next()?.is_some() {}
    drop(rows);
    Ok(if readonly { 0 } else { conn.changes() })
}

/// Runs a statement to its end; the rows it changed (0 for a read). SQL
/// of several statements (`;`-joined, plain `?` placeholders bound in
/// order across them, as the queue packs its inserts) runs each in turn;
/// the changes are added up.
pub(crate) fn execute(conn: &Connection, sql: &str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error> {
    let run = || -> rusqlite::Result<u64> {
        match prepare(conn, sql, args) {
            Ok(mut st) => run_to_end(conn, &mut st),
            Err(rusqlite::Error::MultipleStatement) => {
                let sql = sqlite_sql(sql);
                use rusqlite::fallible_iterator::FallibleIterator;
                let mut batch = rusqlite::Batch::new(conn, &sql);
                let mut changed = 0;
                let mut rest = args;
                while let Some(mut st) = batch.next()? {
                    let n = st.parameter_count().min(rest.len());
                    let (mine, later) = rest.split_at(n);
                    bind_from(&mut st, mine)?;
                    rest = later;
                    changed += run_to_end(conn, &mut st)?;
                }
                Ok(changed)
            }
            Err(e) => Err(e),
        }
    };
    run().map_err(db)
}

/// Every row, its columns decoded as `cols` say.
pub(crate) fn fetch_rows(
    conn: &Connection,
    sql: &str,
    args: &[Arg<'_>],
    cols: &[Col],
) -> Result<Vec<Vec<Val>>, sqlx::Error> {
    let run = || -> rusqlite::Result<Vec<Vec<Val>>> {
        let mut st = prepare(conn, sql, args)?;
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut vals = Vec::with_capacity(cols.len());
            for (i, c) in cols.iter().enumerate() {
                vals.push(match c {
                    Col::Str => row.get::<_, Option<String>>(i)?.map_or(Val::Null, Val::Str),
                    Col::I64 => row.get::<_, Option<i64>>(i)?.map_or(Val::Null, Val::I64),
                });
            }
            out.push(vals);
        }
        Ok(out)
    };
    run().map_err(db)
}

/// Statements without parameters (`BEGIN IMMEDIATE`, `COMMIT`, ...).
pub(crate) fn raw(conn: &Connection, sql: &str) -> Result<(), sqlx::Error> {
    conn.execute_batch(sql).map_err(db)
}

/// A SQLite error as the error the rest of the store handles.
fn db(e: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Database(Box::new(LiteError::new(e)))
}

/// A failure of the writer's SQLite connection.
#[derive(Debug)]
pub(crate) struct LiteError {
    message: String,
    code: Option<String>,
    source: rusqlite::Error,
}

impl LiteError {
    fn new(source: rusqlite::Error) -> Self {
        let code = match &source {
            rusqlite::Error::SqliteFailure(f, _) => Some(f.extended_code.to_string()),
            _ => None,
        };
        LiteError {
            message: source.to_string(),
            code,
            source,
        }
    }
}

impl fmt::Display for LiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for LiteError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

impl sqlx::error::DatabaseError for LiteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.code.as_deref().map(std::borrow::Cow::Borrowed)
    }

    fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        match &self.source {
            rusqlite::Error::SqliteFailure(f, _) => match f.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    sqlx::error::ErrorKind::UniqueViolation
                }
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY => sqlx::error::ErrorKind::ForeignKeyViolation,
                ffi::SQLITE_CONSTRAINT_NOTNULL => sqlx::error::ErrorKind::NotNullViolation,
                ffi::SQLITE_CONSTRAINT_CHECK => sqlx::error::ErrorKind::CheckViolation,
                _ => sqlx::error::ErrorKind::Other,
            },
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}

/// The first column of every row, as text (NULL is an error).
pub(crate) fn fetch_texts(
    conn: &Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<Vec<String>, sqlx::Error> {
    let run = || -> rusqlite::Result<Vec<String>> {
        let mut st = prepare(conn, sql, args)?;
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(row.get::<_, String>(0)?);
        }
        Ok(out)
    };
    run().map_err(db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::error::ErrorKind;

    fn memory() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        raw(&conn, "CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER, o TEXT)").unwrap();
        conn
    }

    #[test]
    fn statements_bind_every_argument_kind_and_count_changes() {
        let conn = memory();
        let sql = "INSERT INTO t (k, n, o) VALUES ($1, $2, $3), ($4, $5, $6)";
        let args = [
            Arg::Str("a"),
            Arg::I64(1),
            Arg::OptStr(Some("x")),
            Arg::Str("b"),
            Arg::OptI64(None),
            Arg::OptStr(None),
        ];
        assert_eq!(execute(&conn, sql, &args).unwrap(), 2);
        let rows = fetch_rows(
            &conn,
            "SELECT k, n, o FROM t ORDER BY k",
            &[],
            &[Col::Str, Col::I64, Col::Str],
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![
                vec![Val::Str("a".into()), Val::I64(1), Val::Str("x".into())],
                vec![Val::Str("b".into()), Val::Null, Val::Null],
            ]
        );
        // A read changes nothing; RETURNING rows are read to the end.
        assert_eq!(execute(&conn, "SELECT k FROM t", &[]).unwrap(), 0);
        let sql = "UPDATE t SET n = $1 WHERE k = $2 RETURNING k";
        assert_eq!(
            fetch_texts(&conn, sql, &[Arg::I64(5), Arg::Str("b")]).unwrap(),
            vec!["b"]
        );
        assert_eq!(execute(&conn, "UPDATE t SET n = $1", &[Arg::I64(7)]).unwrap(), 2);
    }

    #[test]
    fn several_statements_in_one_call_bind_their_arguments_in_order() {
        let conn = memory();
        let sql = "INSERT INTO t (k, n) VALUES (?, ?); INSERT INTO t (k, n) VALUES (?, ?), (?, ?)";
        let args = [
            Arg::Str("a"),
            Arg::I64(1),
            Arg::Str("b"),
            Arg::I64(2),
            Arg::Str("c"),
            Arg::I64(3),
        ];
        assert_eq!(execute(&conn, sql, &args).unwrap(), 3);
        let rows = fetch_rows(&conn, "SELECT k, n FROM t ORDER BY k", &[], &[Col::Str, Col::I64]).unwrap();
        let got: Vec<(String, i64)> = rows
            .into_iter()
            .map(|r| (r[0].clone().into_string(), r[1].i64()))
            .collect();
        assert_eq!(got, vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]);
    }

    #[test]
    fn failures_keep_the_sqlite_error_its_code_and_kind() {
        let conn = memory();
        execute(&conn, "INSERT INTO t (k) VALUES ($1)", &[Arg::Str("a")]).unwrap();
        let e = execute(&conn, "INSERT INTO t (k) VALUES ($1)", &[Arg::Str("a")]).unwrap_err();
        let sqlx::Error::Database(d) = &e else {
            panic!("not a database error: {e:?}");
        };
        assert_eq!(d.kind(), ErrorKind::UniqueViolation);
        assert_eq!(d.code().as_deref(), Some("1555"), "SQLITE_CONSTRAINT_PRIMARYKEY");
        assert!(d.message().contains("UNIQUE"), "{}", d.message());
        let source = d.as_error().source().expect("the rusqlite error is kept");
        assert!(source.downcast_ref::<rusqlite::Error>().is_some());
        // A syntax error is a database error too, with its message.
        let e = raw(&conn, "NOT SQL").unwrap_err();
        assert!(e.to_string().contains("syntax"), "{e}");
        // NULL where text is required is an error, not an empty string.
        execute(&conn, "INSERT INTO t (k) VALUES ($1)", &[Arg::Str("b")]).unwrap();
        assert!(fetch_texts(&conn, "SELECT o FROM t", &[]).is_err());
    }
}
