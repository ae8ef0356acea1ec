//! PostgreSQL for triad's stores, the option for operators who outgrow a
//! file (`--database postgres://…`; SQLite stays the default).
//!
//! What the stores build on:
//! - [`Pool`]: a few blocking connections (the stores' traits block and
//!   services run them on tokio's blocking pool, as with SQLite);
//! - [`Pool::transaction`]: every transaction is `SERIALIZABLE` and is
//!   retried when PostgreSQL reports a serialisation failure or a deadlock,
//!   so a store keeps the guarantees the SQLite store gets from serialising
//!   on one connection (of two admissions with one nullifier exactly one
//!   commits; a queue bound is never overshot). A closure's `Err` rolls the
//!   transaction back: a refusal writes nothing;
//! - statements are prepared once per connection and cached ([`Sql`] on a
//!   [`Conn`] or a [`Tx`]): rust-postgres otherwise parses and plans every
//!   statement on every call, a second round trip each;
//! - [`migrate`]: numbered migrations, each in one transaction with its
//!   version bump, under an advisory lock so two processes never race;
//! - [`create_database`]: one database per service (`triad devnet
//!   --postgres`), never shared.
//!
//! Durability: a commit returns after PostgreSQL has flushed its WAL
//! (`synchronous_commit` on, PostgreSQL's default, which [`Pool::connect`]
//! sets for its sessions in case a server default turned it off).
//!
//! Connections use no TLS: the server is expected on loopback or a unix
//! socket (docs/security.md names this limit).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

pub use postgres;
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, NoTls, Row, Statement};

/// The longest any statement may run (a release over millions of
/// contributions reads them in seconds).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(300);

/// Why PostgreSQL could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("PostgreSQL: {0}")]
    Db(#[from] postgres::Error),
    #[error("database URL: {0}")]
    Url(String),
    #[error("schema version {found} is newer than this build knows ({known})")]
    TooNew { found: i64, known: usize },
    #[error(
        "this database belongs to {found}, not {expected}: every service needs a database \
         of its own (two parties' rows reconstruct every contribution)"
    )]
    Owner { found: String, expected: String },
}

/// True for the errors after which a serialisable transaction is simply
/// run again: a serialisation failure or a deadlock.
pub fn is_conflict(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// An error type a store's transaction may fail with; [`Pool::transaction`]
/// asks it whether the failure was a conflict worth a retry.
pub trait Conflict {
    fn is_conflict(&self) -> bool;
}

impl Conflict for postgres::Error {
    fn is_conflict(&self) -> bool {
        is_conflict(self)
    }
}

impl Conflict for PgError {
    fn is_conflict(&self) -> bool {
        matches!(self, PgError::Db(e) if is_conflict(e))
    }
}

/// A connection and the statements prepared on it.
struct Session {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Session {
    fn new(client: Client) -> Self {
        Self {
            client,
            statements: HashMap::new(),
        }
    }
}

/// The prepared statement for `sql` on this connection, prepared on first
/// use (through `prepare`, the client or a transaction on it).
fn cached(
    statements: &mut HashMap<String, Statement>,
    sql: &str,
    prepare: impl FnOnce(&str) -> Result<Statement, postgres::Error>,
) -> Result<Statement, postgres::Error> {
    if let Some(s) = statements.get(sql) {
        return Ok(s.clone());
    }
    let s = prepare(sql)?;
    statements.insert(sql.to_string(), s.clone());
    Ok(s)
}

/// What the stores run SQL through: a pooled connection ([`Conn`]) or a
/// transaction ([`Tx`]), each preparing a statement once per connection.
pub trait Sql {
    fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error>;
    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error>;
    fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error>;
    fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error>;
}

/// Implements [`Sql`] and the same inherent methods (so a call resolves to
/// the cached version whether or not the trait is in scope) for a type
/// with a `statement(&mut self, sql)` method and a `runner()` to run on.
macro_rules! cached_sql {
    ($t:ty) => {
        impl $t {
            pub fn execute(
                &mut self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, postgres::Error> {
                let s = self.statement(sql)?;
                self.runner().execute(&s, params)
            }
            pub fn query(
                &mut self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<Row>, postgres::Error> {
                let s = self.statement(sql)?;
                self.runner().query(&s, params)
            }
            pub fn query_one(
                &mut self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Row, postgres::Error> {
                let s = self.statement(sql)?;
                self.runner().query_one(&s, params)
            }
            pub fn query_opt(
                &mut self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, postgres::Error> {
                let s = self.statement(sql)?;
                self.runner().query_opt(&s, params)
            }
        }
        impl Sql for $t {
            fn execute(
                &mut self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, postgres::Error> {
                <$t>::execute(self, sql, params)
            }
            fn query(
                &mut self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<Row>, postgres::Error> {
                <$t>::query(self, sql, params)
            }
            fn query_one(
                &mut self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Row, postgres::Error> {
                <$t>::query_one(self, sql, params)
            }
            fn query_opt(
                &mut self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, postgres::Error> {
                <$t>::query_opt(self, sql, params)
            }
        }
    };
}

/// A transaction of [`Pool::transaction`], with the connection's cache of
/// prepared statements.
pub struct Tx<'a> {
    tx: postgres::Transaction<'a>,
    statements: &'a mut HashMap<String, Statement>,
}

impl<'a> Tx<'a> {
    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        let tx = &mut self.tx;
        cached(self.statements, sql, |q| tx.prepare(q))
    }

    fn runner(&mut self) -> &mut postgres::Transaction<'a> {
        &mut self.tx
    }

    /// Runs several statements without parameters (not cached).
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.tx.batch_execute(sql)
    }
}

cached_sql!(Tx<'_>);

struct Idle {
    clients: Vec<Session>,
    open: usize,
}

/// A bounded pool of blocking connections to one database.
pub struct Pool {
    config: postgres::Config,
    max: usize,
    idle: Mutex<Idle>,
    freed: Condvar,
}

/// A connection borrowed from a [`Pool`]; it goes back on drop (or is
/// closed, if PostgreSQL closed it).
pub struct Conn<'a> {
    pool: &'a Pool,
    client: Option<Session>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self
            .client
            .as_ref()
            .expect("connection present until drop")
            .client
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.session().client
    }
}

impl Conn<'_> {
    fn session(&mut self) -> &mut Session {
        self.client.as_mut().expect("connection present until drop")
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        let Session { client, statements } = self.session();
        cached(statements, sql, |q| client.prepare(q))
    }

    fn runner(&mut self) -> &mut Client {
        &mut self.session().client
    }
}

cached_sql!(Conn<'_>);

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let mut idle = self.pool.lock();
        if client.client.is_closed() {
            idle.open -= 1;
            drop_off_runtime(vec![client]);
        } else {
            idle.clients.push(client);
        }
        drop(idle);
        self.pool.freed.notify_one();
    }
}

/// A `postgres::Client` owns a small tokio runtime, which must not be
/// dropped inside an async context: closed clients are dropped on a thread
/// of their own.
fn drop_off_runtime(clients: Vec<Session>) {
    if clients.is_empty() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("pg-close".into())
        .spawn(move || drop(clients));
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = self.idle.get_mut().unwrap_or_else(|p| p.into_inner());
        drop_off_runtime(std::mem::take(&mut idle.clients));
    }
}

impl Pool {
    /// Connects to `url` (`postgres://user:password@host:port/database` or
    /// PostgreSQL's `key=value` form) with at most `max` connections; one is
    /// opened now, so a wrong URL fails at start-up. Blocks: from async code
    /// call it on the blocking pool.
    pub fn connect(url: &str, max: usize) -> Result<Self, PgError> {
        let mut config = parse_config(url)?;
        // Durable commits, and no statement that waits forever (a stuck
        // one would hold a service's only batch driver); after the URL's
        // own options, which are kept.
        let options = format!(
            "{} -c synchronous_commit=on -c statement_timeout={}",
            config.get_options().unwrap_or(""),
            STATEMENT_TIMEOUT.as_millis()
        );
        config
            .options(options.trim())
            .connect_timeout(Duration::from_secs(10))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(60));
        if config.get_application_name().is_none() {
            config.application_name("triad");
        }
        let first = config.connect(NoTls)?;
        Ok(Self {
            config,
            max: max.max(1),
            idle: Mutex::new(Idle {
                clients: vec![Session::new(first)],
                open: 1,
            }),
            freed: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Borrows a connection, opening one if fewer than `max` are open and
    /// none is idle, else waiting for one.
    pub fn get(&self) -> Result<Conn<'_>, PgError> {
        let mut idle = self.lock();
        loop {
            if let Some(client) = idle.clients.pop() {
                if client.client.is_closed() {
                    idle.open -= 1;
                    drop_off_runtime(vec![client]);
                    continue;
                }
                return Ok(Conn {
                    pool: self,
                    client: Some(client),
                });
            }
            if idle.open < self.max {
                idle.open += 1;
                drop(idle);
                return match self.config.connect(NoTls) {
                    Ok(client) => Ok(Conn {
                        pool: self,
                        client: Some(Session::new(client)),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e.into())
                    }
                };
            }
            idle = self.freed.wait(idle).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Runs `f` in a `SERIALIZABLE` transaction: commits if it returns
    /// `Ok`, rolls back if it returns `Err`, and runs it again (up to 20
    /// times, with a short random pause) when PostgreSQL reports a conflict
    /// in `f` or at commit. `f` may therefore run more than once and must
    /// not have effects outside the transaction.
    pub fn transaction<T, E>(&self, mut f: impl FnMut(&mut Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<postgres::Error> + From<PgError> + Conflict,
    {
        const ATTEMPTS: u32 = 20;
        let mut conn = self.get()?;
        for attempt in 1..=ATTEMPTS {
            let Session { client, statements } = conn.session();
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::Serializable)
                .start()?;
            let mut tx = Tx { tx, statements };
            let r = f(&mut tx).and_then(|v| {
                tx.tx.commit()?;
                Ok(v)
            });
            match r {
                Err(e) if e.is_conflict() && attempt < ATTEMPTS => {
                    // The dropped transaction rolled back.
                    let pause = rand::random::<u64>() % (2 * u64::from(attempt)) + 1;
                    std::thread::sleep(Duration::from_millis(pause));
                }
                r => return r,
            }
        }
        unreachable!("the last attempt returns")
    }
}

/// Brings the database to the latest of `migrations` (numbered from 1 in
/// order): each unapplied one runs in its own transaction together with its
/// version bump, under an advisory lock. A database newer than this build
/// is refused.
pub fn migrate(pool: &Pool, migrations: &[&str]) -> Result<(), PgError> {
    let mut conn = pool.get()?;
    // The last round only checks the version.
    for i in 0..=migrations.len() {
        let mut tx = conn.transaction()?;
        // One migrator at a time, even across processes.
        tx.execute("SELECT pg_advisory_xact_lock(7261726560)", &[])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS triad_schema (version BIGINT NOT NULL);
             INSERT INTO triad_schema (version)
                 SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM triad_schema);",
        )?;
        let done: i64 = tx
            .query_one("SELECT version FROM triad_schema", &[])?
            .get(0);
        if done as usize > migrations.len() {
            return Err(PgError::TooNew {
                found: done,
                known: migrations.len(),
            });
        }
        let Some(m) = migrations.get(i).filter(|_| done as usize <= i) else {
            continue;
        };
        tx.batch_execute(m)?;
        tx.execute("UPDATE triad_schema SET version = $1", &[&(i as i64 + 1)])?;
        tx.commit()?;
    }
    Ok(())
}

/// Records `owner` (e.g. `coordinator`, `party1`, `api`) as the database's
/// owner on first use, and refuses a database another owner claimed: two
/// services, above all two parties, must never share one. Call it before
/// [`migrate`], so a foreign schema is never added.
pub fn claim(pool: &Pool, owner: &str) -> Result<(), PgError> {
    let mut conn = pool.get()?;
    let mut tx = conn.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock(7261726561)", &[])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS triad_owner (owner TEXT NOT NULL)")?;
    let found: Option<String> = tx
        .query_opt("SELECT owner FROM triad_owner", &[])?
        .map(|r| r.get(0));
    match found {
        Some(f) if f == owner => Ok(()),
        Some(f) => Err(PgError::Owner {
            found: f,
            expected: owner.to_string(),
        }),
        None => {
            tx.execute("INSERT INTO triad_owner (owner) VALUES ($1)", &[&owner])?;
            tx.commit()?;
            Ok(())
        }
    }
}

/// (table, column, collation) of the columns of the public schema that
/// `filter` (an SQL condition on `information_schema.columns`) selects: what
/// the stores' tests check ordered text columns against (`C`, byte order).
pub fn column_collations(
    pool: &Pool,
    filter: &str,
) -> Result<Vec<(String, String, Option<String>)>, PgError> {
    let rows = pool.get()?.query(
        &format!(
            "SELECT table_name::TEXT, column_name::TEXT, collation_name::TEXT
             FROM information_schema.columns
             WHERE table_schema = 'public' AND ({filter})"
        ),
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// The schema version a database is at (0 before the first migration).
pub fn schema_version(pool: &Pool) -> Result<i64, PgError> {
    let mut conn = pool.get()?;
    let exists: bool = conn
        .query_one("SELECT to_regclass('triad_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(conn
        .query_one("SELECT version FROM triad_schema", &[])?
        .get(0))
}

/// `url` with its password replaced by `***` (in the user info, in a
/// `password=` query parameter, or in the `key=value` form), for logs
/// and errors.
pub fn redact(url: &str) -> String {
    let (bare, password) = split_password(url);
    if password.is_none() {
        return url.to_string();
    }
    match bare.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) if !user.contains('/') => format!("{scheme}://{user}:***@{host}"),
            _ => format!("{bare} (password ***)"),
        },
        None => format!("{bare} password=***"),
    }
}

/// Decodes `%XX` escapes (as PostgreSQL's URL parser does).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` without its password, and the password (decoded): a devnet
/// passes the first in arguments and the second in its children's
/// environment. Handles the user info (`user:pw@`), a `password=` query
/// parameter and the `key=value` form (unquoted values).
pub fn split_password(url: &str) -> (String, Option<String>) {
    if let Some((scheme, rest)) = url.split_once("://") {
        let mut password = None;
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let mut bare = match before_query.split_once('@') {
            Some((auth, host)) if !auth.contains('/') => match auth.split_once(':') {
                Some((user, pw)) => {
                    password = Some(percent_decode(pw));
                    format!("{scheme}://{user}@{host}")
                }
                None => format!("{scheme}://{before_query}"),
            },
            _ => format!("{scheme}://{before_query}"),
        };
        if let Some(q) = query {
            let kept: Vec<&str> = q
                .split('&')
                .filter(|kv| match kv.strip_prefix("password=") {
                    Some(pw) => {
                        password = Some(percent_decode(pw));
                        false
                    }
                    None => true,
                })
                .collect();
            if !kept.is_empty() {
                bare.push('?');
                bare.push_str(&kept.join("&"));
            }
        }
        return (bare, password);
    }
    let mut password = None;
    let kept: Vec<&str> = url
        .split_whitespace()
        .filter(|kv| match kv.strip_prefix("password=") {
            Some(p) => {
                password = Some(p.trim_matches('\'').to_string());
                false
            }
            None => true,
        })
        .collect();
    (kept.join(" "), password)
}

/// `url` naming database `name` instead of its own.
pub fn with_database(url: &str, name: &str) -> Result<String, PgError> {
    check_name(name)?;
    if let Some((scheme, rest)) = url.split_once("://") {
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        // The path starts at the first '/' after the authority.
        let authority_end = before_query.rfind('@').map(|at| at + 1).unwrap_or(0);
        let authority = match before_query[authority_end..].find('/') {
            Some(slash) => &before_query[..authority_end + slash],
            None => before_query,
        };
        let mut out = format!("{scheme}://{authority}/{name}");
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        return Ok(out);
    }
    let kept: Vec<&str> = url
        .split_whitespace()
        .filter(|kv| !kv.starts_with("dbname="))
        .collect();
    Ok(format!("{} dbname={name}", kept.join(" "))
        .trim()
        .to_string())
}

fn check_name(name: &str) -> Result<(), PgError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(PgError::Url(format!(
            "database name {name:?}: use 1-63 of a-z, 0-9 and _, not starting with a digit"
        )))
    }
}

/// Runs `f` on a thread of its own: a `postgres::Client` blocks on a
/// runtime of its own, which panics on a thread that drives async tasks,
/// so the rare administrative calls below work from anywhere.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("PostgreSQL admin thread panicked"))
}

/// Creates database `name` on the server `admin_url` reaches (if it does
/// not exist) and returns the URL of it. Blocks (callable from async code).
pub fn create_database(admin_url: &str, name: &str) -> Result<String, PgError> {
    check_name(name)?;
    off_runtime(|| -> Result<(), PgError> {
        let mut c = connect_admin(admin_url)?;
        let exists = c
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])?
            .is_some();
        if !exists {
            // The name is checked above: quoting it is safe.
            match c.batch_execute(&format!("CREATE DATABASE \"{name}\"")) {
                Ok(()) => {}
                // Created concurrently by another process: fine.
                Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    })?;
    with_database(admin_url, name)
}

/// Drops database `name` (closing its other sessions first). Blocks
/// (callable from async code).
pub fn drop_database(admin_url: &str, name: &str) -> Result<(), PgError> {
    check_name(name)?;
    off_runtime(|| -> Result<(), PgError> {
        let mut c = connect_admin(admin_url)?;
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        // FORCE ends our own sessions, not the server's: an autovacuum
        // worker still busy on the database (after a large import) makes
        // the drop fail until it is done.
        let mut attempt = 0;
        loop {
            match c.batch_execute(&sql) {
                Ok(()) => return Ok(()),
                Err(e)
                    if attempt < 30
                        && matches!(
                            e.code(),
                            Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE
                                || *c == SqlState::OBJECT_IN_USE
                        ) =>
                {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(e.into()),
            }
        }
    })
}

/// Parses `url`; a URL without a password takes `PGPASSWORD` from the
/// environment, as libpq does (so no password need appear in arguments).
fn parse_config(url: &str) -> Result<postgres::Config, PgError> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| PgError::Url(format!("{}: {e}", redact(url))))?;
    if config.get_password().is_none() {
        if let Ok(p) = std::env::var("PGPASSWORD") {
            config.password(p);
        }
    }
    Ok(config)
}

fn connect_admin(url: &str) -> Result<Client, PgError> {
    let mut config = parse_config(url)?;
    config.connect_timeout(Duration::from_secs(10));
    Ok(config.connect(NoTls)?)
}

/// The server the PostgreSQL tests use: `TRIAD_TEST_POSTGRES`, or the role
/// `.ci/run` creates on the local server.
pub fn test_server_url() -> String {
    std::env::var("TRIAD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://triad:triad@127.0.0.1:5432/postgres".into())
}

/// A fresh database for one test, dropped when this value is. The tests
/// that use it fail (never skip) when no server is reachable.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    admin: String,
}

impl TestDatabase {
    /// Creates `triad_test_<tag>_<random>` on [`test_server_url`]. Blocks;
    /// runs its blocking work on a thread of its own, so async tests may
    /// call it directly.
    pub fn new(tag: &str) -> Self {
        let tag: String = tag
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(30)
            .collect();
        let name = format!("triad_test_{tag}_{:08x}", rand::random::<u32>());
        let admin = test_server_url();
        let url = create_database(&admin, &name).unwrap_or_else(|e| {
            panic!(
                "the PostgreSQL tests need a server at {} (set TRIAD_TEST_POSTGRES, or run \
                     .ci/run as root, which installs and starts one): {e}",
                redact(&admin)
            )
        });
        Self { name, url, admin }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = drop_database(&self.admin, &self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_other_databases_and_hide_passwords() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres", "triad_api").unwrap(),
            "postgres://u:p@h:5432/triad_api"
        );
        assert_eq!(
            with_database("postgresql://u@h/x?sslmode=disable", "a_1").unwrap(),
            "postgresql://u@h/a_1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:1", "db").unwrap(),
            "postgres://h:1/db"
        );
        assert_eq!(
            with_database("host=/run/x user=u dbname=postgres", "db").unwrap(),
            "host=/run/x user=u dbname=db"
        );
        for bad in ["", "A", "1a", "a-b", "a\"b", &"a".repeat(64)] {
            assert!(with_database("postgres://h/x", bad).is_err(), "{bad:?}");
        }
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("host=h password=secret"), "host=h password=***");
        for url in [
            "postgres://u@h/db?password=secret&sslmode=disable",
            "postgres://u:secret@h/db?password=secret",
            "host=h password='secret' user=u",
        ] {
            assert!(!redact(url).contains("secret"), "{}", redact(url));
        }
        assert_eq!(
            split_password("postgres://u@h/db?sslmode=disable&password=s%40cret"),
            (
                "postgres://u@h/db?sslmode=disable".to_string(),
                Some("s@cret".to_string())
            )
        );
        assert_eq!(
            split_password("postgres://u:p%3Aq@h/db").1.as_deref(),
            Some("p:q")
        );
        // Not an escape: kept as written, also next to multi-byte text.
        assert_eq!(percent_decode("%zz%é%4"), "%zz%é%4");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            split_password("postgres://u:secret@h/db"),
            ("postgres://u@h/db".to_string(), Some("secret".to_string()))
        );
        assert_eq!(
            split_password("host=h password=pw user=u"),
            ("host=h user=u".to_string(), Some("pw".to_string()))
        );
        assert_eq!(split_password("postgres://u@h/db").1, None);
    }

    /// Two transactions that each read a count and insert past it would
    /// overshoot a bound under READ COMMITTED; serialisable with retries
    /// keeps it exact.
    #[test]
    fn serialisable_transactions_keep_a_bound_under_concurrency() {
        let db = TestDatabase::new("pg_bound");
        let pool = std::sync::Arc::new(Pool::connect(&db.url, 8).unwrap());
        migrate(&pool, &["CREATE TABLE t (id BIGINT PRIMARY KEY)"]).unwrap();
        assert_eq!(schema_version(&pool).unwrap(), 1);
        // Idempotent.
        migrate(&pool, &["CREATE TABLE t (id BIGINT PRIMARY KEY)"]).unwrap();
        let threads: Vec<_> = (0..8i64)
            .map(|i| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    for j in 0..10i64 {
                        let r: Result<bool, PgError> = pool.transaction(|tx| {
                            let n: i64 = tx.query_one("SELECT COUNT(*) FROM t", &[])?.get(0);
                            if n >= 25 {
                                return Ok(false);
                            }
                            tx.execute("INSERT INTO t (id) VALUES ($1)", &[&(i * 100 + j)])?;
                            Ok(true)
                        });
                        r.unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n: i64 = pool
            .get()
            .unwrap()
            .query_one("SELECT COUNT(*) FROM t", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 25);
        // A database newer than the build is refused.
        assert!(matches!(
            migrate(&pool, &[]),
            Err(PgError::TooNew { found: 1, known: 0 })
        ));
    }

    /// A database serves one owner: a second service (above all a second
    /// party) is refused before any schema of its own is added.
    #[test]
    fn a_database_has_one_owner() {
        let db = TestDatabase::new("pg_owner");
        let pool = Pool::connect(&db.url, 2).unwrap();
        claim(&pool, "party0").unwrap();
        claim(&pool, "party0").unwrap();
        let e = claim(&pool, "party1").unwrap_err();
        assert!(
            matches!(&e, PgError::Owner { found, expected } if found == "party0" && expected == "party1"),
            "{e}"
        );
    }

    #[test]
    fn an_err_rolls_back() {
        let db = TestDatabase::new("pg_rollback");
        let pool = Pool::connect(&db.url, 2).unwrap();
        migrate(&pool, &["CREATE TABLE t (id BIGINT PRIMARY KEY)"]).unwrap();
        let r: Result<(), PgError> = pool.transaction(|tx| {
            tx.execute("INSERT INTO t (id) VALUES (1)", &[])?;
            Err(PgError::Url("refused".into()))
        });
        assert!(r.is_err());
        let n: i64 = pool
            .get()
            .unwrap()
            .query_one("SELECT COUNT(*) FROM t", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 0);
    }
}
