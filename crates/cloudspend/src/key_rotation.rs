//! `cloudspend rotate-master-key`: re-seals every stored secret (connections' AWS secret access
//! keys, alert subscriptions' signing secrets) under a new master key.
//!
//! The rotation runs while servers keep serving: they are restarted first with the new key in
//! CLOUDSPEND_MASTER_KEY and the old one in CLOUDSPEND_PREVIOUS_MASTER_KEY, so they seal new
//! secrets under the new key and still open the old ones; this command then re-seals what is
//! left; last, CLOUDSPEND_PREVIOUS_MASTER_KEY is removed. Each secret is replaced only if its
//! row still holds the ciphertext read (a tenant reconnecting meanwhile keeps their new secret),
//! so running it twice, or after an interruption, is safe.

use crate::cli::RotateMasterKeyArgs;
use crate::commands::{open, previous_master_key, server_master_key};
use anyhow::{Context, bail};
use cloudspend_secrets::MasterKey;
use cloudspend_store::{SealedSecret, Store};
use std::fmt;

pub async fn run(database_url: &str, args: &RotateMasterKeyArgs) -> anyhow::Result<()> {
    let Some(new_key) = server_master_key(&args.keys)? else {
        bail!(
            "CLOUDSPEND_MASTER_KEY is not set: set it to the new key (generate one with `openssl rand -hex 32`)"
        );
    };
    let Some(old_key) = previous_master_key(&args.keys)? else {
        bail!(
            "CLOUDSPEND_PREVIOUS_MASTER_KEY is not set: set it to the key the secrets are sealed under now, \
             and CLOUDSPEND_MASTER_KEY to the new one"
        );
    };
    let store = open(database_url).await?;
    store.migrate().await.context("applying migrations")?;
    let report = rotate(store.as_ref(), &new_key, &old_key, args.dry_run).await?;
    println!("{report}");
    if !report.unopenable.is_empty() {
        bail!(
            "{} secret(s) open under neither key (listed above): they were sealed under another key. \
             Those tenants must reconnect their AWS account or recreate the alert subscription",
            report.unopenable.len()
        );
    }
    Ok(())
}

/// What a rotation did, or with `dry_run` would do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RotationReport {
    pub dry_run: bool,
    pub resealed: usize,
    pub already_under_new_key: usize,
    /// Replaced by their tenant between listing and re-sealing (their new value is under the
    /// new key already, sealed by a server running with it).
    pub changed_meanwhile: usize,
    /// Open under neither key: named by kind and tenant, never by content.
    pub unopenable: Vec<SealedSecret>,
}

impl fmt::Display for RotationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would be re-sealed"
        } else {
            "re-sealed"
        };
        write!(
            f,
            "{} secret(s) {verb} under the new key, {} already under it, {} changed meanwhile, {} open under neither key",
            self.resealed,
            self.already_under_new_key,
            self.changed_meanwhile,
            self.unopenable.len()
        )?;
        for secret in &self.unopenable {
            write!(
                f,
                "\n  cannot open: {:?} of tenant {}",
                secret.kind, secret.tenant
            )?;
        }
        Ok(())
    }
}

/// Re-seals, under `new_key`, every stored secret that opens under `old_key`.
pub async fn rotate(
    store: &dyn Store,
    new_key: &MasterKey,
    old_key: &MasterKey,
    dry_run: bool,
) -> anyhow::Result<RotationReport> {
    let mut report = RotationReport {
        dry_run,
        ..RotationReport::default()
    };
    for secret in store.sealed_secrets().await? {
        if new_key.sealed_under_this_key(secret.tenant, &secret.ciphertext) {
            report.already_under_new_key += 1;
            continue;
        }
        let Ok(plain) = old_key.open(secret.tenant, &secret.ciphertext) else {
            report.unopenable.push(secret);
            continue;
        };
        if dry_run {
            report.resealed += 1;
            continue;
        }
        let resealed = new_key.seal(secret.tenant, &plain);
        if store.reseal(&secret, &resealed).await? {
            report.resealed += 1;
        } else {
            report.changed_meanwhile += 1;
        }
    }
    Ok(report)
}
