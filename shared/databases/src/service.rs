//! What the route families share to use a stored connection: reading it, sealing and
//! unsealing its credentials, opening its driver, showing it without secrets, and turning
//! connector errors into API errors.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use mako_core::config::ConnectorSettings;
use mako_core::ids::{ConnectionId, InvalidId, UserId, WorkspaceId};
use mako_core::repo::Versioned;
use mako_core::repo::connections::{ConnectionRecord, Connections, TestOutcome};
use mako_core::{ApiError, ApiResult, AppState};
use serde::Serialize;

use crate::Database;
use crate::error::ConnectorError;
use crate::registry::registry;
use crate::settings::{ConnectionConfig, ConnectionKind, StoredSecret, StoredSettings, TlsMode, resolve};

impl From<ConnectorError> for ApiError {
    fn from(error: ConnectorError) -> ApiError {
        let message = error.to_string();
        match error {
            ConnectorError::InvalidConfig { field, message } => ApiError::invalid_field(field, message),
            ConnectorError::InvalidParameter { name, message } => {
                ApiError::invalid_field(&format!("params.{name}"), message)
            }
            ConnectorError::AddressRefused { message } => ApiError::BadRequest {
                code: "ADDRESS_NOT_ALLOWED",
                message,
            },
            ConnectorError::Unreachable { .. } => ApiError::BadGateway {
                code: "DATABASE_UNREACHABLE",
                message,
            },
            ConnectorError::AuthenticationFailed => ApiError::BadGateway {
                code: "DATABASE_AUTH_FAILED",
                message,
            },
            ConnectorError::TlsRequired | ConnectorError::TlsFailed { .. } => ApiError::BadGateway {
                code: "DATABASE_TLS_FAILED",
                message,
            },
            ConnectorError::UnknownDatabase { .. } => ApiError::BadGateway {
                code: "DATABASE_NOT_FOUND",
                message,
            },
            ConnectorError::QueryFailed { .. } => ApiError::Unprocessable {
                code: "QUERY_FAILED",
                message,
            },
            ConnectorError::PoolBusy { .. } => ApiError::Unavailable {
                message: error.to_string(),
                retry_after_secs: 1,
            },
            ConnectorError::ResultMemoryFull => ApiError::Unavailable {
                message: error.to_string(),
                retry_after_secs: 1,
            },
            ConnectorError::Timeout { .. } => ApiError::GatewayTimeout {
                code: "QUERY_TIMEOUT",
                message,
            },
            ConnectorError::ReadOnly { .. } => ApiError::Forbidden {
                code: "READ_ONLY",
                message,
            },
            ConnectorError::InvalidQuery { message } => ApiError::BadRequest {
                code: "INVALID_QUERY",
                message,
            },
            ConnectorError::Disconnected | ConnectorError::SlowClient { .. } => ApiError::BadRequest {
                code: "CLIENT_DISCONNECTED",
                message,
            },
            ConnectorError::Internal(error) => ApiError::Internal(error),
        }
    }
}

/// Parses a connection id from a path or body.
pub fn parse_id(field: &str, text: &str) -> ApiResult<ConnectionId> {
    text.parse()
        .map_err(|error: InvalidId| ApiError::invalid_field(field, error.to_string()))
}

/// Reads a connection of a workspace; unknown ids are 404.
pub async fn load(
    state: &AppState,
    workspace: &WorkspaceId,
    id: &ConnectionId,
) -> ApiResult<Versioned<ConnectionRecord>> {
    Connections::new(&*state.store)
        .get(workspace, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Connection {id} was not found in this workspace.")))
}

/// The kind of a stored connection.
pub fn kind_of(record: &ConnectionRecord) -> ApiResult<ConnectionKind> {
    ConnectionKind::parse(&record.kind).map_err(|_| {
        ApiError::internal(anyhow::anyhow!(
            "connection {} has the unknown kind {:?}",
            record.id,
            record.kind
        ))
    })
}

/// The settings of a stored connection.
pub fn settings_of(record: &ConnectionRecord) -> ApiResult<StoredSettings> {
    serde_json::from_value(record.settings.clone()).map_err(|error| {
        ApiError::internal(
            anyhow::Error::new(error).context(format!("connection {} has unreadable settings", record.id)),
        )
    })
}

/// Unseals the secret settings of a stored connection.
pub async fn secret_of(state: &AppState, record: &ConnectionRecord) -> ApiResult<StoredSecret> {
    let Some(sealed) = &record.sealed_secret else {
        return Ok(StoredSecret::default());
    };
    let cipher = state.credential_cipher().await?;
    let plain = cipher.open(sealed, record.id.as_str()).map_err(|error| {
        ApiError::internal(
            anyhow::Error::new(error).context(format!("cannot unseal the secret of connection {}", record.id)),
        )
    })?;
    serde_json::from_slice(&plain).map_err(|error| {
        ApiError::internal(
            anyhow::Error::new(error).context(format!("connection {} has an unreadable secret", record.id)),
        )
    })
}

/// Seals secret settings for connection `id`; nothing is stored when there are none.
pub async fn seal(state: &AppState, id: &ConnectionId, secret: &StoredSecret) -> ApiResult<Option<String>> {
    if secret.is_empty() {
        return Ok(None);
    }
    let cipher = state.credential_cipher().await?;
    let plain = serde_json::to_vec(secret).map_err(ApiError::internal)?;
    Ok(Some(cipher.seal(&plain, id.as_str())))
}

/// Builds the typed configuration of a connection. The sample database is the file the
/// local server generated, wherever the SQLite folder is.
pub fn config_of(
    record: &ConnectionRecord,
    kind: ConnectionKind,
    settings: &StoredSettings,
    secret: &StoredSecret,
    policy: &ConnectorSettings,
) -> Result<ConnectionConfig, ConnectorError> {
    if record.sample {
        return match &policy.sample_database {
            Some(path) => Ok(ConnectionConfig::Sqlite { path: path.clone() }),
            None => Err(ConnectorError::invalid(
                "type",
                "The sample database exists only on the local server; delete this connection.",
            )),
        };
    }
    resolve(kind, settings, secret, policy)
}

/// Returns the open driver of a stored connection, opening it on first use.
pub async fn open(state: &AppState, record: &Versioned<ConnectionRecord>) -> ApiResult<Arc<dyn Database>> {
    let kind = kind_of(&record.value)?;
    let settings = settings_of(&record.value)?;
    let secret = secret_of(state, &record.value).await?;
    let policy = &state.config.connectors;
    let key = format!("{}@{}", record.version, record.value.updated_at.timestamp_micros());
    let database = registry()
        .get(
            record.value.id.as_str(),
            &key,
            || config_of(&record.value, kind, &settings, &secret, policy),
            policy,
        )
        .await?;
    Ok(database)
}

/// Closes the driver of a changed or deleted connection.
pub fn forget(id: &ConnectionId) {
    registry().evict(id.as_str());
}

/// Runs a connection test and describes its outcome for the record.
pub async fn test(
    database: Result<Arc<dyn Database>, ConnectorError>,
) -> (Result<crate::TestReport, ConnectorError>, TestOutcome) {
    let report = match database {
        Ok(database) => database.test().await,
        Err(error) => Err(error),
    };
    let outcome = TestOutcome {
        ok: report.is_ok(),
        tested_at: Utc::now(),
        latency_ms: report.as_ref().ok().map(|report| report.latency_ms),
        server_version: report.as_ref().ok().map(|report| report.server_version.clone()),
        error: report.as_ref().err().map(ToString::to_string),
    };
    (report, outcome)
}

/// A connection as the API shows it: settings without secrets, and which secrets are set.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    pub id: ConnectionId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub read_only: bool,
    pub sample: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_source: Option<String>,
    pub password_set: bool,
    pub connection_string_set: bool,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_test: Option<TestOutcome>,
}

impl ConnectionView {
    pub async fn new(state: &AppState, record: &ConnectionRecord) -> ApiResult<ConnectionView> {
        let settings = settings_of(record)?;
        let secret = secret_of(state, record).await?;
        Ok(ConnectionView {
            id: record.id.clone(),
            workspace_id: record.workspace_id.clone(),
            name: record.name.clone(),
            kind: record.kind.clone(),
            read_only: record.read_only,
            sample: record.sample,
            host: settings.host,
            port: settings.port,
            database: settings.database,
            username: settings.username,
            tls: settings.tls,
            path: settings.path,
            auth_source: settings.auth_source,
            password_set: secret.password.is_some(),
            connection_string_set: secret.connection_string.is_some(),
            created_by: record.created_by.clone(),
            created_at: record.created_at,
            updated_at: record.updated_at,
            last_test: record.last_test.clone(),
        })
    }
}
