//! The health dashboard in a real browser (issue 16, item 4): the real `health_server`
//! binary (embedded SQLite in a tempdir, L1 cache, the pool monitor sampling every 150 ms)
//! serves `/api/health/dashboard`; the test sends some traffic (summaries and vaccinations
//! through the cache, a vaccination written with a marker value), then headless Chromium
//! loads the page, runs its script (which fetches the JSON and draws) and dumps the DOM. The
//! test asserts the rendered text (the engine, the statements with p50/p95/p99, the empty
//! N+1 table), that each chart drew the samples the JSON holds, and that the marker value
//! is nowhere in the page. It also takes a screenshot (`VITALS_DASHBOARD_PNG=path` keeps it:
//! how docs/dashboard.png is made).
//!
//! Run with `cargo test -p vitals --test dashboard_browser` (needs `/usr/bin/chromium` or
//! `$CHROMIUM`; without it the test says so loudly and passes, except under `CI`, where it
//! fails). The first run builds the example.
#![cfg(feature = "http")]

// Only the helpers this test uses (tests/common/{example,health_server,chromium,child}.rs),
// not the whole of tests/common/mod.rs.
mod common {
    #![allow(dead_code)]
    pub mod child;
    pub mod chromium;
    pub mod example;
    pub mod health_server;
}

use std::time::{Duration, Instant};

use common::chromium::Chromium;
use common::health_server::HealthServer;
use serde_json::Value;

const DASHBOARD: &str = "/api/health/dashboard";
/// What a browser's navigation sends.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
/// Written as a lot number; a sanitised statement never holds it.
const MARKER: &str = "LOT-MARKER-58213";
/// The longest the test waits for the monitor's samples.
const SAMPLE_LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_draws_the_pool_cache_and_statements_in_chromium() {
    let Some(chromium) = Chromium::find() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium (.ci/run does): the dashboard's browser test cannot run"
        );
        eprintln!(
            "\n**********\nSKIPPED dashboard_browser: no /usr/bin/chromium (or $CHROMIUM); \
             `apt-get install chromium` to run it\n**********\n"
        );
        return;
    };
    // Built before the clock starts: the build is cargo's time, not this test's.
    common::example::example("vitals", "health_server");
    let begun = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let server = HealthServer::start(
        dir.path(),
        &["--demo-students", "30"],
        &[("DB_POOL_MONITOR_INTERVAL", "150")],
    )
    .await;
    let students = server.sample_students();
    assert!(students.len() >= 2, "{}", server.log());

    // A browser gets the page, its script and style, under a policy refusing inline script.
    let page = server.get(DASHBOARD, &[("accept", BROWSER_ACCEPT)]).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(page.header("vary"), Some("accept"));
    assert!(page.body.contains("<script src=\"dashboard/page.js\""));
    for (asset, kind) in [("page.js", "text/javascript"), ("page.css", "text/css")] {
        let reply = server.get(&format!("{DASHBOARD}/{asset}"), &[]).await;
        assert_eq!(reply.status, 200, "{asset}");
        assert!(reply
            .header("content-type")
            .unwrap_or_default()
            .starts_with(kind));
    }

    // Three rounds of traffic, each closed by a cache interval of its own.
    for round in 0..3 {
        let before = intervals_with_lookups(&snapshot(&server).await);
        for student in &students {
            for _ in 0..2 {
                let r = server
                    .get(&format!("/api/students/{student}/health-summary"), &[])
                    .await;
                assert_eq!(r.status, 200, "{}", r.body);
            }
            let r = server
                .get(&format!("/api/students/{student}/vaccinations"), &[])
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
        if round == 1 {
            // Drops the student's cached summary: round 2 misses it again.
            let body = format!(
                r#"{{"vaccine_name":"MMR","dose_number":9,"administered_on":"2026-01-05","lot_number":"{MARKER}"}}"#
            );
            let r = server
                .request(
                    "POST",
                    &format!("/api/students/{}/vaccinations", students[0]),
                    &[("content-type", "application/json")],
                    &body,
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.body);
        }
        wait_for(&server, "a cache interval with this round's lookups", |s| {
            intervals_with_lookups(s) > before
        })
        .await;
    }
    let data = wait_for(&server, "3 pool samples", |s| {
        s["pool"]["history"].as_array().map_or(0, Vec::len) >= 3
    })
    .await;

    // The JSON gives each statement its percentiles.
    let frequent = data["statements"]["most_frequent"].as_array().unwrap();
    assert!(!frequent.is_empty(), "{data}");
    for s in frequent {
        let (p50, p95, p99) = (
            s["p50_ms"].as_f64().unwrap(),
            s["p95_ms"].as_f64().unwrap(),
            s["p99_ms"].as_f64().unwrap(),
        );
        assert!(p50 <= p95 && p95 <= p99, "{s}");
    }
    assert!(!data.to_string().contains(MARKER), "{data}");

    // The browser: the script fetched the JSON and drew it.
    let url = format!("http://{}{DASHBOARD}", server.addr);
    let started = Instant::now();
    let dom = chromium.dump_dom(&url, 3000).await;
    eprintln!("chromium --dump-dom took {:?}", started.elapsed());
    assert_eq!(
        attribute(&dom, "body", "data-state").as_deref(),
        Some("ready"),
        "{dom}"
    );
    assert!(dom.contains(">SQLite<"), "the engine: {dom}");
    assert!(dom.contains(">live<"), "the status: {dom}");
    assert!(dom.contains(">No alerts.<"), "{dom}");
    assert!(dom.contains(">No N+1 findings.<"), "{dom}");
    for header in ["p50 ms", "p95 ms", "p99 ms"] {
        assert!(dom.contains(header), "{header}");
    }
    // The most frequent statement, as the page shows it (cut at 240 characters).
    let top = frequent[0]["query"].as_str().unwrap();
    let shown: String = top.chars().take(240).collect();
    assert!(
        dom.contains(&format!("<code>{}", html_text(&shown))),
        "the most frequent statement, {top}, in: {dom}"
    );
    let slowest = section(&dom, "id=\"slowest\"", "</table>");
    assert!(slowest.matches("<tr>").count() > 1, "{slowest}");

    // Each chart drew every sample the JSON had then (the page may have read one more).
    let pool_samples = data["pool"]["history"].as_array().unwrap().len();
    let drawn = points(&dom, "pool-utilisation-chart");
    assert!(drawn >= pool_samples, "{drawn} < {pool_samples}: {dom}");
    let waiting = points(&dom, "pool-waiting-chart");
    assert!(waiting >= pool_samples, "{waiting} < {pool_samples}");
    let lookups = intervals_with_lookups(&data);
    let cache = points(&dom, "cache-chart");
    assert!(cache >= lookups && lookups >= 3, "{cache}, {lookups}");
    let cache_svg = section(&dom, "id=\"cache-chart\"", "</svg>");
    assert!(cache_svg.matches("<polyline").count() >= 2, "{cache_svg}");
    assert!(
        cache_svg.matches("<circle").count() >= lookups,
        "{cache_svg}"
    );
    assert!(!dom.contains(MARKER), "the marker value reached the page");

    // A picture of it (docs/dashboard.png when VITALS_DASHBOARD_PNG names it).
    let png = dir.path().join("dashboard.png");
    chromium.screenshot(&url, &png, 1280, 1900, 3000).await;
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
        "{}",
        bytes.len()
    );
    if let Some(keep) = std::env::var_os("VITALS_DASHBOARD_PNG") {
        std::fs::copy(&png, keep).unwrap();
    }

    let log = server.stop().await;
    assert!(!log.contains(MARKER), "the marker value reached the log");
    eprintln!(
        "dashboard_browser: {:?} from the server's start",
        begun.elapsed()
    );
}

/// `GET /api/health/dashboard` as JSON.
async fn snapshot(server: &HealthServer) -> Value {
    let r = server
        .get(DASHBOARD, &[("accept", "application/json")])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_str(&r.body).unwrap()
}

/// Reads the JSON until `done` holds (the monitor samples every 150 ms); that JSON.
async fn wait_for(server: &HealthServer, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + SAMPLE_LIMIT;
    loop {
        let s = snapshot(server).await;
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {SAMPLE_LIMIT:?}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The cache intervals in `snapshot` that had lookups.
fn intervals_with_lookups(snapshot: &Value) -> usize {
    snapshot["cache"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["lookups"].as_u64().unwrap() > 0)
        .count()
}

/// Attribute `name` of the first element with id `id` (or the tag `id`, as `body`).
fn attribute(dom: &str, id: &str, name: &str) -> Option<String> {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .or_else(|| dom.find(&format!("<{id} ")))?;
    let start = dom[..=at].rfind('<')?;
    let tag = &dom[start..at + dom[at..].find('>')?];
    let key = format!(" {name}=\"");
    let value = &tag[tag.find(&key)? + key.len()..];
    Some(value[..value.find('"')?].to_owned())
}

/// The chart `id`'s `data-points`: the most points one of its series drew.
fn points(dom: &str, id: &str) -> usize {
    attribute(dom, id, "data-points")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no data-points on #{id}"))
}

/// `dom` from `from` to the next `to`.
fn section<'a>(dom: &'a str, from: &str, to: &str) -> &'a str {
    let start = dom.find(from).unwrap_or_else(|| panic!("no {from}"));
    let end = start + dom[start..].find(to).unwrap_or(dom.len() - start);
    &dom[start..end]
}

/// `text` as a serialised DOM writes a text node.
fn html_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\u{a0}', "&nbsp;")
}
