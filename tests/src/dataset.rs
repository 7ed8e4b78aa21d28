//! Reading a hive-partitioned Parquet dataset (`ROOT/date=YYYY-MM-DD/hour=HH/*.parquet`) back
//! with two readers that share no code with the writer or with each other: DuckDB and
//! pyarrow, both run by `tests/read_dataset.py` in the `.tools/py` virtual environment.
//!
//! Each row comes back as a JSON object: the file's columns, then the hive partition columns
//! (`date`, `hour`) as strings, then `filename`. TIMESTAMP WITH TIME ZONE values read as
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC (always six fractional digits) and timestamps
//! without a zone the same without `Z`; lists are arrays, structs objects with the file's
//! keys, maps objects, NULL null; dates ISO 8601, decimals strings, binary base64. Rows are
//! ordered by file name, then by their order in the file. Files are every `**/*.parquet`
//! under the root, hidden names included (DuckDB's glob does not skip them).

use crate::python::{json_lines, python};
use crate::repo_root;
use anyhow::Result;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

fn script() -> PathBuf {
    repo_root().join("tests/read_dataset.py")
}

fn read_with(reader: &str, root: &Path) -> Result<Vec<Value>> {
    let script = script();
    let out = python([script.as_os_str(), OsStr::new(reader), root.as_os_str()])?;
    json_lines(&out)
}

/// Every row of `read_parquet('<root>/**/*.parquet', hive_partitioning = true,
/// filename = true)` in DuckDB, with the session time zone set to UTC. A root without any
/// Parquet file (or that does not exist) reads as no rows.
pub fn read_dataset(root: &Path) -> Result<Vec<Value>> {
    read_with("duckdb", root)
}

/// The same rows as [`read_dataset`], read by `pyarrow.dataset`: a `FileSystemDataset` over
/// the explicit list of `<root>/**/*.parquet` files, hive partitioning, formatted the same
/// way, so that the two outputs can be compared as they are.
pub fn read_dataset_pyarrow(root: &Path) -> Result<Vec<Value>> {
    read_with("pyarrow", root)
}

/// Every file under `root` whose name ends with `.parquet`, sorted; none if `root` is
/// missing.
pub fn parquet_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                walk(&path, out);
            } else if path.is_file() && entry.file_name().to_string_lossy().ends_with(".parquet") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

/// One Parquet file's metadata, from pyarrow:
///
/// ```text
/// { "num_rows", "num_columns", "num_row_groups", "rows_per_row_group": [n, ...],
///   "created_by", "format_version", "key_value_metadata": [key, ...],
///   "arrow_schema": "<pyarrow's text of the Arrow schema>",
///   "columns": { "<dotted path, e.g. tags.list.element>": {
///       "physical_type", "logical_type", "max_definition_level", "max_repetition_level",
///       "compression": "ZSTD" (one codec when every row group agrees, else one per group),
///       "encodings": [...], "dictionary": bool (a dictionary page in every row group),
///       "dictionary_per_row_group": [bool, ...], "statistics": bool (in every row group),
///       "min_max": bool, "null_count": n or null, "min": [...], "max": [...] (per group),
///       "compressed_bytes", "uncompressed_bytes" } } }
/// ```
pub fn parquet_metadata(path: &Path) -> Result<Value> {
    let script = script();
    let out = python([script.as_os_str(), OsStr::new("metadata"), path.as_os_str()])?;
    json_lines(&out)?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no metadata for {}", path.display()))
}
