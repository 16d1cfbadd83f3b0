//! Shared core of every Mako function: configuration, errors, ids, the storage ports,
//! authentication, access control, repositories and HTTP glue.

pub mod access;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod error;
pub mod http;
pub mod ids;
pub mod maintenance;
pub mod ports;
pub mod repo;
pub mod state;
pub mod telemetry;
pub mod text;

pub use error::{ApiError, ApiResult};
pub use state::{AppState, Ports};
