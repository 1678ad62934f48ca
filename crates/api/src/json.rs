//! `ApiJson<T>`: the JSON body extractor and response type. Unlike `axum::Json`, a rejection
//! uses the API's error body and names the field at fault, found with serde_path_to_error
//! ("missing field `email`" becomes `field: "email"`; a wrong type names its JSON path).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::BadRequest {
                code: "unsupported_media_type",
                message: "send the body as JSON with `Content-Type: application/json`".into(),
                field: None,
            });
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: crate::BODY_LIMIT_BYTES,
                }
            } else {
                ApiError::bad_request("unreadable_body", rejection.body_text())
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body, naming the field when the error has one.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // JSON may carry NUL as `\u0000`; no text CloudSpend keeps can hold it (PostgreSQL text
    // refuses it), so it is refused here, by field, before anything is changed.
    if bytes.windows(6).any(|w| w == b"\\u0000")
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(path) = nul_path(&value, String::new())
    {
        return Err(ApiError::invalid(
            if path.is_empty() {
                ".".to_string()
            } else {
                path
            },
            "text must not contain NUL characters (\\u0000)",
        ));
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request(
                "invalid_json",
                format!("the body is not valid JSON: {message}"),
            );
        }
        // serde reports a missing field on the parent object: take the name from the message.
        let field = quoted_field(&message, "missing field `")
            .map(|name| {
                if path == "." {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                }
            })
            .or_else(|| quoted_field(&message, "unknown field `").map(str::to_string))
            .unwrap_or(path);
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        if field == "." {
            ApiError::bad_request("invalid_body", message)
        } else {
            ApiError::bad_field(field, message)
        }
    })
}

/// The JSON path of the first string or key holding a NUL character.
fn nul_path(value: &serde_json::Value, path: String) -> Option<String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(path),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, format!("{path}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(k))
            } else {
                nul_path(v, join(k))
            }
        }),
        _ => None,
    }
}

fn quoted_field<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let start = message.find(prefix)? + prefix.len();
    let end = message[start..].find('`')? + start;
    Some(&message[start..end])
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Signup {
        email: String,
        age: u32,
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Nested {
        role: String,
    }

    fn field_of(body: &str) -> Option<String> {
        match parse::<Signup>(body.as_bytes()).unwrap_err() {
            ApiError::BadRequest { field, .. } => field.map(|f| f.into_owned()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn refuses_nul_characters_by_field() {
        let err = parse::<Signup>(br#"{"email": "a\u0000b", "age": 3}"#).unwrap_err();
        assert!(
            matches!(err, ApiError::Invalid { ref field, .. } if field == "email"),
            "{err:?}"
        );
        let nested = parse::<Signup>(br#"{"email": "a", "age": 3, "nested": {"role": "\u0000"}}"#);
        assert!(
            matches!(nested, Err(ApiError::Invalid { ref field, .. }) if field == "nested.role")
        );
        // An escaped backslash followed by "u0000" is text, not NUL.
        assert!(parse::<Signup>(br#"{"email": "a\\u0000", "age": 3}"#).is_ok());
    }

    #[test]
    fn names_the_missing_field() {
        assert_eq!(field_of(r#"{"age": 3}"#).as_deref(), Some("email"));
        assert_eq!(
            field_of(r#"{"email": "a", "age": 3, "nested": {}}"#).as_deref(),
            Some("nested.role")
        );
    }

    #[test]
    fn names_the_field_with_the_wrong_type() {
        assert_eq!(
            field_of(r#"{"email": 5, "age": 3}"#).as_deref(),
            Some("email")
        );
        assert_eq!(
            field_of(r#"{"email": "a", "age": "three"}"#).as_deref(),
            Some("age")
        );
    }

    #[test]
    fn names_unknown_fields_and_reports_bad_json_without_a_field() {
        assert_eq!(
            field_of(r#"{"email": "a", "age": 1, "admin": true}"#).as_deref(),
            Some("admin")
        );
        assert_eq!(field_of(r#"{"email": "#), None);
        assert_eq!(field_of(r#""just a string""#), None);
    }
}
