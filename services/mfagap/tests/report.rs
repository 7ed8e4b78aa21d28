//! `mfagap report` as a user runs it, on a dataset laid out as the archiver lays it out.
//!
//! The dataset is written with the archiver's own writer and layout (`HourBuffer`,
//! `layout::data_file`): rows of users whose names hold commas, quotes, a line break and
//! non-ASCII letters, over several hours and days. The outputs are compared with golden files
//! under `tests/golden/` (`MFAGAP_UPDATE_GOLDEN=1` rewrites them after a deliberate change),
//! and the CSV is read back by two parsers that share nothing with the writer: the `csv`
//! crate's reader and Python's `csv` module. The HTML page (`--format html`) is checked number
//! for number against the CSV and JSON reports of the same window, and rendered by headless
//! Chromium (a screenshot, and the DOM after the page's script ran).

use mfagap_archiver::layout::{self, Range};
use mfagap_archiver::writer::{FileSettings, HourBuffer};
use mfagap_core::lenient::Text;
use mfagap_core::record::{PolicyResult, SignIn, Source};
use mfagap_core::{Reason, timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn mfagap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mfagap"))
}

/// One sign-in of the fixture: (id, user, display name, time, reason, client, policies).
struct Spec {
    id: &'static str,
    upn: Option<&'static str>,
    display: Option<&'static str>,
    at: &'static str,
    reason: Reason,
    client: &'static str,
    app: &'static str,
    policies: &'static [&'static str],
}

const SPECS: &[Spec] = &[
    Spec {
        id: "s01",
        upn: Some("alice@contoso.com"),
        display: Some("Smith, Alice"),
        at: "2025-12-10T05:12:00.5Z",
        reason: Reason::LegacyProtocol,
        client: "IMAP4",
        app: "Office 365 Exchange Online",
        policies: &["Require MFA", "Block legacy, except \"pilot\""],
    },
    Spec {
        id: "s02",
        upn: Some("bob@contoso.com"),
        display: Some("Bob \"The Builder\" O'Neil"),
        at: "2025-12-10T05:40:00Z",
        reason: Reason::SingleFactor,
        client: "Browser",
        app: "Azure Portal",
        policies: &[],
    },
    Spec {
        id: "s03",
        upn: Some("zoë@contoso.com"),
        display: Some("Zoë Ünïcødé 日本語"),
        at: "2025-12-11T23:59:59.999999Z",
        reason: Reason::MfaSkipped,
        client: "Mobile Apps and Desktop clients",
        app: "Microsoft Teams",
        policies: &["Require MFA"],
    },
    Spec {
        id: "s04",
        upn: Some("carol@contoso.com"),
        display: Some("Carol\nTwo Lines"),
        at: "2025-12-12T00:00:00Z",
        reason: Reason::LegacyProtocol,
        client: "Authenticated SMTP",
        app: "Office 365 Exchange Online",
        policies: &[],
    },
    // Same instant as s04, another user and no user at all: ordered by name, empty first.
    Spec {
        id: "s05",
        upn: Some("alice@contoso.com"),
        display: Some("Smith, Alice"),
        at: "2025-12-12T00:00:00Z",
        reason: Reason::LegacyProtocol,
        client: "POP3",
        app: "Office 365 Exchange Online",
        policies: &["Block legacy, except \"pilot\""],
    },
    Spec {
        id: "s06",
        upn: None,
        display: None,
        at: "2025-12-12T00:00:00Z",
        reason: Reason::SingleFactor,
        client: "Browser",
        app: "My Apps",
        policies: &[],
    },
    // Same instant and user as s07: ordered by id.
    Spec {
        id: "s08",
        upn: Some("alice@contoso.com"),
        display: Some("Alice Smith"),
        at: "2025-12-12T01:30:00+01:00",
        reason: Reason::SingleFactor,
        client: "Browser",
        app: "Azure Portal",
        policies: &[],
    },
    Spec {
        id: "s07",
        upn: Some("alice@contoso.com"),
        display: Some("Alice Smith"),
        at: "2025-12-12T00:30:00Z",
        reason: Reason::SingleFactor,
        client: "Browser",
        app: "SharePoint Online",
        policies: &[],
    },
    Spec {
        id: "s09",
        upn: Some("bob@contoso.com"),
        display: Some("Bob \"The Builder\" O'Neil"),
        at: "2025-12-12T13:05:00Z",
        reason: Reason::MfaSkipped,
        client: "Browser",
        app: "Azure Portal",
        policies: &["Require MFA", "Trusted locations"],
    },
];

fn record(s: &Spec) -> SignIn<'static> {
    let t = |v: &str| Some(Text(v.to_owned().into()));
    let skipped = s.reason == Reason::MfaSkipped;
    SignIn {
        id: Text(s.id.into()),
        category: Text("SignInLogs".into()),
        tenant_id: t("tenant-1"),
        user_id: s.upn.map(|u| Text(format!("id-{u}").into())),
        user_principal_name: s.upn.map(|u| Text(u.into())),
        user_display_name: s.display.map(|d| Text(d.into())),
        user_type: t("Member"),
        created_date_time: timestamp::parse(s.at).unwrap(),
        app_id: t("app"),
        app_display_name: t(s.app),
        resource_id: t("res"),
        resource_display_name: t(if s.client == "Browser" {
            "Windows Azure Service Management API"
        } else {
            "Office 365 Exchange Online"
        }),
        ip_address: t("203.0.113.7"),
        client_app_used: t(s.client),
        is_interactive: Some(true),
        login_succeeded: true,
        failure_reason: t("Other."),
        mfa_required: skipped,
        mfa_auth_method: None,
        mfa_auth_detail: None,
        mfa_result: if skipped {
            t("MFA skipped due to location")
        } else {
            None
        },
        reason: s.reason,
        policies: s
            .policies
            .iter()
            .map(|p| Text((*p).to_owned().into()))
            .collect(),
        conditional_access_status: t(if s.policies.is_empty() {
            "notApplied"
        } else {
            "success"
        }),
        authentication_methods: vec![Text("Password".into())],
        location: None,
        device_detail: None,
        risk_level_during_sign_in: t("none"),
        risk_state: t("none"),
        correlation_id: t("corr"),
        user_agent: t("ua"),
        authentication_requirement: t(if skipped {
            "multiFactorAuthentication"
        } else {
            "singleFactorAuthentication"
        }),
        session_id: t("session"),
        token_issuer_type: t("AzureAD"),
        authentication_protocol: t(if s.client == "Browser" {
            "oAuth2"
        } else {
            "none"
        }),
        original_transfer_method: None,
        incoming_token_type: t("none"),
        // The evidence: who asked for MFA, and which MFA policies did not apply.
        mfa_requirement_providers: if skipped {
            vec![Text("multiConditionalAccess".into())]
        } else {
            Vec::new()
        },
        mfa_policies_not_applied: match s.reason {
            Reason::LegacyProtocol => vec![PolicyResult {
                display_name: t("MFA for Exchange, all clients"),
                result: t("notApplied"),
            }],
            Reason::MfaSkipped => vec![PolicyResult {
                display_name: t("MFA everywhere"),
                result: t("reportOnlySuccess"),
            }],
            _ => Vec::new(),
        },
        authentication_steps: Vec::new(),
        source: Source {
            kind: Text("file".into()),
            file: t("fixture.jsonl"),
            line: Some(1),
            ..Source::default()
        },
        ingested_at: 0,
    }
}

/// Writes the fixture as the archiver would: one file per (Kafka partition, hour), named by
/// the layout. Records alternate between two partitions, so one hour has two files whose rows
/// interleave in time.
fn dataset() -> tempfile::TempDir {
    dataset_of(SPECS)
}

/// The dataset of `specs`, written as [`dataset`] writes the fixture.
fn dataset_of(specs: &[Spec]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let settings = FileSettings::new(1, 1000).unwrap();
    let mut buffers = std::collections::BTreeMap::new();
    for (offset, s) in specs.iter().enumerate() {
        let r = record(s);
        let hour = layout::hour_of(r.created_date_time);
        let partition = (offset % 2) as i32;
        buffers
            .entry((partition, hour))
            .or_insert_with(|| HourBuffer::new(hour))
            .append(&r, offset as i64, 1000)
            .unwrap();
    }
    for ((partition, hour), buffer) in buffers {
        let file = buffer.encode(&settings).unwrap();
        let path = dir.path().join(
            layout::data_file("entra.signins.nonmfa", partition, hour, file.offsets).as_ref(),
        );
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &file.data).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("_mfagap/commits")).unwrap();
    dir
}

/// Puts a file that is not Parquet in the first partition (2025-12-10 05:00).
fn corrupt_first_partition(root: &Path) -> PathBuf {
    let hour = layout::hour_of(timestamp::parse("2025-12-10T05:00:00Z").unwrap());
    let path = root.join(
        layout::data_file(
            "entra.signins.nonmfa",
            7,
            hour,
            Range {
                first: 100,
                last: 101,
            },
        )
        .as_ref(),
    );
    std::fs::write(&path, b"this is not a Parquet file").unwrap();
    path
}

fn report(root: &Path, args: &[&str]) -> Output {
    mfagap()
        .env_remove("MFAGAP_DATA")
        .arg("report")
        .arg("--data")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the report is UTF-8")
}

fn golden(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("MFAGAP_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (MFAGAP_UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        got,
        want,
        "{} differs (MFAGAP_UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

const HEADER: &str = "userPrincipalName,userDisplayName,createdDateTime,resourceDisplayName,loginSucceeded,failureReason,mfaRequired,mfaAuthMethod,mfaAuthDetail,mfaResult,policies,conditionalAccessStatus,reason,category,mfaPoliciesNotApplied,mfaRequirementProviders,tokenIssuerType,authenticationProtocol,originalTransferMethod,incomingTokenType";

/// The ids in the report's order: by time, then user (none first), then id.
const ORDER: [&str; 9] = [
    "s01", "s02", "s03", "s06", "s05", "s04", "s07", "s08", "s09",
];

#[test]
fn the_csv_report_is_the_seed_columns_in_order_and_reads_back_field_for_field() {
    let dir = dataset();
    let csv_text = ok(report(dir.path(), &[]));
    golden("report.csv", &csv_text);
    assert!(csv_text.starts_with(&format!("{HEADER}\n")));

    // The csv crate's reader.
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header.join(","), HEADER);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), SPECS.len());
    let by_id = |id: &str| SPECS.iter().find(|s| s.id == id).unwrap();
    for (row, id) in rows.iter().zip(ORDER) {
        let s = by_id(id);
        assert_eq!(&row[0], s.upn.unwrap_or(""), "{id}");
        assert_eq!(&row[1], s.display.unwrap_or(""), "{id}");
        assert_eq!(
            &row[2],
            timestamp::format(timestamp::parse(s.at).unwrap()),
            "{id}"
        );
        assert_eq!(&row[4], "True");
        assert_eq!(&row[10], s.policies.join(","), "{id}");
        assert_eq!(&row[12], s.reason.as_str(), "{id}");
        assert_eq!(&row[13], "SignInLogs");
        let (not_applied, providers) = match s.reason {
            Reason::LegacyProtocol => ("MFA for Exchange, all clients (notApplied)", ""),
            Reason::MfaSkipped => (
                "MFA everywhere (reportOnlySuccess)",
                "multiConditionalAccess",
            ),
            _ => ("", ""),
        };
        assert_eq!(&row[14], not_applied, "{id}");
        assert_eq!(&row[15], providers, "{id}");
        assert_eq!(&row[16], "AzureAD");
    }

    // Python's csv module, from the file the report writes with --output.
    let file = dir.path().join("report.csv");
    let out = report(dir.path(), &["--output", file.to_str().unwrap()]);
    assert_eq!(ok(out), "", "with --output nothing goes to stdout");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), csv_text);
    let script = "import csv, json, sys\n\
                  with open(sys.argv[1], newline='', encoding='utf-8') as f:\n\
                  \x20   for row in csv.DictReader(f):\n\
                  \x20       print(json.dumps(row, ensure_ascii=False))\n";
    let parsed = mfagap_testkit::python(["-c", script, file.to_str().unwrap()]).unwrap();
    let parsed: Vec<serde_json::Value> = parsed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed.len(), SPECS.len());
    for (row, id) in parsed.iter().zip(ORDER) {
        let s = by_id(id);
        assert_eq!(row["userPrincipalName"], s.upn.unwrap_or(""), "{id}");
        assert_eq!(row["userDisplayName"], s.display.unwrap_or(""), "{id}");
        assert_eq!(row["policies"], s.policies.join(","), "{id}");
        assert_eq!(row["reason"], s.reason.as_str(), "{id}");
        assert_eq!(
            row["mfaRequired"],
            if s.reason == Reason::MfaSkipped {
                "True"
            } else {
                "False"
            }
        );
    }
}

#[test]
fn json_and_table_formats_carry_the_same_rows() {
    let dir = dataset();
    let json = ok(report(dir.path(), &["--format", "json"]));
    golden("report.jsonl", &json);
    let ids: Vec<String> = json
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
            assert_eq!(
                keys.iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                HEADER
            );
            v["userPrincipalName"].as_str().unwrap_or("-").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), SPECS.len());

    let table = ok(report(dir.path(), &["--format", "table"]));
    golden("report.txt", &table);
    assert_eq!(table.lines().count(), SPECS.len() + 2, "header, rule, rows");
}

#[test]
fn by_user_ranks_users_by_sign_ins() {
    let dir = dataset();
    let csv_text = ok(report(dir.path(), &["--by-user"]));
    golden("by-user.csv", &csv_text);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let first = &rows[0];
    assert_eq!(&first[0], "alice@contoso.com");
    assert_eq!(
        &first[1], "Alice Smith",
        "the display name of the latest sign-in"
    );
    assert_eq!(&first[2], "4");
    assert_eq!(&first[3], "2025-12-10T05:12:00.500000Z");
    assert_eq!(&first[4], "2025-12-12T00:30:00.000000Z");
    assert_eq!(&first[5], "legacy_protocol:2,single_factor:2");
    assert_eq!(&first[7], "IMAP4,POP3");
    assert_eq!(
        &first[8], "MFA for Exchange, all clients",
        "the MFA policies that did not apply to alice's sign-ins"
    );
    assert_eq!(
        rows.len(),
        5,
        "alice, bob, carol, zoë and the sign-in without a user"
    );

    let json = ok(report(dir.path(), &["--by-user", "--format", "json"]));
    golden("by-user.jsonl", &json);
}

#[test]
fn a_window_reads_only_its_partitions() {
    let dir = dataset();
    let bad = corrupt_first_partition(dir.path());

    // The whole dataset includes the corrupt file: a clear error naming it.
    let out = report(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(bad.to_str().unwrap()), "{err}");

    // From the last microsecond of 2025-12-11 to the end of 2025-12-12 00:59: the 05:00
    // partition of 2025-12-10 is never opened.
    let csv_text = ok(report(
        dir.path(),
        &[
            "--since",
            "2025-12-11T23:59:59.999999Z",
            "--until",
            "2025-12-12T01:00:00+00:00",
        ],
    ));
    golden("window.csv", &csv_text);
    let rows = |text: &str| -> Vec<String> {
        csv::Reader::from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap()[2].to_owned())
            .collect()
    };
    let times = rows(&csv_text);
    assert_eq!(times.len(), 6, "s03, s06, s05, s04, s07 and s08: {times:?}");

    // Dates: the whole day.
    let day = ok(report(
        dir.path(),
        &["--since", "2025-12-12", "--until", "2025-12-12"],
    ));
    assert_eq!(rows(&day).len(), 6, "{day}");

    // An empty window is just the header.
    let empty = ok(report(dir.path(), &["--since", "2030-01-01"]));
    assert_eq!(empty, format!("{HEADER}\n"));
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = report(&missing, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the dataset"));

    let out = report(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no mfagap dataset"));

    let data = dataset();
    let out = report(
        data.path(),
        &["--since", "2025-12-13", "--until", "2025-12-11"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is after --until"));

    let out = report(data.path(), &["--since", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2), "a bad flag");

    // A failed report leaves no partial output file.
    corrupt_first_partition(data.path());
    let file = data.path().join("out.csv");
    let out = report(data.path(), &["--output", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!file.exists());
}

/// A dataset written with at-least-once delivery may hold a sign-in twice (a re-read after a
/// crash, under other offsets): the report counts each sign-in once.
#[test]
fn a_sign_in_the_dataset_holds_twice_is_reported_once() {
    let root = dataset();
    let once = ok(report(root.path(), &[]));
    // The first five records again, as a re-read writes them: another partition's file.
    let settings = FileSettings::new(1, 1000).unwrap();
    let mut buffers = std::collections::BTreeMap::new();
    for (offset, s) in SPECS.iter().take(5).enumerate() {
        let r = record(s);
        let hour = layout::hour_of(r.created_date_time);
        buffers
            .entry(hour)
            .or_insert_with(|| HourBuffer::new(hour))
            .append(&r, 500 + offset as i64, 1000)
            .unwrap();
    }
    for (hour, buffer) in buffers {
        let file = buffer.encode(&settings).unwrap();
        let path = root
            .path()
            .join(layout::data_file("entra.signins.nonmfa", 9, hour, file.offsets).as_ref());
        std::fs::write(&path, &file.data).unwrap();
    }
    let rows = mfagap_testkit::read_dataset(root.path()).unwrap();
    assert_eq!(rows.len(), SPECS.len() + 5, "DuckDB reads the copies");
    let twice = ok(report(root.path(), &[]));
    assert_eq!(twice, once, "the report is the same, each sign-in once");
}

#[test]
fn a_file_written_before_the_evidence_fields_still_reads() {
    use arrow_array::cast::AsArray;
    let root = dataset();
    // One more sign-in, in a file of schema version 1: the same columns minus those version 2
    // added.
    let mut r = record(&SPECS[1]);
    r.id = Text("v1".into());
    r.created_date_time = timestamp::parse("2025-12-13T10:00:00Z").unwrap();
    let hour = layout::hour_of(r.created_date_time);
    let mut b = mfagap_core::batch::BatchBuilder::new();
    b.append(&r);
    let batch = b.finish().unwrap();
    let v2 = [
        "authenticationRequirement",
        "sessionId",
        "tokenIssuerType",
        "authenticationProtocol",
        "originalTransferMethod",
        "incomingTokenType",
        "mfaRequirementProviders",
        "mfaPoliciesNotApplied",
        "authenticationSteps",
    ];
    let keep: Vec<usize> = (0..batch.num_columns())
        .filter(|&i| !v2.contains(&batch.schema().field(i).name().as_str()))
        .collect();
    let old = batch.project(&keep).unwrap();
    // Version 1's deviceDetail had four fields.
    let (i, _) = old.schema().column_with_name("deviceDetail").unwrap();
    let device = old.column(i).as_struct().clone();
    let (fields, columns, nulls) = device.into_parts();
    let device = arrow_array::StructArray::try_new(
        fields.iter().take(4).cloned().collect(),
        columns[..4].to_vec(),
        nulls,
    )
    .unwrap();
    let mut columns = old.columns().to_vec();
    columns[i] = std::sync::Arc::new(device);
    let mut schema_fields: Vec<arrow_schema::FieldRef> =
        old.schema().fields().iter().cloned().collect();
    schema_fields[i] = std::sync::Arc::new(arrow_schema::Field::new(
        "deviceDetail",
        columns[i].data_type().clone(),
        true,
    ));
    let old = arrow_array::RecordBatch::try_new(
        std::sync::Arc::new(arrow_schema::Schema::new(schema_fields)),
        columns,
    )
    .unwrap();
    assert_eq!(old.num_columns(), batch.num_columns() - v2.len());
    let path = root.path().join(
        layout::data_file(
            "entra.signins.nonmfa",
            0,
            hour,
            Range {
                first: 900,
                last: 900,
            },
        )
        .as_ref(),
    );
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        old.schema(),
        None,
    )
    .unwrap();
    w.write(&old).unwrap();
    w.close().unwrap();

    let csv_text = ok(report(root.path(), &[]));
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), SPECS.len() + 1, "the old file's row is there");
    let last = rows.last().unwrap();
    assert_eq!(&last[2], "2025-12-13T10:00:00.000000Z");
    assert_eq!(&last[12], "single_factor");
    assert!(
        (14..20).all(|i| last[i].is_empty()),
        "no evidence in a version 1 row: {last:?}"
    );
    // And DuckDB reads old and new files together, by name.
    let all = mfagap_testkit::read_dataset(root.path()).unwrap();
    assert_eq!(all.len(), SPECS.len() + 1);
}

// ---------------------------------------------------------------------------------------------
// `--format html`: the page, its numbers against the CSV report's, and the page in a browser.

/// Decodes the character references the HTML report writes (named `&amp; &lt; &gt; &quot;`,
/// numeric `&#NN;`).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find(';')
            .unwrap_or_else(|| panic!("an unterminated reference in {s:?}"))
            + i;
        out.push(match &rest[i + 1..end] {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            n if n.starts_with('#') => char::from_u32(n[1..].parse().unwrap()).unwrap(),
            other => panic!("unexpected reference &{other}; in {s:?}"),
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The text of an HTML fragment: tags dropped, references decoded.
fn html_text(s: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    unescape(&text)
}

/// Attribute `name` of the start tag that `tag` begins with.
fn attr(tag: &str, name: &str) -> Option<String> {
    let start = &tag[..tag.find('>')?];
    let key = format!(" {name}=\"");
    let i = start.find(&key)? + key.len();
    let j = start[i..].find('"')? + i;
    Some(unescape(&start[i..j]))
}

/// From the first `open` in `html` to the next `close`; empty when there is no `open`.
fn element<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
    match html.find(open) {
        Some(i) => {
            let rest = &html[i..];
            &rest[..rest.find(close).expect("the element is closed")]
        }
        None => "",
    }
}

/// The rows of a table the page writes (one `<tr data-…>` a line).
fn table_rows(table: &str) -> Vec<&str> {
    table
        .lines()
        .filter(|l| l.starts_with("<tr data-"))
        .collect()
}

/// A row's cells as text: `(none)` cells are empty, list items are joined with `,` as the CSV
/// report joins them.
fn cells(row: &str) -> Vec<String> {
    row.split("<td")
        .skip(1)
        .map(|cell| {
            let tag_end = cell.find('>').unwrap();
            let inner = &cell[tag_end + 1..cell.find("</td>").unwrap()];
            if cell[..tag_end].contains("class=\"none\"") {
                String::new()
            } else if inner.contains("<li>") {
                inner
                    .split("<li>")
                    .skip(1)
                    .map(|li| html_text(&li[..li.find("</li>").unwrap()]))
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                html_text(inner)
            }
        })
        .collect()
}

/// `data-n` of the element `marker` (an attribute text such as `data-stat="users"`) starts.
fn stat(html: &str, marker: &str) -> Option<u64> {
    let i = html.find(marker)?;
    let n = attr(&html[html[..i].rfind('<')?..], "data-n")?;
    Some(n.parse().unwrap())
}

/// The fixture's sign-ins in a window (instants in RFC 3339).
fn sign_ins_in(since: Option<&str>, until: Option<&str>) -> Vec<&'static Spec> {
    let t = |s: &str| timestamp::parse(s).unwrap();
    SPECS
        .iter()
        .filter(|s| since.is_none_or(|b| t(s.at) >= t(b)) && until.is_none_or(|e| t(s.at) < t(e)))
        .collect()
}

/// Counts per key, as a sorted map.
fn tally<'a>(keys: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for k in keys {
        *m.entry(k.to_owned()).or_default() += 1;
    }
    m
}

/// The page of a window against the CSV and JSON reports of the same window, number for
/// number; returns the page.
fn html_matches_csv(root: &Path, since: Option<&str>, until: Option<&str>) -> String {
    let mut window: Vec<&str> = Vec::new();
    if let Some(s) = since {
        window.extend(["--since", s]);
    }
    if let Some(u) = until {
        window.extend(["--until", u]);
    }
    let with = |more: &[&str]| ok(report(root, &[window.as_slice(), more].concat()));
    let html = with(&["--format", "html"]);
    let csv_rows: Vec<csv::StringRecord> = csv::Reader::from_reader(with(&[]).as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    let by_user: Vec<csv::StringRecord> = csv::Reader::from_reader(with(&["--by-user"]).as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    let json_lines = |text: String| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let users_json = json_lines(with(&["--by-user", "--format", "json"]));
    let rows_json = json_lines(with(&["--format", "json"]));
    let named = |u: &&serde_json::Value| u["userPrincipalName"] != "";
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };

    // Totals.
    assert_eq!(
        stat(&html, "data-stat=\"sign-ins\""),
        Some(csv_rows.len() as u64)
    );
    let named_users = by_user.iter().filter(|u| !u[0].is_empty()).count() as u64;
    assert_eq!(stat(&html, "data-stat=\"users\""), Some(named_users));
    let no_user = by_user
        .iter()
        .find(|u| u[0].is_empty())
        .map(|u| u[2].parse::<u64>().unwrap());
    assert_eq!(stat(&html, "data-stat=\"no-user-sign-ins\""), no_user);
    let apps: BTreeSet<String> = users_json
        .iter()
        .flat_map(|u| strings(&u["apps"]))
        .collect();
    assert_eq!(stat(&html, "data-stat=\"apps\""), Some(apps.len() as u64));
    // The instant in `datetime`, and on screen as its date and time.
    let instant = |name: &str| {
        let e = element(&html, &format!("data-stat=\"{name}\""), "</div>");
        let shown = html_text(&e[e.find('>').unwrap() + 1..]);
        match e.find("<time") {
            Some(i) => {
                let t = attr(&e[i..], "datetime").unwrap();
                assert_eq!(shown, t.replacen('T', " ", 1), "{name}");
                t
            }
            None => shown,
        }
    };
    match (csv_rows.first(), csv_rows.last()) {
        (Some(first), Some(last)) => {
            assert_eq!(instant("first"), &first[2]);
            assert_eq!(instant("last"), &last[2]);
        }
        _ => {
            assert_eq!(instant("first"), "—");
            assert_eq!(instant("last"), "—");
        }
    }
    let reasons = tally(csv_rows.iter().map(|r| &r[12]));
    for reason in Reason::ALL {
        let marker = format!("data-stat=\"reason\" data-reason=\"{}\"", reason.as_str());
        assert_eq!(
            stat(&html, &marker),
            Some(reasons.get(reason.as_str()).copied().unwrap_or(0)),
            "{reason}"
        );
    }

    // The trend: each bar is the sign-ins of one day and reason.
    let mut bars: BTreeMap<(String, String), u64> = BTreeMap::new();
    for rect in html.split("<rect class=\"bar ").skip(1) {
        let rect = format!("<rect {rect}");
        let key = (
            attr(&rect, "data-day").unwrap(),
            attr(&rect, "data-reason").unwrap(),
        );
        *bars.entry(key).or_default() += attr(&rect, "data-n").unwrap().parse::<u64>().unwrap();
    }
    let mut per_day: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in &csv_rows {
        *per_day
            .entry((r[2][..10].to_owned(), r[12].to_owned()))
            .or_default() += 1;
    }
    assert_eq!(
        bars, per_day,
        "the bars are the CSV's sign-ins per day and reason"
    );

    // Top users: the first --by-user rows.
    let top_users: Vec<(String, u64)> = table_rows(element(&html, "id=\"top-users\"", "</table>"))
        .iter()
        .map(|r| {
            (
                attr(r, "data-key").unwrap(),
                attr(r, "data-n").unwrap().parse().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = by_user
        .iter()
        .take(10)
        .map(|u| (u[0].to_owned(), u[2].parse().unwrap()))
        .collect();
    assert_eq!(top_users, want);

    // Top apps, legacy clients and policies: (sign-ins, users) per entry.
    let top = |id: &str| -> BTreeMap<String, (u64, u64)> {
        table_rows(element(&html, &format!("id=\"{id}\""), "</table>"))
            .iter()
            .map(|r| {
                let n = |a: &str| attr(r, a).unwrap().parse::<u64>().unwrap();
                (attr(r, "data-key").unwrap(), (n("data-n"), n("data-users")))
            })
            .collect()
    };
    let users_with = |field: &str, name: &str| {
        users_json
            .iter()
            .filter(named)
            .filter(|u| strings(&u[field]).iter().any(|s| s == name))
            .count() as u64
    };
    let specs = sign_ins_in(since, until);
    assert_eq!(specs.len(), csv_rows.len());
    let want_apps: BTreeMap<String, (u64, u64)> = tally(specs.iter().map(|s| s.app))
        .into_iter()
        .map(|(app, n)| {
            let users = users_with("apps", &app);
            (app, (n, users))
        })
        .collect();
    assert_eq!(want_apps.keys().cloned().collect::<BTreeSet<_>>(), apps);
    assert_eq!(top("top-apps"), want_apps);
    let legacy = specs
        .iter()
        .filter(|s| s.reason == Reason::LegacyProtocol)
        .map(|s| s.client);
    let want_legacy: BTreeMap<String, (u64, u64)> = tally(legacy)
        .into_iter()
        .map(|(client, n)| {
            let users = users_with("legacyClients", &client);
            (client, (n, users))
        })
        .collect();
    assert_eq!(
        want_legacy.values().map(|(n, _)| n).sum::<u64>(),
        reasons.get("legacy_protocol").copied().unwrap_or(0),
        "every legacy sign-in of the fixture names its client"
    );
    assert_eq!(top("top-legacy-clients"), want_legacy);
    let mut not_applied: BTreeMap<String, u64> = BTreeMap::new();
    let mut results: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for row in &rows_json {
        let items = row["mfaPoliciesNotApplied"].as_array().unwrap();
        let names: BTreeSet<&str> = items
            .iter()
            .map(|p| p["displayName"].as_str().unwrap())
            .collect();
        for name in names {
            *not_applied.entry(name.to_owned()).or_default() += 1;
        }
        for p in items {
            *results
                .entry(p["displayName"].as_str().unwrap().to_owned())
                .or_default()
                .entry(p["result"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    let want_policies: BTreeMap<String, (u64, u64)> = not_applied
        .into_iter()
        .map(|(p, n)| {
            let users = users_with("policiesNotApplied", &p);
            (p, (n, users))
        })
        .collect();
    assert_eq!(top("top-policies-not-applied"), want_policies);
    for row in table_rows(element(
        &html,
        "id=\"top-policies-not-applied\"",
        "</table>",
    )) {
        let name = attr(row, "data-key").unwrap();
        let how: Vec<String> = results[&name]
            .iter()
            .map(|(result, n)| format!("{result} {n}"))
            .collect();
        assert_eq!(cells(row)[3], how.join(", "), "{name}");
    }

    // The users' table is the --by-user CSV, cell for cell, in its order.
    let table = table_rows(element(&html, "id=\"users\"", "</table>"));
    assert_eq!(table.len(), by_user.len());
    for (row, want) in table.iter().zip(&by_user) {
        let mut got = cells(row);
        got[5] = got[5].replace(": ", ":");
        // Numbers and instants in data-sort (on screen, instants to the second).
        got[2] = attr(&row[row.find("<td class=\"num\"").unwrap()..], "data-sort").unwrap();
        let times: Vec<String> = row
            .split("<td class=\"time\"")
            .skip(1)
            .map(|c| attr(&format!("<td{c}"), "data-sort").unwrap())
            .collect();
        assert_eq!(times.len(), 2);
        for (i, t) in [3, 4].into_iter().zip(times) {
            assert_eq!(got[i], t.replacen('T', " ", 1)[..19], "to the second");
            got[i] = t;
        }
        let want: Vec<String> = want.iter().map(str::to_owned).collect();
        assert_eq!(got, want);
        assert_eq!(attr(row, "data-user").unwrap(), want[0]);
    }
    html
}

#[test]
fn the_html_page_has_the_csv_reports_numbers() {
    let dir = dataset();
    let html = html_matches_csv(dir.path(), None, None);
    golden("report.html", &html);
    assert!(html.starts_with("<!DOCTYPE html>\n"));
    assert!(html.contains("<rect class=\"bar "));
    // Self-contained: nothing is fetched.
    for outside in ["http://", "https://", "src=", "href=", "@import", "url("] {
        let hits: Vec<&str> = html
            .lines()
            .filter(|l| l.contains(outside) && !l.contains("xmlns=\"http://www.w3.org/2000/svg\""))
            .collect();
        assert!(hits.is_empty(), "{outside}: {hits:?}");
    }
    // Names with quotes, a line break and non-ASCII letters, escaped.
    assert!(html.contains("Bob &quot;The Builder&quot; O&#39;Neil"));
    assert!(html.contains("Carol&#10;Two Lines"));
    assert!(html.contains("Zoë Ünïcødé 日本語"));
    assert!(!html.contains("\"The Builder\""));

    // The window of a_window_reads_only_its_partitions, and an empty one.
    let html = html_matches_csv(
        dir.path(),
        Some("2025-12-11T23:59:59.999999Z"),
        Some("2025-12-12T01:00:00+00:00"),
    );
    assert_eq!(stat(&html, "data-stat=\"sign-ins\""), Some(6));
    let html = html_matches_csv(dir.path(), Some("2030-01-01T00:00:00Z"), None);
    assert_eq!(stat(&html, "data-stat=\"sign-ins\""), Some(0));
    assert!(!html.contains("<rect class=\"bar "));
    assert!(html.contains("No sign-ins in this window."));

    // --by-user makes the same page, and -o writes it to a file.
    let page = ok(report(dir.path(), &["--format", "html"]));
    assert_eq!(
        ok(report(dir.path(), &["--format", "html", "--by-user"])),
        page
    );
    let file = dir.path().join("report.html");
    let out = report(
        dir.path(),
        &["--format", "html", "-o", file.to_str().unwrap()],
    );
    assert_eq!(ok(out), "");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), page);
}

/// Names made to break out of their cell, their attribute or the page.
const HOSTILE: &[Spec] = &[
    Spec {
        id: "h1",
        upn: Some("\"><script>alert(1)</script>@contoso.com"),
        display: Some("</td></tr><img src=x onerror=alert(2)>"),
        at: "2025-12-10T05:12:00Z",
        reason: Reason::LegacyProtocol,
        client: "<b>IMAP4</b> & \"POP\"",
        app: "App 'one'\r\n<!-- not a comment -->",
        policies: &[],
    },
    Spec {
        id: "h2",
        upn: Some("x@y'z"),
        display: Some("\u{7}bell\ttab"),
        at: "2025-12-10T06:00:00Z",
        reason: Reason::MfaSkipped,
        client: "Browser",
        app: "]]></svg>",
        policies: &[],
    },
];

#[test]
fn the_html_page_escapes_every_value() {
    let dir = dataset_of(HOSTILE);
    let html = ok(report(dir.path(), &["--format", "html"]));
    assert_eq!(
        html.matches("<script>").count(),
        1,
        "only the page's own script"
    );
    assert!(!html.contains("<img"));
    assert!(!html.contains("<b>"));
    assert!(!html.contains("<!-- not"));
    assert_eq!(html.matches("</svg>").count(), 1, "only the chart's end");
    // Every value reads back as it was, one table row a line.
    let table = table_rows(element(&html, "id=\"users\"", "</table>"));
    assert_eq!(table.len(), 2);
    let h1 = cells(table.iter().find(|r| r.contains("alert(1)")).unwrap());
    assert_eq!(h1[0], HOSTILE[0].upn.unwrap());
    assert_eq!(h1[1], HOSTILE[0].display.unwrap());
    assert_eq!(h1[6], HOSTILE[0].app);
    assert_eq!(h1[7], HOSTILE[0].client);
    let h2 = cells(table.iter().find(|r| r.contains("x@y")).unwrap());
    assert_eq!(h2[0], "x@y'z");
    assert_eq!(
        h2[1], "\u{FFFD}bell\ttab",
        "a control character is replaced"
    );
}

/// The `chromium` on the PATH (`scripts/setup.sh` installs it).
fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
        .expect("no chromium on the PATH: run scripts/setup.sh")
}

/// Longest a headless Chromium may take to render the page.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(120);

/// Opens `url` in headless Chromium with `args`, a fresh profile and no network use of its
/// own; returns its standard output and error. Killed after [`CHROMIUM_TIMEOUT`].
fn headless(url: &str, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        let mut pipe = pipe.expect("a piped stream");
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {CHROMIUM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(status.success(), "chromium: {status}\n{stderr}");
    (stdout, stderr)
}

/// The fixture's page, written with `-o` to a file of its own directory.
fn html_file() -> (tempfile::TempDir, PathBuf, String) {
    let data = dataset();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.html");
    ok(report(
        data.path(),
        &["--format", "html", "-o", file.to_str().unwrap()],
    ));
    let html = std::fs::read_to_string(&file).unwrap();
    (dir, file, html)
}

#[test]
fn chromium_renders_the_html_page() {
    let (dir, file, _) = html_file();
    let png = dir.path().join("report.png");
    headless(
        &format!("file://{}", file.display()),
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,2400",
        ],
    );
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), (1280, 2400), "the window's size");
    // A blank page of that size compresses to a few kilobytes; text, bars and tables do not.
    assert!(
        bytes.len() > 40_000,
        "{} bytes: is the page blank?",
        bytes.len()
    );
}

#[test]
fn chromium_runs_the_script_and_draws_the_bars() {
    let (_dir, file, html) = html_file();
    // The script sorts the users' table by the address's #sort=: by name, Z first.
    let (dom, log) = headless(
        &format!("file://{}#sort=user-desc", file.display()),
        &["--enable-logging=stderr", "--v=0", "--dump-dom"],
    );
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "the page logged: {console:#?}");
    assert!(
        dom.contains("data-script=\"ok\""),
        "the script ran to its end"
    );
    let bars = dom.matches("<rect class=\"bar ").count();
    assert!(bars > 0, "no bars in the rendered DOM");
    assert_eq!(bars, html.matches("<rect class=\"bar ").count());
    assert!(dom.contains("<svg class=\"trend\""));
    let users = element(&dom, "id=\"users\"", "</table>");
    let order: Vec<String> = users
        .split("<tr data-user=\"")
        .skip(1)
        .map(|r| unescape(&r[..r.find('"').unwrap()]))
        .collect();
    assert_eq!(
        order,
        [
            "zoë@contoso.com",
            "carol@contoso.com",
            "bob@contoso.com",
            "alice@contoso.com",
            ""
        ]
    );
    assert!(users.contains("data-key=\"user\" data-type=\"text\" aria-sort=\"descending\""));
}
