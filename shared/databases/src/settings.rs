//! Connection settings: what people send (fields or a connection string), what is stored
//! (settings in clear, secrets sealed), and the typed configuration a driver connects with.
//!
//! Every value is checked here, at the edge, with errors that name the field. Driver
//! options that would make the database server read or write its own files (MySQL local
//! infile, certificate or password file paths, Unix sockets) are refused.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use mako_core::config::{ConnectorSettings, Deployment};
use mako_core::ports::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

use crate::error::ConnectorError;

/// Maximum host name length (RFC 1035's limit).
const MAX_HOST_LEN: usize = 253;
/// Maximum length of a database, user or auth-source name.
const MAX_NAME_LEN: usize = 128;
/// Maximum length of a password or connection string.
const MAX_SECRET_LEN: usize = 4096;

/// Kind of database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    #[serde(rename = "postgresql")]
    Postgres,
    /// MySQL and MariaDB.
    Mysql,
    Sqlite,
    Mongodb,
}

impl ConnectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Postgres => "postgresql",
            ConnectionKind::Mysql => "mysql",
            ConnectionKind::Sqlite => "sqlite",
            ConnectionKind::Mongodb => "mongodb",
        }
    }

    pub fn parse(text: &str) -> Result<ConnectionKind, ConnectorError> {
        match text {
            "postgresql" | "postgres" => Ok(ConnectionKind::Postgres),
            "mysql" | "mariadb" => Ok(ConnectionKind::Mysql),
            "sqlite" => Ok(ConnectionKind::Sqlite),
            "mongodb" => Ok(ConnectionKind::Mongodb),
            other => Err(ConnectorError::invalid(
                "type",
                format!("{other:?} is not a supported connection type; use postgresql, mysql, sqlite or mongodb."),
            )),
        }
    }

    fn default_port(self) -> Option<u16> {
        match self {
            ConnectionKind::Postgres => Some(5432),
            ConnectionKind::Mysql => Some(3306),
            ConnectionKind::Mongodb => Some(27017),
            ConnectionKind::Sqlite => None,
        }
    }
}

/// How the connection uses TLS, with PostgreSQL's names (`sslmode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Never encrypt.
    Disable,
    /// Encrypt when the server offers it, without checking its certificate.
    #[default]
    Prefer,
    /// Always encrypt, without checking the certificate.
    Require,
    /// Always encrypt and check the certificate chain.
    VerifyCa,
    /// Always encrypt and check the chain and that the certificate names the host.
    VerifyFull,
}

impl TlsMode {
    fn parse(field: &'static str, text: &str) -> Result<TlsMode, ConnectorError> {
        match text.to_ascii_lowercase().replace('_', "-").as_str() {
            "disable" | "disabled" | "false" => Ok(TlsMode::Disable),
            "allow" | "prefer" | "preferred" => Ok(TlsMode::Prefer),
            "require" | "required" | "true" => Ok(TlsMode::Require),
            "verify-ca" => Ok(TlsMode::VerifyCa),
            "verify-full" | "verify-identity" => Ok(TlsMode::VerifyFull),
            _ => Err(ConnectorError::invalid(
                field,
                format!("{text:?} is not a TLS mode; use disable, prefer, require, verify-ca or verify-full."),
            )),
        }
    }
}

/// Deserializes a field that distinguishes "absent" (`None`) from `null` (`Some(None)`).
pub fn double_option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// Connection fields as a request sends them. On update, an absent field keeps its value,
/// `"password": null` removes the password, and a connection string replaces every field it
/// sets.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInput {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub username: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub password: Option<Option<String>>,
    pub tls: Option<TlsMode>,
    pub connection_string: Option<String>,
    /// SQLite: the file, relative to the SQLite folder.
    pub path: Option<String>,
    /// MongoDB: the database that contains the user's credentials.
    pub auth_source: Option<String>,
}

/// Settings stored in clear.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredSettings {
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
    /// MongoDB: the connection string is used as given (it is kept sealed).
    #[serde(default)]
    pub uses_connection_string: bool,
}

/// Settings stored sealed. Never serialized into a response.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredSecret {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSecret")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "connection_string",
                &self.connection_string.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl StoredSecret {
    pub fn is_empty(&self) -> bool {
        self.password.is_none() && self.connection_string.is_none()
    }
}

/// A database server reached over TCP.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub username: String,
    pub password: Option<SecretString>,
    pub tls: TlsMode,
}

/// A MongoDB deployment.
#[derive(Clone, Debug)]
pub struct MongoConfig {
    /// The full connection string, credentials included.
    pub uri: SecretString,
    /// Seed hosts, for the address guard.
    pub hosts: Vec<(String, u16)>,
    /// `mongodb+srv://`: hosts come from DNS SRV records.
    pub srv: bool,
    /// Database used when a request names none.
    pub database: Option<String>,
    pub tls: TlsMode,
}

/// Typed configuration a driver connects with.
#[derive(Clone, Debug)]
pub enum ConnectionConfig {
    Postgres(ServerConfig),
    Mysql(ServerConfig),
    Sqlite { path: PathBuf },
    Mongodb(MongoConfig),
}

impl ConnectionConfig {
    pub fn kind(&self) -> ConnectionKind {
        match self {
            ConnectionConfig::Postgres(_) => ConnectionKind::Postgres,
            ConnectionConfig::Mysql(_) => ConnectionKind::Mysql,
            ConnectionConfig::Sqlite { .. } => ConnectionKind::Sqlite,
            ConnectionConfig::Mongodb(_) => ConnectionKind::Mongodb,
        }
    }
}

fn check_name(field: &'static str, value: &str) -> Result<String, ConnectorError> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_NAME_LEN || value.chars().any(char::is_control) {
        return Err(ConnectorError::invalid(
            field,
            format!("The {field} must be 1 to {MAX_NAME_LEN} characters without control characters."),
        ));
    }
    Ok(value.to_owned())
}

fn check_host(value: &str) -> Result<String, ConnectorError> {
    let host = value.trim().trim_start_matches('[').trim_end_matches(']');
    let valid = !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if !valid {
        return Err(ConnectorError::invalid(
            "host",
            format!("{value:?} is not a host name or IP address (Unix sockets and host lists are not supported)."),
        ));
    }
    // A colon belongs only in an IPv6 address; `db.example.com:5432` puts the port in the
    // wrong field.
    if host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(ConnectorError::invalid(
            "host",
            format!("{value:?} is not a host name or IP address; give the port in the port field."),
        ));
    }
    Ok(host.to_ascii_lowercase())
}

fn check_secret(field: &'static str, value: &str) -> Result<String, ConnectorError> {
    if value.len() > MAX_SECRET_LEN {
        return Err(ConnectorError::invalid(
            field,
            format!("The {field} must be at most {MAX_SECRET_LEN} bytes."),
        ));
    }
    Ok(value.to_owned())
}

/// Decodes `%XX` escapes of a URL's user, password or path (a `+` stays a `+` there).
fn percent_decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Fields parsed out of a PostgreSQL or MySQL connection string.
struct ParsedServerUrl {
    host: String,
    port: Option<u16>,
    database: Option<String>,
    username: Option<String>,
    password: Option<String>,
    tls: Option<TlsMode>,
}

fn parse_server_url(kind: ConnectionKind, text: &str) -> Result<ParsedServerUrl, ConnectorError> {
    let field = "connectionString";
    let url = Url::parse(text.trim()).map_err(|error| {
        ConnectorError::invalid(field, format!("The connection string is not a valid URL: {error}."))
    })?;
    let schemes: &[&str] = match kind {
        ConnectionKind::Postgres => &["postgres", "postgresql"],
        _ => &["mysql", "mariadb"],
    };
    if !schemes.contains(&url.scheme()) {
        return Err(ConnectorError::invalid(
            field,
            format!("A {} connection string starts with {}://.", kind.as_str(), schemes[0]),
        ));
    }
    let host = url
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| ConnectorError::invalid(field, "The connection string has no host."))?;
    if host.contains(',') {
        return Err(ConnectorError::invalid(
            field,
            "Connection strings with several hosts are not supported.",
        ));
    }

    let mut tls = None;
    for (name, value) in url.query_pairs() {
        match (kind, name.as_ref()) {
            (ConnectionKind::Postgres, "sslmode") | (ConnectionKind::Mysql, "ssl-mode" | "sslmode") => {
                tls = Some(TlsMode::parse(field, &value)?);
            }
            (ConnectionKind::Postgres, "application_name" | "connect_timeout")
            | (ConnectionKind::Mysql, "charset" | "connect_timeout") => {}
            (_, other) => {
                return Err(ConnectorError::invalid(
                    field,
                    format!(
                        "The connection string option {other:?} is not supported; options that point the server or the driver at files (certificates, sockets, local infile) are refused."
                    ),
                ));
            }
        }
    }

    let database = url.path().trim_start_matches('/');
    Ok(ParsedServerUrl {
        host: check_host(host)?,
        port: url.port(),
        database: (!database.is_empty()).then(|| percent_decoded(database)),
        username: (!url.username().is_empty()).then(|| percent_decoded(url.username())),
        password: url.password().map(percent_decoded),
        tls,
    })
}

/// Fields of a MongoDB connection string: seed hosts, SRV use, default database, TLS.
type MongoUrlParts = (Vec<(String, u16)>, bool, Option<String>, Option<TlsMode>);

/// Reads the hosts, SRV use, default database and TLS setting of a MongoDB connection string.
fn parse_mongo_url(text: &str) -> Result<MongoUrlParts, ConnectorError> {
    let field = "connectionString";
    let text = text.trim();
    let (srv, rest) = if let Some(rest) = text.strip_prefix("mongodb+srv://") {
        (true, rest)
    } else if let Some(rest) = text.strip_prefix("mongodb://") {
        (false, rest)
    } else {
        return Err(ConnectorError::invalid(
            field,
            "A MongoDB connection string starts with mongodb:// or mongodb+srv://.",
        ));
    };

    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let hosts_part = authority.rsplit_once('@').map_or(authority, |(_, hosts)| hosts);
    let mut hosts = Vec::new();
    for entry in hosts_part.split(',').filter(|entry| !entry.is_empty()) {
        let (host, port) = match entry.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || entry.starts_with('[') => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| ConnectorError::invalid(field, format!("{port:?} is not a port number.")))?;
                (host, port)
            }
            _ => (entry, 27017),
        };
        hosts.push((check_host(host)?, port));
    }
    if hosts.is_empty() {
        return Err(ConnectorError::invalid(field, "The connection string has no host."));
    }

    let (database, query) = tail.split_once('?').unwrap_or((tail, ""));
    let mut tls = if srv { Some(TlsMode::VerifyFull) } else { None };
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let lower = name.to_ascii_lowercase();
        if lower.contains("file") || lower == "tlscertificatekeyfilepassword" {
            return Err(ConnectorError::invalid(
                field,
                format!("The option {name:?} points the driver at a file and is refused."),
            ));
        }
        if matches!(lower.as_str(), "tls" | "ssl") {
            tls = Some(if value == "true" {
                TlsMode::VerifyFull
            } else {
                TlsMode::Disable
            });
        }
    }
    let database = (!database.is_empty()).then(|| percent_decoded(database));
    Ok((hosts, srv, database, tls))
}

/// Merges a request's fields into the stored settings and secret (`previous` when
/// updating), checking each value.
pub fn merge_input(
    kind: ConnectionKind,
    input: &ConnectionInput,
    previous: Option<(&StoredSettings, &StoredSecret)>,
) -> Result<(StoredSettings, StoredSecret), ConnectorError> {
    let (mut settings, mut secret) = match previous {
        Some((settings, secret)) => (settings.clone(), secret.clone()),
        None => (StoredSettings::default(), StoredSecret::default()),
    };

    if let Some(text) = &input.connection_string {
        let text = check_secret("connectionString", text)?;
        match kind {
            ConnectionKind::Postgres | ConnectionKind::Mysql => {
                let parsed = parse_server_url(kind, &text)?;
                settings.host = Some(parsed.host);
                settings.port = parsed.port;
                settings.database = parsed.database;
                settings.username = parsed.username;
                if let Some(tls) = parsed.tls {
                    settings.tls = Some(tls);
                }
                secret.password = parsed.password;
                secret.connection_string = None;
                settings.uses_connection_string = false;
            }
            ConnectionKind::Mongodb => {
                let (hosts, _, database, tls) = parse_mongo_url(&text)?;
                settings.host = hosts.first().map(|(host, _)| host.clone());
                settings.port = hosts.first().map(|(_, port)| *port);
                settings.database = database;
                settings.tls = tls;
                settings.username = None;
                settings.uses_connection_string = true;
                secret.connection_string = Some(text);
                secret.password = None;
            }
            ConnectionKind::Sqlite => {
                return Err(ConnectorError::invalid(
                    "connectionString",
                    "SQLite connections take a path, not a connection string.",
                ));
            }
        }
    }

    if let Some(host) = &input.host {
        settings.host = Some(check_host(host)?);
        if kind == ConnectionKind::Mongodb {
            settings.uses_connection_string = false;
            secret.connection_string = None;
        }
    }
    if let Some(port) = input.port {
        if port == 0 {
            return Err(ConnectorError::invalid("port", "The port must be between 1 and 65535."));
        }
        settings.port = Some(port);
    }
    if let Some(database) = &input.database {
        settings.database = if database.trim().is_empty() {
            None
        } else {
            Some(check_name("database", database)?)
        };
    }
    if let Some(username) = &input.username {
        settings.username = if username.trim().is_empty() {
            None
        } else {
            Some(check_name("username", username)?)
        };
    }
    if let Some(password) = &input.password {
        secret.password = password
            .as_deref()
            .map(|password| check_secret("password", password))
            .transpose()?;
    }
    if let Some(tls) = input.tls {
        settings.tls = Some(tls);
    }
    if let Some(auth_source) = &input.auth_source {
        settings.auth_source = Some(check_name("authSource", auth_source)?);
    }
    if let Some(path) = &input.path {
        if kind != ConnectionKind::Sqlite {
            return Err(ConnectorError::invalid("path", "Only SQLite connections take a path."));
        }
        settings.path = Some(check_relative_path(path)?);
    }

    // A stored password goes only to the server it was saved for: otherwise an admin could
    // point the connection at a server of their own and read the password from its login.
    if let Some((before, stored)) = previous
        && stored.password.is_some()
        && input.password.is_none()
        && input.connection_string.is_none()
        && (settings.host != before.host
            || settings.port != before.port
            || settings.username != before.username
            || settings.tls != before.tls)
    {
        return Err(ConnectorError::invalid(
            "password",
            "Send the password again when changing the host, port, username or TLS mode, or \"password\": null to remove it.",
        ));
    }
    Ok((settings, secret))
}

/// Checks a SQLite path: relative, no `..`, no drive or root.
fn check_relative_path(path: &str) -> Result<String, ConnectorError> {
    let candidate = Path::new(path.trim());
    let plain = !path.trim().is_empty()
        && !path.chars().any(char::is_control)
        && candidate
            .components()
            .all(|component| matches!(component, Component::Normal(_)))
        && path.len() <= 255;
    if !plain {
        return Err(ConnectorError::invalid(
            "path",
            format!("{path:?} must be a file name or relative path inside the SQLite folder, without '..'."),
        ));
    }
    Ok(path.trim().to_owned())
}

/// Builds the typed configuration from stored settings, checking it is complete and allowed
/// here.
pub fn resolve(
    kind: ConnectionKind,
    settings: &StoredSettings,
    secret: &StoredSecret,
    policy: &ConnectorSettings,
) -> Result<ConnectionConfig, ConnectorError> {
    match kind {
        ConnectionKind::Postgres | ConnectionKind::Mysql => {
            let host = settings
                .host
                .clone()
                .ok_or_else(|| ConnectorError::invalid("host", "The host is missing."))?;
            let username = settings
                .username
                .clone()
                .ok_or_else(|| ConnectorError::invalid("username", "The user name is missing."))?;
            let server = ServerConfig {
                host,
                port: settings.port.or(kind.default_port()).unwrap_or(0),
                database: settings.database.clone(),
                username,
                password: secret.password.clone().map(SecretString::new),
                tls: settings.tls.unwrap_or_default(),
            };
            Ok(if kind == ConnectionKind::Postgres {
                ConnectionConfig::Postgres(server)
            } else {
                ConnectionConfig::Mysql(server)
            })
        }
        ConnectionKind::Sqlite => {
            if policy.deployment != Deployment::Local {
                return Err(ConnectorError::invalid(
                    "type",
                    "SQLite files can be opened only by the local server.",
                ));
            }
            let folder = policy.sqlite_dir.clone().ok_or_else(|| {
                ConnectorError::invalid("path", "No SQLite folder is configured; set MAKO_SQLITE_DIR.")
            })?;
            let relative = settings
                .path
                .clone()
                .ok_or_else(|| ConnectorError::invalid("path", "The SQLite file path is missing."))?;
            let path = folder.join(check_relative_path(&relative)?);
            Ok(ConnectionConfig::Sqlite { path })
        }
        ConnectionKind::Mongodb => resolve_mongo(settings, secret),
    }
}

fn resolve_mongo(settings: &StoredSettings, secret: &StoredSecret) -> Result<ConnectionConfig, ConnectorError> {
    let uri = if settings.uses_connection_string {
        secret
            .connection_string
            .clone()
            .ok_or_else(|| ConnectorError::invalid("connectionString", "The connection string is missing."))?
    } else {
        let host = settings
            .host
            .clone()
            .ok_or_else(|| ConnectorError::invalid("host", "The host is missing."))?;
        let port = settings.port.unwrap_or(27017);
        let mut options = BTreeMap::new();
        let tls = settings.tls.unwrap_or(TlsMode::Disable);
        options.insert(
            "tls",
            if tls == TlsMode::Disable || tls == TlsMode::Prefer {
                "false"
            } else {
                "true"
            }
            .to_owned(),
        );
        if tls == TlsMode::Require || tls == TlsMode::VerifyCa {
            options.insert("tlsAllowInvalidHostnames", "true".to_owned());
        }
        if tls == TlsMode::Require {
            options.insert("tlsAllowInvalidCertificates", "true".to_owned());
        }
        if let Some(source) = &settings.auth_source {
            options.insert("authSource", source.clone());
        }
        let credentials = match (&settings.username, &secret.password) {
            (Some(user), Some(password)) => format!("{}:{}@", encode(user), encode(password)),
            (Some(user), None) => format!("{}@", encode(user)),
            _ => String::new(),
        };
        let query: Vec<String> = options
            .iter()
            .map(|(name, value)| format!("{name}={}", encode(value)))
            .collect();
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        format!("mongodb://{credentials}{host}:{port}/?{}", query.join("&"))
    };

    let (hosts, srv, database, tls) = parse_mongo_url(&uri)?;
    Ok(ConnectionConfig::Mongodb(MongoConfig {
        uri: SecretString::new(uri),
        hosts,
        srv,
        database: settings.database.clone().or(database),
        tls: tls.unwrap_or(TlsMode::Disable),
    }))
}

/// Percent-encodes a user name, password or option value for a MongoDB URI (a space is
/// `%20`: the driver does not read `+` as a space).
fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> ConnectionInput {
        serde_json::from_value(json).expect("input")
    }

    #[test]
    fn postgres_connection_string_fills_fields() {
        let given = input(
            serde_json::json!({ "connectionString": "postgres://ana%40corp:p%40s+s@db.example.com:6543/sales?sslmode=verify-full" }),
        );
        let (settings, secret) = merge_input(ConnectionKind::Postgres, &given, None).expect("valid");

        assert_eq!(settings.host.as_deref(), Some("db.example.com"));
        assert_eq!(settings.port, Some(6543));
        assert_eq!(settings.database.as_deref(), Some("sales"));
        assert_eq!(settings.username.as_deref(), Some("ana@corp"));
        assert_eq!(settings.tls, Some(TlsMode::VerifyFull));
        assert_eq!(
            secret.password.as_deref(),
            Some("p@s+s"),
            "a plus sign is not a space here"
        );
        assert_eq!(
            secret.connection_string, None,
            "nothing of the string is kept beyond its fields"
        );
    }

    #[test]
    fn file_options_are_refused() {
        let cases = [
            (
                ConnectionKind::Postgres,
                "postgres://u@h/db?sslrootcert=/etc/ssl/ca.pem",
            ),
            (ConnectionKind::Postgres, "postgres://u@h/db?host=/var/run/postgresql"),
            (ConnectionKind::Postgres, "postgres://u@h1,h2/db"),
            (ConnectionKind::Mysql, "mysql://u@h/db?local_infile=1"),
            (ConnectionKind::Mysql, "mysql://u@h/db?ssl-ca=/ca.pem"),
            (ConnectionKind::Mongodb, "mongodb://u:p@h/db?tlsCAFile=/ca.pem"),
        ];
        for (kind, text) in cases {
            let result = merge_input(kind, &input(serde_json::json!({ "connectionString": text })), None);
            assert!(
                matches!(
                    result,
                    Err(ConnectorError::InvalidConfig {
                        field: "connectionString",
                        ..
                    })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn update_keeps_password_unless_cleared() {
        let first = input(serde_json::json!({ "host": "h", "username": "u", "password": "secret" }));
        let (settings, secret) = merge_input(ConnectionKind::Postgres, &first, None).expect("create");

        let rename = input(serde_json::json!({ "database": "other" }));
        let (_, kept) = merge_input(ConnectionKind::Postgres, &rename, Some((&settings, &secret))).expect("update");
        assert_eq!(kept.password.as_deref(), Some("secret"));

        let clear = input(serde_json::json!({ "password": null }));
        let (_, cleared) = merge_input(ConnectionKind::Postgres, &clear, Some((&settings, &secret))).expect("update");
        assert_eq!(cleared.password, None);
    }

    #[test]
    fn password_stays_with_its_server() {
        let first = input(serde_json::json!({ "host": "h", "port": 5432, "username": "u", "password": "secret" }));
        let (settings, secret) = merge_input(ConnectionKind::Postgres, &first, None).expect("create");
        let previous = Some((&settings, &secret));

        for change in [
            serde_json::json!({ "host": "elsewhere.example.com" }),
            serde_json::json!({ "port": 15432 }),
            serde_json::json!({ "username": "other" }),
            serde_json::json!({ "tls": "disable" }),
        ] {
            let result = merge_input(ConnectionKind::Postgres, &input(change.clone()), previous);
            assert!(
                matches!(result, Err(ConnectorError::InvalidConfig { field: "password", .. })),
                "{change}: {result:?}"
            );
        }

        let resent = input(serde_json::json!({ "host": "elsewhere.example.com", "password": "new" }));
        let (_, moved) = merge_input(ConnectionKind::Postgres, &resent, previous).expect("password sent again");
        assert_eq!(moved.password.as_deref(), Some("new"));
        let same = input(serde_json::json!({ "host": "h", "port": 5432 }));
        assert!(
            merge_input(ConnectionKind::Postgres, &same, previous).is_ok(),
            "nothing changed"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (serde_json::json!({ "host": "/var/run/db.sock" }), "host"),
            (serde_json::json!({ "host": "db.example.com:5432" }), "host"),
            (serde_json::json!({ "host": "127.0.0.1:5432" }), "host"),
            (serde_json::json!({ "host": "h", "port": 0 }), "port"),
            (
                serde_json::json!({ "host": "h", "username": "" , "database": "a\u{0}b" }),
                "database",
            ),
        ];
        for (json, field) in cases {
            let result = merge_input(ConnectionKind::Postgres, &input(json.clone()), None);
            match result {
                Err(ConnectorError::InvalidConfig { field: named, .. }) => assert_eq!(named, field, "{json}"),
                other => panic!("{json}: {other:?}"),
            }
        }
    }

    #[test]
    fn sqlite_paths_stay_inside_the_folder() {
        for path in [
            "../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            "",
            "a\u{0}.db",
            "line\nbreak.db",
        ] {
            let result = merge_input(
                ConnectionKind::Sqlite,
                &input(serde_json::json!({ "path": path })),
                None,
            );
            assert!(result.is_err(), "{path:?}");
        }
        assert!(
            merge_input(
                ConnectionKind::Sqlite,
                &input(serde_json::json!({ "path": "sales/q1.db" })),
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn mongo_fields_build_a_connection_string() {
        let given = input(
            serde_json::json!({ "host": "mongo.local", "port": 27018, "username": "app", "password": "p w", "authSource": "admin", "database": "shop" }),
        );
        let (settings, secret) = merge_input(ConnectionKind::Mongodb, &given, None).expect("valid");
        let policy = mako_core::config::Config::from_lookup(&std::collections::HashMap::new())
            .expect("config")
            .connectors;

        let ConnectionConfig::Mongodb(config) =
            resolve(ConnectionKind::Mongodb, &settings, &secret, &policy).expect("resolve")
        else {
            panic!("not a MongoDB config");
        };
        assert_eq!(config.hosts, vec![("mongo.local".to_owned(), 27018)]);
        assert_eq!(config.database.as_deref(), Some("shop"));
        assert!(
            config
                .uri
                .expose()
                .starts_with("mongodb://app:p%20w@mongo.local:27018/?")
        );
        assert!(config.uri.expose().contains("authSource=admin"));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secret = StoredSecret {
            password: Some("hunter2".into()),
            connection_string: None,
        };
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
