//! `inotify-trace agent`: a long-running mode for every node. Every
//! `--interval` it takes a `usage` snapshot from /proc (no eBPF attached, so
//! no cost to the node's syscalls) and serves it to Prometheus at
//! `/metrics` (docs/metrics.md), with liveness at `/healthz`. When a uid
//! nears a cap (or always, if asked) it traces for a window (`window`),
//! counting calls and failures into the metrics as they come.
pub mod counters;
pub mod metrics;
pub mod window;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};
use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::IntoResponse,
    routing::get,
    Router,
};

use self::{
    counters::Counters,
    metrics::{exposition, prometheus_text, SnapshotStats},
    window::WindowSettings,
};
use crate::{
    notices::say,
    selection::Selection,
    signals::Signals,
    usage::{snapshot, Source, Usage},
};

pub struct AgentSettings {
    pub interval: Duration,
    pub listen: SocketAddr,
    pub window: WindowSettings,
}

/// The last snapshot, and when it was taken.
#[derive(Default)]
struct Latest {
    snapshot: Option<(Usage, SnapshotStats)>,
    at: Option<Instant>,
}

#[derive(Clone)]
struct Shared {
    latest: Arc<Mutex<Latest>>,
    counters: Counters,
    tracing: Arc<AtomicBool>,
    /// Older than this, the agent is not alive for `/healthz`.
    stale_after: Duration,
}

/// Serves until SIGINT, SIGTERM or SIGHUP.
pub async fn run(settings: AgentSettings) -> Result<()> {
    let mut signals = Signals::new()?;
    if let Some(dir) = &settings.window.record_dir {
        window::make_record_dir(dir)?;
    }
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
        counters: Counters::default(),
        tracing: Arc::default(),
        // A window delays the next snapshot by its length.
        stale_after: settings.interval * 3 + settings.window.length,
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
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        signals.next().await;
    });
    // The work runs beside the server on this thread (a window's pipeline
    // is not Send); a signal ends the server, and so both.
    tokio::select! {
        served = server => served.context("serving HTTP")?,
        () = work(&shared, &settings) => {}
    }
    Ok(())
}

/// Snapshots every `interval`, and a trace window after each one that
/// calls for it.
async fn work(shared: &Shared, settings: &AgentSettings) {
    let mut ticks = tokio::time::interval(settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let host_root = settings.window.host_root.clone();
        let taken = tokio::task::spawn_blocking(move || take_snapshot(host_root)).await;
        let wanted = match taken {
            Ok((usage, stats)) => {
                let wanted = window::wanted(&settings.window, &usage);
                let on_node = usage
                    .pods
                    .iter()
                    .map(|p| {
                        let name = p.pod.clone().unwrap_or_else(|| p.pod_uid.clone());
                        (p.namespace.clone().unwrap_or_default(), name)
                    })
                    .collect();
                shared
                    .counters
                    .lock()
                    .expect("no panics hold the lock")
                    .expire(&on_node, Instant::now());
                let mut latest = shared.latest.lock().expect("no panics hold the lock");
                (latest.snapshot, latest.at) = (Some((usage, stats)), Some(Instant::now()));
                wanted
            }
            Err(err) => {
                say(format_args!("warning: a snapshot failed: {err}"));
                false
            }
        };
        if wanted {
            let attached = |on: bool| shared.tracing.store(on, Ordering::Relaxed);
            if let Err(err) = window::trace(&settings.window, &shared.counters, attached).await {
                say(format_args!("warning: a trace window failed: {err:#}"));
            }
        }
    }
}

/// A snapshot of the whole machine (it reads all of /proc: run off the
/// async thread).
fn take_snapshot(host_root: std::path::PathBuf) -> (Usage, SnapshotStats) {
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
    (usage, stats)
}

/// Rendered at each scrape, so what a window counts shows at once; as
/// OpenMetrics when the scraper asks for it (Prometheus does), else in the
/// older text format.
async fn metrics(State(shared): State<Shared>, headers: HeaderMap) -> impl IntoResponse {
    let latest = shared.latest.lock().expect("no panics hold the lock");
    let Some((usage, stats)) = &latest.snapshot else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no snapshot yet\n").into_response();
    };
    let counts = shared.counters.lock().expect("no panics hold the lock");
    let text = exposition(
        usage,
        stats,
        &counts,
        shared.tracing.load(Ordering::Relaxed),
    );
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    let (content_type, text) = match openmetrics {
        true => (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            text,
        ),
        false => (
            "text/plain; version=0.0.4; charset=utf-8",
            prometheus_text(&text),
        ),
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], text).into_response()
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
