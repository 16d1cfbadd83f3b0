//! Real databases for the connector suites: a fresh database per test on the PostgreSQL,
//! MariaDB/MySQL and MongoDB servers named by `MAKO_TEST_POSTGRES_URL`,
//! `MAKO_TEST_MYSQL_URL` and `MAKO_TEST_MONGODB_URL`, and a SQLite file in a temporary folder.

use std::collections::HashMap;
use std::sync::Arc;

use mako_core::config::{Config, ConnectorSettings, Deployment};
use mako_databases::settings::{ConnectionInput, merge_input, resolve};
use mako_databases::{ConnectionConfig, ConnectionKind, Database, ExecuteOutput, ExecuteRequest};

use crate::services::service_address;

/// One test database on a real server.
pub struct TestDatabase {
    pub kind: ConnectionKind,
    pub config: ConnectionConfig,
    pub policy: ConnectorSettings,
    /// Name of the database created for this test (the file name for SQLite).
    pub name: String,
    /// Connection string of the test database (none for SQLite).
    pub url: Option<String>,
    pub database: Arc<dyn Database>,
    admin_url: Option<String>,
    _folder: Option<tempfile::TempDir>,
}

/// Connector settings of the local server, for tests.
pub fn local_policy() -> ConnectorSettings {
    let mut policy = Config::from_lookup(&HashMap::new()).expect("config").connectors;
    policy.deployment = Deployment::Local;
    policy
}

fn unique_name() -> String {
    format!("mako_t_{}", ulid::Ulid::new().to_string().to_ascii_lowercase())
}

fn config_for(kind: ConnectionKind, connection_string: &str, policy: &ConnectorSettings) -> ConnectionConfig {
    let input = ConnectionInput {
        connection_string: Some(connection_string.to_owned()),
        ..ConnectionInput::default()
    };
    let (settings, secret) = merge_input(kind, &input, None).expect("test connection string");
    resolve(kind, &settings, &secret, policy).expect("test connection config")
}

/// Replaces the path (database) of a connection URL.
fn with_database(url: &str, database: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("service URL");
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

impl TestDatabase {
    /// A fresh PostgreSQL database, or `None` (skipped) without a server.
    pub async fn postgres() -> Option<TestDatabase> {
        let url = service_address("MAKO_TEST_POSTGRES_URL", "a PostgreSQL server")?;
        let name = unique_name();
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
            .await
            .expect("admin connection to PostgreSQL");
        sqlx::Executor::execute(
            &mut admin,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")).into_sql_str_compat(),
        )
        .await
        .expect("creating the test database");
        Some(Self::open(ConnectionKind::Postgres, &with_database(&url, &name), name, Some(url)).await)
    }

    /// A fresh MySQL/MariaDB database, or `None` (skipped) without a server.
    pub async fn mysql() -> Option<TestDatabase> {
        let url = service_address("MAKO_TEST_MYSQL_URL", "a MySQL or MariaDB server")?;
        let name = unique_name();
        let mut admin = <sqlx::MySqlConnection as sqlx::Connection>::connect(&url)
            .await
            .expect("admin connection to MySQL");
        sqlx::Executor::execute(
            &mut admin,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")).into_sql_str_compat(),
        )
        .await
        .expect("creating the test database");
        Some(Self::open(ConnectionKind::Mysql, &with_database(&url, &name), name, Some(url)).await)
    }

    /// A new SQLite file in a temporary folder that the policy allows.
    pub async fn sqlite() -> TestDatabase {
        let folder = tempfile::tempdir().expect("SQLite folder");
        let mut policy = local_policy();
        policy.sqlite_dir = Some(folder.path().to_owned());
        let name = "test.db".to_owned();
        // An empty file is a valid SQLite database.
        std::fs::write(folder.path().join(&name), b"").expect("creating the SQLite file");
        let input = ConnectionInput {
            path: Some(name.clone()),
            ..ConnectionInput::default()
        };
        let (settings, secret) = merge_input(ConnectionKind::Sqlite, &input, None).expect("SQLite input");
        let config = resolve(ConnectionKind::Sqlite, &settings, &secret, &policy).expect("SQLite config");
        let database = mako_databases::open(config.clone(), &policy)
            .await
            .expect("opening SQLite");
        TestDatabase {
            kind: ConnectionKind::Sqlite,
            config,
            policy,
            name,
            url: None,
            database,
            admin_url: None,
            _folder: Some(folder),
        }
    }

    /// A fresh MongoDB database name, or `None` (skipped) without a server.
    pub async fn mongodb() -> Option<TestDatabase> {
        let url = service_address("MAKO_TEST_MONGODB_URL", "a MongoDB-protocol server")?;
        let name = unique_name();
        Some(Self::open(ConnectionKind::Mongodb, &with_database(&url, &name), name, None).await)
    }

    async fn open(kind: ConnectionKind, url: &str, name: String, admin_url: Option<String>) -> TestDatabase {
        let policy = local_policy();
        let config = config_for(kind, url, &policy);
        let database = mako_databases::open(config.clone(), &policy)
            .await
            .expect("opening the test database");
        TestDatabase {
            kind,
            config,
            policy,
            name,
            url: Some(url.to_owned()),
            database,
            admin_url,
            _folder: None,
        }
    }

    /// A request with generous limits.
    pub fn request(&self, query: &str) -> ExecuteRequest {
        ExecuteRequest {
            query: query.to_owned(),
            database: None,
            max_rows: 10_000,
            max_bytes: 64 * 1024 * 1024,
            timeout: std::time::Duration::from_secs(30),
            read_only: false,
            params: Vec::new(),
            named_params: Default::default(),
        }
    }

    /// Runs query text that must succeed.
    pub async fn run(&self, query: &str) -> ExecuteOutput {
        match self.database.execute(self.request(query)).await {
            Ok(output) => output,
            Err(error) => panic!("{query}: {error:?}"),
        }
    }

    /// Drops the test database.
    pub async fn drop_database(self) {
        self.database.close().await;
        let Some(url) = &self.admin_url else { return };
        match self.kind {
            ConnectionKind::Postgres => {
                if let Ok(mut admin) = <sqlx::PgConnection as sqlx::Connection>::connect(url).await {
                    let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
                    let _ =
                        sqlx::Executor::execute(&mut admin, sqlx::AssertSqlSafe(statement).into_sql_str_compat()).await;
                }
            }
            ConnectionKind::Mysql => {
                if let Ok(mut admin) = <sqlx::MySqlConnection as sqlx::Connection>::connect(url).await {
                    let statement = format!("DROP DATABASE IF EXISTS {}", self.name);
                    let _ =
                        sqlx::Executor::execute(&mut admin, sqlx::AssertSqlSafe(statement).into_sql_str_compat()).await;
                }
            }
            ConnectionKind::Mongodb => {
                let _ = self.database.execute(self.request("db.dropDatabase()")).await;
            }
            ConnectionKind::Sqlite => {}
        }
    }
}

/// Turns an asserted-safe string into what sqlx's executors take.
trait IntoSqlStrCompat {
    fn into_sql_str_compat(self) -> sqlx::SqlStr;
}

impl IntoSqlStrCompat for sqlx::AssertSqlSafe<String> {
    fn into_sql_str_compat(self) -> sqlx::SqlStr {
        sqlx::SqlSafeStr::into_sql_str(self)
    }
}
