//! Every row of one tenant, read with SQL from the test database, for tests that must prove a
//! sequence of requests changed nothing of it. The tables are found in the schema (every table
//! with a `tenant_id` column), so a table added later is dumped without editing this module.

use cloudspend_core::TenantId;
use serde_json::Value;
use sqlx::Connection;
use std::collections::BTreeMap;

/// Table name to its rows of the tenant, each row as JSON, in a stable order.
pub type Rows = BTreeMap<String, Vec<Value>>;

/// The tenant's rows in every table holding `tenant_id`, its row in `tenants`, and the `users`
/// rows of its members (under "users of members").
pub async fn tenant_rows(database_url: &str, tenant: TenantId) -> Rows {
    let mut db = sqlx::PgConnection::connect(database_url)
        .await
        .expect("connect to the test database");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY 1",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(
        tables.len() >= 15,
        "the schema lost its tenant tables? {tables:?}"
    );
    let mut rows = Rows::new();
    for table in tables {
        // `table` comes from the catalogue, quoted as an identifier: nothing to inject.
        let select = format!(
            "SELECT to_jsonb(t)::text FROM \"{table}\" t WHERE tenant_id = $1::uuid ORDER BY 1"
        );
        rows.insert(table, select_json(&mut db, &select, tenant).await);
    }
    rows.insert(
        "tenants".into(),
        select_json(
            &mut db,
            "SELECT to_jsonb(t)::text FROM tenants t WHERE id = $1::uuid",
            tenant,
        )
        .await,
    );
    rows.insert(
        "users of members".into(),
        select_json(
            &mut db,
            "SELECT to_jsonb(u)::text FROM users u WHERE id IN \
             (SELECT user_id FROM memberships WHERE tenant_id = $1::uuid) ORDER BY 1",
            tenant,
        )
        .await,
    );
    rows
}

async fn select_json(db: &mut sqlx::PgConnection, select: &str, tenant: TenantId) -> Vec<Value> {
    let texts: Vec<String> = sqlx::query_scalar(select)
        .bind(tenant.to_string())
        .fetch_all(db)
        .await
        .unwrap_or_else(|e| panic!("{select}: {e}"));
    texts
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect()
}

/// A row present on one side only (a changed row is one of each).
#[derive(Debug)]
pub struct Difference {
    pub table: String,
    /// Added (true) or gone (false).
    pub added: bool,
    pub row: Value,
}

/// The rows of `after` not in `before` and the other way round.
pub fn differences(before: &Rows, after: &Rows) -> Vec<Difference> {
    let empty = Vec::new();
    let mut found = Vec::new();
    let tables: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for table in tables {
        let old = before.get(table).unwrap_or(&empty);
        let new = after.get(table).unwrap_or(&empty);
        for (rows, others, added) in [(new, old, true), (old, new, false)] {
            for row in rows.iter().filter(|row| !others.contains(row)) {
                found.push(Difference {
                    table: table.clone(),
                    added,
                    row: row.clone(),
                });
            }
        }
    }
    found
}
