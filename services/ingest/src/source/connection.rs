//! Event Hubs connection strings, read without ever echoing them.

use anyhow::{Result, bail};
use mfagap_runtime::Secret;

/// What a namespace or event-hub connection string says, minus the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectionInfo {
    /// `NAMESPACE.servicebus.windows.net`, or `localhost` for the emulator.
    pub host: String,
    /// The endpoint's port, when it names one (the emulator's AMQP port in tests).
    pub port: Option<u16>,
    /// `EntityPath`: the event hub, when the string is scoped to one.
    pub entity_path: Option<String>,
    pub key_name: Option<String>,
    /// `UseDevelopmentEmulator=true`: plaintext, emulator ports.
    pub emulator: bool,
}

impl ConnectionInfo {
    /// Parses `Endpoint=sb://…/;SharedAccessKeyName=…;SharedAccessKey=…[;EntityPath=…]`.
    /// Errors name the missing part, never the string.
    pub(crate) fn parse(s: &Secret) -> Result<ConnectionInfo> {
        let (mut endpoint, mut entity_path, mut key_name, mut emulator) = (None, None, None, false);
        for part in s
            .expose()
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let Some((k, v)) = part.split_once('=') else {
                bail!("the connection string has a part without '=' (value not shown)");
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(v.trim().to_owned()),
                "entitypath" => entity_path = Some(v.trim().to_owned()),
                "sharedaccesskeyname" => key_name = Some(v.trim().to_owned()),
                "usedevelopmentemulator" => emulator = v.trim().eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        let Some(endpoint) = endpoint else {
            bail!("the connection string has no Endpoint (value not shown)");
        };
        let authority = endpoint
            .trim_start_matches("sb://")
            .trim_start_matches("amqps://")
            .trim_start_matches("amqp://")
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or("");
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                Some(p.parse::<u16>().map_err(|_| {
                    anyhow::anyhow!(
                        "the connection string's Endpoint has a bad port (value not shown)"
                    )
                })?),
            ),
            None => (authority.to_owned(), None),
        };
        if host.is_empty() {
            bail!("the connection string's Endpoint has no host (value not shown)");
        }
        Ok(ConnectionInfo {
            host,
            port,
            entity_path,
            key_name,
            emulator,
        })
    }

    /// The emulator's plain AMQP endpoint: the client dials TLS on 5671 unless told otherwise.
    pub(crate) fn amqp_endpoint(&self) -> String {
        format!("amqp://{}:{}", self.host, self.port.unwrap_or(5672))
    }

    /// The namespace's Kafka endpoint.
    pub(crate) fn kafka_bootstrap(&self) -> String {
        let port = if self.emulator { 9092 } else { 9093 };
        format!("{}:{port}", self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_and_hub_strings_are_read() {
        let s = Secret::new(
            "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0;EntityPath=signins",
        );
        let c = ConnectionInfo::parse(&s).unwrap();
        assert_eq!(c.host, "contoso.servicebus.windows.net");
        assert_eq!(c.entity_path.as_deref(), Some("signins"));
        assert_eq!(c.kafka_bootstrap(), "contoso.servicebus.windows.net:9093");
        assert!(!c.emulator);
    }

    #[test]
    fn the_emulator_string_is_recognised() {
        let s = Secret::new(
            "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;",
        );
        let c = ConnectionInfo::parse(&s).unwrap();
        assert!(c.emulator);
        assert_eq!(c.kafka_bootstrap(), "localhost:9092");
    }

    #[test]
    fn errors_never_show_the_key() {
        let s = Secret::new("SharedAccessKeyName=x;SharedAccessKey=TOPSECRET");
        let e = ConnectionInfo::parse(&s).unwrap_err().to_string();
        assert!(!e.contains("TOPSECRET"), "{e}");
        let s = Secret::new("TOPSECRET");
        let e = ConnectionInfo::parse(&s).unwrap_err().to_string();
        assert!(!e.contains("TOPSECRET"), "{e}");
    }
}
