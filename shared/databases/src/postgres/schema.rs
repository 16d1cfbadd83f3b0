//! Schema browsing for PostgreSQL: databases, tables and views, columns.

use sqlx::Row;

use super::Postgres;
use super::decode;
use crate::error::ConnectorError;
use crate::{ColumnInfo, TableInfo};

pub(super) async fn databases(postgres: &Postgres) -> Result<Vec<String>, ConnectorError> {
    let rows = postgres
        .catalog(
            None,
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND has_database_privilege(datname, 'CONNECT') ORDER BY datname",
            &[],
        )
        .await?;
    Ok(rows.iter().filter_map(|row| row.try_get::<String, _>(0).ok()).collect())
}

pub(super) async fn tables(
    postgres: &Postgres,
    database: Option<&str>,
    schema: Option<&str>,
) -> Result<Vec<TableInfo>, ConnectorError> {
    let rows = postgres
        .catalog(
            database,
            "SELECT n.nspname, c.relname, CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' \
             WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'table' ELSE 'table' END \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p') AND NOT c.relispartition \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
             AND ($1 = '' OR n.nspname = $1) AND has_schema_privilege(n.oid, 'USAGE') \
             ORDER BY n.nspname, c.relname",
            &[schema.unwrap_or("")],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            Some(TableInfo {
                schema: Some(row.try_get::<String, _>(0).ok()?),
                name: row.try_get::<String, _>(1).ok()?,
                kind: row.try_get::<String, _>(2).ok()?,
            })
        })
        .collect())
}

pub(super) async fn columns(
    postgres: &Postgres,
    database: Option<&str>,
    schema: Option<&str>,
    table: &str,
) -> Result<Vec<ColumnInfo>, ConnectorError> {
    // Domains map as their base type, and arrays by their category, as in query results.
    let rows = postgres
        .catalog(
            database,
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, a.attnum::int4, \
             (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END)::int8, \
             COALESCE(bt.typcategory, t.typcategory) = 'A' \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
             WHERE c.relname = $1 AND n.nspname = COALESCE(NULLIF($2, ''), 'public') AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[table, schema.unwrap_or("")],
        )
        .await?;
    if rows.is_empty() {
        return Err(ConnectorError::QueryFailed {
            message: format!("The table {table:?} does not exist or is not visible."),
            code: None,
        });
    }
    Ok(rows
        .iter()
        .filter_map(|row| {
            let oid = u32::try_from(row.try_get::<i64, _>(4).ok()?).ok()?;
            let is_array = row.try_get::<bool, _>(5).ok()?;
            Some(ColumnInfo {
                name: row.try_get::<String, _>(0).ok()?,
                native_type: row.try_get::<String, _>(1).ok()?,
                portable: if is_array {
                    crate::value::PortableType::Array
                } else {
                    decode::portable_for_oid(Some(oid))
                },
                nullable: row.try_get::<bool, _>(2).ok(),
                position: u32::try_from(row.try_get::<i32, _>(3).ok()?).ok()?,
            })
        })
        .collect())
}
