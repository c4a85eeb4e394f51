//! The accept loop shared by the sandboxes.
//!
//! `axum::serve` cannot close a connection without answering, yet "the server applied the
//! request and the connection died before the response" is exactly the failure a sync client
//! must survive. So each connection gets a kill switch ([`ConnectionKill`], in every request's
//! extensions); the connection task races the hyper connection against it and simply drops the
//! socket when it fires.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long in-flight requests may still run after a graceful shutdown before their
/// connections are cut (a `Delay` fault could otherwise hold shutdown for ever).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Kill switch of the TCP connection a request arrived on.
///
/// Firing it closes the connection at once, without writing any (further) response bytes.
#[derive(Clone, Debug)]
pub struct ConnectionKill(CancellationToken);

impl ConnectionKill {
    pub fn kill(&self) {
        self.0.cancel();
    }
}

/// A running server: its bound address and the handle to stop it.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and starts serving `router`.
    /// Returns once the socket is bound, so callers can connect immediately.
    pub async fn bind(addr: SocketAddr, router: Router) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, router, shutdown.clone()));
        Ok(Self {
            addr,
            shutdown,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish (up to a grace period) and closes
    /// idle keep-alive connections; returns when every connection is gone.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        if let Err(err) = self.task.await {
            tracing::warn!(error = %err, "sandbox accept loop ended abnormally");
        }
    }

    /// Serves until ctrl-c (then shuts down gracefully) or until the accept loop ends.
    pub async fn wait(mut self) {
        tokio::select! {
            signal = tokio::signal::ctrl_c() => {
                if let Err(err) = signal {
                    tracing::warn!(error = %err, "cannot listen for ctrl-c; shutting the sandbox down");
                }
                self.shutdown().await;
            }
            ended = &mut self.task => {
                if let Err(err) = ended {
                    tracing::warn!(error = %err, "sandbox accept loop ended abnormally");
                }
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "sandbox accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        connections.spawn(serve_connection(stream, router.clone(), shutdown.clone()));
    }
    // Stop listening before waiting, so new connection attempts are refused right away.
    drop(listener);
    connections.close();
    connections.wait().await;
}

async fn serve_connection(stream: TcpStream, router: Router, shutdown: CancellationToken) {
    // Small JSON responses: do not let Nagle hold them back (it skews latency measurements).
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY on a sandbox connection");
    }
    let kill = CancellationToken::new();
    let switch = ConnectionKill(kill.clone());
    let service = router.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(switch.clone());
        request
    });
    // The router never fails (`Infallible`), so its future serves hyper as it is.
    let service = service_fn(move |request: Request<Incoming>| service.clone().oneshot(request));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);

    // `biased`: the kill switch must win over a response that became ready in the same poll,
    // otherwise hyper could still write it.
    tokio::select! {
        biased;
        _ = kill.cancelled() => return,
        result = connection.as_mut() => {
            log_connection_end(result);
            return;
        }
        _ = shutdown.cancelled() => {}
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        biased;
        _ = kill.cancelled() => {}
        result = connection.as_mut() => log_connection_end(result),
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::debug!("sandbox connection cut after the shutdown grace period");
        }
    }
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    // Clients hanging up mid-request is normal here (timeouts are part of the tests).
    if let Err(err) = result {
        tracing::debug!(error = %err, "sandbox connection ended with an error");
    }
}

/// An address clients can connect to: a wildcard bind is reached over loopback.
pub(crate) fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}
