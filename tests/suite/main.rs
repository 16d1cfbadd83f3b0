//! The workspace's integration-test binary: end-to-end tests over HTTP against the local
//! server, Lambda event tests, restart tests, and the port conformance suites.

mod agent;
mod auth;
mod conformance;
mod connections;
mod consoles;
mod conventions;
mod dashboards;
mod drivers;
mod execute;
mod lambda;
mod oauth;
mod restart;
mod server;
mod workspaces;
