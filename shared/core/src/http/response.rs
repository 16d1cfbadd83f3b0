//! The success envelope: `{"success": true, "data": …}`, with `nextCursor` beside `data` on
//! paginated lists.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

/// 200 with `data`.
pub fn ok<T: Serialize>(data: T) -> Response {
    Json(json!({ "success": true, "data": data })).into_response()
}

/// 201 with `data`.
pub fn created<T: Serialize>(data: T) -> Response {
    (StatusCode::CREATED, Json(json!({ "success": true, "data": data }))).into_response()
}

/// 200 with a page of `data` and the cursor of the next page (`null` on the last page).
pub fn ok_page<T: Serialize>(data: Vec<T>, next_cursor: Option<String>) -> Response {
    Json(json!({ "success": true, "data": data, "nextCursor": next_cursor })).into_response()
}

/// 200 with `data: null`, for deletions.
pub fn no_content_ok() -> Response {
    ok(serde_json::Value::Null)
}
