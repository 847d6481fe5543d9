//! The admin HTTP endpoint: `GET /status` (JSON) and `GET /metrics`
//! (OpenMetrics text), bound to loopback unless the config says otherwise.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the admin endpoint serves; the daemon runtime implements it.
pub trait AdminSource: Send + Sync + 'static {
    fn status(&self) -> impl Future<Output = serde_json::Value> + Send;
    fn metrics(&self) -> String;
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A client that sends no complete request head within this is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` changes. Accept errors (e.g. out of file
/// descriptors) are logged and retried after a pause, never fatal.
pub async fn serve<S: AdminSource>(
    listener: TcpListener,
    source: Arc<S>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            (stream, _) = crate::net::accept(&listener, "admin_http") => stream,
            _ = shutdown.changed() => return,
        };
        let source = source.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let source = source.clone();
                async move { Ok::<_, Infallible>(route(&*source, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin_http: connection ended with an error");
            }
        });
    }
}

async fn route<S: AdminSource>(source: &S, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if !matches!(path, "/status" | "/metrics") {
        return text(
            StatusCode::NOT_FOUND,
            "not found; try /status or /metrics\n",
        );
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        resp.headers_mut()
            .insert(ALLOW, "GET, HEAD".parse().expect("static header"));
        return resp;
    }
    let (body, content_type) = if path == "/status" {
        let mut json = serde_json::to_vec_pretty(&source.status().await).unwrap_or_default();
        json.push(b'\n');
        (json, "application/json")
    } else {
        (source.metrics().into_bytes(), OPENMETRICS)
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, content_type.parse().expect("static header"));
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("static header"),
    );
    resp
}
