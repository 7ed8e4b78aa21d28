//! `mfagap report`: the partner script's `report.csv`, as a query over the Parquet dataset.
//!
//! The archiver lays the dataset out by the sign-in's hour (`date=YYYY-MM-DD/hour=HH/`, see
//! `mfagap_archiver::layout`), so a time window names the directories to read: only the
//! partitions whose hour overlaps `[--since, --until)` are opened, then rows are filtered by
//! `createdDateTime`. Partitions are read one hour at a time, in order, and each hour's rows are
//! sorted before they are written, so memory holds one hour of rows (the whole report only for
//! `--format table`, which must measure its columns, and per user for `--by-user`).
//!
//! # Columns
//!
//! The seed report's columns, in its order, then two of ours, then the evidence behind the
//! verdict:
//!
//! | column | from the output record |
//! | --- | --- |
//! | `userPrincipalName`, `userDisplayName`, `resourceDisplayName`, `failureReason`, `mfaAuthMethod`, `mfaAuthDetail`, `mfaResult`, `conditionalAccessStatus` | the field of the same name; empty when null |
//! | `createdDateTime` | the field, in UTC as `2025-12-12T14:56:31.123456Z` (what every mfagap output carries) |
//! | `loginSucceeded`, `mfaRequired` | the field, as `True`/`False` as the script's `Export-Csv` writes booleans |
//! | `policies` | the applied conditional-access policies' display names joined with `,` in one field, as the script joins them |
//! | `reason` | why no MFA: `legacy_protocol`, `mfa_skipped`, `single_factor` |
//! | `category` | the log the sign-in came from (`SignInLogs`, `NonInteractiveUserSignInLogs`, …) |
//! | `mfaPoliciesNotApplied` | the conditional-access policies that ask for MFA and did not apply, as `name (result)` joined with `,` |
//! | `mfaRequirementProviders`, `tokenIssuerType`, `authenticationProtocol`, `originalTransferMethod`, `incomingTokenType` | the evidence fields of the same name (lists joined with `,`); empty for rows written before schema version 2 |
//!
//! Every seed column has a field of its own in the record, so nothing is derived but the text
//! of booleans and the joined list. Fields are quoted as RFC 4180 says (the `csv` crate: a
//! field holding a comma, a quote or a line break is quoted, quotes doubled); lines end with
//! `\n`. `--format json` writes the same columns as JSON Lines with JSON types (null, booleans,
//! `policies` as an array); `--format table` aligns them for a terminal (cells cut at
//! [`TABLE_CELL`] characters, line breaks shown as spaces).
//!
//! Rows are ordered by `createdDateTime`, then `userPrincipalName`, then `id`.
//!
//! # `--by-user`
//!
//! One row per `userPrincipalName` (sign-ins without one are grouped under the empty name):
//! `userPrincipalName`, `userDisplayName` (of the user's latest sign-in), `signIns`,
//! `firstSeen`, `lastSeen`, `reasons` (`reason:count` for each reason present, joined with
//! `,`), `apps` (the distinct `appDisplayName`s, sorted, joined with `,`) and `legacyClients`
//! (the distinct `clientAppUsed` of the user's `legacy_protocol` sign-ins, sorted, joined) and
//! `policiesNotApplied` (the distinct MFA policies that did not apply to any of the user's
//! sign-ins, sorted, joined: the policies that should have protected them).
//! Ordered by `signIns`, most first, then by `userPrincipalName`: the users to look at first.
//!
//! # `--format html`
//!
//! One self-contained page of the same rows: the totals, the trend per day and reason, the top
//! users, apps, legacy clients and MFA policies that did not apply, and the `--by-user` table
//! (the module [`html`]; `--by-user` makes the same page). Memory holds what `--by-user` holds
//! and one count per day, app, legacy client and policy.

use anyhow::{Context, Result, bail};
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, TimeUnit};
use chrono::{NaiveDate, NaiveTime};
use mfagap_archiver::layout::{self, Hour};
use mfagap_core::Reason;
use mfagap_core::timestamp::{self, Micros};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod html;

/// The report's columns, in the seed's order, then `reason` and `category`, then the evidence.
pub(crate) const COLUMNS: [&str; 20] = [
    "userPrincipalName",
    "userDisplayName",
    "createdDateTime",
    "resourceDisplayName",
    "loginSucceeded",
    "failureReason",
    "mfaRequired",
    "mfaAuthMethod",
    "mfaAuthDetail",
    "mfaResult",
    "policies",
    "conditionalAccessStatus",
    "reason",
    "category",
    "mfaPoliciesNotApplied",
    "mfaRequirementProviders",
    "tokenIssuerType",
    "authenticationProtocol",
    "originalTransferMethod",
    "incomingTokenType",
];

/// The `--by-user` columns.
pub(crate) const USER_COLUMNS: [&str; 9] = [
    "userPrincipalName",
    "userDisplayName",
    "signIns",
    "firstSeen",
    "lastSeen",
    "reasons",
    "apps",
    "legacyClients",
    "policiesNotApplied",
];

/// Longest cell of `--format table`, in characters: a list of fifty policies would otherwise
/// make every line as wide as itself.
pub(crate) const TABLE_CELL: usize = 40;

/// How the report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// CSV with a header line, the partner script's `report.csv`.
    Csv,
    /// JSON Lines, one object per row, the same columns.
    Json,
    /// An aligned table for a terminal.
    Table,
    /// One self-contained HTML page: totals, the trend per day, the top lists and the users.
    Html,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// Root of the Parquet dataset the archiver writes (a local directory).
    #[arg(
        long,
        value_name = "DIR",
        env = "MFAGAP_DATA",
        default_value = "./mfagap-data"
    )]
    pub data: PathBuf,
    /// Sign-ins at or after this instant (RFC 3339, e.g. 2025-12-12T08:00:00Z, or a date:
    /// its midnight UTC).
    #[arg(long, value_name = "T", value_parser = parse_since)]
    pub since: Option<Micros>,
    /// Sign-ins before this instant (RFC 3339, or a date: the whole day is included).
    #[arg(long, value_name = "T", value_parser = parse_until)]
    pub until: Option<Micros>,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// One row per user instead of one per sign-in (`--format html` makes the same page either
    /// way: it always has the users' table).
    #[arg(long)]
    pub by_user: bool,
    /// Write here instead of standard output (replaced only once the report is complete).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `--since`: an instant, or a date's first microsecond.
fn parse_since(s: &str) -> Result<Micros, String> {
    parse_instant(s, false)
}

/// `--until`: an instant, or the end of a date (the next midnight), so a date means that day.
fn parse_until(s: &str) -> Result<Micros, String> {
    parse_instant(s, true)
}

fn parse_instant(s: &str, end_of_day: bool) -> Result<Micros, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        let d = if end_of_day {
            d.succ_opt()
                .ok_or_else(|| format!("date out of range: {s}"))?
        } else {
            d
        };
        return Ok(d.and_time(NaiveTime::MIN).and_utc().timestamp_micros());
    }
    timestamp::parse(s).map_err(|e| format!("{e} (expected RFC 3339 or YYYY-MM-DD)"))
}

/// The instants a report covers: `since <= createdDateTime < until`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Window {
    pub since: Option<Micros>,
    pub until: Option<Micros>,
}

const MICROS_PER_HOUR: i64 = 3_600_000_000;

impl Window {
    fn contains(&self, t: Micros) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }

    /// Whether any instant of the hour can be in the window: the pruning test.
    fn overlaps(&self, hour: Hour) -> bool {
        let start = hour.saturating_mul(MICROS_PER_HOUR);
        let end = start.saturating_add(MICROS_PER_HOUR);
        self.since.is_none_or(|s| end > s) && self.until.is_none_or(|u| start < u)
    }
}

/// One sign-in as the report needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub id: String,
    pub category: String,
    pub user_principal_name: Option<String>,
    pub user_display_name: Option<String>,
    pub created: Micros,
    pub app_display_name: Option<String>,
    pub resource_display_name: Option<String>,
    pub client_app_used: Option<String>,
    pub login_succeeded: bool,
    pub failure_reason: Option<String>,
    pub mfa_required: bool,
    pub mfa_auth_method: Option<String>,
    pub mfa_auth_detail: Option<String>,
    pub mfa_result: Option<String>,
    pub reason: String,
    pub policies: Vec<String>,
    pub conditional_access_status: Option<String>,
    /// `(displayName, result)` of each MFA policy that did not apply.
    pub mfa_policies_not_applied: Vec<(String, String)>,
    pub mfa_requirement_providers: Vec<String>,
    pub token_issuer_type: Option<String>,
    pub authentication_protocol: Option<String>,
    pub original_transfer_method: Option<String>,
    pub incoming_token_type: Option<String>,
}

impl Row {
    /// The report's order: time, then user, then id.
    fn sort_key(&self) -> (Micros, Option<&str>, &str) {
        (
            self.created,
            self.user_principal_name.as_deref(),
            self.id.as_str(),
        )
    }
}

/// A dataset on a local disk: its hour partitions, found by the archiver's layout.
#[derive(Debug)]
pub(crate) struct Dataset {
    /// Each partition's hour and directory, in hour order.
    partitions: Vec<(Hour, PathBuf)>,
    /// Only the files of this Kafka topic (names start with `<topic>-`), when set.
    topic: Option<String>,
}

impl Dataset {
    /// Finds the partitions under `root`; fails when `root` is missing or holds no dataset
    /// (neither a partition nor the archiver's `_mfagap/` directory).
    pub(crate) fn open(root: &Path) -> Result<Dataset> {
        let meta = std::fs::metadata(root)
            .with_context(|| format!("cannot read the dataset {}", root.display()))?;
        if !meta.is_dir() {
            bail!("the dataset {} is not a directory", root.display());
        }
        let mut partitions = Vec::new();
        let mut has_state = false;
        for entry in read_dir_sorted(root)? {
            let name = entry.to_string_lossy().into_owned();
            if name == "_mfagap" {
                has_state = true;
                continue;
            }
            let Some(date) = name.strip_prefix("date=") else {
                continue;
            };
            let dir = root.join(&name);
            if !dir.is_dir() {
                continue;
            }
            let Ok(day) = NaiveDate::parse_from_str(date, "%Y-%m-%d") else {
                eprintln!(
                    "mfagap: skipping {}: not a date=YYYY-MM-DD partition",
                    dir.display()
                );
                continue;
            };
            let days = day.signed_duration_since(NaiveDate::default()).num_days();
            for hour_entry in read_dir_sorted(&dir)? {
                let hour_name = hour_entry.to_string_lossy().into_owned();
                let hour_dir = dir.join(&hour_name);
                let Some(h) = hour_name
                    .strip_prefix("hour=")
                    .and_then(|h| h.parse::<i64>().ok())
                    .filter(|h| (0..24).contains(h))
                else {
                    continue;
                };
                let hour = days * 24 + h;
                // The layout's own name for that hour must be this directory's.
                if layout::hive_dir(hour) != format!("{name}/{hour_name}") || !hour_dir.is_dir() {
                    eprintln!(
                        "mfagap: skipping {}: not a date=YYYY-MM-DD/hour=HH partition",
                        hour_dir.display()
                    );
                    continue;
                }
                partitions.push((hour, hour_dir));
            }
        }
        if partitions.is_empty() && !has_state {
            bail!(
                "{} holds no mfagap dataset (no date=…/hour=… partitions and no _mfagap/ directory)",
                root.display()
            );
        }
        partitions.sort();
        Ok(Dataset {
            partitions,
            topic: None,
        })
    }

    /// Restricts the report to the files the archiver wrote from one topic: `mfagap run`
    /// reports what its own run archived, not what earlier runs left in the same directory.
    pub(crate) fn only_topic(mut self, topic: &str) -> Dataset {
        self.topic = Some(format!("{topic}-"));
        self
    }

    /// The partitions whose hour overlaps the window; the others are never opened.
    pub(crate) fn partitions_in(&self, window: Window) -> impl Iterator<Item = &(Hour, PathBuf)> {
        self.partitions
            .iter()
            .filter(move |(hour, _)| window.overlaps(*hour))
    }

    /// Calls `f` with every row in the window, in the report's order.
    pub(crate) fn scan(&self, window: Window, mut f: impl FnMut(&Row) -> Result<()>) -> Result<()> {
        for (_, dir) in self.partitions_in(window) {
            let mut rows = Vec::new();
            for file in read_dir_sorted(dir)? {
                let name = file.to_string_lossy();
                // Hive readers skip hidden files; the archiver writes none.
                if !name.ends_with(".parquet") || name.starts_with('.') || name.starts_with('_') {
                    continue;
                }
                if let Some(prefix) = &self.topic
                    && !name.starts_with(prefix.as_str())
                {
                    continue;
                }
                read_file(&dir.join(&*name), window, &mut rows)?;
            }
            // A dataset written with at-least-once delivery may hold a sign-in twice; both
            // copies have its time, so they are in the same hour: the first read (the lower
            // offset of its partition) counts, the others are skipped.
            let mut seen = std::collections::HashSet::new();
            rows.retain(|r| seen.insert((r.category.clone(), r.id.clone())));
            // Every row of a partition is in its hour, so sorting each hour sorts the report.
            rows.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
            for row in &rows {
                f(row)?;
            }
        }
        Ok(())
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        names.push(
            entry
                .with_context(|| format!("cannot list {}", dir.display()))?
                .file_name(),
        );
    }
    names.sort();
    Ok(names)
}

/// The record fields the report reads (a projection: the other columns are not decoded).
const FIELDS: [&str; 23] = [
    "id",
    "category",
    "userPrincipalName",
    "userDisplayName",
    "createdDateTime",
    "appDisplayName",
    "resourceDisplayName",
    "clientAppUsed",
    "loginSucceeded",
    "failureReason",
    "mfaRequired",
    "mfaAuthMethod",
    "mfaAuthDetail",
    "mfaResult",
    "reason",
    "policies",
    "conditionalAccessStatus",
    "mfaPoliciesNotApplied",
    "mfaRequirementProviders",
    "tokenIssuerType",
    "authenticationProtocol",
    "originalTransferMethod",
    "incomingTokenType",
];

/// The fields schema version 2 added: a file written before has none of them, and its rows
/// read with them empty.
const FIELDS_SINCE_V2: [&str; 6] = [
    "mfaPoliciesNotApplied",
    "mfaRequirementProviders",
    "tokenIssuerType",
    "authenticationProtocol",
    "originalTransferMethod",
    "incomingTokenType",
];

/// Appends the rows of one Parquet file that fall in the window.
fn read_file(path: &Path, window: Window, rows: &mut Vec<Row>) -> Result<()> {
    let mut read = || -> Result<()> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
        let schema = builder.schema().clone();
        let mut roots = Vec::with_capacity(FIELDS.len());
        for name in FIELDS {
            match schema.column_with_name(name) {
                Some((i, _)) => roots.push(i),
                None if FIELDS_SINCE_V2.contains(&name) => {}
                None => bail!("no column {name}"),
            }
        }
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        for batch in builder.with_projection(mask).build()? {
            rows_of(&batch?, window, rows)?;
        }
        Ok(())
    };
    read().with_context(|| format!("cannot read {}", path.display()))
}

fn rows_of(batch: &RecordBatch, window: Window, rows: &mut Vec<Row>) -> Result<()> {
    let column = |name: &str| -> Result<&ArrayRef> {
        batch
            .column_by_name(name)
            .with_context(|| format!("no column {name}"))
    };
    let text = |name: &str| -> Result<StringArray> {
        let c = arrow_cast::cast(column(name)?, &DataType::Utf8)
            .with_context(|| format!("column {name} is not text"))?;
        Ok(c.as_string::<i32>().clone())
    };
    // A column of schema version 2, all null in a file written before.
    let newer_text = |name: &str| -> Result<StringArray> {
        match batch.column_by_name(name) {
            Some(_) => text(name),
            None => Ok(StringArray::new_null(batch.num_rows())),
        }
    };
    let text_list = |name: &str| -> Result<Option<arrow_array::ListArray>> {
        let Some(c) = batch.column_by_name(name) else {
            return Ok(None);
        };
        let c = arrow_cast::cast(
            c,
            &DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
        )
        .with_context(|| format!("column {name} is not a list of text"))?;
        Ok(Some(c.as_list::<i32>().clone()))
    };
    let providers = text_list("mfaRequirementProviders")?;
    let not_applied = batch
        .column_by_name("mfaPoliciesNotApplied")
        .map(PolicyResults::of)
        .transpose()?;
    let (issuer, protocol, transfer, incoming) = (
        newer_text("tokenIssuerType")?,
        newer_text("authenticationProtocol")?,
        newer_text("originalTransferMethod")?,
        newer_text("incomingTokenType")?,
    );
    let flag = |name: &str| -> Result<BooleanArray> {
        let c = arrow_cast::cast(column(name)?, &DataType::Boolean)
            .with_context(|| format!("column {name} is not a boolean"))?;
        Ok(c.as_boolean().clone())
    };
    let created = arrow_cast::cast(
        column("createdDateTime")?,
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    )
    .context("column createdDateTime is not a timestamp")?;
    let created = created.as_primitive::<TimestampMicrosecondType>();
    let policies = arrow_cast::cast(
        column("policies")?,
        &DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
    )
    .context("column policies is not a list of text")?;
    let policies = policies.as_list::<i32>();
    let (id, category, upn, display) = (
        text("id")?,
        text("category")?,
        text("userPrincipalName")?,
        text("userDisplayName")?,
    );
    let (app, resource, client) = (
        text("appDisplayName")?,
        text("resourceDisplayName")?,
        text("clientAppUsed")?,
    );
    let (failure, method, detail, result, reason, ca) = (
        text("failureReason")?,
        text("mfaAuthMethod")?,
        text("mfaAuthDetail")?,
        text("mfaResult")?,
        text("reason")?,
        text("conditionalAccessStatus")?,
    );
    let (succeeded, required) = (flag("loginSucceeded")?, flag("mfaRequired")?);
    let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_owned());
    for i in 0..batch.num_rows() {
        if created.is_null(i) || !window.contains(created.value(i)) {
            continue;
        }
        let list = (!policies.is_null(i)).then(|| policies.value(i));
        let list = list.as_ref().map(|l| l.as_string::<i32>());
        rows.push(Row {
            id: opt(&id, i).unwrap_or_default(),
            category: opt(&category, i).unwrap_or_default(),
            user_principal_name: opt(&upn, i),
            user_display_name: opt(&display, i),
            created: created.value(i),
            app_display_name: opt(&app, i),
            resource_display_name: opt(&resource, i),
            client_app_used: opt(&client, i),
            login_succeeded: !succeeded.is_null(i) && succeeded.value(i),
            failure_reason: opt(&failure, i),
            mfa_required: !required.is_null(i) && required.value(i),
            mfa_auth_method: opt(&method, i),
            mfa_auth_detail: opt(&detail, i),
            mfa_result: opt(&result, i),
            reason: opt(&reason, i).unwrap_or_default(),
            policies: list
                .map(|l| l.iter().flatten().map(str::to_owned).collect())
                .unwrap_or_default(),
            conditional_access_status: opt(&ca, i),
            mfa_policies_not_applied: not_applied.as_ref().map(|p| p.row(i)).unwrap_or_default(),
            mfa_requirement_providers: match &providers {
                Some(l) if !l.is_null(i) => l
                    .value(i)
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            },
            token_issuer_type: opt(&issuer, i),
            authentication_protocol: opt(&protocol, i),
            original_transfer_method: opt(&transfer, i),
            incoming_token_type: opt(&incoming, i),
        });
    }
    Ok(())
}

/// A batch's `mfaPoliciesNotApplied`: the list column, with its items' two text fields cast
/// once for the whole batch.
struct PolicyResults {
    lists: arrow_array::ListArray,
    names: StringArray,
    results: StringArray,
}

impl PolicyResults {
    fn of(column: &ArrayRef) -> Result<PolicyResults> {
        let lists = column
            .as_list_opt::<i32>()
            .cloned()
            .context("column mfaPoliciesNotApplied is not a list")?;
        let items = lists
            .values()
            .as_struct_opt()
            .context("mfaPoliciesNotApplied items are not structs")?;
        let field = |name: &str| -> Result<StringArray> {
            let c = items
                .column_by_name(name)
                .with_context(|| format!("mfaPoliciesNotApplied has no {name}"))?;
            Ok(arrow_cast::cast(c, &DataType::Utf8)?
                .as_string::<i32>()
                .clone())
        };
        let (names, results) = (field("displayName")?, field("result")?);
        Ok(PolicyResults {
            lists,
            names,
            results,
        })
    }

    /// The `(displayName, result)` pairs of row `i`.
    fn row(&self, i: usize) -> Vec<(String, String)> {
        if self.lists.is_null(i) {
            return Vec::new();
        }
        let offsets = self.lists.value_offsets();
        let get = |a: &StringArray, j: usize| {
            if a.is_null(j) {
                String::new()
            } else {
                a.value(j).to_owned()
            }
        };
        (offsets[i] as usize..offsets[i + 1] as usize)
            .map(|j| (get(&self.names, j), get(&self.results, j)))
            .collect()
    }
}

/// What the report knows of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub user_principal_name: String,
    pub user_display_name: Option<String>,
    pub sign_ins: u64,
    pub first_seen: Micros,
    pub last_seen: Micros,
    pub reasons: BTreeMap<String, u64>,
    pub apps: BTreeSet<String>,
    pub legacy_clients: BTreeSet<String>,
    pub policies_not_applied: BTreeSet<String>,
}

/// Sums sign-ins up per user, fed with rows in the report's order.
#[derive(Debug, Default)]
pub(crate) struct Users(HashMap<String, User>);

impl Users {
    pub(crate) fn add(&mut self, r: &Row) {
        let key = r.user_principal_name.clone().unwrap_or_default();
        let u = self.0.entry(key.clone()).or_insert_with(|| User {
            user_principal_name: key,
            user_display_name: None,
            sign_ins: 0,
            first_seen: r.created,
            last_seen: r.created,
            reasons: BTreeMap::new(),
            apps: BTreeSet::new(),
            legacy_clients: BTreeSet::new(),
            policies_not_applied: BTreeSet::new(),
        });
        u.sign_ins += 1;
        u.first_seen = u.first_seen.min(r.created);
        if r.created >= u.last_seen {
            u.last_seen = r.created;
            if r.user_display_name.is_some() {
                u.user_display_name = r.user_display_name.clone();
            }
        }
        if u.user_display_name.is_none() {
            u.user_display_name = r.user_display_name.clone();
        }
        *u.reasons.entry(r.reason.clone()).or_default() += 1;
        if let Some(app) = &r.app_display_name {
            u.apps.insert(app.clone());
        }
        if r.reason == Reason::LegacyProtocol.as_str()
            && let Some(c) = &r.client_app_used
        {
            u.legacy_clients.insert(c.clone());
        }
        for (name, _) in &r.mfa_policies_not_applied {
            if !name.is_empty() {
                u.policies_not_applied.insert(name.clone());
            }
        }
    }

    /// Users by sign-ins, most first, then by name.
    pub(crate) fn ranked(self) -> Vec<User> {
        let mut users: Vec<User> = self.0.into_values().collect();
        users.sort_by(|a, b| {
            b.sign_ins
                .cmp(&a.sign_ins)
                .then_with(|| a.user_principal_name.cmp(&b.user_principal_name))
        });
        users
    }
}

impl User {
    /// `reason:count` in the reasons' own order, then any reason this build does not know.
    pub(crate) fn reasons_text(&self) -> String {
        let known = Reason::ALL.map(Reason::as_str);
        let ordered = known
            .iter()
            .filter_map(|k| self.reasons.get_key_value(*k))
            .chain(
                self.reasons
                    .iter()
                    .filter(|(k, _)| !known.contains(&k.as_str())),
            );
        ordered
            .map(|(k, n)| format!("{k}:{n}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Why a [`Writer`] takes no HTML: the page needs every row before its first line.
const HTML_IS_A_PAGE: &str =
    "an HTML report is one page of the whole window: report::html writes it, not a row writer";

/// A report being written in one of the formats (but HTML, see [`html`]).
pub(crate) struct Writer<W: Write> {
    format: Format,
    by_user: bool,
    csv: Option<csv::Writer<W>>,
    out: Option<W>,
    /// `--format table` buffers its cells to measure the columns.
    table: Vec<Vec<String>>,
    rows: u64,
}

fn text(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

fn true_false(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

impl<W: Write> Writer<W> {
    /// Starts a report; the CSV header (or the table's) is part of even an empty report.
    pub(crate) fn new(out: W, format: Format, by_user: bool) -> Result<Writer<W>> {
        let header: Vec<String> = if by_user {
            USER_COLUMNS.iter().map(|c| c.to_string()).collect()
        } else {
            COLUMNS.iter().map(|c| c.to_string()).collect()
        };
        let mut w = Writer {
            format,
            by_user,
            csv: None,
            out: None,
            table: Vec::new(),
            rows: 0,
        };
        match format {
            Format::Csv => {
                let mut csv = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::Any(b'\n'))
                    .from_writer(out);
                csv.write_record(&header)?;
                w.csv = Some(csv);
            }
            Format::Json => w.out = Some(out),
            Format::Table => {
                w.table.push(header);
                w.out = Some(out);
            }
            Format::Html => bail!("{HTML_IS_A_PAGE}"),
        }
        Ok(w)
    }

    /// Rows written so far (not counting the header).
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes one sign-in.
    pub(crate) fn sign_in(&mut self, r: &Row) -> Result<()> {
        debug_assert!(!self.by_user);
        self.rows += 1;
        match self.format {
            Format::Json => {
                let v = serde_json::json!({
                    "userPrincipalName": r.user_principal_name,
                    "userDisplayName": r.user_display_name,
                    "createdDateTime": timestamp::format(r.created),
                    "resourceDisplayName": r.resource_display_name,
                    "loginSucceeded": r.login_succeeded,
                    "failureReason": r.failure_reason,
                    "mfaRequired": r.mfa_required,
                    "mfaAuthMethod": r.mfa_auth_method,
                    "mfaAuthDetail": r.mfa_auth_detail,
                    "mfaResult": r.mfa_result,
                    "policies": r.policies,
                    "conditionalAccessStatus": r.conditional_access_status,
                    "reason": r.reason,
                    "category": r.category,
                    "mfaPoliciesNotApplied": r.mfa_policies_not_applied.iter()
                        .map(|(n, res)| serde_json::json!({"displayName": n, "result": res}))
                        .collect::<Vec<_>>(),
                    "mfaRequirementProviders": r.mfa_requirement_providers,
                    "tokenIssuerType": r.token_issuer_type,
                    "authenticationProtocol": r.authentication_protocol,
                    "originalTransferMethod": r.original_transfer_method,
                    "incomingTokenType": r.incoming_token_type,
                });
                self.json_line(&v)
            }
            Format::Html => bail!("{HTML_IS_A_PAGE}"),
            Format::Csv | Format::Table => {
                let cells = [
                    text(&r.user_principal_name).to_owned(),
                    text(&r.user_display_name).to_owned(),
                    timestamp::format(r.created),
                    text(&r.resource_display_name).to_owned(),
                    true_false(r.login_succeeded).to_owned(),
                    text(&r.failure_reason).to_owned(),
                    true_false(r.mfa_required).to_owned(),
                    text(&r.mfa_auth_method).to_owned(),
                    text(&r.mfa_auth_detail).to_owned(),
                    text(&r.mfa_result).to_owned(),
                    r.policies.join(","),
                    text(&r.conditional_access_status).to_owned(),
                    r.reason.clone(),
                    r.category.clone(),
                    r.mfa_policies_not_applied
                        .iter()
                        .map(|(n, res)| format!("{n} ({res})"))
                        .collect::<Vec<_>>()
                        .join(","),
                    r.mfa_requirement_providers.join(","),
                    text(&r.token_issuer_type).to_owned(),
                    text(&r.authentication_protocol).to_owned(),
                    text(&r.original_transfer_method).to_owned(),
                    text(&r.incoming_token_type).to_owned(),
                ];
                self.cells(cells.into())
            }
        }
    }

    /// Writes one user's line.
    pub(crate) fn user(&mut self, u: &User) -> Result<()> {
        debug_assert!(self.by_user);
        self.rows += 1;
        let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        match self.format {
            Format::Json => {
                let v = serde_json::json!({
                    "userPrincipalName": u.user_principal_name,
                    "userDisplayName": u.user_display_name,
                    "signIns": u.sign_ins,
                    "firstSeen": timestamp::format(u.first_seen),
                    "lastSeen": timestamp::format(u.last_seen),
                    "reasons": u.reasons,
                    "apps": u.apps,
                    "legacyClients": u.legacy_clients,
                    "policiesNotApplied": u.policies_not_applied,
                });
                self.json_line(&v)
            }
            Format::Html => bail!("{HTML_IS_A_PAGE}"),
            Format::Csv | Format::Table => {
                let cells = vec![
                    u.user_principal_name.clone(),
                    text(&u.user_display_name).to_owned(),
                    u.sign_ins.to_string(),
                    timestamp::format(u.first_seen),
                    timestamp::format(u.last_seen),
                    u.reasons_text(),
                    join(&u.apps),
                    join(&u.legacy_clients),
                    join(&u.policies_not_applied),
                ];
                self.cells(cells)
            }
        }
    }

    fn json_line(&mut self, v: &serde_json::Value) -> Result<()> {
        let out = self.out.as_mut().context("a JSON report has its writer")?;
        serde_json::to_writer(&mut *out, v)?;
        out.write_all(b"\n")?;
        Ok(())
    }

    fn cells(&mut self, cells: Vec<String>) -> Result<()> {
        match &mut self.csv {
            Some(csv) => csv.write_record(&cells)?,
            None => self.table.push(cells),
        }
        Ok(())
    }

    /// Writes what is buffered and flushes; returns the output.
    pub(crate) fn finish(mut self) -> Result<W> {
        if let Some(csv) = self.csv.take() {
            return csv
                .into_inner()
                .map_err(|e| anyhow::anyhow!("cannot write the report: {}", e.error()));
        }
        let mut out = self.out.take().context("a report has its writer")?;
        if self.format == Format::Table {
            write_table(&mut out, &self.table)?;
        }
        out.flush()?;
        Ok(out)
    }
}

/// A cell as the table shows it: one line, at most `TABLE_CELL` characters.
fn table_cell(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= TABLE_CELL {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(TABLE_CELL - 1).collect();
    cut.push('…');
    cut
}

fn write_table(out: &mut impl Write, rows: &[Vec<String>]) -> Result<()> {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| table_cell(c)).collect())
        .collect();
    let columns = cells.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |out: &mut dyn Write, row: &[String]| -> io::Result<()> {
        let mut text = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count();
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    if let Some((header, body)) = cells.split_first() {
        line(out, header)?;
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(out, &rule)?;
        for row in body {
            line(out, row)?;
        }
    }
    Ok(())
}

/// Writes the report of `window` to `out`; returns the number of rows (of sign-ins, for the
/// HTML page).
pub(crate) fn write<W: Write>(
    dataset: &Dataset,
    window: Window,
    format: Format,
    by_user: bool,
    out: W,
) -> Result<(u64, W)> {
    if format == Format::Html {
        // The same page with or without --by-user: it has the users' table.
        let mut out = out;
        let sign_ins = html::write(dataset, window, &mut out)?;
        out.flush()?;
        return Ok((sign_ins, out));
    }
    let mut w = Writer::new(out, format, by_user)?;
    if by_user {
        let mut users = Users::default();
        dataset.scan(window, |r| {
            users.add(r);
            Ok(())
        })?;
        for u in users.ranked() {
            w.user(&u)?;
        }
    } else {
        dataset.scan(window, |r| w.sign_in(r))?;
    }
    let rows = w.rows();
    Ok((rows, w.finish()?))
}

/// Writes a file whole or not at all: to a temporary name beside it, renamed when complete.
pub(crate) fn write_file_atomically(
    path: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let file =
            File::create(&tmp).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = BufWriter::new(file);
        body(&mut out)?;
        let file = out
            .into_inner()
            .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error()))?;
        file.sync_all()
            .with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn run(args: ReportArgs) -> Result<()> {
    if let (Some(s), Some(u)) = (args.since, args.until)
        && s > u
    {
        bail!(
            "--since ({}) is after --until ({})",
            timestamp::format(s),
            timestamp::format(u)
        );
    }
    let window = Window {
        since: args.since,
        until: args.until,
    };
    let dataset = Dataset::open(&args.data)?;
    match &args.output {
        Some(path) => write_file_atomically(path, |out| {
            write(&dataset, window, args.format, args.by_user, out)?;
            Ok(())
        }),
        None => {
            let out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
            let (_, mut out) = write(&dataset, window, args.format, args.by_user, out)?;
            out.flush()?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Micros {
        timestamp::parse(s).unwrap()
    }

    #[test]
    fn a_date_means_its_whole_day() {
        assert_eq!(parse_since("2025-12-12"), Ok(at("2025-12-12T00:00:00Z")));
        assert_eq!(parse_until("2025-12-12"), Ok(at("2025-12-13T00:00:00Z")));
        assert_eq!(
            parse_until("2025-12-12T10:30:00+01:00"),
            Ok(at("2025-12-12T09:30:00Z"))
        );
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn pruning_keeps_exactly_the_hours_that_overlap() {
        let hour = layout::hour_of(at("2025-12-12T10:00:00Z"));
        let w = Window {
            since: Some(at("2025-12-12T10:59:59.999999Z")),
            until: Some(at("2025-12-12T12:00:00Z")),
        };
        assert!(!w.overlaps(hour - 1));
        assert!(w.overlaps(hour));
        assert!(w.overlaps(hour + 1));
        assert!(!w.overlaps(hour + 2), "until is exclusive");
        assert!(Window::default().overlaps(hour));
        assert!(w.contains(at("2025-12-12T11:59:59.999999Z")));
        assert!(!w.contains(at("2025-12-12T12:00:00Z")));
    }

    #[test]
    fn table_cells_are_one_short_line() {
        assert_eq!(table_cell("a\nb"), "a b");
        let long = "é".repeat(100);
        let cell = table_cell(&long);
        assert_eq!(cell.chars().count(), TABLE_CELL);
        assert!(cell.ends_with('…'));
    }
}
