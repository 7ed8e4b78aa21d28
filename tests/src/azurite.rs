//! Azurite, the Azure Blob Storage emulator that `scripts/setup.sh` installs from npm, for
//! tests of what the services write to Blob storage.
//!
//! Each [`Azurite`] is its own process on a free port with a fresh data directory, stopped
//! when dropped, so tests share nothing. Containers and blobs are made and read with the
//! Azure Blob client for Python in the `.tools/py` virtual environment: another
//! implementation than the one the services use.

use crate::python::{json_lines, python};
use crate::{free_port, repo_root};
use anyhow::{Context, Result, bail};
use std::ffi::OsStr;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Azurite may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The blob operations, with the Azure Blob client: `python -c OPS CONNECTION_STRING OP ...`.
const OPS: &str = r#"
import json, os, sys
from azure.storage.blob import BlobServiceClient

service = BlobServiceClient.from_connection_string(sys.argv[1])
op, args = sys.argv[2], sys.argv[3:]
if op == "create":
    service.create_container(args[0])
elif op == "list":
    for b in service.get_container_client(args[0]).list_blobs():
        print(json.dumps([b.name, b.size]))
elif op == "metadata":
    for b in service.get_container_client(args[0]).list_blobs(include=["metadata"]):
        print(json.dumps([b.name, b.metadata or {}]))
elif op == "upload":
    container, name, source = args
    with open(source, "rb") as f:
        service.get_blob_client(container, name).upload_blob(f, overwrite=True)
elif op == "download":
    container, prefix, dest = args
    # Paths are kept relative to the prefix's folder: "a/b/" and "a/b/date=" both put
    # "a/b/date=X/f" at DEST/date=X/f.
    base = prefix[: prefix.rfind("/") + 1]
    client = service.get_container_client(container)
    for b in client.list_blobs(name_starts_with=prefix):
        parts = b.name[len(base):].split("/")
        if any(p in ("", ".", "..") for p in parts):
            sys.exit(f"blob {b.name!r} has no safe local path")
        path = os.path.join(dest, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            client.download_blob(b.name).readinto(f)
        print(json.dumps(path))
elif op == "sas":
    import datetime
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas
    container, permissions = args
    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    print(generate_container_sas(
        service.account_name, container, account_key=service.credential.account_key,
        permission=ContainerSasPermissions.from_string(permissions), expiry=expiry))
else:
    sys.exit(f"unknown operation {op}")
"#;

/// A running Azurite Blob service; stopped when dropped.
pub struct Azurite {
    port: u16,
    data: tempfile::TempDir,
    child: Option<Child>,
}

impl Azurite {
    /// The emulator's one storage account.
    pub const ACCOUNT: &'static str = "devstoreaccount1";
    /// The account's well-known key (public, the same in every Azurite).
    pub const KEY: &'static str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    /// Starts Azurite's Blob service on a free port with a fresh data directory and waits
    /// until it accepts connections.
    pub fn start() -> Result<Azurite> {
        let mut a = Azurite {
            port: free_port(),
            data: tempfile::tempdir()?,
            child: None,
        };
        std::fs::create_dir_all(a.location())?;
        a.spawn()?;
        Ok(a)
    }

    fn location(&self) -> PathBuf {
        self.data.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.data.path().join("azurite.log")
    }

    fn spawn(&mut self) -> Result<()> {
        let bin = repo_root().join(".tools/bin/azurite-blob");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(&bin)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &self.port.to_string(),
            ])
            .arg("--location")
            .arg(self.location())
            .args([
                "--silent",
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot run {}: run scripts/setup.sh", bin.display()))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "Azurite exited ({status}) before listening:\n{}",
                    self.log()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                // Another process may have taken the port meanwhile: ours must be alive.
                std::thread::sleep(Duration::from_millis(50));
                if let Some(c) = self.child.as_mut()
                    && c.try_wait().ok().flatten().is_none()
                {
                    return Ok(());
                }
                continue;
            }
            if Instant::now() > deadline {
                self.pause();
                bail!(
                    "Azurite did not listen on {addr} within {} s:\n{}",
                    START_TIMEOUT.as_secs(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The port the Blob service listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What Azurite printed (its start-up lines and errors; requests are not logged).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1`.
    pub fn blob_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, Self::ACCOUNT)
    }

    /// The standard connection string for the emulator's account at this endpoint.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={};",
            Self::ACCOUNT,
            Self::KEY,
            self.blob_endpoint()
        )
    }

    fn ops<I, S>(&self, op: &str, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let cs = self.connection_string();
        let mut argv: Vec<std::ffi::OsString> = vec!["-c".into(), OPS.into(), cs.into(), op.into()];
        argv.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        python(argv).with_context(|| format!("Azurite {op} failed"))
    }

    /// Creates a container; fails if it exists already.
    pub fn create_container(&self, name: &str) -> Result<()> {
        self.ops("create", [name]).map(drop)
    }

    /// Every blob of a container as (name, size in bytes), by name; fails if the container
    /// does not exist.
    pub fn list_blobs(&self, container: &str) -> Result<Vec<(String, u64)>> {
        json_lines(&self.ops("list", [container])?)?
            .into_iter()
            .map(|v| serde_json::from_value(v).context("a (name, size) pair"))
            .collect()
    }

    /// Every blob of a container with its metadata, by name: what another Blob client reads of
    /// the blobs (Event Hubs checkpoints and ownership keep their state there).
    pub fn list_metadata(
        &self,
        container: &str,
    ) -> Result<Vec<(String, std::collections::BTreeMap<String, String>)>> {
        json_lines(&self.ops("metadata", [container])?)?
            .into_iter()
            .map(|v| serde_json::from_value(v).context("a (name, metadata) pair"))
            .collect()
    }

    /// A container SAS token (the query string, no `?`) granting only `permissions` (`rl`:
    /// read and list), signed with the account key by Azure's own Python client.
    pub fn container_sas(&self, container: &str, permissions: &str) -> Result<String> {
        Ok(self.ops("sas", [container, permissions])?.trim().to_owned())
    }

    /// Writes (or overwrites) one block blob.
    pub fn upload(&self, container: &str, name: &str, data: &[u8]) -> Result<()> {
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), data)?;
        self.ops(
            "upload",
            [
                OsStr::new(container),
                OsStr::new(name),
                file.path().as_os_str(),
            ],
        )
        .map(drop)
    }

    /// Copies every blob whose name starts with `prefix` into `dest`, keeping the names'
    /// paths relative to the prefix's folder (the part up to its last `/`): with prefix
    /// `signins/` (or `signins/date=`), `signins/date=D/hour=H/f.parquet` becomes
    /// `dest/date=D/hour=H/f.parquet`, so that a downloaded dataset reads as it was written.
    /// Returns the local files, in blob-name order.
    pub fn download(&self, container: &str, prefix: &str, dest: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dest)?;
        json_lines(&self.ops(
            "download",
            [OsStr::new(container), OsStr::new(prefix), dest.as_os_str()],
        )?)?
        .into_iter()
        .map(|v| serde_json::from_value(v).context("a local path"))
        .collect()
    }

    /// Stops the Azurite process (an outage); its data stays for `resume`. Azurite is asked
    /// to stop (SIGTERM) so that it saves its metadata, and killed if it has not within 10 s.
    pub fn pause(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-CONT", &c.id().to_string()])
            .status();
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Starts Azurite again on the same port and data.
    pub fn resume(&mut self) -> Result<()> {
        self.pause();
        self.spawn()
    }

    /// Freezes the Azurite process (SIGSTOP): connections hang and nothing answers.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen Azurite run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.pause();
    }
}
