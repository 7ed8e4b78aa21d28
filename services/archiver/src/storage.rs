//! The dataset's storage: a local directory or an object store, behind the handful of
//! operations the commit protocol needs.
//!
//! Every backend is an `object_store`, so one protocol runs everywhere. What each gives:
//!
//! | operation | local directory | Azure Blob / ADLS Gen2 | S3 |
//! |---|---|---|---|
//! | `put` | temp file, fsync, rename, fsync dir: atomic and durable | one atomic PUT | one atomic PUT |
//! | `create` (if absent) | hard link, fails if present | `If-None-Match: *` | `If-None-Match: *` |
//! | `publish` (staged → final) | rename, fsync dirs: atomic | server-side copy, then delete | CopyObject, then delete |
//!
//! A reader sees a published file whole or not at all on every backend: a rename is atomic
//! and an object copy appears at once. The copy-then-delete of object stores is two steps; a
//! crash between them leaves the staged copy, which the next start finds under a commit and
//! deletes (see `commit`).
//!
//! A local `put` or `create` killed before its rename leaves its temp file, `<name>#<n>`.
//! Listings never show one, so the commit protocol cannot see it either;
//! `sweep_interrupted_writes` deletes those older than the orphan age. An object store's
//! single PUT leaves nothing behind.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::TryStreamExt;
use mfagap_runtime::Property;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use std::sync::Arc;
use std::time::Duration;

/// The dataset root, wherever it is.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// The root as the operator gave it (no secret: options are never part of it).
    pub location: String,
    /// Set when the root is a local directory.
    pub local: Option<std::path::PathBuf>,
}

impl Store {
    /// Opens the dataset root: a directory path (created if missing), `file://`, `az://`,
    /// `abfs://`, `abfss://`, `azure://`, `https://…blob.core.windows.net/…` or `s3://`.
    pub fn open(location: &str, options: &[Property]) -> Result<Store> {
        let url = url::Url::parse(location)
            .ok()
            .filter(|u| u.scheme().len() > 1);
        let (inner, local): (Arc<dyn ObjectStore>, _) = match url.as_ref().map(|u| u.scheme()) {
            None | Some("file") => {
                let dir = match &url {
                    Some(u) => u
                        .to_file_path()
                        .map_err(|_| anyhow::anyhow!("not a local path: {location}"))?,
                    None => std::path::PathBuf::from(location),
                };
                if !options.is_empty() {
                    bail!("--storage-option applies to object storage, not to a local directory");
                }
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create the dataset directory {location}"))?;
                let dir = dir
                    .canonicalize()
                    .with_context(|| format!("cannot resolve {location}"))?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .with_context(|| format!("cannot open {location}"))?
                    .with_fsync(true);
                (Arc::new(fs), Some(dir))
            }
            Some("az" | "abfs" | "abfss" | "azure" | "adl" | "https" | "http") => {
                let u = url.as_ref().expect("a URL");
                let mut b = MicrosoftAzureBuilder::from_env().with_url(location);
                for p in options {
                    let key: AzureConfigKey = p
                        .key
                        .parse()
                        .with_context(|| format!("unknown Azure storage option {:?}", p.key))?;
                    b = b.with_config(key, p.value.expose());
                }
                let store = b.build().context("cannot open the Azure storage")?;
                (prefixed(store, prefix_of(u)), None)
            }
            Some("s3" | "s3a") => {
                let u = url.as_ref().expect("a URL");
                let mut b = AmazonS3Builder::from_env().with_url(location);
                for p in options {
                    let key: AmazonS3ConfigKey = p
                        .key
                        .parse()
                        .with_context(|| format!("unknown S3 storage option {:?}", p.key))?;
                    b = b.with_config(key, p.value.expose());
                }
                let store = b.build().context("cannot open the S3 storage")?;
                (prefixed(store, prefix_of(u)), None)
            }
            Some(other) => bail!("unsupported storage scheme {other}:// in {location}"),
        };
        Ok(Store {
            inner,
            location: location.to_owned(),
            local,
        })
    }

    /// Writes an object, replacing what is there; durable when it returns.
    pub async fn put(&self, path: &Path, data: Bytes) -> Result<()> {
        self.inner
            .put(path, data.into())
            .await
            .with_context(|| format!("cannot write {path} in {}", self.location))?;
        Ok(())
    }

    /// Writes an object only if none is at `path`: `false` when one already was.
    pub async fn create(&self, path: &Path, data: Bytes) -> Result<bool> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self.inner.put_opts(path, data.into(), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot create {path} in {}", self.location)),
        }
    }

    /// Reads an object; `None` when there is none.
    pub async fn get(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.inner.get(path).await {
            Ok(r) => Ok(Some(r.bytes().await.with_context(|| {
                format!("cannot read {path} in {}", self.location)
            })?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {path} in {}", self.location)),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, path: &Path) -> Result<bool> {
        match self.inner.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot look up {path}")),
        }
    }

    /// Every object under a prefix, in name order.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        let mut all: Vec<ObjectMeta> = self
            .inner
            .list(Some(prefix))
            .try_collect()
            .await
            .with_context(|| format!("cannot list {prefix} in {}", self.location))?;
        all.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(all)
    }

    /// Moves a staged file to its published name; `Ok(false)` when it was already moved (a
    /// roll-forward that another writer, or an earlier attempt, completed).
    pub async fn publish(&self, staged: &Path, published: &Path) -> Result<bool> {
        match self.inner.rename(staged, published).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) if self.exists(published).await? => Ok(false),
            Err(e) => Err(e).with_context(|| {
                format!(
                    "cannot publish {staged} as {published} in {}",
                    self.location
                )
            }),
        }
    }

    /// Deletes an object; one that is already gone is not an error.
    pub async fn delete(&self, path: &Path) -> Result<()> {
        match self.inner.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot delete {path} in {}", self.location)),
        }
    }
}

impl Store {
    /// Deletes the temp files of local writes that were killed before their rename, under
    /// `prefix` and older than `older_than`; returns how many. Nothing to do on an object
    /// store. A younger one may be a live writer's and is left alone.
    pub fn sweep_interrupted_writes(&self, prefix: &Path, older_than: Duration) -> Result<usize> {
        let Some(root) = &self.local else {
            return Ok(0);
        };
        let mut dir = root.clone();
        dir.extend(prefix.parts().map(|p| p.as_ref().to_owned()));
        let mut deleted = 0;
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot list {}", dir.display()));
                }
            };
            for entry in entries {
                let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
                let path = entry.path();
                // A directory or file deleted by another writer meanwhile is no error.
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    stack.push(path);
                    continue;
                }
                let old = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > older_than);
                if old && is_interrupted_write(&entry.file_name().to_string_lossy()) {
                    match std::fs::remove_file(&path) {
                        Ok(()) => deleted += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(e)
                                .with_context(|| format!("cannot delete {}", path.display()));
                        }
                    }
                }
            }
        }
        Ok(deleted)
    }
}

/// The local backend's temp name for a write in progress: `<name>#<digits>`.
fn is_interrupted_write(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn prefixed(store: impl ObjectStore, prefix: Path) -> Arc<dyn ObjectStore> {
    if prefix.as_ref().is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

/// The path inside the container or bucket. For `https://account.blob.core.windows.net/c/p`
/// the first segment is the container, which the builder takes from the URL.
fn prefix_of(u: &url::Url) -> Path {
    let path = u.path().trim_start_matches('/');
    let path = match u.scheme() {
        "https" | "http" => path.split_once('/').map_or("", |(_, rest)| rest),
        _ => path,
    };
    Path::from(path.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_claims_a_name_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap(), &[]).unwrap();
        let p = Path::from("a/b.json");
        assert!(store.create(&p, Bytes::from_static(b"1")).await.unwrap());
        assert!(!store.create(&p, Bytes::from_static(b"2")).await.unwrap());
        assert_eq!(
            store.get(&p).await.unwrap().unwrap(),
            Bytes::from_static(b"1")
        );
    }

    #[tokio::test]
    async fn publish_moves_once_and_tolerates_a_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap(), &[]).unwrap();
        let (staged, published) = (Path::from("s/x.inprogress"), Path::from("d/x.parquet"));
        store
            .put(&staged, Bytes::from_static(b"data"))
            .await
            .unwrap();
        assert!(store.publish(&staged, &published).await.unwrap());
        assert!(!store.publish(&staged, &published).await.unwrap());
        assert!(!store.exists(&staged).await.unwrap());
        assert!(dir.path().join("d/x.parquet").exists());
        // Neither name exists: that is an error, not a silent success.
        assert!(
            store
                .publish(&staged, &Path::from("d/y.parquet"))
                .await
                .is_err()
        );
    }

    #[test]
    fn object_store_urls_keep_their_path_as_prefix() {
        let u = url::Url::parse("az://c/signins/prod/").unwrap();
        assert_eq!(prefix_of(&u).as_ref(), "signins/prod");
        let u = url::Url::parse("https://acct.blob.core.windows.net/c/signins").unwrap();
        assert_eq!(prefix_of(&u).as_ref(), "signins");
        let u = url::Url::parse("s3://bucket").unwrap();
        assert_eq!(prefix_of(&u).as_ref(), "");
    }

    #[test]
    fn only_the_local_backends_temp_names_are_interrupted_writes() {
        assert!(is_interrupted_write("x.parquet.inprogress#1"));
        assert!(is_interrupted_write("12.json#34"));
        assert!(!is_interrupted_write("x.parquet.inprogress"));
        assert!(!is_interrupted_write("x#"));
        assert!(!is_interrupted_write("x#1a"));
    }

    #[test]
    fn options_on_a_local_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let opt: Property = "azure_storage_account_name=x".parse().unwrap();
        assert!(Store::open(dir.path().to_str().unwrap(), &[opt]).is_err());
        assert!(Store::open("ftp://x/y", &[]).is_err());
    }
}
