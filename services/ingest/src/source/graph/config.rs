//! Settings of the `graph` source.

use crate::source::eventhubs::CredentialKind;
use anyhow::{Result, bail};
use std::time::{Duration, SystemTime};

/// How far back `--since` reaches by default: what Entra keeps behind Graph.
pub(crate) const DEFAULT_LOOKBACK: Duration = Duration::from_secs(30 * 24 * 3600);

/// The Graph API version read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphVersion {
    /// `v1.0`: interactive user sign-ins only.
    #[value(name = "v1.0")]
    V1,
    /// `beta`: every event type, each asked for with its own filter.
    Beta,
}

impl GraphVersion {
    /// The version's path segment.
    pub fn path(self) -> &'static str {
        match self {
            GraphVersion::V1 => "v1.0",
            GraphVersion::Beta => "beta",
        }
    }
}

/// A `signInEventTypes` value: one stream of sign-ins, with a position of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum EventType {
    /// `interactiveUser`: `SignInLogs`.
    #[value(name = "interactiveUser")]
    InteractiveUser,
    /// `nonInteractiveUser`: `NonInteractiveUserSignInLogs`.
    #[value(name = "nonInteractiveUser")]
    NonInteractiveUser,
    /// `servicePrincipal`: `ServicePrincipalSignInLogs`.
    #[value(name = "servicePrincipal")]
    ServicePrincipal,
    /// `managedIdentity`: `ManagedIdentitySignInLogs`.
    #[value(name = "managedIdentity")]
    ManagedIdentity,
}

impl EventType {
    /// The name Graph gives it.
    pub fn name(self) -> &'static str {
        match self {
            EventType::InteractiveUser => "interactiveUser",
            EventType::NonInteractiveUser => "nonInteractiveUser",
            EventType::ServicePrincipal => "servicePrincipal",
            EventType::ManagedIdentity => "managedIdentity",
        }
    }
}

/// The graph source's flags.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Graph source")]
pub struct GraphArgs {
    /// Graph source: the Microsoft Graph endpoint (a national cloud's, e.g.
    /// https://graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn).
    #[arg(
        long,
        value_name = "URL",
        env = "MFAGAP_GRAPH_URL",
        default_value = "https://graph.microsoft.com"
    )]
    pub graph_url: String,
    /// Graph source: the API version: beta lists every event type, v1.0 only interactive
    /// sign-ins.
    #[arg(
        long,
        value_name = "VERSION",
        env = "MFAGAP_GRAPH_VERSION",
        default_value = "beta"
    )]
    pub graph_version: GraphVersion,
    /// Graph source: the event types read (beta), each a stream with a position of its own;
    /// repeatable. The default is the user sign-ins the rule classifies.
    #[arg(
        long = "graph-event-type",
        value_name = "TYPE",
        env = "MFAGAP_GRAPH_EVENT_TYPES",
        value_delimiter = ',',
        default_values = ["interactiveUser", "nonInteractiveUser"]
    )]
    pub graph_event_types: Vec<EventType>,
    /// Graph source: the Entra ID credential, chosen as for Event Hubs; the identity needs
    /// the Microsoft Graph application permission AuditLog.Read.All.
    #[arg(
        long,
        value_name = "CREDENTIAL",
        env = "MFAGAP_GRAPH_CREDENTIAL",
        default_value = "auto"
    )]
    pub graph_credential: CredentialKind,
    /// Graph source: sign-ins created at or after this instant (RFC 3339, or a date: its
    /// midnight UTC); the default is 30 days ago, all Entra keeps. Applies to an event type
    /// without a committed position.
    #[arg(long, value_name = "T", env = "MFAGAP_GRAPH_SINCE")]
    pub since: Option<String>,
    /// Graph source: sign-ins created before this instant (RFC 3339, or a date: the whole
    /// day is included); the default is the start of the run.
    #[arg(long, value_name = "T", env = "MFAGAP_GRAPH_UNTIL")]
    pub until: Option<String>,
    /// Graph source: once the window is read, keep polling for new sign-ins.
    #[arg(long, env = "MFAGAP_GRAPH_FOLLOW")]
    pub follow: bool,
    /// Graph source: with --follow, how long between polls.
    #[arg(
        long,
        value_name = "DURATION",
        env = "MFAGAP_GRAPH_POLL_INTERVAL",
        default_value = "1m",
        value_parser = humantime::parse_duration
    )]
    pub graph_poll_interval: Duration,
    /// Graph source: each poll with --follow, and a run resuming where the last one ended,
    /// reads again this far back before the last read ended, for sign-ins Graph lists late;
    /// those already read are passed over by id (at most 30 days).
    #[arg(
        long,
        value_name = "DURATION",
        env = "MFAGAP_GRAPH_OVERLAP",
        default_value = "15m",
        value_parser = humantime::parse_duration
    )]
    pub graph_overlap: Duration,
    /// Graph source: sign-ins per page ($top, 1 to 1000).
    #[arg(
        long,
        value_name = "N",
        env = "MFAGAP_GRAPH_PAGE_SIZE",
        default_value_t = 1000
    )]
    pub graph_page_size: u32,
    /// Graph source: requests in flight at once, at most (one per event type is the most
    /// that helps: pages of one type follow each other).
    #[arg(
        long,
        value_name = "N",
        env = "MFAGAP_GRAPH_CONCURRENCY",
        default_value_t = 2
    )]
    pub graph_concurrency: usize,
}

/// What the graph source reads.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// The endpoint, without a trailing `/`.
    pub url: String,
    /// The API version.
    pub version: GraphVersion,
    /// The event types, each a stream; v1.0 reads only `interactiveUser`, unfiltered.
    pub event_types: Vec<EventType>,
    /// The credential.
    pub credential: CredentialKind,
    /// The window's start.
    pub since: SystemTime,
    /// The window's end; `None`: the start of the run (or, with `follow`, open).
    pub until: Option<SystemTime>,
    /// Keep polling after the window.
    pub follow: bool,
    /// Between polls.
    pub poll_interval: Duration,
    /// How far back each poll reads again.
    pub overlap: Duration,
    /// `$top`.
    pub page_size: u32,
    /// Requests in flight at most.
    pub concurrency: usize,
}

/// An RFC 3339 instant, or a date (its midnight UTC, or with `end` the next midnight).
pub(crate) fn parse_instant(s: &str, end: bool) -> Result<SystemTime> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc).into());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let d = if end { d.succ_opt().unwrap_or(d) } else { d };
        let t = d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
        return Ok(t.into());
    }
    bail!("{s:?} is not an RFC 3339 instant (2026-11-01T00:00:00Z) or a date (2026-11-01)")
}

impl GraphArgs {
    /// The settings these flags give; errors name the flag.
    pub fn settings(&self) -> Result<GraphSettings> {
        let url = self.graph_url.trim().trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&url)
            .map_err(|e| anyhow::anyhow!("--graph-url {url:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            bail!("--graph-url {url:?} is not an http(s) URL");
        }
        if !(1..=1000).contains(&self.graph_page_size) {
            bail!(
                "--graph-page-size must be 1 to 1000 (Graph's largest page), not {}",
                self.graph_page_size
            );
        }
        if self.graph_concurrency == 0 {
            bail!("--graph-concurrency must be at least 1");
        }
        let mut event_types = self.graph_event_types.clone();
        event_types.sort();
        event_types.dedup();
        if event_types.is_empty() {
            bail!("--graph-event-type names no event type");
        }
        if self.graph_version == GraphVersion::V1 && event_types != [EventType::InteractiveUser] {
            bail!(
                "--graph-version v1.0 lists interactive sign-ins only: use --graph-version beta for {}",
                event_types
                    .iter()
                    .filter(|t| **t != EventType::InteractiveUser)
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let since = match &self.since {
            Some(s) => parse_instant(s, false).map_err(|e| anyhow::anyhow!("--since: {e}"))?,
            None => SystemTime::now() - DEFAULT_LOOKBACK,
        };
        let until = match &self.until {
            Some(s) => Some(parse_instant(s, true).map_err(|e| anyhow::anyhow!("--until: {e}"))?),
            None => None,
        };
        if self.graph_poll_interval < Duration::from_secs(1) {
            bail!(
                "--graph-poll-interval must be at least 1s, not {:?}",
                self.graph_poll_interval
            );
        }
        if self.graph_overlap > DEFAULT_LOOKBACK {
            bail!(
                "--graph-overlap must be at most 30 days (what Entra keeps behind Graph), not {}",
                humantime::format_duration(self.graph_overlap)
            );
        }
        if self.follow && until.is_some() {
            bail!("--follow reads on past the window's end: it takes no --until");
        }
        if let Some(u) = until
            && u <= since
        {
            bail!("--until must be after --since");
        }
        Ok(GraphSettings {
            url,
            version: self.graph_version,
            event_types,
            credential: self.graph_credential,
            since,
            until,
            follow: self.follow,
            poll_interval: self.graph_poll_interval,
            overlap: self.graph_overlap,
            page_size: self.graph_page_size,
            concurrency: self.graph_concurrency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        graph: GraphArgs,
    }

    fn settings(args: &[&str]) -> Result<GraphSettings> {
        use clap::Parser;
        let cli = Cli::try_parse_from(std::iter::once("mfagap").chain(args.iter().copied()))?;
        cli.graph.settings()
    }

    #[test]
    fn an_absurd_overlap_or_a_poll_interval_under_a_second_is_refused_naming_the_flag() {
        let e = settings(&["--graph-overlap", "300000years"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--graph-overlap"), "{e}");
        let e = settings(&["--graph-poll-interval", "0s"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--graph-poll-interval"), "{e}");
        let ok = settings(&["--graph-overlap", "30days", "--graph-poll-interval", "1s"]).unwrap();
        assert_eq!(ok.poll_interval, Duration::from_secs(1));
    }

    #[test]
    fn a_date_is_its_midnight_or_for_the_end_the_next() {
        let s = parse_instant("2026-11-01", false).unwrap();
        let u = parse_instant("2026-11-01", true).unwrap();
        assert_eq!(
            u.duration_since(s).unwrap(),
            Duration::from_secs(86_400),
            "the whole day"
        );
        assert_eq!(
            parse_instant("2026-11-01T00:00:00Z", false).unwrap(),
            s,
            "an instant as given"
        );
        assert!(parse_instant("yesterday", false).is_err());
    }
}
