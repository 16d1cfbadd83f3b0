//! Layers every router is served with, locally and on Lambda: request ids, a tracing span per
//! request, panics turned into 500s, the body size limit, CORS, and JSON 404/405 fallbacks.

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::error::ApiError;

/// Header carrying the request id, in requests and responses.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Header carrying the CSRF token of cookie-authenticated requests.
pub const CSRF_TOKEN: HeaderName = HeaderName::from_static("x-csrf-token");

/// Gives every request a fresh id, unless the client sent a well-formed one.
#[derive(Clone, Copy)]
struct MakeUlid;

impl MakeRequestId for MakeUlid {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = ulid::Ulid::new().to_string().to_ascii_lowercase();
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// Keeps a client-sent request id only when it is short and plain, so logs stay parseable.
fn sanitize_request_id<B>(mut request: Request<B>) -> Request<B> {
    let acceptable = request.headers().get(&REQUEST_ID).is_some_and(|value| {
        value.len() <= 64
            && value
                .as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    });
    if !acceptable {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("No route for {method} {}.", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        message: format!("{} does not accept {method}.", uri.path()),
    }
}

fn panic_response(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal(anyhow::anyhow!("a handler panicked")).into_response()
}

fn cors(config: &Config) -> CorsLayer {
    let origins: Vec<HeaderValue> = config
        .cors_origins()
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::RANGE,
            header::IF_NONE_MATCH,
            header::IF_RANGE,
            CSRF_TOKEN,
        ])
        .expose_headers([
            REQUEST_ID,
            header::RETRY_AFTER,
            header::CONTENT_RANGE,
            header::ACCEPT_RANGES,
            header::ETAG,
            header::CONTENT_LENGTH,
            header::LAST_MODIFIED,
            // Exports name their file and report their row count and truncation.
            header::CONTENT_DISPOSITION,
            HeaderName::from_static("x-row-count"),
            HeaderName::from_static("x-truncated"),
            // A chat reply names the chat it was stored in.
            HeaderName::from_static("x-chat-id"),
        ])
        .max_age(Duration::from_secs(3600))
}

/// Wraps a router (one route family, or all of them merged) with the layers every API
/// response needs. Apply it once, to the outermost router.
pub fn serve_api(router: Router, config: &Config) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let request_id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            request_id = %request_id,
        )
    });

    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(cors(config))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeUlid))
        .layer(tower::util::MapRequestLayer::new(
            sanitize_request_id::<axum::body::Body>,
        ))
}
