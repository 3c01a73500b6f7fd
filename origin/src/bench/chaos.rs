//! Faults injected while customers keep asking, on the field's timeline (scaled with the run):
//! a backend killed every 20 s and restarted 10 s later; a backend that accepts requests and
//! never answers for 40 s; Redis killed and restarted empty 10 s later; an origin stopped with
//! SIGTERM (it drains) and started again. Each fault is timestamped, and the time until the
//! system noticed it and until it recovered is measured from outside, the way an operator
//! would watch it: the origins' `/api/v1/backends`, Envoy's `/clusters`, and the answers
//! customers got.

use super::procs::Proc;
use super::stack::cluster_host_healthy;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChaosKind {
    /// Kill one simulator (SIGKILL) every 20 s and restart it 10 s later, in turn.
    KillBackend,
    /// Make one simulator accept requests and never answer for 40 s (POST /sim/faults).
    HangBackend,
    /// Kill Redis and restart it, empty, 10 s later.
    RestartRedis,
    /// Stop one origin with SIGTERM (graceful drain) and start it again.
    RestartOrigin,
}

impl ChaosKind {
    pub const ALL: [ChaosKind; 4] = [
        ChaosKind::KillBackend,
        ChaosKind::HangBackend,
        ChaosKind::RestartRedis,
        ChaosKind::RestartOrigin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ChaosKind::KillBackend => "kill-backend",
            ChaosKind::HangBackend => "hang-backend",
            ChaosKind::RestartRedis => "restart-redis",
            ChaosKind::RestartOrigin => "restart-origin",
        }
    }

    /// Whether the fault exists without LibriAssist (plain balancers have no Redis or origin).
    pub fn applies_to_plain_balancers(self) -> bool {
        matches!(self, ChaosKind::KillBackend | ChaosKind::HangBackend)
    }
}

/// One fault and what was seen of it, in run seconds since the step's start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub what: String,
    pub at_s: f64,
    /// When the fault was lifted (backend restarted, hang switched off, process started).
    pub lifted_at_s: Option<f64>,
    /// Whether detection and recovery were watched (some faults are judged from the answers).
    pub watched: bool,
    /// From the fault until an observer first reported the component unhealthy.
    pub detected_after_s: Option<f64>,
    /// From the lift until every observer reported the component healthy again.
    pub recovered_after_s: Option<f64>,
    /// From the fault until every observer took the component back while the fault was still
    /// on (a health check that passes on a backend that cannot generate).
    pub readmitted_during_fault_after_s: Option<f64>,
}

/// Who reports a backend's health.
#[derive(Debug, Clone)]
pub enum Observer {
    /// Every origin's `/api/v1/backends`.
    Origins(Vec<String>),
    /// Envoy's `/clusters` for a cluster (the plain balancers).
    Envoy { admin: String, cluster: String },
}

/// The parts of a stack a fault acts on.
pub struct Targets<'a> {
    pub sims: &'a mut [Proc],
    pub redis: Option<&'a mut Proc>,
    pub origins: &'a mut [Proc],
    /// Envoy's admin URL when an edge runs in front of the origins.
    pub edge_admin: Option<String>,
    pub backend_observer: Observer,
}

/// The field timeline, in field seconds from the window's start.
const FIRST_FAULT_S: f64 = 10.0;
const KILL_EVERY_S: f64 = 20.0;
const DOWN_FOR_S: f64 = 10.0;
const HANG_FOR_S: f64 = 40.0;

/// Runs the fault schedule inside the window `(start, end)` (run seconds since `epoch`) and
/// returns what happened. Bounded: it ends by the window's end plus one recovery limit.
pub async fn inject(
    kind: ChaosKind,
    t: Targets<'_>,
    window: (f64, f64),
    epoch: Instant,
    scale: f64,
) -> Vec<FaultRecord> {
    let at = |field_s: f64| window.0 + field_s * scale;
    let limit = Duration::from_secs_f64((60.0 * scale).max(2.0));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap_or_default();
    let mut faults = Vec::new();
    match kind {
        ChaosKind::KillBackend => {
            let mut n = 0;
            while at(FIRST_FAULT_S + n as f64 * KILL_EVERY_S + DOWN_FOR_S) < window.1
                && !t.sims.is_empty()
            {
                let i = n % t.sims.len();
                sleep_until(epoch, at(FIRST_FAULT_S + n as f64 * KILL_EVERY_S)).await;
                let url = t.sims[i].url();
                let port = t.sims[i].addr().port();
                let mut f = FaultRecord {
                    what: format!("kill {}", t.sims[i].name()),
                    at_s: now(epoch),
                    watched: true,
                    ..FaultRecord::default()
                };
                t.sims[i].kill().await;
                let down_until = at(FIRST_FAULT_S + n as f64 * KILL_EVERY_S + DOWN_FOR_S);
                let left = Duration::from_secs_f64((down_until - now(epoch)).max(0.0));
                f.detected_after_s =
                    watch_backend(&client, &t.backend_observer, &url, port, false, left)
                        .await
                        .map(|d| d.as_secs_f64());
                sleep_until(epoch, down_until).await;
                if let Err(e) = t.sims[i].restart().await {
                    f.what.push_str(&format!(" (restart failed: {e})"));
                } else {
                    f.lifted_at_s = Some(now(epoch));
                    f.recovered_after_s =
                        watch_backend(&client, &t.backend_observer, &url, port, true, limit)
                            .await
                            .map(|d| d.as_secs_f64());
                }
                faults.push(f);
                n += 1;
            }
        }
        ChaosKind::HangBackend => {
            let Some(sim) = t.sims.first() else {
                return faults;
            };
            sleep_until(epoch, at(FIRST_FAULT_S)).await;
            let (url, port) = (sim.url(), sim.addr().port());
            let mut f = FaultRecord {
                what: format!("hang {} for {HANG_FOR_S} s (field)", sim.name()),
                at_s: now(epoch),
                watched: true,
                ..FaultRecord::default()
            };
            let set = |hang: bool| {
                client
                    .post(format!("{url}/sim/faults"))
                    .json(&serde_json::json!({ "hang": hang }))
                    .send()
            };
            if set(true).await.is_err() {
                f.what.push_str(" (could not set the fault)");
            }
            let until = at(FIRST_FAULT_S + HANG_FOR_S).min(window.1);
            let left = Duration::from_secs_f64((until - now(epoch)).max(0.0));
            f.detected_after_s =
                watch_backend(&client, &t.backend_observer, &url, port, false, left)
                    .await
                    .map(|d| d.as_secs_f64());
            if f.detected_after_s.is_some() {
                let left = Duration::from_secs_f64((until - now(epoch)).max(0.0));
                f.readmitted_during_fault_after_s =
                    watch_backend(&client, &t.backend_observer, &url, port, true, left)
                        .await
                        .map(|_| now(epoch) - f.at_s);
            }
            sleep_until(epoch, until).await;
            let _ = set(false).await;
            f.lifted_at_s = Some(now(epoch));
            f.recovered_after_s =
                watch_backend(&client, &t.backend_observer, &url, port, true, limit)
                    .await
                    .map(|d| d.as_secs_f64());
            faults.push(f);
        }
        ChaosKind::RestartRedis => {
            let Some(redis) = t.redis else { return faults };
            sleep_until(epoch, at(FIRST_FAULT_S)).await;
            let mut f = FaultRecord {
                what: "kill redis, restart it empty".into(),
                at_s: now(epoch),
                ..FaultRecord::default()
            };
            redis.kill().await;
            sleep_until(epoch, at(FIRST_FAULT_S + DOWN_FOR_S).min(window.1)).await;
            match redis.restart().await {
                Ok(()) => f.lifted_at_s = Some(now(epoch)),
                Err(e) => f.what.push_str(&format!(" (restart failed: {e})")),
            }
            // Recovery is read from the answers afterwards (the first cache hit after the restart).
            faults.push(f);
        }
        ChaosKind::RestartOrigin => {
            let Some(origin) = t.origins.last_mut() else {
                return faults;
            };
            sleep_until(epoch, at(FIRST_FAULT_S)).await;
            let port = origin.addr().port();
            let name = origin.name().to_owned();
            let mut f = FaultRecord {
                at_s: now(epoch),
                watched: t.edge_admin.is_some(),
                ..FaultRecord::default()
            };
            // The origin's drain deadline is 30 s (field) before it ends the streams left.
            let grace = Duration::from_secs_f64((35.0 * scale).max(1.0));
            // Whether Envoy stops sending it work before it exits: its /readyz fails while
            // it drains, which Envoy's health check should see.
            let observer = t.edge_admin.as_ref().map(|admin| Observer::Envoy {
                admin: admin.clone(),
                cluster: "libriassist_origin".into(),
            });
            f.detected_after_s = {
                let noticed = async {
                    match &observer {
                        Some(o) => watch_backend(&client, o, "", port, false, grace).await,
                        None => std::future::pending().await,
                    }
                };
                let terminated = origin.terminate(grace);
                tokio::pin!(noticed, terminated);
                tokio::select! {
                    seen = &mut noticed => {
                        terminated.await;
                        seen.map(|d| d.as_secs_f64())
                    }
                    () = &mut terminated => None,
                }
            };
            f.what = format!(
                "SIGTERM {name}: drained and exited in {:.2} s, then started again",
                now(epoch) - f.at_s
            );
            match origin.restart().await {
                Ok(()) => {
                    f.lifted_at_s = Some(now(epoch));
                    if let Some(admin) = &t.edge_admin {
                        let observer = Observer::Envoy {
                            admin: admin.clone(),
                            cluster: "libriassist_origin".into(),
                        };
                        f.recovered_after_s =
                            watch_backend(&client, &observer, "", port, true, limit)
                                .await
                                .map(|d| d.as_secs_f64());
                    }
                }
                Err(e) => f.what.push_str(&format!(" (restart failed: {e})")),
            }
            faults.push(f);
        }
    }
    faults
}

fn now(epoch: Instant) -> f64 {
    epoch.elapsed().as_secs_f64()
}

async fn sleep_until(epoch: Instant, at_s: f64) {
    tokio::time::sleep_until((epoch + Duration::from_secs_f64(at_s.max(0.0))).into()).await;
}

/// Polls, for up to `limit`, until the backend is seen unhealthy by at least one observer
/// (`healthy == false`: a flapping backend counts as noticed) or healthy by every observer
/// (`healthy == true`); returns how long it took, `None` if it never was. A zero limit checks
/// once.
async fn watch_backend(
    client: &reqwest::Client,
    observer: &Observer,
    url: &str,
    port: u16,
    healthy: bool,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    loop {
        let seen = match observer {
            Observer::Origins(origins) => {
                let reads =
                    futures::future::join_all(origins.iter().map(|o| origin_sees(client, o, url)))
                        .await;
                if healthy {
                    !reads.is_empty() && reads.iter().all(|r| *r == Some(true))
                } else {
                    reads.contains(&Some(false))
                }
            }
            Observer::Envoy { admin, cluster } => {
                let text = match client.get(format!("{admin}/clusters")).send().await {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                !text.is_empty() && cluster_host_healthy(&text, cluster, port) == healthy
            }
        };
        if seen {
            return Some(started.elapsed());
        }
        if started.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the origin at `origin` reports the backend `url` healthy.
async fn origin_sees(client: &reqwest::Client, origin: &str, url: &str) -> Option<bool> {
    let v: serde_json::Value = client
        .get(format!("{origin}/api/v1/backends"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["backends"].as_array()?.iter().find(|b| {
        b["url"]
            .as_str()
            .is_some_and(|u| u.trim_end_matches('/') == url.trim_end_matches('/'))
    })?["healthy"]
        .as_bool()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_command_line() {
        for kind in ChaosKind::ALL {
            let parsed = ChaosKind::from_str(kind.name(), false);
            assert_eq!(parsed, Ok(kind));
        }
        assert!(ChaosKind::KillBackend.applies_to_plain_balancers());
        assert!(!ChaosKind::RestartRedis.applies_to_plain_balancers());
    }
}
