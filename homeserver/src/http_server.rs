//! Serves a router over HTTP/1.1 with hyper's HTTP/1 connection, one task per connection, with a
//! graceful shutdown that stops accepting and lets requests in flight finish.
//!
//! Why not `axum::serve`: it hands every connection to hyper-util's HTTP/1-or-HTTP/2 detector,
//! which reads the first bytes and replays them in front of the socket. That replay doubles
//! hyper's read buffer on each connection (with upstream hyper's 8 KiB buffers, about 12 KiB more
//! per open connection, a fifth of the server's memory with 1,000 clients waiting in /sync; the
//! build's hyper, `vendor/hyper`, starts them at 1 KiB). Hearth serves only HTTP/1.1 (TLS offers just
//! `http/1.1` by ALPN), so the detection buys nothing. The rest is what `axum::serve` does:
//! `ConnectInfo` on every request and the same shutdown, plus hyper's deadline for a request
//! head (`[listen] request_head_timeout_ms`), which `axum::serve` leaves off.

use std::{future::Future, net::SocketAddr, pin::pin, time::Duration};

use axum::{Router, extract::ConnectInfo, serve::Listener};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tower::ServiceExt as _;

/// Accepts connections from `listener` and serves `router` on each until `shutdown` resolves,
/// then stops accepting, closes idle connections and waits for requests in flight. A connection
/// that has not sent a whole request head within `head_timeout` of opening or of its previous
/// response is closed (hyper's timer is armed only while a head is awaited, so a /sync waiting
/// for events is not cut short).
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    head_timeout: Option<Duration>,
    shutdown: impl Future<Output = ()>,
) where
    L: Listener<Addr = SocketAddr>,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(head_timeout);
    // Dropping `stop` tells every connection to shut down gracefully; each connection holds a
    // clone of `open` until it ends, so `open_tx.closed()` waits for the last one.
    let (stop, stopping) = watch::channel(());
    let (open_tx, open) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let (mut stopping, open) = (stopping.clone(), open.clone());
        let connection = http.serve_connection(TokioIo::new(io), service);
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::trace!(%error, "connection ended with an error");
                    }
                }
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(open);
        });
    }
    drop((listener, stop, open));
    open_tx.closed().await;
}
