//! Input rules, each reporting the field it applies to so the API can name it in a 422.

use std::fmt;

/// A rejected input value: which field, and what is wrong with it in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for Invalid {}

pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 256;

/// Emails are compared case-insensitively, so they are stored lower-cased and trimmed.
pub fn email(field: &'static str, raw: &str) -> Result<String, Invalid> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if valid {
        Ok(email)
    } else {
        Err(Invalid::new(field, "must be an email address such as ana@example.com"))
    }
}

pub fn password(field: &'static str, raw: &str) -> Result<(), Invalid> {
    let chars = raw.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        return Err(Invalid::new(field, format!("must be at least {PASSWORD_MIN_CHARS} characters")));
    }
    if chars > PASSWORD_MAX_CHARS {
        return Err(Invalid::new(field, format!("must be at most {PASSWORD_MAX_CHARS} characters")));
    }
    Ok(())
}

/// Display names (tenants, connections): trimmed, 1 to 100 characters, no control characters.
pub fn display_name(field: &'static str, raw: &str) -> Result<String, Invalid> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if name.chars().count() > 100 {
        return Err(Invalid::new(field, "must be at most 100 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(email("email", " Ana@Example.COM ").unwrap(), "ana@example.com");
        for bad in ["", "ana", "ana@", "@example.com", "ana@example", "a b@example.com", "a@b@c.com"] {
            assert_eq!(email("email", bad).unwrap_err().field, "email", "{bad}");
        }
    }

    #[test]
    fn passwords_have_length_limits() {
        assert!(password("password", "short").is_err());
        assert!(password("password", "long enough pass").is_ok());
        assert!(password("password", &"x".repeat(300)).is_err());
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(display_name("tenant_name", "  Acme ").unwrap(), "Acme");
        assert!(display_name("tenant_name", "   ").is_err());
        assert!(display_name("tenant_name", &"a".repeat(101)).is_err());
        assert!(display_name("tenant_name", "a\u{0}b").is_err());
    }
}
