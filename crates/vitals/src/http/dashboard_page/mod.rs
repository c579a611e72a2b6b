//! `GET /api/health/dashboard`: one HTML page for people, and the same URL's JSON
//! ([`DashboardSnapshot`]) for the page's script and any client that asks for it with
//! `Accept: application/json`.
//!
//! The page, its script and its style are files of this crate (`page.html`, `page.js`,
//! `page.css`, compiled in with `include_str!`): no build step, nothing fetched from
//! elsewhere. The script and the style are served beside the page (`dashboard/page.js`,
//! `dashboard/page.css`, relative to it, so the router can be nested under a prefix) rather
//! than inline, so the page's Content-Security-Policy can refuse every inline script and
//! every other origin (`script-src 'self'`, `connect-src 'self'`). The script refreshes
//! the page every 5 s from the JSON and inserts every string with `textContent`, never as
//! HTML; charts are inline SVG it draws.

mod snapshot;

use axum::extract::State;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

pub use snapshot::{
    CachePanel, DashboardAlert, DashboardSnapshot, PoolPanel, PoolPoint, StatementsPanel,
};

use crate::Vitals;

/// The page's path.
pub const DASHBOARD_PATH: &str = "/api/health/dashboard";

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");

/// The page may run its own script and style, fetch its own origin, and nothing else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// The dashboard's routes, for [`crate::http::router`].
pub(super) fn routes() -> Router<Vitals> {
    Router::new()
        .route(DASHBOARD_PATH, get(page_or_json))
        .route("/api/health/dashboard/page.js", get(script))
        .route("/api/health/dashboard/page.css", get(style))
}

async fn page_or_json(State(vitals): State<Vitals>, headers: HeaderMap) -> Response {
    // Either body may come back for this URL: caches must key on Accept.
    let vary = (header::VARY, HeaderValue::from_static("accept"));
    if wants_json(&headers) {
        let no_store = (header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return ([vary, no_store], Json(DashboardSnapshot::read(&vitals))).into_response();
    }
    let page = [
        vary,
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    (page, asset_headers(), PAGE).into_response()
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        asset_headers(),
        body,
    )
        .into_response()
}

/// No sniffing; no caching across upgrades (the files change with the crate, and are small).
fn asset_headers() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ]
}

/// Whether the client prefers JSON: `application/json` in `Accept` with a higher quality
/// than `text/html` (a browser's navigation lists `text/html` first; `*/*` alone, as curl
/// sends, gets the page).
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let quality = |want: &str| {
        accept
            .split(',')
            .filter_map(|range| {
                let mut parts = range.split(';');
                let media = parts.next()?.trim();
                if !media.eq_ignore_ascii_case(want) {
                    return None;
                }
                match parts.find_map(|p| p.trim().strip_prefix("q=")) {
                    Some(q) => q.trim().parse::<f32>().ok(),
                    None => Some(1.0),
                }
            })
            .fold(0.0_f32, f32::max)
    };
    let json = quality("application/json");
    json > 0.0 && json > quality("text/html")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn json_only_when_preferred_over_html() {
        assert!(wants_json(&accept("application/json")));
        assert!(wants_json(&accept("application/json, text/plain, */*")));
        assert!(wants_json(&accept("text/html;q=0.5, application/json")));
        assert!(!wants_json(&accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(!wants_json(&accept("*/*")));
        assert!(!wants_json(&accept("application/json;q=0")));
        assert!(!wants_json(&accept("text/html, application/json")));
        assert!(!wants_json(&HeaderMap::new()));
    }

    #[test]
    fn the_page_names_its_script_and_style_relative_to_itself_and_nothing_else() {
        assert!(PAGE.contains(r#"src="dashboard/page.js""#));
        assert!(PAGE.contains(r#"href="dashboard/page.css""#));
        for text in [PAGE, SCRIPT, STYLE] {
            assert!(!text.contains("http://") || text.contains("http://www.w3.org/2000/svg"));
            assert!(!text.contains("https://"));
        }
        // Strings reach the page as text only.
        assert!(!SCRIPT.contains("innerHTML"));
        assert!(!SCRIPT.contains("insertAdjacentHTML"));
        assert!(!SCRIPT.contains("document.write"));
    }
}
