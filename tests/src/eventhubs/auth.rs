//! Authorization: Shared Access Signature tokens, the `$cbs` put-token operation, and which
//! audiences a connection has been authorized for.
//!
//! A SAS token is `SharedAccessSignature sr=<url-encoded resource>&sig=<url-encoded base64
//! HMAC-SHA256>&se=<expiry, Unix seconds>&skn=<key name>`; the signature covers
//! `<url-encoded resource>\n<expiry>` with the key's UTF-8 bytes as the HMAC key (the key is
//! *not* base64-decoded), exactly as the service checks it. A token for a resource authorizes
//! every audience under it: a namespace token opens every hub, a hub token every consumer group
//! and partition of the hub.

use super::management::{reply, string_property};
use super::server::{Connection, Hub, Reply};
use base64::Engine as _;
use fe2o3_amqp_types::messaging::{Body, Message};
use fe2o3_amqp_types::primitives::Value;
use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who may connect: the SAS key the double checks signatures with, and optionally one bearer
/// token it accepts as an Entra ID access token.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// The namespace and its aliases, lowercase.
    pub namespaces: Vec<String>,
    pub key_name: String,
    pub key: String,
    pub bearer_token: Option<String>,
}

/// Why a token was refused: the `status-description` the service would send with a 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused(pub String);

/// Signs a SAS token for `resource` (e.g. `sb://ns.servicebus.windows.net/hub`), valid for
/// `ttl`, as a connection-string client does (it signs `amqps://{namespace}/{hub}`).
pub fn sas_token(resource: &str, key_name: &str, key: &str, ttl: Duration) -> String {
    let expiry = unix_now() + ttl.as_secs();
    let encoded: String = url::form_urlencoded::byte_serialize(resource.as_bytes()).collect();
    let signature = hmac_sha256(key.as_bytes(), format!("{encoded}\n{expiry}").as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(signature);
    let signature: String = url::form_urlencoded::byte_serialize(signature.as_bytes()).collect();
    format!("SharedAccessSignature sr={encoded}&sig={signature}&se={expiry}&skn={key_name}")
}

impl Keys {
    /// Checks `token` for `audience` and returns its expiry (Unix seconds) and the resource it
    /// covers. SAS tokens are recognised by their prefix whatever `type` the request declares
    /// (`servicebus.windows.net:sastoken` from a connection string, `jwt` from a token
    /// credential that happens to return a SAS); other tokens must equal the configured bearer
    /// token.
    pub(crate) fn verify(&self, token: &str, audience: &str) -> Result<(u64, String), Refused> {
        if let Some(fields) = token.strip_prefix("SharedAccessSignature ") {
            return self.verify_sas(fields, audience);
        }
        match &self.bearer_token {
            Some(bearer) if bearer == token => Ok((u64::MAX, normalize(audience))),
            _ => Err(Refused(
                "InvalidIssuer: Token issuer is invalid.".to_string(),
            )),
        }
    }

    fn verify_sas(&self, fields: &str, audience: &str) -> Result<(u64, String), Refused> {
        let malformed = || {
            Refused("MalformedToken: The credentials contained in the authorization header are not in the WRAP format.".to_string())
        };
        let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
        for pair in fields.split('&') {
            let (name, value) = pair.split_once('=').ok_or_else(malformed)?;
            match name {
                "sr" => sr = Some(value),
                "sig" => sig = Some(value),
                "se" => se = Some(value),
                "skn" => skn = Some(value),
                _ => {}
            }
        }
        let (sr, sig, se, skn) = match (sr, sig, se, skn) {
            (Some(sr), Some(sig), Some(se), Some(skn)) => (sr, sig, se, skn),
            _ => return Err(malformed()),
        };
        let expiry: u64 = se.parse().map_err(|_| malformed())?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(percent_decode(sig))
            .map_err(|_| malformed())?;
        let expected = hmac_sha256(self.key.as_bytes(), format!("{sr}\n{se}").as_bytes());
        if percent_decode(skn) != self.key_name || signature != expected {
            return Err(Refused(
                "InvalidSignature: The token has an invalid signature.".to_string(),
            ));
        }
        let now = unix_now();
        if expiry <= now {
            return Err(Refused(format!(
                "ExpiredToken: The token is expired. Expiration time: '{expiry}', Current time: '{now}'."
            )));
        }
        let resource = normalize(&percent_decode(sr));
        if !covers(&resource, &normalize(audience)) {
            return Err(Refused(format!(
                "InvalidAudience: The token audience '{resource}' does not authorize '{audience}'."
            )));
        }
        if !self.namespaces.iter().any(|ns| covers(ns, &resource)) {
            return Err(Refused(format!(
                "InvalidAudience: The token audience '{resource}' is not in namespace '{}'.",
                self.namespaces[0]
            )));
        }
        Ok((expiry, resource))
    }
}

/// The `$cbs` put-token operation: verifies the token for the audience in `name` and, when
/// valid, authorizes the connection for it (202); otherwise replies 401 with the reason.
pub(crate) fn put_token(
    hub: &Hub,
    connection: &Connection,
    request: &Message<Body<Value>>,
) -> Reply {
    let operation = string_property(request, "operation");
    let audience = string_property(request, "name");
    let token = match &request.body {
        Body::Value(value) => match &value.0 {
            Value::String(token) => Some(token.as_str()),
            _ => None,
        },
        _ => None,
    };
    let (Some("put-token"), Some(audience), Some(token)) = (operation, audience, token) else {
        hub.authorizations_refused.fetch_add(1, Ordering::Relaxed);
        return reply(
            request,
            400,
            "BadRequest: a put-token request needs operation=put-token, a name and a token body.",
            Value::Null,
        );
    };
    match hub.keys.verify(token, audience) {
        Ok((expiry, resource)) => {
            connection.grants.grant(resource, expiry);
            hub.authorizations_granted.fetch_add(1, Ordering::Relaxed);
            reply(request, 202, "Accepted", Value::Null)
        }
        Err(Refused(description)) => {
            hub.authorizations_refused.fetch_add(1, Ordering::Relaxed);
            reply(request, 401, &description, Value::Null)
        }
    }
}

/// The resources a connection has put tokens for, with their expiry.
#[derive(Debug, Default)]
pub(crate) struct Grants {
    grants: Mutex<Vec<(String, u64)>>,
}

impl Grants {
    pub(crate) fn grant(&self, resource: String, expiry: u64) {
        self.grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((resource, expiry));
    }

    /// Whether a valid token covering `audience` was put on this connection.
    pub(crate) fn allows(&self, audience: &str) -> bool {
        let audience = normalize(audience);
        let now = unix_now();
        self.grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|(resource, expiry)| *expiry > now && covers(resource, &audience))
    }
}

/// An audience without scheme, case or trailing slash: `amqps://NS/hub/` → `ns/hub`.
pub(crate) fn normalize(uri: &str) -> String {
    let without_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    without_scheme.trim_end_matches('/').to_ascii_lowercase()
}

/// Whether a token for `resource` authorizes `audience` (both normalized).
fn covers(resource: &str, audience: &str) -> bool {
    audience == resource
        || (audience.starts_with(resource) && audience[resource.len()..].starts_with('/'))
}

fn percent_decode(value: &str) -> String {
    url::form_urlencoded::parse(format!("v={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let sign = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let pkey = PKey::hmac(key)?;
        let mut signer = Signer::new(MessageDigest::sha256(), &pkey)?;
        signer.update(data)?;
        signer.sign_to_vec()
    };
    // HMAC with SHA-256 cannot fail for any key length; an empty result never verifies.
    sign().unwrap_or_default()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys {
            namespaces: vec!["ns.servicebus.windows.net".into()],
            key_name: "listen".into(),
            key: "secret".into(),
            bearer_token: None,
        }
    }

    const AUDIENCE: &str =
        "amqps://ns.servicebus.windows.net/hub/ConsumerGroups/$Default/Partitions/0";

    #[test]
    fn a_hub_token_authorizes_its_partitions_only() {
        let token = sas_token(
            "sb://ns.servicebus.windows.net/hub",
            "listen",
            "secret",
            Duration::from_secs(60),
        );
        let (_, resource) = keys().verify(&token, AUDIENCE).unwrap();
        assert_eq!(resource, "ns.servicebus.windows.net/hub");
        let other = "amqps://ns.servicebus.windows.net/hub2/ConsumerGroups/$Default/Partitions/0";
        assert!(
            keys()
                .verify(&token, other)
                .unwrap_err()
                .0
                .starts_with("InvalidAudience")
        );
    }

    #[test]
    fn wrong_key_wrong_name_and_expiry_are_refused_with_the_service_texts() {
        let resource = "sb://ns.servicebus.windows.net/";
        let bad_key = sas_token(resource, "listen", "other", Duration::from_secs(60));
        let bad_name = sas_token(resource, "send", "secret", Duration::from_secs(60));
        let expired = sas_token(resource, "listen", "secret", Duration::ZERO);
        assert!(
            keys()
                .verify(&bad_key, AUDIENCE)
                .unwrap_err()
                .0
                .starts_with("InvalidSignature")
        );
        assert!(
            keys()
                .verify(&bad_name, AUDIENCE)
                .unwrap_err()
                .0
                .starts_with("InvalidSignature")
        );
        assert!(
            keys()
                .verify(&expired, AUDIENCE)
                .unwrap_err()
                .0
                .starts_with("ExpiredToken")
        );
        assert!(keys().verify("garbage", AUDIENCE).is_err());
        assert!(
            keys()
                .verify("SharedAccessSignature sr=x", AUDIENCE)
                .is_err()
        );
    }

    #[test]
    fn grants_cover_audiences_below_the_resource() {
        let grants = Grants::default();
        grants.grant("ns/hub".into(), unix_now() + 60);
        assert!(grants.allows("amqps://NS/hub/ConsumerGroups/cg/Partitions/1"));
        assert!(!grants.allows("amqps://ns/hub2/ConsumerGroups/cg/Partitions/1"));
    }
}
