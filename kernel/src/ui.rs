//! The browser UI, served at `/` beside `/ws` so the page and the bridge share one
//! origin (the bridge refuses pages from any other).
//!
//! The page is three files compiled into the kernel (`kernel/ui/`): plain HTML, CSS and
//! JavaScript, no framework and no build step, so the kernel is the whole product and
//! nothing is fetched from anywhere else. Every response carries a Content Security
//! Policy that only allows this origin: scripts, styles and connections from `self`,
//! nothing inline, no plugins, no framing by others. Model output (`display_yourself`
//! fragments) is rendered in `<iframe sandbox>` without `allow-scripts` or
//! `allow-same-origin`, and inherits this policy too: two walls, either of which stops
//! a `<script>` in a fragment.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The policy every UI response carries. `connect-src 'self'` admits the page's own
/// `ws://` origin (CSP level 3 matches `ws:` to `http:` of the same host and port).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One file of the page: its path under `/`, media type and bytes.
struct Asset {
    path: &'static str,
    media_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        media_type: "text/html; charset=utf-8",
        body: include_str!("../ui/index.html"),
    },
    Asset {
        path: "/app.js",
        media_type: "text/javascript; charset=utf-8",
        body: include_str!("../ui/app.js"),
    },
    Asset {
        path: "/app.css",
        media_type: "text/css; charset=utf-8",
        body: include_str!("../ui/app.css"),
    },
];

/// The asset at `path`, with its headers, or 404.
pub fn asset(path: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return (StatusCode::NOT_FOUND, "no such page: the UI is at /").into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.media_type));
    headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The page is part of the kernel: a new kernel serves its own page, never a stale one.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
