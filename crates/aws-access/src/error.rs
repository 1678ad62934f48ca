//! The one error every collector returns: what failed, the AWS error code, message and request
//! id as AWS sent them, and a hint that tells an operator or tenant what to do.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;
use std::error::Error as StdError;
use std::fmt;

/// What went wrong, as far as a caller needs to decide what to do (HTTP status, retry, hint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The credentials are valid but lack an IAM permission (AccessDenied, UnauthorizedOperation).
    AccessDenied,
    /// The access key is unknown, deactivated or the signature is wrong.
    InvalidCredentials,
    /// Temporary credentials expired (ExpiredToken, RequestExpired).
    ExpiredCredentials,
    /// No credentials could be obtained: AssumeRole failed or the default chain found none.
    Credentials,
    /// AWS throttled us and the bounded retries ran out.
    Throttled,
    /// The endpoint could not be reached or timed out (network, DNS, endpoint override).
    Unreachable,
    /// The account has not enabled what the call needs (an opt-in region, Cost Explorer).
    NotEnabled,
    /// Our own input was rejected before or by AWS (bad region, window too old, bad token).
    InvalidInput,
    /// Any other error AWS returned.
    Service,
    /// A response we could not read, or an SDK failure that is none of the above.
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessDenied => "access_denied",
            Self::InvalidCredentials => "invalid_credentials",
            Self::ExpiredCredentials => "expired_credentials",
            Self::Credentials => "credentials",
            Self::Throttled => "throttled",
            Self::Unreachable => "unreachable",
            Self::NotEnabled => "not_enabled",
            Self::InvalidInput => "invalid_input",
            Self::Service => "service",
            Self::Other => "other",
        }
    }
}

/// An AWS call that failed, with the AWS error code kept.
#[derive(Clone, Debug)]
pub struct AwsError {
    kind: ErrorKind,
    /// The IAM action the failed call needs (`ec2:DescribeInstances`), so AccessDenied can say
    /// which permission is missing.
    action: Option<&'static str>,
    code: Option<String>,
    message: Option<String>,
    request_id: Option<String>,
    /// The whole source chain, for logs: the SDK's top-level message alone is often just
    /// "dispatch failure".
    detail: String,
}

impl AwsError {
    /// Maps an SDK error from a call that needs the IAM permission `action`.
    pub fn from_sdk<E>(action: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let detail = DisplayErrorContext(&err).to_string();
        let request_id = err.request_id().map(str::to_string);
        let mut error = match &err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                let body = service.raw().body().bytes();
                let code = e
                    .code()
                    .map(str::to_string)
                    .or_else(|| xml_element(body, "Code"));
                Self {
                    kind: code.as_deref().map_or(ErrorKind::Service, classify_code),
                    action: Some(action),
                    message: e
                        .message()
                        .map(str::to_string)
                        .or_else(|| xml_element(body, "Message")),
                    code,
                    // EC2 puts the request id in the error body, not in a header.
                    request_id: e.meta().request_id().map(str::to_string).or(request_id),
                    detail,
                }
            }
            SdkError::TimeoutError(_) => Self {
                kind: ErrorKind::Unreachable,
                action: Some(action),
                code: None,
                message: Some("the request timed out".into()),
                request_id,
                detail,
            },
            SdkError::DispatchFailure(_) => Self {
                kind: ErrorKind::Unreachable,
                action: Some(action),
                code: None,
                message: Some("the request could not be sent".into()),
                request_id,
                detail,
            },
            _ => Self {
                kind: ErrorKind::Other,
                action: Some(action),
                code: None,
                message: None,
                request_id,
                detail,
            },
        };
        // Failing to get credentials (AssumeRole denied, no default credentials) reaches us as
        // a dispatch failure; the real cause is deeper in the chain.
        if (error.kind != ErrorKind::Service || error.code.is_none())
            && let Some(cause) = credentials_cause(&err)
        {
            error.kind = ErrorKind::Credentials;
            error.code = cause.code.or(error.code);
            error.message = cause.message.or(error.message);
            error.request_id = cause.request_id.or(error.request_id);
        }
        error
    }

    /// An input we refuse before calling AWS.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            kind: ErrorKind::InvalidInput,
            action: None,
            code: None,
            detail: message.clone(),
            message: Some(message),
            request_id: None,
        }
    }

    /// An error AWS reported inside a successful response (e.g. a CloudWatch query's
    /// `Forbidden` status), classified like a service error with that code.
    pub fn reported(
        action: &'static str,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let code = code.into();
        let message = message.into();
        Self {
            kind: classify_code(&code),
            action: Some(action),
            detail: format!("{code}: {message}"),
            code: Some(code),
            message: Some(message),
            request_id: None,
        }
    }

    /// A response AWS sent that we cannot map (a missing required field, an unparsable amount).
    pub fn unexpected_response(action: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            kind: ErrorKind::Other,
            action: Some(action),
            code: None,
            detail: message.clone(),
            message: Some(message),
            request_id: None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The AWS error code (`AccessDeniedException`, `UnauthorizedOperation`, ...) when AWS sent one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// AWS's own message, or ours when the failure happened before AWS answered.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The IAM action of the failed call, e.g. `ce:GetCostAndUsage`.
    pub fn action(&self) -> Option<&'static str> {
        self.action
    }

    /// The full SDK error chain, for logs (never for tenants: it may name internal endpoints).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// What to do about it, in one sentence, when we know.
    pub fn hint(&self) -> Option<String> {
        let action = self.action.unwrap_or("the called action");
        let code = self.code.as_deref().unwrap_or_default();
        let hint = match self.kind {
            ErrorKind::AccessDenied => format!(
                "the IAM role or user CloudSpend uses needs the permission {action}: add it to its \
                 policy (the CloudSpend CloudFormation template grants it)"
            ),
            ErrorKind::InvalidCredentials => "the access key is not valid (wrong, deleted or deactivated): \
                 create a new key pair and connect again"
                .to_string(),
            ErrorKind::ExpiredCredentials => "the temporary credentials expired: CloudSpend refreshes \
                 assumed-role credentials itself, so check the server's clock and retry"
                .to_string(),
            ErrorKind::Credentials if is_access_denied(code) => "CloudSpend could not assume the role: \
                 check the role ARN, that the role's trust policy allows CloudSpend's account, and that \
                 the external ID is the one shown on the onboarding page"
                .to_string(),
            ErrorKind::Credentials if classify_code(code) == ErrorKind::InvalidCredentials => "the server's \
                 own AWS credentials, which assume tenant roles, were rejected: check \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                .to_string(),
            ErrorKind::Credentials => "no AWS credentials could be obtained: for the server's own account \
                 set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile or instance role); \
                 for a tenant, check its connection"
                .to_string(),
            ErrorKind::Throttled => "AWS throttled the requests and the retries ran out: the collection \
                 is retried at its next run; collect less often if this persists"
                .to_string(),
            ErrorKind::Unreachable => "could not reach the AWS endpoint: check network access \
                 (proxy, firewall, DNS) and the endpoint override (AWS_ENDPOINT_URL)"
                .to_string(),
            ErrorKind::NotEnabled if code == "OptInRequired" => "this region is not enabled for the \
                 account: enable it in the AWS console or remove it from the tenant's regions"
                .to_string(),
            ErrorKind::NotEnabled => "Cost Explorer has no data for this account yet: enable Cost \
                 Explorer in the AWS Billing console (data appears within 24 hours)"
                .to_string(),
            ErrorKind::InvalidInput if code == "BillExpirationException" => "Cost Explorer keeps about \
                 13 months of history: ask for a later start date"
                .to_string(),
            ErrorKind::InvalidInput | ErrorKind::Service | ErrorKind::Other => return None,
        };
        Some(hint)
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(action) = self.action {
            write!(f, "{action} failed")?;
        } else {
            f.write_str("invalid AWS request")?;
        }
        if let Some(code) = &self.code {
            write!(f, ": {code}")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        if let Some(hint) = self.hint() {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

impl StdError for AwsError {}

fn is_access_denied(code: &str) -> bool {
    matches!(
        code,
        "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "UnauthorizedAccess"
            | "Unauthorized"
            | "Forbidden"
    )
}

/// AWS services spell the same condition differently; these are the codes EC2, CloudWatch,
/// Cost Explorer and STS use.
fn classify_code(code: &str) -> ErrorKind {
    match code {
        c if is_access_denied(c) => ErrorKind::AccessDenied,
        "AuthFailure"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "UnrecognizedClientException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "InvalidAccessKeyId" => ErrorKind::InvalidCredentials,
        "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => {
            ErrorKind::ExpiredCredentials
        }
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "SlowDown"
        | "LimitExceededException"
        | "ProvisionedThroughputExceededException" => ErrorKind::Throttled,
        "OptInRequired" | "DataUnavailableException" => ErrorKind::NotEnabled,
        "BillExpirationException"
        | "InvalidNextTokenException"
        | "ValidationException"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "InvalidParameterValueException"
        | "RequestChangedException" => ErrorKind::InvalidInput,
        _ => ErrorKind::Service,
    }
}

/// The text of the first `<name>` element of an XML error body. The SDK's parser gives up on
/// error bodies that are not exactly in the service's protocol shape (some proxies and
/// emulators wrap `<Error>` in `<Errors>`); the code is still there and worth keeping.
fn xml_element(body: Option<&[u8]>, name: &str) -> Option<String> {
    let text = std::str::from_utf8(body?).ok()?;
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("</{name}>"))?;
    let value = text[start..end].trim();
    (!value.is_empty() && value.len() <= 256).then(|| value.to_string())
}

struct Cause {
    code: Option<String>,
    message: Option<String>,
    request_id: Option<String>,
}

/// Looks down the source chain for a credentials failure, and inside it for the STS error.
fn credentials_cause(err: &(dyn StdError + 'static)) -> Option<Cause> {
    let mut found = None;
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(sts) = e.downcast_ref::<aws_sdk_sts::error::SdkError<AssumeRoleError>>() {
            let body = sts.raw_response().and_then(|r| r.body().bytes());
            return Some(Cause {
                code: sts
                    .code()
                    .map(str::to_string)
                    .or_else(|| xml_element(body, "Code")),
                message: sts
                    .message()
                    .map(str::to_string)
                    .or_else(|| xml_element(body, "Message")),
                request_id: sts.request_id().map(str::to_string),
            });
        }
        if let Some(sts) = e.downcast_ref::<AssumeRoleError>() {
            return Some(Cause {
                code: sts.code().map(str::to_string),
                message: sts.message().map(str::to_string),
                request_id: sts.meta().request_id().map(str::to_string),
            });
        }
        if let Some(creds) = e.downcast_ref::<CredentialsError>() {
            found.get_or_insert(Cause {
                code: None,
                message: Some(DisplayErrorContext(creds).to_string()),
                request_id: None,
            });
        }
        next = e.source();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_from_each_service_classify() {
        assert_eq!(
            classify_code("UnauthorizedOperation"),
            ErrorKind::AccessDenied
        );
        assert_eq!(
            classify_code("AccessDeniedException"),
            ErrorKind::AccessDenied
        );
        assert_eq!(classify_code("AuthFailure"), ErrorKind::InvalidCredentials);
        assert_eq!(classify_code("ExpiredToken"), ErrorKind::ExpiredCredentials);
        assert_eq!(classify_code("RequestLimitExceeded"), ErrorKind::Throttled);
        assert_eq!(
            classify_code("LimitExceededException"),
            ErrorKind::Throttled
        );
        assert_eq!(
            classify_code("DataUnavailableException"),
            ErrorKind::NotEnabled
        );
        assert_eq!(classify_code("SomethingNew"), ErrorKind::Service);
    }

    #[test]
    fn codes_are_found_in_error_bodies_the_sdk_cannot_parse() {
        let body = br#"<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code><Message>bad token</Message></Error></Errors></ErrorResponse>"#;
        assert_eq!(
            xml_element(Some(body), "Code").as_deref(),
            Some("InvalidClientTokenId")
        );
        assert_eq!(
            xml_element(Some(body), "Message").as_deref(),
            Some("bad token")
        );
        assert_eq!(xml_element(Some(b"<html>500</html>"), "Code"), None);
        assert_eq!(xml_element(None, "Code"), None);
    }

    #[test]
    fn invalid_input_says_what_is_wrong_and_has_no_code() {
        let e = AwsError::invalid_input("`x` is not a region");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.code(), None);
        assert!(e.to_string().contains("`x` is not a region"));
    }
}
