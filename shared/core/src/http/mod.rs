//! HTTP glue shared by every route family: the response envelope, extractors whose
//! rejections use the API's error format, and the layers every router is served with.

mod extract;
mod layers;
mod response;

pub use extract::{ApiJson, ApiPath, ApiQuery, ClientAddr, PageParams, double_option, optional_json};
pub use layers::serve_api;
pub use response::{created, no_content_ok, ok, ok_page};
