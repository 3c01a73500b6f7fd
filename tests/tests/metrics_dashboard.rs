//! The Grafana dashboard queries only metrics a live origin exports — from its very first scrape,
//! before any question, and after answers of every kind. The same check as
//! `scripts/validate-deploy.sh --metrics FILE`, on a real `libriassist serve` with a simulator;
//! the scrapes are left in `target/tmp/` for that script.
//!
//! Origin metric names all start with `libriassist_`; the edge's series, recorded by Prometheus
//! rules, are named `libriassist_edge:*` and checked by the script against a running Envoy.

use libriassist_tests::process::*;
use libriassist_tests::sse::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Every PromQL expression of the dashboard: panel targets (rows nest panels) and query variables.
fn dashboard_queries() -> Vec<String> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<String>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(expr.to_owned());
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let text = std::fs::read_to_string(repo("deploy/grafana/dashboards/libriassist.json"))
        .expect("read the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match &variable["query"] {
            serde_json::Value::String(q) => out.push(q.clone()),
            q => out.extend(q["query"].as_str().map(str::to_owned)),
        }
    }
    out
}

/// The origin metric names an expression selects.
fn origin_names(expr: &str) -> BTreeSet<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("libriassist_") {
        let preceded = rest[..at].chars().next_back().is_some_and(is_name);
        let tail = &rest[at..];
        let end = tail.find(|c: char| !is_name(c)).unwrap_or(tail.len());
        let name = &tail[..end];
        if !preceded && !name.contains(':') {
            names.insert(name.to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// Family name -> type, from the `# TYPE` lines of a scrape.
fn families(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.trim().to_owned()))
        .collect()
}

/// Names a query may use against this scrape: families, and a histogram's series.
fn exported(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (name, kind) in families(scrape) {
        if kind == "histogram" || kind == "summary" {
            names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
        }
        names.insert(name);
    }
    names
}

/// The dashboard's origin metrics that `scrape` lacks, and the listed families
/// (deploy/prometheus/origin-metrics.txt) missing or of another type.
fn missing(scrape: &str) -> Vec<String> {
    let have = exported(scrape);
    let mut missing: Vec<String> = dashboard_queries()
        .iter()
        .flat_map(|q| origin_names(q))
        .filter(|n| !have.contains(n))
        .map(|n| format!("the dashboard queries {n}"))
        .collect();
    let kinds = families(scrape);
    let listed = std::fs::read_to_string(repo("deploy/prometheus/origin-metrics.txt"))
        .expect("read origin-metrics.txt");
    for line in listed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (name, kind) = line.split_once(' ').expect("NAME TYPE");
        if kinds.get(name).map(String::as_str) != Some(kind.trim()) {
            missing.push(format!(
                "origin-metrics.txt lists {line}, the origin exports {name} as {:?}",
                kinds.get(name)
            ));
        }
    }
    missing
}

async fn scrape(client: &reqwest::Client, origin: &Proc, keep_as: &str) -> String {
    let text = text(client, &format!("{}/metrics", origin.url())).await;
    let dir = target_dir().join("tmp");
    std::fs::create_dir_all(&dir).expect("create target/tmp");
    std::fs::write(dir.join(keep_as), &text).expect("keep the scrape");
    text
}

#[test]
fn the_dashboard_queries_are_read_as_expected() {
    let names = origin_names(
        r#"(libriassist_edge:cache_hits:rate1m or vector(0)) + sum(rate(libriassist_answers_total{cache!="miss"}[$__rate_interval])) / libriassist_ttft_seconds_bucket"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "libriassist_answers_total",
            "libriassist_ttft_seconds_bucket"
        ]
    );
    let all: BTreeSet<String> = dashboard_queries()
        .iter()
        .flat_map(|q| origin_names(q))
        .collect();
    assert!(
        all.len() >= 8,
        "the dashboard's queries were not found: {all:?}"
    );
}

#[tokio::test]
async fn a_live_origin_exports_every_metric_the_dashboard_queries() {
    let sim = sim(free_port(), &pace(20, 200, 5)).await;
    let origin = origin(&[
        ("OLLAMA_URLS", sim.url()),
        ("LIBRIASSIST_CACHE_SEMANTIC", "false".into()),
    ])
    .await;
    let client = reqwest::Client::new();

    // Before any question: families whose series appear only on first use must already be there.
    let fresh = scrape(&client, &origin, "origin-metrics-fresh.prom").await;
    assert_eq!(missing(&fresh), Vec::<String>::new(), "fresh origin");

    for _ in 0..2 {
        let r = ask(&client, &origin.url(), "Quels sont vos horaires ?").await;
        assert_eq!(r.status(), 200);
    }
    let events = stream_events(&client, &origin.url(), "Livrez-vous en Belgique ?").await;
    assert_eq!(last_event(&events), "done", "{events:?}");
    let busy = scrape(&client, &origin, "origin-metrics.prom").await;
    assert_eq!(missing(&busy), Vec::<String>::new(), "after answers");
    for series in [
        r#"libriassist_answers_total{mode="generated",cache="miss"} 2"#,
        r#"libriassist_answers_total{mode="generated",cache="exact"} 1"#,
    ] {
        let (name, value) = series.rsplit_once(' ').unwrap();
        let found = busy.lines().any(|l| {
            l.rsplit_once(' ')
                .is_some_and(|(n, v)| same_series(n, name) && v == value)
        });
        assert!(found, "{series} not in the scrape:\n{busy}");
    }
}

/// Whether two series names are equal up to the order of their labels.
fn same_series(a: &str, b: &str) -> bool {
    let split = |s: &str| {
        let (name, labels) = s.split_once('{').unwrap_or((s, ""));
        let labels: BTreeSet<String> = labels
            .trim_end_matches('}')
            .split(',')
            .map(str::to_owned)
            .collect();
        (name.to_owned(), labels)
    };
    split(a) == split(b)
}
