//! What `mfagap run` is doing, while it does it: one line on stderr.
//!
//! The numbers come from the metrics both services already export (one Prometheus recorder
//! per process), so the line shows exactly what `/metrics` would: messages read, records
//! decoded, sign-ins emitted, dead letters, what the archiver has read and published, and the
//! message rate. On a terminal the line is redrawn in place; otherwise a plain line is
//! printed every few seconds, so that logs of unattended runs stay short.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The counters of one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Counts {
    pub messages: f64,
    pub records: f64,
    pub emitted: f64,
    pub dead_letters: f64,
    /// Output records the archiver has read from Kafka.
    pub archiver_read: f64,
    /// Rows the archiver has published to Parquet.
    pub archived: f64,
}

impl Counts {
    /// Reads the counters from a Prometheus text rendering.
    pub(crate) fn from_metrics(text: &str) -> Counts {
        Counts {
            messages: metric(text, mfagap_ingest::metrics::MESSAGES),
            records: metric(text, mfagap_ingest::metrics::RECORDS),
            emitted: metric(text, mfagap_ingest::metrics::EMITTED),
            dead_letters: metric(text, mfagap_ingest::metrics::DEAD_LETTERS),
            archiver_read: metric(text, mfagap_archiver::metrics::MESSAGES),
            archived: metric(text, mfagap_archiver::metrics::ROWS),
        }
    }
}

/// The sum of a metric over all its label sets.
pub(crate) fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0 // an empty sum is -0.0, which prints as "-0"
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// A live line on a terminal, a plain line every 5 s otherwise.
    Auto,
    /// A plain line every 5 s.
    Plain,
    /// Nothing until the summary.
    Off,
}

/// Draws the progress line.
pub(crate) struct Progress {
    live: bool,
    every: Duration,
    started: Instant,
    last: Option<Instant>,
    drawn: bool,
}

impl Progress {
    pub(crate) fn new(mode: Mode) -> Option<Progress> {
        let live = match mode {
            Mode::Off => return None,
            Mode::Auto => std::io::stderr().is_terminal(),
            Mode::Plain => false,
        };
        Some(Progress {
            live,
            every: if live {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(5)
            },
            started: Instant::now(),
            last: None,
            drawn: false,
        })
    }

    /// How often `show` wants to be called.
    pub(crate) fn interval(&self) -> Duration {
        if self.live {
            self.every
        } else {
            Duration::from_millis(500)
        }
    }

    /// Shows the counts if it is time to.
    pub(crate) fn show(&mut self, c: &Counts) {
        if self.last.is_some_and(|t| t.elapsed() < self.every) {
            return;
        }
        self.last = Some(Instant::now());
        let secs = self.started.elapsed().as_secs_f64();
        let line = format!(
            "{:>6.1}s  messages {:.0}  records {:.0}  emitted {:.0}  dead letters {:.0}  archiver read {:.0}  archived {:.0}  {:.0} messages/s",
            secs,
            c.messages,
            c.records,
            c.emitted,
            c.dead_letters,
            c.archiver_read,
            c.archived,
            c.messages / secs.max(1e-3)
        );
        let mut err = std::io::stderr().lock();
        if self.live {
            let _ = write!(err, "\r\x1b[2K{line}");
            self.drawn = true;
        } else {
            let _ = writeln!(err, "mfagap run: {line}");
        }
        let _ = err.flush();
    }

    /// Ends the live line so that what follows starts on a line of its own.
    pub(crate) fn finish(&mut self, c: &Counts) {
        self.last = None;
        self.show(c);
        if self.drawn {
            let _ = writeln!(std::io::stderr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_over_labels() {
        let text = "# TYPE mfagap_ingest_records_total counter\n\
                    mfagap_ingest_records_total{category=\"SignInLogs\"} 10\n\
                    mfagap_ingest_records_total{category=\"AuditLogs\"} 2\n\
                    mfagap_ingest_messages_total 3\n\
                    mfagap_ingest_messages_total_other 99\n";
        let c = Counts::from_metrics(text);
        assert_eq!(c.records, 12.0);
        assert_eq!(c.messages, 3.0);
        assert_eq!(c.archived, 0.0);
    }
}
