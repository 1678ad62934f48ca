//! The API's one error type. Every 4xx and 5xx the service sends has the same JSON body:
//! `{"error": {"code": "...", "message": "...", "field": "..."}}`, where `code` is stable for
//! programs, `message` is for people and says what to do, and `field` names the input at fault.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cloudspend_core::validate::Invalid;
use cloudspend_store::StoreError;
use serde::Serialize;
use std::borrow::Cow;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: bad JSON, a wrong type, a bad header. 400.
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        field: Option<Cow<'static, str>>,
    },
    /// Well-formed but invalid input. 422.
    #[error("{message}")]
    Invalid {
        message: String,
        field: Cow<'static, str>,
    },
    /// No valid credentials. 401.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// Authenticated but not allowed. 403.
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: String,
        field: Option<Cow<'static, str>>,
    },
    /// 404. `what` is a user-facing noun ("member", "route").
    #[error("{what} not found")]
    NotFound { what: Cow<'static, str> },
    /// The route exists but not for this HTTP method. 405.
    #[error("this route does not accept that HTTP method")]
    MethodNotAllowed,
    /// The change clashes with existing data. 409.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        field: Option<Cow<'static, str>>,
    },
    /// 413.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 429, with the seconds to wait.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// AWS refused or failed a call made for the caller. The AWS error code and a fix hint go
    /// to the client (they are about the caller's own account).
    #[error("{message}")]
    Aws {
        status: StatusCode,
        aws_code: Option<String>,
        message: String,
        hint: Option<String>,
        request_id: Option<String>,
    },
    /// A dependency (the database) is unreachable. 503.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// The server is at its bound of requests in flight, or this one ran past its time. 503,
    /// with the seconds to wait.
    #[error("{message}")]
    Overloaded {
        message: String,
        retry_after_secs: u64,
    },
    /// Anything else. 500; the detail is logged, never sent.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_field`, `not_found`, `unauthorized`, ...
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
    /// The request field (JSON path, header or query parameter) at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For AWS failures: the error code AWS returned (`AccessDenied`, `ThrottlingException`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_code: Option<String>,
    /// For AWS failures: what to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// For AWS failures: AWS's request id, for support cases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn bad_field(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn invalid(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            message: message.into(),
            field: field.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// 429 saying what was used up and when to come back (`wait` rounded up to whole seconds,
    /// also sent as Retry-After).
    pub fn too_many(what: impl std::fmt::Display, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        ApiError::TooManyRequests {
            message: format!("{what}: try again in {secs} seconds"),
            retry_after_secs: secs,
        }
    }

    pub fn not_found(what: impl Into<Cow<'static, str>>) -> Self {
        ApiError::NotFound { what: what.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } | ApiError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Aws { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> ErrorDetail {
        let (code, field): (&str, Option<&str>) = match self {
            ApiError::BadRequest { code, field, .. } => (code, field.as_deref()),
            ApiError::Invalid { field, .. } => ("invalid_field", Some(field)),
            ApiError::Unauthorized { code, .. } => (code, None),
            ApiError::Forbidden { code, field, .. } => (code, field.as_deref()),
            ApiError::NotFound { .. } => ("not_found", None),
            ApiError::MethodNotAllowed => ("method_not_allowed", None),
            ApiError::Conflict { code, field, .. } => (code, field.as_deref()),
            ApiError::PayloadTooLarge { .. } => ("payload_too_large", None),
            ApiError::TooManyRequests { .. } => ("too_many_requests", None),
            ApiError::Unavailable { code, .. } => (code, None),
            ApiError::Overloaded { .. } => ("overloaded", None),
            ApiError::Aws { .. } => ("aws_error", None),
            ApiError::Internal(_) => ("internal_error", None),
        };
        let message = match self {
            // Never leak internals: the cause is in the server log under the request id.
            ApiError::Internal(_) => {
                "something went wrong on our side; it has been logged".to_string()
            }
            other => other.to_string(),
        };
        let (aws_code, hint, request_id) = match self {
            ApiError::Aws {
                aws_code,
                hint,
                request_id,
                ..
            } => (aws_code.clone(), hint.clone(), request_id.clone()),
            _ => (None, None, None),
        };
        ErrorDetail {
            code: code.to_string(),
            message,
            field: field.map(str::to_string),
            aws_code,
            hint,
            request_id,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(ErrorBody { error: self.body() })).into_response();
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        }
        | ApiError::Overloaded {
            retry_after_secs, ..
        } = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if let ApiError::Unauthorized { .. } = &self {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::Internal(err) = &self {
            // Carried to the logging middleware, which logs each 5xx once with its request span.
            response
                .extensions_mut()
                .insert(InternalCause(format!("{err:#}")));
        }
        response
    }
}

/// The hidden cause of a 500, for the log line only.
#[derive(Clone, Debug)]
pub struct InternalCause(pub String);

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        ApiError::invalid(invalid.field, invalid.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict { field } => ApiError::Conflict {
                code: "already_exists",
                message: format!("{field} is already in use"),
                field: Some(field.into()),
            },
            StoreError::NotFound { what } => ApiError::not_found(what),
            StoreError::LastOwner => ApiError::Conflict {
                code: "last_owner",
                message: "a tenant must keep at least one owner: make someone else an owner first"
                    .into(),
                field: None,
            },
            // PostgreSQL refuses NUL in text (22021): a request value carried one.
            other if other.is_invalid_text() => ApiError::bad_request(
                "invalid_text",
                "a value in the request contains a NUL character, which text cannot hold",
            ),
            other if other.is_unavailable() => ApiError::Unavailable {
                code: "database_unavailable",
                message: "the database is not reachable; try again in a few seconds".into(),
            },
            other => ApiError::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<cloudspend_aws_access::AwsError> for ApiError {
    fn from(err: cloudspend_aws_access::AwsError) -> Self {
        use cloudspend_aws_access::ErrorKind;
        let status = match err.kind() {
            ErrorKind::AccessDenied
            | ErrorKind::InvalidCredentials
            | ErrorKind::ExpiredCredentials
            | ErrorKind::Credentials => StatusCode::FORBIDDEN,
            ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorKind::Throttled => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::NotEnabled => StatusCode::CONFLICT,
            _ => StatusCode::BAD_GATEWAY,
        };
        tracing::warn!(
            kind = err.kind().as_str(),
            detail = err.detail(),
            "AWS call failed"
        );
        ApiError::Aws {
            status,
            aws_code: err.code().map(str::to_string),
            hint: err.hint(),
            request_id: err.request_id().map(str::to_string),
            message: err.to_string(),
        }
    }
}

impl From<cloudspend_collection::CollectionError> for ApiError {
    fn from(err: cloudspend_collection::CollectionError) -> Self {
        use cloudspend_collection::CollectionError as E;
        match err {
            E::Aws(aws) => aws.into(),
            E::Store(store) => store.into(),
            E::NotConnected => ApiError::Conflict {
                code: "not_connected",
                message: E::NotConnected.to_string(),
                field: None,
            },
            other => ApiError::Conflict {
                code: "connection_unusable",
                message: other.to_string(),
                field: None,
            },
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
