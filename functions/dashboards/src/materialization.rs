//! Materialization routes: the status of each data source, triggers, and the stream route
//! that serves the Parquet artifact by byte range.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use mako_core::auth::WorkspaceCaller;
use mako_core::http::{ApiJson, ApiPath};
use mako_core::ports::{BlobError, ByteRange};
use mako_core::repo::dashboards::{Dashboard, DataSource};
use mako_core::repo::materializations::{ArtifactColumn, Materialization, Materializations, Status, Ticket, Trigger};
use mako_core::{ApiError, ApiResult, AppState};
use mako_jobs::build::PARQUET_CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::io::ReaderStream;

use mako_core::access::Viewer;

use crate::dashboards::load_visible;
use crate::model::parse_dashboard_id;

/// Reads larger than this get a redirect to a presigned URL where the backend can sign one,
/// because a Lambda response body is limited to 6 MB.
const MAX_PROXIED_BYTES: u64 = 4 * 1024 * 1024;

/// The status of one data source.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    data_source_id: String,
    name: String,
    status: Status,
    /// The artifact was built from an older definition of the data source.
    stale: bool,
    row_count: Option<u64>,
    byte_size: Option<u64>,
    truncated: Option<bool>,
    revision: Option<u64>,
    etag: Option<String>,
    columns: Option<Vec<ArtifactColumn>>,
    build_started_at: Option<DateTime<Utc>>,
    build_finished_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    last_error_at: Option<DateTime<Utc>>,
    job: Option<Ticket>,
    next_run_at: Option<DateTime<Utc>>,
    /// Path of the stream route, present once an artifact exists.
    stream_path: Option<String>,
}

impl SourceStatus {
    fn new(dashboard: &Dashboard, source: &DataSource, record: Option<&Materialization>) -> Self {
        let artifact = record.and_then(|record| record.artifact.as_ref());
        let hash = mako_jobs::definition_hash(source);
        Self {
            data_source_id: source.id.clone(),
            name: source.name.clone(),
            status: record.map_or(Status::Missing, Materialization::status),
            stale: artifact.is_some_and(|artifact| artifact.definition_hash != hash),
            row_count: artifact.map(|artifact| artifact.row_count),
            byte_size: artifact.map(|artifact| artifact.byte_size),
            truncated: artifact.map(|artifact| artifact.truncated),
            revision: artifact.map(|artifact| artifact.revision),
            etag: artifact.map(|artifact| artifact.etag.clone()),
            columns: artifact.map(|artifact| artifact.columns.clone()),
            build_started_at: artifact.map(|artifact| artifact.build_started_at),
            build_finished_at: artifact.map(|artifact| artifact.build_finished_at),
            last_error: record.and_then(|record| record.last_error.clone()),
            last_error_at: record.and_then(|record| record.last_error_at),
            job: record.and_then(|record| record.job.clone()),
            next_run_at: record.and_then(|record| record.next_run_at),
            stream_path: artifact.map(|_| {
                format!(
                    "/api/workspaces/{}/dashboards/{}/materialization/stream/{}",
                    dashboard.workspace_id, dashboard.id, source.id
                )
            }),
        }
    }
}

fn dashboard_id(params: &HashMap<String, String>) -> ApiResult<mako_core::ids::DashboardId> {
    parse_dashboard_id(params.get("did").map(String::as_str).unwrap_or_default())
}

fn find_source<'d>(dashboard: &'d Dashboard, id: &str) -> ApiResult<&'d DataSource> {
    dashboard.data_source(id).ok_or_else(|| {
        ApiError::not_found(format!(
            "Dashboard {} has no data source \"{}\".",
            dashboard.id,
            id.chars().take(64).collect::<String>()
        ))
    })
}

/// `GET …/dashboards/{did}/materialization/status`.
pub async fn status(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath(params): ApiPath<HashMap<String, String>>,
) -> ApiResult<Response> {
    let id = dashboard_id(&params)?;
    let dashboard = load_visible(&state, &access, &id).await?;
    let records: HashMap<String, Materialization> = Materializations::new(&*state.store)
        .of_dashboard(access.workspace_id(), &id)
        .await?
        .into_iter()
        .map(|record| (record.value.data_source_id.clone(), record.value))
        .collect();
    let sources: Vec<SourceStatus> = dashboard
        .data_sources
        .iter()
        .map(|source| SourceStatus::new(&dashboard, source, records.get(&source.id)))
        .collect();
    let count = |status: Status| sources.iter().filter(|source| source.status == status).count();
    let overall = if sources.is_empty() {
        Status::Missing
    } else if count(Status::Building) > 0 {
        Status::Building
    } else if count(Status::Queued) > 0 {
        Status::Queued
    } else if count(Status::Error) > 0 {
        Status::Error
    } else if count(Status::Missing) > 0 {
        Status::Missing
    } else {
        Status::Ready
    };
    let summary = json!({
        "status": overall,
        "total": sources.len(),
        "ready": count(Status::Ready),
        "queued": count(Status::Queued),
        "building": count(Status::Building),
        "error": count(Status::Error),
        "missing": count(Status::Missing),
        "stale": sources.iter().filter(|source| source.stale).count(),
    });
    Ok(mako_core::http::ok(json!({
        "dashboardId": id,
        "summary": summary,
        "dataSources": sources,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerBody {
    data_source_id: String,
}

async fn trigger_one(
    state: &AppState,
    viewer: &Viewer,
    dashboard: &Dashboard,
    source: &DataSource,
) -> ApiResult<serde_json::Value> {
    let requested = mako_jobs::queue::request(
        state,
        dashboard,
        source,
        Trigger::Manual,
        Some(viewer.user.clone()),
        false,
    )
    .await?;
    let message = if requested.queued {
        "A build was queued."
    } else {
        "A build is already queued or running; no second one was started."
    };
    Ok(json!({
        "dataSourceId": source.id,
        "queued": requested.queued,
        "message": message,
        "status": SourceStatus::new(dashboard, source, Some(&requested.state.value)),
    }))
}

/// `POST …/dashboards/{did}/materialization/trigger` with `{"dataSourceId": …}`.
pub async fn trigger(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath(params): ApiPath<HashMap<String, String>>,
    ApiJson(body): ApiJson<TriggerBody>,
) -> ApiResult<Response> {
    let id = dashboard_id(&params)?;
    let viewer = Viewer::of(&access);
    viewer.require_member("triggering a materialization")?;
    let dashboard = load_visible(&state, &access, &id).await?;
    let source = find_source(&dashboard, &body.data_source_id)?;
    let result = trigger_one(&state, &viewer, &dashboard, source).await?;
    Ok(accepted(result))
}

/// `POST …/dashboards/{did}/materialization/trigger-all`.
pub async fn trigger_all(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath(params): ApiPath<HashMap<String, String>>,
) -> ApiResult<Response> {
    let id = dashboard_id(&params)?;
    let viewer = Viewer::of(&access);
    viewer.require_member("triggering a materialization")?;
    let dashboard = load_visible(&state, &access, &id).await?;
    let mut results = Vec::with_capacity(dashboard.data_sources.len());
    for source in &dashboard.data_sources {
        results.push(trigger_one(&state, &viewer, &dashboard, source).await?);
    }
    let queued = results.iter().filter(|result| result["queued"] == true).count();
    Ok(accepted(json!({
        "dashboardId": id,
        "queued": queued,
        "alreadyQueued": results.len() - queued,
        "dataSources": results,
    })))
}

fn accepted(data: serde_json::Value) -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "success": true, "data": data })),
    )
        .into_response()
}

/// Returns whether an `If-None-Match` header matches `etag` (weak comparison, `*` included).
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    let Some(value) = headers.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    value.split(',').any(|tag| tag.trim() == "*" || bare(tag) == bare(etag))
}

/// The range to serve: none when absent, malformed, or when `If-Range` names another version.
fn requested_range(headers: &HeaderMap, etag: &str) -> Option<ByteRange> {
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(ByteRange::parse_header)?;
    match headers.get(header::IF_RANGE).and_then(|value| value.to_str().ok()) {
        Some(tag) if tag.trim() != etag => None,
        _ => Some(range),
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `GET` and `HEAD …/dashboards/{did}/materialization/stream/{dataSourceId}`: the current
/// artifact, whole or one byte range.
pub async fn stream(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    method: Method,
    headers: HeaderMap,
    ApiPath(params): ApiPath<HashMap<String, String>>,
) -> ApiResult<Response> {
    let id = dashboard_id(&params)?;
    let source_id = params.get("dataSourceId").cloned().unwrap_or_default();
    let dashboard = load_visible(&state, &access, &id).await?;
    let source = find_source(&dashboard, &source_id)?;
    let record = Materializations::new(&*state.store)
        .get(access.workspace_id(), &id, &source.id)
        .await?;
    let Some(artifact) = record.and_then(|record| record.value.artifact) else {
        return Err(ApiError::NotFound {
            code: "NOT_MATERIALIZED",
            message: format!(
                "Data source \"{}\" has no Parquet file yet; trigger a build and wait for status ready.",
                source.id
            ),
        });
    };

    let etag = artifact.etag.clone();
    let mut response_headers = HeaderMap::new();
    response_headers.insert(header::ETAG, header_value(&etag));
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    response_headers.insert(
        header::LAST_MODIFIED,
        header_value(
            &artifact
                .build_finished_at
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string(),
        ),
    );
    if none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, response_headers).into_response());
    }
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PARQUET_CONTENT_TYPE));
    response_headers.insert(
        header::CONTENT_DISPOSITION,
        header_value(&format!("inline; filename=\"{}.parquet\"", source.id)),
    );

    let size = artifact.byte_size;
    let range = requested_range(&headers, &etag);
    let resolved = match range {
        Some(range) => match range.resolve(size) {
            Some(resolved) => Some(resolved),
            None => return Ok(unsatisfiable(size, response_headers)),
        },
        None => None,
    };
    let length = resolved.map_or(size, |(first, last)| last - first + 1);

    // Large reads go straight to the object store where it can sign a URL.
    if length > MAX_PROXIED_BYTES
        && let Some(url) = state
            .blobs
            .presign_get(&artifact.key, state.config.jobs.artifact_url_ttl)
            .await?
    {
        response_headers.insert(header::LOCATION, header_value(&url));
        response_headers.remove(header::CONTENT_TYPE);
        return Ok((StatusCode::TEMPORARY_REDIRECT, response_headers).into_response());
    }

    let status = if resolved.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    if let Some((first, last)) = resolved {
        response_headers.insert(
            header::CONTENT_RANGE,
            header_value(&format!("bytes {first}-{last}/{size}")),
        );
    }
    response_headers.insert(header::CONTENT_LENGTH, header_value(&length.to_string()));
    if method == Method::HEAD {
        return Ok((status, response_headers).into_response());
    }
    let read = match state.blobs.get(&artifact.key, range).await {
        Ok(read) => read,
        Err(BlobError::RangeNotSatisfiable { size }) => return Ok(unsatisfiable(size, response_headers)),
        Err(BlobError::NotFound { .. }) => {
            return Err(ApiError::conflict(
                "ARTIFACT_REPLACED",
                "The Parquet file was replaced while it was being read; read the status again and retry.",
            ));
        }
        Err(error) => return Err(error.into()),
    };
    if read.meta.etag != etag {
        return Err(ApiError::conflict(
            "ARTIFACT_REPLACED",
            "The Parquet file was replaced while it was being read; read the status again and retry.",
        ));
    }
    let body = match read.buffered {
        Some(bytes) => Body::from(bytes),
        None => Body::from_stream(ReaderStream::with_capacity(read.body, 64 * 1024)),
    };
    Ok((status, response_headers, body).into_response())
}

fn unsatisfiable(size: u64, mut headers: HeaderMap) -> Response {
    headers.insert(header::CONTENT_RANGE, header_value(&format!("bytes */{size}")));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = json!({
        "success": false,
        "error": format!("The requested range is outside the file, which is {size} bytes long."),
        "code": "RANGE_NOT_SATISFIABLE",
    });
    (StatusCode::RANGE_NOT_SATISFIABLE, headers, body.to_string()).into_response()
}
