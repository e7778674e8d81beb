//! The sidecar object kept beside each data object: what S3 would keep
//! with the object and `object_store` cannot (the S3 ETag, user metadata
//! on every backend, readable tags).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Format version of [`Sidecar`].
pub(crate) const SIDECAR_VERSION: u32 = 1;

/// What the adapter knows about one data object, stored as JSON at
/// `{RESERVED_PREFIX}meta/{key}.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sidecar {
    /// [`SIDECAR_VERSION`].
    pub v: u32,
    /// The backend ETag of the data object described. A sidecar is used
    /// only while the data object still has this ETag and [`Sidecar::size`].
    pub backend_etag: String,
    /// The data object's size in bytes.
    pub size: u64,
    /// The S3 ETag: hex MD5 of a single put, `{md5}-{n}` after multipart.
    pub etag: String,
    /// `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `Cache-Control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// User metadata, names lowercase.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The tag set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl Sidecar {
    /// Whether this sidecar describes the data object `m` (same backend
    /// ETag and size). A data object without a backend ETag is never
    /// described: its sidecar could belong to an earlier object.
    pub fn describes(&self, m: &object_store::ObjectMeta) -> bool {
        m.e_tag.as_deref() == Some(self.backend_etag.as_str()) && m.size == self.size
    }

    /// The tags as the SDK's validated tag set; a tag the limits refuse
    /// (only a hand-edited sidecar can hold one) is dropped.
    pub fn tag_set(&self) -> upload_core::Tags {
        let mut t = upload_core::Tags::new();
        for (k, v) in &self.tags {
            let _ = t.insert(k.clone(), v.clone());
        }
        t
    }
}

/// A tag set as the map the sidecar stores.
pub(crate) fn tag_map(tags: &upload_core::Tags) -> BTreeMap<String, String> {
    tags.iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}
