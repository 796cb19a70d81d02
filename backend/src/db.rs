//! The database: connecting (with the statement timeout), migrating, and the sweep of expired activities. The feeds'
//! queries are in [`crate::feeds`].

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

/// The schema, from `backend/migrations`, applied at start-up.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// How often [`sweep_expired`] runs in the server.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Expired activities deleted per statement, so a sweep never holds many row locks at once.
const SWEEP_BATCH: i64 = 5_000;

/// How a pool's connections plan their prepared statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plans {
    /// Always the generic plan, made once per statement: every feed's query is written so that its generic plan is
    /// one index range (the plan test in [`crate::feeds`] checks that plan). Postgres's own choice between generic
    /// and per-execution plans depends on cost estimates that change with the data, and on a large table it planned
    /// every execution again, which cost more than running it.
    Generic,
    /// A plan for each execution's arguments: search, whose best plan depends on the term ([`crate::feeds::search`]).
    PerExecution,
}

/// A pool of at most `max_connections`, planning as `plans` says, whose every statement is cancelled after
/// `statement_timeout` (zero: never), and whose callers wait at most as long for a free connection, so that slow
/// queries answer an error instead of holding the pool.
///
/// JIT compilation is off: Postgres compiles a plan whose estimated cost passes `jit_above_cost`, and a generic plan
/// estimates its `LIMIT $1` as a tenth of the table, so on ten million activities every page of the home feed took
/// tens of milliseconds of compiling to read forty rows.
pub async fn connect(
    url: &str,
    max_connections: u32,
    statement_timeout: Duration,
    plans: Plans,
) -> Result<PgPool, sqlx::Error> {
    let plan_cache_mode = match plans {
        Plans::Generic => "force_generic_plan",
        Plans::PerExecution => "force_custom_plan",
    };
    let options = url.parse::<PgConnectOptions>()?.options([
        ("statement_timeout", statement_timeout_setting(statement_timeout).as_str()),
        ("plan_cache_mode", plan_cache_mode),
        ("jit", "off"),
    ]);
    let mut pool = PgPoolOptions::new().max_connections(max_connections);
    if !statement_timeout.is_zero() {
        pool = pool.acquire_timeout(statement_timeout);
    }
    pool.connect_with(options).await
}

/// Postgres's `statement_timeout` setting for `timeout`: milliseconds, rounded up (`0` turns it off).
fn statement_timeout_setting(timeout: Duration) -> String {
    format!("{}", timeout.as_micros().div_ceil(1000))
}

/// Applies the migrations on a connection of its own: without the pool's statement timeout, since building an index
/// on a large table takes longer than any request may.
pub async fn migrate(url: &str) -> Result<(), sqlx::migrate::MigrateError> {
    let mut connection = url.parse::<PgConnectOptions>()?.connect().await?;
    MIGRATOR.run(&mut connection).await
}

/// Deletes the activities that have expired (replies go with their crud), in batches; returns how many.
pub async fn delete_expired(db: &PgPool) -> Result<u64, sqlx::Error> {
    let mut deleted = 0;
    loop {
        let batch = sqlx::query!(
            "DELETE FROM activities WHERE uuid IN (
                 SELECT uuid FROM activities WHERE expires_at <= now() ORDER BY expires_at LIMIT $1)",
            SWEEP_BATCH
        )
        .execute(db)
        .await?
        .rows_affected();
        deleted += batch;
        if batch < SWEEP_BATCH as u64 {
            return Ok(deleted);
        }
    }
}

/// Runs [`delete_expired`] every [`SWEEP_INTERVAL`], for ever: expired activities stay out of the tables, so the
/// feeds (which skip them) never walk through many of them.
pub async fn sweep_expired(db: PgPool) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match delete_expired(&db).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "expired activities deleted"),
            Err(error) => tracing::warn!(%error, "deleting expired activities failed; trying again later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_timeout_is_set_in_whole_milliseconds() {
        assert_eq!(statement_timeout_setting(Duration::from_secs(3)), "3000");
        assert_eq!(statement_timeout_setting(Duration::from_micros(1500)), "2");
        assert_eq!(statement_timeout_setting(Duration::ZERO), "0");
    }
}
