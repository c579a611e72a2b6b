//! The target database: a schema of the demo's own on PostgreSQL, or a temporary SQLite
//! file, and the facade opened on it.

use super::*;

pub(crate) enum Target {
    Postgres(Box<PgConnectOptions>),
    Sqlite(String),
}

impl Target {
    pub(crate) fn describe(&self, schema: &str) -> String {
        match self {
            Target::Postgres(_) => format!("PostgreSQL (schema {schema})"),
            Target::Sqlite(_) => "SQLite (temporary file)".into(),
        }
    }
}

pub(crate) fn check_schema_name(schema: &str) -> Result<(), BoxError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("schema name {schema:?}: expected lowercase letters, digits and _").into())
    }
}

/// Drops and recreates the demo's schema; returns connect options whose `search_path` is it.
pub(crate) async fn prepare_schema(url: &str, schema: &str) -> Result<PgConnectOptions, BoxError> {
    check_schema_name(schema)?;
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| format!("DATABASE_URL {}: {e}", vitals::pool::mask_url(url)))?;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", vitals::pool::mask_url(url)))?;
    // The name was checked above: it is an identifier, never a value.
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&admin)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(options.options([("search_path", schema)]))
}

pub(crate) async fn drop_schema(options: &PgConnectOptions, schema: &str) -> Result<(), BoxError> {
    check_schema_name(schema)?;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(())
}

/// The facade, configured from the environment with the demo's overrides: the target
/// database, a unique cache key prefix, no background warming (it would race the timings),
/// a monitor that samples often enough to see a minute-long run, and an encryption key made
/// for this run.
pub(crate) async fn open_vitals(args: &Args, target: &Target) -> Result<Vitals, BoxError> {
    let prefix = format!(
        "vitals-demo-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let mut config = Config::from_env_with(|name| match name {
        "DATABASE_URL" => match target {
            Target::Postgres(_) => args.database_url.clone(),
            Target::Sqlite(url) => Some(url.clone()),
        },
        "REDIS_URL" => args.redis_url.clone(),
        "CACHE_KEY_PREFIX" => Some(prefix.clone()),
        "CACHE_WARMING_ENABLED" => Some("false".into()),
        // vitals' tables and history in the demo's schema (its pools' search_path too).
        "VITALS_PG_SCHEMA" => Some(args.schema.clone()),
        other => std::env::var(other).ok(),
    })?;
    let key = EncryptionKey::new("demo", rand::random::<[u8; 32]>())?;
    config.cache = config.cache.with_encryption(Some(Keyring::new(key, [])));
    let builder = Vitals::builder()
        .config(config.clone())
        .monitor_interval(Duration::from_millis(250));
    let vitals = match target {
        Target::Postgres(options) => {
            let pool = config
                .pool
                .connect_postgres_with((**options).clone())
                .await?;
            builder.postgres_pool(pool).build().await?
        }
        Target::Sqlite(_) => builder.build().await?,
    };
    Ok(vitals)
}
