//! Postgres: the pool, migrations, and store-wide settings.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::Config;

/// The schema migrations, compiled in.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Opens a pool to `config.database_url`, in `config.database_schema` when set.
/// Fails (within a few seconds) when Postgres cannot be reached.
pub async fn connect(config: &Config) -> anyhow::Result<PgPool> {
    let mut opts = PgConnectOptions::from_str(&config.database_url)
        .context("DATABASE_URL is not a valid postgres URL")?
        // Names the process in pg_stat_activity (which replica holds a lock).
        .application_name(&format!("stockd-{}", std::process::id()));
    if let Some(schema) = &config.database_schema {
        opts = opts.options([("search_path", schema.as_str())]);
    }
    PgPoolOptions::new()
        .max_connections(config.database_pool_size)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(opts)
        .await
        .with_context(|| format!("cannot connect to Postgres at {}", redact(&config.database_url)))
}

/// Creates the schema (when one is configured) and applies every migration.
pub async fn migrate(pool: &PgPool, config: &Config) -> anyhow::Result<()> {
    if let Some(schema) = &config.database_schema {
        // The name is checked to be [A-Za-z0-9_] by Config.
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(pool)
            .await
            .context("creating the database schema")?;
    }
    MIGRATOR.run(pool).await.context("applying migrations")?;
    Ok(())
}

/// Fails unless every migration this binary knows has been applied.
pub async fn check_migrated(pool: &PgPool) -> anyhow::Result<()> {
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
        .unwrap_or_default();
    let missing: Vec<i64> = MIGRATOR.iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect();
    anyhow::ensure!(missing.is_empty(), "database is missing migrations {missing:?}: run `stockd migrate` first");
    Ok(())
}

/// The partition count of this store: the one recorded at set-up, or
/// `configured`, recorded now if this is the first start.
pub async fn partition_count(pool: &PgPool, configured: u32) -> anyhow::Result<u32> {
    sqlx::query("INSERT INTO store_meta (key, value) VALUES ('partitions', $1) ON CONFLICT (key) DO NOTHING")
        .bind(configured.to_string())
        .execute(pool)
        .await
        .context("recording the partition count")?;
    let stored: String = sqlx::query_scalar("SELECT value FROM store_meta WHERE key = 'partitions'")
        .fetch_one(pool)
        .await
        .context("reading the partition count")?;
    let stored: u32 = stored.parse().context("store_meta.partitions is not a number")?;
    if stored != configured {
        tracing::warn!(
            stored,
            configured,
            "STOCKD_PARTITIONS differs from the count fixed at set-up; using the stored one"
        );
    }
    Ok(stored)
}

/// A URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Creates the database named in `url` if it does not exist (local mode).
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    use sqlx::ConnectOptions;
    let opts = PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid postgres URL")?;
    let Some(name) = opts.get_database().map(str::to_owned) else { return Ok(()) };
    let mut admin = opts
        .database("postgres")
        .connect()
        .await
        .with_context(|| format!("cannot connect to Postgres at {}", redact(url)))?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        sqlx::query(&format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\"")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {name}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }
}
