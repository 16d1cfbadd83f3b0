//! Add, list, read, change, test and delete connections.

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use mako_core::access::Role;
use mako_core::auth::{Attempt, WorkspaceCaller, retry_on_change};
use mako_core::http::{ApiJson, ApiPath, ApiQuery, PageParams, created, ok, ok_page};
use mako_core::ids::ConnectionId;
use mako_core::repo::connections::{ConnectionError, ConnectionRecord, Connections, TestOutcome};
use mako_core::text::clean_name;
use mako_core::{ApiError, ApiResult, AppState};
use mako_databases::guard::check_literal_hosts;
use mako_databases::service::{self, ConnectionView};
use mako_databases::settings::{
    ConnectionConfig, ConnectionInput, ConnectionKind, StoredSecret, StoredSettings, TlsMode, double_option,
    merge_input,
};
use mako_databases::{ConnectorError, TestReport};
use serde::Deserialize;

/// Maximum connection name length, in characters.
const MAX_NAME_CHARS: usize = 100;
/// Attempts at an update that keeps meeting concurrent changes.
const UPDATE_ATTEMPTS: usize = 4;

/// A connection as a request sends it. On create, `name` and `type` are required; on
/// update every field is optional and an absent one keeps its value.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ConnectionBody {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Every query on the connection runs read-only.
    read_only: Option<bool>,
    /// Connect and run a trivial query before saving; a failure saves nothing.
    #[serde(default)]
    test: bool,
    host: Option<String>,
    port: Option<u16>,
    database: Option<String>,
    username: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    password: Option<Option<String>>,
    tls: Option<TlsMode>,
    connection_string: Option<String>,
    path: Option<String>,
    auth_source: Option<String>,
}

impl ConnectionBody {
    fn input(&self) -> ConnectionInput {
        ConnectionInput {
            host: self.host.clone(),
            port: self.port,
            database: self.database.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            tls: self.tls,
            connection_string: self.connection_string.clone(),
            path: self.path.clone(),
            auth_source: self.auth_source.clone(),
        }
    }

    /// Whether the body changes anything but the name.
    fn changes_settings(&self) -> bool {
        self.read_only.is_some()
            || self.host.is_some()
            || self.port.is_some()
            || self.database.is_some()
            || self.username.is_some()
            || self.password.is_some()
            || self.tls.is_some()
            || self.connection_string.is_some()
            || self.path.is_some()
            || self.auth_source.is_some()
    }
}

fn check_name(name: &str) -> ApiResult<String> {
    clean_name("connection name", name, MAX_NAME_CHARS).map_err(|message| ApiError::invalid_field("name", message))
}

/// Checks merged settings: complete, allowed here, and pointing at an allowed address when
/// the host is an IP address.
fn validate(
    state: &AppState,
    kind: ConnectionKind,
    settings: &StoredSettings,
    secret: &StoredSecret,
) -> ApiResult<ConnectionConfig> {
    let policy = &state.config.connectors;
    let config = mako_databases::settings::resolve(kind, settings, secret, policy)?;
    check_literal_hosts(&config, policy)?;
    Ok(config)
}

/// Connects with `config` on a driver of its own (closed afterwards) and tests it.
async fn test_config(state: &AppState, config: ConnectionConfig) -> (Result<TestReport, ConnectorError>, TestOutcome) {
    let policy = &state.config.connectors;
    let opened = mako_databases::open(config, policy).await;
    let database = opened.as_ref().ok().cloned();
    let result = service::test(opened).await;
    if let Some(database) = database {
        database.close().await;
    }
    result
}

pub(crate) async fn create(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiJson(body): ApiJson<ConnectionBody>,
) -> ApiResult<Response> {
    access.require(Role::Admin, "adding connections")?;
    let name = check_name(body.name.as_deref().unwrap_or_default())?;
    let kind_text = body.kind.as_deref().ok_or_else(|| {
        ApiError::invalid_field("type", "The type is missing; use postgresql, mysql, sqlite or mongodb.")
    })?;
    let kind = ConnectionKind::parse(kind_text)?;
    let (settings, secret) = merge_input(kind, &body.input(), None)?;
    let config = validate(&state, kind, &settings, &secret)?;

    let last_test = if body.test {
        let (report, outcome) = test_config(&state, config).await;
        report?;
        Some(outcome)
    } else {
        None
    };

    let now = Utc::now();
    let id = ConnectionId::new();
    let record = ConnectionRecord {
        sealed_secret: service::seal(&state, &id, &secret).await?,
        id,
        workspace_id: access.workspace_id().clone(),
        name,
        kind: kind.as_str().to_owned(),
        settings: serde_json::to_value(&settings).map_err(ApiError::internal)?,
        read_only: body.read_only.unwrap_or(false),
        sample: false,
        created_by: access.caller.user_id().clone(),
        created_at: now,
        updated_at: now,
        last_test,
    };
    let max = state.config.connectors.max_connections_per_workspace;
    let record = retry_on_change(&state, access, |access| {
        let state = state.clone();
        let record = record.clone();
        async move {
            access.require(Role::Admin, "adding connections")?;
            match Connections::new(&*state.store)
                .create(&access.workspace, &record, max)
                .await
            {
                Ok(()) => Ok(Attempt::Done(record)),
                Err(ConnectionError::TooMany { max }) => Err(ApiError::conflict(
                    "TOO_MANY_CONNECTIONS",
                    format!("A workspace can hold at most {max} connections; delete unused ones first."),
                )),
                Err(ConnectionError::Changed | ConnectionError::NotFound) => Ok(Attempt::Changed),
                Err(ConnectionError::Store(error)) => Err(error.into()),
            }
        }
    })
    .await?;
    tracing::info!(
        workspace_id = %record.workspace_id,
        connection_id = %record.id,
        kind = %record.kind,
        "connection added"
    );
    Ok(created(ConnectionView::new(&state, &record).await?))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    let limit = page.size(100, 100)?;
    let (records, next_cursor) = Connections::new(&*state.store)
        .list(access.workspace_id(), limit, page.cursor)
        .await?;
    let mut views = Vec::with_capacity(records.len());
    for record in &records {
        views.push(ConnectionView::new(&state, record).await?);
    }
    Ok(ok_page(views, next_cursor))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let id = service::parse_id("id", &id)?;
    let record = service::load(&state, access.workspace_id(), &id).await?;
    Ok(ok(ConnectionView::new(&state, &record.value).await?))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ConnectionBody>,
) -> ApiResult<Response> {
    access.require(Role::Admin, "changing connections")?;
    let id = service::parse_id("id", &id)?;
    let name = body.name.as_deref().map(check_name).transpose()?;
    let connections = Connections::new(&*state.store);

    let mut tested = false;
    for _ in 0..UPDATE_ATTEMPTS {
        let current = service::load(&state, access.workspace_id(), &id).await?;
        let kind = service::kind_of(&current.value)?;
        if let Some(text) = &body.kind
            && ConnectionKind::parse(text)? != kind
        {
            return Err(ApiError::invalid_field(
                "type",
                format!(
                    "A connection's type cannot change (this one is {}); add a new connection instead.",
                    kind.as_str()
                ),
            ));
        }
        if current.value.sample && body.changes_settings() {
            return Err(ApiError::invalid_field(
                "sample",
                "The sample database connection only takes a new name; add a new connection for other settings.",
            ));
        }

        let settings = service::settings_of(&current.value)?;
        let secret = service::secret_of(&state, &current.value).await?;
        let (settings, secret) = merge_input(kind, &body.input(), Some((&settings, &secret)))?;
        let mut updated = current.value.clone();
        if !current.value.sample {
            let config = validate(&state, kind, &settings, &secret)?;
            if body.test && !tested {
                let (report, outcome) = test_config(&state, config).await;
                report?;
                updated.last_test = Some(outcome);
                tested = true;
            }
        }
        if let Some(name) = &name {
            updated.name = name.clone();
        }
        if let Some(read_only) = body.read_only {
            updated.read_only = read_only;
        }
        updated.settings = serde_json::to_value(&settings).map_err(ApiError::internal)?;
        updated.sealed_secret = service::seal(&state, &id, &secret).await?;
        updated.updated_at = Utc::now();

        match connections.update(&current, &updated).await {
            Ok(()) => {
                service::forget(&id);
                tracing::info!(workspace_id = %updated.workspace_id, connection_id = %id, "connection changed");
                return Ok(ok(ConnectionView::new(&state, &updated).await?));
            }
            Err(ConnectionError::Changed) => continue,
            Err(ConnectionError::Store(error)) => return Err(error.into()),
            Err(error @ (ConnectionError::NotFound | ConnectionError::TooMany { .. })) => {
                return Err(ApiError::internal(error));
            }
        }
    }
    Err(ApiError::conflict(
        "CONCURRENT_CHANGE",
        "The connection kept changing while this request ran; retry it.",
    ))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    access.require(Role::Admin, "deleting connections")?;
    let id = service::parse_id("id", &id)?;
    retry_on_change(&state, access, |access| {
        let state = state.clone();
        let id = id.clone();
        async move {
            access.require(Role::Admin, "deleting connections")?;
            let current = service::load(&state, access.workspace_id(), &id).await?;
            match Connections::new(&*state.store)
                .delete(&access.workspace, &current.value)
                .await
            {
                // Deleted concurrently: the outcome the caller asked for.
                Ok(()) | Err(ConnectionError::NotFound) => Ok(Attempt::Done(())),
                Err(ConnectionError::Changed | ConnectionError::TooMany { .. }) => Ok(Attempt::Changed),
                Err(ConnectionError::Store(error)) => Err(error.into()),
            }
        }
    })
    .await?;
    service::forget(&id);
    tracing::info!(connection_id = %id, "connection deleted");
    Ok(ok(serde_json::json!({ "id": id, "deleted": true })))
}

/// Tests a saved connection: connect with the connect timeout, run a trivial query, report
/// the latency and server version. The outcome is kept on the connection.
pub(crate) async fn test(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let id = service::parse_id("id", &id)?;
    let record = service::load(&state, access.workspace_id(), &id).await?;
    let kind = service::kind_of(&record.value)?;
    let settings = service::settings_of(&record.value)?;
    let secret = service::secret_of(&state, &record.value).await?;
    let config = service::config_of(&record.value, kind, &settings, &secret, &state.config.connectors);
    let (report, outcome) = match config {
        Ok(config) => test_config(&state, config).await,
        Err(error) => service::test(Err(error)).await,
    };
    if let Err(error) = Connections::new(&*state.store)
        .record_test(&record, outcome.clone())
        .await
    {
        tracing::warn!(connection_id = %id, error = %error, "failed to record a connection test");
    }
    match report {
        Ok(report) => Ok(ok(serde_json::json!({
            "ok": true,
            "latencyMs": report.latency_ms,
            "serverVersion": report.server_version,
            "testedAt": outcome.tested_at,
        }))),
        Err(error) => {
            tracing::info!(connection_id = %id, error = %error, "connection test failed");
            Err(error.into())
        }
    }
}
