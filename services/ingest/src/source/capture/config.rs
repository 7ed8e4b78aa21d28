//! Settings of the `capture` source.

use anyhow::{Result, bail};
use mfagap_runtime::Property;

/// The capture source's flags.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Capture source")]
pub struct CaptureArgs {
    /// Event Hubs Capture files for the capture source: a file, a directory tree, or a
    /// container and prefix (az://CONTAINER/PREFIX,
    /// abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX,
    /// https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX).
    #[arg(long = "capture", value_name = "PATH|URL", env = "MFAGAP_CAPTURE")]
    pub location: Option<String>,
    /// Azure storage option for a capture container (repeatable; `key=value`, as the
    /// archiver's --storage-option): `azure_storage_account_key`, `azure_storage_sas_key`,
    /// `azure_storage_use_emulator`…; without a key or SAS, Entra ID (workload or managed
    /// identity).
    #[arg(
        long = "capture-storage-option",
        value_name = "KEY=VALUE",
        env = "MFAGAP_CAPTURE_STORAGE_OPTIONS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub storage_options: Vec<Property>,
}

/// What the capture source reads.
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    /// A local file or directory, or a container URL with a prefix.
    pub location: String,
    /// `object_store` Azure settings for a container.
    pub storage_options: Vec<Property>,
}

impl CaptureArgs {
    /// The settings these flags give, with the location `--source capture:LOCATION` gave if
    /// any; the location is listed when the source starts.
    pub fn settings(&self, given: Option<&str>) -> Result<CaptureSettings> {
        if let (Some(given), Some(flag)) = (given, &self.location)
            && given != flag.trim()
        {
            bail!("two capture locations: --source capture:{given} and --capture {flag}");
        }
        let location = given.map(str::to_owned).or_else(|| self.location.clone());
        let Some(location) = location.filter(|l| !l.trim().is_empty()) else {
            bail!(
                "the capture source needs --capture (a Capture file, a directory, or az://CONTAINER/PREFIX)"
            );
        };
        Ok(CaptureSettings {
            location,
            storage_options: self.storage_options.clone(),
        })
    }
}
