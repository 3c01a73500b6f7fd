//! The stack under test, started by the bench as its own child processes: simulators
//! calibrated like the field, Redis, the origins (each configured from the same typed
//! `Config` that `libriassist serve` reads, written as TOML) and Envoy with the edge filter;
//! or, for the comparison, Envoy alone in front of the same simulators.
//!
//! The origins' timeouts and health periods are scaled with the run (see [`super::field`]),
//! everything else keeps the defaults an operator gets, so the numbers describe the shipped
//! configuration.

use super::args::StackArgs;
use super::envoy::{self, Policy};
use super::field::{Scale, SimTiming};
use super::procs::{free_port, Proc, Ready, Spec};
use crate::config::Config;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The binaries and files a stack is built from.
#[derive(Debug, Clone)]
pub struct Tools {
    pub bin: PathBuf,
    pub envoy: Option<PathBuf>,
    pub wasm: PathBuf,
    pub template: PathBuf,
    pub redis_server: PathBuf,
    pub index: Option<PathBuf>,
}

impl Tools {
    /// Finds every tool; a missing one is reported when a scenario needs it.
    ///
    /// # Errors
    /// When the running program's path is unknown and `--bin` was not given.
    pub fn discover(args: &StackArgs) -> Result<Tools, String> {
        let bin = match &args.bin {
            Some(b) => b.clone(),
            None => std::env::current_exe()
                .map_err(|e| format!("cannot find the libriassist binary ({e}); pass --bin"))?,
        };
        let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
        Ok(Tools {
            bin,
            envoy: args.envoy.clone().or_else(envoy_binary),
            wasm: absolute(&args.wasm),
            template: absolute(&args.envoy_template),
            redis_server: args.redis_server.clone(),
            index: args.index.clone(),
        })
    }

    fn envoy(&self) -> Result<&Path, String> {
        self.envoy
            .as_deref()
            .ok_or_else(|| "Envoy not found: run `scripts/setup.sh run` or pass --envoy".to_owned())
    }
}

/// `$LIBRIASSIST_ENVOY`, else the one `scripts/setup.sh` links into the cache, else `envoy` on PATH.
fn envoy_binary() -> Option<PathBuf> {
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

/// What to start.
#[derive(Debug, Clone)]
pub struct StackPlan {
    pub sims: usize,
    /// Slots the simulators really have.
    pub sim_slots: usize,
    /// Slots the origins believe each backend has.
    pub origin_slots: usize,
    pub timing: SimTiming,
    pub origins: usize,
    pub caches: bool,
    pub redis: bool,
    pub edge: bool,
    pub scale: Scale,
    /// Field wait before a customer gives up, ms: the origins' admission queue timeout.
    pub give_up_ms: u64,
}

/// A running stack; dropping it kills every process.
#[derive(Debug)]
pub struct Stack {
    pub dir: PathBuf,
    pub sims: Vec<Proc>,
    pub redis: Option<Proc>,
    pub origins: Vec<Proc>,
    pub envoy: Option<Proc>,
    pub envoy_admin: Option<String>,
    /// Origins whose semantic cache loaded its embedding model before the run started.
    pub semantic_ready: usize,
    pub plan: StackPlan,
}

static RUNS: AtomicU32 = AtomicU32::new(0);

/// A fresh directory for one stack's configurations and logs.
///
/// # Errors
/// When it cannot be created.
pub fn run_dir(label: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "libriassist-bench-{}-{}-{label}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

impl Stack {
    /// Starts the stack and waits until it can answer: every origin ready, Envoy seeing every
    /// origin healthy, and (when caches are on) the semantic cache loaded, up to a minute.
    ///
    /// # Errors
    /// A process that cannot start or does not become ready; the message carries its log.
    pub async fn start(tools: &Tools, plan: StackPlan, label: &str) -> Result<Stack, String> {
        let dir = run_dir(label)?;
        let mut stack = Stack {
            dir,
            sims: Vec::new(),
            redis: None,
            origins: Vec::new(),
            envoy: None,
            envoy_admin: None,
            semantic_ready: 0,
            plan,
        };
        for i in 0..stack.plan.sims {
            let sim = Proc::start(sim_spec(tools, &stack.dir, i, &stack.plan)?).await?;
            stack.sims.push(sim);
        }
        if stack.plan.redis {
            let addr = free_port()?;
            let spec = Spec {
                name: "redis".into(),
                program: tools.redis_server.clone(),
                args: [
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    &addr.port().to_string(),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ]
                .map(String::from)
                .to_vec(),
                env: Vec::new(),
                addr,
                ready: Ready::Tcp,
                log: stack.dir.join("redis.log"),
                ready_within: Duration::from_secs(10),
            };
            stack.redis = Some(Proc::start(spec).await?);
        }
        for i in 0..stack.plan.origins {
            let spec = stack.origin_spec(tools, i)?;
            stack.origins.push(Proc::start(spec).await?);
        }
        if stack.plan.caches {
            stack.semantic_ready = wait_semantic(&stack.origins, Duration::from_secs(60)).await;
        }
        if stack.plan.edge {
            stack.start_edge(tools).await?;
        }
        Ok(stack)
    }

    fn origin_spec(&self, tools: &Tools, i: usize) -> Result<Spec, String> {
        let addr = free_port()?;
        let config = origin_config(
            &self.plan,
            addr,
            self.sim_urls(),
            self.redis
                .as_ref()
                .map(|r| format!("redis://{}/0", r.addr())),
            tools.index.clone(),
        );
        let path = self.dir.join(format!("origin-{i}.toml"));
        std::fs::write(&path, config.to_toml())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Spec {
            name: format!("origin-{i}"),
            program: tools.bin.clone(),
            args: vec![
                "serve".into(),
                "--config".into(),
                path.display().to_string(),
            ],
            env: vec![("RUST_LOG".into(), "warn,libriassist::cache=info".into())],
            addr,
            ready: Ready::Http {
                url: format!("http://{addr}/readyz"),
                status: 200,
            },
            log: self.dir.join(format!("origin-{i}.log")),
            ready_within: Duration::from_secs(60),
        })
    }

    async fn start_edge(&mut self, tools: &Tools) -> Result<(), String> {
        let envoy_bin = tools.envoy()?;
        if !tools.wasm.is_file() {
            return Err(format!(
                "the edge filter {} is missing: cargo build -p libriassist-filter --target wasm32-wasip1 --release",
                tools.wasm.display()
            ));
        }
        let template = std::fs::read_to_string(&tools.template)
            .map_err(|e| format!("cannot read {}: {e}", tools.template.display()))?;
        let (listen, admin) = (free_port()?, free_port()?);
        let first = self
            .origins
            .first()
            .ok_or("the edge needs at least one origin")?
            .addr()
            .port();
        let rendered = envoy::render(
            &template,
            &[
                ("LISTEN_PORT", listen.port().to_string()),
                ("ADMIN_PORT", admin.port().to_string()),
                ("ORIGIN_PORT", first.to_string()),
                ("CACHE_PORT", first.to_string()),
                ("WASM_PATH", tools.wasm.display().to_string()),
                ("FILTER_CONFIG", envoy::filter_config(self.plan.scale)),
            ],
        )?;
        let others: Vec<u16> = self
            .origins
            .iter()
            .skip(1)
            .map(|o| o.addr().port())
            .collect();
        let yaml = envoy::scale_periods(
            &envoy::add_endpoints(&rendered, first, &others)?,
            self.plan.scale,
        )?;
        let path = self.dir.join("envoy-edge.yaml");
        std::fs::write(&path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let admin_url = format!("http://{admin}");
        let proc = Proc::start(envoy_spec(
            envoy_bin,
            &path,
            listen,
            &admin_url,
            self.dir.join("envoy-edge.log"),
            "envoy-edge",
        ))
        .await?;
        let ports: Vec<u16> = self.origins.iter().map(|o| o.addr().port()).collect();
        wait_cluster_healthy(
            &admin_url,
            "libriassist_origin",
            &ports,
            Duration::from_secs(30),
        )
        .await?;
        self.envoy = Some(proc);
        self.envoy_admin = Some(admin_url);
        Ok(())
    }

    pub fn sim_urls(&self) -> Vec<String> {
        self.sims.iter().map(Proc::url).collect()
    }

    pub fn origin_urls(&self) -> Vec<String> {
        self.origins.iter().map(Proc::url).collect()
    }

    /// Where customers connect: Envoy when there is an edge, else the first origin.
    pub fn entry_url(&self) -> Option<String> {
        self.envoy.as_ref().or(self.origins.first()).map(Proc::url)
    }

    /// Kills every process, Envoy first so no new request reaches a dying origin, and removes
    /// the run directory.
    pub async fn stop(mut self) {
        if let Some(e) = self.envoy.as_mut() {
            e.kill().await;
        }
        for o in &mut self.origins {
            o.kill().await;
        }
        if let Some(r) = self.redis.as_mut() {
            r.kill().await;
        }
        for s in &mut self.sims {
            s.kill().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sim_spec(tools: &Tools, dir: &Path, i: usize, plan: &StackPlan) -> Result<Spec, String> {
    let addr = free_port()?;
    let t = plan.timing;
    Ok(Spec {
        name: format!("sim-{i}"),
        program: tools.bin.clone(),
        args: vec![
            "sim".into(),
            "--listen".into(),
            addr.to_string(),
            "--slots".into(),
            plan.sim_slots.to_string(),
            "--ttft-ms".into(),
            t.ttft_ms.to_string(),
            "--tokens-per-sec".into(),
            format!("{:.4}", t.tokens_per_sec),
            "--answer-tokens".into(),
            t.answer_tokens.to_string(),
            "--seed".into(),
            i.to_string(),
        ],
        env: vec![("RUST_LOG".into(), "warn".into())],
        addr,
        ready: Ready::Http {
            url: format!("http://{addr}/api/version"),
            status: 200,
        },
        log: dir.join(format!("sim-{i}.log")),
        ready_within: Duration::from_secs(20),
    })
}

fn envoy_spec(
    bin: &Path,
    config: &Path,
    listen: std::net::SocketAddr,
    admin_url: &str,
    log: PathBuf,
    name: &str,
) -> Spec {
    Spec {
        name: name.into(),
        program: bin.to_owned(),
        args: vec![
            "-c".into(),
            config.display().to_string(),
            "--concurrency".into(),
            "2".into(),
            "--disable-hot-restart".into(),
            "-l".into(),
            "warning".into(),
        ],
        env: Vec::new(),
        addr: listen,
        ready: Ready::Http {
            url: format!("{admin_url}/ready"),
            status: 200,
        },
        log,
        ready_within: Duration::from_secs(30),
    }
}

/// The configuration each origin runs with: the shipped defaults, pointed at this stack, with
/// every period and timeout scaled with the run.
pub fn origin_config(
    plan: &StackPlan,
    listen: std::net::SocketAddr,
    sims: Vec<String>,
    redis: Option<String>,
    index: Option<PathBuf>,
) -> Config {
    let s = plan.scale;
    let mut c = Config::default();
    c.server.listen = listen;
    c.server.drain_timeout_ms = s.ms(c.server.drain_timeout_ms, 100);
    let b = &mut c.backends;
    b.ollama_urls = sims;
    b.model = crate::sim::DEFAULT_MODEL.into();
    b.slots = plan.origin_slots;
    b.queue_timeout_ms = s.ms(plan.give_up_ms, 10);
    b.first_token_timeout_ms = s.ms(b.first_token_timeout_ms, 10);
    b.stall_timeout_ms = s.ms(b.stall_timeout_ms, 10);
    b.idle_token_timeout_ms = s.ms(b.idle_token_timeout_ms, 10);
    b.health_interval_ms = s.ms(b.health_interval_ms, 20);
    b.base_backoff_ms = s.ms(b.base_backoff_ms, 10);
    b.max_backoff_ms = s.ms(b.max_backoff_ms, 10);
    // An answer that reaches the budget is treated as cut and not cached; the simulated model
    // must end its answers itself, as real ones mostly do.
    c.generation.num_predict = c
        .generation
        .num_predict
        .max(plan.timing.answer_tokens.saturating_add(1));
    c.cache.enabled = plan.caches;
    c.cache.semantic.enabled = plan.caches;
    c.cache.redis_url = redis;
    c.index.dir = index;
    c
}

/// Waits until each origin's log says its semantic cache is ready; returns how many did.
async fn wait_semantic(origins: &[Proc], limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let ready = origins
            .iter()
            .filter(|o| {
                std::fs::read_to_string(o.log()).is_ok_and(|l| l.contains("semantic cache ready"))
            })
            .count();
        if ready == origins.len() || Instant::now() >= deadline {
            return ready;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until Envoy's admin `/clusters` shows every port of `cluster` healthy.
///
/// # Errors
/// When that takes longer than `limit`.
pub async fn wait_cluster_healthy(
    admin: &str,
    cluster: &str,
    ports: &[u16],
    limit: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .map_err(|e| e.to_string())?;
    loop {
        let text = match client.get(format!("{admin}/clusters")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if ports
            .iter()
            .all(|p| cluster_host_healthy(&text, cluster, *p))
        {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= limit {
            return Err(format!(
                "Envoy did not see every {cluster} host healthy within {limit:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether Envoy's `/clusters` text lists `cluster`'s host on `port` as healthy.
pub fn cluster_host_healthy(text: &str, cluster: &str, port: u16) -> bool {
    let prefix = format!("{cluster}::127.0.0.1:{port}::health_flags::");
    text.lines().any(|l| {
        l.strip_prefix(&prefix)
            .is_some_and(|flags| flags.trim() == "healthy")
    })
}

/// Envoy alone in front of the simulators, with `policy`.
///
/// # Errors
/// Envoy missing, or not seeing the simulators healthy in time.
pub async fn start_plain(
    tools: &Tools,
    dir: &Path,
    sims: &[Proc],
    policy: Policy,
    scale: Scale,
) -> Result<(Proc, String), String> {
    let envoy_bin = tools.envoy()?;
    let (listen, admin) = (free_port()?, free_port()?);
    let ports: Vec<u16> = sims.iter().map(|s| s.addr().port()).collect();
    let name = match policy {
        Policy::LeastRequest => "envoy-least-request",
        Policy::RoundRobin => "envoy-round-robin",
    };
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        envoy::plain_balancer(listen.port(), admin.port(), &ports, policy, scale),
    )
    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let admin_url = format!("http://{admin}");
    let proc = Proc::start(envoy_spec(
        envoy_bin,
        &path,
        listen,
        &admin_url,
        dir.join(format!("{name}.log")),
        name,
    ))
    .await?;
    wait_cluster_healthy(&admin_url, "ollama", &ports, Duration::from_secs(30)).await?;
    Ok((proc, admin_url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(scale: f64) -> StackPlan {
        StackPlan {
            sims: 3,
            sim_slots: 4,
            origin_slots: 4,
            timing: SimTiming::calibrated(5_000, 200, 200, Scale::new(scale).unwrap()),
            origins: 2,
            caches: true,
            redis: true,
            edge: true,
            scale: Scale::new(scale).unwrap(),
            give_up_ms: 60_000,
        }
    }

    #[test]
    fn origin_config_scales_timeouts_and_keeps_the_rest() {
        let addr = "127.0.0.1:1".parse().unwrap();
        let c = origin_config(
            &plan(0.1),
            addr,
            vec!["http://127.0.0.1:2".into()],
            Some("redis://127.0.0.1:3/0".into()),
            None,
        );
        let d = Config::default();
        assert_eq!(c.backends.queue_timeout_ms, 6_000);
        assert_eq!(
            c.backends.first_token_timeout_ms,
            d.backends.first_token_timeout_ms / 10
        );
        assert_eq!(c.backends.health_interval_ms, 200);
        assert_eq!(c.backends.queue_max, d.backends.queue_max);
        assert_eq!(
            c.generation.num_predict, 201,
            "above the 200-token answers of this plan"
        );
        // What the origin will read back is what was meant.
        let back: Config = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn cluster_health_is_read_per_host() {
        let text = "libriassist_origin::127.0.0.1:8000::health_flags::healthy\n\
                    libriassist_origin::127.0.0.1:8001::health_flags::/failed_active_hc\n";
        assert!(cluster_host_healthy(text, "libriassist_origin", 8000));
        assert!(!cluster_host_healthy(text, "libriassist_origin", 8001));
        assert!(!cluster_host_healthy(text, "ollama", 8000));
    }
}
