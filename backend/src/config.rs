//! The backend's configuration: flags, each with an environment variable of the shared contract.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use chrono::TimeDelta;
use clap::Parser;
use http::HeaderValue;

use crate::auth::Tokens;

/// The Cruddur API server.
#[derive(Debug, Clone, Parser)]
#[command(name = "cruddur-backend", version, about)]
pub struct Config {
    /// Port to serve the API on.
    #[arg(long, env = "PORT", default_value_t = 4567)]
    pub port: u16,

    /// Address to bind.
    #[arg(long, env = "BIND_ADDRESS", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind_address: IpAddr,

    /// Postgres connection URL, e.g. postgres://postgres:password@localhost:5432/cruddur.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// The original backend's name for DATABASE_URL, accepted when DATABASE_URL is unset.
    #[arg(long, env = "CONNECTION_URL", hide_env_values = true)]
    pub connection_url: Option<String>,

    /// Largest number of pooled database connections.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,

    /// Largest number of database connections for searches, apart from the others: searches plan each term, and
    /// however many run at once, the feeds keep their own connections.
    #[arg(long, env = "DATABASE_SEARCH_CONNECTIONS", default_value_t = 4)]
    pub database_search_connections: u32,

    /// Longest a request's database statement may run, in milliseconds, before Postgres cancels it and the request
    /// answers 503 (also the longest a request waits for a free pooled connection); 0: no limit.
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT_MS", default_value_t = 3000)]
    pub database_statement_timeout_ms: u64,

    /// Origin(s) of the frontend allowed by CORS, comma separated.
    #[arg(long, env = "FRONTEND_URL", default_value = "http://localhost:3000", value_delimiter = ',', value_parser = parse_origin)]
    pub frontend_url: Vec<HeaderValue>,

    /// Secret that signs session tokens (at least 32 characters). Unset: a random one per start, so tokens do not
    /// survive a restart.
    #[arg(long, env = "TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,

    /// How long a session token stays valid, in hours.
    #[arg(long, env = "TOKEN_TTL_HOURS", default_value_t = 24 * 7)]
    pub token_ttl_hours: u32,

    /// Load the seed users and cruds when the database has no users yet.
    #[arg(long, env = "SEED_IF_EMPTY")]
    pub seed_if_empty: bool,
}

/// A setting that stops start-up, named as the user would set it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "set DATABASE_URL (or CONNECTION_URL) to the Postgres URL, e.g. postgres://postgres:password@localhost:5432/cruddur"
    )]
    MissingDatabaseUrl,
    #[error("TOKEN_SECRET must be at least 32 characters long")]
    WeakTokenSecret,
}

impl Config {
    /// `DATABASE_URL`, else `CONNECTION_URL`.
    pub fn database_url(&self) -> Result<&str, ConfigError> {
        [&self.database_url, &self.connection_url]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .find(|url| !url.trim().is_empty())
            .ok_or(ConfigError::MissingDatabaseUrl)
    }

    /// `TOKEN_SECRET`; empty counts as unset (compose passes unset host variables as empty strings).
    pub fn token_secret(&self) -> Result<Option<&[u8]>, ConfigError> {
        match self.token_secret.as_deref().filter(|secret| !secret.is_empty()) {
            Some(secret) if secret.len() < 32 => Err(ConfigError::WeakTokenSecret),
            secret => Ok(secret.map(str::as_bytes)),
        }
    }

    /// The session-token signer: `TOKEN_SECRET`'s, or a random key (said at `warn`: sessions end at restart).
    pub fn tokens(&self) -> Result<Tokens, ConfigError> {
        let ttl = TimeDelta::hours(self.token_ttl_hours.into());
        Ok(match self.token_secret()? {
            Some(secret) => Tokens::new(secret, ttl),
            None => {
                tracing::warn!("TOKEN_SECRET is unset: sessions are signed with a random key and end at restart");
                Tokens::random(ttl)
            }
        })
    }

    pub fn statement_timeout(&self) -> Duration {
        Duration::from_millis(self.database_statement_timeout_ms)
    }

    pub fn listen_address(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.port)
    }
}

/// An origin as the browser sends it: scheme, host and port, no path (a trailing slash is forgiven).
fn parse_origin(raw: &str) -> Result<HeaderValue, String> {
    let origin = raw.trim().trim_end_matches('/');
    let (scheme, rest) =
        origin.split_once("://").ok_or_else(|| format!("{raw:?} is not a URL like http://localhost:3000"))?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('/') {
        return Err(format!("{raw:?} is not an origin like http://localhost:3000"));
    }
    HeaderValue::from_str(origin).map_err(|error| format!("{raw:?}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("cruddur-backend").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_follow_the_shared_contract() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.port, 4567);
        assert_eq!(config.statement_timeout(), Duration::from_secs(3));
        assert_eq!(config.frontend_url, vec![HeaderValue::from_static("http://localhost:3000")]);
    }

    #[test]
    fn connection_url_is_accepted_when_database_url_is_unset() {
        let config = parse(&["--connection-url", "postgres://db/cruddur"]).unwrap();
        assert_eq!(config.database_url().unwrap(), "postgres://db/cruddur");
        let config = parse(&["--database-url", "postgres://a/x", "--connection-url", "postgres://b/y"]).unwrap();
        assert_eq!(config.database_url().unwrap(), "postgres://a/x");
    }

    #[test]
    fn a_missing_database_url_names_the_variable() {
        let error = parse(&[]).unwrap().database_url().unwrap_err();
        assert!(error.to_string().contains("DATABASE_URL"));
    }

    #[test]
    fn bad_settings_are_refused_with_their_names() {
        let error = parse(&["--frontend-url", "localhost:3000/app"]).unwrap_err().to_string();
        assert!(error.contains("--frontend-url"), "{error}");
        let error = parse(&["--port", "http"]).unwrap_err().to_string();
        assert!(error.contains("--port"), "{error}");
        let weak = parse(&["--token-secret", "short"]).unwrap();
        assert!(weak.token_secret().unwrap_err().to_string().contains("TOKEN_SECRET"));
        let empty = parse(&["--token-secret", ""]).unwrap();
        assert_eq!(empty.token_secret().unwrap(), None, "empty is unset");
    }

    #[test]
    fn several_frontend_origins_may_be_allowed() {
        let config = parse(&["--frontend-url", "http://localhost:3000/,https://3000-x.gitpod.io"]).unwrap();
        assert_eq!(config.frontend_url.len(), 2);
        assert_eq!(config.frontend_url[0], "http://localhost:3000");
    }
}
