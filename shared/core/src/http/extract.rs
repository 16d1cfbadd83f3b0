//! Extractors whose rejections are `ApiError`s, so a malformed request gets the same JSON
//! error body as every other failure.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// JSON request body.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
                    message: "The request body is larger than this server accepts (MAKO_MAX_BODY_BYTES).".into(),
                },
                StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType {
                    message: "Send the body as JSON with the header Content-Type: application/json.".into(),
                },
                _ => json_error(&json_error_text(&rejection.body_text())),
            }),
        }
    }
}

/// Strips axum's generic prefix from a JSON rejection, keeping serde's description of the
/// problem (which names the field and position).
fn json_error_text(text: &str) -> String {
    let text = text
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .or_else(|| text.strip_prefix("Failed to parse the request body as JSON: "))
        .unwrap_or(text);
    text.chars().take(300).collect()
}

/// Builds the 400 of a body that failed to deserialize. When serde names the field that
/// failed (`port: invalid value: …`), `details` carries it like other validation errors.
fn json_error(text: &str) -> ApiError {
    let message = format!("Invalid JSON body: {text}");
    let named = text.split_once(": ").filter(|(path, _)| {
        !path.is_empty()
            && *path != "."
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'))
    });
    match named {
        Some((path, problem)) => {
            let problem = problem.split(" at line ").next().unwrap_or(problem);
            ApiError::Validation {
                message,
                details: Some(serde_json::json!({ path: problem })),
            }
        }
        None => ApiError::validation(message),
    }
}

/// Query string parameters.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::validation(format!("Invalid query string: {}", rejection.body_text())))
    }
}

/// Path parameters. An id that does not parse is a 400 naming the value.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::validation(format!("Invalid path: {}", rejection.body_text())))
    }
}

/// `?limit=&cursor=` of paginated lists.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl PageParams {
    /// Returns the page size: `limit` when given (1 to `max`), otherwise `default`.
    pub fn size(&self, default: u32, max: u32) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(default),
            Some(limit) if (1..=max).contains(&limit) => Ok(limit),
            Some(limit) => Err(ApiError::invalid_field(
                "limit",
                format!("limit must be between 1 and {max}, got {limit}"),
            )),
        }
    }
}

/// Address of the client, for rate limiting and logs. The local server fills it from the
/// TCP peer, the Lambda entry point from API Gateway's `sourceIp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// Returns the address as text, or `unknown`.
    pub fn label(&self) -> String {
        self.0.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(addr) = parts.extensions.get::<ClientAddr>() {
            return Ok(*addr);
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(ClientAddr(peer))
    }
}

/// Reads a body field that may be absent (keep), `null` (clear) or a value (set); use it with
/// `#[serde(default, deserialize_with = "double_option")]`.
pub fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// Reads a JSON body that may be left out: an empty body is `T::default()`.
pub fn optional_json<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|error| {
        let text = error.to_string();
        ApiError::validation(format!(
            "Invalid JSON body: {}",
            text.chars().take(300).collect::<String>()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::json_error;
    use crate::error::ApiError;

    fn details(error: ApiError) -> Option<serde_json::Value> {
        match error {
            ApiError::Validation { details, .. } => details,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn json_error_names_failed_field() {
        let error = json_error("port: invalid value: integer `99999999`, expected u16 at line 1 column 46");
        assert_eq!(
            details(error),
            Some(serde_json::json!({ "port": "invalid value: integer `99999999`, expected u16" }))
        );
    }

    #[test]
    fn json_error_keeps_nested_paths() {
        let error = json_error("params.day.type: unknown variant `week` at line 1 column 80");
        assert_eq!(
            details(error),
            Some(serde_json::json!({ "params.day.type": "unknown variant `week`" }))
        );
    }

    #[test]
    fn json_error_without_path_has_no_details() {
        assert_eq!(details(json_error("expected value at line 1 column 1")), None);
        assert_eq!(details(json_error("missing field `query` at line 1 column 2")), None);
    }
}
