//! Start-up shared by every Lambda function: each function's `main` is one call to [`run`]
//! with its router.
//!
//! Logs follow the Lambda runtime's settings: `AWS_LAMBDA_LOG_FORMAT` (`JSON` or `Text`) and
//! `AWS_LAMBDA_LOG_LEVEL` (or `RUST_LOG`).

use std::net::IpAddr;

use axum::Router;
use axum::http::{Request, header};
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;
use mako_core::config::Config;
use mako_core::http::{ClientAddr, serve_api};
use mako_core::{AppState, Ports};

pub use lambda_http::Error;

/// Builds the shared state on the AWS adapters from the environment.
pub async fn aws_state() -> anyhow::Result<AppState> {
    Ok(aws_state_and_queue().await?.0)
}

/// Builds the shared state and returns the SQS adapter beside it, for the worker function.
pub async fn aws_state_and_queue() -> anyhow::Result<(AppState, std::sync::Arc<mako_aws::SqsQueue>)> {
    let config = Config::from_env()?;
    let settings = mako_aws::Settings::from_env()?;
    let adapters = mako_aws::connect(&settings).await?;
    let state = AppState::new(
        config,
        Ports {
            store: adapters.store,
            blobs: adapters.blobs,
            queue: adapters.queue,
            secrets: adapters.secrets,
        },
    );
    Ok((state, adapters.sqs))
}

/// Wraps a route family's router for Lambda: the common API layers, plus the client address
/// taken from API Gateway's request context.
pub fn lambda_app(router: Router, config: &Config) -> Router {
    serve_api(router, config)
        .layer(axum::middleware::map_response(buffer_body))
        .layer(tower::util::MapRequestLayer::new(
            client_addr_from_context::<axum::body::Body>,
        ))
}

/// Wraps a route family's router for Lambda response streaming: the common API layers and
/// the client address, with the body passed on as it is produced.
pub fn streaming_app(router: Router, config: &Config) -> Router {
    serve_api(router, config).layer(tower::util::MapRequestLayer::new(
        client_addr_from_context::<axum::body::Body>,
    ))
}

/// UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads the whole body before `lambda_http` does, which it would do anyway because this
/// runtime sends buffered responses. A body that fails midway (an export whose query failed
/// after it began streaming) becomes a 500 here, where `lambda_http` (1.3) would panic.
/// It also doubles the byte order mark at the start of a CSV body: `lambda_http` turns text
/// bodies into a string with `encoding_rs`, which drops one leading mark, and spreadsheets
/// need it to read the file as UTF-8.
async fn buffer_body(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => {
            return mako_core::ApiError::internal(anyhow::anyhow!("the response body failed: {error}")).into_response();
        }
    };
    let is_csv = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/csv"));
    if !(is_csv && bytes.starts_with(BOM)) {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    let mut doubled = Vec::with_capacity(bytes.len() + BOM.len());
    doubled.extend_from_slice(BOM);
    doubled.extend_from_slice(&bytes);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(doubled))
}

/// Copies API Gateway's `sourceIp` into the request as a [`ClientAddr`].
fn client_addr_from_context<B>(mut request: Request<B>) -> Request<B> {
    let source_ip = match request.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        _ => None,
    };
    let addr = source_ip.and_then(|ip| ip.parse::<IpAddr>().ok());
    request.extensions_mut().insert(ClientAddr(addr));
    request
}

/// Runs a route family on Lambda: logging, configuration and clients once per cold start,
/// then `lambda_http` serves every invocation with the same router.
pub async fn run(router: fn(AppState) -> Router) -> Result<(), Error> {
    let state = cold_start().await?;
    let config = state.config.clone();
    let app = lambda_app(router(state), &config);

    tracing::info!("function ready");
    lambda_http::run(app).await
}

/// Runs a route family whose responses stream (a function URL with `InvokeMode:
/// RESPONSE_STREAM`): each body chunk reaches the client as it is produced.
pub async fn run_streaming(router: fn(AppState) -> Router) -> Result<(), Error> {
    let state = cold_start().await?;
    let config = state.config.clone();
    let app = streaming_app(router(state), &config);

    tracing::info!("function ready, streaming responses");
    lambda_http::run_with_streaming_response(app).await
}

/// Logging, configuration and clients, once per cold start.
async fn cold_start() -> Result<AppState, Error> {
    lambda_http::tracing::init_default_subscriber();
    match aws_state().await {
        Ok(state) => Ok(state),
        Err(error) => {
            tracing::error!(error = ?error, "cold start failed");
            Err(error.into())
        }
    }
}
