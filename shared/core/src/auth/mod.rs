//! Authentication: emails, passwords, tokens, sessions, API keys, CSRF and rate limits, and
//! the extractors that turn a request into an authenticated caller.

mod caller;
pub mod cookies;
mod csrf;
pub mod email;
pub mod password;
pub mod rate_limit;
mod retry;
pub mod tokens;

pub use caller::{AuthMethod, Caller, WorkspaceCaller, authorize_workspace, start_session};
pub use retry::{Attempt, retry_on_change};
