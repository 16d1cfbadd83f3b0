//! Statement checks shared by the SQL drivers: what read-only execution allows, and
//! statements that no connection may run.

use super::split::{Dialect, Statement};
use crate::error::ConnectorError;

/// First keywords of statements that only read. The engine's read-only mode is the real
/// guarantee; this list refuses the rest early with a clear message.
const READ_KEYWORDS: &[&str] = &[
    "SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN", "DESCRIBE", "DESC",
];

/// Rejects a statement that may write, for read-only execution.
pub fn check_read_only(statement: &Statement<'_>, dialect: Dialect) -> Result<(), ConnectorError> {
    let keyword = statement.keyword.as_deref().unwrap_or("");
    let allowed = READ_KEYWORDS.contains(&keyword) || (dialect == Dialect::Sqlite && keyword == "PRAGMA");
    if !allowed {
        return Err(ConnectorError::ReadOnly {
            reason: "this connection or your role only allows reading",
            statement: crate::execute::statement_label(statement.text),
        });
    }
    if dialect == Dialect::MySql {
        let upper = statement.text.to_ascii_uppercase();
        if upper.contains("OUTFILE") || upper.contains("DUMPFILE") {
            return Err(ConnectorError::ReadOnly {
                reason: "writing files on the database server is not allowed",
                statement: crate::execute::statement_label(statement.text),
            });
        }
    }
    Ok(())
}

/// Rejects statements no connection may run: on SQLite, those that open or write other
/// files (`ATTACH`, `DETACH`, `VACUUM INTO`) or load native code.
pub fn check_allowed(statement: &Statement<'_>, dialect: Dialect) -> Result<(), ConnectorError> {
    if dialect != Dialect::Sqlite {
        return Ok(());
    }
    let keyword = statement.keyword.as_deref().unwrap_or("");
    let upper = statement.text.to_ascii_uppercase();
    let refused = matches!(keyword, "ATTACH" | "DETACH")
        || (keyword == "VACUUM" && upper.contains("INTO"))
        || upper.contains("LOAD_EXTENSION");
    if refused {
        return Err(ConnectorError::ReadOnly {
            reason: "SQLite connections may not attach, write or load other files",
            statement: crate::execute::statement_label(statement.text),
        });
    }
    Ok(())
}

/// Splits query text, mapping splitter errors to a clear message.
pub fn split_statements(text: &str, dialect: Dialect) -> Result<Vec<Statement<'_>>, ConnectorError> {
    // SQL text cannot contain a NUL character: PostgreSQL rejects it, and SQLite stops reading
    // at it, which made sqlx's statement loop spin forever.
    if let Some(position) = text.find('\0') {
        return Err(ConnectorError::InvalidQuery {
            message: format!("The query contains a NUL character (\\u0000) at byte {position}; remove it."),
        });
    }
    let statements = super::split::split(text, dialect).map_err(|error| ConnectorError::InvalidQuery {
        message: format!("The query text is malformed: {error}."),
    })?;
    if statements.is_empty() {
        return Err(ConnectorError::InvalidQuery {
            message: "The query is empty.".into(),
        });
    }
    Ok(statements)
}
