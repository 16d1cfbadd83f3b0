//! The API's error type: every failure of a request becomes one of these, and one `match`
//! turns it into a status code and the JSON error body
//! `{"success": false, "error": "<sentence>", "code": "<CODE>", "details": …}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::ports::{BlobError, QueueError, SecretsError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the input is invalid; `details` names the fields.
    #[error("{message}")]
    Validation { message: String, details: Option<Value> },
    /// 400 with a specific code.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: not authenticated.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// 403: authenticated but not allowed.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// 404: unknown or not visible to the caller.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 405: the path exists, the method does not.
    #[error("{message}")]
    MethodNotAllowed { message: String },
    /// 409: version, uniqueness or in-use conflict; `details` may carry the current state.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        details: Option<Value>,
    },
    /// 413: the body is over the limit.
    #[error("{message}")]
    PayloadTooLarge { message: String },
    /// 415: the body is not JSON.
    #[error("{message}")]
    UnsupportedMediaType { message: String },
    /// 422: valid JSON that cannot be processed.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 429: rate limited; retry after the given number of seconds.
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u64 },
    /// 502: an upstream service (a user's database, an identity provider) failed.
    #[error("{message}")]
    BadGateway { code: &'static str, message: String },
    /// 503: the storage backend is shedding load; retry after the given number of seconds.
    #[error("{message}")]
    Unavailable { message: String, retry_after_secs: u64 },
    /// 504: an upstream service timed out.
    #[error("{message}")]
    GatewayTimeout { code: &'static str, message: String },
    /// 500: a bug or an infrastructure failure. The cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn validation(message: impl Into<String>) -> Self {
        Self::Validation {
            message: message.into(),
            details: None,
        }
    }

    /// Builds a 400 that names one invalid field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::Validation {
            details: Some(json!({ field: message })),
            message,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound {
            code: "NOT_FOUND",
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden {
            code: "FORBIDDEN",
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized {
            code: "UNAUTHORIZED",
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    /// Returns the status code, machine code, optional details and optional `Retry-After` seconds.
    fn parts(&self) -> (StatusCode, &'static str, Option<&Value>, Option<u64>) {
        match self {
            Self::Validation { details, .. } => (StatusCode::BAD_REQUEST, "VALIDATION_ERROR", details.as_ref(), None),
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code, None, None),
            Self::Unauthorized { code, .. } => (StatusCode::UNAUTHORIZED, code, None, None),
            Self::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code, None, None),
            Self::NotFound { code, .. } => (StatusCode::NOT_FOUND, code, None, None),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", None, None),
            Self::Conflict { code, details, .. } => (StatusCode::CONFLICT, code, details.as_ref(), None),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", None, None),
            Self::UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", None, None)
            }
            Self::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code, None, None),
            Self::RateLimited { retry_after_secs, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                None,
                Some(*retry_after_secs),
            ),
            Self::BadGateway { code, .. } => (StatusCode::BAD_GATEWAY, code, None, None),
            Self::Unavailable { retry_after_secs, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                None,
                Some(*retry_after_secs),
            ),
            Self::GatewayTimeout { code, .. } => (StatusCode::GATEWAY_TIMEOUT, code, None, None),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", None, None),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    pub fn code(&self) -> &'static str {
        self.parts().1
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, details, retry_after) = self.parts();
        let message = match &self {
            Self::Internal(error) => {
                tracing::error!(error = ?error, "request failed with an internal error");
                "An internal error occurred. The x-request-id response header identifies it in the server logs."
                    .to_owned()
            }
            other => other.to_string(),
        };

        let mut body = json!({ "success": false, "error": message, "code": code });
        if let Some(details) = details {
            body["details"] = details.clone();
        }
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

/// Maps storage failures that reach a handler untranslated. Conditions and other expected
/// outcomes are translated where the write is made, so only unexpected ones arrive here.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Throttled => Self::Unavailable {
                message: "The metadata store is busy; retry shortly.".into(),
                retry_after_secs: 1,
            },
            StoreError::TooLarge { size } => Self::PayloadTooLarge {
                message: format!(
                    "The record would be {size} bytes, over the storage limit of {} bytes; make it smaller.",
                    crate::ports::store::MAX_ITEM_BYTES
                ),
            },
            StoreError::InvalidCursor => Self::invalid_field(
                "cursor",
                "The cursor is invalid; pass the nextCursor value of the previous page.",
            ),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(error: BlobError) -> Self {
        Self::Internal(error.into())
    }
}

impl From<QueueError> for ApiError {
    fn from(error: QueueError) -> Self {
        Self::Internal(error.into())
    }
}

impl From<SecretsError> for ApiError {
    fn from(error: SecretsError) -> Self {
        Self::Internal(error.into())
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
