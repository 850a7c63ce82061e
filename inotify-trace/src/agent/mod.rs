//! `inotify-trace agent`: a long-running mode for every node. Every
//! `--interval` it takes a `usage` snapshot from /proc (no eBPF attached, so
//! no cost to the node's syscalls) and serves it to Prometheus at
//! `/metrics` (docs/metrics.md), with liveness at `/healthz`.
pub mod metrics;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};
use axum::{
    extract::State,
    http::{header, StatusCode},
    response::IntoResponse,
    routing::get,
    Router,
};

use self::metrics::{exposition, SnapshotStats};
use crate::{
    notices::say,
    selection::Selection,
    signals::Signals,
    usage::{snapshot, Source},
};

pub struct AgentSettings {
    pub interval: Duration,
    pub listen: SocketAddr,
    pub host_root: PathBuf,
}

/// The last snapshot's exposition, and when it was made.
#[derive(Default)]
struct Latest {
    text: Option<String>,
    at: Option<Instant>,
}

#[derive(Clone)]
struct Shared {
    latest: Arc<Mutex<Latest>>,
    /// Older than this, the agent is not alive for `/healthz`.
    stale_after: Duration,
}

/// Serves until SIGINT, SIGTERM or SIGHUP.
pub async fn run(settings: AgentSettings) -> Result<()> {
    let mut signals = Signals::new()?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| {
            format!(
                "listening on {} (is the port taken? see --listen)",
                settings.listen
            )
        })?;
    let shared = Shared {
        latest: Arc::default(),
        stale_after: settings.interval * 3,
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(shared.clone());
    say(format_args!(
        "serving metrics on http://{}/metrics, a snapshot every {}",
        listener.local_addr()?,
        humantime::format_duration(settings.interval)
    ));
    let snapshots = tokio::spawn(take_snapshots(
        shared,
        settings.interval,
        settings.host_root,
    ));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            signals.next().await;
        })
        .await
        .context("serving HTTP")?;
    snapshots.abort();
    Ok(())
}

/// Every `interval`, a snapshot off the async thread (it reads all of
/// /proc), turned into the exposition.
async fn take_snapshots(shared: Shared, interval: Duration, host_root: PathBuf) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let host_root = host_root.clone();
        let taken = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let source = Source {
                host_root,
                ..Source::live(None)
            };
            let usage = snapshot(&source, &Selection::default(), 0);
            let stats = SnapshotStats {
                duration_s: started.elapsed().as_secs_f64(),
                taken_at_s: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            };
            exposition(&usage, &stats)
        })
        .await;
        match taken {
            Ok(text) => {
                let mut latest = shared.latest.lock().expect("no panics hold the lock");
                (latest.text, latest.at) = (Some(text), Some(Instant::now()));
            }
            Err(err) => say(format_args!("warning: a snapshot failed: {err}")),
        }
    }
}

async fn metrics(State(shared): State<Shared>) -> impl IntoResponse {
    let latest = shared.latest.lock().expect("no panics hold the lock");
    match &latest.text {
        Some(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text.clone(),
        )
            .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no snapshot yet\n").into_response(),
    }
}

/// Alive while snapshots keep coming.
async fn healthz(State(shared): State<Shared>) -> impl IntoResponse {
    let latest = shared.latest.lock().expect("no panics hold the lock");
    match latest.at {
        Some(at) if at.elapsed() <= shared.stale_after => (StatusCode::OK, "ok\n"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "snapshots stalled\n"),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no snapshot yet\n"),
    }
}
