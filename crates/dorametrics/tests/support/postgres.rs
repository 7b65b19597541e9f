//! Throwaway PostgreSQL databases for tests: each created under a random name on the server
//! `DORA_TEST_POSTGRES_URL` names (the local server by default), and dropped again when its
//! [`TestDatabase`] is dropped.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

/// The variable naming the PostgreSQL server tests use; unset, [`DEFAULT_URL`].
pub const URL_ENV: &str = "DORA_TEST_POSTGRES_URL";

/// The local server the PostgreSQL tests use when [`URL_ENV`] is unset.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `DORA_TEST_POSTGRES=skip` leaves the PostgreSQL tests out (each says so and passes); without
/// it they run, and fail when the server is unreachable.
pub const SKIP_ENV: &str = "DORA_TEST_POSTGRES";

/// Test databases are named `dora_test_<16 hex digits>`.
pub const NAME_PREFIX: &str = "dora_test_";

/// The URL of the test PostgreSQL server; `None` only when `DORA_TEST_POSTGRES=skip`.
pub fn server_url() -> Option<String> {
    if std::env::var(SKIP_ENV).is_ok_and(|value| value.trim() == "skip") {
        eprintln!("not run on PostgreSQL: {SKIP_ENV}=skip");
        return None;
    }
    let url = std::env::var(URL_ENV)
        .ok()
        .map(|url| url.trim().to_string())
        .filter(|url| !url.is_empty());
    Some(url.unwrap_or_else(|| DEFAULT_URL.to_string()))
}

/// `url` naming database `name` instead of its own; user, host and parameters kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url
        .split_once("://")
        .unwrap_or_else(|| panic!("{URL_ENV} must be a postgres:// URL"));
    let (rest, params) = match rest.split_once('?') {
        Some((rest, params)) => (rest, format!("?{params}")),
        None => (rest, String::new()),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{authority}/{name}{params}")
}

/// A fresh, empty database; dropped (`WITH (FORCE)`, so connections still open do not stop it)
/// when this value is.
pub struct TestDatabase {
    /// The URL to give `dora_store::open` or `dorametrics --database`.
    pub url: String,
    pub name: String,
    server: String,
}

impl TestDatabase {
    /// Creates a fresh database on the server `server` (a URL of any database on it).
    pub async fn create(server: &str) -> TestDatabase {
        let name = format!("{NAME_PREFIX}{:016x}", rand::random::<u64>());
        let client = connect(server).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        TestDatabase {
            url: with_database(server, &name),
            name,
            server: server.to_string(),
        }
    }
}

impl TestDatabase {
    /// A name for a database not created yet (for tests that create it), dropped all the same.
    pub fn absent(server: &str) -> TestDatabase {
        let name = format!("{NAME_PREFIX}{:016x}", rand::random::<u64>());
        TestDatabase {
            url: with_database(server, &name),
            name,
            server: server.to_string(),
        }
    }

    /// A client of this database, for a test to act on it behind the server's back.
    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop is synchronous and may run inside a runtime (or while unwinding from a failed
        // test): the drop gets a thread and a runtime of its own.
        let (server, name) = (self.server.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database")
                .block_on(drop_database(&server, &name))
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                eprintln!("warning: test database {} left behind: {error}", self.name)
            }
            Err(_) => eprintln!("warning: test database {} left behind", self.name),
        }
    }
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot connect to the test PostgreSQL server ({URL_ENV}, default {DEFAULT_URL}; \
                 {SKIP_ENV}=skip leaves these tests out): {e}"
            )
        });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

async fn drop_database(server: &str, name: &str) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(server, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    // A pool that reconnects at just the wrong moment makes one attempt fail; try again.
    let mut attempt = 0;
    loop {
        match client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
        {
            Ok(()) => return Ok(()),
            Err(_) if attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error),
        }
    }
}
