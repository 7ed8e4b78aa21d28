//! Authorization: Shared Access Signature tokens, the `$cbs` put-token operation, and which
//! audiences a connection has been authorized for.
//!
//! A SAS token is `SharedAccessSignature sr=<url-encoded resource>&sig=<url-encoded base64
//! HMAC-SHA256>&se=<expiry, Unix seconds>&skn=<key name>`; the signature covers
//! `<url-encoded resource>\n<expiry>` with the key's UTF-8 bytes as the HMAC key (the key is
//! *not* base64-decoded), exactly as the service checks it. A token for a resource authorizes
//! every audience under it: a namespace token opens every hub, a hub token every consumer group
//! and partition of the hub.
//!
//! Entra ID tokens are JWTs; the double mints its own (HS256 with a key of its own, since no
//! identity provider is at hand) and checks what the service checks: the declared `type`
//! (`jwt`), the signature, the audience claim (`https://eventhubs.azure.net/`) and the expiry.
//! A put-token declares its type, and a SAS token declared as `jwt` (or the reverse) is refused.
//!
//! An authorization lasts until its token expires (or, with a lifetime cap, sooner): a link
//! whose connection holds no valid authorization for its address any more is closed
//! (`receiver.rs`), as the service closes links whose token was not renewed.

use super::management::{reply, string_property};
use super::server::{Connection, Hub, Reply};
use base64::Engine as _;
use fe2o3_amqp_types::messaging::{Body, Message};
use fe2o3_amqp_types::primitives::Value;
use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who may connect: the SAS key the double checks signatures with, and optionally the key of
/// the Entra ID tokens it accepts.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// The namespace and its aliases, lowercase.
    pub namespaces: Vec<String>,
    pub key_name: String,
    pub key: String,
    /// The HS256 key of the Entra ID tokens the double mints ([`entra_token`]); `None`
    /// accepts SAS tokens only.
    pub entra_key: Option<String>,
    /// A service-side cap on how long one put-token authorizes a connection, so that tests
    /// see links outlive their authorization.
    pub max_token_lifetime: Option<Duration>,
}

/// The put-token `type` of SAS tokens.
pub(crate) const SAS_TYPE: &str = "servicebus.windows.net:sastoken";
/// The put-token `type` of Entra ID tokens.
pub(crate) const JWT_TYPE: &str = "jwt";
/// The audience claim of an Entra ID token for Event Hubs.
pub const ENTRA_AUDIENCE: &str = "https://eventhubs.azure.net/";

/// Mints an Entra ID access token for Event Hubs, valid for `ttl`, signed with `key`; returns
/// it with its expiry (Unix seconds).
pub fn entra_token(key: &str, audience: &str, ttl: Duration) -> (String, u64) {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let expiry = unix_now() + ttl.as_secs();
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64.encode(
        format!(r#"{{"aud":"{audience}","iss":"https://sts.windows.net/double/","exp":{expiry}}}"#)
            .as_bytes(),
    );
    let signature = b64.encode(hmac_sha256(
        key.as_bytes(),
        format!("{header}.{claims}").as_bytes(),
    ));
    (format!("{header}.{claims}.{signature}"), expiry)
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
    /// Checks `token`, declared as `kind` (`None`: as a `$management` request's
    /// `security_token`, any kind), for `audience`; returns its expiry (Unix seconds) and the
    /// resource it covers.
    pub(crate) fn verify(
        &self,
        token: &str,
        kind: Option<&str>,
        audience: &str,
    ) -> Result<(u64, String), Refused> {
        let sas = token.starts_with("SharedAccessSignature ");
        match kind {
            Some(SAS_TYPE) if !sas => {
                return Err(Refused(format!(
                    "InvalidToken: a token declared as '{SAS_TYPE}' is not a SharedAccessSignature."
                )));
            }
            Some(JWT_TYPE) if sas => {
                return Err(Refused(format!(
                    "InvalidToken: a SharedAccessSignature must be declared as '{SAS_TYPE}', not '{JWT_TYPE}'."
                )));
            }
            Some(SAS_TYPE) | Some(JWT_TYPE) | None => {}
            Some(other) => {
                return Err(Refused(format!(
                    "InvalidToken: the token type '{other}' is not supported."
                )));
            }
        }
        if let Some(fields) = token.strip_prefix("SharedAccessSignature ") {
            return self.verify_sas(fields, audience);
        }
        self.verify_jwt(token, audience)
    }

    /// An Entra ID token: signed with the double's key, for Event Hubs, not expired. It
    /// authorizes whatever the identity's role allows; here, every audience of the namespace.
    fn verify_jwt(&self, token: &str, audience: &str) -> Result<(u64, String), Refused> {
        let invalid = || Refused("InvalidIssuer: Token issuer is invalid.".to_string());
        let Some(key) = &self.entra_key else {
            return Err(invalid());
        };
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let expected = hmac_sha256(key.as_bytes(), format!("{header}.{claims}").as_bytes());
        if b64.decode(signature).ok() != Some(expected) {
            return Err(Refused(
                "InvalidSignature: The token has an invalid signature.".to_string(),
            ));
        }
        let claims: serde_json::Value = b64
            .decode(claims)
            .ok()
            .and_then(|c| serde_json::from_slice(&c).ok())
            .ok_or_else(invalid)?;
        let aud = claims["aud"].as_str().unwrap_or_default();
        if aud.trim_end_matches('/') != ENTRA_AUDIENCE.trim_end_matches('/') {
            return Err(Refused(format!(
                "InvalidAudience: The token audience '{aud}' is not valid for Event Hubs."
            )));
        }
        let expiry = claims["exp"].as_u64().ok_or_else(invalid)?;
        let now = unix_now();
        if expiry <= now {
            return Err(Refused(format!(
                "ExpiredToken: The token is expired. Expiration time: '{expiry}', Current time: '{now}'."
            )));
        }
        let namespace = self.namespaces[0].clone();
        if !self
            .namespaces
            .iter()
            .any(|ns| covers(ns, &normalize(audience)))
        {
            return Err(Refused(format!(
                "InvalidAudience: '{audience}' is not in namespace '{namespace}'."
            )));
        }
        Ok((expiry, namespace))
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
    let kind = string_property(request, "type");
    let token = match &request.body {
        Body::Value(value) => match &value.0 {
            Value::String(token) => Some(token.as_str()),
            _ => None,
        },
        _ => None,
    };
    let (Some("put-token"), Some(audience), Some(token), Some(kind)) =
        (operation, audience, token, kind)
    else {
        hub.authorizations_refused.fetch_add(1, Ordering::Relaxed);
        return reply(
            request,
            400,
            "BadRequest: a put-token request needs operation=put-token, a name, a type and a token body.",
            Value::Null,
        );
    };
    match hub.keys.verify(token, Some(kind), audience) {
        Ok((expiry, resource)) => {
            let mut expiry_ms = expiry.saturating_mul(1000);
            if let Some(cap) = hub.keys.max_token_lifetime {
                expiry_ms = expiry_ms.min(unix_now_ms() + cap.as_millis() as u64);
            }
            connection.grants.grant(resource, expiry_ms);
            hub.authorizations_granted.fetch_add(1, Ordering::Relaxed);
            reply(request, 202, "Accepted", Value::Null)
        }
        Err(Refused(description)) => {
            hub.authorizations_refused.fetch_add(1, Ordering::Relaxed);
            reply(request, 401, &description, Value::Null)
        }
    }
}

/// The resources a connection has put tokens for, with their expiry (Unix milliseconds).
#[derive(Debug, Default)]
pub(crate) struct Grants {
    grants: Mutex<Vec<(String, u64)>>,
}

impl Grants {
    pub(crate) fn grant(&self, resource: String, expiry_ms: u64) {
        self.grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((resource, expiry_ms));
    }

    /// Whether a valid token covering `audience` was put on this connection.
    pub(crate) fn allows(&self, audience: &str) -> bool {
        self.expiry_ms(audience).is_some()
    }

    /// Until when (Unix milliseconds) the connection is authorized for `audience`: the latest
    /// expiry of the valid tokens covering it.
    pub(crate) fn expiry_ms(&self, audience: &str) -> Option<u64> {
        let audience = normalize(audience);
        let now = unix_now_ms();
        self.grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(resource, expiry)| *expiry > now && covers(resource, &audience))
            .map(|(_, expiry)| *expiry)
            .max()
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

fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
            entra_key: Some("entra".into()),
            max_token_lifetime: None,
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
        let (_, resource) = keys().verify(&token, Some(SAS_TYPE), AUDIENCE).unwrap();
        assert_eq!(resource, "ns.servicebus.windows.net/hub");
        let other = "amqps://ns.servicebus.windows.net/hub2/ConsumerGroups/$Default/Partitions/0";
        assert!(
            keys()
                .verify(&token, Some(SAS_TYPE), other)
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
                .verify(&bad_key, Some(SAS_TYPE), AUDIENCE)
                .unwrap_err()
                .0
                .starts_with("InvalidSignature")
        );
        assert!(
            keys()
                .verify(&bad_name, Some(SAS_TYPE), AUDIENCE)
                .unwrap_err()
                .0
                .starts_with("InvalidSignature")
        );
        assert!(
            keys()
                .verify(&expired, Some(SAS_TYPE), AUDIENCE)
                .unwrap_err()
                .0
                .starts_with("ExpiredToken")
        );
        assert!(keys().verify("garbage", Some(JWT_TYPE), AUDIENCE).is_err());
        assert!(
            keys()
                .verify("SharedAccessSignature sr=x", Some(SAS_TYPE), AUDIENCE)
                .is_err()
        );
    }

    #[test]
    fn a_token_must_be_declared_as_what_it_is() {
        let sas = sas_token(
            "sb://ns.servicebus.windows.net/",
            "listen",
            "secret",
            Duration::from_secs(60),
        );
        assert!(keys().verify(&sas, Some(SAS_TYPE), AUDIENCE).is_ok());
        let e = keys().verify(&sas, Some(JWT_TYPE), AUDIENCE).unwrap_err();
        assert!(e.0.starts_with("InvalidToken"), "{e:?}");
        let (jwt, _) = entra_token("entra", ENTRA_AUDIENCE, Duration::from_secs(60));
        assert!(keys().verify(&jwt, Some(JWT_TYPE), AUDIENCE).is_ok());
        let e = keys().verify(&jwt, Some(SAS_TYPE), AUDIENCE).unwrap_err();
        assert!(e.0.starts_with("InvalidToken"), "{e:?}");
        assert!(keys().verify(&jwt, Some("other"), AUDIENCE).is_err());
    }

    #[test]
    fn an_entra_token_needs_the_key_the_audience_and_time() {
        let ok = |t: &str| keys().verify(t, Some(JWT_TYPE), AUDIENCE);
        let (forged, _) = entra_token("not-the-key", ENTRA_AUDIENCE, Duration::from_secs(60));
        assert!(ok(&forged).unwrap_err().0.starts_with("InvalidSignature"));
        let (storage, _) = entra_token(
            "entra",
            "https://storage.azure.com/",
            Duration::from_secs(60),
        );
        assert!(ok(&storage).unwrap_err().0.starts_with("InvalidAudience"));
        let (expired, _) = entra_token("entra", ENTRA_AUDIENCE, Duration::ZERO);
        assert!(ok(&expired).unwrap_err().0.starts_with("ExpiredToken"));
        let other_ns = "amqps://other.servicebus.windows.net/hub/ConsumerGroups/$Default";
        let (good, _) = entra_token("entra", ENTRA_AUDIENCE, Duration::from_secs(60));
        assert!(keys().verify(&good, Some(JWT_TYPE), other_ns).is_err());
    }

    #[test]
    fn grants_cover_audiences_below_the_resource() {
        let grants = Grants::default();
        grants.grant("ns/hub".into(), unix_now_ms() + 60_000);
        assert!(grants.allows("amqps://NS/hub/ConsumerGroups/cg/Partitions/1"));
        assert!(!grants.allows("amqps://ns/hub2/ConsumerGroups/cg/Partitions/1"));
    }
}
