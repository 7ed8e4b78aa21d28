//! Microsoft Graph: the sign-ins Entra keeps for 30 days behind `GET /auditLogs/signIns`,
//! read for a window and, with `--follow`, polled for new ones.
//!
//! Graph lists sign-ins newest first (the list method documents descending `createdDateTime`
//! and no `$orderby`) and filters `createdDateTime` with `ge`, `le` and `eq` only; on the beta
//! endpoint `signInEventTypes/any(t: t eq '…')` picks an event type (without it only
//! interactive sign-ins come back). Pages follow each other through `@odata.nextLink`.
//!
//! Streams and sweeps. Each event type is a stream of its own: a task that reads one
//! *sweep* at a time, `[from, to)` asked as `createdDateTime ge from and createdDateTime le
//! to − 100 ns` (100 ns is a DateTimeOffset's tick, so `le to − 1 tick` is `lt to`), page
//! after page. The first sweep is the window (`--since`, `--until` or the start of the run).
//! With `--follow`, each later sweep starts `--graph-overlap` before the last one ended,
//! because Graph lists a sign-in minutes after it happened; the ids the last sweep saw in
//! that overlap are passed over, so a sign-in listed again is read once.
//!
//! Positions. Each page that holds sign-ins not yet read is one message of the pipeline
//! (`{"value":[…]}`, the core's Graph page), the event type its partition and the page's
//! number its position. Its resume point is the stream's progress after it: the sweep's
//! bounds, the lowest instant read so far (everything of the sweep above it is read: pages
//! come newest first) with the ids seen at that instant, and the overlap's ids (those to pass
//! over, and those the next sweep will pass over). With exactly-once delivery that goes to
//! the positions topic with the records, and a restart asks for `le` that instant, passes
//! over those ids, and goes on — nothing missed, nothing twice. At least once, a restart
//! reads the window again.
//!
//! The records are handed on untouched: decoding, the rule and the output record are the
//! core's, as for every other source. README.md, "Reading from Microsoft Graph", is the
//! user's side.

mod client;
mod config;

pub use config::{EventType, GraphArgs, GraphSettings, GraphVersion};

use super::{Message, Source};
use anyhow::{Context, Result};
use base64::Engine;
use chrono::{DateTime, Utc};
use client::Client;
use mfagap_core::Source as Origin;
use mfagap_core::lenient::Text;
use mfagap_runtime::check::Check;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Pages read ahead of the pipeline, per event type.
const AHEAD: usize = 2;
/// A DateTimeOffset's tick.
const TICK_NS: i64 = 100;

/// The scope of Graph positions in the positions topic: per set of output topics.
pub fn positions_scope(output_topics: &str) -> String {
    format!("graph:{output_topics}")
}

/// Sets the source up; the credential is made and Graph asked when the first page is read.
pub fn build(settings: &GraphSettings) -> Result<GraphSource> {
    Ok(GraphSource {
        settings: Arc::new(settings.clone()),
        resume: HashMap::new(),
        started: None,
    })
}

/// An instant at Graph's precision (100 ns ticks), in UTC.
type Instant = DateTime<Utc>;

fn floor_tick(t: Instant) -> Instant {
    let ns = t.timestamp_subsec_nanos() as i64;
    t - chrono::Duration::nanoseconds(ns % TICK_NS)
}

/// How Graph writes an instant: seven fractional digits and `Z`.
fn graph_time(t: Instant) -> String {
    format!(
        "{}.{:07}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.timestamp_subsec_nanos() / TICK_NS as u32
    )
}

fn parse_time(s: &str) -> Option<Instant> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| {
            let micros = mfagap_core::timestamp::parse(s).ok()?;
            DateTime::from_timestamp_micros(micros)
        })
}

fn id_hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

/// A stream's progress: what its resume point says.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Pages delivered: the position of the last one.
    pub page: i64,
    /// The sweep's first instant (inclusive).
    pub from: Instant,
    /// The instant the sweep ends before.
    pub to: Instant,
    /// The lowest instant seen in the sweep: every sign-in of the sweep after it is read.
    pub at: Option<Instant>,
    /// The ids (hashed) seen at `at`.
    pub at_ids: HashSet<u64>,
    /// Ids read before this sweep that it may list again (its overlap): passed over.
    pub skip: HashSet<u64>,
    /// Ids this sweep saw in the last `overlap` before `to`: the next sweep's `skip`.
    pub next: HashSet<u64>,
}

fn ids_json(ids: &HashSet<u64>) -> String {
    let mut v: Vec<u64> = ids.iter().copied().collect();
    v.sort_unstable();
    let bytes: Vec<u8> = v.iter().flat_map(|h| h.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

fn ids_from(s: &str) -> Option<HashSet<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s)
        .ok()?;
    if bytes.len() % 8 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
    )
}

impl Progress {
    fn new(from: Instant, to: Instant) -> Progress {
        Progress {
            page: 0,
            from: floor_tick(from),
            to: floor_tick(to),
            at: None,
            at_ids: HashSet::new(),
            skip: HashSet::new(),
            next: HashSet::new(),
        }
    }

    /// The resume point (ids as hashes, packed).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "page": self.page,
            "from": graph_time(self.from),
            "to": graph_time(self.to),
            "at": self.at.map(graph_time),
            "atIds": ids_json(&self.at_ids),
            "skip": ids_json(&self.skip),
            "next": ids_json(&self.next),
        })
    }

    /// What a position record's `resume` says, if it is a Graph stream's.
    pub fn from_json(v: &serde_json::Value) -> Option<Progress> {
        let time = |k: &str| v[k].as_str().and_then(parse_time);
        let ids = |k: &str| ids_from(v[k].as_str().unwrap_or(""));
        Some(Progress {
            page: v["page"].as_i64()?,
            from: time("from")?,
            to: time("to")?,
            at: match &v["at"] {
                serde_json::Value::Null => None,
                _ => Some(time("at")?),
            },
            at_ids: ids("atIds")?,
            skip: ids("skip")?,
            next: ids("next")?,
        })
    }

    /// Whether the sweep has read past `t`, id `h`: a sign-in to pass over.
    fn seen(&self, t: Option<Instant>, h: u64) -> bool {
        self.skip.contains(&h) || (t.is_some() && t == self.at && self.at_ids.contains(&h))
    }

    /// Notes a sign-in read (or passed over) at `t`.
    fn saw(&mut self, t: Instant, h: u64, overlap: Option<Duration>) {
        match self.at {
            Some(at) if t > at => {}
            Some(at) if t == at => {
                self.at_ids.insert(h);
            }
            _ => {
                self.at = Some(t);
                self.at_ids.clear();
                self.at_ids.insert(h);
            }
        }
        if let Some(overlap) = overlap
            && t >= self.to - chrono::Duration::from_std(overlap).unwrap_or_default()
        {
            self.next.insert(h);
        }
    }

    /// The next sweep, `[from, to)`, passing over what this one saw after `from`.
    fn next_sweep(&mut self, from: Instant, to: Instant) {
        self.skip = std::mem::take(&mut self.next);
        self.from = floor_tick(from);
        self.to = floor_tick(to);
        self.at = None;
        self.at_ids.clear();
    }
}

/// The `signIn` list URL of a sweep's first page.
fn first_url(s: &GraphSettings, kind: EventType, p: &Progress) -> String {
    let mut filter = format!("createdDateTime ge {}", graph_time(p.from));
    let upper =
        p.at.unwrap_or(p.to - chrono::Duration::nanoseconds(TICK_NS));
    filter.push_str(&format!(" and createdDateTime le {}", graph_time(upper)));
    if s.version == GraphVersion::Beta {
        filter = format!(
            "({filter}) and signInEventTypes/any(t: t eq '{}')",
            kind.name()
        );
    }
    let mut url = url::Url::parse(&format!("{}/{}/auditLogs/signIns", s.url, s.version.path()))
        .expect("checked with the settings");
    url.query_pairs_mut()
        .append_pair("$filter", &filter)
        .append_pair("$top", &s.page_size.to_string());
    url.to_string()
}

/// A page as Graph sends it, its records left as they are.
#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// What the position logic needs of a record.
#[derive(Deserialize)]
struct Key<'a> {
    #[serde(borrow, default)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "createdDateTime", borrow, default)]
    created: Option<std::borrow::Cow<'a, str>>,
}

/// One stream's reader.
struct Stream {
    client: Arc<Client>,
    settings: Arc<GraphSettings>,
    kind: EventType,
    partition: String,
    progress: Progress,
    /// Where the window ends without --follow.
    end: Instant,
    tx: mpsc::Sender<Result<Message>>,
}

impl Stream {
    async fn run(mut self) {
        if let Err(e) = self.sweeps().await {
            let _ = self.tx.send(Err(e)).await;
        }
    }

    async fn sweeps(&mut self) -> Result<()> {
        let follow = self.settings.follow;
        let overlap = follow.then_some(self.settings.overlap);
        loop {
            self.sweep(overlap).await?;
            let to = self.progress.to;
            if follow {
                tokio::time::sleep(self.settings.poll_interval).await;
                let back = chrono::Duration::from_std(self.settings.overlap).unwrap_or_default();
                self.progress.next_sweep(to - back, Utc::now());
            } else if to < self.end {
                self.progress.next_sweep(to, self.end);
            } else {
                tracing::info!(event_type = self.kind.name(), "Graph window read");
                return Ok(());
            }
        }
    }

    /// One sweep, page after page; each page with something new is a message.
    async fn sweep(&mut self, overlap: Option<Duration>) -> Result<()> {
        let mut url = first_url(&self.settings, self.kind, &self.progress);
        tracing::debug!(%url, "Graph sweep");
        loop {
            let body = self.client.get(&url).await?;
            let page: Page = serde_json::from_slice(&body)
                .with_context(|| format!("Graph sent a page that is not a signIn list ({url})"))?;
            let mut kept: Vec<&RawValue> = Vec::with_capacity(page.value.len());
            for raw in &page.value {
                let key: Key = serde_json::from_str(raw.get()).unwrap_or(Key {
                    id: None,
                    created: None,
                });
                let t = key.created.as_deref().and_then(parse_time);
                let Some(id) = key.id.as_deref().filter(|id| !id.is_empty()) else {
                    kept.push(raw); // no id: the core makes it a dead letter
                    continue;
                };
                let h = id_hash(id);
                if !self.progress.seen(t, h) {
                    kept.push(raw);
                }
                if let Some(t) = t {
                    self.progress.saw(t, h, overlap);
                }
            }
            if !kept.is_empty() {
                self.progress.page += 1;
                let mut out = Vec::with_capacity(body.len());
                out.extend_from_slice(b"{\"value\":[");
                for (i, raw) in kept.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(raw.get().as_bytes());
                }
                out.extend_from_slice(b"]}");
                let message = self.message(out, &url);
                if self.tx.send(Ok(message)).await.is_err() {
                    return Ok(()); // the source is closed
                }
            }
            match page.next_link {
                Some(next) => url = next,
                None => return Ok(()),
            }
        }
    }

    fn message(&self, body: Vec<u8>, url: &str) -> Message {
        let text = |s: &str| Text(s.to_owned().into());
        Message {
            body,
            partition: self.partition.clone(),
            position: self.progress.page,
            origin: Origin {
                kind: text("graph"),
                event_hub: Some(text(self.settings.version.path())),
                partition: Some(text(self.kind.name())),
                offset: None,
                sequence_number: Some(self.progress.page),
                enqueued_time: None,
                file: Some(text(url)),
                line: None,
            },
            resume: Some(self.progress.to_json()),
        }
    }
}

/// The running streams.
struct Started {
    rx: mpsc::Receiver<Result<Message>>,
    tasks: Vec<JoinHandle<()>>,
}

/// The `graph` source.
pub struct GraphSource {
    settings: Arc<GraphSettings>,
    /// Where each stream (by partition) resumes, when exactly-once delivery committed one.
    resume: HashMap<String, Progress>,
    started: Option<Started>,
}

impl GraphSource {
    /// The endpoint, version and tenant as one string: with the output topics, what the
    /// transactional id of the source is made of.
    pub fn identity(&self) -> String {
        let tenant = std::env::var("AZURE_TENANT_ID").unwrap_or_default();
        format!(
            "{}/{}{}",
            self.settings.url,
            self.settings.version.path(),
            if tenant.is_empty() {
                String::new()
            } else {
                format!("?tenant={tenant}")
            }
        )
    }

    /// The partition (stream) of an event type.
    pub fn partition(&self, kind: EventType) -> String {
        format!("{}#{}", self.identity(), kind.name())
    }

    /// Resume points committed by an earlier run, by partition: each stream goes on from
    /// there instead of the window's start.
    pub fn resume_from(&mut self, resume: HashMap<String, Progress>) {
        self.resume = resume;
    }

    fn start(&mut self) -> Result<()> {
        let s = self.settings.clone();
        let credential =
            crate::source::eventhubs::connect::credential(s.credential, "--graph-credential")?;
        let client = Arc::new(Client::new(&s.url, credential, s.concurrency)?);
        let now = Utc::now();
        let end = s.until.map_or(now, DateTime::<Utc>::from);
        let (tx, rx) = mpsc::channel(AHEAD * s.event_types.len());
        let mut tasks = Vec::new();
        for kind in &s.event_types {
            let partition = self.partition(*kind);
            let progress = match self.resume.remove(&partition) {
                Some(p) => {
                    tracing::info!(event_type = kind.name(), from = %graph_time(p.from), at = ?p.at.map(graph_time), "Graph: resuming where the last committed transaction ended");
                    p
                }
                None => Progress::new(s.since.into(), end),
            };
            let stream = Stream {
                client: client.clone(),
                settings: s.clone(),
                kind: *kind,
                partition,
                progress,
                end,
                tx: tx.clone(),
            };
            tasks.push(tokio::spawn(stream.run()));
        }
        self.started = Some(Started { rx, tasks });
        Ok(())
    }
}

#[async_trait::async_trait]
impl Source for GraphSource {
    async fn next(&mut self) -> Result<Option<Message>> {
        if self.started.is_none() {
            self.start()?;
        }
        let started = self.started.as_mut().expect("started above");
        match started.rx.recv().await {
            Some(Ok(m)) => Ok(Some(m)),
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }

    fn commit(&mut self, points: &[(String, i64)]) -> Result<()> {
        for (stream, page) in points {
            tracing::debug!(%stream, delivered_before_page = page, "Graph position");
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if let Some(started) = self.started.take() {
            for t in started.tasks {
                t.abort();
            }
        }
        Ok(())
    }
}

/// Preflight (`mfagap check`): a token, and one sign-in page of each event type.
pub async fn check(settings: &GraphSettings, timeout: Duration) -> Vec<Check> {
    let part = format!("graph {}/{}", settings.url, settings.version.path());
    let fix = "give the identity the Microsoft Graph application permission AuditLog.Read.All (admin consent); sign-in logs through Graph need a Microsoft Entra ID P1 or P2 licence";
    let probe = async {
        let credential = crate::source::eventhubs::connect::credential(
            settings.credential,
            "--graph-credential",
        )?;
        let client = Client::new(&settings.url, credential, 1)?;
        let mut found = Vec::new();
        for kind in &settings.event_types {
            let mut one = settings.clone();
            one.page_size = 1;
            let now = Utc::now();
            let p = Progress::new(now - chrono::Duration::days(30), now);
            let url = first_url(&one, *kind, &p);
            let body = match client.try_get(&url).await {
                Ok(b) => b,
                Err(client::Failure::Permanent(m) | client::Failure::Transient(_, m)) => {
                    anyhow::bail!("{m}")
                }
            };
            let page: Page =
                serde_json::from_slice(&body).context("the answer is not a signIn list")?;
            found.push(format!(
                "{}: {}",
                kind.name(),
                if page.value.is_empty() {
                    "a page, empty"
                } else {
                    "a page with sign-ins"
                }
            ));
        }
        anyhow::Ok(found)
    };
    let check = match tokio::time::timeout(timeout, probe).await {
        Ok(Ok(found)) => Check::ok(
            part,
            format!(
                "a token, and /auditLogs/signIns read ({})",
                found.join(", ")
            ),
        ),
        Ok(Err(e)) => Check::failed(part, format!("{e:#}"), fix),
        Err(_) => Check::failed(part, format!("no answer within {timeout:?}"), fix),
    };
    vec![check]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Instant {
        parse_time(s).unwrap()
    }

    fn settings() -> GraphSettings {
        GraphSettings {
            url: "https://graph.microsoft.com".into(),
            version: GraphVersion::Beta,
            event_types: vec![EventType::InteractiveUser, EventType::NonInteractiveUser],
            credential: crate::source::eventhubs::CredentialKind::Auto,
            since: at("2026-11-01T00:00:00Z").into(),
            until: None,
            follow: false,
            poll_interval: Duration::from_secs(60),
            overlap: Duration::from_secs(900),
            page_size: 1000,
            concurrency: 2,
        }
    }

    #[test]
    fn instants_are_written_with_seven_digits_and_read_back() {
        let t = at("2026-11-29T10:15:41.6195833Z");
        assert_eq!(graph_time(t), "2026-11-29T10:15:41.6195833Z");
        assert_eq!(
            graph_time(at("2026-11-29T10:15:41Z")),
            "2026-11-29T10:15:41.0000000Z"
        );
        assert_eq!(
            floor_tick(t + chrono::Duration::nanoseconds(42)),
            t,
            "below a tick is dropped"
        );
    }

    #[test]
    fn a_sweep_asks_for_its_window_and_event_type_or_below_where_it_stopped() {
        let s = settings();
        let mut p = Progress::new(at("2026-11-01T00:00:00Z"), at("2026-11-02T00:00:00Z"));
        let url = first_url(&s, EventType::NonInteractiveUser, &p);
        let parsed = url::Url::parse(&url).unwrap();
        let q: HashMap<String, String> = parsed.query_pairs().into_owned().collect();
        assert_eq!(parsed.path(), "/beta/auditLogs/signIns");
        assert_eq!(
            q["$filter"],
            "(createdDateTime ge 2026-11-01T00:00:00.0000000Z and createdDateTime le 2026-11-01T23:59:59.9999999Z) and signInEventTypes/any(t: t eq 'nonInteractiveUser')"
        );
        assert_eq!(q["$top"], "1000");
        p.saw(at("2026-11-01T12:00:00Z"), 7, None);
        let q: HashMap<String, String> =
            url::Url::parse(&first_url(&s, EventType::InteractiveUser, &p))
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect();
        assert!(
            q["$filter"].contains("createdDateTime le 2026-11-01T12:00:00.0000000Z"),
            "{}",
            q["$filter"]
        );
    }

    #[test]
    fn progress_passes_over_what_it_saw_at_its_lowest_instant_and_in_the_overlap() {
        let mut p = Progress::new(at("2026-11-01T00:00:00Z"), at("2026-11-01T01:00:00Z"));
        let overlap = Some(Duration::from_secs(600));
        p.saw(at("2026-11-01T00:55:00Z"), 1, overlap);
        p.saw(at("2026-11-01T00:30:00Z"), 2, overlap);
        p.saw(at("2026-11-01T00:30:00Z"), 3, overlap);
        assert!(p.seen(Some(at("2026-11-01T00:30:00Z")), 2));
        assert!(
            !p.seen(Some(at("2026-11-01T00:30:00Z")), 4),
            "a new id at the same instant"
        );
        assert_eq!(p.next, HashSet::from([1]), "only the last 10 minutes");
        let back = Progress::from_json(&p.to_json()).unwrap();
        assert_eq!(back, p, "the resume point reads back as written");
        p.next_sweep(at("2026-11-01T00:50:00Z"), at("2026-11-01T02:00:00Z"));
        assert!(p.seen(None, 1), "the overlap's ids are passed over");
        assert!(!p.seen(None, 2));
        assert_eq!(p.at, None);
    }
}
