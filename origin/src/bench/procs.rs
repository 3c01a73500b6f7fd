//! The processes a benchmark starts: each one a child of the bench, listening on a loopback
//! port chosen here, logging to its own file, and ended by its PID (SIGKILL, or SIGTERM with a
//! grace period for a drain), never by name. A dropped handle kills its process, so a failed
//! or interrupted run leaves nothing behind. Restarting reuses the same command and port, as an
//! operator restarting a crashed service would.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// What "ready" means for a process.
#[derive(Debug, Clone)]
pub enum Ready {
    /// The port accepts connections.
    Tcp,
    /// `GET url` answers this status (the URL may be another port, e.g. Envoy's admin).
    Http { url: String, status: u16 },
}

/// How to start a process.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The environment is cleared, then these are set: nothing the bench's caller exported can
    /// change a component's configuration behind the report's back.
    pub env: Vec<(String, String)>,
    pub addr: SocketAddr,
    pub ready: Ready,
    pub log: PathBuf,
    pub ready_within: Duration,
}

/// A running (or stopped) child process.
#[derive(Debug)]
pub struct Proc {
    spec: Spec,
    child: Option<Child>,
}

/// A free loopback port (bound then released; the small race is acceptable for a benchmark).
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot bind a loopback port: {e}"))?;
    listener.local_addr().map_err(|e| e.to_string())
}

/// Variables passed through to every child: where tools and models are cached.
fn passthrough() -> Vec<(String, String)> {
    [
        "PATH",
        "HOME",
        "LIBRIASSIST_CACHE",
        "LIBRIASSIST_MODEL_DIR",
        "LIBRIASSIST_ORT_LIBRARY",
        "TMPDIR",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
    .collect()
}

impl Proc {
    /// Starts the process and waits until it is ready.
    ///
    /// # Errors
    /// When it cannot be started, exits early, or is not ready in time; the message ends with
    /// the tail of its log.
    pub async fn start(spec: Spec) -> Result<Proc, String> {
        let mut proc = Proc { spec, child: None };
        proc.launch().await?;
        Ok(proc)
    }

    async fn launch(&mut self) -> Result<(), String> {
        let s = &self.spec;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.log)
            .map_err(|e| format!("cannot open {}: {e}", s.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&s.program);
        cmd.args(&s.args)
            .env_clear()
            .envs(passthrough())
            .envs(s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {} ({}): {e}", s.name, s.program.display()))?;
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + self.spec.ready_within;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| e.to_string())?;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!(
                    "{} exited ({status}) before it was ready{}",
                    self.spec.name,
                    self.log_tail()
                ));
            }
            let ready = match &self.spec.ready {
                Ready::Tcp => tokio::net::TcpStream::connect(self.spec.addr).await.is_ok(),
                Ready::Http { url, status } => client
                    .get(url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == *status),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill().await;
                return Err(format!(
                    "{} was not ready within {:?}{}",
                    self.spec.name,
                    self.spec.ready_within,
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The last lines of the process's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.spec.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        format!("\n--- {} ---\n{tail}", self.spec.log.display())
    }

    pub fn log(&self) -> &std::path::Path {
        &self.spec.log
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.spec.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.spec.addr)
    }

    /// SIGKILL by PID, like a crash, and waits for the exit.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// SIGTERM by PID (the origin drains on it), then SIGKILL if it has not exited in `grace`.
    pub async fn terminate(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }

    /// Starts the process again, same command and port.
    ///
    /// # Errors
    /// As [`Proc::start`].
    pub async fn restart(&mut self) -> Result<(), String> {
        self.kill().await;
        self.launch().await
    }
}
