//! The worker's metrics, through the [`metrics`] facade: with no recorder
//! installed they cost an atomic load each; install one (e.g.
//! [`service::install_prometheus`](crate::service) with feature
//! `prometheus`, or any `metrics` exporter) to collect them.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `upload_worker_messages_received_total` | counter | | queue messages received |
//! | `upload_worker_handled_total` | counter | `outcome` | what became of records and messages (below) |
//! | `upload_worker_quarantined_total` | counter | `verdict` = `infected`, `unscannable` | originals quarantined |
//! | `upload_worker_stage_duration_seconds` | histogram | `stage` = `download`, `sniff`, `scan`, `decode`, `encode`, `upload` | time per stage of one upload (`encode` and `upload`: per variant) |
//! | `upload_worker_bytes_read_total` | counter | | bytes of the originals processed |
//! | `upload_worker_bytes_written_total` | counter | | bytes of the variants written |
//! | `upload_worker_in_flight` | gauge | | messages in progress, all loops of the process |
//! | `upload_worker_queue_lag_seconds` | gauge | | age of the oldest upload event in the last batch received (0 after an empty receive): how far behind the worker is |
//! | `upload_worker_notifications_total` | counter | `outcome` = `delivered`, `failed` | hand-offs to the worker's [`Notifier`](crate::notify::Notifier) |
//! | `upload_webhook_deliveries_total` | counter | `outcome` = `delivered`, `retried` (failed, tried again after the backoff), `malformed` (not a notification: left for the dead-letter queue) | webhook POSTs of the [`WebhookDeliverer`](crate::notify) (feature `webhook`) |
//!
//! `outcome` of `upload_worker_handled_total`, one per record (an upload
//! event) unless said otherwise: `processed` (clean, variants written),
//! `rejected` (refused type or undecodable), `quarantined`,
//! `already_processed`, `superseded`, `removed`, `skipped`, `test_event`
//! (per message), `retried` (a message left on the queue after an error,
//! visible again after its backoff), `dead_lettered` (a malformed message
//! moved to the dead-letter queue), `released` (in progress at shutdown,
//! made visible again at once), `redelivered` (a message received again:
//! an earlier delivery failed or timed out).
//!
//! The upload API (crate `upload-server`) records its own,
//! `upload_api_presigned_urls_total{route, kind}`, through the same facade.

use std::time::{Duration, Instant};

use crate::worker::RunStats;

/// Queue messages received (counter).
pub const MESSAGES_RECEIVED: &str = "upload_worker_messages_received_total";
/// Records and messages handled, by `outcome` (counter).
pub const HANDLED: &str = "upload_worker_handled_total";
/// Originals quarantined, by `verdict` (counter).
pub const QUARANTINED: &str = "upload_worker_quarantined_total";
/// Time per stage, by `stage`, in seconds (histogram).
pub const STAGE_DURATION: &str = "upload_worker_stage_duration_seconds";
/// Bytes of originals read (counter).
pub const BYTES_READ: &str = "upload_worker_bytes_read_total";
/// Bytes of variants written (counter).
pub const BYTES_WRITTEN: &str = "upload_worker_bytes_written_total";
/// Messages in progress (gauge).
pub const IN_FLIGHT: &str = "upload_worker_in_flight";
/// Age in seconds of the oldest event of the last batch received (gauge).
pub const QUEUE_LAG: &str = "upload_worker_queue_lag_seconds";
/// Notifications handed to the worker's notifier, by `outcome` (counter).
pub const NOTIFICATIONS: &str = "upload_worker_notifications_total";
/// Webhook deliveries, by `outcome` (counter).
pub const WEBHOOK_DELIVERIES: &str = "upload_webhook_deliveries_total";

/// The bucket boundaries, in seconds, that suit
/// [`STAGE_DURATION`]: 1 ms to 60 s.
pub const STAGE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A stage of processing one upload (the `stage` label of
/// [`STAGE_DURATION`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// The GET of the original, until its first bytes are in.
    Download,
    /// The magic-byte check of its first bytes.
    Sniff,
    /// The virus scan (streams the rest of the original).
    Scan,
    /// Decoding the image.
    Decode,
    /// Encoding one variant.
    Encode,
    /// Writing one variant.
    Upload,
}

impl Stage {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Download => "download",
            Stage::Sniff => "sniff",
            Stage::Scan => "scan",
            Stage::Decode => "decode",
            Stage::Encode => "encode",
            Stage::Upload => "upload",
        }
    }
}

/// Records `started.elapsed()` as the duration of `stage`.
pub(crate) fn observe(stage: Stage, started: Instant) {
    observe_duration(stage, started.elapsed());
}

/// Records `d` as the duration of `stage`.
pub(crate) fn observe_duration(stage: Stage, d: Duration) {
    ::metrics::histogram!(STAGE_DURATION, "stage" => stage.as_str()).record(d.as_secs_f64());
}

/// Registers the descriptions (`# HELP` lines) of the worker's metrics
/// with the installed recorder. Optional: metrics are recorded without.
pub fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(MESSAGES_RECEIVED, "Queue messages received.");
    describe_counter!(
        HANDLED,
        "Upload event records and queue messages handled, by outcome."
    );
    describe_counter!(
        QUARANTINED,
        "Originals quarantined, by verdict (infected, unscannable)."
    );
    describe_histogram!(
        STAGE_DURATION,
        Unit::Seconds,
        "Time per stage of processing one upload."
    );
    describe_counter!(BYTES_READ, Unit::Bytes, "Bytes of originals processed.");
    describe_counter!(BYTES_WRITTEN, Unit::Bytes, "Bytes of variants written.");
    describe_gauge!(IN_FLIGHT, "Queue messages in progress.");
    describe_gauge!(
        QUEUE_LAG,
        Unit::Seconds,
        "Age of the oldest upload event in the last batch received."
    );
    describe_counter!(
        NOTIFICATIONS,
        "Outcomes handed to the worker's notifier, by outcome."
    );
    describe_counter!(WEBHOOK_DELIVERIES, "Webhook POSTs, by outcome.");
}

/// Adds the counts of `s` to the counters.
pub(crate) fn record_stats(s: &RunStats) {
    if s.messages > 0 {
        ::metrics::counter!(MESSAGES_RECEIVED).increment(s.messages);
    }
    let outcomes = [
        ("processed", s.clean),
        ("rejected", s.rejected),
        ("quarantined", s.infected + s.unscannable),
        ("already_processed", s.already_processed),
        ("superseded", s.superseded),
        ("removed", s.removed),
        ("skipped", s.skipped),
        ("test_event", s.test_events),
        ("retried", s.failed),
        ("dead_lettered", s.dead_lettered),
        ("released", s.released),
        ("redelivered", s.retried),
    ];
    for (outcome, n) in outcomes {
        if n > 0 {
            ::metrics::counter!(HANDLED, "outcome" => outcome).increment(n);
        }
    }
    for (verdict, n) in [("infected", s.infected), ("unscannable", s.unscannable)] {
        if n > 0 {
            ::metrics::counter!(QUARANTINED, "verdict" => verdict).increment(n);
        }
    }
}

/// Moves the in-flight gauge by `delta` messages.
pub(crate) fn in_flight_delta(delta: isize) {
    let g = ::metrics::gauge!(IN_FLIGHT);
    if delta > 0 {
        g.increment(delta as f64);
    } else if delta < 0 {
        g.decrement(delta.unsigned_abs() as f64);
    }
}

/// Sets the queue lag from the message bodies of one received batch: the
/// age of the oldest `eventTime` among their records (0 for an empty
/// batch; bodies that are not S3 events are ignored).
pub(crate) fn set_queue_lag<'a>(bodies: impl IntoIterator<Item = &'a str>) {
    let now = time::OffsetDateTime::now_utc();
    let oldest = bodies
        .into_iter()
        .filter_map(oldest_event_time)
        .min()
        .map_or(0.0, |t| (now - t).as_seconds_f64().max(0.0));
    ::metrics::gauge!(QUEUE_LAG).set(oldest);
}

/// The earliest `eventTime` of the records of an S3 event message body.
fn oldest_event_time(body: &str) -> Option<time::OffsetDateTime> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(rename = "Records", default)]
        records: Vec<Record>,
    }
    #[derive(serde::Deserialize)]
    struct Record {
        #[serde(rename = "eventTime")]
        event_time: Option<String>,
    }
    let b: Body = serde_json::from_str(body).ok()?;
    b.records
        .iter()
        .filter_map(|r| r.event_time.as_deref())
        .filter_map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_event_time_of_a_message_is_found_and_junk_ignored() {
        let body = r#"{"Records":[{"eventTime":"2026-12-04T10:00:05.000Z"},{"eventTime":"2026-12-04T10:00:01.500Z"},{}]}"#;
        let t = oldest_event_time(body).unwrap();
        assert_eq!(t.unix_timestamp(), 1_796_378_401);
        assert_eq!(t.millisecond(), 500);
        assert_eq!(oldest_event_time("not json"), None);
        assert_eq!(oldest_event_time(r#"{"Event":"s3:TestEvent"}"#), None);
        assert_eq!(
            oldest_event_time(r#"{"Records":[{"eventTime":"yesterday"}]}"#),
            None
        );
    }

    #[test]
    fn stage_labels_are_the_documented_ones() {
        let all = [
            Stage::Download,
            Stage::Sniff,
            Stage::Scan,
            Stage::Decode,
            Stage::Encode,
            Stage::Upload,
        ]
        .map(Stage::as_str);
        assert_eq!(
            all,
            ["download", "sniff", "scan", "decode", "encode", "upload"]
        );
    }
}
