//! Processes for the tests: the `libriassist` binary (built once per test run), simulators and
//! origins as child processes that are ended (by PID) when dropped, free loopback ports and
//! polling helpers.

use std::ffi::OsStr;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace's `target` directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The `libriassist` binary. `make test` builds the workspace before running tests; a plain
/// `cargo test` of this crate builds it here when it is missing.
pub fn bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let path = target_dir().join("debug/libriassist");
        if !path.exists() {
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "-p", "libriassist", "--bin", "libriassist"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build -p libriassist failed");
        }
        path
    })
}

/// A child process killed when dropped, so a failing test leaves nothing running.
pub struct Proc {
    child: Child,
    pub addr: SocketAddr,
}

impl Proc {
    /// Takes ownership of a child started by the caller, listening on `addr`.
    pub fn from_child(child: Child, addr: SocketAddr) -> Proc {
        Proc { child, addr }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `HUP`, ...) to this process only, by PID. Through the shell's
    /// `kill` builtin: `sh` is always there, the procps `kill` binary and a libc binding are not.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -s {signal} {}", self.pid()))
            .status()
            .expect("run sh -c kill");
        assert!(status.success(), "kill -s {signal} {} failed", self.pid());
    }

    /// Waits up to `limit` for the process to exit on its own; `None` while it still runs.
    pub async fn exited(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}

/// Starts `libriassist sim` on `addr` with extra flags and waits until it answers.
pub async fn sim(addr: SocketAddr, flags: &[impl AsRef<OsStr>]) -> Proc {
    let child = Command::new(bin())
        .arg("sim")
        .arg("--listen")
        .arg(addr.to_string())
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start libriassist sim");
    let proc = Proc { child, addr };
    wait_http(&format!("{}/api/version", proc.url()), 200).await;
    proc
}

/// Simulator flags for answers of `answer_tokens` tokens, the first after `ttft_ms`, then
/// `tokens_per_sec`: the pace most tests set.
pub fn pace(ttft_ms: u32, tokens_per_sec: u32, answer_tokens: u32) -> Vec<String> {
    [
        ("--ttft-ms", ttft_ms),
        ("--tokens-per-sec", tokens_per_sec),
        ("--answer-tokens", answer_tokens),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value.to_string()])
    .collect()
}

/// [`pace`] for a simulator running at most `slots` generations at once.
pub fn slots_and_pace(
    slots: u32,
    ttft_ms: u32,
    tokens_per_sec: u32,
    answer_tokens: u32,
) -> Vec<String> {
    let mut flags = vec!["--slots".to_owned(), slots.to_string()];
    flags.extend(pace(ttft_ms, tokens_per_sec, answer_tokens));
    flags
}

/// Starts `libriassist serve` on a free port with `env` and waits for /healthz.
pub async fn origin(env: &[(&str, String)]) -> Proc {
    let addr = free_port();
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("LIBRIASSIST_LISTEN", addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Ok(cache) = std::env::var("LIBRIASSIST_CACHE") {
        cmd.env("LIBRIASSIST_CACHE", cache);
    }
    if let Ok(home) = std::env::var("HOME") {
        cmd.env("HOME", home);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let proc = Proc {
        child: cmd.spawn().expect("start libriassist serve"),
        addr,
    };
    wait_http(&format!("{}/healthz", proc.url()), 200).await;
    proc
}

/// Polls `url` until it answers `status`, for up to 20 s.
pub async fn wait_http(url: &str, status: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(url).timeout(Duration::from_secs(1)).send().await {
            if r.status().as_u16() == status {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not answer {status} in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until `check` holds, for up to `limit`; returns how long it took.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to 5 s until `origin` reports `depth` questions waiting for a backend slot.
pub async fn wait_for_queue_depth(client: &reqwest::Client, origin: &Proc, depth: usize) {
    let url = format!("{}/metrics", origin.url());
    let expected = format!("libriassist_queue_depth {depth}");
    eventually(Duration::from_secs(5), || async {
        text(client, &url).await.lines().any(|l| l == expected)
    })
    .await;
}

/// GET `url` and return its body as text.
pub async fn text(client: &reqwest::Client, url: &str) -> String {
    client
        .get(url)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text body")
}

/// GET `url` and parse its JSON body.
pub async fn json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client
        .get(url)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json body")
}
