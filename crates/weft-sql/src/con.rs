//! The connection string (`credentials.con`), shown with its password
//! redacted, and one connection per dataset call on a private runtime.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::text::Dialect;

/// How long connecting may take before the call fails.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed connection string.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// A PostgreSQL server.
    Postgres(Box<PgConnectOptions>),
    /// A SQLite database file.
    Sqlite(PathBuf),
}

/// Where a dataset's database is: what to connect to and what to show.
#[derive(Clone, Debug)]
pub(crate) struct Database {
    target: Target,
    /// The URL with its password replaced by `***`.
    shown: String,
    /// The password, to scrub from any message that might echo it.
    password: Option<String>,
}

/// An open connection.
pub(crate) enum Conn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl Database {
    /// Reads `credentials` (`{con: "postgresql://..."}` or
    /// `{con: "sqlite:///data/db.sqlite"}`), resolving a relative SQLite
    /// path against `project_dir`.
    pub(crate) fn from_credentials(credentials: Option<&Value>, project_dir: &Path) -> Result<Self, String> {
        let Some(credentials) = credentials else {
            return Err(
                "`credentials` is required: name an entry of credentials.yml that has `con`, the database URL \
                 (for example `db_credentials: {con: \"postgresql://user:password@host:5432/db\"}` or \
                 `{con: \"sqlite:///data/db.sqlite\"}`)"
                    .into(),
            );
        };
        let Value::Object(map) = credentials else {
            return Err("credentials: expected a map with `con` (the database URL)".into());
        };
        if let Some(other) = map.keys().find(|k| *k != "con") {
            return Err(format!(
                "credentials: unknown key `{other}` (SQL datasets read only `con`, the database URL)"
            ));
        }
        match map.get("con") {
            Some(Value::String(con)) => {
                Self::parse(con, project_dir).map_err(|e| format!("credentials.con: {e}"))
            }
            Some(other) => Err(format!(
                "credentials.con: expected the database URL as text, got {}",
                kind(other)
            )),
            None => Err("credentials: `con` (the database URL) is missing".into()),
        }
    }

    /// Parses a database URL: `postgresql://`, `postgres://` (with an
    /// optional `+driver` as SQLAlchemy writes it) or `sqlite://`.
    pub(crate) fn parse(con: &str, project_dir: &Path) -> Result<Self, String> {
        let Some((scheme, rest)) = con.split_once("://") else {
            return Err(
                "not a database URL; expected `postgresql://user:password@host:port/database` or `sqlite:///path/to/file.db`"
                    .into(),
            );
        };
        let base = scheme.split('+').next().unwrap_or(scheme).to_ascii_lowercase();
        match base.as_str() {
            "postgres" | "postgresql" => Self::postgres(&format!("postgres://{rest}")),
            "sqlite" => Self::sqlite(rest, con, project_dir),
            other => Err(format!(
                "unsupported database `{other}`: weft's SQL datasets connect to PostgreSQL (`postgresql://`) and SQLite (`sqlite://`)"
            )),
        }
    }

    fn postgres(url: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
        let password = parsed.password().map(percent_decode).filter(|p| !p.is_empty());
        let mut shown_url = parsed.clone();
        if parsed.password().is_some() {
            // Setting a password on a URL with a user and host cannot fail.
            let _ = shown_url.set_password(Some("***"));
        }
        let shown = shown_url.to_string();
        if parsed.username().is_empty() && !parsed.query_pairs().any(|(k, _)| k == "user") {
            return Err(format!(
                "{shown}: the URL names no user (`postgresql://user:password@host/database`)"
            ));
        }
        let mut options =
            PgConnectOptions::from_str(url).map_err(|e| scrub(&format!("{shown}: {e}"), &password))?;
        // What the URL leaves out takes libpq's defaults, not PG* variables.
        let host_param = parsed.query_pairs().any(|(k, _)| k == "host");
        if parsed.host_str().is_none_or(str::is_empty) && !host_param {
            options = options.host("localhost");
        }
        if parsed.port().is_none() && !parsed.query_pairs().any(|(k, _)| k == "port") {
            options = options.port(5432);
        }
        if parsed.path().trim_start_matches('/').is_empty()
            && !parsed.query_pairs().any(|(k, _)| k == "dbname")
        {
            let user = options.get_username().to_string();
            options = options.database(&user);
        }
        Ok(Database {
            target: Target::Postgres(Box::new(options)),
            shown,
            password,
        })
    }

    fn sqlite(rest: &str, con: &str, project_dir: &Path) -> Result<Self, String> {
        if rest.contains('?') {
            return Err(format!(
                "{con}: query parameters in a SQLite URL are not supported"
            ));
        }
        // SQLAlchemy's form: `sqlite:///relative.db`, `sqlite:////abs.db`;
        // sqlx's `sqlite://relative.db` is read as relative too.
        let path = rest.strip_prefix('/').unwrap_or(rest);
        if path.is_empty() || path == ":memory:" {
            return Err(format!(
                "{con}: an in-memory SQLite database lasts one connection, and each load or save opens its own; use a file (`sqlite:///data/db.sqlite`)"
            ));
        }
        let p = Path::new(path);
        let file = if p.is_absolute() {
            p.to_path_buf()
        } else {
            project_dir.join(p)
        };
        Ok(Database {
            target: Target::Sqlite(file),
            shown: con.to_string(),
            password: None,
        })
    }

    /// The URL as errors and descriptions show it (password redacted).
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self.target {
            Target::Postgres(_) => Dialect::Postgres,
            Target::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Whether this is a SQLite database whose file does not exist (so
    /// there is no table to find).
    pub(crate) fn sqlite_file_missing(&self) -> bool {
        matches!(&self.target, Target::Sqlite(file) if !file.exists())
    }

    /// `message` with the password (if any) replaced by `***`.
    pub(crate) fn scrub(&self, message: &str) -> String {
        scrub(message, &self.password)
    }

    /// Connects (`create`: a missing SQLite file and its folder are
    /// created; else a missing file is an error).
    pub(crate) async fn connect(&self, create: bool) -> Result<Conn, String> {
        let connecting = async {
            match &self.target {
                Target::Postgres(options) => PgConnection::connect_with(options).await.map(Conn::Postgres),
                Target::Sqlite(file) => {
                    if create
                        && let Some(parent) = file.parent()
                        && !parent.as_os_str().is_empty()
                    {
                        std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
                    }
                    if !create && !file.exists() {
                        return Err(sqlx::Error::Configuration(
                            format!("the database file {} does not exist", file.display()).into(),
                        ));
                    }
                    let options = SqliteConnectOptions::new()
                        .filename(file)
                        .create_if_missing(create)
                        .busy_timeout(CONNECT_TIMEOUT);
                    SqliteConnection::connect_with(&options).await.map(Conn::Sqlite)
                }
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(self.scrub(&format!("could not connect to {}: {e}", self.shown))),
            Err(_) => Err(format!(
                "could not connect to {} within {} s",
                self.shown,
                CONNECT_TIMEOUT.as_secs()
            )),
        }
    }
}

impl Conn {
    /// Closes the connection (SQLite's worker thread ends with it).
    pub(crate) async fn close(self) {
        // A failed close loses nothing: the work was committed or rolled back.
        let _ = match self {
            Conn::Postgres(c) => c.close().await,
            Conn::Sqlite(c) => c.close().await,
        };
    }
}

/// `%40` → `@` (a URL's userinfo is percent-encoded).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn scrub(message: &str, password: &Option<String>) -> String {
    match password {
        Some(p) if !p.is_empty() => message.replace(p.as_str(), "***"),
        _ => message.to_string(),
    }
}

/// A JSON value's kind, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Runs `work` to completion on a private current-thread runtime in a
/// scoped thread, so a dataset call works from any thread, including a
/// Tokio runtime's (where `block_on` would panic). The thread is joined
/// before this returns.
pub(crate) fn run_blocking<T, F>(work: F) -> Result<T, String>
where
    F: Future<Output = Result<T, String>> + Send,
    T: Send,
{
    std::thread::scope(|scope| {
        let handle = scope.spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("could not start a runtime for the database call: {e}"))?;
            runtime.block_on(work)
        });
        handle
            .join()
            .unwrap_or_else(|_| Err("the database call panicked".to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_are_redacted_and_keep_their_parts() {
        let db = Database::parse(
            "postgresql+psycopg2://ada:s3cr%40t@db.example:6543/shop",
            Path::new("/p"),
        )
        .unwrap();
        assert_eq!(db.shown(), "postgres://ada:***@db.example:6543/shop");
        assert_eq!(db.dialect(), Dialect::Postgres);
        assert_eq!(db.scrub("failed for s3cr@t"), "failed for ***");
        let Target::Postgres(o) = &db.target else {
            unreachable!()
        };
        assert_eq!(o.get_host(), "db.example");
        assert_eq!(o.get_port(), 6543);
        assert_eq!(o.get_database(), Some("shop"));
        let bare = Database::parse("postgres://ada@db", Path::new("/p")).unwrap();
        let Target::Postgres(o) = &bare.target else {
            unreachable!()
        };
        assert_eq!(
            (o.get_host(), o.get_port(), o.get_database()),
            ("db", 5432, Some("ada"))
        );
        assert_eq!(bare.shown(), "postgres://ada@db");
        let e = Database::parse("postgresql://db.example/shop", Path::new("/p")).unwrap_err();
        assert!(e.contains("names no user"), "{e}");
    }

    #[test]
    fn sqlite_urls_follow_sqlalchemy() {
        let p = Path::new("/proj");
        let rel = Database::parse("sqlite:///data/db.sqlite", p).unwrap();
        let Target::Sqlite(f) = &rel.target else {
            unreachable!()
        };
        assert_eq!(f, Path::new("/proj/data/db.sqlite"));
        let abs = Database::parse("sqlite:////var/db.sqlite", p).unwrap();
        let Target::Sqlite(f) = &abs.target else {
            unreachable!()
        };
        assert_eq!(f, Path::new("/var/db.sqlite"));
        assert!(Database::parse("sqlite://", p).unwrap_err().contains("in-memory"));
        assert!(
            Database::parse("mysql://a@b/c", p)
                .unwrap_err()
                .contains("`mysql`")
        );
        assert!(
            Database::parse("not a url", p)
                .unwrap_err()
                .contains("not a database URL")
        );
    }

    #[test]
    fn credentials_need_con_and_nothing_else() {
        let p = Path::new("/proj");
        assert!(
            Database::from_credentials(None, p)
                .unwrap_err()
                .contains("`credentials` is required")
        );
        let e = Database::from_credentials(Some(&serde_json::json!({"url": "x"})), p).unwrap_err();
        assert!(e.contains("unknown key `url`"), "{e}");
        let e = Database::from_credentials(Some(&serde_json::json!({"con": 3})), p).unwrap_err();
        assert!(e.contains("credentials.con"), "{e}");
    }
}
