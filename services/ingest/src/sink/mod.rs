//! Where the records of each message go, and who says a source position may move.
//!
//! The pipeline hands the sink the records of one source message together with where that
//! message was read ([`Work`]); the sink delivers them by its own guarantee and, on each tick,
//! releases the resume points that guarantee allows ([`Sink::positions`]). The pipeline then
//! asks the source to persist them. So the *sink* decides when a source position may
//! advance: the at-least-once sink ([`AtLeastOnce`]) releases a position once Kafka has
//! acknowledged every record of every message before it; a transactional sink can release
//! positions only once they are committed together with the records, inside its transaction.
//!
//! ARCHITECTURE.md (*Where guarantees are decided*) tells the whole story.

mod at_least_once;
mod exactly_once;

pub use at_least_once::AtLeastOnce;
pub use exactly_once::{
    ExactlyOnce, ExactlyOnceSettings, KafkaOffsets, SourcePositions, Txn, TxnRegistry,
};

use mfagap_runtime::Error;
use mfagap_runtime::kafka::OutRecord;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The records of one source message, and where it was read.
#[derive(Debug)]
pub struct Work {
    /// The source partition (e.g. `topic/3`, `hub/0`, a file path).
    pub partition: String,
    /// The message's position in it.
    pub position: i64,
    /// Its output records and dead letters; may be empty (nothing emitted).
    pub records: Vec<OutRecord>,
    /// What the source needs to resume right after this message (see
    /// [`crate::source::Message::resume`]); kept with the position by a transactional sink.
    pub resume: Option<serde_json::Value>,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Drained {
    /// Messages whose records were not all delivered when the deadline passed: their positions
    /// are not released, so they are read again after a restart.
    pub undelivered: usize,
}

/// A delivery guarantee, with its transport.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// Resolves once the sink can take one more message (backpressure: a slow Kafka slows the
    /// source). Cancel-safe: the pipeline selects on it beside its ticks and the stop signal.
    async fn reserve(&mut self) -> Result<(), Error>;

    /// Takes one message's records; only after [`Sink::reserve`] resolved.
    fn send(&mut self, work: Work) -> Result<(), Error>;

    /// The resume points the source may persist now, per partition: every message before
    /// each was delivered under this sink's guarantee.
    async fn positions(&mut self) -> Result<Vec<(String, i64)>, Error>;

    /// The source could not persist these points; offer them again next time.
    fn commit_failed(&mut self, points: &[(String, i64)]);

    /// The source lost a partition to another replica: release nothing more of it.
    fn forget(&mut self, partition: &str);

    /// Messages taken whose delivery is not yet done.
    fn in_flight(&self) -> usize;

    /// Cancelled when the sink failed for good (a fatal or fenced producer): the pipeline
    /// stops without releasing anything more.
    fn failed(&self) -> CancellationToken;

    /// Why the sink failed, once [`Sink::failed`] is cancelled.
    fn failure(&self) -> Error;

    /// Delivers what was taken, waiting up to `timeout` (`None`: as long as it takes, at the
    /// end of a finite input).
    async fn drain(&mut self, timeout: Option<Duration>) -> Result<Drained, Error>;
}
