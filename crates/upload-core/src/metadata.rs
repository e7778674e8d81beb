//! The user metadata (`x-amz-meta-{name}`) an upload API signs into every
//! upload and the worker reads back from the stored original: which route
//! it came through and whose it is. Names are lowercase, without the
//! `x-amz-meta-` prefix, as [`ObjectMeta::metadata`](crate::ObjectMeta::metadata)
//! holds them.

use std::collections::BTreeMap;

/// Metadata name holding the name of the upload route an upload was made
/// through (`x-amz-meta-upload-route`).
pub const ROUTE: &str = "upload-route";

/// Metadata name holding the owner of an upload (`x-amz-meta-upload-owner`).
pub const OWNER: &str = "upload-owner";

/// Prefix of the metadata names reserved for the SDK itself: an app's own
/// entries must not start with it.
pub const RESERVED_PREFIX: &str = "upload-";

/// Most bytes of user metadata an object may carry (names and values
/// together, as S3 counts them): S3's limit of 2 KB.
pub const MAX_BYTES: usize = 2048;

/// An upload's route, owner, trace context and the app's own entries,
/// read from an object's user metadata.
///
/// Serialized as `{"route"?, "owner"?, "metadata"?, "traceparent"?}`
/// (absent fields are `None` or empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UploadContext {
    /// The route's name ([`ROUTE`]), if the upload carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The owner ([`OWNER`]), if the upload carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Every other entry (names without the `x-amz-meta-` prefix).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The W3C `traceparent` the upload was presigned in
    /// ([`crate::trace::METADATA`]), if it carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl UploadContext {
    /// Splits an object's user metadata into route, owner and the rest.
    pub fn from_metadata(metadata: &BTreeMap<String, String>) -> Self {
        let mut rest = metadata.clone();
        Self {
            route: rest.remove(ROUTE),
            owner: rest.remove(OWNER),
            traceparent: rest.remove(crate::trace::METADATA),
            metadata: rest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_and_owner_are_split_from_the_rest() {
        let m: BTreeMap<String, String> = [
            ("upload-route", "avatar"),
            ("upload-owner", "u1"),
            ("post-id", "42"),
            (
                "upload-traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let c = UploadContext::from_metadata(&m);
        assert_eq!(c.route.as_deref(), Some("avatar"));
        assert_eq!(c.owner.as_deref(), Some("u1"));
        assert_eq!(
            c.traceparent.as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(
            c.metadata.into_iter().collect::<Vec<_>>(),
            [("post-id".to_owned(), "42".to_owned())]
        );
        assert_eq!(
            UploadContext::from_metadata(&BTreeMap::new()),
            UploadContext::default()
        );
    }
}
