//! The harness's own tests: Azurite, and the two Parquet readers on a file pyarrow writes.

use mfagap_testkit::{
    Azurite, parquet_files, parquet_metadata, python, read_dataset, read_dataset_pyarrow,
};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::net::TcpStream;
use std::path::Path;

/// Writes a two-row Parquet file with a timestamptz, a list and a struct column (and a
/// timestamp stored from a +02:00 zone, which must read back in UTC).
const WRITE: &str = r#"
import datetime as dt, sys
import pyarrow as pa, pyarrow.parquet as pq

utc = dt.timezone.utc
plus2 = dt.timezone(dt.timedelta(hours=2))
table = pa.table({
    "id": pa.array([1, 2], pa.int64()),
    "createdDateTime": pa.array(
        [dt.datetime(2025, 12, 12, 14, 56, 31, tzinfo=utc),
         dt.datetime(2025, 12, 12, 23, 59, 59, 123456, tzinfo=utc)],
        pa.timestamp("us", tz="UTC")),
    "seenAt": pa.array(
        [dt.datetime(2025, 12, 12, 16, 0, 0, 5000, tzinfo=plus2), None],
        pa.timestamp("ms", tz="+02:00")),
    "tags": pa.array([["mfa", "legacy"], []], pa.list_(pa.string())),
    "device": pa.array(
        [{"displayName": "Laptop", "isCompliant": True}, None],
        pa.struct([("displayName", pa.string()), ("isCompliant", pa.bool_())])),
})
pq.write_table(table, sys.argv[1], compression="zstd", use_dictionary=["tags.list.element"],
               write_statistics=["id", "createdDateTime"], row_group_size=1)
"#;

fn write_parquet(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    python([OsStr::new("-c"), OsStr::new(WRITE), path.as_os_str()])
        .expect("pyarrow writes the test file");
}

/// The rows of `WRITE`'s file at `file`, as both readers must return them.
fn expected(file: &Path) -> Vec<Value> {
    let filename = file.to_str().unwrap();
    vec![
        json!({
            "id": 1,
            "createdDateTime": "2025-12-12T14:56:31.000000Z",
            "seenAt": "2025-12-12T14:00:00.005000Z",
            "tags": ["mfa", "legacy"],
            "device": {"displayName": "Laptop", "isCompliant": true},
            "date": "2025-01-01",
            "hour": "03",
            "filename": filename,
        }),
        json!({
            "id": 2,
            "createdDateTime": "2025-12-12T23:59:59.123456Z",
            "seenAt": null,
            "tags": [],
            "device": null,
            "date": "2025-01-01",
            "hour": "03",
            "filename": filename,
        }),
    ]
}

/// The keys of each row in order: the file's columns, the hive columns, then `filename`.
fn keys(rows: &[Value]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.as_object().unwrap().keys().cloned().collect())
        .collect()
}

#[test]
fn both_readers_read_a_hive_partitioned_file_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let file = root.join("date=2025-01-01/hour=03/x.parquet");
    write_parquet(&file);
    // Neither a file that is not `.parquet` nor one beside the dataset is read.
    std::fs::write(
        root.join("date=2025-01-01/hour=03/x.parquet.tmp"),
        b"partial",
    )
    .unwrap();
    std::fs::write(root.join("date=2025-01-01/_SUCCESS"), b"").unwrap();

    assert_eq!(parquet_files(root), vec![file.clone()]);
    let want = expected(&file);
    let order = vec![
        [
            "id",
            "createdDateTime",
            "seenAt",
            "tags",
            "device",
            "date",
            "hour",
            "filename"
        ]
        .map(String::from)
        .to_vec();
        2
    ];
    let duck = read_dataset(root).unwrap();
    assert_eq!(duck, want, "DuckDB");
    assert_eq!(keys(&duck), order, "DuckDB's column order");
    let arrow = read_dataset_pyarrow(root).unwrap();
    assert_eq!(arrow, want, "pyarrow");
    assert_eq!(keys(&arrow), order, "pyarrow's column order");
}

#[test]
fn rows_come_in_file_then_row_order_across_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let late = root.join("date=2025-01-01/hour=10/b.parquet");
    let early = root.join("date=2025-01-01/hour=03/x.parquet");
    write_parquet(&late);
    write_parquet(&early);
    let mut want = expected(&early);
    for mut row in expected(&late) {
        row["hour"] = json!("10");
        want.push(row);
    }
    assert_eq!(read_dataset(root).unwrap(), want);
    assert_eq!(read_dataset_pyarrow(root).unwrap(), want);
}

#[test]
fn an_empty_or_missing_root_reads_as_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("date=2025-01-01/hour=03")).unwrap();
    std::fs::write(dir.path().join("date=2025-01-01/hour=03/x.json"), b"{}").unwrap();
    let missing = dir.path().join("missing");
    for root in [dir.path(), missing.as_path()] {
        assert_eq!(read_dataset(root).unwrap(), Vec::<Value>::new());
        assert_eq!(read_dataset_pyarrow(root).unwrap(), Vec::<Value>::new());
        assert!(parquet_files(root).is_empty());
    }
}

#[test]
fn a_file_that_is_not_parquet_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("date=2025-01-01/hour=03/bad.parquet");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(&bad, b"not parquet at all").unwrap();
    assert!(read_dataset(dir.path()).is_err());
    assert!(read_dataset_pyarrow(dir.path()).is_err());
    assert!(parquet_metadata(&bad).is_err());
}

#[test]
fn parquet_metadata_tells_the_file_properties() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.parquet");
    write_parquet(&file);
    let m = parquet_metadata(&file).unwrap();
    assert_eq!(m["num_rows"], 2);
    assert_eq!(m["num_row_groups"], 2);
    assert_eq!(m["rows_per_row_group"], json!([1, 1]));
    let cols = &m["columns"];
    let names: Vec<&String> = cols.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "id",
            "createdDateTime",
            "seenAt",
            "tags.list.element",
            "device.displayName",
            "device.isCompliant"
        ]
    );
    for (name, c) in cols.as_object().unwrap() {
        assert_eq!(c["compression"], "ZSTD", "{name}");
    }
    assert_eq!(cols["tags.list.element"]["dictionary"], true);
    assert_eq!(cols["id"]["dictionary"], false);
    assert_eq!(cols["id"]["statistics"], true);
    assert_eq!(cols["id"]["min"], json!([1, 2]));
    assert_eq!(cols["createdDateTime"]["null_count"], 0);
    assert_eq!(cols["seenAt"]["statistics"], false);
    let logical = cols["createdDateTime"]["logical_type"].as_str().unwrap();
    assert!(logical.contains("isAdjustedToUTC=true"), "{logical}");
    let schema = m["arrow_schema"].as_str().unwrap();
    assert!(
        schema.contains("createdDateTime: timestamp[us, tz=UTC]"),
        "{schema}"
    );
    assert!(schema.contains("tags: list<element: string>"), "{schema}");
}

#[test]
fn azurite_containers_blobs_and_a_downloaded_dataset() {
    let az = Azurite::start().unwrap();
    let port = az.port();
    assert_eq!(
        az.blob_endpoint(),
        format!("http://127.0.0.1:{port}/devstoreaccount1")
    );
    assert_eq!(
        az.connection_string(),
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};\
             BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;",
            Azurite::KEY
        )
    );

    az.create_container("archive").unwrap();
    assert_eq!(az.list_blobs("archive").unwrap(), vec![]);
    assert!(az.create_container("archive").is_err(), "exists already");
    assert!(az.list_blobs("nothere").is_err(), "no such container");

    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("x.parquet");
    write_parquet(&local);
    let bytes = std::fs::read(&local).unwrap();
    let name = "signins/date=2025-01-01/hour=03/x.parquet";
    az.upload("archive", name, &bytes).unwrap();
    az.upload("archive", "other/readme.txt", b"abc").unwrap();
    assert_eq!(
        az.list_blobs("archive").unwrap(),
        vec![
            ("other/readme.txt".to_owned(), 3),
            (name.to_owned(), bytes.len() as u64)
        ]
    );

    let dest = dir.path().join("download");
    let files = az.download("archive", "signins/", &dest).unwrap();
    let file = dest.join("date=2025-01-01/hour=03/x.parquet");
    assert_eq!(files, vec![file.clone()]);
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    assert_eq!(read_dataset(&dest).unwrap(), expected(&file));
    assert_eq!(read_dataset_pyarrow(&dest).unwrap(), expected(&file));
    // A prefix that ends inside a name keeps the paths from its folder on.
    let dest2 = dir.path().join("download2");
    let files = az.download("archive", "signins/date=", &dest2).unwrap();
    assert_eq!(files, vec![dest2.join("date=2025-01-01/hour=03/x.parquet")]);

    drop(az);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "Azurite still listens after drop"
    );
}

#[test]
fn azurite_keeps_its_blobs_across_a_restart() {
    let mut az = Azurite::start().unwrap();
    az.create_container("keep").unwrap();
    az.upload("keep", "a/b.bin", &[7; 10]).unwrap();
    az.pause();
    assert!(TcpStream::connect(("127.0.0.1", az.port())).is_err());
    az.resume().unwrap();
    assert_eq!(
        az.list_blobs("keep").unwrap(),
        vec![("a/b.bin".to_owned(), 10)]
    );
}
