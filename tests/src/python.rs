//! The Python of the `.tools/py` virtual environment that `scripts/setup.sh` installs, with
//! DuckDB, pyarrow and the Azure Blob client: independent readers of what the services write.

use crate::repo_root;
use anyhow::{Context, Result, bail};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// `.tools/bin/py-python`, the interpreter of the `.tools/py` virtual environment.
pub fn python_bin() -> PathBuf {
    repo_root().join(".tools/bin/py-python")
}

/// Runs the venv's Python with `args` (`["-c", CODE, ...]` or `[SCRIPT, ...]`) and returns
/// its standard output; fails with its standard error when it exits non-zero.
pub fn python<I, S>(args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let bin = python_bin();
    let out = Command::new(&bin)
        .args(args)
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}: run scripts/setup.sh", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}):\n{}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    String::from_utf8(out.stdout).context("Python's output is not UTF-8")
}

/// One JSON value per non-empty line.
pub(crate) fn json_lines(text: &str) -> Result<Vec<serde_json::Value>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("not a JSON line: {l}")))
        .collect()
}
