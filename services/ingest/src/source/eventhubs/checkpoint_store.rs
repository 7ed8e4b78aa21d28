//! Checkpoints and partition ownership in Azure Blob storage, where the Event Hubs SDKs keep
//! them, so replicas of mfagap (and of any other Event Hubs processor) share one container.
//!
//! Layout: one empty blob per partition, its state in the blob's metadata —
//! `{namespace}/{event hub}/{consumer group}/ownership/{partition}` carries `ownerid`, and
//! `…/checkpoint/{partition}` carries `sequencenumber` and `offset`. The names are
//! lower-cased, as the .NET, Java, Python and Go stores write them.
//!
//! A claim is a conditional write: `If-Match` the ETag seen when the ownerships were listed, or
//! `If-None-Match: *` for a partition never owned. Of two replicas racing for one partition
//! exactly one write succeeds; the other's claim is dropped, as the SDK's load balancer expects.
//! Clearing `ownerid` (a claim with no owner) releases a partition at once instead of after the
//! expiration time.
//!
//! The SDK's own Blob store (0.9) is built for client 0.15, which cannot sign SAS connection
//! strings; this one runs on `object_store`, with the same settings as the archiver's storage.

use anyhow::{Context, Result, bail};
use azure_core::http::Etag;
use azure_core::time::OffsetDateTime;
use azure_messaging_eventhubs::CheckpointStore;
use azure_messaging_eventhubs::models::{Checkpoint, Ownership};
use futures::TryStreamExt;
use mfagap_runtime::secret::{Property, display_property};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, ObjectStore, PutMode, PutOptions,
    PutPayload, UpdateVersion,
};
use std::sync::Arc;

const OWNER_ID: &str = "ownerid";
const OFFSET: &str = "offset";
const SEQUENCE_NUMBER: &str = "sequencenumber";

/// The checkpoint store of the `eventhubs` source.
#[derive(Debug, Clone)]
pub struct BlobCheckpointStore {
    store: Arc<dyn ObjectStore>,
    /// Blob-name prefix inside the container (from the URL's path), may be empty.
    prefix: String,
    /// The container as the operator named it, for messages (never carries secrets).
    pub location: String,
}

impl BlobCheckpointStore {
    /// Opens `az://container[/prefix]` or `https://account.blob.core.windows.net/container`,
    /// with `object_store` Azure settings (`azure_storage_account_key=…`,
    /// `azure_storage_use_emulator=true`, …) and the `AZURE_*` environment; without a key or
    /// SAS it authenticates with Entra ID (workload identity, managed identity).
    pub fn open(location: &str, options: &[Property]) -> Result<BlobCheckpointStore> {
        let url = url::Url::parse(location)
            .with_context(|| format!("--checkpoint-store {location:?} is not a URL"))?;
        let (container, prefix) = match url.scheme() {
            "az" | "abfs" | "abfss" | "azure" => (
                url.host_str().unwrap_or_default().to_owned(),
                url.path().trim_matches('/').to_owned(),
            ),
            "https" | "http" => {
                let mut segments = url.path().trim_matches('/').splitn(2, '/');
                let container = segments.next().unwrap_or_default().to_owned();
                (container, segments.next().unwrap_or_default().to_owned())
            }
            other => bail!(
                "--checkpoint-store must be an Azure Blob container (az://container or https://ACCOUNT.blob.core.windows.net/container), not {other}://"
            ),
        };
        if container.is_empty() {
            bail!("--checkpoint-store {location:?} names no container");
        }
        let mut b = MicrosoftAzureBuilder::from_env().with_url(location);
        for p in options {
            let key: AzureConfigKey = p.key.parse().with_context(|| {
                format!(
                    "unknown Azure storage option {}",
                    display_property(&p.key, p.value.expose())
                )
            })?;
            b = b.with_config(key, p.value.expose());
        }
        let store = b
            .with_container_name(&container)
            .build()
            .with_context(|| format!("cannot open the checkpoint store {location}"))?;
        Ok(BlobCheckpointStore {
            store: Arc::new(store),
            prefix,
            location: location.to_owned(),
        })
    }

    fn path(&self, name: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{name}", self.prefix))
        }
    }

    /// The partition blobs under a prefix with their metadata, ETag and time: a listing, then
    /// one read per blob, because a listing carries no metadata here. Partitions are few.
    async fn read_all(&self, prefix: &str) -> azure_core::Result<Vec<Blob>> {
        let listed: Vec<_> = self
            .store
            .list(Some(&self.path(prefix)))
            .try_collect()
            .await
            .map_err(storage_error)?;
        let mut out = Vec::with_capacity(listed.len());
        for meta in listed {
            let r = match self
                .store
                .get_opts(&meta.location, GetOptions::default())
                .await
            {
                Ok(r) => r,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(storage_error(e)),
            };
            let get = |k: &'static str| {
                r.attributes
                    .get(&Attribute::Metadata(k.into()))
                    .map(|v| v.as_ref().to_owned())
            };
            out.push(Blob {
                partition: meta.location.filename().unwrap_or_default().to_owned(),
                owner: get(OWNER_ID).filter(|o| !o.is_empty()),
                offset: get(OFFSET),
                sequence_number: get(SEQUENCE_NUMBER),
                etag: r.meta.e_tag.clone(),
                modified: r.meta.last_modified,
            });
        }
        Ok(out)
    }

    /// Writes an empty blob with metadata, under a condition.
    async fn write(
        &self,
        name: &str,
        metadata: &[(&'static str, String)],
        mode: PutMode,
    ) -> object_store::Result<object_store::PutResult> {
        let mut attributes = Attributes::new();
        for (k, v) in metadata {
            attributes.insert(
                Attribute::Metadata((*k).into()),
                AttributeValue::from(v.clone()),
            );
        }
        let opts = PutOptions {
            mode,
            attributes,
            ..PutOptions::default()
        };
        self.store
            .put_opts(&self.path(name), PutPayload::new(), opts)
            .await
    }
}

/// One partition's blob as read.
struct Blob {
    partition: String,
    owner: Option<String>,
    offset: Option<String>,
    sequence_number: Option<String>,
    etag: Option<String>,
    modified: chrono::DateTime<chrono::Utc>,
}

/// The blob-name prefix of a consumer group, as every SDK writes it.
fn group_prefix(namespace: &str, hub: &str, group: &str, kind: &str) -> String {
    format!(
        "{}/{}/{}/{kind}/",
        namespace.to_lowercase(),
        hub.to_lowercase(),
        group.to_lowercase()
    )
}

/// The store's error kept as the source, so that `connect::kind_of` can tell a missing
/// container or a refused key (configuration) from an outage (retry).
fn storage_error(e: object_store::Error) -> azure_core::Error {
    let message = format!("checkpoint store: {e}");
    azure_core::Error::with_error(azure_core::error::ErrorKind::Io, e, message)
}

fn to_offset_date_time(t: chrono::DateTime<chrono::Utc>) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + azure_core::time::Duration::milliseconds(t.timestamp_millis())
}

#[async_trait::async_trait]
impl CheckpointStore for BlobCheckpointStore {
    async fn claim_ownership(
        &self,
        ownerships: &[Ownership],
    ) -> azure_core::Result<Vec<Ownership>> {
        let mut claimed = Vec::new();
        for o in ownerships {
            let name = format!(
                "{}{}",
                group_prefix(
                    &o.fully_qualified_namespace,
                    &o.event_hub_name,
                    &o.consumer_group,
                    "ownership"
                ),
                o.partition_id
            );
            let mode = match &o.etag {
                Some(etag) => PutMode::Update(UpdateVersion {
                    e_tag: Some(etag.to_string()),
                    version: None,
                }),
                None => PutMode::Create,
            };
            let metadata: Vec<(&'static str, String)> =
                o.owner_id.iter().map(|id| (OWNER_ID, id.clone())).collect();
            match self.write(&name, &metadata, mode).await {
                Ok(put) => claimed.push(Ownership {
                    etag: put.e_tag.map(Etag::from),
                    last_modified_time: Some(OffsetDateTime::now_utc()),
                    ..o.clone()
                }),
                // Another replica changed or created the blob first: its claim stands.
                Err(object_store::Error::Precondition { .. })
                | Err(object_store::Error::AlreadyExists { .. }) => {
                    tracing::debug!(partition = %o.partition_id, "ownership claimed by another replica first");
                }
                Err(e) => {
                    tracing::warn!(partition = %o.partition_id, error = %e, "cannot claim the partition");
                }
            }
        }
        Ok(claimed)
    }

    async fn list_checkpoints(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<Checkpoint>> {
        let prefix = group_prefix(namespace, event_hub_name, consumer_group, "checkpoint");
        let mut out = Vec::new();
        for b in self.read_all(&prefix).await? {
            let sequence_number = match b.sequence_number {
                Some(s) => Some(s.parse::<i64>().map_err(|_| {
                    azure_core::Error::with_message(
                        azure_core::error::ErrorKind::DataConversion,
                        format!(
                            "checkpoint of partition {} has a bad sequence number {s:?}",
                            b.partition
                        ),
                    )
                })?),
                None => None,
            };
            out.push(Checkpoint {
                fully_qualified_namespace: namespace.to_owned(),
                event_hub_name: event_hub_name.to_owned(),
                consumer_group: consumer_group.to_owned(),
                partition_id: b.partition,
                offset: b.offset,
                sequence_number,
            });
        }
        Ok(out)
    }

    async fn list_ownerships(
        &self,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<Ownership>> {
        let prefix = group_prefix(namespace, event_hub_name, consumer_group, "ownership");
        Ok(self
            .read_all(&prefix)
            .await?
            .into_iter()
            .map(|b| Ownership {
                fully_qualified_namespace: namespace.to_owned(),
                event_hub_name: event_hub_name.to_owned(),
                consumer_group: consumer_group.to_owned(),
                partition_id: b.partition,
                owner_id: b.owner,
                etag: b.etag.map(Etag::from),
                last_modified_time: Some(to_offset_date_time(b.modified)),
            })
            .collect())
    }

    async fn update_checkpoint(&self, checkpoint: Checkpoint) -> azure_core::Result<()> {
        let name = format!(
            "{}{}",
            group_prefix(
                &checkpoint.fully_qualified_namespace,
                &checkpoint.event_hub_name,
                &checkpoint.consumer_group,
                "checkpoint"
            ),
            checkpoint.partition_id
        );
        let mut metadata = Vec::new();
        if let Some(s) = checkpoint.sequence_number {
            metadata.push((SEQUENCE_NUMBER, s.to_string()));
        }
        if let Some(o) = checkpoint.offset {
            metadata.push((OFFSET, o));
        }
        self.write(&name, &metadata, PutMode::Overwrite)
            .await
            .map_err(storage_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_names_follow_the_sdks_layout_in_lower_case() {
        assert_eq!(
            group_prefix(
                "Contoso.servicebus.windows.net",
                "SignIns",
                "$Default",
                "ownership"
            ),
            "contoso.servicebus.windows.net/signins/$default/ownership/"
        );
    }

    #[test]
    fn only_azure_containers_are_accepted() {
        let e = BlobCheckpointStore::open("s3://bucket/x", &[]).unwrap_err();
        assert!(format!("{e:#}").contains("Azure Blob container"), "{e:#}");
        let e = BlobCheckpointStore::open("az://", &[]).unwrap_err();
        assert!(format!("{e:#}").contains("no container"), "{e:#}");
    }
}
