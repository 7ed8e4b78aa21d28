//! One Parquet file in the making: rows go in as records, bytes come out when it rolls.
//!
//! Rows are appended to Arrow batches (`mfagap_core::batch`) and encoded when the unit is
//! published. File properties are chosen for scans by DuckDB, Spark and
//! Trino: ZSTD pages, dictionary encoding on the columns whose values repeat (and not on ids
//! and instants, where a dictionary only costs time), page statistics, row groups of about a
//! hundred thousand rows.

use crate::layout::{Hour, Range};
use anyhow::{Context, Result};
use arrow_array::RecordBatch;
use bytes::Bytes;
use mfagap_core::SignIn;
use mfagap_core::batch::BatchBuilder;
use mfagap_core::schema::sign_in_schema;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
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
    batch: BatchBuilder,
    batches: Vec<RecordBatch>,
    /// Memory of the finished batches.
    batch_bytes: u64,
    /// Input bytes of the rows still in `batch`: what they cost until it is finished.
    pending_bytes: u64,
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
            batch: BatchBuilder::new(),
            batches: Vec::new(),
            batch_bytes: 0,
            pending_bytes: 0,
        }
    }

    /// Adds one row; `size` is what the record weighed as input (for the memory estimate).
    pub fn append(&mut self, record: &SignIn<'_>, offset: i64, size: usize) -> Result<()> {
        self.batch.append(record);
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
        Ok(())
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
