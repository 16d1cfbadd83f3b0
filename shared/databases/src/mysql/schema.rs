//! Schema browsing for MySQL and MariaDB: databases, tables and views, columns.

use sqlx::Row;

use super::MySql;
use crate::error::ConnectorError;
use crate::value::PortableType;
use crate::{ColumnInfo, TableInfo};

/// Databases hidden from listings: the server's own catalogs.
const SYSTEM_DATABASES: &[&str] = &["information_schema", "mysql", "performance_schema", "sys"];

/// Reads a text column; information_schema columns can come back as binary strings.
fn text(row: &sqlx::mysql::MySqlRow, index: usize) -> Option<String> {
    row.try_get::<String, _>(index).ok().or_else(|| {
        row.try_get::<Vec<u8>, _>(index)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    })
}

pub(super) async fn databases(mysql: &MySql) -> Result<Vec<String>, ConnectorError> {
    let rows = mysql
        .catalog(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| text(row, 0))
        .filter(|name| !SYSTEM_DATABASES.contains(&name.as_str()))
        .collect())
}

pub(super) async fn tables(mysql: &MySql, database: Option<&str>) -> Result<Vec<TableInfo>, ConnectorError> {
    let database = database.or(mysql.default_database()).unwrap_or_default();
    let rows = mysql
        .catalog(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(NULLIF(?, ''), DATABASE()) ORDER BY TABLE_NAME",
            &[database],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let kind = text(row, 1)?;
            Some(TableInfo {
                schema: None,
                name: text(row, 0)?,
                kind: if kind.contains("VIEW") {
                    "view".to_owned()
                } else {
                    "table".to_owned()
                },
            })
        })
        .collect())
}

/// Portable type of a column from its information_schema `DATA_TYPE` and `COLUMN_TYPE`.
fn portable(data_type: &str, column_type: &str) -> PortableType {
    let unsigned = column_type.contains("unsigned");
    match data_type {
        "tinyint" | "smallint" | "year" => PortableType::Int16,
        "mediumint" | "int" | "integer" if !unsigned || data_type != "int" => PortableType::Int32,
        "int" | "integer" | "bigint" if !(data_type == "bigint" && unsigned) => PortableType::Int64,
        "bigint" | "bit" => PortableType::Uint64,
        "float" => PortableType::Float32,
        "double" | "real" => PortableType::Float64,
        "decimal" | "numeric" => PortableType::Decimal,
        "date" => PortableType::Date,
        "time" => PortableType::Time,
        "datetime" => PortableType::Timestamp,
        "timestamp" => PortableType::Timestamptz,
        "json" => PortableType::Json,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "geometry" | "point"
        | "linestring" | "polygon" => PortableType::Binary,
        _ => PortableType::String,
    }
}

pub(super) async fn columns(
    mysql: &MySql,
    database: Option<&str>,
    table: &str,
) -> Result<Vec<ColumnInfo>, ConnectorError> {
    let database = database.or(mysql.default_database()).unwrap_or_default();
    let rows = mysql
        .catalog(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, ORDINAL_POSITION FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = COALESCE(NULLIF(?, ''), DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            &[database, table],
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
            let data_type = text(row, 1)?.to_ascii_lowercase();
            let column_type = text(row, 2)?;
            let position = row.try_get::<u64, _>(4).ok().or_else(|| {
                row.try_get::<i64, _>(4)
                    .ok()
                    .and_then(|value| u64::try_from(value).ok())
            })?;
            Some(ColumnInfo {
                name: text(row, 0)?,
                portable: portable(&data_type, &column_type.to_ascii_lowercase()),
                native_type: column_type,
                nullable: text(row, 3).map(|value| value == "YES"),
                position: u32::try_from(position).ok()?,
            })
        })
        .collect())
}
