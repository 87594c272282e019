//! Replay routes compared: when two runs replayed one capture, their route rows (`GET
//! /items/:id`, named after their method and path, see `replay/route.rs`) are compared by status
//! class — counts and share of completed requests — beside their p50 and p99. Rows of named
//! `[[requests]]` are not routes and stay in the requests table only.

use super::Side;
use super::diff::{pp, request_names};
use crate::replay::plan::OTHER_ROUTES;
use crate::report::human;
use crate::report::model::RequestStats;

/// The status classes compared per route; `errors` are the transport failures (connect,
/// timeout, reset, body).
pub const CLASSES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "errors"];

/// Whether a summary row is a replay route rather than a named request.
pub fn is_route(r: &RequestStats) -> bool {
    r.name == OTHER_ROUTES || (!r.method.is_empty() && r.name == format!("{} {}", r.method, r.path))
}

/// A row's completed requests per class of [`CLASSES`] (`429` counts as `4xx`).
pub fn class_counts(r: &RequestStats) -> [u64; 5] {
    let mut out = [0u64; 5];
    for (class, n) in &r.by_class {
        let slot = match class.as_str() {
            "2xx" => 0,
            "3xx" => 1,
            "4xx" | "429" => 2,
            "5xx" => 3,
            _ => 4,
        };
        out[slot] += n;
    }
    out
}

/// Route names of either run, BEFORE's order first; empty when neither replayed.
pub fn route_names(a: &Side, b: &Side) -> Vec<String> {
    request_names(a, b)
        .into_iter()
        .filter(|n| [a, b].iter().any(|s| s.request(n).is_some_and(is_route)))
        .collect()
}

/// One cell `count (share) → count (share) (change in points)` for class `slot`.
pub fn class_cell(a: Option<&RequestStats>, b: Option<&RequestStats>, slot: usize) -> String {
    let v = |r: Option<&RequestStats>| {
        r.map(|r| {
            let n = class_counts(r)[slot];
            let share = if r.completed == 0 {
                0.0
            } else {
                n as f64 / r.completed as f64
            };
            (n, share)
        })
    };
    let text = |x: Option<(u64, f64)>| {
        x.map_or("—".to_owned(), |(n, s)| {
            format!("{} ({})", human::count(n), human::percent(s))
        })
    };
    match (v(a), v(b)) {
        (Some(x), Some(y)) if x.0 == 0 && y.0 == 0 => "0 → 0".to_owned(),
        (Some(x), Some(y)) => format!("{} → {} ({})", text(Some(x)), text(Some(y)), pp(x.1, y.1)),
        (x, y) => format!("{} → {}", text(x), text(y)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare::tests::pair;

    /// BEFORE and AFTER with two replay routes: `GET /items/:id` gets 5xx after, `PUT
    /// /items/:id` only before.
    fn replays() -> (Side, Side) {
        let (mut a, mut b) = pair();
        let route = |s: &Side, method: &str, path: &str, classes: &[(&str, u64)]| {
            let mut r = s.summary.requests[0].clone();
            r.name = format!("{method} {path}");
            r.method = method.to_owned();
            r.path = path.to_owned();
            r.by_class = classes.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect();
            r.completed = classes.iter().map(|(_, n)| n).sum();
            r
        };
        let get = route(
            &a,
            "GET",
            "/items/:id",
            &[("2xx", 90), ("429", 6), ("timeout", 4)],
        );
        let put = route(&a, "PUT", "/items/:id", &[("2xx", 10)]);
        a.summary.requests.extend([get, put]);
        let mut get = route(&b, "GET", "/items/:id", &[("2xx", 80), ("5xx", 20)]);
        get.corrected.p99_us *= 2;
        b.summary.requests.push(get);
        (a, b)
    }

    #[test]
    fn only_route_rows_are_compared_with_their_status_classes() {
        let (a, b) = replays();
        assert_eq!(route_names(&a, &b), ["GET /items/:id", "PUT /items/:id"]);
        let (x, y) = (a.request("GET /items/:id"), b.request("GET /items/:id"));
        assert_eq!(class_counts(x.expect("before")), [90, 0, 6, 0, 4]);
        assert_eq!(class_cell(x, y, 0), "90 (90.00%) → 80 (80.00%) (−10.00 pp)");
        assert_eq!(class_cell(x, y, 1), "0 → 0");
        assert_eq!(class_cell(x, y, 2), "6 (6.00%) → 0 (0.00%) (−6.00 pp)");
        assert_eq!(class_cell(x, y, 3), "0 (0.00%) → 20 (20.00%) (+20.00 pp)");
        let put = a.request("PUT /items/:id");
        assert_eq!(class_cell(put, None, 0), "10 (100.00%) → —");
        let (plain_a, plain_b) = pair();
        assert!(
            route_names(&plain_a, &plain_b).is_empty(),
            "named requests are no routes"
        );
    }

    #[test]
    fn markdown_and_html_show_routes_only_for_replays() {
        let (a, b) = replays();
        let c = crate::report::compare::compare(a, b, &[]).expect("compares");
        let md = crate::report::compare::render_markdown(&c);
        let started = crate::report::compare::render_md::md(&c.before.summary.started_at);
        insta::assert_snapshot!(md.replace(&started, "[started_at]"));
        let page = crate::report::compare::render_html(&c);
        let ids = crate::report::html::tests::parse_ids(&page);
        assert!(ids.iter().any(|i| i == "routes"), "no #routes");
        let (a, b) = pair();
        let c = crate::report::compare::compare(a, b, &[]).expect("compares");
        assert!(!crate::report::compare::render_markdown(&c).contains("## Routes"));
        assert!(!crate::report::compare::render_html(&c).contains("id=\"routes\""));
    }
}
