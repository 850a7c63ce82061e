//! The agent's HTTP endpoint, bounded against abuse: it serves `/metrics`
//! and `/healthz` over HTTP/1.1 (TLS when the web config asks for it) with
//! at most [`MAX_CONNECTIONS`] connections at once (past that the oldest is
//! closed to make room, so holding connections open cannot lock a scraper
//! out: a new scrape is served in milliseconds, long before a thousand
//! newer connections make it the oldest), headers of at most [`MAX_HEADER_BYTES`] that must arrive
//! within [`HEADER_TIMEOUT`], a TLS handshake within [`HANDSHAKE_TIMEOUT`],
//! and no connection living past [`CONNECTION_LIFETIME`]. So idle
//! connections (slowloris), huge headers or a burst of scrapes cost a
//! bounded amount of memory, and a scrape is answered while they last.
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::AbortHandle,
};
use tokio_rustls::TlsAcceptor;

/// Connections served at once. Well above what scrapers use (one each),
/// small enough that the agent stays inside its memory limit when every
/// one is held open (docs/metrics.md has the figures).
pub const MAX_CONNECTIONS: usize = 1024;
/// The whole request head (line and headers) must arrive within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The TLS handshake must be over within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is closed after this, kept alive or not (a scraper opens
/// another).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// hyper's read buffer, and so the largest request head: a larger one gets
/// `431 Request Header Fields Too Large`.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Connections the kernel queues for `accept` (it caps this at
/// net.core.somaxconn): a burst of connections is not reset before the
/// agent gets to them.
const BACKLOG: u32 = 4096;

/// Listens on `addr`.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `app` on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    mut stop: watch::Receiver<bool>,
) {
    let open = Connections::default();
    let mut next_id: u64 = 0;
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, most likely: wait for some to
                    // close rather than spin.
                    log::debug!("accepting a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => return,
        };
        let (tls, app) = (tls.clone(), app.clone());
        let id = next_id;
        next_id += 1;
        let mut table = open.lock();
        if table.len() >= MAX_CONNECTIONS {
            if let Some((_, oldest)) = table.pop_first() {
                oldest.abort();
            }
        }
        // The task removes itself when it ends (or is aborted); it cannot
        // do so before it is in the table, whose lock is held here.
        let leaving = Leaving(id, open.clone());
        let task = tokio::spawn(async move {
            let _leaving = leaving;
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection(stream, tls, app)).await;
        });
        table.insert(id, task.abort_handle());
    }
}

/// The connections being served, oldest first.
#[derive(Clone, Default)]
struct Connections(Arc<Mutex<BTreeMap<u64, AbortHandle>>>);

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, AbortHandle>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Takes a connection out of the table when its task ends.
struct Leaving(u64, Connections);

impl Drop for Leaving {
    fn drop(&mut self) {
        self.1.lock().remove(&self.0);
    }
}

/// Resolves once `stop` is true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, not held across awaits.
    let _ = stop.wait_for(|stopping| *stopping).await;
}

async fn connection(stream: TcpStream, tls: Option<TlsAcceptor>, app: Router) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => http(stream, app).await,
        Some(tls) => {
            // A client that speaks plain HTTP, or no TLS at all, fails the
            // handshake and is closed.
            if let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await
            {
                http(stream, app).await;
            }
        }
    }
}

async fn http(stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static, app: Router) {
    let service = hyper_util::service::TowerToHyperService::new(app);
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(err) = served {
        log::debug!("a connection ended: {err}");
    }
}
