//! Conformance suite for [`ImageCodec`](crate::ImageCodec) (stub).
