//! `inotify-trace agent`: a long-running mode for every node. Every
//! `--interval` it takes a `usage` snapshot (`snapshots`: from the counts
//! the kernel's events keep where fexit works, else from /proc; either
//! costs the node's syscalls nothing) and serves it to Prometheus at
//! `/metrics` (docs/metrics.md), with liveness at `/healthz`, through a
//! bounded `endpoint` (TLS and basic auth by `web_config`). Where the kernel
//! allows fexit it traces all the time; elsewhere, when a uid nears a cap
//! (or always, if asked), for a window (`window`); either way counting calls
//! and failures into the metrics as they come (`counters`). Snapshots go on
//! meanwhile.
pub mod counters;
pub mod endpoint;
pub mod metrics;
pub mod snapshots;
pub mod state;
pub mod web_config;
pub mod window;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::IntoResponse,
    routing::get,
    Router,
};
use caps::Capability;

use tokio::sync::watch;

use self::{
    counters::Counters,
    metrics::{exposition, prometheus_text, SnapshotStats},
    snapshots::Snapshotter,
    web_config::WebConfig,
};
use crate::{
    notices::say, preflight, settings::AgentSettings, signals::Signals, tracer::AttachMode,
    usage::Usage, words,
};

/// The last snapshot, and when it was taken.
#[derive(Default)]
struct Latest {
    snapshot: Option<(Usage, SnapshotStats)>,
    at: Option<Instant>,
}

/// How the agent traces now.
#[derive(Clone, Debug, Default)]
pub struct Tracing {
    /// The mode of the programs attached now, if any.
    pub attached: Option<AttachMode>,
    /// Attached all the time (fexit), not in windows.
    pub continuous: bool,
    /// Why the agent traces in windows: fexit is not possible here.
    pub windows_because: Option<String>,
    /// Why the last trace window failed, until one attaches again: the
    /// agent cannot trace what it is asked to, and `/healthz` says so.
    pub failing: Option<String>,
    /// The running kernel's release (for `inotify_trace_build_info`).
    pub kernel: String,
}

impl Tracing {
    fn new() -> Tracing {
        Tracing {
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            ..Tracing::default()
        }
    }

    /// `fexit` (continuously), `tracepoint` (in windows), or `starting`.
    pub fn attach_mode(&self) -> &'static str {
        match (self.continuous, &self.windows_because) {
            (true, _) => "fexit",
            (false, Some(_)) => "tracepoint",
            (false, None) => "starting",
        }
    }

    /// What `/healthz` says after "ok".
    fn describe(&self) -> String {
        match (&self.windows_because, self.attached) {
            _ if self.continuous => "tracing continuously with fexit".to_owned(),
            (Some(why), Some(mode)) => format!("tracing in a window ({mode}), as {why}"),
            (Some(why), None) => format!("tracing in windows only, as {why}"),
            (None, _) => "starting to trace".to_owned(),
        }
    }
}

#[derive(Clone)]
struct Shared {
    latest: Arc<Mutex<Latest>>,
    counters: Counters,
    tracing: Arc<Mutex<Tracing>>,
    /// Older than this, the agent is not alive for `/healthz`.
    stale_after: Duration,
}

/// Serves until SIGINT, SIGTERM or SIGHUP; a window running then is ended
/// as a live session ends (its recording gets its end and summary).
pub async fn run(settings: AgentSettings) -> Result<()> {
    // What the agent is for needs these: refused at once, with the tracer's
    // own line, rather than serving a "healthy" endpoint that cannot see.
    preflight::check_privileges()?;
    preflight::check_bpf()?;
    let missing =
        preflight::missing_of(&[Capability::CAP_SYS_PTRACE, Capability::CAP_DAC_READ_SEARCH]);
    if !missing.is_empty() {
        bail!(
            "the agent reads every process's fds: {} missing (run it as root, or grant CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH: see the README's Privileges)",
            missing.join(" and ")
        );
    }
    let mut signals = Signals::new()?;
    if let Some(dir) = &settings.window.record_dir {
        window::make_record_dir(dir)?;
    }
    // A bad web config is refused before the port is taken.
    let web = match &settings.web_config {
        Some(path) => WebConfig::load(path)?,
        None => WebConfig {
            tls: None,
            basic_auth: None,
        },
    };
    let listener = endpoint::listen(settings.listen).with_context(|| {
        format!(
            "listening on {} (is the port taken? see --listen)",
            settings.listen
        )
    })?;
    let shared = Shared {
        latest: Arc::default(),
        counters: Counters::default(),
        tracing: Arc::new(Mutex::new(Tracing::new())),
        // Snapshots go on during windows: three missed intervals is stalled.
        stale_after: settings.interval * 3,
    };
    let mut metrics_route = Router::new().route("/metrics", get(metrics));
    if let Some(auth) = &web.basic_auth {
        // `/healthz` says only "ok": the kubelet's probe needs no password.
        metrics_route = metrics_route.route_layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            web_config::require_basic_auth,
        ));
    }
    let app = metrics_route
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/", get(index))
        .with_state(shared.clone());
    say(format_args!(
        "serving metrics on {}://{}/metrics{}, a snapshot every {}",
        if web.tls.is_some() { "https" } else { "http" },
        listener.local_addr()?,
        if web.basic_auth.is_some() {
            " (basic auth)"
        } else {
            ""
        },
        humantime::format_duration(settings.interval)
    ));
    let (stop, stopping) = watch::channel(false);
    let (verdicts, wanted) = watch::channel(false);
    let tls = web.tls.map(tokio_rustls::TlsAcceptor::from);
    // Connections are served on the runtime's workers; snapshots and
    // windows (a window's pipeline is not Send) on this thread.
    let server = tokio::spawn(endpoint::serve(listener, tls, app, stopping.clone()));
    let stopped = async {
        signals.next().await;
        stop.send_replace(true);
    };
    tokio::select! {
        ((), ()) = async { tokio::join!(stopped, tracing(&shared, &settings, wanted, stopping)) } => {}
        never = snapshots(&shared, &settings, verdicts) => match never {},
    }
    server.await.context("serving HTTP")?;
    Ok(())
}

/// A snapshot every `interval`, whether or not a window runs, so every
/// gauge is at most one interval old at every scrape; each tells `verdicts`
/// whether it calls for a window.
async fn snapshots(
    shared: &Shared,
    settings: &AgentSettings,
    verdicts: watch::Sender<bool>,
) -> std::convert::Infallible {
    let mut ticks = tokio::time::interval(settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Setting the kept counts up reads every watch once: off this thread.
    let start = {
        let (host_root, every) = (settings.trace.host_root.clone(), settings.reconcile_every);
        tokio::task::spawn_blocking(move || Snapshotter::start(host_root, every))
    };
    let snapshotter = Arc::new(Mutex::new(
        start.await.expect("starting the snapshots does not panic"),
    ));
    loop {
        ticks.tick().await;
        let snapshotter = snapshotter.clone();
        let taken = tokio::task::spawn_blocking(move || {
            snapshotter.lock().expect("no panics hold the lock").take()
        });
        match taken.await {
            Ok((usage, stats)) => {
                verdicts.send_replace(window::wanted(&settings.window, &usage));
                let on_node = usage.pods.iter().map(|p| p.pod.metric_labels()).collect();
                shared
                    .counters
                    .lock()
                    .expect("no panics hold the lock")
                    .expire(&on_node, Instant::now());
                let mut latest = shared.latest.lock().expect("no panics hold the lock");
                let budgets = state::Budget::all_of(&usage);
                (latest.snapshot, latest.at) = (Some((usage, stats)), Some(Instant::now()));
                drop(latest);
                if let Some(path) = &settings.state_file {
                    write_state(shared, settings, path, budgets);
                }
            }
            Err(err) => say(format_args!("warning: a snapshot failed: {err}")),
        }
    }
}

/// The state file for `inotify-trace check`; a failure to write it is
/// warned about, and the next snapshot tries again.
fn write_state(
    shared: &Shared,
    settings: &AgentSettings,
    path: &std::path::Path,
    budgets: Vec<state::Budget>,
) {
    let failures = shared
        .counters
        .lock()
        .expect("no panics hold the lock")
        .recent_failures();
    let tracing = shared
        .tracing
        .lock()
        .expect("no panics hold the lock")
        .attached
        .is_some();
    let state = state::AgentState::new(settings.interval, tracing, budgets, failures);
    if let Err(err) = state::write(path, &state) {
        say(format_args!(
            "warning: writing --state-file {}: {err:#}",
            path.display()
        ));
    }
}

/// Continuous tracing where the kernel allows fexit; else (or should it
/// stop) trace windows.
async fn tracing(
    shared: &Shared,
    settings: &AgentSettings,
    wanted: watch::Receiver<bool>,
    mut stopping: watch::Receiver<bool>,
) {
    let attached = |mode: Option<AttachMode>| {
        let mut tracing = shared.tracing.lock().expect("no panics hold the lock");
        (tracing.attached, tracing.continuous) = (mode, mode.is_some());
    };
    let continuous =
        window::trace_continuously(&settings.trace, &shared.counters, attached, &mut stopping);
    let why = match continuous.await {
        Ok(()) if *stopping.borrow() => return,
        Ok(()) => "continuous tracing ended".to_owned(),
        Err(err) => format!("{err:#}"),
    };
    say(format_args!(
        "tracing in windows with tracepoints (they slow every syscall while attached): {why}"
    ));
    shared
        .tracing
        .lock()
        .expect("no panics hold the lock")
        .windows_because = Some(why);
    windows(shared, settings, wanted, stopping).await;
}

/// Trace windows, one after another while the latest snapshot calls for
/// them, until `stopping`.
async fn windows(
    shared: &Shared,
    settings: &AgentSettings,
    mut wanted: watch::Receiver<bool>,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            () = endpoint::stopped(&mut stopping) => return,
            called = wanted.wait_for(|wanted| *wanted) => if called.is_err() { return },
        }
        let attached = |mode: Option<AttachMode>| {
            let mut tracing = shared.tracing.lock().expect("no panics hold the lock");
            tracing.attached = mode;
            if mode.is_some() {
                tracing.failing = None;
            }
        };
        let traced = window::trace(
            &settings.trace,
            &settings.window,
            &shared.counters,
            attached,
            &mut stopping,
        );
        if let Err(err) = traced.await {
            say(format_args!("warning: a trace window failed: {err:#}"));
            shared
                .tracing
                .lock()
                .expect("no panics hold the lock")
                .failing = Some(format!("{err:#}"));
            // Not straight into the next one: wait for a fresh verdict.
            wanted.mark_unchanged();
            tokio::select! {
                () = endpoint::stopped(&mut stopping) => return,
                _ = wanted.changed() => {}
            }
        }
    }
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
    let tracing = shared
        .tracing
        .lock()
        .expect("no panics hold the lock")
        .clone();
    let text = exposition(usage, stats, &counts, &tracing);
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

/// Healthy while snapshots keep coming and the agent traces what it is
/// asked to: a window that failed makes it unhealthy, with the reason,
/// until the next one attaches (the DaemonSet's readiness probe).
async fn healthz(State(shared): State<Shared>) -> impl IntoResponse {
    let tracing = shared.tracing.lock().expect("no panics hold the lock");
    if let Some(why) = &tracing.failing {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not tracing: the last trace window failed: {}\n",
                words::one_line(why)
            ),
        );
    }
    match snapshots_stalled(&shared) {
        None => (StatusCode::OK, format!("ok: {}\n", tracing.describe())),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

/// Alive while snapshots keep coming (the DaemonSet's liveness probe: a
/// restart mends a stalled agent, not a window that cannot attach).
async fn livez(State(shared): State<Shared>) -> impl IntoResponse {
    match snapshots_stalled(&shared) {
        None => (StatusCode::OK, "ok\n".to_owned()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

/// Why snapshots are not fresh, if they are not.
fn snapshots_stalled(shared: &Shared) -> Option<&'static str> {
    let latest = shared.latest.lock().expect("no panics hold the lock");
    match latest.at {
        Some(at) if at.elapsed() <= shared.stale_after => None,
        Some(_) => Some("snapshots stalled"),
        None => Some("no snapshot yet"),
    }
}

/// A page for whoever opens the address in a browser, as node_exporter
/// serves one: what this is and where the metrics are.
async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        concat!(
            "<!DOCTYPE html>\n<html><head><title>inotify-trace agent</title></head><body>\n",
            "<h1>inotify-trace agent ",
            env!("CARGO_PKG_VERSION"),
            "</h1>\n<p>Who holds this node's inotify watches and instances, and which calls fail.</p>\n",
            "<ul><li><a href=\"metrics\">metrics</a></li><li><a href=\"healthz\">healthz</a> (snapshots and tracing)</li><li><a href=\"livez\">livez</a> (snapshots)</li></ul>\n",
            "</body></html>\n"
        ),
    )
}
