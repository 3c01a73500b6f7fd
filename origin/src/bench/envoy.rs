//! Envoy configurations of the benchmark.
//!
//! The LibriAssist edge is `envoy/envoy.template.yaml` itself, the file the tests render and
//! operators deploy, with three changes made here and checked (each fails loudly if the
//! template no longer has the shape it expects): every origin added to the origin and cache
//! clusters, health-check and outlier-detection periods scaled with the run, and a filter
//! configuration that trusts the bench as a proxy so each simulated customer, named by its
//! `X-Forwarded-For`, gets its own rate limit as in the field.
//!
//! The plain balancers are Envoy alone in front of the simulators, as an operator would set it
//! up without LibriAssist: least_request or round_robin, an active health check on Ollama's
//! `/api/version`, Envoy's default outlier detection and the same connect-failure retries.

use super::field::Scale;

/// Replaces every `${NAME}` in `template`.
///
/// # Errors
/// A variable `vars` does not define, or an unterminated `${`.
pub fn render(template: &str, vars: &[(&str, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or("unterminated ${ in the Envoy template")?;
        let name = &after[..end];
        let value = vars.iter().find(|(k, _)| *k == name).ok_or_else(|| {
            format!("the Envoy template uses ${{{name}}}, which the bench does not know")
        })?;
        out.push_str(&value.1);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Adds `extra_ports` as endpoints next to every endpoint on `port` (the origin and cache
/// clusters both point at the first origin after rendering).
///
/// # Errors
/// When no endpoint on `port` is found.
pub fn add_endpoints(yaml: &str, port: u16, extra_ports: &[u16]) -> Result<String, String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let needle = format!("port_value: {port} }}");
    let mut out = Vec::with_capacity(lines.len() + 8 * extra_ports.len());
    let mut added = 0;
    let mut i = 0;
    while i < lines.len() {
        out.push(lines[i].to_owned());
        if lines[i].trim_start() == "- endpoint:" {
            // The endpoint block: this line and the following, more indented ones.
            let indent = lines[i].len() - lines[i].trim_start().len();
            let mut j = i + 1;
            while j < lines.len()
                && (lines[j].len() - lines[j].trim_start().len()) > indent
                && !lines[j].trim().is_empty()
            {
                j += 1;
            }
            let block = &lines[i..j];
            out.extend(block[1..].iter().map(|l| (*l).to_owned()));
            if block.iter().any(|l| l.trim_end().ends_with(&needle)) {
                for extra in extra_ports {
                    let replacement = format!("port_value: {extra} }}");
                    out.extend(block.iter().map(|l| l.replace(&needle, &replacement)));
                    added += 1;
                }
            }
            i = j;
            continue;
        }
        i += 1;
    }
    if !extra_ports.is_empty() && added == 0 {
        return Err(format!(
            "no endpoint on port {port} in the rendered Envoy configuration"
        ));
    }
    Ok(out.join("\n") + "\n")
}

/// Scales the periods of health checks and outlier detection (`key: Ns`) so that detecting a
/// dead origin takes as long, relative to a scaled answer, as in the field.
///
/// # Errors
/// When none of the keys is found.
pub fn scale_periods(yaml: &str, scale: Scale) -> Result<String, String> {
    const KEYS: [&str; 4] = [
        "interval",
        "no_traffic_interval",
        "base_ejection_time",
        "timeout",
    ];
    let mut scaled = 0;
    let lines: Vec<String> = yaml
        .lines()
        .map(|line| {
            let start = line.trim_start();
            // A list item (`- timeout: 1s`) keeps its dash.
            let trimmed = start.strip_prefix("- ").unwrap_or(start);
            let indent = &line[..line.len() - trimmed.len()];
            for key in KEYS {
                let Some(value) = trimmed.strip_prefix(key).and_then(|r| r.strip_prefix(": "))
                else {
                    continue;
                };
                let Some(secs) = value.strip_suffix('s').and_then(|v| v.parse::<f64>().ok()) else {
                    continue;
                };
                // Route timeouts (0s: none; 120s, 15s) and the stream idle timeout are deadlines
                // for answers, not detection periods: only health-check-sized values move.
                if key == "timeout" && !(0.0..=1.0).contains(&secs) || secs == 0.0 {
                    continue;
                }
                scaled += 1;
                let run = (secs * scale.factor()).max(0.05);
                return format!("{indent}{key}: {run:.3}s");
            }
            line.to_owned()
        })
        .collect();
    if scaled == 0 {
        return Err("no health-check period found to scale in the Envoy configuration".into());
    }
    Ok(lines.join("\n") + "\n")
}

/// The edge filter's configuration for a bench run: rate limits as the defaults but per
/// customer (the bench is a trusted proxy and names each customer in `X-Forwarded-For`), the
/// rates scaled with time, and the L1 lifetime scaled (whole seconds, at least one).
pub fn filter_config(scale: Scale) -> String {
    let rate = |per_field_second: f64| per_field_second / scale.factor();
    let l1 = l1_ttl_seconds(scale);
    serde_json::json!({
        "cache": { "cluster": "libriassist_cache", "timeout_ms": 100, "l1_ttl_seconds": l1 },
        "rate_limits": {
            "chat": { "per_second": rate(1.0), "burst": 10 },
            "stream": { "per_second": rate(1.0), "burst": 10 },
            "other": { "per_second": rate(20.0), "burst": 100 },
        },
        "max_concurrent_streams": 4,
        "trusted_proxies": ["127.0.0.1/32"],
    })
    .to_string()
}

/// The edge's L1 lifetime in run seconds: the field's 5 s scaled, whole seconds, at least one.
pub fn l1_ttl_seconds(scale: Scale) -> u64 {
    (5.0 * scale.factor()).round().max(1.0) as u64
}

/// Envoy's balancing policies the comparison runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    LeastRequest,
    RoundRobin,
}

impl Policy {
    pub fn envoy_name(self) -> &'static str {
        match self {
            Policy::LeastRequest => "LEAST_REQUEST",
            Policy::RoundRobin => "ROUND_ROBIN",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Policy::LeastRequest => "Envoy least_request",
            Policy::RoundRobin => "Envoy round_robin",
        }
    }
}

/// Envoy alone in front of the simulators.
pub fn plain_balancer(
    listen: u16,
    admin: u16,
    sims: &[u16],
    policy: Policy,
    scale: Scale,
) -> String {
    let endpoints: String = sims
        .iter()
        .map(|p| format!("        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }} }}\n"))
        .collect();
    let period = |field_secs: f64| format!("{:.3}s", (field_secs * scale.factor()).max(0.05));
    format!(
        r#"# Generated by `libriassist bench compare`: Envoy balancing straight to the simulators.
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: plain
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listen} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: plain
          stream_idle_timeout: 300s
          route_config:
            virtual_hosts:
            - name: ollama
              domains: ["*"]
              routes:
              - match: {{ prefix: / }}
                route:
                  cluster: ollama
                  timeout: 0s
                  retry_policy:
                    retry_on: connect-failure,refused-stream
                    num_retries: 2
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: ollama
    type: STATIC
    connect_timeout: 1s
    lb_policy: {policy}
    load_assignment:
      cluster_name: ollama
      endpoints:
      - lb_endpoints:
{endpoints}    health_checks:
    - timeout: {hc_timeout}
      interval: {interval}
      no_traffic_interval: {interval}
      unhealthy_threshold: 2
      healthy_threshold: 1
      http_health_check: {{ path: /api/version }}
    outlier_detection:
      interval: {outlier_interval}
      base_ejection_time: {ejection}
"#,
        policy = policy.envoy_name(),
        hc_timeout = period(1.0),
        interval = period(2.0),
        outlier_interval = period(10.0),
        ejection = period(30.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTERS: &str = "  clusters:
  - name: libriassist_origin
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: 8000 }
    health_checks:
    - timeout: 1s
      interval: 2s
      no_traffic_interval: 2s
    outlier_detection:
      interval: 5s
      base_ejection_time: 10s
  - name: libriassist_cache
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: 8000 }
";

    #[test]
    fn every_origin_joins_both_clusters() {
        let out = add_endpoints(CLUSTERS, 8000, &[8001]).unwrap();
        assert_eq!(out.matches("port_value: 8001 }").count(), 2, "{out}");
        assert_eq!(out.matches("port_value: 8000 }").count(), 2);
        assert_eq!(out.matches("- endpoint:").count(), 4);
        assert!(add_endpoints(CLUSTERS, 9999, &[8001]).is_err());
    }

    #[test]
    fn detection_periods_scale_and_answer_deadlines_do_not() {
        let yaml = format!("{CLUSTERS}    route: {{ timeout: 0s }}\n      timeout: 120s\n      stream_idle_timeout: 300s\n");
        let out = scale_periods(&yaml, Scale::new(0.1).unwrap()).unwrap();
        assert!(out.contains("      interval: 0.200s"), "{out}");
        assert!(out.contains("no_traffic_interval: 0.200s"));
        assert!(out.contains("base_ejection_time: 1.000s"));
        assert!(out.contains("- timeout: 0.100s"));
        assert!(out.contains("timeout: 120s") && out.contains("stream_idle_timeout: 300s"));
    }

    #[test]
    fn render_refuses_unknown_variables() {
        assert_eq!(render("a ${X} b", &[("X", "1".into())]).unwrap(), "a 1 b");
        assert!(render("a ${Y} b", &[("X", "1".into())]).is_err());
        assert!(render("a ${X b", &[("X", "1".into())]).is_err());
    }

    #[test]
    fn filter_config_is_per_customer_and_scaled() {
        let v: serde_json::Value =
            serde_json::from_str(&filter_config(Scale::new(0.1).unwrap())).unwrap();
        assert_eq!(v["trusted_proxies"][0], "127.0.0.1/32");
        assert!((v["rate_limits"]["chat"]["per_second"].as_f64().unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(v["cache"]["l1_ttl_seconds"], 1);
    }

    #[test]
    fn plain_balancer_lists_every_simulator() {
        let yaml = plain_balancer(
            1,
            2,
            &[11, 12, 13],
            Policy::RoundRobin,
            Scale::new(1.0).unwrap(),
        );
        assert!(yaml.contains("lb_policy: ROUND_ROBIN"));
        for port in [11, 12, 13] {
            assert!(yaml.contains(&format!("port_value: {port} }}")), "{yaml}");
        }
    }
}
