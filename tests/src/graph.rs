//! A Microsoft Graph test double: `GET /{version}/auditLogs/signIns` and the token endpoint
//! of an App Service managed identity, over plain HTTP on a local port.
//!
//! Written from Microsoft's documentation:
//! - "List signIns" (learn.microsoft.com/graph/api/signin-list, v1.0 and beta): the list is
//!   in descending `createdDateTime`; `$top` sets the page size, at most 1,000 (and the
//!   default); `$filter` takes `createdDateTime` with `eq`, `le` and `ge`; `$skiptoken` in
//!   `@odata.nextLink` gives the next page; on beta, only interactive sign-ins come back
//!   unless `signInEventTypes/any(t: t eq '…')` asks for another event type.
//! - "signIn resource type": `id`, `createdDateTime` (UTC, `2014-01-01T00:00:00Z`; Graph
//!   writes seven fractional digits), `signInEventTypes` on beta.
//! - "Microsoft Graph throttling guidance" (learn.microsoft.com/graph/throttling): 429 Too
//!   Many Requests with `Retry-After` in seconds; 503 Service Unavailable is transient too.
//! - Graph's error body `{"error":{"code":…,"message":…}}`: `Authorization_RequestDenied`
//!   (403, "Insufficient privileges to complete the operation.") without `AuditLog.Read.All`,
//!   `InvalidAuthenticationToken` (401) for a token it did not issue, `BadRequest` (400) for
//!   a filter it does not support.
//! - The App Service managed identity protocol (learn.microsoft.com/azure/app-service/
//!   overview-managed-identity, "REST endpoint reference"): `GET {IDENTITY_ENDPOINT}?
//!   api-version=2019-08-01&resource=…` with the header `X-IDENTITY-HEADER:
//!   {IDENTITY_HEADER}`, answered `{"access_token","expires_on","resource","token_type"}`;
//!   `azure_identity`'s `ManagedIdentityCredential` speaks it over HTTP, so the real
//!   credential gets the token the Graph endpoint then checks.
//!
//! The records are served as given but for `createdDateTime`, which is written as Graph
//! writes it (UTC, seven digits); a record without an `id` (or with an empty one) or a readable time is not a
//! sign-in Graph would list and is left out ([`GraphDouble::add`] returns what it serves).

use anyhow::{Context, Result};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the double misbehaves.
#[derive(Debug, Clone, Default)]
pub struct GraphConfig {
    /// Every n-th page request is answered 429 with `Retry-After: 1` (0: never).
    pub throttle_every: u64,
    /// Every n-th page request is answered 503 without `Retry-After` (0: never).
    pub unavailable_every: u64,
    /// How long each page takes.
    pub latency: Duration,
    /// Every page request is refused 403 (no `AuditLog.Read.All`).
    pub denied: bool,
    /// Once this many pages were served, page requests wait (unanswered) until the
    /// configuration changes: a reader stalled mid-window, at a moment the test chooses.
    pub hold_after: Option<u64>,
}

/// What the double served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GraphStats {
    /// Pages answered 200.
    pub pages: u64,
    /// 429s.
    pub throttled: u64,
    /// 503s.
    pub unavailable: u64,
    /// Requests refused for their token (401).
    pub bad_tokens: u64,
    /// Tokens issued.
    pub tokens: u64,
}

struct Rec {
    /// `createdDateTime` in 100 ns ticks since the epoch.
    ticks: i64,
    id: String,
    event_type: String,
    json: String,
}

struct Shared {
    base: String,
    token: String,
    secret: String,
    config: Mutex<GraphConfig>,
    /// Newest first, then by id descending: the order of every listing.
    records: Mutex<Vec<Rec>>,
    requests: AtomicU64,
    pages: AtomicU64,
    throttled: AtomicU64,
    unavailable: AtomicU64,
    bad_tokens: AtomicU64,
    tokens: AtomicU64,
}

/// The running double; stopped when dropped.
pub struct GraphDouble {
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const TICKS_PER_SEC: i64 = 10_000_000;

/// An instant as Graph writes it.
pub fn graph_time(ticks: i64) -> String {
    let secs = ticks.div_euclid(TICKS_PER_SEC);
    let frac = ticks.rem_euclid(TICKS_PER_SEC);
    let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    format!("{}.{frac:07}Z", t.format("%Y-%m-%dT%H:%M:%S"))
}

fn ticks_of(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s.trim()) {
        return Some(t.timestamp() * TICKS_PER_SEC + i64::from(t.timestamp_subsec_nanos()) / 100);
    }
    mfagap_core::timestamp::parse(s).ok().map(|m| m * 10)
}

impl GraphDouble {
    /// Starts the double on a free local port.
    pub fn start(config: GraphConfig) -> Result<GraphDouble> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let base = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            base,
            token: format!("graph-double-token-{:016x}", rand_u64()),
            secret: format!("identity-header-{:016x}", rand_u64()),
            config: Mutex::new(config),
            records: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
            pages: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            bad_tokens: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("graph-double".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
                    let app = axum::Router::new()
                        .route("/msi/token", axum::routing::get(token))
                        .route("/{version}/auditLogs/signIns", axum::routing::get(sign_ins))
                        .with_state(state);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .context("starting the Graph double")?;
        Ok(GraphDouble {
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The Graph endpoint (`--graph-url`).
    pub fn url(&self) -> &str {
        &self.shared.base
    }

    /// The token Graph accepts: what a test looks for in output that must not hold it.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The environment that makes `azure_identity`'s managed identity credential ask this
    /// double for its token (`--graph-credential managed-identity`).
    pub fn identity_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "IDENTITY_ENDPOINT",
                format!("{}/msi/token", self.shared.base),
            ),
            ("IDENTITY_HEADER", self.shared.secret.clone()),
        ]
    }

    /// Changes how it misbehaves from now on.
    pub fn configure(&self, config: GraphConfig) {
        *self.shared.config.lock().unwrap() = config;
    }

    /// Lists these `signIn` resources from now on; returns them as served (`createdDateTime`
    /// as Graph writes it), without those Graph would not list (no `id`, an empty one, or no readable time).
    pub fn add(&self, sign_ins: Vec<Value>) -> Vec<Value> {
        let mut served = Vec::new();
        let mut records = self.shared.records.lock().unwrap();
        for mut s in sign_ins {
            let Some(id) = s
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
            else {
                continue;
            };
            let Some(ticks) = s
                .get("createdDateTime")
                .and_then(Value::as_str)
                .and_then(ticks_of)
            else {
                continue;
            };
            s["createdDateTime"] = graph_time(ticks).into();
            let event_type = s
                .get("signInEventTypes")
                .and_then(|v| v.get(0))
                .and_then(Value::as_str)
                .unwrap_or(if s.get("isInteractive") == Some(&Value::Bool(false)) {
                    "nonInteractiveUser"
                } else {
                    "interactiveUser"
                })
                .to_owned();
            records.push(Rec {
                ticks,
                id,
                event_type,
                json: s.to_string(),
            });
            served.push(s);
        }
        records.sort_by(|a, b| (b.ticks, &b.id).cmp(&(a.ticks, &a.id)));
        served
    }

    /// What it served so far.
    pub fn stats(&self) -> GraphStats {
        let s = &self.shared;
        GraphStats {
            pages: s.pages.load(Ordering::Relaxed),
            throttled: s.throttled.load(Ordering::Relaxed),
            unavailable: s.unavailable.load(Ordering::Relaxed),
            bad_tokens: s.bad_tokens.load(Ordering::Relaxed),
            tokens: s.tokens.load(Ordering::Relaxed),
        }
    }
}

impl Drop for GraphDouble {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    openssl::rand::rand_bytes(&mut b).expect("random bytes");
    u64::from_le_bytes(b)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": {"code": code, "message": message}}).to_string(),
    )
        .into_response()
}

fn query(raw: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The App Service managed identity token endpoint.
async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = query(raw);
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let secret = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    if secret != Some(s.secret.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "bad identity header",
        );
    }
    if get("api-version").as_deref() != Some("2019-08-01") {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "api-version");
    }
    let Some(resource) = get("resource") else {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "no resource");
    };
    s.tokens.fetch_add(1, Ordering::Relaxed);
    let expires = chrono::Utc::now().timestamp() + 3600;
    (
        [(header::CONTENT_TYPE, "application/json")],
        json!({
            "access_token": s.token,
            "expires_on": expires.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        })
        .to_string(),
    )
        .into_response()
}

/// What a `$filter` asks for.
#[derive(Debug, Default, PartialEq)]
struct Filter {
    ge: Option<i64>,
    le: Option<i64>,
    eq: Option<i64>,
    event_type: Option<String>,
}

/// Parses the clauses the list documents: `createdDateTime ge|le|eq T`, `and`, parentheses,
/// and `signInEventTypes/any(t: t eq 'TYPE')`; anything else is not supported.
fn parse_filter(f: &str) -> Result<Filter, String> {
    let mut out = Filter::default();
    let mut rest = f.to_owned();
    const ANY: &str = "signInEventTypes/any(t: t eq '";
    if let Some(i) = rest.find(ANY) {
        let after = &rest[i + ANY.len()..];
        let end = after.find("')").ok_or("an unclosed any()")?;
        out.event_type = Some(after[..end].to_owned());
        rest = format!("{}{}", &rest[..i], &after[end + 2..]);
    }
    let cleaned = rest.replace(['(', ')'], " ");
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let mut i = 0;
    while i < words.len() {
        match words[i] {
            "and" => i += 1,
            "createdDateTime" if i + 2 < words.len() => {
                let t = ticks_of(words[i + 2]).ok_or("not a DateTimeOffset")?;
                match words[i + 1] {
                    "ge" => out.ge = Some(t),
                    "le" => out.le = Some(t),
                    "eq" => out.eq = Some(t),
                    op => return Err(format!("createdDateTime does not support {op}")),
                }
                i += 3;
            }
            w => return Err(format!("Invalid filter clause near {w:?}")),
        }
    }
    Ok(out)
}

/// `GET /{version}/auditLogs/signIns`.
async fn sign_ins(
    State(s): State<Arc<Shared>>,
    axum::extract::Path(version): axum::extract::Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut config = s.config.lock().unwrap().clone();
    while config
        .hold_after
        .is_some_and(|n| s.pages.load(Ordering::Relaxed) >= n)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        config = s.config.lock().unwrap().clone();
    }
    if !config.latency.is_zero() {
        tokio::time::sleep(config.latency).await;
    }
    if version != "v1.0" && version != "beta" {
        return error(StatusCode::NOT_FOUND, "BadRequest", "Resource not found");
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(s.token.as_str()) {
        s.bad_tokens.fetch_add(1, Ordering::Relaxed);
        return error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure.",
        );
    }
    if config.denied {
        return error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    let n = s.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if config.throttle_every > 0 && n % config.throttle_every == 0 {
        s.throttled.fetch_add(1, Ordering::Relaxed);
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests.",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, "1".parse().expect("a header value"));
        return r;
    }
    if config.unavailable_every > 0 && n % config.unavailable_every == 0 {
        s.unavailable.fetch_add(1, Ordering::Relaxed);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The service is temporarily unavailable.",
        );
    }
    let q = query(raw);
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("$orderby").is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "$orderby is not supported on signIns.",
        );
    }
    let top: usize = match get("$top").map(|t| t.parse::<usize>()) {
        None => 1000,
        Some(Ok(t)) if (1..=1000).contains(&t) => t,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Invalid page size specified: $top must be 1 to 1000.",
            );
        }
    };
    let filter_text = get("$filter").unwrap_or_default();
    let filter = match parse_filter(&filter_text) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, "BadRequest", &e),
    };
    let event_type = match (&filter.event_type, version.as_str()) {
        (Some(_), "v1.0") => {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Invalid filter clause: signInEventTypes is not a property of signIn.",
            );
        }
        (Some(t), _) => t.clone(),
        (None, _) => "interactiveUser".to_owned(),
    };
    // `$skiptoken`: the (time, id) of the last sign-in served; the next page starts after it.
    let after: Option<(i64, String)> = get("$skiptoken").and_then(|t| {
        let (ticks, id) = t.split_once('_')?;
        Some((ticks.parse().ok()?, id.to_owned()))
    });
    let records = s.records.lock().unwrap();
    let mut page = Vec::new();
    let mut more = false;
    for r in records.iter() {
        if r.event_type != event_type
            || filter.ge.is_some_and(|t| r.ticks < t)
            || filter.le.is_some_and(|t| r.ticks > t)
            || filter.eq.is_some_and(|t| r.ticks != t)
        {
            continue;
        }
        if let Some((t, id)) = &after
            && (r.ticks, &r.id) >= (*t, id)
        {
            continue;
        }
        if page.len() == top {
            more = true;
            break;
        }
        page.push(r);
    }
    let mut body = format!(
        "{{\"@odata.context\":\"{}/{version}/$metadata#auditLogs/signIns\",",
        s.base
    );
    if more && let Some(last) = page.last() {
        let mut next =
            url::Url::parse(&format!("{}/{version}/auditLogs/signIns", s.base)).expect("a URL");
        {
            let mut pairs = next.query_pairs_mut();
            if !filter_text.is_empty() {
                pairs.append_pair("$filter", &filter_text);
            }
            pairs
                .append_pair("$top", &top.to_string())
                .append_pair("$skiptoken", &format!("{}_{}", last.ticks, last.id));
        }
        body.push_str(&format!(
            "\"@odata.nextLink\":{},",
            Value::from(next.to_string())
        ));
    }
    body.push_str("\"value\":[");
    for (i, r) in page.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&r.json);
    }
    body.push_str("]}");
    drop(records);
    s.pages.fetch_add(1, Ordering::Relaxed);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_read_as_the_list_documents_them() {
        let f = parse_filter("(createdDateTime ge 2024-01-13T14:13:32Z and createdDateTime le 2024-01-14T17:43:26.1234567Z) and signInEventTypes/any(t: t eq 'nonInteractiveUser')").unwrap();
        assert_eq!(f.event_type.as_deref(), Some("nonInteractiveUser"));
        assert_eq!(f.ge, ticks_of("2024-01-13T14:13:32Z"));
        assert_eq!(graph_time(f.le.unwrap()), "2024-01-14T17:43:26.1234567Z");
        assert!(parse_filter("createdDateTime lt 2024-01-13T14:13:32Z").is_err());
        assert!(parse_filter("userId eq 'x'").is_err());
    }
}
