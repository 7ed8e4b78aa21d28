//! Where everything lives in the dataset, in one place.
//!
//! ```text
//! <root>/date=2025-11-14/hour=01/<topic>-<partition>-<firstOffset>-<lastOffset>.parquet
//! <root>/_mfagap/commits/<topic>/<partition>/<firstOffset, 20 digits>.json
//! <root>/_mfagap/staging/<topic>/<partition>/<first>-<last>-<writer>/<date>-<hour>.parquet.inprogress
//! ```
//!
//! Data files are Hive-partitioned by the sign-in's `createdDateTime` in UTC, so
//! `read_parquet('<root>/**/*.parquet', hive_partitioning = true)` prunes by date and hour. A
//! file's name says which Kafka offsets it holds (the first and last of its rows), so any row
//! can be traced to its Kafka record and two files never share a name. Everything that is not
//! published data sits under `_mfagap/` and never ends in `.parquet`, so no `*.parquet` glob sees
//! it.

use chrono::DateTime;
use mfagap_core::timestamp::Micros;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

/// Where a partition starts when nothing of it has been published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartPosition {
    /// The oldest record the topic retains.
    Earliest,
    /// Only records produced from now on.
    Latest,
}

/// One hour of sign-ins, as whole hours since the epoch (UTC).
pub type Hour = i64;

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// The hour a sign-in belongs to.
pub fn hour_of(created: Micros) -> Hour {
    created.div_euclid(MICROS_PER_HOUR)
}

/// `date=YYYY-MM-DD/hour=HH` of an hour.
pub fn hive_dir(hour: Hour) -> String {
    match DateTime::from_timestamp(hour * 3600, 0) {
        Some(t) => t.format("date=%Y-%m-%d/hour=%H").to_string(),
        // Unreachable for instants the core accepts (years 1 to 9999).
        None => format!("date=invalid/hour={hour}"),
    }
}

/// Kafka coordinates of a run of records: one partition, offsets `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The first offset, included.
    pub first: i64,
    /// The last offset, included.
    pub last: i64,
}

/// The published name of a data file.
pub fn data_file(topic: &str, partition: i32, hour: Hour, rows: Range) -> Path {
    Path::from(format!(
        "{}/{topic}-{partition}-{}-{}.parquet",
        hive_dir(hour),
        rows.first,
        rows.last
    ))
}

/// Prefix of a partition's commit records.
pub fn commits_dir(topic: &str, partition: i32) -> Path {
    Path::from(format!("_mfagap/commits/{topic}/{partition}"))
}

/// The commit record of the unit starting at `first`: its name is the claim on that offset.
pub fn commit_file(topic: &str, partition: i32, first: i64) -> Path {
    Path::from(format!(
        "_mfagap/commits/{topic}/{partition}/{first:020}.json"
    ))
}

/// Prefix of a partition's staged files.
pub fn staging_dir(topic: &str, partition: i32) -> Path {
    Path::from(format!("_mfagap/staging/{topic}/{partition}"))
}

/// Where a file of a unit is written before it is committed and published.
pub fn staged_file(topic: &str, partition: i32, unit: Range, writer: &str, hour: Hour) -> Path {
    let dir = hive_dir(hour).replace('/', "-");
    Path::from(format!(
        "_mfagap/staging/{topic}/{partition}/{}-{}-{writer}/{dir}.parquet.inprogress",
        unit.first, unit.last
    ))
}

/// One file of a commit: where it was staged, where it is published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommittedFile {
    /// The staged name, under `_mfagap/staging/`: recovery moves it if it is still there.
    pub staged: String,
    /// The published name, under `date=…/hour=…/`.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// The file's size.
    pub bytes: u64,
}

/// The commit record of one unit: everything the archiver read from `first` to `last` of a
/// partition (sign-ins in `files`, dead letters counted), and the offset to resume from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Commit {
    /// The Kafka topic read.
    pub topic: String,
    /// The Kafka partition read.
    pub partition: i32,
    /// The unit's first offset: the commit record's name, and the claim on it.
    pub first: i64,
    /// The unit's last offset; the partition resumes after it.
    pub last: i64,
    /// The unit's Parquet files, one per hour of `createdDateTime`.
    pub files: Vec<CommittedFile>,
    /// Records of the unit sent to the dead-letter topic instead.
    pub dead_letters: u64,
    /// The process that committed it (host, pid, random suffix), to tell replicas apart.
    pub writer: String,
    /// When it was committed (RFC 3339, UTC), for operators.
    pub committed_at: String,
}

impl Commit {
    /// The offset after this unit.
    pub fn next(&self) -> i64 {
        self.last + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_utc_and_floor_before_the_epoch() {
        let t = mfagap_core::timestamp::parse("2025-11-14T01:48:53.123+02:00").unwrap();
        assert_eq!(hive_dir(hour_of(t)), "date=2025-11-13/hour=23");
        assert_eq!(hour_of(-1), -1);
        assert_eq!(hive_dir(-1), "date=1969-12-31/hour=23");
    }

    #[test]
    fn only_data_files_end_in_parquet() {
        let r = Range { first: 5, last: 9 };
        assert_eq!(
            data_file("t.x", 3, 0, r).as_ref(),
            "date=1970-01-01/hour=00/t.x-3-5-9.parquet"
        );
        let staged = staged_file("t.x", 3, r, "w1", 0);
        assert!(!staged.as_ref().ends_with(".parquet"), "{staged}");
        assert!(staged.as_ref().starts_with(staging_dir("t.x", 3).as_ref()));
        assert!(!commit_file("t", 0, 1).as_ref().ends_with(".parquet"));
    }

    #[test]
    fn commit_names_sort_by_offset() {
        let a = commit_file("t", 0, 9);
        let b = commit_file("t", 0, 10);
        assert!(a.as_ref() < b.as_ref());
    }
}
