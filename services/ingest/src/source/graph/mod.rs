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
//! Each later sweep — with `--follow`, or a run resuming where the last one ended — starts
//! `--graph-overlap` before the last one ended, because Graph lists a sign-in minutes after
//! it happened; the ids the last sweep saw in that overlap are passed over, so a sign-in
//! listed again is read once.
//!
//! Positions. Each page that holds sign-ins not yet read is one message of the pipeline
//! (`{"value":[…]}`, the core's Graph page), the event type its partition and the page's
//! number its position. Its resume point is the stream's progress after it: the sweep's
//! bounds, the lowest instant read so far (everything of the sweep above it is read: pages
//! come newest first) with the ids seen at that instant, and the overlap's ids (those to pass
//! over, and those the next sweep will pass over), each with its instant so that those which
//! cannot come back (before the sweep, or above its lowest instant) are forgotten. A position
//! that would still not fit a Kafka message stops the source with a message asking for a
//! shorter `--graph-overlap`. With exactly-once delivery that goes to
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
/// How often a page that is not JSON is asked again before the source stops.
const GARBLED_RETRIES: u32 = 3;
/// The largest resume point written, in bytes of JSON: the producer's `message.max.bytes` is
/// 1,000,000, and the position record carries the resume point beside a few small fields.
const MAX_RESUME_BYTES: usize = 900_000;

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

/// `t − d`, or the earliest instant there is when that is before it.
fn back(t: Instant, d: Duration) -> Instant {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

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
    /// Ids read before this sweep that it may list again (its overlap), with their instants:
    /// passed over.
    pub skip: HashMap<u64, Instant>,
    /// Ids this sweep saw in the last `overlap` before `to`, with their instants: the next
    /// sweep's `skip`.
    pub next: HashMap<u64, Instant>,
}

fn ids_json(ids: &HashSet<u64>) -> String {
    let mut v: Vec<u64> = ids.iter().copied().collect();
    v.sort_unstable();
    let bytes: Vec<u8> = v.iter().flat_map(|h| h.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// Remembered ids with their instants, packed: the id's hash (8 bytes) and the whole seconds
/// from `base` to its instant, rounded up (4 bytes) — rounded up, an id is never dropped
/// early; 16 bytes of base64 an id.
fn timed_ids_json(ids: &HashMap<u64, Instant>, base: Instant) -> String {
    let mut v: Vec<(u64, Instant)> = ids.iter().map(|(h, t)| (*h, *t)).collect();
    v.sort_unstable();
    let mut bytes = Vec::with_capacity(v.len() * 12);
    for (h, t) in v {
        let ns = (t - base).num_nanoseconds().unwrap_or(i64::MAX).max(0);
        let secs = u32::try_from((ns + 999_999_999) / 1_000_000_000).unwrap_or(u32::MAX);
        bytes.extend_from_slice(&h.to_le_bytes());
        bytes.extend_from_slice(&secs.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

fn timed_ids_from(s: &str, base: Instant) -> Option<HashMap<u64, Instant>> {
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s)
        .ok()?;
    if bytes.len() % 12 != 0 {
        return None;
    }
    bytes
        .chunks_exact(12)
        .map(|c| {
            let h = u64::from_le_bytes(c[..8].try_into().ok()?);
            let secs = u32::from_le_bytes(c[8..].try_into().ok()?);
            let t = base.checked_add_signed(chrono::Duration::seconds(secs.into()))?;
            Some((h, t))
        })
        .collect()
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
            skip: HashMap::new(),
            next: HashMap::new(),
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
            "skip": timed_ids_json(&self.skip, self.from),
            "next": timed_ids_json(&self.next, self.from),
        })
    }

    /// What a position record's `resume` says, if it is a Graph stream's.
    pub fn from_json(v: &serde_json::Value) -> Option<Progress> {
        let time = |k: &str| v[k].as_str().and_then(parse_time);
        let ids = |k: &str| ids_from(v[k].as_str().unwrap_or(""));
        let from = time("from")?;
        let timed = |k: &str| timed_ids_from(v[k].as_str().unwrap_or(""), from);
        Some(Progress {
            page: v["page"].as_i64()?,
            from,
            to: time("to")?,
            at: match &v["at"] {
                serde_json::Value::Null => None,
                _ => Some(time("at")?),
            },
            at_ids: ids("atIds")?,
            skip: timed("skip")?,
            next: timed("next")?,
        })
    }

    /// Whether the sweep has read past `t`, id `h`: a sign-in to pass over. Anything newer
    /// than the lowest instant read so far counts as read — pages come newest first, so it
    /// was, unless Graph listed it late, and then the next sweep's overlap reads it (were
    /// Graph's `$skiptoken` an offset, a late one would otherwise shift a page's sign-ins
    /// onto the next page, read twice).
    fn seen(&self, t: Option<Instant>, h: u64) -> bool {
        if self.skip.contains_key(&h) {
            return true;
        }
        match (t, self.at) {
            (Some(t), Some(at)) => t > at || (t == at && self.at_ids.contains(&h)),
            _ => false,
        }
    }

    /// Forgets the remembered ids that cannot come back: those of `skip` before the sweep
    /// (Graph is asked for no earlier instant) or after its lowest instant read (passed over
    /// by instant).
    fn forget(&mut self) {
        let (from, at) = (self.from, self.at);
        // A second's margin: a resumed instant is rounded up to the second.
        let above = at.map(|at| at + chrono::Duration::seconds(1));
        self.skip
            .retain(|_, t| *t >= from && above.is_none_or(|above| *t <= above));
    }

    /// Notes a sign-in read (or passed over) at `t`.
    fn saw(&mut self, t: Instant, h: u64, overlap: Duration) {
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
        if t >= back(self.to, overlap) {
            self.next.insert(h, t);
        }
    }

    /// The next sweep, `[from, to)`, passing over what this one saw after `from`.
    fn next_sweep(&mut self, from: Instant, to: Instant) {
        let from = floor_tick(from);
        self.skip = std::mem::take(&mut self.next);
        self.skip.retain(|_, t| *t >= from);
        self.from = from;
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

/// `link` (an `@odata.nextLink`) if it points where `--graph-url` does (scheme, host and
/// port): the bearer token goes with the request, and never to anyone else.
fn same_origin(graph_url: &str, link: String) -> Result<String> {
    let base = url::Url::parse(graph_url).context("--graph-url")?;
    match url::Url::parse(&link) {
        Ok(next) if next.origin() == base.origin() => Ok(link),
        Ok(next) => anyhow::bail!(
            "Graph's @odata.nextLink points to {}, not to --graph-url {graph_url}: the token is not sent there; the read stops",
            next.origin().ascii_serialization()
        ),
        Err(e) => anyhow::bail!("Graph's @odata.nextLink is not a URL ({e}); the read stops"),
    }
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
        let overlap = self.settings.overlap;
        loop {
            self.sweep(overlap).await?;
            let to = self.progress.to;
            if follow {
                tokio::time::sleep(self.settings.poll_interval).await;
                self.progress.next_sweep(back(to, overlap), Utc::now());
            } else if to < self.end {
                // A run resuming where the last one ended: its overlap again, for what Graph
                // listed late.
                self.progress.next_sweep(back(to, overlap), self.end);
            } else {
                tracing::info!(event_type = self.kind.name(), "Graph window read");
                return Ok(());
            }
        }
    }

    /// One sweep, page after page; each page with something new is a message.
    async fn sweep(&mut self, overlap: Duration) -> Result<()> {
        let mut url = first_url(&self.settings, self.kind, &self.progress);
        tracing::debug!(%url, "Graph sweep");
        let mut garbled = 0;
        loop {
            let body = self.client.get(&url).await?;
            let page: Page = match serde_json::from_slice(&body) {
                Ok(page) => page,
                Err(e) if garbled < GARBLED_RETRIES => {
                    garbled += 1;
                    let wait = Duration::from_secs(1 << garbled);
                    tracing::warn!(%url, retry_in = ?wait, "Graph sent a page that is not a signIn list ({e}); the same page is asked again");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "Graph sent a page that is not a signIn list {} times in a row ({url})",
                            garbled + 1
                        )
                    });
                }
            };
            garbled = 0;
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
                self.progress.forget();
                let message = self.message(out, &url)?;
                if self.tx.send(Ok(message)).await.is_err() {
                    return Ok(()); // the source is closed
                }
            }
            match page.next_link {
                Some(next) => url = same_origin(&self.settings.url, next)?,
                None => return Ok(()),
            }
        }
    }

    fn message(&self, body: Vec<u8>, url: &str) -> Result<Message> {
        let text = |s: &str| Text(s.to_owned().into());
        let resume = self.progress.to_json();
        let size = resume.to_string().len();
        if size > MAX_RESUME_BYTES {
            anyhow::bail!(
                "the {} position would be {size} bytes, more than a Kafka message of the positions topic holds ({MAX_RESUME_BYTES}): it remembers the ids of {} sign-ins of the overlap; shorten --graph-overlap (now {:?}) so that fewer sign-ins fall in it",
                self.kind.name(),
                self.progress.skip.len() + self.progress.next.len() + self.progress.at_ids.len(),
                self.settings.overlap
            );
        }
        Ok(Message {
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
            resume: Some(resume),
        })
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
        // On a tick, as every sweep's end is: the window is read once its sweep ends here
        // (`Stream::sweeps`), and an end between ticks — the default, now — would never be
        // reached, each sweep of the overlap starting another.
        let end = floor_tick(s.until.map_or(now, DateTime::<Utc>::from));
        let since = DateTime::<Utc>::from(s.since);
        if since
            < back(
                now,
                config::DEFAULT_LOOKBACK - Duration::from_secs(24 * 3600),
            )
        {
            tracing::warn!(
                since = %graph_time(since),
                "Graph: --since is more than 29 days back; Entra keeps sign-ins 30 days and the window is read newest first, so its oldest part may expire before it is read"
            );
        }
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
    fn a_next_link_elsewhere_than_the_graph_url_is_refused() {
        let base = "https://graph.microsoft.com";
        let ok = "https://graph.microsoft.com/beta/auditLogs/signIns?$skiptoken=x";
        assert_eq!(same_origin(base, ok.into()).unwrap(), ok);
        assert!(same_origin(base, "https://graph.microsoft.com:443/beta/x".into()).is_ok());
        for bad in [
            "https://evil.example/beta/auditLogs/signIns",
            "http://graph.microsoft.com/beta/auditLogs/signIns",
            "https://graph.microsoft.com:8443/beta/auditLogs/signIns",
            "/beta/auditLogs/signIns",
        ] {
            let e = same_origin(base, bad.into()).unwrap_err().to_string();
            assert!(
                e.contains("the token is not sent") || e.contains("not a URL"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn an_overlap_past_the_earliest_instant_does_not_panic() {
        assert_eq!(
            back(at("2026-11-01T00:00:00Z"), Duration::MAX),
            DateTime::<Utc>::MIN_UTC
        );
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
        p.saw(at("2026-11-01T12:00:00Z"), 7, Duration::from_secs(900));
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
        let overlap = Duration::from_secs(600);
        p.saw(at("2026-11-01T00:55:00Z"), 1, overlap);
        p.saw(at("2026-11-01T00:30:00Z"), 2, overlap);
        p.saw(at("2026-11-01T00:30:00Z"), 3, overlap);
        assert!(p.seen(Some(at("2026-11-01T00:30:00Z")), 2));
        assert!(
            !p.seen(Some(at("2026-11-01T00:30:00Z")), 4),
            "a new id at the same instant"
        );
        assert_eq!(
            p.next,
            HashMap::from([(1, at("2026-11-01T00:55:00Z"))]),
            "only the last 10 minutes"
        );
        let back = Progress::from_json(&p.to_json()).unwrap();
        assert_eq!(back, p, "the resume point reads back as written");
        p.next_sweep(at("2026-11-01T00:50:00Z"), at("2026-11-01T02:00:00Z"));
        assert!(p.seen(None, 1), "the overlap's ids are passed over");
        assert!(!p.seen(None, 2));
        assert_eq!(p.at, None);
    }

    #[test]
    fn a_window_read_without_follow_remembers_its_overlap_and_a_resumed_run_reads_it_again() {
        let overlap = Duration::from_secs(600);
        // The first run's window: 23:00 to 00:00; it reads one sign-in at 23:55.
        let mut p = Progress::new(at("2026-11-01T23:00:00Z"), at("2026-11-02T00:00:00Z"));
        p.saw(at("2026-11-01T23:55:00Z"), 1, overlap);
        assert_eq!(
            p.next.len(),
            1,
            "the overlap's ids are kept without --follow"
        );
        // The next run resumes from that position, its window ending at 01:00.
        let mut resumed = Progress::from_json(&p.to_json()).unwrap();
        resumed.next_sweep(back(resumed.to, overlap), at("2026-11-02T01:00:00Z"));
        assert_eq!(resumed.from, at("2026-11-01T23:50:00Z"), "end − overlap");
        let url = first_url(&settings(), EventType::InteractiveUser, &resumed);
        assert!(url.contains("2026-11-01T23%3A50%3A00.0000000Z"), "{url}");
        assert!(
            resumed.seen(Some(at("2026-11-01T23:55:00Z")), 1),
            "read once"
        );
        assert!(
            !resumed.seen(Some(at("2026-11-01T23:58:00Z")), 2),
            "a sign-in of 23:58 listed late is read"
        );
    }

    #[test]
    fn within_a_sweep_anything_newer_than_the_lowest_instant_read_counts_as_read() {
        let overlap = Duration::from_secs(600);
        let mut p = Progress::new(at("2026-11-01T00:00:00Z"), at("2026-11-01T01:00:00Z"));
        p.saw(at("2026-11-01T00:40:00Z"), 1, overlap);
        p.saw(at("2026-11-01T00:20:00Z"), 2, overlap);
        assert!(
            p.seen(Some(at("2026-11-01T00:40:00Z")), 1),
            "a sign-in shifted onto the next page by an offset-like $skiptoken"
        );
        assert!(
            p.seen(Some(at("2026-11-01T00:30:00Z")), 9),
            "a late one above the lowest instant: the next overlap reads it"
        );
        assert!(!p.seen(Some(at("2026-11-01T00:10:00Z")), 3));
    }

    #[test]
    fn remembered_ids_that_cannot_come_back_are_forgotten() {
        let overlap = Duration::from_secs(600);
        let mut p = Progress::new(at("2026-11-01T00:00:00Z"), at("2026-11-01T01:00:00Z"));
        p.saw(at("2026-11-01T00:58:00Z"), 1, overlap);
        p.saw(at("2026-11-01T00:52:00Z"), 2, overlap);
        p.saw(at("2026-11-01T00:30:00Z"), 3, overlap);
        // The next sweep starts 10 minutes before 01:00: both overlap ids may come back.
        p.next_sweep(at("2026-11-01T00:50:00Z"), at("2026-11-01T02:00:00Z"));
        assert_eq!(p.skip.len(), 2);
        p.saw(at("2026-11-01T00:55:00Z"), 4, overlap);
        p.forget();
        assert_eq!(
            p.skip.keys().copied().collect::<HashSet<_>>(),
            HashSet::from([2]),
            "00:58's id is above the lowest instant read, 00:52's may still come"
        );
        // A sweep starting after them forgets them all.
        p.next_sweep(at("2026-11-01T01:55:00Z"), at("2026-11-01T03:00:00Z"));
        assert!(p.skip.is_empty(), "{:?}", p.skip);
        assert_eq!(Progress::from_json(&p.to_json()).unwrap(), p);
    }

    #[test]
    fn a_position_too_large_for_a_kafka_message_stops_with_a_message_naming_the_overlap() {
        let (tx, _rx) = mpsc::channel(1);
        let settings = Arc::new(settings());
        let mut stream = Stream {
            client: Arc::new(
                Client::new(
                    &settings.url,
                    Arc::new(NoCredential) as Arc<dyn azure_core::credentials::TokenCredential>,
                    1,
                )
                .unwrap(),
            ),
            settings,
            kind: EventType::InteractiveUser,
            partition: "p".into(),
            progress: Progress::new(at("2026-11-01T00:00:00Z"), at("2026-11-01T01:00:00Z")),
            end: at("2026-11-01T01:00:00Z"),
            tx,
        };
        let t = |h: u64| at("2026-11-01T00:59:00Z") - chrono::Duration::milliseconds(h as i64);
        for h in 0..40_000u64 {
            stream.progress.saw(t(h), h, Duration::from_secs(900));
        }
        assert!(
            stream.message(b"{}".to_vec(), "u").is_ok(),
            "40,000 ids fit"
        );
        for h in 40_000..120_000u64 {
            stream.progress.saw(t(h), h, Duration::from_secs(900));
        }
        let e = stream.message(b"{}".to_vec(), "u").unwrap_err().to_string();
        assert!(e.contains("shorten --graph-overlap"), "{e}");
    }

    /// A credential never asked.
    #[derive(Debug)]
    struct NoCredential;

    #[async_trait::async_trait]
    impl azure_core::credentials::TokenCredential for NoCredential {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "not asked",
            ))
        }
    }
}
