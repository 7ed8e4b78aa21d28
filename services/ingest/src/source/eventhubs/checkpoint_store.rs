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
use mfagap_runtime::secret::Property;
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
#[derive(Clone)]
pub struct BlobCheckpointStore {
    store: Arc<dyn ObjectStore>,
    /// Blob-name prefix inside the container (from the URL's path), may be empty.
    prefix: String,
    /// The container as the operator named it, for messages (never carries secrets).
    pub location: String,
    /// With exactly-once delivery: where a partition this replica takes resumes.
    exactly_once: Option<Arc<ExactlyOnceStarts>>,
}

impl std::fmt::Debug for BlobCheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobCheckpointStore")
            .field("location", &self.location)
            .field("exactly_once", &self.exactly_once.is_some())
            .finish()
    }
}

/// Where partitions resume under exactly-once delivery: from the positions topic, read after
/// this replica fenced the partition's previous owner, not from the Blob checkpoint (which is
/// still written after each commit, for Azure's tools and other readers).
///
/// The event processor asks for checkpoints after every load-balancing round, once its
/// claims are made; the partitions this replica now owns and had not opened are fenced
/// (their transactional producers initialised, see `sink::exactly_once`) and the positions
/// topic is read for them, once. A partition without a committed position starts from its
/// Blob checkpoint, so that turning exactly-once on does not read a hub again.
pub struct ExactlyOnceStarts {
    /// The per-partition transactions of this replica.
    pub registry: Arc<crate::sink::TxnRegistry>,
    /// Where committed positions are read from.
    pub positions: crate::positions::PositionsTopic,
    /// The positions' scope of this event hub and consumer group.
    pub scope: String,
    /// This replica's owner id.
    pub instance: String,
    /// The pipeline's partition names are `<event hub>/<id>`.
    pub event_hub: String,
    /// Partitions opened, with the checkpoint they resume from.
    pub(crate) opened: std::sync::Mutex<std::collections::HashMap<String, Option<Checkpoint>>>,
}

impl ExactlyOnceStarts {
    /// Forgets a partition this replica lost: taken again, it is fenced and read again.
    pub fn lost(&self, partition_id: &str) {
        self.opened
            .lock()
            .expect("not poisoned")
            .remove(partition_id);
    }
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
        let store = super::super::azure_builder(location, options)?
            .with_container_name(&container)
            .build()
            .with_context(|| format!("cannot open the checkpoint store {location}"))?;
        Ok(BlobCheckpointStore {
            store: Arc::new(store),
            prefix,
            location: location.to_owned(),
            exactly_once: None,
        })
    }

    /// Preflight: the container lists, and a probe blob can be created (if absent, as
    /// ownership claims are) and deleted under the store's prefix.
    pub async fn check(&self) -> mfagap_runtime::check::Check {
        use mfagap_runtime::check::Check;
        let part = "checkpoint store";
        let fail = |what: &str, e: &object_store::Error| {
            let (status, code) = http_answer(e);
            let denied = matches!(
                e,
                object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
            ) || matches!(status, Some(401 | 403));
            let fix = if matches!(e, object_store::Error::NotFound { .. }) || status == Some(404) {
                "create the container, or correct --checkpoint-store"
            } else if denied {
                "give the identity the Storage Blob Data Contributor role on the container, or use a SAS with read, list, write, create and delete (--checkpoint-store-option)"
            } else {
                "check --checkpoint-store, the storage account's network access and --checkpoint-store-option"
            };
            let answer = match (status, code) {
                (Some(s), Some(c)) => format!("HTTP {s} ({c})"),
                (Some(s), None) => format!("HTTP {s}"),
                _ => super::connect::causes(e),
            };
            Check::failed(
                part,
                format!("{}: cannot {what}: {answer}", self.location),
                fix,
            )
        };
        let listing: Result<Vec<_>, _> = self.store.list(Some(&self.path(""))).try_collect().await;
        if let Err(e) = listing {
            return fail("list the container", &e);
        }
        let probe = self.path(&mfagap_runtime::check::probe_name(".mfagap-check"));
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        if let Err(e) = self.store.put_opts(&probe, "probe".into(), opts).await {
            return fail("write a blob", &e);
        }
        if let Err(e) = object_store::ObjectStoreExt::delete(&*self.store, &probe).await {
            return fail("delete the probe blob it wrote", &e);
        }
        Check::ok(
            part,
            format!("{}: listed, wrote and deleted a probe blob", self.location),
        )
    }

    /// The same store, resuming partitions under exactly-once delivery (see
    /// [`ExactlyOnceStarts`]).
    pub fn with_exactly_once(mut self, starts: Arc<ExactlyOnceStarts>) -> BlobCheckpointStore {
        self.exactly_once = Some(starts);
        self
    }

    /// The Blob checkpoints, with the positions topic's in place of them for the partitions
    /// this replica owns, when exactly-once delivery is on.
    async fn exactly_once_checkpoints(
        &self,
        eo: &Arc<ExactlyOnceStarts>,
        blob: Vec<Checkpoint>,
        namespace: &str,
        event_hub_name: &str,
        consumer_group: &str,
    ) -> azure_core::Result<Vec<Checkpoint>> {
        let owned: Vec<String> = self
            .list_ownerships(namespace, event_hub_name, consumer_group)
            .await?
            .into_iter()
            .filter(|o| o.owner_id.as_deref() == Some(eo.instance.as_str()))
            .map(|o| o.partition_id)
            .collect();
        let new: Vec<String> = {
            let opened = eo.opened.lock().expect("not poisoned");
            // Also a partition whose producer was dropped as taken over: taken again, it is
            // fenced anew and resumes from the positions topic.
            owned
                .iter()
                .filter(|id| {
                    !opened.contains_key(*id)
                        || !eo.registry.holds(&format!("{}/{id}", eo.event_hub))
                })
                .cloned()
                .collect()
        };
        if !new.is_empty() {
            let eo2 = eo.clone();
            let ids = new.clone();
            // Fence first, then read: what the previous owner had not committed is aborted
            // before its position is looked at.
            let read = tokio::task::spawn_blocking(move || {
                let names: Vec<String> = ids
                    .iter()
                    .map(|id| format!("{}/{id}", eo2.event_hub))
                    .collect();
                for name in &names {
                    eo2.registry.fence(name)?;
                }
                eo2.positions.read(&eo2.scope, Some(&names))
            })
            .await
            .map_err(|e| {
                azure_core::Error::with_message(azure_core::error::ErrorKind::Other, e.to_string())
            })?
            .map_err(|e| {
                azure_core::Error::with_error(
                    azure_core::error::ErrorKind::Other,
                    e,
                    "exactly-once start",
                )
            })?;
            let mut opened = eo.opened.lock().expect("not poisoned");
            for id in new {
                let name = format!("{}/{id}", eo.event_hub);
                let from_topic = read.get(&name).map(|r| {
                    let resume = r.resume.clone().unwrap_or_default();
                    Checkpoint {
                        fully_qualified_namespace: namespace.to_owned(),
                        event_hub_name: event_hub_name.to_owned(),
                        consumer_group: consumer_group.to_owned(),
                        partition_id: id.clone(),
                        offset: resume["offset"].as_str().map(str::to_owned),
                        sequence_number: resume["sequenceNumber"].as_i64(),
                    }
                });
                match &from_topic {
                    Some(c) => {
                        tracing::info!(partition = %id, sequence_number = ?c.sequence_number, "partition resumes from the positions topic")
                    }
                    None => {
                        tracing::info!(partition = %id, "no committed position: the partition resumes from its Blob checkpoint")
                    }
                }
                opened.insert(id, from_topic);
            }
        }
        let opened = eo.opened.lock().expect("not poisoned");
        let mut out: Vec<Checkpoint> = blob
            .into_iter()
            .filter(|c| !matches!(opened.get(&c.partition_id), Some(Some(_))))
            .collect();
        out.extend(opened.values().flatten().cloned());
        Ok(out)
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

/// The HTTP status and Azure error code of a storage error, for the preflight's hint.
/// `object_store` keeps the status in an error type it does not export, so it is read from
/// the error's text (`… status code: 404 Not Found: <Error><Code>ContainerNotFound</Code>…`).
fn http_answer(e: &object_store::Error) -> (Option<u16>, Option<String>) {
    let text = super::connect::causes(e);
    let status = text
        .split("status code: ")
        .nth(1)
        .and_then(|rest| rest.get(..3).and_then(|d| d.parse::<u16>().ok()));
    let code = text
        .split("<Code>")
        .nth(1)
        .and_then(|rest| rest.split("</Code>").next())
        .map(str::to_owned);
    (status, code)
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
        match &self.exactly_once {
            Some(eo) => {
                self.exactly_once_checkpoints(eo, out, namespace, event_hub_name, consumer_group)
                    .await
            }
            None => Ok(out),
        }
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
