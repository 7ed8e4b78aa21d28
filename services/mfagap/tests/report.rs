//! `mfagap report` as a user runs it, on a dataset laid out as the archiver lays it out.
//!
//! The dataset is written with the archiver's own writer and layout (`HourBuffer`,
//! `layout::data_file`): rows of users whose names hold commas, quotes, a line break and
//! non-ASCII letters, over several hours and days. The outputs are compared with golden files
//! under `tests/golden/` (`MFAGAP_UPDATE_GOLDEN=1` rewrites them after a deliberate change),
//! and the CSV is read back by two parsers that share nothing with the writer: the `csv`
//! crate's reader and Python's `csv` module.

use mfagap_archiver::layout::{self, Range};
use mfagap_archiver::writer::{FileSettings, HourBuffer};
use mfagap_core::lenient::Text;
use mfagap_core::record::{PolicyResult, SignIn, Source};
use mfagap_core::{Reason, timestamp};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    let dir = tempfile::tempdir().unwrap();
    let settings = FileSettings::new(1, 1000).unwrap();
    let mut buffers = std::collections::BTreeMap::new();
    for (offset, s) in SPECS.iter().enumerate() {
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
