//! The admin HTTP endpoint: `GET /status` (JSON), `GET /metrics`
//! (OpenMetrics text) and `POST /actions/<name>?arg=value` (a daemon's
//! runtime commands, JSON), bound to loopback unless the config says
//! otherwise. Every request passes [`crate::admin_auth::decide`] first.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin_auth::{self, AdminAuth, Refusal};

/// What the admin endpoint serves; the daemon runtime implements it.
pub trait AdminSource: Send + Sync + 'static {
    /// The daemon's name, for the realm of a 401.
    fn name(&self) -> &'static str;
    /// The credential in force (`admin_http.auth`), as of the last reload.
    fn auth(&self) -> Option<Arc<AdminAuth>>;
    /// Counts a refused request.
    fn refused(&self, reason: Refusal);
    fn status(&self) -> impl Future<Output = serde_json::Value> + Send;
    fn metrics(&self) -> String;
    /// A page of the daemon's own (lbd's stats page), `None` if it has none
    /// at that path.
    fn page(&self, req: PageRequest) -> impl Future<Output = Option<Page>> + Send;
    /// Runs action `name` with the query string's arguments.
    fn action(
        &self,
        name: &str,
        args: Vec<(String, String)>,
    ) -> impl Future<Output = Result<serde_json::Value, ActionError>> + Send;
}

/// Why an action did not run, as the HTTP status it is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionError {
    /// 404: no such action.
    Unknown(String),
    /// 400: missing or malformed arguments.
    BadRequest(String),
    /// 409: it cannot be done in the current state.
    Conflict(String),
    /// 500: it was tried and failed.
    Failed(String),
}

/// A GET for a daemon's own page: what it needs of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The path, `;` parameters included (HAProxy's `/stats;csv`).
    pub path: String,
    pub query: String,
    /// The `Authorization` header, for pages behind basic auth.
    pub authorization: Option<String>,
}

/// A daemon's answer to a [`PageRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Extra headers, e.g. `WWW-Authenticate` with a 401.
    pub headers: Vec<(&'static str, String)>,
}

impl Page {
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Page {
        Page {
            status: 200,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }
}

/// What [`crate::Daemon::action`] returns: independent of the daemon's
/// borrow, so a long action does not hold up `/status` or a reload.
pub type ActionFuture =
    std::pin::Pin<Box<dyn Future<Output = Result<serde_json::Value, ActionError>> + Send>>;

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
        let (stream, peer) = tokio::select! {
            conn = crate::net::accept(&listener, "admin_http") => conn,
            _ = shutdown.changed() => return,
        };
        let source = source.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let source = source.clone();
                async move { Ok::<_, Infallible>(guarded(&*source, peer, req).await) }
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

/// Checks the request against `admin_http.auth`, then routes it.
async fn guarded<S: AdminSource>(
    source: &S,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let auth = source.auth();
    let path = req.uri().path();
    match admin_auth::decide(auth.as_deref(), path, req.headers()) {
        Ok(()) => route(source, req).await,
        Err(reason) => {
            source.refused(reason);
            tracing::warn!(
                %peer,
                method = %req.method(),
                path,
                reason = reason.label(),
                "admin_http: request refused"
            );
            refusal(reason, auth.as_deref(), source.name())
        }
    }
}

/// The 401 or 403 for a refused request, saying what would be accepted.
fn refusal(reason: Refusal, auth: Option<&AdminAuth>, name: &str) -> Response<Full<Bytes>> {
    let what = auth.map(AdminAuth::what_to_send).unwrap_or_default();
    let body = match reason {
        Refusal::Origin => "refused: a request to /actions/ must not carry an Origin header. \
            Browsers send one, and a page on any site could make an operator's browser \
            run actions; use curl or a script.\n"
            .to_owned(),
        Refusal::NotConfigured => format!(
            "refused: actions need a credential and {name} has none configured: set \
             admin_http.auth.token_file (or admin_http.auth.users) in its config, then reload.\n"
        ),
        Refusal::Missing => format!("this needs a credential: send {what}.\n"),
        Refusal::Wrong => format!("the credential sent is not accepted: send {what}.\n"),
    };
    let status = StatusCode::from_u16(reason.status()).unwrap_or(StatusCode::FORBIDDEN);
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("static header"),
    );
    if status == StatusCode::UNAUTHORIZED {
        let realm = format!("hastack {name} admin");
        for c in auth.map(|a| a.challenges(&realm)).unwrap_or_default() {
            if let Ok(v) = c.parse() {
                headers.append(WWW_AUTHENTICATE, v);
            }
        }
    }
    resp
}

async fn route<S: AdminSource>(source: &S, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if let Some(name) = admin_auth::action_name(path) {
        if *req.method() != Method::POST {
            let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "actions take POST\n");
            resp.headers_mut()
                .insert(ALLOW, "POST".parse().expect("static header"));
            return resp;
        }
        let args = query_args(req.uri().query().unwrap_or(""));
        let (status, body) = match source.action(name, args).await {
            Ok(v) => (StatusCode::OK, v),
            Err(e) => {
                let (status, msg) = match e {
                    ActionError::Unknown(m) => (StatusCode::NOT_FOUND, m),
                    ActionError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
                    ActionError::Conflict(m) => (StatusCode::CONFLICT, m),
                    ActionError::Failed(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
                };
                (status, serde_json::json!({ "error": msg }))
            }
        };
        let mut json = serde_json::to_vec_pretty(&body).unwrap_or_default();
        json.push(b'\n');
        let mut resp = Response::new(Full::new(Bytes::from(json)));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            CONTENT_TYPE,
            "application/json".parse().expect("static header"),
        );
        return resp;
    }
    if !matches!(path, "/status" | "/metrics")
        && matches!(*req.method(), Method::GET | Method::HEAD)
    {
        let page = source
            .page(PageRequest {
                path: path.to_owned(),
                query: req.uri().query().unwrap_or("").to_owned(),
                authorization: req
                    .headers()
                    .get(hyper::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            })
            .await;
        if let Some(page) = page {
            return page_response(page);
        }
    }
    if !matches!(path, "/status" | "/metrics") {
        return text(
            StatusCode::NOT_FOUND,
            "not found; try /status, /metrics or POST /actions/<name>\n",
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

fn page_response(page: Page) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(page.body)));
    *resp.status_mut() =
        StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    if let Ok(v) = page.content_type.parse() {
        headers.insert(CONTENT_TYPE, v);
    }
    for (name, value) in page.headers {
        if let Ok(v) = value.parse() {
            headers.insert(name, v);
        }
    }
    resp
}

/// `a=1&b=x%20y` → [("a", "1"), ("b", "x y")].
fn query_args(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = match (b[i], b.get(i + 1), b.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match (escaped, b[i]) {
            (Some(c), _) => {
                out.push(c);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, c) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            query_args("data_host=dh1&node=db%2D3&x=a+b&flag&bad=%zz%4"),
            vec![
                ("data_host".into(), "dh1".into()),
                ("node".into(), "db-3".into()),
                ("x".into(), "a b".into()),
                ("flag".into(), String::new()),
                ("bad".into(), "%zz%4".into()),
            ]
        );
    }
}
