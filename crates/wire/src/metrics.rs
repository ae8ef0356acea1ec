//! Process metrics in the Prometheus text exposition format (version
//! 0.0.4): counters, gauges and histograms with labels, one registry per
//! process (each triad service is its own process), served as `GET
//! /metrics` by every service.
//!
//! Recorded everywhere: every HTTP answer by route, status and error code
//! (`triad_http_responses_total`, from [`crate::trace::trace_requests`])
//! and its duration. Each service adds its own (admissions, queue depth,
//! batch and MPC job durations, bytes between parties, releases, store
//! latency): see the `metrics::` calls in the coordinator, the parties and
//! the API.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds (seconds) of the duration histograms' buckets.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

type Labels = Vec<(&'static str, String)>;

enum Value {
    Counter(f64),
    Gauge(f64),
    /// Per bucket (cumulative at render), sum, count.
    Histogram(Vec<u64>, f64, u64),
}

#[derive(Default)]
struct Registry {
    /// name → (help, labels → value)
    series: BTreeMap<&'static str, (&'static str, BTreeMap<Labels, Value>)>,
}

fn registry() -> &'static Mutex<Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(Mutex::default)
}

/// Updates series `name` with `labels`: `update` changes an existing value
/// in place, `fresh` makes the first one. A series whose kind differs (a
/// name misused across calls) is replaced by the fresh value.
fn with(
    name: &'static str,
    help: &'static str,
    labels: &[(&'static str, &str)],
    update: impl FnOnce(&mut Value) -> bool,
    fresh: impl FnOnce() -> Value,
) {
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    let (_, series) = r.series.entry(name).or_insert((help, BTreeMap::new()));
    let key: Labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let updated = series.get_mut(&key).is_some_and(update);
    if !updated {
        series.insert(key, fresh());
    }
}

/// Adds `by` to counter `name` with `labels`.
pub fn count(name: &'static str, help: &'static str, labels: &[(&'static str, &str)], by: f64) {
    with(
        name,
        help,
        labels,
        |v| match v {
            Value::Counter(c) => {
                *c += by;
                true
            }
            _ => false,
        },
        || Value::Counter(by),
    );
}

/// Sets gauge `name` with `labels` to `v`.
pub fn gauge(name: &'static str, help: &'static str, labels: &[(&'static str, &str)], v: f64) {
    with(
        name,
        help,
        labels,
        |old| match old {
            Value::Gauge(g) => {
                *g = v;
                true
            }
            _ => false,
        },
        || Value::Gauge(v),
    );
}

/// Records `d` in histogram `name` (buckets [`SECONDS_BUCKETS`]).
pub fn observe(
    name: &'static str,
    help: &'static str,
    labels: &[(&'static str, &str)],
    d: Duration,
) {
    let s = d.as_secs_f64();
    let bucket = SECONDS_BUCKETS
        .iter()
        .position(|b| s <= *b)
        .unwrap_or(SECONDS_BUCKETS.len());
    with(
        name,
        help,
        labels,
        |v| match v {
            Value::Histogram(b, sum, n) => {
                b[bucket] += 1;
                *sum += s;
                *n += 1;
                true
            }
            _ => false,
        },
        || {
            let mut b = vec![0; SECONDS_BUCKETS.len() + 1];
            b[bucket] = 1;
            Value::Histogram(b, s, 1)
        },
    );
}

/// Times `f` into histogram `name`.
pub fn timed<T>(
    name: &'static str,
    help: &'static str,
    labels: &[(&'static str, &str)],
    f: impl FnOnce() -> T,
) -> T {
    let t = std::time::Instant::now();
    let out = f();
    observe(name, help, labels, t.elapsed());
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_text(labels: &Labels, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Every series, in the text exposition format.
pub fn render() -> String {
    let r = registry().lock().unwrap_or_else(|e| e.into_inner());
    let mut out = String::new();
    for (name, (help, series)) in &r.series {
        let kind = match series.values().next() {
            Some(Value::Counter(_)) => "counter",
            Some(Value::Gauge(_)) => "gauge",
            Some(Value::Histogram(..)) => "histogram",
            None => continue,
        };
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in series {
            match v {
                Value::Counter(c) | Value::Gauge(c) => {
                    let _ = writeln!(out, "{name}{} {c}", label_text(labels, None));
                }
                Value::Histogram(b, sum, n) => {
                    let mut acc = 0;
                    for (i, c) in b.iter().enumerate() {
                        acc += c;
                        let le = SECONDS_BUCKETS
                            .get(i)
                            .map_or("+Inf".to_string(), |x| x.to_string());
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {acc}",
                            label_text(labels, Some(("le", le)))
                        );
                    }
                    let _ = writeln!(out, "{name}_sum{} {sum}", label_text(labels, None));
                    let _ = writeln!(out, "{name}_count{} {n}", label_text(labels, None));
                }
            }
        }
    }
    out
}

/// `GET /metrics`: [`render`] as `text/plain; version=0.0.4`.
pub async fn serve_metrics() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_exposition_format() {
        count("t_total", "test counter", &[("code", "a\"b")], 1.0);
        count("t_total", "test counter", &[("code", "a\"b")], 2.0);
        gauge("t_depth", "test gauge", &[], 3.0);
        gauge("t_depth", "test gauge", &[], 7.0);
        observe(
            "t_seconds",
            "test histogram",
            &[("job", "x")],
            Duration::from_millis(30),
        );
        observe(
            "t_seconds",
            "test histogram",
            &[("job", "x")],
            Duration::from_secs(100),
        );
        let text = render();
        assert!(text.contains("# TYPE t_total counter\n"), "{text}");
        assert!(text.contains("t_total{code=\"a\\\"b\"} 3\n"), "{text}");
        assert!(text.contains("# TYPE t_depth gauge\nt_depth 7\n"), "{text}");
        assert!(
            text.contains("t_seconds_bucket{job=\"x\",le=\"0.01\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{job=\"x\",le=\"0.05\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{job=\"x\",le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("t_seconds_count{job=\"x\"} 2\n"), "{text}");
    }
}
