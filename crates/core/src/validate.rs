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
        Self {
            field,
            message: message.into(),
        }
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
        Err(Invalid::new(
            field,
            "must be an email address such as ana@example.com",
        ))
    }
}

pub fn password(field: &'static str, raw: &str) -> Result<(), Invalid> {
    let chars = raw.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        return Err(Invalid::new(
            field,
            format!("must be at least {PASSWORD_MIN_CHARS} characters"),
        ));
    }
    if chars > PASSWORD_MAX_CHARS {
        return Err(Invalid::new(
            field,
            format!("must be at most {PASSWORD_MAX_CHARS} characters"),
        ));
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
        assert_eq!(
            email("email", " Ana@Example.COM ").unwrap(),
            "ana@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "a@b@c.com",
        ] {
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

/// Regions CloudSpend collects from: the commercial AWS regions (opt-in ones included; an
/// account that has not enabled one gets a clear OptInRequired at diagnostics time).
pub const KNOWN_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
];

pub fn region(field: &'static str, raw: &str) -> Result<String, Invalid> {
    let region = raw.trim();
    if KNOWN_REGIONS.contains(&region) {
        Ok(region.to_string())
    } else {
        Err(Invalid::new(
            field,
            format!("`{region}` is not an AWS region CloudSpend knows (e.g. us-east-1, eu-west-1)"),
        ))
    }
}

/// `arn:aws[-partition]:iam::<12 digits>:role/<optional path/>name`; returns the account id.
pub fn role_arn(field: &'static str, raw: &str) -> Result<String, Invalid> {
    let arn = raw.trim();
    let bad = || {
        Invalid::new(
            field,
            "must be an IAM role ARN like arn:aws:iam::123456789012:role/CloudSpendReadOnly",
        )
    };
    let rest = arn.strip_prefix("arn:").ok_or_else(bad)?;
    let (partition, rest) = rest.split_once(':').ok_or_else(bad)?;
    let partition_ok = partition == "aws"
        || partition.strip_prefix("aws-").is_some_and(|p| {
            !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        });
    let rest = rest.strip_prefix("iam::").ok_or_else(bad)?;
    let (account, resource) = rest.split_once(':').ok_or_else(bad)?;
    let name = resource.strip_prefix("role/").ok_or_else(bad)?;
    let name_ok = !name.is_empty()
        && name.len() <= 512
        && !name.ends_with('/')
        && name.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
        });
    if !partition_ok || !is_account_id(account) || !name_ok {
        return Err(bad());
    }
    Ok(account.to_string())
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Athena database, table and workgroup names end up in SQL and API calls: letters, digits and
/// underscores only (workgroups may also use `-` and `.`, which never reach SQL), bounded.
pub fn athena_identifier(
    field: &'static str,
    raw: &str,
    max_len: usize,
) -> Result<String, Invalid> {
    let name = raw.trim();
    if name.is_empty()
        || name.len() > max_len
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Invalid::new(
            field,
            format!(
                "must be 1 to {max_len} letters, digits or underscores (it is used in Athena SQL)"
            ),
        ));
    }
    Ok(name.to_string())
}

pub fn athena_workgroup(field: &'static str, raw: &str) -> Result<String, Invalid> {
    let name = raw.trim();
    if name.is_empty()
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(Invalid::new(
            field,
            "must be 1 to 128 letters, digits, `_`, `.` or `-`",
        ));
    }
    Ok(name.to_string())
}

/// S3 bucket naming rules: 3-63 characters, lowercase letters, digits, `.` and `-`, starting and
/// ending with a letter or digit, no `..`, not shaped like an IP address.
pub fn s3_bucket(field: &'static str, raw: &str) -> Result<String, Invalid> {
    let name = raw.trim();
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    let ends_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    let ip_like = name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok());
    if !(3..=63).contains(&name.len()) || !chars_ok || !ends_ok || name.contains("..") || ip_like {
        return Err(Invalid::new(
            field,
            "must be a valid S3 bucket name: 3-63 lowercase letters, digits, dots or hyphens",
        ));
    }
    Ok(name.to_string())
}

/// An S3 key prefix: no `..` segments, no leading `/`, printable, at most 512 characters.
pub fn s3_prefix(field: &'static str, raw: &str) -> Result<String, Invalid> {
    let prefix = raw.trim();
    if prefix.len() > 512
        || prefix.starts_with('/')
        || prefix.split('/').any(|seg| seg == ".." || seg == ".")
        || prefix.contains("..")
        || prefix.chars().any(|c| c.is_control())
    {
        return Err(Invalid::new(
            field,
            "must be an S3 key prefix without `..`, a leading `/` or control characters",
        ));
    }
    Ok(prefix.to_string())
}

#[cfg(test)]
mod aws_field_tests {
    use super::*;

    #[test]
    fn role_arns_are_checked_and_yield_the_account() {
        assert_eq!(
            role_arn("aws_role_arn", "arn:aws:iam::123456789012:role/CloudSpend").unwrap(),
            "123456789012"
        );
        assert_eq!(
            role_arn(
                "aws_role_arn",
                "arn:aws-us-gov:iam::123456789012:role/path/to/Role_1"
            )
            .unwrap(),
            "123456789012"
        );
        for bad in [
            "",
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a b",
            "arn:AWS:iam::123456789012:role/x",
        ] {
            assert!(role_arn("aws_role_arn", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn athena_names_cannot_carry_sql() {
        assert!(athena_identifier("athena_table", "cur_2024", 255).is_ok());
        for bad in ["x; DROP TABLE y", "a-b", "", "tbl\"", "a.b"] {
            assert_eq!(
                athena_identifier("athena_table", bad, 255)
                    .unwrap_err()
                    .field,
                "athena_table",
                "{bad}"
            );
        }
        assert!(athena_identifier("athena_db", &"a".repeat(256), 255).is_err());
    }

    #[test]
    fn buckets_prefixes_and_regions_follow_aws_rules() {
        assert!(s3_bucket("cur_bucket", "my-cur.bucket-1").is_ok());
        for bad in [
            "ab",
            "My-Bucket",
            "-bucket",
            "bucket-",
            "a..b",
            "192.168.1.1",
            "bucket_name",
        ] {
            assert!(s3_bucket("cur_bucket", bad).is_err(), "{bad}");
        }
        assert!(s3_prefix("cur_prefix", "cur/daily/").is_ok());
        for bad in ["../etc", "a/../b", "/abs"] {
            assert!(s3_prefix("cur_prefix", bad).is_err(), "{bad}");
        }
        assert!(region("region", "eu-west-1").is_ok());
        assert!(region("region", "mars-north-1").is_err());
    }
}
