//! `mfagap run`: the ingest service and the archiver in one process, with the report at the end.
//!
//! With nothing configured it needs nothing installed: sign-ins come from the generator (the
//! bodies `mfagap generate` writes for the same seed and count), Kafka is an in-process broker
//! that speaks the real protocol (`broker`), and Parquet goes to `./mfagap-data`. Each part can
//! be made real on its own: `--source` (files, or the ingest service's `kafka` and `eventhubs`
//! sources, configured exactly as for `mfagap ingest`), `--kafka-bootstrap`, `--data` (a
//! directory or object storage, as for `mfagap archive`).
//!
//! Every other setting of the two services comes from the same `MFAGAP_…` variables and
//! `--config` keys as for `mfagap ingest` and `mfagap archive` (`roll-age`, `compression`,
//! `max-in-flight`, `-X` properties…): `run` builds each service's settings from them and sets
//! only what one process hosting both must decide — the shared Kafka, the topic, and free
//! ports for the services' own endpoints (one endpoint of `run`'s serves both services'
//! metrics, `--listen`).
//!
//! With a finite source the run ends when the source is exhausted, every output record is
//! acknowledged by Kafka, and the archiver has read as many records as the ingest wrote; the
//! archiver is then stopped, which publishes everything it holds. On SIGINT/SIGTERM the ingest
//! drains and the archiver publishes what it has read. The summary goes to stdout.
//!
//! The in-process broker lives as long as the process, so its topic is named for the run
//! (`<topic>.<UTC start>-<pid>`): the archiver's resume points are per topic, and those of an
//! earlier run mean nothing to a new broker. Runs into the same directory therefore add to
//! the dataset side by side, and the run's report covers the files of its own topic.

use crate::broker::Embedded;
use crate::progress::{self, Counts, Progress};
use crate::report::{self, Dataset, Format, Users, Window};
use crate::synthetic::GeneratorSource;
use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use mfagap_archiver::{ArchiveArgs, ArchiveSettings};
use mfagap_core::Stats;
use mfagap_generate::GeneratorConfig;
use mfagap_ingest::Summary;
use mfagap_ingest::source::SourceKind;
use mfagap_ingest::{IngestArgs, IngestSettings};
use mfagap_runtime::{LogFormat, Property, Readiness, server};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// A TOML file of settings: this command's flags and those of `mfagap ingest` and
    /// `mfagap archive` (keys as the long flags).
    #[arg(long, value_name = "FILE", env = "MFAGAP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where sign-in messages come from: `generator` (synthetic), `file:PATH[,PATH…]` (JSON
    /// Lines), `capture:PATH|URL` (Event Hubs Capture files: a file, a directory, or
    /// az://CONTAINER/PREFIX), or an ingest source (`kafka`, `eventhubs`, `graph`: Microsoft
    /// Graph's sign-ins) set up as for `mfagap ingest`.
    #[arg(
        long,
        value_name = "SOURCE",
        env = "MFAGAP_RUN_SOURCE",
        default_value = "generator",
        value_parser = parse_input
    )]
    pub source: Input,
    /// Generator: how many message bodies.
    #[arg(
        long,
        value_name = "N",
        env = "MFAGAP_MESSAGES",
        default_value_t = 20_000
    )]
    pub messages: u64,
    /// Generator: messages per second at most (0: as fast as the pipeline takes them).
    #[arg(long, value_name = "N", env = "MFAGAP_RATE", default_value_t = 0)]
    pub rate: u64,
    /// Generator: the seed (the same seed gives the same sign-ins as `mfagap generate`).
    #[arg(long, value_name = "S", env = "MFAGAP_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Kafka bootstrap servers; without it an in-process broker is started.
    #[arg(long, value_name = "HOST:PORT", env = "MFAGAP_KAFKA_BOOTSTRAP")]
    pub kafka_bootstrap: Option<String>,
    /// What the output promises, as for `mfagap ingest`: exactly once (transactions; the
    /// archiver reads only what was committed), at least once, or auto (as for ingest:
    /// exactly once when the Kafka supports transactions, the in-process broker included).
    #[arg(long, value_enum, env = "MFAGAP_DELIVERY", default_value = "auto")]
    pub delivery: mfagap_ingest::DeliveryMode,
    /// One more Kafka output beside the native one the archiver reads (repeatable), as for
    /// `mfagap ingest`: FORMAT[:TOPIC][@DELIVERY], e.g. `ocsf` or `ecs@at-least-once`.
    #[arg(
        long,
        value_name = "SPEC",
        env = "MFAGAP_EXTRA_OUTPUTS",
        value_delimiter = ','
    )]
    pub extra_output: Vec<mfagap_ingest::config::OutputSpec>,
    /// OCSF schema version of the ocsf outputs: 1.8.0 or 1.1.0.
    #[arg(
        long,
        value_name = "VERSION",
        env = "MFAGAP_OCSF_VERSION",
        default_value = "1.8.0"
    )]
    pub ocsf_version: mfagap_core::encode::OcsfVersion,
    /// Partitions of the topic on the in-process broker.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=64))]
    pub partitions: i32,
    /// Root of the Parquet dataset: a directory, or `az://…`, `abfss://…`, `s3://…` (as for
    /// `mfagap archive`).
    #[arg(
        long,
        value_name = "PATH|URL",
        env = "MFAGAP_DATA",
        default_value = "./mfagap-data"
    )]
    pub data: String,
    /// Object storage option (repeatable; `key=value`), as for `mfagap archive`.
    #[arg(
        short = 'O',
        long = "storage-option",
        value_name = "KEY=VALUE",
        env = "MFAGAP_STORAGE_OPTIONS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub storage_options: Vec<Property>,
    /// Where the report CSV goes (default `<data>/report.csv`; local datasets only).
    #[arg(long, value_name = "FILE", env = "MFAGAP_REPORT")]
    pub report: Option<PathBuf>,
    /// Address of /metrics (both services) and /health/{live,ready}; port 0 picks a free one.
    #[arg(
        long,
        value_name = "ADDR",
        env = "MFAGAP_RUN_LISTEN",
        default_value = "127.0.0.1:0"
    )]
    pub listen: SocketAddr,
    /// Progress on stderr: a live line on a terminal (auto), a line every 5 s, or none.
    #[arg(long, value_enum, env = "MFAGAP_PROGRESS", default_value = "auto")]
    pub progress: progress::Mode,
    /// Log filter (RUST_LOG syntax); warnings only by default, so the progress line stays
    /// readable.
    #[arg(
        long,
        value_name = "FILTER",
        env = "MFAGAP_RUN_LOG",
        default_value = "warn"
    )]
    pub log: String,
}

/// Where sign-in messages come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    Generator,
    Files(Vec<PathBuf>),
    /// Event Hubs Capture files at this path or URL.
    Capture(String),
    /// One of the ingest service's sources, with its settings.
    Service(SourceKind),
}

fn parse_input(s: &str) -> Result<Input, String> {
    if s == "generator" {
        return Ok(Input::Generator);
    }
    if let Some(paths) = s.strip_prefix("file:") {
        let files: Vec<PathBuf> = paths
            .split(',')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        if files.is_empty() {
            return Err("file: needs a path, e.g. file:signins.jsonl".into());
        }
        return Ok(Input::Files(files));
    }
    if let Some(location) = s.strip_prefix("capture:") {
        if location.trim().is_empty() {
            return Err(
                "capture: needs a path or URL, e.g. capture:./capture or capture:az://container/prefix".into(),
            );
        }
        return Ok(Input::Capture(location.trim().to_owned()));
    }
    let kind = SourceKind::from_str(s, true).map_err(|_| {
        let names: Vec<String> = SourceKind::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_owned()))
            .collect();
        format!(
            "not a source: {s:?} (generator, file:PATH, capture:PATH|URL, {})",
            names.join(", ")
        )
    })?;
    Ok(match kind {
        SourceKind::File => Input::Files(Vec::new()),
        other => Input::Service(other),
    })
}

/// The environment variable of a `run` setting for the config file: this command's flags,
/// then the ingest service's, then the archiver's.
pub(crate) fn env_of(key: &str) -> Option<String> {
    mfagap_runtime::config::env_of_flag::<RunArgs>(key)
        .or_else(|| mfagap_ingest::config::env_of(key))
        .or_else(|| mfagap_archiver::config::env_of(key))
}

/// A service's settings as its own command would read them with no flags: defaults, the
/// `MFAGAP_…` variables and what the config file put there.
pub(crate) fn from_environment<A: clap::Args>(name: &str) -> Result<A> {
    #[derive(Parser)]
    struct Settings<A: clap::Args> {
        #[command(flatten)]
        args: A,
    }
    Settings::<A>::try_parse_from([name])
        .map(|s| s.args)
        .map_err(|e| anyhow::anyhow!("the {name} settings in the environment: {e}"))
}

/// Every output topic, each with its format.
fn topics_of(ingest: &IngestArgs) -> String {
    ingest
        .output
        .outputs()
        .iter()
        .map(|o| format!("{} ({})", o.topic, o.format))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the two services did, and where the results are.
struct Outcome {
    ingest: Summary,
    archived: mfagap_archiver::Summary,
    elapsed: Duration,
}

pub(crate) fn run(args: RunArgs) -> Result<()> {
    mfagap_runtime::service::init_logging(LogFormat::Human, &args.log);
    let mut ingest: IngestArgs = from_environment("ingest")?;
    let mut archive: ArchiveArgs = from_environment("archive")?;
    match &args.source {
        Input::Generator => {}
        Input::Files(files) => {
            ingest.source.kind = SourceKind::File.into();
            if !files.is_empty() {
                ingest.source.file.inputs = files.clone();
            }
        }
        Input::Capture(location) => {
            ingest.source.kind = SourceKind::Capture.into();
            ingest.source.capture.location = Some(location.clone());
        }
        Input::Service(kind) => ingest.source.kind = (*kind).into(),
    }
    ingest.delivery.delivery = args.delivery;
    if ingest.output.format != mfagap_core::encode::Format::Native {
        anyhow::bail!(
            "mfagap run archives the native record: MFAGAP_FORMAT={} is for mfagap ingest; add other formats with --extra-output",
            ingest.output.format
        );
    }
    ingest.output.extra_output = args.extra_output.clone();
    ingest.output.ocsf_version = args.ocsf_version;

    let started_at = chrono::Utc::now();
    let embedded = match &args.kafka_bootstrap {
        Some(bootstrap) => {
            ingest.output.bootstrap = bootstrap.clone();
            None
        }
        None => {
            // This run's topics on the in-process broker: each output's, with the run's
            // start and process after it.
            let run_suffix = format!(
                "{}-{}",
                started_at.format("%Y%m%dT%H%M%SZ"),
                std::process::id()
            );
            ingest.output.topic = Some(format!("{}.{run_suffix}", ingest.output.topic()));
            for o in &mut ingest.output.extra_output {
                let topic = o
                    .topic
                    .clone()
                    .unwrap_or_else(|| o.format.default_topic().to_owned());
                o.topic = Some(format!("{topic}.{run_suffix}"));
            }
            let topics: Vec<String> = ingest
                .output
                .outputs()
                .into_iter()
                .map(|o| o.topic)
                .collect();
            let mut create: Vec<(&str, i32)> = topics
                .iter()
                .map(|t| (t.as_str(), args.partitions))
                .collect();
            create.extend([
                (ingest.output.dead_letter_topic.as_str(), 1),
                (archive.dead_letter_topic.as_str(), 1),
                (
                    ingest.delivery.positions_topic.as_str(),
                    mfagap_ingest::positions::PARTITIONS,
                ),
            ]);
            let broker = Embedded::start(&create)?;
            ingest.output.bootstrap = broker.bootstrap();
            eprintln!(
                "mfagap run: in-process Kafka on {b} (topics {t}, {d}, {a}); while it runs: kcat -b {b} -L",
                b = ingest.output.bootstrap,
                t = topics.join(", "),
                d = ingest.output.dead_letter_topic,
                a = archive.dead_letter_topic,
            );
            Some(broker)
        }
    };
    // One archiver per dataset: a static group member named after it, so that a run stopped
    // hard and started again takes its partitions back at once instead of waiting for the
    // group to give up on the member that died.
    if !archive
        .kafka_properties
        .iter()
        .any(|p| p.key == "group.instance.id")
    {
        let member = format!(
            "group.instance.id=mfagap-run-{:016x}",
            xxhash_rust::xxh3::xxh3_64(args.data.as_bytes())
        );
        archive
            .kafka_properties
            .push(member.parse().map_err(anyhow::Error::msg)?);
    }
    archive.bootstrap = ingest.output.bootstrap.clone();
    archive.topic = ingest.output.topic();
    archive.data = args.data.clone();
    if !args.storage_options.is_empty() {
        archive.storage_options = args.storage_options.clone();
    }
    // The services' own endpoints on free ports: `run` serves both services' metrics on one.
    let any_port: SocketAddr = ([127, 0, 0, 1], 0).into();
    ingest.service.listen = any_port;
    archive.listen = any_port;
    let ingest_settings = ingest.settings()?;
    let archive_settings = archive.settings()?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let result = rt.block_on(together(&args, ingest_settings, archive_settings));
    rt.shutdown_timeout(Duration::from_secs(1));
    drop(embedded); // after every client of it is gone
    let outcome = result?;
    summarize(&args, &ingest, &outcome)
}

/// Runs both services until the source is exhausted and the archiver has caught up.
async fn together(
    args: &RunArgs,
    ingest: IngestSettings,
    archive: ArchiveSettings,
) -> Result<Outcome> {
    let started = Instant::now();
    let handle = mfagap_runtime::metrics::install();
    mfagap_ingest::metrics::register();
    mfagap_archiver::metrics::register();
    let ready = Readiness::default();
    let endpoint = CancellationToken::new();
    let addr = server::serve(args.listen, handle.clone(), ready.clone(), endpoint.clone()).await?;
    eprintln!("mfagap run: metrics of both services on http://{addr}/metrics");
    ready.set(true);

    let stop = CancellationToken::new();
    tokio::spawn(mfagap_runtime::service::stop_on_signal(stop.clone()));
    let ingest_ready = Readiness::default();
    let mut ingesting: JoinHandle<Result<Summary>> = match args.source {
        Input::Generator => {
            let config = GeneratorConfig {
                seed: args.seed,
                ..GeneratorConfig::default()
            };
            let source = GeneratorSource::new(config, args.messages, args.rate);
            let (stop, ready) = (stop.child_token(), ingest_ready.clone());
            tokio::spawn(async move { mfagap_ingest::run_with(source, &ingest, stop, ready).await })
        }
        _ => tokio::spawn(mfagap_ingest::run_observed(
            ingest,
            stop.child_token(),
            ingest_ready.clone(),
        )),
    };
    // The archiver starts once the ingest is ready: with exactly-once, a transaction that an
    // earlier run left open is then aborted already, and the archiver's first read sees the
    // topic as it will stay (ARCHITECTURE.md, "Where guarantees are decided").
    while !ingest_ready.get() && !ingesting.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let archiver_stop = CancellationToken::new();
    let mut archiver = tokio::spawn(mfagap_archiver::run(archive, archiver_stop.clone()));

    let mut progress = Progress::new(args.progress);
    let every = progress
        .as_ref()
        .map_or(Duration::from_millis(500), Progress::interval);
    let counts = || Counts::from_metrics(&handle.render());
    let mut tick = tokio::time::interval(every);
    let summary = loop {
        tokio::select! {
            done = &mut ingesting => break done.context("the ingest task panicked")?,
            done = &mut archiver => {
                stop.cancel();
                let _ = ingesting.await;
                return Err(archiver_ended(done));
            }
            _ = tick.tick() => {
                if let Some(p) = progress.as_mut() {
                    p.show(&counts());
                }
            }
        }
    };
    let summary = match summary {
        Ok(s) => s,
        Err(e) => {
            archiver_stop.cancel();
            let _ = archiver.await;
            return Err(e.context("the ingest service failed"));
        }
    };

    // Wait until the archiver has read everything the ingest wrote, and the topic to its end
    // (what an earlier run that died left unread too), then let it publish.
    let emitted = summary.stats.emitted_total() as f64;
    let mut seen = -1.0;
    let mut moved = Instant::now();
    let mut at_end_since: Option<Instant> = None;
    loop {
        let text = handle.render();
        let c = Counts::from_metrics(&text);
        if let Some(p) = progress.as_mut() {
            p.show(&c);
        }
        let assigned = progress::metric(&text, mfagap_archiver::metrics::ASSIGNED);
        let at_end = progress::metric(&text, mfagap_archiver::metrics::AT_END);
        // After a stop signal too: with the in-process broker, what the archiver has not read
        // when the process ends is gone, although the source already moved past it. "At the
        // end" must hold for a moment: the flag of a partition whose newest records are still
        // on their way would otherwise end the wait early.
        if c.archiver_read >= emitted && assigned > 0.0 && at_end >= assigned {
            let since = *at_end_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_millis(500) {
                break;
            }
        } else {
            at_end_since = None;
        }
        if c.archiver_read > seen {
            seen = c.archiver_read;
            moved = Instant::now();
        } else if moved.elapsed() > Duration::from_secs(60) {
            tracing::warn!(
                read = c.archiver_read,
                emitted,
                "the archiver read nothing for 60 s; stopping it"
            );
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            done = &mut archiver => return Err(archiver_ended(done)),
        }
    }
    archiver_stop.cancel();
    let archived = archiver
        .await
        .context("the archiver task panicked")?
        .context("the archiver failed")?;
    if let Some(p) = progress.as_mut() {
        p.finish(&counts());
    }
    endpoint.cancel();
    Ok(Outcome {
        ingest: summary,
        archived,
        elapsed: started.elapsed(),
    })
}

fn archiver_ended(
    done: Result<Result<mfagap_archiver::Summary>, tokio::task::JoinError>,
) -> anyhow::Error {
    match done {
        Ok(Err(e)) => e.context("the archiver failed"),
        Ok(Ok(_)) => anyhow::anyhow!("the archiver stopped before the ingest was done"),
        Err(e) => anyhow::anyhow!("the archiver task panicked: {e}"),
    }
}

/// A dataset root that is a local directory (not `scheme://…`).
fn local_root(data: &str) -> Option<PathBuf> {
    (!data.contains("://")).then(|| PathBuf::from(data))
}

/// Writes the report of the run's topic and returns (rows, the users ranked).
fn write_report(root: &Path, topic: &str, path: &Path) -> Result<(u64, Vec<report::User>)> {
    let dataset = Dataset::open(root)?.only_topic(topic);
    let mut users = Users::default();
    let mut rows = 0;
    report::write_file_atomically(path, |out| {
        let mut w = report::Writer::new(out, Format::Csv, false)?;
        dataset.scan(Window::default(), |r| {
            users.add(r);
            w.sign_in(r)
        })?;
        rows = w.rows();
        w.finish()?;
        Ok(())
    })?;
    Ok((rows, users.ranked()))
}

/// Prints the summary on stdout; fails when the archiver published less than was emitted.
fn summarize(args: &RunArgs, ingest: &IngestArgs, o: &Outcome) -> Result<()> {
    let stats: &Stats = &o.ingest.stats;
    let secs = o.elapsed.as_secs_f64();
    let source = match &args.source {
        Input::Generator => format!(
            "generator, seed {}, {} messages{}",
            args.seed,
            args.messages,
            if args.rate > 0 {
                format!(" at {}/s", args.rate)
            } else {
                String::new()
            }
        ),
        Input::Files(_) => format!("files {:?}", ingest.source.file.inputs),
        Input::Capture(location) => format!("capture files in {location}"),
        Input::Service(kind) => format!("{kind:?}").to_lowercase(),
    };
    let kafka = match &args.kafka_bootstrap {
        Some(b) => format!("{b}, topics {}", topics_of(ingest)),
        None => format!(
            "in-process broker (gone with the run), topics {}",
            topics_of(ingest)
        ),
    };
    println!(
        "mfagap run: {} messages in {secs:.1} s ({:.0} messages/s)",
        stats.messages,
        stats.messages as f64 / secs.max(1e-9)
    );
    println!("source         {source}");
    println!("kafka          {kafka}");
    println!("{stats}");
    let a = &o.archived;
    println!(
        "archived       {} rows in {} files ({:.1} MB), {} dead letters",
        a.rows,
        a.files,
        a.bytes as f64 / 1e6,
        a.dead_letters
    );
    if o.ingest.undelivered > 0 {
        println!(
            "undelivered    {} messages were not acknowledged by Kafka before the end",
            o.ingest.undelivered
        );
    }
    let root = local_root(&args.data);
    let dataset = root
        .as_ref()
        .map(|r| std::path::absolute(r).unwrap_or_else(|_| r.clone()));
    match &dataset {
        Some(root) => {
            let path = args
                .report
                .clone()
                .unwrap_or_else(|| root.join("report.csv"));
            let (rows, users) = write_report(root, &ingest.output.topic(), &path)?;
            let top: Vec<_> = users.into_iter().take(10).collect();
            let name = |u: &report::User| {
                if u.user_principal_name.is_empty() {
                    "(no userPrincipalName)".to_owned()
                } else {
                    u.user_principal_name.clone()
                }
            };
            let width = top
                .iter()
                .map(|u| name(u).chars().count())
                .max()
                .unwrap_or(0);
            println!("top users without MFA (by sign-ins)");
            for u in &top {
                let display: String = u
                    .user_display_name
                    .as_deref()
                    .unwrap_or("")
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                println!(
                    "  {:>8}  {:<width$}  {}  ({})",
                    u.sign_ins,
                    name(u),
                    display,
                    u.reasons_text()
                );
            }
            println!("dataset        {}", root.display());
            println!("report         {} ({rows} rows)", path.display());
        }
        None => {
            println!("dataset        {}", args.data);
            println!("report         none: `mfagap report` reads a local copy of the dataset");
        }
    }
    let emitted = stats.emitted_total();
    if a.rows + a.dead_letters < emitted {
        bail!(
            "the archiver published {} rows and {} dead letters of the {emitted} records the ingest wrote",
            a.rows,
            a.dead_letters
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_the_generator_files_or_an_ingest_source() {
        assert_eq!(parse_input("generator"), Ok(Input::Generator));
        assert_eq!(
            parse_input("file:a.jsonl,b.jsonl"),
            Ok(Input::Files(vec!["a.jsonl".into(), "b.jsonl".into()]))
        );
        assert_eq!(parse_input("kafka"), Ok(Input::Service(SourceKind::Kafka)));
        assert!(parse_input("file:").is_err());
        assert_eq!(
            parse_input("capture:az://capture/ns/hub"),
            Ok(Input::Capture("az://capture/ns/hub".into()))
        );
        assert_eq!(
            parse_input("capture"),
            Ok(Input::Service(SourceKind::Capture))
        );
        assert!(parse_input("capture:").is_err());
        assert!(parse_input("carrier-pigeon").unwrap_err().contains("kafka"));
    }

    #[test]
    fn config_keys_of_both_services_reach_their_variables() {
        assert_eq!(env_of("messages").as_deref(), Some("MFAGAP_MESSAGES"));
        assert_eq!(env_of("roll-age").as_deref(), Some("MFAGAP_ROLL_AGE"));
        assert_eq!(
            env_of("max-in-flight").as_deref(),
            Some("MFAGAP_MAX_IN_FLIGHT")
        );
        assert_eq!(env_of("nope"), None);
    }
}
