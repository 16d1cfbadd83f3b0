//! Settings shared by every function, read from environment variables.
//!
//! Adapter-specific settings (data folder, AWS resource names) belong to the adapter crates.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

/// Settings of the API itself.
#[derive(Clone, Debug)]
pub struct Config {
    /// Base URL at which clients reach this server (scheme, host, optional port), used for
    /// OAuth callbacks and CSRF origin checks. `None` derives it from each request.
    pub public_url: Option<Url>,
    /// Page a browser lands on after signing in with Google or GitHub.
    pub app_url: Url,
    /// Origins, besides the server's own and the app URL's, that may send cookie-authenticated
    /// writes and read responses in a browser (CORS).
    pub allowed_origins: Vec<String>,
    /// Whether cookies carry the `Secure` attribute.
    pub cookie_secure: bool,
    /// A session unused for this long expires.
    pub session_idle_timeout: Duration,
    /// A session expires this long after sign-in, however active.
    pub session_max_age: Duration,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    pub rate_limits: RateLimits,
    pub google: OAuthProvider,
    pub github: OAuthProvider,
    pub connectors: ConnectorSettings,
    pub consoles: ConsoleSettings,
    pub jobs: JobSettings,
    pub agent: AgentSettings,
}

/// Wire protocol of a model provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// The Anthropic Messages API.
    Anthropic,
    /// The OpenAI Chat Completions API, or a server compatible with it.
    OpenAi,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAi => "openai",
        }
    }

    /// Returns the name of the secret that contains the provider's API key when no variable sets it.
    pub fn secret_name(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic-api-key",
            ProviderKind::OpenAi => "openai-api-key",
        }
    }
}

/// A model provider's endpoint, key and models.
#[derive(Clone, Debug)]
pub struct ProviderSettings {
    pub kind: ProviderKind,
    /// `MAKO_ANTHROPIC_API_KEY` / `MAKO_OPENAI_API_KEY`. When unset, the key is read from the
    /// secret `anthropic-api-key` / `openai-api-key`.
    pub api_key: Option<crate::ports::secrets::SecretString>,
    /// `MAKO_ANTHROPIC_BASE_URL` / `MAKO_OPENAI_BASE_URL`.
    pub base_url: Url,
    /// Whether the base URL was set explicitly: an OpenAI-compatible local server needs no key.
    pub custom_base_url: bool,
    /// `MAKO_ANTHROPIC_MODELS` / `MAKO_OPENAI_MODELS`: model ids offered, the provider's
    /// well-known models when unset.
    pub models: Option<Vec<String>>,
}

/// Settings of the agent: model providers and the limits of one chat reply.
#[derive(Clone, Debug)]
pub struct AgentSettings {
    pub anthropic: ProviderSettings,
    pub openai: ProviderSettings,
    /// `MAKO_AGENT_DEFAULT_MODEL`: the model used when a request names none.
    pub default_model: Option<String>,
    /// `MAKO_AGENT_MAX_STEPS`: model calls in one reply (each may run tools).
    pub max_steps: u32,
    /// `MAKO_AGENT_MAX_TOKENS`: tokens one model call may write.
    pub max_tokens: u32,
    /// `MAKO_AGENT_PROVIDER_TIMEOUT_SECS`: wait for a provider's first byte, and between two
    /// chunks of its stream.
    pub provider_timeout: Duration,
    /// `MAKO_AGENT_QUERY_ROWS`: rows a query tool returns at most.
    pub query_rows: usize,
    /// `MAKO_AGENT_QUERY_TIMEOUT_SECS`: time limit of a query tool.
    pub query_timeout: Duration,
    /// `MAKO_AGENT_KEEPALIVE_SECS`: silence after which the stream sends a comment line.
    pub keepalive: Duration,
    /// `MAKO_MAX_CHAT_MESSAGES`: messages one chat may hold.
    pub max_chat_messages: u32,
    /// `MAKO_AGENT_CONTEXT_BYTES`: bytes of earlier messages sent to the model, newest first.
    pub context_bytes: usize,
}

/// Limits of saved consoles.
#[derive(Clone, Debug)]
pub struct ConsoleSettings {
    /// Consoles one workspace may hold. Listing reads them all, so this bounds its cost.
    pub max_per_workspace: u32,
    /// Console folders one workspace may hold.
    pub max_folders_per_workspace: u32,
}

/// Limits of dashboards and of the jobs that materialize their data.
#[derive(Clone, Debug)]
pub struct JobSettings {
    /// Dashboards one workspace may hold (`MAKO_MAX_DASHBOARDS_PER_WORKSPACE`).
    pub max_dashboards_per_workspace: u32,
    /// Rows one data source may materialize (`MAKO_MATERIALIZE_MAX_ROWS`).
    pub max_rows: u64,
    /// Time limit of one build's query (`MAKO_MATERIALIZE_TIMEOUT_SECS`).
    pub build_timeout: Duration,
    /// Lease of a job on the queue; the worker renews it at a third of this
    /// (`MAKO_JOB_VISIBILITY_SECS`).
    pub visibility: Duration,
    /// Deliveries of a job before it fails for good (`MAKO_QUEUE_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// Back-off before the first retry, doubled for each later one (`MAKO_JOB_RETRY_SECS`).
    pub retry_base: Duration,
    /// A job with no heartbeat for this long is marked failed (`MAKO_JOB_ABANDON_SECS`).
    pub abandon_after: Duration,
    /// Jobs one local server builds at once (`MAKO_WORKER_CONCURRENCY`).
    pub worker_concurrency: u32,
    /// How long a presigned artifact URL stays valid (`MAKO_ARTIFACT_URL_SECS`).
    pub artifact_url_ttl: Duration,
}

/// Where the process runs, which decides what user databases it may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployment {
    /// The local server: loopback and private addresses are allowed, SQLite files too.
    Local,
    /// Lambda: only public addresses (and the allow-list) are reachable, and SQLite is off.
    Cloud,
}

/// Settings of connections to users' databases and of query execution.
#[derive(Clone, Debug)]
pub struct ConnectorSettings {
    pub deployment: Deployment,
    /// Networks the address guard lets through even when they are not public.
    pub allowed_networks: Vec<Cidr>,
    /// Folder that SQLite connections may open files in (local server only).
    pub sqlite_dir: Option<std::path::PathBuf>,
    /// The sample database file; when set, new workspaces get a read-only connection to it.
    /// Only the local server sets it, after generating the file.
    pub sample_database: Option<std::path::PathBuf>,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Rows returned when a request sets no limit.
    pub default_rows: usize,
    /// Maximum rows a request may ask for.
    pub max_rows: usize,
    /// Maximum bytes of values in one result. Beyond it the result is truncated.
    pub max_result_bytes: usize,
    /// Query time limit when a request sets none.
    pub default_timeout: Duration,
    /// Maximum time limit a request may ask for.
    pub max_timeout: Duration,
    /// Maximum connections per workspace.
    pub max_connections_per_workspace: u32,
    /// Bytes of encoded results all executions of this process may hold at once.
    pub result_memory: usize,
    /// Maximum open connections to one user database (per database of a server) in this process.
    pub pool_size: u32,
}

/// An IP network in CIDR notation, such as `10.0.0.0/8` or `fd00::/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub address: std::net::IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Returns whether `ip` is inside this network (IPv4 and IPv6 never match each other).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        match (self.address, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address: std::net::IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or network such as 10.0.0.0/8"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= max)
                .ok_or_else(|| format!("{text:?} has an invalid prefix length; use 0 to {max}"))?,
        };
        Ok(Cidr { address, prefix })
    }
}

/// Limits on sign-in and registration attempts, counted in the store so that they hold
/// across processes.
#[derive(Clone, Debug)]
pub struct RateLimits {
    /// Length of one counting window.
    pub window: Duration,
    /// Failed logins per email address and window.
    pub login_failures_per_email: i64,
    /// Login attempts per client address and window.
    pub logins_per_address: i64,
    /// Registrations per client address and window.
    pub registrations_per_address: i64,
    /// Registration attempts per email address and window.
    pub registrations_per_email: i64,
}

/// An OAuth 2.0 provider's client id and endpoints. The client secret comes from the
/// `Secrets` port (`google-client-secret`, `github-client-secret`).
#[derive(Clone, Debug)]
pub struct OAuthProvider {
    /// `None` disables sign-in with this provider.
    pub client_id: Option<String>,
    pub authorize_url: Url,
    pub token_url: Url,
    /// Google: the OpenID Connect user-info endpoint. GitHub: the REST API base URL.
    pub user_url: Url,
}

/// Error naming the variable whose value is invalid.
#[derive(Debug, thiserror::Error)]
#[error("{variable}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

/// Source of setting values: the process environment, or a map in tests.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<String>;
}

/// Reads settings from the process environment.
pub struct Environment;

impl Lookup for Environment {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.trim().is_empty())
    }
}

impl Lookup for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name)
            .cloned()
            .filter(|value| !value.trim().is_empty())
    }
}

/// Reads a variable, or `default` when unset, and parses it.
pub fn parse_var<T: FromStr>(lookup: &dyn Lookup, variable: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match lookup.get(variable) {
        None => Ok(default),
        Some(value) => value.trim().parse().map_err(|error: T::Err| ConfigError {
            variable,
            value,
            reason: error.to_string(),
        }),
    }
}

/// Reads a whole number within `range`.
fn parse_number(
    lookup: &dyn Lookup,
    variable: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let value = parse_var(lookup, variable, default)?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError {
            variable,
            value: value.to_string(),
            reason: format!("expected a whole number from {} to {}", range.start(), range.end()),
        })
    }
}

fn parse_url(lookup: &dyn Lookup, variable: &'static str, default: &str) -> Result<Url, ConfigError> {
    let value = lookup.get(variable).unwrap_or_else(|| default.to_owned());
    let url = Url::parse(value.trim()).map_err(|error| ConfigError {
        variable,
        value: value.clone(),
        reason: error.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError {
            variable,
            value,
            reason: "expected an http:// or https:// URL with a host".into(),
        });
    }
    Ok(url)
}

/// Reads a comma-separated list of model ids, or `None` when the variable is unset.
fn parse_models(lookup: &dyn Lookup, variable: &'static str) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(list) = lookup.get(variable) else {
        return Ok(None);
    };
    let mut models: Vec<String> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        if entry.len() > 128 || !entry.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError {
                variable,
                value: list.clone(),
                reason: format!("{entry:?} is not a model id: use 1 to 128 printable ASCII characters"),
            });
        }
        if !models.iter().any(|model| model == entry) {
            models.push(entry.to_owned());
        }
    }
    Ok(Some(models))
}

fn provider_settings(
    lookup: &dyn Lookup,
    kind: ProviderKind,
    [key_var, url_var, models_var]: [&'static str; 3],
    default_url: &str,
) -> Result<ProviderSettings, ConfigError> {
    Ok(ProviderSettings {
        kind,
        api_key: lookup
            .get(key_var)
            .map(|key| crate::ports::secrets::SecretString::new(key.trim())),
        base_url: parse_url(lookup, url_var, default_url)?,
        custom_base_url: lookup.get(url_var).is_some(),
        models: parse_models(lookup, models_var)?,
    })
}

/// Reads the agent settings.
fn agent_settings(lookup: &dyn Lookup) -> Result<AgentSettings, ConfigError> {
    let anthropic = provider_settings(
        lookup,
        ProviderKind::Anthropic,
        [
            "MAKO_ANTHROPIC_API_KEY",
            "MAKO_ANTHROPIC_BASE_URL",
            "MAKO_ANTHROPIC_MODELS",
        ],
        "https://api.anthropic.com",
    )?;
    let openai = provider_settings(
        lookup,
        ProviderKind::OpenAi,
        ["MAKO_OPENAI_API_KEY", "MAKO_OPENAI_BASE_URL", "MAKO_OPENAI_MODELS"],
        "https://api.openai.com/v1",
    )?;
    let default_model = lookup
        .get("MAKO_AGENT_DEFAULT_MODEL")
        .map(|model| model.trim().to_owned());
    Ok(AgentSettings {
        anthropic,
        openai,
        default_model,
        max_steps: parse_number(lookup, "MAKO_AGENT_MAX_STEPS", 10, 1..=50)? as u32,
        max_tokens: parse_number(lookup, "MAKO_AGENT_MAX_TOKENS", 4_096, 256..=128_000)? as u32,
        provider_timeout: Duration::from_secs(parse_number(lookup, "MAKO_AGENT_PROVIDER_TIMEOUT_SECS", 120, 1..=900)?),
        query_rows: parse_number(lookup, "MAKO_AGENT_QUERY_ROWS", 100, 1..=1_000)? as usize,
        query_timeout: Duration::from_secs(parse_number(lookup, "MAKO_AGENT_QUERY_TIMEOUT_SECS", 30, 1..=300)?),
        keepalive: Duration::from_secs(parse_number(lookup, "MAKO_AGENT_KEEPALIVE_SECS", 15, 1..=300)?),
        max_chat_messages: parse_number(lookup, "MAKO_MAX_CHAT_MESSAGES", 1_000, 2..=100_000)? as u32,
        context_bytes: parse_number(lookup, "MAKO_AGENT_CONTEXT_BYTES", 200_000, 1_000..=10_000_000)? as usize,
    })
}

/// Reads the connector settings. `local` is true for the local server.
fn connector_settings(lookup: &dyn Lookup, local: bool) -> Result<ConnectorSettings, ConfigError> {
    let mut allowed_networks = Vec::new();
    if let Some(list) = lookup.get("MAKO_ALLOWED_DATABASE_NETWORKS") {
        for entry in list.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            allowed_networks.push(entry.parse::<Cidr>().map_err(|reason| ConfigError {
                variable: "MAKO_ALLOWED_DATABASE_NETWORKS",
                value: entry.to_owned(),
                reason,
            })?);
        }
    }
    let sqlite_dir = lookup.get("MAKO_SQLITE_DIR").map(std::path::PathBuf::from);
    let max_rows = parse_number(lookup, "MAKO_EXECUTE_MAX_ROWS", 100_000, 1..=10_000_000)? as usize;
    let default_rows = parse_number(lookup, "MAKO_EXECUTE_DEFAULT_ROWS", 1_000, 1..=10_000_000)? as usize;
    // API Gateway ends a request after 30 seconds, so on Lambda a query must end before that.
    let max_timeout = Duration::from_millis(parse_number(
        lookup,
        "MAKO_EXECUTE_MAX_TIMEOUT_MS",
        if local { 300_000 } else { 25_000 },
        100..=3_600_000,
    )?);
    let default_timeout = Duration::from_millis(parse_number(
        lookup,
        "MAKO_EXECUTE_DEFAULT_TIMEOUT_MS",
        if local { 30_000 } else { 20_000 },
        100..=3_600_000,
    )?);
    // A Lambda response is at most 6 MB, so the cloud default leaves room for the envelope.
    let max_result_bytes = parse_number(
        lookup,
        "MAKO_EXECUTE_MAX_RESULT_BYTES",
        if local { 64 * 1024 * 1024 } else { 5 * 1024 * 1024 },
        1024..=1024 * 1024 * 1024,
    )? as usize;
    // The local default fits eight results of the default maximum size. A Lambda instance
    // runs one execution at a time.
    let result_memory = parse_number(
        lookup,
        "MAKO_EXECUTE_MEMORY_BYTES",
        if local { 512 * 1024 * 1024 } else { 8 * 1024 * 1024 },
        1024..=64 * 1024 * 1024 * 1024,
    )? as usize;
    if result_memory < max_result_bytes {
        return Err(ConfigError {
            variable: "MAKO_EXECUTE_MEMORY_BYTES",
            value: result_memory.to_string(),
            reason: format!(
                "must be at least MAKO_EXECUTE_MAX_RESULT_BYTES ({max_result_bytes}), or no full result could be held"
            ),
        });
    }
    if default_rows > max_rows {
        return Err(ConfigError {
            variable: "MAKO_EXECUTE_DEFAULT_ROWS",
            value: default_rows.to_string(),
            reason: format!("must not exceed MAKO_EXECUTE_MAX_ROWS ({max_rows})"),
        });
    }
    if default_timeout > max_timeout {
        return Err(ConfigError {
            variable: "MAKO_EXECUTE_DEFAULT_TIMEOUT_MS",
            value: default_timeout.as_millis().to_string(),
            reason: format!(
                "must not exceed MAKO_EXECUTE_MAX_TIMEOUT_MS ({})",
                max_timeout.as_millis()
            ),
        });
    }
    Ok(ConnectorSettings {
        deployment: if local { Deployment::Local } else { Deployment::Cloud },
        allowed_networks,
        sqlite_dir,
        sample_database: None,
        connect_timeout: Duration::from_millis(parse_number(lookup, "MAKO_CONNECT_TIMEOUT_MS", 10_000, 100..=120_000)?),
        default_rows,
        max_rows,
        max_result_bytes,
        default_timeout,
        max_timeout,
        max_connections_per_workspace: parse_number(lookup, "MAKO_MAX_CONNECTIONS_PER_WORKSPACE", 100, 1..=10_000)?
            as u32,
        result_memory,
        // A Lambda instance serves one request at a time. The second connection serves the next
        // request while the first is reset after its query.
        pool_size: parse_number(lookup, "MAKO_DATABASE_POOL_SIZE", if local { 10 } else { 2 }, 1..=100)? as u32,
    })
}

/// Returns the origin (`scheme://host[:port]`) of a URL, as browsers send it.
pub fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(&Environment)
    }

    /// Reads the configuration from `lookup`. `default_public_url` is what the local server
    /// listens on; Lambda has none and derives the URL from each request.
    pub fn from_lookup_with_default(
        lookup: &dyn Lookup,
        default_public_url: Option<&str>,
    ) -> Result<Config, ConfigError> {
        let public_url = match (lookup.get("MAKO_PUBLIC_URL"), default_public_url) {
            (Some(_), _) => Some(parse_url(lookup, "MAKO_PUBLIC_URL", "")?),
            (None, Some(default)) => Some(parse_url(lookup, "MAKO_PUBLIC_URL", default)?),
            (None, None) => None,
        };
        let app_default = public_url
            .as_ref()
            .map(|url| url.join("/").map(|u| u.to_string()).unwrap_or_else(|_| url.to_string()))
            .unwrap_or_else(|| "http://127.0.0.1:8787/".to_owned());
        let app_url = parse_url(lookup, "MAKO_APP_URL", &app_default)?;

        let mut allowed_origins = Vec::new();
        if let Some(list) = lookup.get("MAKO_ALLOWED_ORIGINS") {
            for entry in list.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
                let url = Url::parse(entry).map_err(|error| ConfigError {
                    variable: "MAKO_ALLOWED_ORIGINS",
                    value: entry.to_owned(),
                    reason: error.to_string(),
                })?;
                allowed_origins.push(origin_of(&url));
            }
        }

        let secure_default = public_url.as_ref().is_none_or(|url| url.scheme() == "https");
        let cookie_secure = parse_var(lookup, "MAKO_COOKIE_SECURE", secure_default)?;

        let session_idle_timeout = Duration::from_secs(parse_number(
            lookup,
            "MAKO_SESSION_IDLE_TIMEOUT_SECS",
            7 * 24 * 3600,
            1..=365 * 24 * 3600,
        )?);
        let session_max_age = Duration::from_secs(parse_number(
            lookup,
            "MAKO_SESSION_MAX_AGE_SECS",
            30 * 24 * 3600,
            1..=365 * 24 * 3600,
        )?);
        let max_body_bytes =
            parse_number(lookup, "MAKO_MAX_BODY_BYTES", 1024 * 1024, 1024..=64 * 1024 * 1024)? as usize;

        let rate_limits = RateLimits {
            window: Duration::from_secs(parse_number(lookup, "MAKO_RATE_LIMIT_WINDOW_SECS", 900, 1..=86_400)?),
            login_failures_per_email: parse_number(lookup, "MAKO_LOGIN_FAILURES_PER_EMAIL", 10, 1..=1_000_000)? as i64,
            logins_per_address: parse_number(lookup, "MAKO_LOGINS_PER_ADDRESS", 100, 1..=1_000_000)? as i64,
            registrations_per_address: parse_number(lookup, "MAKO_REGISTRATIONS_PER_ADDRESS", 20, 1..=1_000_000)?
                as i64,
            registrations_per_email: parse_number(lookup, "MAKO_REGISTRATIONS_PER_EMAIL", 5, 1..=1_000_000)? as i64,
        };

        let google = OAuthProvider {
            client_id: lookup.get("MAKO_GOOGLE_CLIENT_ID"),
            authorize_url: parse_url(
                lookup,
                "MAKO_GOOGLE_AUTHORIZE_URL",
                "https://accounts.google.com/o/oauth2/v2/auth",
            )?,
            token_url: parse_url(lookup, "MAKO_GOOGLE_TOKEN_URL", "https://oauth2.googleapis.com/token")?,
            user_url: parse_url(
                lookup,
                "MAKO_GOOGLE_USERINFO_URL",
                "https://openidconnect.googleapis.com/v1/userinfo",
            )?,
        };
        let github = OAuthProvider {
            client_id: lookup.get("MAKO_GITHUB_CLIENT_ID"),
            authorize_url: parse_url(
                lookup,
                "MAKO_GITHUB_AUTHORIZE_URL",
                "https://github.com/login/oauth/authorize",
            )?,
            token_url: parse_url(
                lookup,
                "MAKO_GITHUB_TOKEN_URL",
                "https://github.com/login/oauth/access_token",
            )?,
            user_url: parse_url(lookup, "MAKO_GITHUB_API_URL", "https://api.github.com")?,
        };

        let connectors = connector_settings(lookup, default_public_url.is_some())?;
        let consoles = ConsoleSettings {
            max_per_workspace: parse_number(lookup, "MAKO_MAX_CONSOLES_PER_WORKSPACE", 5_000, 1..=50_000)? as u32,
            max_folders_per_workspace: parse_number(
                lookup,
                "MAKO_MAX_CONSOLE_FOLDERS_PER_WORKSPACE",
                1_000,
                1..=10_000,
            )? as u32,
        };

        let jobs = JobSettings {
            max_dashboards_per_workspace: parse_number(lookup, "MAKO_MAX_DASHBOARDS_PER_WORKSPACE", 1_000, 1..=10_000)?
                as u32,
            max_rows: parse_number(lookup, "MAKO_MATERIALIZE_MAX_ROWS", 10_000_000, 1..=1_000_000_000)?,
            build_timeout: Duration::from_secs(parse_number(lookup, "MAKO_MATERIALIZE_TIMEOUT_SECS", 600, 1..=86_400)?),
            visibility: Duration::from_secs(parse_number(lookup, "MAKO_JOB_VISIBILITY_SECS", 60, 3..=43_200)?),
            max_attempts: parse_number(lookup, "MAKO_QUEUE_MAX_ATTEMPTS", 5, 1..=100)? as u32,
            retry_base: Duration::from_secs(parse_number(lookup, "MAKO_JOB_RETRY_SECS", 10, 1..=3_600)?),
            abandon_after: Duration::from_secs(parse_number(lookup, "MAKO_JOB_ABANDON_SECS", 3_600, 10..=604_800)?),
            worker_concurrency: parse_number(lookup, "MAKO_WORKER_CONCURRENCY", 2, 1..=64)? as u32,
            artifact_url_ttl: Duration::from_secs(parse_number(lookup, "MAKO_ARTIFACT_URL_SECS", 300, 10..=43_200)?),
        };

        let agent = agent_settings(lookup)?;

        Ok(Config {
            public_url,
            app_url,
            allowed_origins,
            cookie_secure,
            session_idle_timeout,
            session_max_age,
            max_body_bytes,
            rate_limits,
            google,
            github,
            connectors,
            consoles,
            jobs,
            agent,
        })
    }

    /// Reads the configuration for a process that has no listening address of its own.
    pub fn from_lookup(lookup: &dyn Lookup) -> Result<Config, ConfigError> {
        Self::from_lookup_with_default(lookup, None)
    }

    /// Returns whether a browser origin may send cookie-authenticated writes: the public URL's
    /// origin, the app URL's origin and the allowed origins.
    pub fn is_trusted_origin(&self, origin: &str) -> bool {
        origin == origin_of(&self.app_url)
            || self.public_url.as_ref().is_some_and(|url| origin == origin_of(url))
            || self.allowed_origins.iter().any(|allowed| allowed == origin)
    }

    /// Origins that browsers may call the API from (CORS): the app URL and the allowed origins.
    pub fn cors_origins(&self) -> Vec<String> {
        let mut origins = vec![origin_of(&self.app_url)];
        for origin in &self.allowed_origins {
            if !origins.contains(origin) {
                origins.push(origin.clone());
            }
        }
        origins
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_follow_the_public_url() {
        let config = Config::from_lookup_with_default(&lookup(&[]), Some("http://127.0.0.1:8787")).expect("config");
        assert_eq!(config.app_url.as_str(), "http://127.0.0.1:8787/");
        assert!(!config.cookie_secure, "plain http cannot carry Secure cookies");
        assert_eq!(config.rate_limits.login_failures_per_email, 10);
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let error = Config::from_lookup(&lookup(&[("MAKO_MAX_BODY_BYTES", "lots")])).expect_err("invalid");
        assert_eq!(error.variable, "MAKO_MAX_BODY_BYTES");
        let error = Config::from_lookup(&lookup(&[("MAKO_SESSION_MAX_AGE_SECS", "0")])).expect_err("too small");
        assert!(error.to_string().contains("from 1"), "{error}");
        let error = Config::from_lookup(&lookup(&[("MAKO_APP_URL", "ftp://x")])).expect_err("bad scheme");
        assert_eq!(error.variable, "MAKO_APP_URL");
        let error = Config::from_lookup(&lookup(&[
            ("MAKO_EXECUTE_MAX_RESULT_BYTES", "2097152"),
            ("MAKO_EXECUTE_MEMORY_BYTES", "1048576"),
        ]))
        .expect_err("result memory below one result");
        assert_eq!(error.variable, "MAKO_EXECUTE_MEMORY_BYTES");
    }

    #[test]
    fn cidrs_parse_and_match() {
        let network: Cidr = "10.0.0.0/8".parse().expect("cidr");
        assert!(network.contains("10.1.2.3".parse().expect("ip")));
        assert!(!network.contains("11.0.0.1".parse().expect("ip")));
        let single: Cidr = "fd00:ec2::254".parse().expect("single address");
        assert_eq!(single.prefix, 128);
        assert!(single.contains("fd00:ec2::254".parse().expect("ip")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
        let all: Cidr = "0.0.0.0/0".parse().expect("everything");
        assert!(all.contains("8.8.8.8".parse().expect("ip")));
    }

    #[test]
    fn allowed_origins_are_normalized() {
        let config = Config::from_lookup(&lookup(&[(
            "MAKO_ALLOWED_ORIGINS",
            "https://a.example.com/path, http://b.test:3000",
        )]))
        .expect("config");
        assert_eq!(
            config.allowed_origins,
            vec!["https://a.example.com", "http://b.test:3000"]
        );
        assert!(config.is_trusted_origin("http://b.test:3000"));
        assert!(!config.is_trusted_origin("http://evil.test"));
    }
}
