//! SQL text handling shared by the SQL drivers.

pub mod guard;
pub mod split;
