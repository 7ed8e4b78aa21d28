//! Reaching a namespace: a SAS connection string (with or without `EntityPath`, the emulator's
//! included) or Entra ID through `azure_identity`.
//!
//! The client dials TLS on 5671 and ignores `UseDevelopmentEmulator`; for the emulator (and
//! any AMQP proxy or test double) the connection goes to a custom endpoint instead, plain AMQP
//! on the endpoint's port (5672 by default). Audiences and checkpoint names keep the
//! namespace's own name either way.

use crate::source::connection::ConnectionInfo;
use anyhow::{Result, bail};
use azure_core::credentials::TokenCredential;
use azure_messaging_eventhubs::ConsumerClient;
use mfagap_runtime::Secret;
use mfagap_runtime::{Error, ErrorKind};
use std::sync::Arc;

/// How the source authenticates when no connection string is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CredentialKind {
    /// Workload identity when its token file is configured (AKS), managed identity otherwise.
    Auto,
    /// AKS workload identity: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`.
    WorkloadIdentity,
    /// The host's managed identity; a user-assigned one by `AZURE_CLIENT_ID`.
    ManagedIdentity,
    /// A service principal: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`.
    ClientSecret,
    /// The developer's own login (Azure CLI, Azure Developer CLI).
    Developer,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// The fully qualified namespace, e.g. `contoso.servicebus.windows.net`.
    pub namespace: String,
    /// The event hub read: `--eventhub`, else the connection string's `EntityPath`.
    pub event_hub: String,
    /// The consumer group; checkpoints and ownership are kept per group.
    pub consumer_group: String,
    /// `amqp://host:port` to dial instead of the namespace (emulator, proxy, test double).
    pub endpoint: Option<String>,
    /// The connection string's key, or an Entra ID credential.
    pub auth: Auth,
}

#[derive(Debug, Clone)]
pub enum Auth {
    ConnectionString(Secret),
    Entra(CredentialKind),
}

impl Target {
    /// Resolves the settings into one target: the connection string gives the namespace, the
    /// event hub (its `EntityPath`, unless `--eventhub` names it) and, for the emulator, the
    /// endpoint.
    pub fn resolve(
        connection_string: Option<&Secret>,
        namespace: Option<&str>,
        event_hub: Option<&str>,
        consumer_group: &str,
        endpoint: Option<&str>,
        credential: CredentialKind,
    ) -> Result<Target> {
        let (namespace, entity_path, emulator_endpoint, auth) = match connection_string {
            Some(cs) => {
                let info = ConnectionInfo::parse(cs)?;
                let emulator = info.emulator.then(|| info.amqp_endpoint());
                (
                    info.host,
                    info.entity_path,
                    emulator,
                    Auth::ConnectionString(cs.clone()),
                )
            }
            None => {
                let Some(ns) = namespace else {
                    bail!(
                        "the eventhubs source needs --eventhubs-namespace (with an Entra ID credential) or --eventhubs-connection-string"
                    );
                };
                (qualify(ns), None, None, Auth::Entra(credential))
            }
        };
        let event_hub = match (event_hub, entity_path) {
            (Some(h), Some(p)) if !h.eq_ignore_ascii_case(&p) => {
                bail!("--eventhub {h} differs from the connection string's EntityPath {p}")
            }
            (Some(h), _) => h.to_owned(),
            (None, Some(p)) => p,
            (None, None) => bail!(
                "the eventhubs source needs --eventhub (or a connection string with EntityPath)"
            ),
        };
        Ok(Target {
            namespace,
            event_hub,
            consumer_group: consumer_group.to_owned(),
            endpoint: endpoint.map(str::to_owned).or(emulator_endpoint),
            auth,
        })
    }

    /// Opens a client; `instance` names this replica as the owner of the partitions it claims.
    pub async fn open(&self, instance: &str) -> Result<ConsumerClient> {
        let mut builder = ConsumerClient::builder()
            .with_consumer_group(self.consumer_group.clone())
            .with_application_id(instance.to_owned());
        if let Some(e) = &self.endpoint {
            builder = builder.with_custom_endpoint(e.clone());
        }
        let opened = match &self.auth {
            Auth::ConnectionString(cs) => {
                builder
                    .open_with_connection_string(cs.expose(), Some(&self.event_hub))
                    .await
            }
            Auth::Entra(kind) => {
                let credential = credential(*kind, "--eventhubs-credential")?;
                builder
                    .open(&self.namespace, self.event_hub.clone(), credential)
                    .await
            }
        };
        opened.map_err(|e| {
            let secrets: Vec<&Secret> = match &self.auth {
                Auth::ConnectionString(cs) => vec![cs],
                Auth::Entra(_) => vec![],
            };
            Error::new(
                kind_of(&e),
                format!(
                    "cannot open event hub {} in namespace {}: {}",
                    self.event_hub,
                    self.namespace,
                    mfagap_runtime::secret::scrub(&causes(&e), &[], &secrets)
                ),
            )
            .into()
        })
    }
}

/// What to do about an SDK or storage error, read from its types along the source chain:
/// a refused credential, an unknown event hub or consumer group, a missing or forbidden
/// checkpoint container is a configuration error; anything else may pass.
pub(crate) fn kind_of(e: &(dyn std::error::Error + 'static)) -> ErrorKind {
    use azure_core::http::StatusCode;
    use azure_core_amqp::error::{AmqpErrorCondition, AmqpErrorKind};
    let refused = |s: StatusCode| {
        matches!(
            s,
            StatusCode::Unauthorized | StatusCode::Forbidden | StatusCode::NotFound
        )
    };
    let mut next = Some(e);
    let mut depth = 0;
    while let Some(e) = next {
        if let Some(a) = e.downcast_ref::<azure_core_amqp::AmqpError>() {
            match a.kind() {
                AmqpErrorKind::ManagementStatusCode(s, _) if refused(*s) => {
                    return ErrorKind::Configuration;
                }
                AmqpErrorKind::AmqpDescribedError(d)
                    if matches!(
                        d.condition,
                        AmqpErrorCondition::UnauthorizedAccess | AmqpErrorCondition::NotFound
                    ) =>
                {
                    return ErrorKind::Configuration;
                }
                _ => {}
            }
        }
        if let Some(c) = e.downcast_ref::<azure_core::Error>() {
            match c.kind() {
                azure_core::error::ErrorKind::Credential => return ErrorKind::Configuration,
                azure_core::error::ErrorKind::HttpResponse { status, .. } if refused(*status) => {
                    return ErrorKind::Configuration;
                }
                _ => {}
            }
        }
        if let Some(s) = e.downcast_ref::<object_store::Error>()
            && matches!(
                s,
                object_store::Error::NotFound { .. }
                    | object_store::Error::Unauthenticated { .. }
                    | object_store::Error::PermissionDenied { .. }
            )
        {
            return ErrorKind::Configuration;
        }
        depth += 1;
        next = if depth < 16 { e.source() } else { None };
    }
    ErrorKind::Retryable
}

/// Whether the service answered that the entity does not exist (`amqp:not-found`), read from
/// the error's types: an unknown consumer group, or event hub.
pub(crate) fn is_not_found(e: &(dyn std::error::Error + 'static)) -> bool {
    use azure_core_amqp::error::{AmqpErrorCondition, AmqpErrorKind};
    let mut next = Some(e);
    let mut depth = 0;
    while let Some(e) = next {
        if let Some(a) = e.downcast_ref::<azure_core_amqp::AmqpError>()
            && let AmqpErrorKind::AmqpDescribedError(d) = a.kind()
            && d.condition == AmqpErrorCondition::NotFound
        {
            return true;
        }
        depth += 1;
        next = if depth < 16 { e.source() } else { None };
    }
    false
}

/// An SDK error with its causes: the top level alone often hides the service's answer (a 401
/// and its reason sit a few sources down).
pub(crate) fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(e) = next {
        let mut text = e.to_string();
        // The SDK's wrappers name their layer, not the problem.
        while let Some(rest) = ["AMQP Error: ", "Azure Core Error: "]
            .iter()
            .find_map(|w| text.strip_prefix(w))
        {
            text = rest.to_owned();
        }
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.retain(|p| !text.contains(p.as_str()));
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// `contoso` → `contoso.servicebus.windows.net`; a name with a dot is taken as given.
fn qualify(namespace: &str) -> String {
    let ns = namespace
        .trim()
        .trim_start_matches("sb://")
        .trim_end_matches('/');
    if ns.contains('.') {
        ns.to_owned()
    } else {
        format!("{ns}.servicebus.windows.net")
    }
}

/// The Entra ID credential `kind` names (`auto`: workload identity when its token file is
/// configured, managed identity otherwise), for every source that authenticates with one;
/// `flag` names the setting in errors.
pub(crate) fn credential(kind: CredentialKind, flag: &str) -> Result<Arc<dyn TokenCredential>> {
    use azure_identity::{
        ClientSecretCredential, DeveloperToolsCredential, ManagedIdentityCredential,
        ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let kind = match kind {
        CredentialKind::Auto if env("AZURE_FEDERATED_TOKEN_FILE").is_some() => {
            CredentialKind::WorkloadIdentity
        }
        CredentialKind::Auto => CredentialKind::ManagedIdentity,
        k => k,
    };
    let made: azure_core::Result<Arc<dyn TokenCredential>> = match kind {
        CredentialKind::WorkloadIdentity => WorkloadIdentityCredential::new(None).map(|c| c as _),
        CredentialKind::ManagedIdentity => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: env("AZURE_CLIENT_ID").map(UserAssignedId::ClientId),
                ..Default::default()
            }))
            .map(|c| c as _)
        }
        CredentialKind::ClientSecret => {
            let (Some(tenant), Some(client), Some(secret)) = (
                env("AZURE_TENANT_ID"),
                env("AZURE_CLIENT_ID"),
                env("AZURE_CLIENT_SECRET"),
            ) else {
                bail!(
                    "{flag} client-secret needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"
                );
            };
            ClientSecretCredential::new(&tenant, client, secret.into(), None).map(|c| c as _)
        }
        CredentialKind::Developer => DeveloperToolsCredential::new(None).map(|c| c as _),
        CredentialKind::Auto => unreachable!("resolved above"),
    };
    made.map_err(|e| {
        Error::configuration(format!(
            "cannot set up the {kind:?} credential: {}",
            causes(&e)
        ))
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_string_becomes_a_plain_amqp_endpoint() {
        let cs = Secret::new(
            "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;",
        );
        let t = Target::resolve(
            Some(&cs),
            None,
            Some("signins"),
            "$Default",
            None,
            CredentialKind::Auto,
        )
        .unwrap();
        assert_eq!(t.namespace, "localhost");
        assert_eq!(t.endpoint.as_deref(), Some("amqp://localhost:5672"));
        let cs = Secret::new(
            "Endpoint=sb://127.0.0.1:15672;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;EntityPath=hub",
        );
        let t = Target::resolve(Some(&cs), None, None, "g", None, CredentialKind::Auto).unwrap();
        assert_eq!(t.endpoint.as_deref(), Some("amqp://127.0.0.1:15672"));
        assert_eq!(t.event_hub, "hub");
    }

    #[test]
    fn a_real_namespace_string_keeps_tls_and_the_entity_path() {
        let cs = Secret::new(
            "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0;EntityPath=signins",
        );
        let t = Target::resolve(Some(&cs), None, None, "g", None, CredentialKind::Auto).unwrap();
        assert_eq!(t.namespace, "contoso.servicebus.windows.net");
        assert_eq!(t.event_hub, "signins");
        assert_eq!(t.endpoint, None);
        let e = Target::resolve(
            Some(&cs),
            None,
            Some("other"),
            "g",
            None,
            CredentialKind::Auto,
        )
        .unwrap_err();
        assert!(e.to_string().contains("EntityPath"), "{e}");
    }

    #[test]
    fn entra_needs_a_namespace_and_an_event_hub() {
        let t = Target::resolve(
            None,
            Some("contoso"),
            Some("signins"),
            "g",
            None,
            CredentialKind::ManagedIdentity,
        )
        .unwrap();
        assert_eq!(t.namespace, "contoso.servicebus.windows.net");
        assert!(matches!(
            t.auth,
            Auth::Entra(CredentialKind::ManagedIdentity)
        ));
        assert!(Target::resolve(None, None, Some("h"), "g", None, CredentialKind::Auto).is_err());
        assert!(Target::resolve(None, Some("ns"), None, "g", None, CredentialKind::Auto).is_err());
    }
}
