//! Driver suites against real database servers: the behaviour matrix of each engine.

mod mongodb;
mod mysql;
mod postgres;
mod sqlite;
