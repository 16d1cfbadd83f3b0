//! `POST …/consoles/{id}/execute`: run a console's stored code on its stored connection,
//! with typed parameter values, and return the result as the JSON envelope of
//! `/api/execute` or, with `?format=csv|ndjson`, as a file.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use chrono::Utc;
use mako_core::access::Role;
use mako_core::auth::WorkspaceCaller;
use mako_core::http::{ApiPath, ApiQuery};
use mako_core::repo::connections::Connections;
use mako_core::repo::consoles::{Console, Consoles, ParameterSpec, RunOutcome};
use mako_core::{ApiError, ApiResult, AppState};
use mako_databases::ConnectorError;
use mako_databases::export::{ExportEvent, ExportSink, Format, streamed_response};
use mako_databases::params::{ParamType, ParamValue};
use mako_databases::response::JsonSink;
use mako_databases::run;
use mako_databases::service;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::consoles::load_visible;
use crate::model::{language_name, language_of, optional_json, parse_console_id, placeholders_of};
use crate::tree::Tree;

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RunBody {
    /// Values of the declared parameters, by name.
    params: Option<Map<String, Value>>,
    /// Rows returned at most; the server's default when absent.
    limit: Option<u64>,
    /// Time limit in milliseconds; the server's default when absent.
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunParams {
    /// `json` (the default), `csv` or `ndjson`.
    format: Option<String>,
}

/// Checks the request's values against the declared parameters and fills in defaults. A
/// required parameter needs a value other than null; an optional one without a value or
/// default is NULL. Parameters the code does not use (`used`, when known) are left out, so
/// a declared but unused parameter never stops a run.
fn parameter_values(
    specs: &[ParameterSpec],
    requested: Option<&Map<String, Value>>,
    used: Option<BTreeSet<String>>,
) -> ApiResult<BTreeMap<String, ParamValue>> {
    let empty = Map::new();
    let requested = requested.unwrap_or(&empty);
    if let Some(unknown) = requested
        .keys()
        .find(|name| !specs.iter().any(|spec| &spec.name == *name))
    {
        let declared: Vec<&str> = specs.iter().map(|spec| spec.name.as_str()).collect();
        let declared = if declared.is_empty() {
            "none".to_owned()
        } else {
            declared.join(", ")
        };
        return Err(ApiError::invalid_field(
            &format!("params.{unknown}"),
            format!("The console declares no parameter {unknown:?}; it declares: {declared}."),
        ));
    }

    let mut values = BTreeMap::new();
    for spec in specs {
        if used.as_ref().is_some_and(|used| !used.contains(&spec.name)) {
            continue;
        }
        let kind = ParamType::parse(&spec.kind).map_err(|message| {
            ApiError::internal(std::io::Error::other(format!(
                "stored parameter {} has an unknown type: {message}",
                spec.name
            )))
        })?;
        let value = match requested.get(&spec.name) {
            Some(value) if !(value.is_null() && spec.required) => value.clone(),
            Some(_) | None => match &spec.default {
                Some(default) if !requested.contains_key(&spec.name) => default.clone(),
                _ if spec.required => {
                    return Err(ApiError::invalid_field(
                        &format!("params.{}", spec.name),
                        format!(
                            "The parameter {:?} is required; give it a value of type {}.",
                            spec.name, spec.kind
                        ),
                    ));
                }
                _ => Value::Null,
            },
        };
        values.insert(spec.name.clone(), kind.value(&spec.name, &value)?);
    }
    Ok(values)
}

pub(crate) async fn execute(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ApiQuery(options): ApiQuery<RunParams>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = parse_console_id(&id)?;
    let format = Format::parse(options.format.as_deref().unwrap_or("json"))
        .map_err(|message| ApiError::invalid_field("format", message))?;
    let body: RunBody = optional_json(&body)?;
    let limits = run::limits(&state.config.connectors, body.limit, body.timeout_ms)?;

    let tree = Tree::load(&state, &access).await?;
    let console = load_visible(&state, &access, &tree, &id).await?;
    run::check_query("code", &console.code)?;
    let record = Connections::new(&*state.store)
        .get(access.workspace_id(), &console.connection_id)
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                "CONNECTION_GONE",
                format!(
                    "Connection {} of this console no longer exists; point the console at another connection.",
                    console.connection_id
                ),
            )
        })?;
    let kind = service::kind_of(&record.value)?;
    if language_of(kind) != console.language {
        return Err(ApiError::conflict(
            "LANGUAGE_MISMATCH",
            format!(
                "The console is written in {} but its connection runs {}; change one of them.",
                language_name(console.language),
                language_name(language_of(kind))
            ),
        ));
    }
    let values = parameter_values(
        &console.parameters,
        body.params.as_ref(),
        placeholders_of(kind, &console.code),
    )?;
    let bound = run::bind(kind, &console.code, values)?;
    let read_only = record.value.read_only || access.role < Role::Member;

    let database = service::open(&state, &record).await?;
    let request = bound.into_request(
        console.database.clone(),
        limits,
        state.config.connectors.max_result_bytes,
        read_only,
    );
    let started_at = Utc::now();
    let memory = state.result_memory.clone();
    match format {
        None => {
            let mut sink = JsonSink::with_memory(memory);
            let outcome = database.execute_into(request, &mut sink).await;
            let rows = sink.last_end().row_count;
            let elapsed = finish(&state, &console, started_at, rows, outcome).await?;
            Ok(sink.into_response(elapsed, extra(&console)))
        }
        Some(format) => {
            // The query runs in a task of its own, so a large file streams while the response
            // is sent. The first event decides between a whole file, an error status and a
            // stream.
            let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
            let mut sink = ExportSink::streaming(format, memory, events.clone());
            let shared = sink.shared();
            let task_state = state.clone();
            let task_console = console.clone();
            let task = tokio::spawn(async move {
                let outcome = database.execute_into(request, &mut sink).await;
                let rows = sink.end_of_set().row_count;
                let recorded = finish(&task_state, &task_console, started_at, rows, outcome.map(|_| ())).await;
                let event = match recorded {
                    Ok(()) => sink.finish(),
                    Err(error) => sink.fail(error),
                };
                // The receiver is gone when the client left; the run is recorded already.
                let _ = events.send(event);
            });
            // Dropping the guard (this handler or the streamed body, when the client leaves)
            // stops the query the way a dropped JSON run stops.
            let guard = AbortOnDrop(task);
            match received.recv().await {
                Some(ExportEvent::Whole(sink)) => Ok(sink.into_response(&console.name)),
                Some(ExportEvent::Chunk(first, permit)) => Ok(streamed_response(
                    format,
                    &console.name,
                    (first, permit),
                    received,
                    shared,
                    guard,
                )),
                Some(ExportEvent::Failed(error)) => Err(error.into()),
                Some(ExportEvent::End(_)) | None => Err(ApiError::internal(std::io::Error::other(
                    "the export task ended without a result",
                ))),
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Records a run in the console's statistics and logs it; a failed run becomes its error.
async fn finish<S>(
    state: &AppState,
    console: &Console,
    started_at: chrono::DateTime<Utc>,
    rows: usize,
    outcome: Result<S, ConnectorError>,
) -> Result<S, ConnectorError> {
    let duration_ms = u64::try_from((Utc::now() - started_at).num_milliseconds()).unwrap_or(0);
    let (row_count, error) = match &outcome {
        Ok(_) => (Some(rows as u64), None),
        Err(error) => (None, Some(error.to_string())),
    };
    match &error {
        None => tracing::info!(
            workspace_id = %console.workspace_id,
            console_id = %console.id,
            rows,
            duration_ms,
            "console executed"
        ),
        Some(error) => tracing::info!(
            workspace_id = %console.workspace_id,
            console_id = %console.id,
            error = %error,
            "console run failed"
        ),
    }
    let run = RunOutcome {
        started_at,
        duration_ms,
        row_count,
        error,
    };
    if let Err(error) = Consoles::new(&*state.store)
        .record_run(&console.workspace_id, &console.id, &run)
        .await
    {
        tracing::warn!(console_id = %console.id, error = %error, "failed to record a console run");
    }
    outcome
}

/// The console's id, name and version, first in the response's `data`.
fn extra(console: &Console) -> Map<String, Value> {
    let mut extra = Map::new();
    extra.insert("consoleId".into(), Value::from(console.id.as_str()));
    extra.insert("consoleName".into(), Value::from(console.name.clone()));
    extra.insert("consoleVersion".into(), Value::from(console.version));
    extra
}
