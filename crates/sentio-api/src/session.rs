//! Browser sessions: the cookie that carries a session id, and the CSRF check of every
//! state-changing request a cookie authenticates.
//!
//! Over HTTPS the cookie is `__Host-sentio_session` (`Secure`, so browsers keep it for this
//! host only); over plain HTTP, where browsers refuse a `__Host-` cookie, it is
//! `sentio_session`. Both are `HttpOnly; Path=/; SameSite=Strict`. A cookie is sent by the
//! browser whatever page asks, so a request that changes state must also show it comes from
//! this node's page: an `Origin` naming this host (or `Sec-Fetch-Site: same-origin`) and the
//! `X-CSRF-Token` given at login. Bearer-token requests carry no cookie and need neither.

use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use sentio_store::{Session, SessionSecrets};

use crate::ApiError;
use crate::headers::same_origin;

/// The cookie's name over HTTPS.
pub const SECURE_COOKIE: &str = "__Host-sentio_session";
/// The cookie's name over plain HTTP.
pub const PLAIN_COOKIE: &str = "sentio_session";
/// The header carrying the CSRF token given at login.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session cookie's name for a request that came over HTTPS or not.
pub fn cookie_name(https: bool) -> &'static str {
    if https { SECURE_COOKIE } else { PLAIN_COOKIE }
}

/// The session id in the request's cookie of the transport's name, if any.
pub fn cookie(headers: &HeaderMap, https: bool) -> Option<String> {
    let name = cookie_name(https);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// `Set-Cookie` for a new session, lasting as long as it does.
pub fn set_cookie(secrets: &SessionSecrets, ttl_ms: u64, https: bool) -> String {
    attributes(cookie_name(https), &secrets.id, ttl_ms / 1000, https)
}

/// `Set-Cookie` that removes the session cookie (logout).
pub fn clear_cookie(https: bool) -> String {
    attributes(cookie_name(https), "", 0, https)
}

fn attributes(name: &str, value: &str, max_age_s: u64, https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!("{name}={value}; Max-Age={max_age_s}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

/// Whether a request with this method may change state (and so needs the CSRF check).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The request comes from this node's page: same origin (by `Origin`, or by
/// `Sec-Fetch-Site: same-origin` when the browser sent no `Origin`).
pub fn from_this_origin(headers: &HeaderMap) -> bool {
    match same_origin(headers) {
        Some(same) => same,
        None => headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"same-origin"),
    }
}

/// The CSRF check of a state-changing request authenticated by `session`'s cookie: this
/// node's origin and the session's `X-CSRF-Token`.
pub fn check_csrf(parts: &Parts, session: &Session) -> Result<(), ApiError> {
    if !from_this_origin(&parts.headers) {
        return Err(ApiError::csrf(
            "a request that changes state with a session cookie must come from this node's page (Origin or Sec-Fetch-Site: same-origin)",
        ));
    }
    let token = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !session.csrf_matches(token) {
        return Err(ApiError::csrf(
            "send the csrf_token given at login in the X-CSRF-Token header",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_cookie_is_found_by_the_transport_s_name_only() {
        let h = headers(&[(
            "cookie",
            "a=1; sentio_session=abc; __Host-sentio_session=def",
        )]);
        assert_eq!(cookie(&h, false).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, true).as_deref(), Some("def"));
        assert_eq!(cookie(&headers(&[("cookie", "x=1")]), false), None);
    }

    #[test]
    fn origin_or_fetch_site_must_name_this_node() {
        let check = |pairs: &[(&'static str, &'static str)], ok: bool| {
            assert_eq!(from_this_origin(&headers(pairs)), ok, "{pairs:?}");
        };
        check(&[("host", "n:8080"), ("origin", "http://n:8080")], true);
        check(
            &[("host", "n:8080"), ("origin", "http://evil.example")],
            false,
        );
        check(
            &[("host", "n:8080"), ("sec-fetch-site", "same-origin")],
            true,
        );
        check(
            &[("host", "n:8080"), ("sec-fetch-site", "cross-site")],
            false,
        );
        check(&[("host", "n:8080")], false);
        // A foreign Origin is not excused by a same-origin Sec-Fetch-Site.
        check(
            &[
                ("host", "n:8080"),
                ("origin", "http://evil.example"),
                ("sec-fetch-site", "same-origin"),
            ],
            false,
        );
    }
}
