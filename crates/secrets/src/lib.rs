//! Secrets at rest. A tenant's AWS secret access key is sealed with AES-256-GCM under the
//! master key (`CLOUDSPEND_MASTER_KEY`) before it reaches the database, and opened only in
//! memory, into a [`SecretString`], when a collection needs it.
//!
//! Each ciphertext is bound to its tenant (the tenant id is the AEAD's associated data): a
//! ciphertext copied into another tenant's row does not open. This crate never logs, never
//! formats a secret into an error, and never writes anything anywhere.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use cloudspend_core::TenantId;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};

/// Marks the format, so a future scheme can coexist with stored values.
const VERSION_PREFIX: &str = "v1:";
const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error(
        "CLOUDSPEND_MASTER_KEY must be 32 bytes, as 64 hex characters or base64 (generate one with `openssl rand -hex 32`)"
    )]
    BadKey,
    #[error(
        "CLOUDSPEND_MASTER_KEY is a repeated byte, not a key: generate one with `openssl rand -hex 32`"
    )]
    WeakKey,
    #[error(
        "a stored secret could not be decrypted: the master key differs from the one that encrypted it, \
         or the value was altered; reconnect the AWS account to store the secret again"
    )]
    Undecryptable,
}

/// The master key and the cipher built from it. During a key rotation it also holds the
/// previous key: everything is sealed under the current key, and a secret still sealed under the
/// previous one opens too, so servers keep working while `cloudspend rotate-master-key` re-seals
/// the stored secrets (docs/OPERATIONS.md, "Rotating the master key").
pub struct MasterKey {
    key: SecretBox<[u8; 32]>,
    previous: Option<SecretBox<[u8; 32]>>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl Clone for MasterKey {
    fn clone(&self) -> Self {
        Self {
            key: copy(&self.key),
            previous: self.previous.as_ref().map(copy),
        }
    }
}

fn copy(key: &SecretBox<[u8; 32]>) -> SecretBox<[u8; 32]> {
    SecretBox::new(Box::new(*key.expose_secret()))
}

impl MasterKey {
    /// Parses 64 hex characters or standard base64 of 32 bytes.
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        let raw = raw.trim();
        let bytes = if raw.len() == 64 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(raw).map_err(|_| SecretError::BadKey)?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map_err(|_| SecretError::BadKey)?
        };
        let key = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| SecretError::BadKey)?;
        if key.iter().all(|b| *b == key[0]) {
            return Err(SecretError::WeakKey);
        }
        Ok(Self {
            key: SecretBox::new(Box::new(key)),
            previous: None,
        })
    }

    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self {
            key: SecretBox::new(Box::new(key)),
            previous: None,
        }
    }

    /// This key, also opening what `previous` sealed: for the time of a rotation, until every
    /// stored secret is sealed under this key.
    pub fn with_previous(self, previous: &MasterKey) -> Self {
        Self {
            key: self.key,
            previous: Some(copy(&previous.key)),
        }
    }

    /// Whether both are the same key (rotating to the key in use is a mistake worth naming).
    pub fn same_key_as(&self, other: &MasterKey) -> bool {
        self.key.expose_secret() == other.key.expose_secret()
    }

    /// Hex form, for writing the demo's generated key to its file.
    pub fn to_hex(&self) -> String {
        hex::encode(self.key.expose_secret())
    }

    fn cipher(&self) -> Aes256Gcm {
        cipher(&self.key)
    }

    /// Encrypts `plaintext` for `tenant`: `v1:` + base64(nonce || ciphertext || tag).
    pub fn seal(&self, tenant: TenantId, plaintext: &SecretString) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.expose_secret().as_bytes(),
                    aad: tenant.0.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a short secret cannot fail");
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!(
            "{VERSION_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        )
    }

    /// Decrypts what [`MasterKey::seal`] produced for the same tenant, under this key or,
    /// during a rotation, the previous one.
    pub fn open(&self, tenant: TenantId, sealed: &str) -> Result<SecretString, SecretError> {
        match open_with(&self.key, tenant, sealed) {
            Err(SecretError::Undecryptable) if self.previous.is_some() => {
                open_with(self.previous.as_ref().expect("checked"), tenant, sealed)
            }
            opened => opened,
        }
    }

    /// Whether `sealed` is sealed under this key itself (not only the previous one): what a
    /// rotation has already re-sealed.
    pub fn sealed_under_this_key(&self, tenant: TenantId, sealed: &str) -> bool {
        open_with(&self.key, tenant, sealed).is_ok()
    }
}

fn cipher(key: &SecretBox<[u8; 32]>) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key.expose_secret()).expect("32-byte key")
}

fn open_with(
    key: &SecretBox<[u8; 32]>,
    tenant: TenantId,
    sealed: &str,
) -> Result<SecretString, SecretError> {
    let encoded = sealed
        .strip_prefix(VERSION_PREFIX)
        .ok_or(SecretError::Undecryptable)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| SecretError::Undecryptable)?;
    if bytes.len() <= NONCE_BYTES {
        return Err(SecretError::Undecryptable);
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
    let plain = cipher(key)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: tenant.0.as_bytes(),
            },
        )
        .map_err(|_| SecretError::Undecryptable)?;
    let text = String::from_utf8(plain).map_err(|_| SecretError::Undecryptable)?;
    Ok(SecretString::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[test]
    fn sealed_secrets_open_only_for_their_tenant_and_key() {
        let key = MasterKey::generate();
        let tenant = TenantId::new();
        let sealed = key.seal(tenant, &secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"));
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("wJalrXUtnFEMI"));
        assert_eq!(
            key.open(tenant, &sealed).unwrap().expose_secret(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        );
        assert_eq!(
            key.open(TenantId::new(), &sealed).unwrap_err(),
            SecretError::Undecryptable
        );
        assert_eq!(
            MasterKey::generate().open(tenant, &sealed).unwrap_err(),
            SecretError::Undecryptable
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(key.open(tenant, &tampered).is_err());
    }

    #[test]
    fn the_same_secret_seals_differently_each_time() {
        let key = MasterKey::generate();
        let tenant = TenantId::new();
        assert_ne!(
            key.seal(tenant, &secret("x")),
            key.seal(tenant, &secret("x"))
        );
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_weak_keys_are_refused() {
        let hex_key = "0f".repeat(16) + &"a1".repeat(16);
        let from_hex = MasterKey::parse(&hex_key).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(&hex_key).unwrap());
        let from_b64 = MasterKey::parse(&b64).unwrap();
        let tenant = TenantId::new();
        assert!(
            from_b64
                .open(tenant, &from_hex.seal(tenant, &secret("s")))
                .is_ok()
        );
        assert_eq!(MasterKey::parse("abcd").unwrap_err(), SecretError::BadKey);
        assert_eq!(
            MasterKey::parse(&"00".repeat(32)).unwrap_err(),
            SecretError::WeakKey
        );
        assert_eq!(format!("{from_hex:?}"), "MasterKey(***)");
    }

    #[test]
    fn during_a_rotation_both_keys_open_and_only_the_new_one_seals() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let tenant = TenantId::new();
        let under_old = old.seal(tenant, &secret("before"));
        let rotating = new.clone().with_previous(&old);
        assert_eq!(
            rotating.open(tenant, &under_old).unwrap().expose_secret(),
            "before"
        );
        assert!(!rotating.sealed_under_this_key(tenant, &under_old));
        let under_new = rotating.seal(tenant, &secret("after"));
        assert!(rotating.sealed_under_this_key(tenant, &under_new));
        assert_eq!(
            new.open(tenant, &under_new).unwrap().expose_secret(),
            "after"
        );
        assert_eq!(
            old.open(tenant, &under_new).unwrap_err(),
            SecretError::Undecryptable
        );
        // Without the previous key, what it sealed no longer opens.
        assert_eq!(
            new.open(tenant, &under_old).unwrap_err(),
            SecretError::Undecryptable
        );
        assert!(rotating.clone().same_key_as(&new) && !new.same_key_as(&old));
    }
}
