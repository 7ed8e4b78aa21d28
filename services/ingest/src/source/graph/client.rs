//! GET a Graph page: a bearer token from `azure_identity`, a bounded number of requests in
//! flight, and throttling honoured.
//!
//! Microsoft's throttling guidance (learn.microsoft.com/graph/throttling) says: on 429, wait
//! the seconds of `Retry-After` and send the same request again, and back off exponentially
//! when a response has no `Retry-After`. 503 and 504 are the service's own "try later" and are
//! treated the same way, as are connection errors and timeouts. A transient error is retried
//! on the same URL until it succeeds, so a page is never skipped; a permanent one (401, 403,
//! 400, 404) ends the source with a message that names what to change — for 403 the
//! permission `AuditLog.Read.All` or the licence Graph asked for. The token never appears in
//! a message: it is only ever a request header.

use anyhow::{Result, bail};
use azure_core::credentials::TokenCredential;
use mfagap_runtime::Backoff;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The longest `Retry-After` honoured as given (a larger one is waited this long, then the
/// request is sent again and may be told to wait more).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// How long one request may take (a month of sign-ins can make Graph slow to answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(180);

/// What a request that did not succeed says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Worth sending again after the delay, if any.
    Transient(Option<Duration>, String),
    /// Sending it again cannot help.
    Permanent(String),
}

/// A Graph client of one endpoint.
pub(crate) struct Client {
    http: reqwest::Client,
    credential: Arc<dyn TokenCredential>,
    /// `{graph url}/.default`.
    scope: String,
    permits: Arc<Semaphore>,
}

impl Client {
    pub(crate) fn new(
        url: &str,
        credential: Arc<dyn TokenCredential>,
        concurrency: usize,
    ) -> Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("mfagap/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            http,
            credential,
            scope: format!("{url}/.default"),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        })
    }

    /// The body of a 200 answer to `GET url`, after as many retries as transient errors
    /// need; an error only for a permanent one.
    pub(crate) async fn get(&self, url: &str) -> Result<Vec<u8>> {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            match self.try_get(url).await {
                Ok(body) => return Ok(body),
                Err(Failure::Permanent(message)) => bail!("{message}"),
                Err(Failure::Transient(after, why)) => {
                    let wait = after.unwrap_or_else(|| backoff.next_delay());
                    tracing::warn!(%url, retry_in = ?wait, "Graph: {why}; the same page is asked again");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One attempt.
    pub(crate) async fn try_get(&self, url: &str) -> std::result::Result<Vec<u8>, Failure> {
        let token = self
            .credential
            .get_token(&[self.scope.as_str()], None)
            .await
            .map_err(|e| token_failure(&e))?;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Failure::Permanent("the Graph client is closed".into()))?;
        let sent = self
            .http
            .get(url)
            .bearer_auth(token.token.secret())
            .header("Accept", "application/json")
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                return Err(Failure::Transient(
                    None,
                    format!("no answer: {}", without_url(&e)),
                ));
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
        let body = match response.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => {
                return Err(Failure::Transient(
                    None,
                    format!("the answer broke off: {}", without_url(&e)),
                ));
            }
        };
        classify(status, retry_after, body)
    }
}

/// What a failed `get_token` means. `azure_identity` labels every failure a credential error,
/// a dropped connection or a 503 of the token endpoint included, so the kind on top says
/// nothing: the causes beneath it do. A connection or IO error, a timeout, or a 408, 429 or
/// 5xx from the token endpoint is transient; another HTTP status (the endpoint refused the
/// credential) or a failure with no such cause (missing configuration) is permanent.
pub(crate) fn token_failure(e: &azure_core::Error) -> Failure {
    use azure_core::error::ErrorKind;
    let text = crate::source::eventhubs::connect::causes(e);
    let transient = || Failure::Transient(None, format!("cannot get a token yet: {text}"));
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(az) = err.downcast_ref::<azure_core::Error>() {
            match az.kind() {
                ErrorKind::HttpResponse { status, .. } => {
                    return if transient_status(u16::from(*status)) {
                        transient()
                    } else {
                        Failure::Permanent(format!(
                            "the token endpoint refused the credential: {text}"
                        ))
                    };
                }
                ErrorKind::Connection | ErrorKind::Io => return transient(),
                _ => {}
            }
        } else if err.is::<std::io::Error>() {
            return transient();
        } else if let Some(r) = err.downcast_ref::<reqwest::Error>()
            && (r.is_timeout() || r.is_connect() || r.is_request() || r.is_body())
        {
            return transient();
        }
        next = err.source();
    }
    Failure::Permanent(format!("cannot get a token for Microsoft Graph: {text}"))
}

/// Whether an HTTP status says "try later".
fn transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// A reqwest error without the URL it names (the URL is logged beside it).
fn without_url(e: &reqwest::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut next = std::error::Error::source(e);
    while let Some(s) = next {
        parts.push(s.to_string());
        next = s.source();
    }
    parts.join(": ")
}

/// What a status means for the request.
pub(crate) fn classify(
    status: u16,
    retry_after: Option<Duration>,
    body: Vec<u8>,
) -> std::result::Result<Vec<u8>, Failure> {
    if status == 200 {
        return Ok(body);
    }
    let (code, message) = graph_error(&body);
    let said = format!("HTTP {status} {code}: {message}");
    Err(match status {
        429 => Failure::Transient(retry_after, format!("throttled ({said})")),
        408 | 500 | 502 | 503 | 504 => {
            Failure::Transient(retry_after, format!("unavailable ({said})"))
        }
        401 => Failure::Permanent(format!(
            "Graph refused the token ({said}): check the credential (--graph-credential) and that it is for this tenant and --graph-url"
        )),
        403 if code.contains("NonPremium") || message.to_ascii_lowercase().contains("licen") => {
            Failure::Permanent(format!(
                "Graph refused to list sign-ins ({said}): reading sign-in logs through Microsoft Graph needs a Microsoft Entra ID P1 or P2 licence in the tenant"
            ))
        }
        403 => Failure::Permanent(format!(
            "Graph refused to list sign-ins ({said}): the identity needs the Microsoft Graph application permission AuditLog.Read.All, with admin consent (and the tenant a Microsoft Entra ID P1 or P2 licence)"
        )),
        400 => Failure::Permanent(format!(
            "Graph rejected the query ({said}): check --since, --until and --graph-event-type (the $filter on createdDateTime and signInEventTypes) and --graph-page-size ($top)"
        )),
        404 => Failure::Permanent(format!(
            "Graph has no such endpoint ({said}): check --graph-url and --graph-version"
        )),
        _ => Failure::Permanent(format!("Graph answered {said}")),
    })
}

/// Graph's error body, `{"error":{"code":…,"message":…}}`, or what there is.
fn graph_error(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let e = &v["error"];
    let code = e["code"].as_str().unwrap_or("").to_owned();
    let message = e["message"].as_str().map(str::to_owned).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        text.chars().take(200).collect()
    });
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_unavailability_are_transient_with_their_retry_after() {
        let wait = Some(Duration::from_secs(7));
        assert!(matches!(
            classify(429, wait, Vec::new()),
            Err(Failure::Transient(w, _)) if w == wait
        ));
        assert!(matches!(
            classify(503, None, Vec::new()),
            Err(Failure::Transient(None, _))
        ));
        assert_eq!(classify(200, None, b"{}".to_vec()), Ok(b"{}".to_vec()));
    }

    fn token_error(inner: azure_core::Error) -> azure_core::Error {
        azure_core::Error::with_error(
            azure_core::error::ErrorKind::Credential,
            inner,
            "ClientSecretCredential authentication failed.",
        )
    }

    fn http(status: azure_core::http::StatusCode) -> azure_core::Error {
        azure_core::Error::with_message(
            azure_core::error::ErrorKind::HttpResponse {
                status,
                error_code: None,
                raw_response: None,
            },
            "the token endpoint answered",
        )
    }

    #[test]
    fn a_token_error_from_the_network_or_a_busy_token_endpoint_is_retried() {
        use azure_core::error::ErrorKind;
        use azure_core::http::StatusCode;
        let dropped = token_error(azure_core::Error::with_error(
            ErrorKind::Io,
            std::io::Error::from(std::io::ErrorKind::ConnectionReset),
            "failed to execute `reqwest` request",
        ));
        assert!(matches!(
            token_failure(&dropped),
            Failure::Transient(None, _)
        ));
        let refused = token_error(azure_core::Error::with_message(
            ErrorKind::Connection,
            "connection refused",
        ));
        assert!(matches!(token_failure(&refused), Failure::Transient(..)));
        for status in [
            StatusCode::ServiceUnavailable,
            StatusCode::InternalServerError,
            StatusCode::TooManyRequests,
            StatusCode::RequestTimeout,
        ] {
            assert!(
                matches!(
                    token_failure(&token_error(http(status))),
                    Failure::Transient(..)
                ),
                "{status:?}"
            );
        }
    }

    #[test]
    fn a_token_endpoints_4xx_or_missing_configuration_stops_the_source() {
        use azure_core::error::ErrorKind;
        use azure_core::http::StatusCode;
        for status in [StatusCode::BadRequest, StatusCode::Unauthorized] {
            assert!(
                matches!(
                    token_failure(&token_error(http(status))),
                    Failure::Permanent(_)
                ),
                "{status:?}"
            );
        }
        let missing =
            azure_core::Error::with_message(ErrorKind::Credential, "AZURE_TENANT_ID is not set");
        let Failure::Permanent(m) = token_failure(&missing) else {
            panic!("permanent")
        };
        assert!(m.contains("AZURE_TENANT_ID"), "{m}");
    }

    #[test]
    fn a_408_is_transient() {
        assert!(matches!(
            classify(408, None, Vec::new()),
            Err(Failure::Transient(..))
        ));
    }

    #[test]
    fn a_403_names_the_permission_or_the_licence_and_a_400_the_filter() {
        let denied = br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#;
        let Err(Failure::Permanent(m)) = classify(403, None, denied.to_vec()) else {
            panic!("permanent")
        };
        assert!(m.contains("AuditLog.Read.All"), "{m}");
        assert!(m.contains("Authorization_RequestDenied"), "{m}");
        let licence = br#"{"error":{"code":"Authentication_RequestFromNonPremiumTenantOrB2CTenant","message":"Neither tenant is B2C or tenant doesn't have premium license"}}"#;
        let Err(Failure::Permanent(m)) = classify(403, None, licence.to_vec()) else {
            panic!("permanent")
        };
        assert!(m.contains("P1 or P2"), "{m}");
        let bad = br#"{"error":{"code":"BadRequest","message":"Invalid filter clause"}}"#;
        let Err(Failure::Permanent(m)) = classify(400, None, bad.to_vec()) else {
            panic!("permanent")
        };
        assert!(m.contains("createdDateTime"), "{m}");
    }
}
