//! The master key encrypts tenants' AWS secret access keys at rest. It comes from
//! `CLOUDSPEND_MASTER_KEY` (64 hex characters or standard base64 of 32 bytes) and is never
//! logged. `serve` refuses to start without a valid one; `demo` makes one under ./data.

use anyhow::{Context, bail};
use base64::Engine;
use secrecy::{ExposeSecret, SecretBox};
use std::path::Path;

pub struct MasterKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        let raw = raw.trim();
        let bytes = if raw.len() == 64 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(raw).context("CLOUDSPEND_MASTER_KEY is not valid hex")?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .context("CLOUDSPEND_MASTER_KEY must be 64 hex characters or base64 of 32 bytes")?
        };
        let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) else {
            bail!("CLOUDSPEND_MASTER_KEY must be 32 bytes (64 hex characters); it is {} bytes", bytes.len())
        };
        if key.iter().all(|b| *b == key[0]) {
            bail!("CLOUDSPEND_MASTER_KEY is a repeated byte, not a key: generate one with `openssl rand -hex 32`");
        }
        Ok(Self(SecretBox::new(Box::new(key))))
    }

    pub fn generate() -> Self {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(SecretBox::new(Box::new(key)))
    }

    /// The demo's key, kept next to its database so restarts can read what earlier runs wrote.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if path.exists() {
            let raw = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            return Self::parse(&raw);
        }
        let key = Self::generate();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, hex::encode(key.0.expose_secret()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(key)
    }

    #[allow(dead_code)] // used by the AWS connection encryption (onboarding issue)
    pub fn bytes(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hex_and_base64_of_32_bytes_only() {
        let hex_key = "0f".repeat(16) + &"a1".repeat(16);
        assert!(MasterKey::parse(&hex_key).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(&hex_key).unwrap());
        assert_eq!(MasterKey::parse(&b64).unwrap().bytes(), MasterKey::parse(&hex_key).unwrap().bytes());
        assert!(MasterKey::parse("abcd").is_err());
        assert!(MasterKey::parse(&"00".repeat(32)).is_err(), "all-zero key accepted");
        assert!(MasterKey::parse("not a key at all!").is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        assert_eq!(format!("{:?}", MasterKey::generate()), "MasterKey(***)");
    }
}
