//! The model catalogue: which models the configured providers offer, which is the default,
//! and `GET /api/agent/models`.
//!
//! A provider is configured when it has an API key (its variable, or on AWS its secret) or,
//! for a local OpenAI-compatible server, a base URL. Its models are the ones its `…_MODELS`
//! variable lists. Without that variable, an OpenAI-compatible server at a custom URL offers
//! what its `GET /models` lists, and the official APIs their well-known models.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use mako_core::auth::{Caller, authorize_workspace};
use mako_core::config::{ProviderKind, ProviderSettings};
use mako_core::http::{ApiQuery, ok};
use mako_core::ids::{InvalidId, WorkspaceId};
use mako_core::ports::secrets::SecretString;
use mako_core::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AgentState;
use crate::provider::Provider;

/// Time allowed to list an OpenAI-compatible server's models.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

const ANTHROPIC_MODELS: &[(&str, &str)] = &[
    ("claude-sonnet-4-20250514", "Claude Sonnet 4"),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5"),
    ("claude-opus-4-1-20250805", "Claude Opus 4.1"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5"),
];

const OPENAI_MODELS: &[(&str, &str)] = &[
    ("gpt-4.1", "GPT-4.1"),
    ("gpt-4.1-mini", "GPT-4.1 mini"),
    ("gpt-4o", "GPT-4o"),
    ("gpt-4o-mini", "GPT-4o mini"),
];

/// Capabilities of every listed model as this agent uses it: streamed text with tool calls.
const CAPABILITIES: &[&str] = &["text", "tools", "streaming"];

/// One model a provider offers.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    pub id: String,
    pub provider: &'static str,
    pub display_name: String,
    pub capabilities: &'static [&'static str],
    #[serde(skip)]
    pub kind: ProviderKind,
}

/// The configured providers and their models.
pub struct Catalogue {
    pub models: Vec<Model>,
    /// Reason the OpenAI-compatible server's models could not be listed, if they could not.
    pub listing_problem: Option<String>,
    pub default: Option<String>,
    anthropic: Option<Provider>,
    openai: Option<Provider>,
}

impl Catalogue {
    pub fn provider(&self, kind: ProviderKind) -> Option<&Provider> {
        match kind {
            ProviderKind::Anthropic => self.anthropic.as_ref(),
            ProviderKind::OpenAi => self.openai.as_ref(),
        }
    }

    pub fn find(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|model| model.id == id)
    }

    /// Returns the model for a request that names none: the configured default unless the
    /// workspace turned it off, else the first model it allows.
    pub fn default_for(&self, disabled: &[String]) -> Option<&Model> {
        let allowed = |model: &&Model| !disabled.contains(&model.id);
        self.default
            .as_deref()
            .and_then(|id| self.find(id))
            .filter(allowed)
            .or_else(|| self.models.iter().find(allowed))
    }
}

/// Reads a provider's key: its variable, else its secret.
async fn key_of(state: &AgentState, settings: &ProviderSettings) -> ApiResult<Option<SecretString>> {
    if let Some(key) = &settings.api_key {
        return Ok(Some(key.clone()));
    }
    Ok(state.app.secrets.get(settings.kind.secret_name()).await?)
}

/// Lists an OpenAI-compatible server's models (`GET {base}/models`).
async fn list_remote(
    state: &AgentState,
    settings: &ProviderSettings,
    key: Option<&SecretString>,
) -> Result<Vec<String>, String> {
    let url = format!("{}/models", settings.base_url.as_str().trim_end_matches('/'));
    let mut request = state.http.get(&url).timeout(LIST_TIMEOUT);
    if let Some(key) = key {
        request = request.bearer_auth(key.expose());
    }
    let response = request.send().await.map_err(|error| error.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url} answered HTTP {}", response.status().as_u16()));
    }
    let body: Value = response.json().await.map_err(|error| error.to_string())?;
    let ids = body
        .get("data")
        .and_then(Value::as_array)
        .map(|models| {
            models
                .iter()
                .filter_map(|model| model.get("id").and_then(Value::as_str))
                .filter(|id| !id.is_empty() && id.len() <= 128)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(ids)
}

/// Adds a provider's models. Also returns why its model list could not be read, in which
/// case the catalogue is built again next time.
async fn add_provider(
    state: &AgentState,
    settings: &ProviderSettings,
    models: &mut Vec<Model>,
) -> ApiResult<(Option<Provider>, Option<String>)> {
    let key = key_of(state, settings).await?;
    if key.is_none() && !settings.custom_base_url {
        return Ok((None, None));
    }
    let builtin = match settings.kind {
        ProviderKind::Anthropic => ANTHROPIC_MODELS,
        ProviderKind::OpenAi => OPENAI_MODELS,
    };
    let mut problem = None;
    let listed: Vec<(String, String)> = match &settings.models {
        Some(ids) => ids.iter().map(|id| (id.clone(), display_name(builtin, id))).collect(),
        None if settings.kind == ProviderKind::OpenAi && settings.custom_base_url => {
            match list_remote(state, settings, key.as_ref()).await {
                Ok(ids) => {
                    // An empty list (a server with no model pulled yet) is read again next time.
                    if ids.is_empty() {
                        problem = Some("it lists no models; pull or load one there".to_owned());
                    }
                    ids.into_iter().map(|id| (id.clone(), id)).collect()
                }
                Err(error) => {
                    tracing::warn!(
                        provider = settings.kind.as_str(),
                        error = %error,
                        "failed to list the models of the OpenAI-compatible server; set MAKO_OPENAI_MODELS to skip this"
                    );
                    problem = Some(error);
                    Vec::new()
                }
            }
        }
        None => builtin
            .iter()
            .map(|(id, name)| ((*id).to_owned(), (*name).to_owned()))
            .collect(),
    };
    for (id, display_name) in listed {
        if models.iter().any(|model| model.id == id) {
            tracing::warn!(model = %id, provider = settings.kind.as_str(), "model offered by two providers; the first one serves it");
            continue;
        }
        models.push(Model {
            id,
            provider: settings.kind.as_str(),
            display_name,
            capabilities: CAPABILITIES,
            kind: settings.kind,
        });
    }
    let provider = Provider::new(
        settings,
        key,
        state.http.clone(),
        state.app.config.agent.provider_timeout,
    );
    Ok((Some(provider), problem))
}

fn display_name(builtin: &[(&str, &str)], id: &str) -> String {
    builtin
        .iter()
        .find(|(known, _)| *known == id)
        .map_or_else(|| id.to_owned(), |(_, name)| (*name).to_owned())
}

/// Returns the catalogue, built on first use and kept for the life of the process (a
/// catalogue missing a provider's list is built again on the next request).
pub async fn catalogue(state: &AgentState) -> ApiResult<Arc<Catalogue>> {
    if let Some(catalogue) = state.catalogue.get() {
        return Ok(catalogue.clone());
    }
    let settings = &state.app.config.agent;
    let mut models = Vec::new();
    let (anthropic, _) = add_provider(state, &settings.anthropic, &mut models).await?;
    let (openai, listing_problem) = add_provider(state, &settings.openai, &mut models).await?;
    let default = match &settings.default_model {
        Some(id) if models.iter().any(|model| &model.id == id) => Some(id.clone()),
        Some(id) => {
            tracing::warn!(model = %id, "MAKO_AGENT_DEFAULT_MODEL names a model no configured provider offers; using the first one");
            models.first().map(|model| model.id.clone())
        }
        None => models.first().map(|model| model.id.clone()),
    };
    let providers: Vec<&str> = [&anthropic, &openai]
        .into_iter()
        .flatten()
        .map(|provider| provider.kind.as_str())
        .collect();
    tracing::info!(providers = ?providers, models = models.len(), default = ?default, "agent model catalogue read");
    let complete = listing_problem.is_none();
    let catalogue = Arc::new(Catalogue {
        models,
        listing_problem,
        default,
        anthropic,
        openai,
    });
    if complete {
        let _ = state.catalogue.set(catalogue.clone());
    }
    Ok(catalogue)
}

/// Returns the error of a chat request when the OpenAI-compatible server offers no model.
pub fn no_models(settings: &mako_core::config::AgentSettings, problem: &str) -> ApiError {
    ApiError::BadGateway {
        code: "NO_MODELS",
        message: format!(
            "The model server at {} offers no model: {problem}. Check that it is running and that \
             MAKO_OPENAI_BASE_URL is its API address (usually ending in /v1), or name its models in MAKO_OPENAI_MODELS.",
            settings.openai.base_url
        ),
    }
}

/// Returns the error of a chat request when no provider is configured.
pub fn no_provider() -> ApiError {
    ApiError::NotFound {
        code: "PROVIDER_NOT_CONFIGURED",
        message: "No model provider is configured. Set MAKO_ANTHROPIC_API_KEY or MAKO_OPENAI_API_KEY (on AWS, the \
                  secret anthropic-api-key or openai-api-key), or MAKO_OPENAI_BASE_URL for an OpenAI-compatible \
                  server such as Ollama, then restart the server."
            .into(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ModelsQuery {
    workspace_id: Option<String>,
}

/// A model as the list shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelView<'a> {
    #[serde(flatten)]
    model: &'a Model,
    default: bool,
    enabled: bool,
}

/// `GET /api/agent/models[?workspaceId=]`: every model of the configured providers. With a
/// workspace (an API key's own by default), models it turned off are marked `enabled: false`
/// and the default is one it allows.
pub(crate) async fn list(
    State(state): State<AgentState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ModelsQuery>,
) -> ApiResult<Response> {
    let workspace_id = match (&query.workspace_id, caller.key_workspace()) {
        (Some(text), _) => Some(
            text.parse::<WorkspaceId>()
                .map_err(|error: InvalidId| ApiError::invalid_field("workspaceId", error.to_string()))?,
        ),
        (None, Some(key_workspace)) => Some(key_workspace.clone()),
        (None, None) => None,
    };
    let disabled = match workspace_id {
        Some(id) => {
            authorize_workspace(&state.app, caller, &id)
                .await?
                .workspace
                .value
                .disabled_models
        }
        None => Vec::new(),
    };
    let catalogue = catalogue(&state).await?;
    let default = catalogue.default_for(&disabled).map(|model| model.id.clone());
    let views: Vec<ModelView<'_>> = catalogue
        .models
        .iter()
        .map(|model| ModelView {
            model,
            default: default.as_ref() == Some(&model.id),
            enabled: !disabled.contains(&model.id),
        })
        .collect();
    Ok(ok(views))
}
