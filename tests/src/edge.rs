//! A real Envoy for the edge tests: finding the binary, rendering `envoy/envoy.template.yaml`
//! with free ports, and running Envoy as a child of the test process that is ended (by PID)
//! when dropped. Envoy is started and stopped inside the test process on purpose: a background
//! Envoy left by a shell step can be killed when that step returns in some sandboxes.

use crate::process::free_port;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Envoy binary: `$LIBRIASSIST_ENVOY`, else the one `scripts/setup.sh step envoy` links
/// into `${LIBRIASSIST_CACHE:-$HOME/.cache/libriassist}/envoy`, else `envoy` on PATH.
pub fn envoy_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LIBRIASSIST_ENVOY").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let cache = std::env::var_os("LIBRIASSIST_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/libriassist")));
    if let Some(p) = cache.map(|c| c.join("envoy")).filter(|p| p.is_file()) {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("envoy"))
            .find(|p| p.is_file())
    })
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The Envoy binary, or `None` after printing why the test is skipped. Under CI a missing
/// Envoy fails the test instead: CI must never pass by skipping.
pub fn envoy_or_skip(test: &str) -> Option<PathBuf> {
    match envoy_binary() {
        Some(p) => Some(p),
        None if under_ci() => {
            panic!("{test}: Envoy is not installed (CI is set); run `scripts/setup.sh step envoy`")
        }
        None => {
            eprintln!("SKIPPED {test}: Envoy is not installed; run `scripts/setup.sh step envoy` to include it");
            None
        }
    }
}

/// Replaces every `${NAME}` in `template`.
///
/// # Panics
/// On a variable `vars` does not define, so a template change cannot go unnoticed.
pub fn render(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').expect("unterminated ${ in the template");
        let name = &after[..end];
        let value = vars
            .iter()
            .find(|(k, _)| *k == name)
            .unwrap_or_else(|| panic!("template variable {name} has no value"));
        out.push_str(&value.1);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

pub fn template() -> String {
    std::fs::read_to_string(repo_root().join("envoy/envoy.template.yaml"))
        .expect("read envoy/envoy.template.yaml")
}

/// The values `envoy/envoy.yaml` is rendered with.
pub fn local_values() -> Vec<(&'static str, String)> {
    vec![
        ("LISTEN_PORT", "8080".into()),
        ("ADMIN_PORT", "9901".into()),
        ("ORIGIN_PORT", "8000".into()),
        ("CACHE_PORT", "8000".into()),
        (
            "WASM_PATH",
            "target/wasm32-wasip1/release/libriassist_filter.wasm".into(),
        ),
        ("FILTER_CONFIG", LOCAL_FILTER_CONFIG.into()),
    ]
}

/// The filter configuration of `envoy/envoy.yaml`: the defaults, spelled out.
pub const LOCAL_FILTER_CONFIG: &str = r#"{"cache":{"cluster":"libriassist_cache","timeout_ms":100,"l1_ttl_seconds":5},"rate_limits":{"chat":{"per_second":1,"burst":10},"stream":{"per_second":1,"burst":10},"other":{"per_second":20,"burst":100}},"max_concurrent_streams":4,"peer_from_forwarded_for":true}"#;

/// `envoy --mode validate -c config`.
pub fn validate(envoy: &Path, config: &Path) -> Output {
    Command::new(envoy)
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-l",
            "error",
            "-c",
        ])
        .arg(config)
        .current_dir(repo_root())
        .output()
        .expect("run envoy --mode validate")
}

/// Where a rendered Envoy points.
pub struct EdgeSetup {
    pub origin: SocketAddr,
    pub cache: SocketAddr,
    pub wasm: PathBuf,
    pub filter_config: String,
}

/// A running Envoy, ended when dropped.
pub struct Envoy {
    child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    dir: PathBuf,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Envoy {
    /// Renders the template for `setup` on free ports, starts Envoy (two workers, so shared
    /// data really is shared) and waits until its admin API says it is live.
    pub async fn start(binary: &Path, setup: &EdgeSetup) -> Envoy {
        let (listen, admin) = (free_port(), free_port());
        let yaml = render(
            &template(),
            &[
                ("LISTEN_PORT", listen.port().to_string()),
                ("ADMIN_PORT", admin.port().to_string()),
                ("ORIGIN_PORT", setup.origin.port().to_string()),
                ("CACHE_PORT", setup.cache.port().to_string()),
                ("WASM_PATH", setup.wasm.display().to_string()),
                ("FILTER_CONFIG", setup.filter_config.clone()),
            ],
        );
        let dir = std::env::temp_dir().join(format!(
            "libriassist-edge-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the Envoy test directory");
        let config = dir.join("envoy.yaml");
        std::fs::write(&config, yaml).expect("write the Envoy config");
        let log = std::fs::File::create(dir.join("envoy.log")).expect("create the Envoy log");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .args([
                "--concurrency",
                "2",
                "--disable-hot-restart",
                "-l",
                "warning",
            ])
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("start envoy");
        let mut envoy = Envoy {
            child,
            listen,
            admin,
            dir,
        };
        envoy.wait_live().await;
        envoy
    }

    async fn wait_live(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "Envoy exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            let ready = client
                .get(format!("http://{}/ready", self.admin))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Envoy was not ready in 20 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// Envoy's own output: warnings and the access log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// `/stats/prometheus` of the admin API.
    pub async fn prometheus(&self) -> String {
        reqwest::get(format!("http://{}/stats/prometheus", self.admin))
            .await
            .expect("admin stats")
            .text()
            .await
            .unwrap_or_default()
    }

    /// The value of one of the filter's counters once it reaches `at_least`, or as it is after
    /// 5 s: each worker adds its counts to Envoy's on its 1 s tick.
    pub async fn counter_reaching(&self, name: &str, at_least: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let value = self.metric(name).await.unwrap_or(0);
            if value >= at_least || Instant::now() > deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of one Prometheus sample (`name{}` or `name{...}`), summed over its labels.
    async fn metric(&self, name: &str) -> Option<u64> {
        let text = self.prometheus().await;
        let mut found = None;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            if series == name || series.starts_with(&format!("{name}{{")) {
                *found.get_or_insert(0) += value.parse::<f64>().map(|v| v as u64).unwrap_or(0);
            }
        }
        found
    }

    /// Waits until Envoy's active health check sees the origin healthy.
    pub async fn wait_origin_healthy(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let clusters = client
                .get(format!("http://{}/clusters", self.admin))
                .send()
                .await
                .ok();
            let text = match clusters {
                Some(r) => r.text().await.unwrap_or_default(),
                None => String::new(),
            };
            if text.lines().any(|l| {
                l.starts_with("libriassist_origin::") && l.ends_with("::health_flags::healthy")
            }) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the origin never became healthy in Envoy:\n{text}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A private Redis on a free loopback port, without persistence, ended when dropped.
pub async fn redis() -> crate::process::Proc {
    let addr = free_port();
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &addr.port().to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server (scripts/setup.sh step redis)");
    let proc = crate::process::Proc::from_child(child, addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proc
}
