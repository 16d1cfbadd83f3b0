//! Connector suites against real database servers.

mod mongodb;
mod mysql;
mod postgres;
mod sqlite;
