//! Fresh databases for tests: a new PostgreSQL database or SQLite file per test, named by a
//! UUID, so tests run in parallel without seeing each other's rows.
//!
//! PostgreSQL comes from `CLOUDSPEND_TEST_POSTGRES_URL`, which `scripts/test.sh` sets after
//! starting a throwaway cluster. When it is missing the test fails and says how to get one:
//! a store test that silently skipped would prove nothing.

use crate::{Store, postgres::PgStore, sqlite::SqliteStore};
use sqlx::Connection;
use std::sync::Arc;

pub const POSTGRES_URL_VAR: &str = "CLOUDSPEND_TEST_POSTGRES_URL";

/// The admin URL of the test cluster, or a panic that says how to start one.
pub fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_URL_VAR} is not set: this test needs PostgreSQL. Run the tests with \
             scripts/test.sh (it starts a throwaway cluster), or point {POSTGRES_URL_VAR} at a \
             server where the user may CREATE DATABASE, e.g. postgres://postgres@127.0.0.1:5432/postgres"
        )
    })
}

/// Creates an empty database on the test cluster and returns its URL.
pub async fn fresh_postgres_url() -> String {
    let admin = postgres_admin_url();
    let name = format!("cs_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach the test PostgreSQL at {}: {e}",
                crate::redact_url(&admin)
            )
        });
    // `name` is `cs_test_` + 32 hex digits we generated: safe to splice (DDL takes no binds).
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE on the test cluster");
    replace_database(&admin, &name)
}

/// A migrated PostgreSQL store on a fresh database.
pub async fn fresh_postgres() -> Arc<dyn Store> {
    let url = fresh_postgres_url().await;
    let store = PgStore::connect(&url)
        .await
        .expect("connect to the fresh test database");
    store
        .migrate()
        .await
        .expect("migrate the fresh test database");
    Arc::new(store)
}

/// A migrated SQLite store in a new file under the system temp folder.
pub async fn fresh_sqlite() -> Arc<dyn Store> {
    let path = std::env::temp_dir().join(format!(
        "cloudspend-test-{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open test SQLite");
    store.migrate().await.expect("migrate test SQLite");
    Arc::new(store)
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn swaps_the_database_name_and_keeps_options() {
        assert_eq!(
            super::replace_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            super::replace_database("postgres://u@h:1", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            super::replace_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
