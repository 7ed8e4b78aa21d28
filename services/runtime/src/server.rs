//! The operations endpoint: `/metrics`, `/health/live`, `/health/ready`.
//!
//! Liveness says the process answers; readiness says it can do its job right now (source
//! open, Kafka accepting writes), so an orchestrator stops routing to — or restarts — a
//! replica that is stuck behind an unreachable broker.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;

/// Whether the service is ready, shared between the pipeline and the endpoint.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// What `/health/ready` answers from now on: 200 when ready, 503 when not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
    /// Whether the service said it is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Binds the endpoint; returns the address it listens on (port 0 picks a free one).
pub async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    ready: Readiness,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let app = Router::new()
        .route("/metrics", get(move || std::future::ready(handle.render())))
        .route("/health/live", get(|| std::future::ready("live")))
        .route(
            "/health/ready",
            get(move || {
                let r = ready.get();
                std::future::ready(if r {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                })
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    Ok(local)
}
