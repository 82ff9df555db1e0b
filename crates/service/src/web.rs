//! The web wallet's page (docs/SERVICE.md, "The web wallet"): plain HTML, CSS and JavaScript
//! compiled into the binary (no CDN, no build step), and the headers every answer carries.
//!
//! The page holds no secret: it signs in through `/ui/session` (the cookie is `HttpOnly`) and
//! then calls the same API as any client, with an `X-EZ-Nonce` on every POST.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const APP_CSS: &str = include_str!("../web/app.css");
const ICON_SVG: &str = include_str!("../web/icon.svg");

/// The page's assets: path, content type, body.
pub const ASSETS: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", INDEX_HTML),
    ("/ui/app.js", "text/javascript; charset=utf-8", APP_JS),
    ("/ui/app.css", "text/css; charset=utf-8", APP_CSS),
    ("/ui/icon.svg", "image/svg+xml", ICON_SVG),
];

/// Scripts, styles, images and calls only from this origin, no inline script, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

pub(crate) fn asset(path: &'static str) -> Response {
    let (content_type, text) = ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map_or(("text/plain", ""), |(_, kind, text)| (*kind, *text));
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Revalidated on every load, so a new binary's page is never mixed with an old one's.
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        text,
    )
        .into_response()
}

/// Headers on every answer, the API's included.
pub(crate) fn add_security_headers(headers: &mut HeaderMap) {
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_no_inline_script_and_nothing_from_elsewhere() {
        let page = INDEX_HTML.to_lowercase();
        for (at, _) in page.match_indices("<script") {
            let tag = &page[at..at + page[at..].find('>').unwrap_or(0)];
            assert!(tag.contains("src=\"/ui/"), "only the page's own script files: {tag}");
        }
        for needle in [" on", "javascript:", "http://", "https://", "style="] {
            let inside_tags = page
                .split('<')
                .filter_map(|part| part.split('>').next())
                .any(|tag| tag.contains(needle) && !tag.starts_with("!--"));
            assert!(
                !inside_tags,
                "no `{needle}` in a tag (inline handlers, styles or remote assets)"
            );
        }
        assert!(!APP_JS.contains("eval("), "no eval");
        assert!(
            !APP_JS.contains("innerHTML"),
            "text goes in with textContent, never as HTML"
        );
    }
}
