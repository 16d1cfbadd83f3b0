//! MongoDB support.

pub mod driver;
pub mod shell;
pub mod values;
