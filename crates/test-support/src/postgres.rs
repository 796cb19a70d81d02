//! Fresh, empty databases for tests: on the server named by `DATABASE_URL` when it is set, otherwise on one
//! throwaway cluster per test process (started on first use from the installed binaries, removed when the process
//! ends). Each call creates a new database, so tests never see each other's rows and can run in parallel.

use std::sync::OnceLock;

use local_postgres::Cluster;
use sqlx::{Connection, PgConnection};

/// The server every database of this process is created on.
struct Server {
    /// A URL of the server whose path we replace with each new database's name.
    admin_url: url::Url,
    /// Keeps a throwaway cluster alive for the life of the process.
    _cluster: Option<Cluster>,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Server {
            admin_url: url.parse().unwrap_or_else(|error| panic!("DATABASE_URL is not a URL ({error}): {url}")),
            _cluster: None,
        },
        _ => {
            let cluster = Cluster::start_throwaway()
                .unwrap_or_else(|error| panic!("cannot start a throwaway Postgres for the tests: {error}"));
            Server {
                admin_url: cluster.url("postgres").parse().expect("cluster URLs are valid"),
                _cluster: Some(cluster),
            }
        }
    })
}

/// Creates a new empty database and returns its connection URL.
///
/// Panics with the reason when no server can be had: a test that needs Postgres must fail, not skip.
pub async fn fresh_database() -> String {
    let server = server();
    let name = format!("cruddur_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(server.admin_url.as_str())
        .await
        .unwrap_or_else(|error| panic!("cannot connect to the test Postgres at {}: {error}", server.admin_url));
    sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|error| panic!("cannot create test database {name}: {error}"));
    let _ = admin.close().await;
    let mut url = server.admin_url.clone();
    url.set_path(&name);
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_call_gives_a_separate_empty_database() {
        let first = fresh_database().await;
        let second = fresh_database().await;
        assert_ne!(first, second);
        let mut connection = PgConnection::connect(&first).await.unwrap();
        sqlx::query("CREATE TABLE only_here (id int)").execute(&mut connection).await.unwrap();
        let mut other = PgConnection::connect(&second).await.unwrap();
        let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'")
            .fetch_one(&mut other)
            .await
            .unwrap();
        assert_eq!(tables, 0);
    }
}
