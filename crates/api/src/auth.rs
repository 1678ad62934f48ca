//! Who is calling: bearer tokens, passwords, and the extractors handlers take.
//!
//! Tokens are 256 random bits, shown to the client once and stored only as their SHA-256.
//! Passwords are hashed with argon2id. The tenant of a request comes from the token (the tenant
//! chosen at login) or from `X-Tenant-Id`, and only when the user is a member of it: never from
//! a path or body parameter.

use crate::error::ApiError;
use crate::state::AppState;
use argon2::Argon2;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use chrono::Utc;
use cloudspend_core::{Role, TenantId};
use cloudspend_store::{Tenant, User};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const TENANT_HEADER: &str = "x-tenant-id";
const TOKEN_PREFIX: &str = "cst_";

/// At most one argon2 computation per core at a time. Each takes 19 MiB and a core for tens of
/// milliseconds: unbounded, a burst of a few hundred logins took gigabytes and both cores from
/// every tenant. A caller waits at most [`HASHING_WAIT`] for its turn, then is told to retry.
static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::sync::Semaphore::new(cores)
});

/// How long a login or sign-up waits for a hashing slot before it is answered 429.
pub const HASHING_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs `work` (an argon2 computation) on a blocking thread once a hashing slot is free.
async fn hashing<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    bounded(&HASHING, HASHING_WAIT, work).await
}

async fn bounded<T: Send + 'static>(
    slots: &tokio::sync::Semaphore,
    wait: std::time::Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _slot = tokio::time::timeout(wait, slots.acquire())
        .await
        .map_err(|_| ApiError::TooManyRequests {
            message: "the server is busy checking other passwords: try again in a second".into(),
            retry_after_secs: 1,
        })?
        .expect("the hashing semaphore is never closed");
    Ok(tokio::task::spawn_blocking(work)
        .await
        .map_err(anyhow::Error::from)?)
}

/// argon2's working memory (19 MiB with the default parameters), kept between computations. The
/// argon2 crate allocates and frees it on every call, and the allocator keeps freed blocks of
/// that size in per-thread arenas: a login flood took the server from 60 MiB to 400-900 MiB
/// although only one hash per core ran at a time. At most one buffer per hashing slot exists.
static BLOCKS: std::sync::Mutex<Vec<Vec<argon2::Block>>> = std::sync::Mutex::new(Vec::new());

/// argon2 of `password` with `argon`'s parameters into `out`, in a reused buffer.
fn argon2_into(
    argon: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    let mut blocks = BLOCKS
        .lock()
        .expect("argon2 buffers lock")
        .pop()
        .unwrap_or_default();
    blocks.resize(argon.params().block_count(), argon2::Block::default());
    let result = argon.hash_password_into_with_memory(password, salt, out, &mut blocks[..]);
    BLOCKS.lock().expect("argon2 buffers lock").push(blocks);
    result
}

/// Hashes a password with argon2id (default parameters) as a PHC string, on a blocking thread
/// (it is deliberately slow), one per core at a time.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    hashing(move || -> argon2::password_hash::Result<String> {
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_bytes = [0u8; 64];
        let raw_salt = salt.as_salt().decode_b64(&mut salt_bytes)?;
        let argon = Argon2::default();
        let output = Output::init_with(argon2::Params::DEFAULT_OUTPUT_LEN, |out| {
            Ok(argon2_into(&argon, password.as_bytes(), raw_salt, out)?)
        })?;
        Ok(PasswordHash {
            algorithm: argon2::Algorithm::Argon2id.ident(),
            version: Some(argon2::Version::V0x13.into()),
            params: ParamsString::try_from(argon.params())?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        }
        .to_string())
    })
    .await?
    .map_err(|e| anyhow::anyhow!("hashing password: {e}").into())
}

/// Checks a password against a stored hash. With no hash (unknown user) it still spends the
/// time of one verification, so response times do not reveal which emails exist.
pub async fn verify_password(
    password: String,
    stored_hash: Option<String>,
) -> Result<bool, ApiError> {
    hashing(move || {
        let hash = stored_hash.unwrap_or_else(|| DUMMY_HASH.to_string());
        let ok = matches_phc(password.as_bytes(), &hash).unwrap_or(false);
        ok && hash != DUMMY_HASH
    })
    .await
}

/// Whether `password` hashes to the PHC string `phc` (its algorithm, version, parameters and
/// salt); the outputs are compared in constant time.
fn matches_phc(password: &[u8], phc: &str) -> argon2::password_hash::Result<bool> {
    let parsed = PasswordHash::new(phc)?;
    let algorithm = argon2::Algorithm::try_from(parsed.algorithm)?;
    let version = parsed
        .version
        .map(argon2::Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let params = argon2::Params::try_from(&parsed)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Ok(false);
    };
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut salt_bytes)?;
    let argon = Argon2::new(algorithm, version, params);
    let output = Output::init_with(expected.len(), |out| {
        Ok(argon2_into(&argon, password, raw_salt, out)?)
    })?;
    Ok(output == expected)
}

/// argon2id of a random password nobody knows, with the default parameters.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$Y2xvdWRzcGVuZGR1bW15$3Yv3M1v2b3m2a5ZtQ3lJ6m6ePZ0vR2bGxwq4d8uD9yA";

/// A fresh bearer token and the hash to store for it.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A caller with a valid token, whatever tenant they act in.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: User,
    pub token_hash: String,
    /// The tenant the token was issued for, if any.
    pub token_tenant: Option<TenantId>,
    /// A named API token (not a login session): it acts in its tenant and nowhere else.
    pub api_token: bool,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(done) = parts.extensions.get::<Authenticated>() {
            return Ok(done.clone());
        }
        let token = bearer_token(parts)?;
        let hash = token_hash(token);
        let record = state
            .store
            .token(&hash)
            .await?
            .ok_or_else(|| ApiError::Unauthorized {
                code: "invalid_token",
                message: "the bearer token is not valid: log in again with POST /api/auth/login"
                    .into(),
            })?;
        if record.revoked_at.is_some() {
            return Err(ApiError::Unauthorized {
                code: "token_revoked",
                message: "this token was revoked (logged out): log in again".into(),
            });
        }
        if record.expires_at <= Utc::now() {
            return Err(ApiError::Unauthorized {
                code: "token_expired",
                message: format!(
                    "this token expired at {}: log in again",
                    record.expires_at.to_rfc3339()
                ),
            });
        }
        let caller = Authenticated {
            user: record.user,
            token_hash: hash,
            token_tenant: record.tenant_id,
            api_token: record.name.is_some(),
        };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let header =
        parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized {
                code: "missing_token",
                message:
                    "send `Authorization: Bearer <token>`; get a token from POST /api/auth/login"
                        .into(),
            })?;
    header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized {
            code: "invalid_token",
            message: "the Authorization header must be `Bearer <token>`".into(),
        })
}

/// A caller acting in one tenant, with their role there. Handlers that touch tenant data take
/// this and scope every query by `caller.tenant.id`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub tenant: Tenant,
    pub role: Role,
    pub token_hash: String,
}

impl Caller {
    /// Owners and admins only; viewers get a 403 that says who can do it.
    pub fn require_manager(&self, action: &str) -> Result<(), ApiError> {
        if self.role.can_manage() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "insufficient_role",
                format!(
                    "only owners and admins can {action}; your role in this tenant is {}",
                    self.role
                ),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let auth = Authenticated::from_request_parts(parts, state).await?;
        let requested = match parts.headers.get(TENANT_HEADER) {
            Some(raw) => Some(
                raw.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<TenantId>().ok())
                    .ok_or_else(|| {
                        ApiError::bad_field("X-Tenant-Id", "X-Tenant-Id must be a tenant UUID")
                    })?,
            ),
            None => None,
        };
        if auth.api_token {
            return api_token_caller(state, auth, requested).await;
        }
        let (tenant, role) = match requested.or(auth.token_tenant) {
            Some(tenant_id) => match state.store.membership(tenant_id, auth.user.id).await? {
                Some(found) => found,
                // An unknown tenant and a tenant you are not in look the same, so tenant ids
                // cannot be probed.
                None if requested.is_some() => {
                    return Err(ApiError::Forbidden {
                        code: "not_a_member",
                        message: "you are not a member of the tenant named in X-Tenant-Id".into(),
                        field: Some("X-Tenant-Id".into()),
                    });
                }
                None => first_tenant(state, &auth).await?,
            },
            None => first_tenant(state, &auth).await?,
        };
        Ok(Caller {
            user: auth.user,
            tenant,
            role,
            token_hash: auth.token_hash,
        })
    }
}

/// A named API token acts in the tenant it was made in and nowhere else: `X-Tenant-Id` naming
/// another is refused, and once its user is no longer a member there it acts nowhere (leaving a
/// tenant revokes the user's tokens made in it; this also covers tokens made before that rule).
async fn api_token_caller(
    state: &AppState,
    auth: Authenticated,
    requested: Option<TenantId>,
) -> Result<Caller, ApiError> {
    let Some(home) = auth.token_tenant else {
        return Err(ApiError::Unauthorized {
            code: "invalid_token",
            message: "this API token belongs to no tenant: create a new one".into(),
        });
    };
    if requested.is_some_and(|wanted| wanted != home) {
        return Err(ApiError::Forbidden {
            code: "token_scope",
            message: format!(
                "this API token acts only in the tenant it was made in ({home}): make a token in the \
                 other tenant, or log in there"
            ),
            field: Some("X-Tenant-Id".into()),
        });
    }
    let Some((tenant, role)) = state.store.membership(home, auth.user.id).await? else {
        return Err(ApiError::Unauthorized {
            code: "token_revoked",
            message: "this API token's user is no longer a member of its tenant".into(),
        });
    };
    Ok(Caller {
        user: auth.user,
        tenant,
        role,
        token_hash: auth.token_hash,
    })
}

/// A login session's tenant is gone (the user was removed from it): fall back to their oldest
/// membership rather than failing every request.
async fn first_tenant(state: &AppState, auth: &Authenticated) -> Result<(Tenant, Role), ApiError> {
    let tenants = state.store.tenants_of(auth.user.id).await?;
    tenants.into_iter().next().ok_or_else(|| {
        ApiError::forbidden(
            "no_tenant",
            "you are not a member of any tenant: ask an owner to invite you",
        )
    })
}

/// The global owner (platform operator), for `/api/admin/*`.
#[derive(Debug, Clone)]
pub struct GlobalOwner(pub User);

impl FromRequestParts<AppState> for GlobalOwner {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let auth = Authenticated::from_request_parts(parts, state).await?;
        if auth.user.is_global_owner {
            Ok(GlobalOwner(auth.user))
        } else {
            Err(ApiError::forbidden(
                "not_global_owner",
                "only the platform's global owner can see this",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored hashes made by the argon2 crate's own hasher (every user before the buffers were
    /// reused) verify, and ours verify with the crate's own verifier: the same PHC strings.
    #[tokio::test]
    async fn hashes_agree_with_the_argon2_crates_own_hasher_and_verifier() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"an older password", &salt)
            .unwrap()
            .to_string();
        assert!(matches_phc(b"an older password", &theirs).unwrap());
        assert!(!matches_phc(b"another password", &theirs).unwrap());
        let ours = hash_password("a newer password".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"a newer password", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"not it", &parsed)
                .is_err()
        );
        // Weaker parameters in a stored hash are read from it, not assumed.
        let light = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"light", &salt)
        .unwrap()
        .to_string();
        assert!(matches_phc(b"light", &light).unwrap());
    }

    #[tokio::test]
    async fn hashing_waits_for_a_slot_and_answers_429_when_none_frees_up() {
        let slots = tokio::sync::Semaphore::new(1);
        let wait = std::time::Duration::from_millis(50);
        assert_eq!(bounded(&slots, wait, || 7).await.unwrap(), 7);
        let _busy = slots.acquire().await.unwrap();
        let refused = bounded(&slots, wait, || 7).await.unwrap_err();
        assert!(
            matches!(
                refused,
                ApiError::TooManyRequests {
                    retry_after_secs: 1,
                    ..
                }
            ),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse battery".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse battery".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("anything at all".into(), None)
                .await
                .unwrap()
        );
    }

    #[test]
    fn the_dummy_hash_parses_so_unknown_emails_cost_a_full_verification() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn tokens_are_random_and_stored_as_hashes() {
        let (a, hash_a) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 43);
        assert_eq!(hash_a, token_hash(&a));
        assert_eq!(hash_a.len(), 64);
        assert!(!hash_a.contains(&a));
    }
}
