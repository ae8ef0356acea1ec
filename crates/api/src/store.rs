//! The API's cache behind a trait, [`ReleaseCache`]: the studies it knows
//! and every release it accepted. Only verified releases are ever written;
//! on [`load`] each one is verified again against the configured party keys,
//! whatever the backend, so a tampered store or a key rotation never lets a
//! bad release be served. [`SqliteCache`] is the default backend (its own
//! file, WAL, `synchronous=FULL`); [`PostgresCache`] keeps the same rows in
//! a PostgreSQL database of its own.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};
use triad_wire::messages::StudyParams;
use triad_wire::release::verify_release;
use triad_wire::VerifiedRelease;

use crate::ApiServiceError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS studies (
    id     TEXT PRIMARY KEY,
    params TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS releases (
    study_id    TEXT NOT NULL,
    release_no  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    accepted_at INTEGER NOT NULL,
    verified    TEXT NOT NULL,
    PRIMARY KEY (study_id, release_no)
);
";

/// The cache's storage. Rows come back as stored; [`load`] parses and
/// verifies them. Calls block (callers use the blocking pool).
pub trait ReleaseCache: Send + 'static {
    /// Every study row: (id, params JSON), by id.
    fn study_rows(&self) -> Result<Vec<(String, String)>, ApiServiceError>;
    /// Every release row: (study id, release no, verified release JSON), by
    /// study and release number.
    fn release_rows(&self) -> Result<Vec<(String, i64, String)>, ApiServiceError>;
    /// Stores or replaces a study's parameters.
    fn put_study(&self, s: &StudyParams) -> Result<(), ApiServiceError>;
    /// Stores a verified release; an already stored number is kept as is.
    fn put_release(&self, v: &VerifiedRelease, now: u64) -> Result<(), ApiServiceError>;
}

/// [`ReleaseCache`] in one SQLite file.
pub struct SqliteCache {
    conn: Connection,
    path: PathBuf,
}

/// What [`load`] found.
pub struct Loaded {
    pub studies: Vec<StudyParams>,
    pub releases: Vec<VerifiedRelease>,
    /// Rows that no longer verify (skipped, left in the file).
    pub skipped: Vec<String>,
}

fn db_err(path: &Path, e: impl std::fmt::Display) -> ApiServiceError {
    ApiServiceError::Store {
        what: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl SqliteCache {
    pub fn open(path: &Path) -> Result<Self, ApiServiceError> {
        triad_files::private_file(path).map_err(|e| db_err(path, e))?;
        let conn = Connection::open(path).map_err(|e| db_err(path, e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| db_err(path, e))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| db_err(path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| db_err(path, e))?;
        conn.execute_batch(SCHEMA).map_err(|e| db_err(path, e))?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }
}

/// Every stored study and release that still parses and verifies under
/// `keys`; the others are reported in [`Loaded::skipped`] and left alone.
pub fn load(cache: &dyn ReleaseCache, keys: &[String; 3]) -> Result<Loaded, ApiServiceError> {
    let mut studies = Vec::new();
    let mut skipped = Vec::new();
    for (id, text) in cache.study_rows()? {
        match serde_json::from_str::<StudyParams>(&text) {
            Ok(s) if s.id == id => studies.push(s),
            _ => skipped.push(format!("study {id}: unreadable row")),
        }
    }
    let mut releases = Vec::new();
    for (sid, no, text) in cache.release_rows()? {
        let checked = serde_json::from_str::<VerifiedRelease>(&text)
            .map_err(|e| e.to_string())
            .and_then(|v| verify_release(&v.signatures, keys).map_err(|e| e.to_string()));
        match checked {
            Ok(v) if v.release.study_id == sid && v.release.release_no as i64 == no => {
                releases.push(v)
            }
            Ok(_) => skipped.push(format!("release {sid}#{no}: row does not match its key")),
            Err(e) => skipped.push(format!("release {sid}#{no}: {e}")),
        }
    }
    Ok(Loaded {
        studies,
        releases,
        skipped,
    })
}

impl ReleaseCache for SqliteCache {
    fn study_rows(&self) -> Result<Vec<(String, String)>, ApiServiceError> {
        let p = &self.path;
        let mut st = self
            .conn
            .prepare("SELECT id, params FROM studies ORDER BY id")
            .map_err(|e| db_err(p, e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| db_err(p, e))?;
        rows.collect::<Result<_, _>>().map_err(|e| db_err(p, e))
    }

    fn release_rows(&self) -> Result<Vec<(String, i64, String)>, ApiServiceError> {
        let p = &self.path;
        let mut st = self
            .conn
            .prepare(
                "SELECT study_id, release_no, verified FROM releases ORDER BY study_id, release_no",
            )
            .map_err(|e| db_err(p, e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| db_err(p, e))?;
        rows.collect::<Result<_, _>>().map_err(|e| db_err(p, e))
    }

    fn put_study(&self, s: &StudyParams) -> Result<(), ApiServiceError> {
        let text = serde_json::to_string(s).expect("study serializes");
        self.conn
            .execute(
                "INSERT INTO studies (id, params) VALUES (?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET params = excluded.params",
                params![s.id, text],
            )
            .map_err(|e| db_err(&self.path, e))?;
        Ok(())
    }

    fn put_release(&self, v: &VerifiedRelease, now: u64) -> Result<(), ApiServiceError> {
        let text = serde_json::to_string(v).expect("release serializes");
        self.conn
            .execute(
                "INSERT OR IGNORE INTO releases
                 (study_id, release_no, created_at, accepted_at, verified)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    v.release.study_id,
                    v.release.release_no as i64,
                    v.release.created_at as i64,
                    now as i64,
                    text
                ],
            )
            .map_err(|e| db_err(&self.path, e))?;
        Ok(())
    }
}

/// The schema of [`PostgresCache`]: migration 1 is [`SCHEMA`] in
/// PostgreSQL's types.
const PG_MIGRATIONS: &[&str] = &["
CREATE TABLE studies (
    id     TEXT COLLATE \"C\" PRIMARY KEY,
    params TEXT NOT NULL
);
CREATE TABLE releases (
    study_id    TEXT COLLATE \"C\" NOT NULL,
    release_no  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    accepted_at BIGINT NOT NULL,
    verified    TEXT NOT NULL,
    PRIMARY KEY (study_id, release_no)
);
"];

/// [`ReleaseCache`] in a PostgreSQL database of its own.
pub struct PostgresCache {
    pool: triad_pg::Pool,
    /// The URL without its password, for errors.
    what: String,
}

impl PostgresCache {
    /// Connects to `url` and brings the schema up to date. Blocks.
    pub fn open(url: &str) -> Result<Self, ApiServiceError> {
        let what = triad_pg::redact(url);
        let err = |e: triad_pg::PgError| ApiServiceError::Store {
            what: what.clone(),
            reason: e.to_string(),
        };
        let pool = triad_pg::Pool::connect(url, 2).map_err(err)?;
        triad_pg::claim(&pool, "api").map_err(err)?;
        triad_pg::migrate(&pool, PG_MIGRATIONS).map_err(err)?;
        Ok(Self { pool, what })
    }

    fn err(&self, e: impl std::fmt::Display) -> ApiServiceError {
        ApiServiceError::Store {
            what: self.what.clone(),
            reason: e.to_string(),
        }
    }

    fn rows(&self, sql: &str) -> Result<Vec<triad_pg::postgres::Row>, ApiServiceError> {
        let mut c = self.pool.get().map_err(|e| self.err(e))?;
        c.query(sql, &[]).map_err(|e| self.err(e))
    }

    fn execute(
        &self,
        sql: &str,
        params: &[&(dyn triad_pg::postgres::types::ToSql + Sync)],
    ) -> Result<(), ApiServiceError> {
        let mut c = self.pool.get().map_err(|e| self.err(e))?;
        c.execute(sql, params).map_err(|e| self.err(e))?;
        Ok(())
    }
}

impl ReleaseCache for PostgresCache {
    fn study_rows(&self) -> Result<Vec<(String, String)>, ApiServiceError> {
        let rows = self.rows("SELECT id, params FROM studies ORDER BY id")?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(|e| self.err(e))?,
                    r.try_get(1).map_err(|e| self.err(e))?,
                ))
            })
            .collect()
    }

    fn release_rows(&self) -> Result<Vec<(String, i64, String)>, ApiServiceError> {
        let rows = self.rows(
            "SELECT study_id, release_no, verified FROM releases ORDER BY study_id, release_no",
        )?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(|e| self.err(e))?,
                    r.try_get(1).map_err(|e| self.err(e))?,
                    r.try_get(2).map_err(|e| self.err(e))?,
                ))
            })
            .collect()
    }

    fn put_study(&self, s: &StudyParams) -> Result<(), ApiServiceError> {
        let text = serde_json::to_string(s).expect("study serializes");
        self.execute(
            "INSERT INTO studies (id, params) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET params = excluded.params",
            &[&s.id, &text],
        )
    }

    fn put_release(&self, v: &VerifiedRelease, now: u64) -> Result<(), ApiServiceError> {
        let text = serde_json::to_string(v).expect("release serializes");
        self.execute(
            "INSERT INTO releases (study_id, release_no, created_at, accepted_at, verified)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[
                &v.release.study_id,
                &(v.release.release_no as i64),
                &(v.release.created_at as i64),
                &(now as i64),
                &text,
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Studies and releases load in byte order whatever the server's
    /// default collation: the ordered text columns say `COLLATE "C"`. And
    /// a database another service claimed is refused.
    #[test]
    fn the_postgres_cache_orders_bytes_and_keeps_to_its_own_database() {
        let db = triad_pg::TestDatabase::new("api_cache_schema");
        let cache = PostgresCache::open(&db.url).unwrap();
        let rows =
            triad_pg::column_collations(&cache.pool, "column_name IN ('id', 'study_id')").unwrap();
        assert_eq!(rows.len(), 2);
        for (t, c, coll) in rows {
            assert_eq!(coll.as_deref(), Some("C"), "{t}.{c}");
        }
        let other = triad_pg::TestDatabase::new("api_cache_owner");
        let pool = triad_pg::Pool::connect(&other.url, 1).unwrap();
        triad_pg::claim(&pool, "coordinator").unwrap();
        let e = PostgresCache::open(&other.url).err().expect("refused");
        assert!(e.to_string().contains("belongs to coordinator"), "{e}");
    }
}
