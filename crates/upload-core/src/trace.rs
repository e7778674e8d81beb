//! W3C Trace Context across the asynchronous gap between the upload API
//! and the worker: the API signs a `traceparent` into each presigned
//! upload as user metadata ([`METADATA`], `x-amz-meta-upload-traceparent`),
//! the stored original carries it, and the worker starts its spans under
//! it, so one trace shows presign → upload → scan → variants →
//! notification.
//!
//! [`TraceParent`] parses and formats the header
//! (<https://www.w3.org/TR/trace-context/#traceparent-header>) without any
//! tracing library. With feature `otel`, `TraceParent::of_span` reads a
//! `tracing` span's OpenTelemetry context (through `tracing-opentelemetry`)
//! and `TraceParent::adopt` makes a span its child.

use std::fmt;

/// Metadata name (`x-amz-meta-upload-traceparent`) of the trace context an
/// upload was presigned in.
pub const METADATA: &str = "upload-traceparent";

/// A `traceparent` value: version `00`, a 16-byte trace ID, the 8-byte ID
/// of the parent span and the trace flags (bit 0: sampled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace ID (not all zero).
    pub trace_id: [u8; 16],
    /// The parent span's ID (not all zero).
    pub parent_id: [u8; 8],
    /// Trace flags; `0x01` is sampled.
    pub flags: u8,
}

/// Why a `traceparent` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a W3C traceparent ({0}): expected 00-<32 hex>-<16 hex>-<2 hex>")]
pub struct TraceParentError(&'static str);

impl TraceParent {
    /// A new root context: random trace and span IDs, sampled.
    pub fn random() -> Self {
        let t = *uuid::Uuid::new_v4().as_bytes();
        let s = *uuid::Uuid::new_v4().as_bytes();
        let mut parent_id = [0; 8];
        parent_id.copy_from_slice(&s[..8]);
        // v4 UUIDs have random bits in every byte but 6 and 8: never zero.
        parent_id[0] |= 1;
        Self {
            trace_id: t,
            parent_id,
            flags: 0x01,
        }
    }

    /// Parses a `traceparent` header value. Only version `00` is accepted
    /// (exactly 55 characters, lowercase hex); all-zero IDs are refused, as
    /// the specification says.
    ///
    /// # Errors
    /// [`TraceParentError`] naming what is wrong.
    pub fn parse(s: &str) -> Result<Self, TraceParentError> {
        let b = s.as_bytes();
        if b.len() != 55 {
            return Err(TraceParentError("length"));
        }
        if &b[..3] != b"00-" || b[35] != b'-' || b[52] != b'-' {
            return Err(TraceParentError("version or separators"));
        }
        let mut trace_id = [0; 16];
        let mut parent_id = [0; 8];
        let mut flags = [0; 1];
        hex_lower(&b[3..35], &mut trace_id)?;
        hex_lower(&b[36..52], &mut parent_id)?;
        hex_lower(&b[53..55], &mut flags)?;
        if trace_id == [0; 16] {
            return Err(TraceParentError("all-zero trace ID"));
        }
        if parent_id == [0; 8] {
            return Err(TraceParentError("all-zero parent ID"));
        }
        Ok(Self {
            trace_id,
            parent_id,
            flags: flags[0],
        })
    }

    /// The trace ID as 32 lowercase hex digits (what log lines and trace
    /// UIs show).
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 == 0x01
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `00-{trace_id}-{parent_id}-{flags}`, lowercase hex, written on
        // the stack (it is formatted once per presigned upload).
        let mut out = [0u8; 55];
        out[..3].copy_from_slice(b"00-");
        hex::encode_to_slice(self.trace_id, &mut out[3..35]).map_err(|_| fmt::Error)?;
        out[35] = b'-';
        hex::encode_to_slice(self.parent_id, &mut out[36..52]).map_err(|_| fmt::Error)?;
        out[52] = b'-';
        hex::encode_to_slice([self.flags], &mut out[53..]).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl std::str::FromStr for TraceParent {
    type Err = TraceParentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn hex_lower(src: &[u8], out: &mut [u8]) -> Result<(), TraceParentError> {
    if src
        .iter()
        .any(|c| !(c.is_ascii_digit() || (b'a'..=b'f').contains(c)))
    {
        return Err(TraceParentError("not lowercase hex"));
    }
    hex::decode_to_slice(src, out).map_err(|_| TraceParentError("not lowercase hex"))
}

#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    use super::TraceParent;

    impl TraceParent {
        /// The OpenTelemetry context of `span` as a `traceparent` (its
        /// trace ID, the span's own ID as the parent), or `None` when no
        /// `tracing-opentelemetry` layer gives the span a valid context.
        /// Feature `otel`.
        pub fn of_span(span: &tracing::Span) -> Option<Self> {
            let cx = span.context();
            let sc = cx.span().span_context().clone();
            sc.is_valid().then(|| Self {
                trace_id: sc.trace_id().to_bytes(),
                parent_id: sc.span_id().to_bytes(),
                flags: sc.trace_flags().to_u8(),
            })
        }

        /// Makes `span` a child of this (remote) context, before it is
        /// first entered. Without a `tracing-opentelemetry` layer it does
        /// nothing. Feature `otel`.
        pub fn adopt(&self, span: &tracing::Span) {
            let sc = SpanContext::new(
                TraceId::from_bytes(self.trace_id),
                SpanId::from_bytes(self.parent_id),
                TraceFlags::new(self.flags),
                true,
                TraceState::default(),
            );
            let cx = opentelemetry::Context::new().with_remote_span_context(sc);
            // A span that is already closed or has no OpenTelemetry layer:
            // nothing to do.
            let _ = span.set_parent(cx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specifications_example_round_trips() {
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceParent::parse(s).unwrap();
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            t.parent_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert!(t.sampled());
        assert_eq!(t.to_string(), s);
        let unsampled: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
            .parse()
            .unwrap();
        assert!(!unsampled.sampled());
    }

    #[test]
    fn malformed_values_are_refused_with_the_reason() {
        let cases = [
            ("", "length"),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
                "length",
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "version or separators",
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "version or separators",
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "not lowercase hex",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                "not lowercase hex",
            ),
            (
                "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "not lowercase hex",
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "all-zero trace ID",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "all-zero parent ID",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-\u{e9}",
                "not lowercase hex",
            ),
        ];
        for (input, why) in cases {
            assert_eq!(
                TraceParent::parse(input),
                Err(TraceParentError(why)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn random_contexts_are_valid_distinct_and_sampled() {
        let a = TraceParent::random();
        let b = TraceParent::random();
        assert_ne!(a.trace_id, b.trace_id);
        assert_eq!(TraceParent::parse(&a.to_string()), Ok(a));
        assert!(a.sampled());
    }
}
