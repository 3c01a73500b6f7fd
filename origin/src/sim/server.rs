//! The listener and its connections. axum's own `serve` cannot close connections that are
//! mid-request, and a hung generation never finishes on its own; tests that "kill" a backend
//! need every socket closed at once, like a crashed process. So connections are served here
//! in a `JoinSet` that shutdown aborts as a whole.

use super::api::app;
use super::args::SimArgs;
use super::faults::{FaultSettings, FaultUpdate};
use super::state::Sim;
use super::stats::StatsSnapshot;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// A running simulator. Dropping it kills the simulator (without waiting); [`shutdown`]
/// kills it and waits until the port and all connections are closed.
///
/// [`shutdown`]: SimHandle::shutdown
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    sim: Arc<Sim>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Binds `args.listen` and serves in a background task of the current runtime.
///
/// # Errors
/// `InvalidInput` for settings [`SimArgs::validate`] refuses; the bind error otherwise.
pub async fn spawn(args: SimArgs) -> io::Result<SimHandle> {
    args.validate()
        .map_err(|message| io::Error::new(io::ErrorKind::InvalidInput, message))?;
    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim::new(&args));
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(accept_loop(listener, app(sim.clone()), stopped));
    tracing::info!(%addr, models = ?args.models, slots = args.slots, "ollama simulator listening");
    Ok(SimHandle {
        addr,
        sim,
        stop: Some(stop),
        task: Some(task),
    })
}

async fn accept_loop(listener: TcpListener, app: Router, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Token lines are small; Nagle's algorithm would hold them back.
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(app.clone());
                    connections.spawn(async move {
                        let served = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                        if let Err(e) = served {
                            tracing::debug!(error = %e, "simulator connection ended");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and similar: wait instead of spinning.
                    tracing::warn!(error = %e, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base URL clients configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The counters `GET /sim/stats` would return.
    pub fn stats(&self) -> StatsSnapshot {
        self.sim.stats.snapshot()
    }

    pub fn reset_stats(&self) {
        self.sim.stats.reset();
    }

    pub fn faults(&self) -> FaultSettings {
        self.sim.faults.settings()
    }

    /// Same as `POST /sim/faults`.
    ///
    /// # Errors
    /// A message when `fail_rate` is outside 0..=1; nothing changes then.
    pub fn set_faults(&self, update: FaultUpdate) -> Result<FaultSettings, String> {
        self.sim.faults.update(update)
    }

    /// Closes the listener and every connection, then returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves until the task ends (it only ends through [`SimHandle::shutdown`] or a panic).
    pub async fn wait(&mut self) {
        if let Some(task) = self.task.as_mut() {
            let _ = task.await;
            self.task = None;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
