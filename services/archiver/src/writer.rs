//! One Parquet file in the making: rows go in as JSON, bytes come out when it rolls.
//!
//! Rows are decoded straight into Arrow columns (`rows`) and encoded when the unit is
//! published. File properties are chosen for scans by DuckDB, Spark and
//! Trino: ZSTD pages, dictionary encoding on the columns whose values repeat (and not on ids
//! and instants, where a dictionary only costs time), page statistics, row groups of about a
//! hundred thousand rows.

use crate::deadletter::{self, Refusal};
use crate::layout::{self, Hour, Range};
use crate::rows::{Failed, Rows};
use anyhow::{Context, Result, anyhow};
use arrow_array::RecordBatch;
use bytes::Bytes;
use mfagap_core::SignIn;
use mfagap_core::schema::sign_in_schema;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Rows per buffered Arrow batch.
const BATCH_ROWS: usize = 8192;

/// Columns whose values are (nearly) all distinct: plain encoding.
const DISTINCT_COLUMNS: &[&[&str]] = &[
    &["id"],
    &["createdDateTime"],
    &["correlationId"],
    &["ingestedAt"],
    &["source", "offset"],
    &["source", "sequenceNumber"],
    &["source", "enqueuedTime"],
    &["source", "line"],
];

/// How files are encoded.
#[derive(Debug, Clone)]
pub struct FileSettings {
    props: Arc<WriterProperties>,
}

impl FileSettings {
    /// ZSTD at `zstd_level`, row groups of at most `row_group_rows`; an error names a level
    /// ZSTD does not have.
    pub fn new(zstd_level: i32, row_group_rows: usize) -> Result<FileSettings> {
        let mut b = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(zstd_level).context("ZSTD level")?,
            ))
            .set_dictionary_enabled(true)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(row_group_rows.max(1)))
            .set_created_by(format!("mfagap-archiver {}", env!("CARGO_PKG_VERSION")));
        for path in DISTINCT_COLUMNS {
            let path = ColumnPath::new(path.iter().map(|s| s.to_string()).collect());
            b = b.set_column_dictionary_enabled(path, false);
        }
        Ok(FileSettings {
            props: Arc::new(b.build()),
        })
    }
}

/// One hour of one partition's unit, buffered as Arrow batches until the unit is published.
///
/// Encoding waits until then, one file at a time: a Parquet encoder holds a compression
/// context per column (megabytes each for ZSTD), so encoding every open hour of every
/// partition at once would cost far more memory than the rows themselves. Buffered as Arrow,
/// what a unit costs is its rows' size, counted exactly, which `--max-buffered` bounds.
pub struct HourBuffer {
    /// The hour of `createdDateTime` every row shares: the file's `date=`/`hour=` directory.
    pub hour: Hour,
    rows: u64,
    offsets: Option<Range>,
    batch: Rows,
    batches: Vec<RecordBatch>,
    /// Memory of the finished batches.
    batch_bytes: u64,
    /// Input bytes of the rows still in `batch`: what they cost until it is finished.
    pending_bytes: u64,
}

/// Why [`HourBuffer::push`] kept nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pushed {
    /// The record's `createdDateTime` is in this other hour.
    OtherHour(Hour),
    Failed(Failed),
}

/// Appends the native record in `json` (read at `offset`, `size` bytes) to the buffer of its
/// hour, creating it if needed; or says why it is not a record.
///
/// The hour is guessed from the text first (`rows::created_hint`), so the row is decoded once
/// into the right columns; a wrong guess costs a second decode. A value the columns do not
/// take as it stands is read as the core's `SignIn`, which decides: refused, it is a dead
/// letter with its reason; taken, its canonical form is decoded (README.md, Delivery
/// guarantees: nothing dropped, nothing read differently). The outer error is a batch that
/// cannot be built (a defect): the unit cannot be published.
pub(crate) fn append_value(
    files: &mut BTreeMap<Hour, HourBuffer>,
    json: &str,
    offset: i64,
    size: usize,
) -> Result<Result<(), Refusal>> {
    let mut hour = crate::rows::created_hint(json).map(layout::hour_of);
    // The guessed hour, then the record's own.
    for _ in 0..2 {
        let Some(h) = hour else { break };
        match push_to(files, h, json, offset, size)? {
            Ok(()) => return Ok(Ok(())),
            Err(Pushed::OtherHour(other)) => hour = Some(other),
            Err(Pushed::Failed(Failed::Full)) => return Ok(Err(too_large())),
            Err(Pushed::Failed(Failed::Invalid)) => break,
        }
    }
    let record = match deadletter::parse_record(json) {
        Ok(r) => r,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let canonical = serde_json::to_string(&record).context("cannot encode a record again")?;
    let h = layout::hour_of(record.created_date_time);
    Ok(match push_to(files, h, &canonical, offset, size)? {
        Ok(()) => Ok(()),
        Err(Pushed::Failed(Failed::Full)) => Err(too_large()),
        // Not for a record the core wrote itself; a dead letter rather than a stop.
        Err(other) => Err(Refusal {
            reason: "not_a_record",
            detail: format!("read as a record, but its row cannot be built: {other:?}"),
        }),
    })
}

/// A row whose text alone outgrows a batch's 32-bit offsets: not a record the ingest service
/// writes (Kafka's own limits keep values far smaller).
fn too_large() -> Refusal {
    Refusal {
        reason: "not_a_record",
        detail: "its text does not fit one Arrow batch (2 GiB)".into(),
    }
}

fn push_to(
    files: &mut BTreeMap<Hour, HourBuffer>,
    hour: Hour,
    json: &str,
    offset: i64,
    size: usize,
) -> Result<Result<(), Pushed>> {
    if let Some(f) = files.get_mut(&hour) {
        return f.push(json, offset, size, true);
    }
    // Inserted only once it holds a row: an empty buffer would publish an empty file.
    let mut f = HourBuffer::new(hour);
    let pushed = f.push(json, offset, size, true)?;
    if pushed.is_ok() {
        files.insert(hour, f);
    }
    Ok(pushed)
}

/// An encoded file, ready to stage.
#[derive(Debug, Clone)]
pub struct EncodedFile {
    /// The hour its rows belong to.
    pub hour: Hour,
    /// Rows in the file.
    pub rows: u64,
    /// First and last Kafka offsets of its rows.
    pub offsets: Range,
    /// The Parquet file itself.
    pub data: Bytes,
}

impl HourBuffer {
    /// An empty buffer for one hour.
    pub fn new(hour: Hour) -> HourBuffer {
        HourBuffer {
            hour,
            rows: 0,
            offsets: None,
            batch: Rows::new(),
            batches: Vec::new(),
            batch_bytes: 0,
            pending_bytes: 0,
        }
    }

    /// Adds one record as one row; `size` is what it weighed as input (for the memory
    /// estimate). For records already read as `SignIn`; the archiver's loop decodes JSON
    /// straight into the columns ([`append_value`]).
    pub fn append(&mut self, record: &SignIn<'_>, offset: i64, size: usize) -> Result<()> {
        let json = serde_json::to_string(record).context("cannot encode the record")?;
        // The caller chose the hour: the row goes here whatever its `createdDateTime`.
        match self.push(&json, offset, size, false)? {
            Ok(()) => Ok(()),
            Err(Pushed::OtherHour(h)) => Err(anyhow!(
                "the record belongs to hour {h}, not to this file's hour {}",
                self.hour
            )),
            Err(Pushed::Failed(f)) => Err(anyhow!("cannot append the record: {f:?}")),
        }
    }

    /// Decodes the native record in `json` as one row, if it belongs to this hour (when
    /// `check_hour`); otherwise (another hour, or not decodable here) nothing is kept. The
    /// outer error is the batch's own (a defect): the unit cannot be published.
    fn push(
        &mut self,
        json: &str,
        offset: i64,
        size: usize,
        check_hour: bool,
    ) -> Result<Result<(), Pushed>> {
        let mut pushed = self.batch.push(json);
        if pushed == Err(Failed::Full) && !self.batch.is_empty() {
            self.finish_batch()?;
            pushed = self.batch.push(json);
        }
        let created = match pushed {
            Ok(created) => created,
            Err(f) => return Ok(Err(Pushed::Failed(f))),
        };
        let hour = layout::hour_of(created);
        if check_hour && hour != self.hour {
            self.batch.truncate(self.batch.len() - 1);
            return Ok(Err(Pushed::OtherHour(hour)));
        }
        self.rows += 1;
        self.pending_bytes += size as u64;
        self.offsets = Some(match self.offsets {
            None => Range {
                first: offset,
                last: offset,
            },
            Some(r) => Range {
                first: r.first.min(offset),
                last: r.last.max(offset),
            },
        });
        if self.batch.len() >= BATCH_ROWS {
            self.finish_batch()?;
        }
        Ok(Ok(()))
    }

    fn finish_batch(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = self.batch.finish().context("cannot build an Arrow batch")?;
        self.batch_bytes += batch.get_array_memory_size() as u64;
        self.batches.push(batch);
        self.pending_bytes = 0;
        Ok(())
    }

    /// Rows appended so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// What the buffered rows hold in memory.
    pub fn memory(&self) -> u64 {
        self.batch_bytes + self.pending_bytes
    }

    /// Encodes the rows as one Parquet file.
    pub fn encode(mut self, settings: &FileSettings) -> Result<EncodedFile> {
        self.finish_batch()?;
        let mut writer = ArrowWriter::try_new(
            Vec::with_capacity((self.batch_bytes / 8) as usize),
            sign_in_schema(),
            Some((*settings.props).clone()),
        )
        .context("cannot start a Parquet file")?;
        for batch in std::mem::take(&mut self.batches) {
            writer
                .write(&batch)
                .context("cannot encode rows as Parquet")?;
        }
        // Flushes the open row group and writes the footer.
        let data = writer
            .into_inner()
            .context("cannot finish the Parquet file")?;
        Ok(EncodedFile {
            hour: self.hour,
            rows: self.rows,
            offsets: self.offsets.unwrap_or(Range { first: 0, last: -1 }),
            data: Bytes::from(data),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::RecordBatch;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Encoding;

    fn records(n: usize) -> Vec<SignIn<'static>> {
        let mut g = mfagap_generate::Generator::new(mfagap_generate::GeneratorConfig {
            seed: 11,
            ..Default::default()
        });
        let p = mfagap_core::Processor::default();
        let mut stats = mfagap_core::Stats::default();
        let mut out = Vec::new();
        while out.len() < n {
            let body = g.next_message().body;
            p.process(&body, &Default::default(), 0, &mut stats, &mut |o| {
                if let mfagap_core::Output::SignIn(s) = o {
                    out.push(s.into_owned());
                }
            });
        }
        out.truncate(n);
        out
    }

    #[test]
    fn a_file_reads_back_with_the_shared_schema_and_its_properties() {
        let settings = FileSettings::new(3, 4000).unwrap();
        let rs = records(10_000);
        let mut w = HourBuffer::new(7);
        for (i, r) in rs.iter().enumerate() {
            w.append(r, 100 + i as i64, 1000).unwrap();
        }
        assert!(w.memory() > 0);
        let f = w.encode(&settings).unwrap();
        assert_eq!(f.rows, 10_000);
        assert_eq!(
            f.offsets,
            Range {
                first: 100,
                last: 10_099
            }
        );
        let reader = ParquetRecordBatchReaderBuilder::try_new(f.data.clone()).unwrap();
        let meta = reader.metadata().clone();
        assert_eq!(meta.num_row_groups(), 3, "row groups of at most 4000 rows");
        let batches: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
        let total: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(total, 10_000);
        assert_eq!(batches[0].schema(), sign_in_schema());
        let rg = meta.row_group(0);
        for c in rg.columns() {
            assert!(
                matches!(c.compression(), Compression::ZSTD(_)),
                "{:?}",
                c.column_path()
            );
            assert!(c.statistics().is_some(), "{:?}", c.column_path());
        }
        let enc = |name: &str| {
            rg.columns()
                .iter()
                .find(|c| c.column_path().string() == name)
                .unwrap()
                .encodings()
                .collect::<Vec<_>>()
        };
        assert!(enc("reason").contains(&Encoding::RLE_DICTIONARY));
        assert!(!enc("id").contains(&Encoding::RLE_DICTIONARY));
    }

    #[test]
    fn buffered_memory_is_counted_and_files_are_far_smaller() {
        let settings = FileSettings::new(3, 122_880).unwrap();
        let rs = records(20_000);
        let mut w = HourBuffer::new(0);
        let mut input = 0u64;
        for (i, r) in rs.iter().enumerate() {
            let json = serde_json::to_vec(r).unwrap();
            input += json.len() as u64;
            w.append(r, i as i64, json.len()).unwrap();
        }
        let held = w.memory();
        assert!(
            held > input / 4 && held < input,
            "held {held} of input {input}"
        );
        let f = w.encode(&settings).unwrap();
        assert!(
            (f.data.len() as u64) < input / 4,
            "file {} of input {input}",
            f.data.len()
        );
    }
}
