//! Browser-facing protections applied to every request and response: a content security
//! policy and framing / sniffing refusals on every response, `Cache-Control: no-store` on
//! everything but the page (API answers carry secrets: new device secrets, new tokens), and a
//! WebSocket upgrade from another site's page refused (its `Origin` must be this node).

use std::sync::LazyLock;

use axum::extract::Request;
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::Digest;

use crate::ApiError;

/// The dashboard page, served at `/`.
pub(crate) const PAGE: &str = include_str!("../assets/index.html");

/// The page's policy: everything from this node only; its one inline script allowed by its
/// digest, inline styles allowed (the page uses `style=` attributes), no framing.
static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let scripts: Vec<String> = inline_scripts(PAGE)
        .map(|s| {
            let digest = sha2::Sha256::digest(s.as_bytes());
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
        .collect();
    let policy = format!(
        "default-src 'self'; script-src 'self' {}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'",
        scripts.join(" ")
    );
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'self'"))
});

/// The text of each inline `<script>` element of `html`.
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    html.split("<script>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</script>").map(|(s, _)| s))
}

/// Adds the security headers to a response; refuses a cross-site WebSocket upgrade first.
pub(crate) async fn protect(req: Request, next: Next) -> Response {
    if let Some(refusal) = cross_origin_upgrade(req.headers()) {
        return refusal.into_response();
    }
    let is_page = req.uri().path() == "/";
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !is_page {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// A WebSocket upgrade carrying an `Origin` whose host is not the `Host` it was sent to: a
/// page of another site trying to use the browser's access to this node. Clients that are not
/// browsers send no `Origin` and pass.
fn cross_origin_upgrade(headers: &HeaderMap) -> Option<ApiError> {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return None;
    }
    match same_origin(headers)? {
        true => None,
        false => Some(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "a WebSocket from a page of another origin is refused; open the page served by this node",
        )),
    }
}

/// Whether the request's `Origin` names the `Host` it was sent to; `None` without an `Origin`
/// (clients that are not browsers). `Origin: null` and a missing `Host` are not the same origin.
pub(crate) fn same_origin(headers: &HeaderMap) -> Option<bool> {
    let origin = headers.get(header::ORIGIN)?;
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://").map(|(_, rest)| rest))
        .map(|rest| rest.trim_end_matches('/'));
    Some(matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn only_a_same_origin_or_absent_origin_may_upgrade() {
        assert!(cross_origin_upgrade(&upgrade(None, "node:8080")).is_none());
        assert!(cross_origin_upgrade(&upgrade(Some("http://node:8080"), "node:8080")).is_none());
        assert!(
            cross_origin_upgrade(&upgrade(Some("https://evil.example"), "node:8080")).is_some()
        );
        assert!(cross_origin_upgrade(&upgrade(Some("null"), "node:8080")).is_some());
        assert!(cross_origin_upgrade(&upgrade(Some("http://node:8081"), "node:8080")).is_some());
    }

    #[test]
    fn the_policy_names_the_page_script_by_its_digest() {
        assert_eq!(inline_scripts(PAGE).count(), 1);
        let csp = CSP.to_str().unwrap();
        assert!(csp.contains("'sha256-"), "{csp}");
        assert!(csp.starts_with("default-src 'self'"));
    }
}
