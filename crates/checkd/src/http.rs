//! The HTTP side of an `http_check` service: one request per connection
//! (as HAProxy's checks make them), read in full before answering, then a
//! 200 or 503 with a Content-Length and a clean close. Malformed requests
//! get hyper's 400; oversized heads are cut off at a small buffer.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, ALLOW, CONNECTION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::check::Checker;
use crate::metrics::Metrics;

/// A request head must arrive within this.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read; a bigger one is refused, not buffered.
const MAX_HEAD: usize = 16 * 1024;

pub async fn serve(stream: TcpStream, checker: Arc<Checker>, service: Arc<str>, metrics: Metrics) {
    let name = service.clone();
    let svc = service_fn(move |req| {
        let (checker, service, metrics) = (checker.clone(), name.clone(), metrics.clone());
        async move { Ok::<_, Infallible>(answer(&checker, &service, &metrics, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), svc);
    if let Err(e) = conn.await {
        tracing::debug!(service = %service, "check connection ended: {e}");
    }
}

async fn answer(
    checker: &Checker,
    service: &str,
    metrics: &Metrics,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    // HAProxy's httpchk sends OPTIONS by default; GET and HEAD are common.
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        let mut r = Response::new(Full::new(Bytes::from_static(
            b"only GET, HEAD and OPTIONS\n",
        )));
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        r.headers_mut().insert(
            ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        return r;
    }
    let json = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let health = checker.check().await;
    Metrics::count(
        &metrics.checks,
        service,
        if health.up { "up" } else { "down" },
    );
    let (body, content_type) = if json {
        (health.json(), "application/json")
    } else {
        (health.text(), "text/plain; charset=utf-8")
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() =
        StatusCode::from_u16(health.status_code()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    r.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r.headers_mut()
        .insert(CONNECTION, hyper::header::HeaderValue::from_static("close"));
    r
}
