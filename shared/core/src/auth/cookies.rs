//! Cookies: the session cookie and the short-lived OAuth state cookie.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};

use crate::config::Config;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "mako_session";

/// Name of the cookie that binds an OAuth state to the browser that started the sign-in.
pub const OAUTH_STATE_COOKIE: &str = "mako_oauth_state";

/// Returns the value of the cookie `name` from the request's `Cookie` headers.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// Builds a `Set-Cookie` value. Tokens are base64url, so they need no quoting.
pub fn set_cookie(config: &Config, name: &str, value: &str, path: &str, max_age: Duration) -> HeaderValue {
    let secure = if config.cookie_secure { "; Secure" } else { "" };
    let cookie = format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Builds a `Set-Cookie` value that deletes the cookie.
pub fn clear_cookie(config: &Config, name: &str, path: &str) -> HeaderValue {
    set_cookie(config, name, "", path, Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cookie_among_several() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; mako_session=abc-_1; b=2"),
        );
        assert_eq!(read_cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc-_1"));
        assert_eq!(read_cookie(&headers, "missing"), None);
    }
}
