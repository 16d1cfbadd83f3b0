//! CSRF defence for cookie-authenticated writes.
//!
//! A state-changing request authenticated by the session cookie passes when one of these
//! holds, checked in order:
//! 1. it carries `X-CSRF-Token` equal to the session's token (for non-browser clients);
//! 2. the browser marks it `Sec-Fetch-Site: same-origin` or `none`;
//! 3. its `Origin` is the server's own (same host as the `Host` header) or a trusted origin.
//!
//! Anything else, including a write with none of these headers, is rejected with 403. API-key
//! requests need no CSRF defence, because browsers never attach the key on their own.

use axum::http::request::Parts;
use axum::http::{Method, header};
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::error::ApiError;

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn csrf_error(message: &str) -> ApiError {
    ApiError::Forbidden {
        code: "CSRF_FAILED",
        message: format!(
            "{message} Browsers send an Origin header on their own; other clients send the csrfToken from /api/auth/me as the X-CSRF-Token header, or use an API key."
        ),
    }
}

/// Rejects a cookie-authenticated write that fails every check above.
pub(super) fn check(parts: &Parts, config: &Config, session_token: &str) -> Result<(), ApiError> {
    if is_safe(&parts.method) {
        return Ok(());
    }
    let header_text = |name: &str| parts.headers.get(name).and_then(|value| value.to_str().ok());

    if let Some(sent) = header_text("x-csrf-token") {
        if bool::from(sent.as_bytes().ct_eq(session_token.as_bytes())) {
            return Ok(());
        }
        return Err(csrf_error("The X-CSRF-Token header does not match this session."));
    }

    if let Some(site) = header_text("sec-fetch-site")
        && matches!(site, "same-origin" | "none")
    {
        return Ok(());
    }

    let Some(origin) = header_text(header::ORIGIN.as_str()) else {
        return Err(csrf_error("Cookie-authenticated writes need an Origin header."));
    };
    if config.is_trusted_origin(origin) {
        return Ok(());
    }
    let own_host = header_text(header::HOST.as_str());
    let origin_host = origin.split_once("://").map(|(_, host)| host);
    if own_host.is_some() && origin_host == own_host {
        return Ok(());
    }
    Err(csrf_error(&format!(
        "Origin {origin:?} is not allowed to send cookie-authenticated writes."
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(method: Method, headers: &[(&str, &str)]) -> Parts {
        let mut builder = Request::builder().method(method).uri("/api/workspaces");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("request").into_parts().0
    }

    fn config() -> Config {
        let lookup: std::collections::HashMap<String, String> =
            [("MAKO_APP_URL".to_owned(), "https://app.example.com".to_owned())].into();
        Config::from_lookup(&lookup).expect("config")
    }

    #[test]
    fn safe_methods_pass() {
        assert!(check(&parts(Method::GET, &[]), &config(), "t").is_ok());
    }

    #[test]
    fn writes_need_a_defence() {
        let config = config();
        assert!(check(&parts(Method::POST, &[]), &config, "t").is_err());
        assert!(check(&parts(Method::POST, &[("x-csrf-token", "t")]), &config, "t").is_ok());
        assert!(check(&parts(Method::POST, &[("x-csrf-token", "wrong")]), &config, "t").is_err());
        assert!(check(&parts(Method::POST, &[("sec-fetch-site", "same-origin")]), &config, "t").is_ok());
        assert!(check(&parts(Method::POST, &[("sec-fetch-site", "cross-site")]), &config, "t").is_err());
        assert!(
            check(
                &parts(Method::POST, &[("origin", "https://app.example.com")]),
                &config,
                "t"
            )
            .is_ok()
        );
        assert!(check(&parts(Method::POST, &[("origin", "https://evil.test")]), &config, "t").is_err());
        let same_host = [("origin", "http://127.0.0.1:8787"), ("host", "127.0.0.1:8787")];
        assert!(check(&parts(Method::DELETE, &same_host), &config, "t").is_ok());
        let other_host = [("origin", "http://127.0.0.1:9999"), ("host", "127.0.0.1:8787")];
        assert!(check(&parts(Method::DELETE, &other_host), &config, "t").is_err());
    }
}
