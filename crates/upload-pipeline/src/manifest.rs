//! The manifest written after an upload is processed.

use serde::{Deserialize, Serialize};
use upload_core::ObjectKey;
use upload_scan::ScannerVersion;

use crate::codec::{Placeholder, VariantSpec};

/// Version of the manifest format written by this crate.
pub const MANIFEST_VERSION: u32 = 1;
/// File name of the manifest under an upload's processed prefix.
pub const MANIFEST_NAME: &str = "manifest.json";

/// What became of one upload: written last, under
/// `{original key}/manifest.json` in the processed store, so that its
/// presence means the whole set of variants is in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// The original upload.
    pub source: SourceObject,
    /// The outcome.
    pub verdict: Outcome,
    /// The scanner's own verdict (`clean`, `infected` or `unscannable`),
    /// recorded whatever the type check said: every object is scanned, so
    /// a rejected upload says here that it was scanned clean. `None` in
    /// manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<Outcome>,
    /// The scanner engine that reached [`Manifest::scan`], e.g.
    /// `ClamAV 1.4.3` (see [`ScannerVersion`]); `None` when the scanner
    /// could not say, and in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_engine: Option<String>,
    /// The signature database version it ran, e.g. `27480` (clamd's daily
    /// database); `None` when unknown. [`crate::rescan`] scans clean
    /// originals again when a newer database is out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_database: Option<u64>,
    /// When the scan (or the latest rescan) reached [`Manifest::scan`],
    /// RFC 3339 UTC; `None` in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned_at: Option<String>,
    /// The signature name, when infected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Why, when rejected or unscannable (for an infected upload whose
    /// type was refused too, that refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where the original went, when quarantined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<Location>,
    /// The variants written (empty unless clean and an image).
    pub variants: Vec<VariantRecord>,
    /// The decoded image's size and placeholder, when variants were made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageInfo>,
    /// What a media processor other than the image one adds: a video's
    /// duration, dimensions and codecs, a document's page count (see
    /// [`MediaInfo`]). `None` for images (see [`Manifest::image`]), for
    /// types without a processor, and in manifests written before it was
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaInfo>,
    /// The upload's route, owner and app metadata, as signed into it by
    /// the upload API (`x-amz-meta-*`, see [`upload_core::metadata`]);
    /// flattened: `route`, `owner`, `metadata`, each absent when empty.
    #[serde(default, flatten)]
    pub upload: upload_core::metadata::UploadContext,
    /// When processing finished, RFC 3339 UTC.
    pub processed_at: String,
}

impl Manifest {
    /// A manifest of the current format for `source` with `verdict`,
    /// processed now (RFC 3339 UTC), and nothing else yet: no signature,
    /// reason, quarantine location or variants.
    pub fn new(source: SourceObject, verdict: Outcome) -> Self {
        Self {
            version: MANIFEST_VERSION,
            source,
            verdict,
            scan: None,
            scan_engine: None,
            scan_database: None,
            scanned_at: None,
            signature: None,
            reason: None,
            quarantine: None,
            variants: Vec::new(),
            image: None,
            media: None,
            upload: Default::default(),
            processed_at: upload_core::timestamp::now_rfc3339(),
        }
    }

    /// Records a scan that reached its verdict now with `version` (or a
    /// scanner that could not say): sets [`Manifest::scan_engine`],
    /// [`Manifest::scan_database`] and [`Manifest::scanned_at`].
    pub fn record_scanner(&mut self, version: Option<&ScannerVersion>) {
        self.scan_engine = version.map(|v| v.engine.clone());
        self.scan_database = version.and_then(|v| v.database);
        self.scanned_at = Some(upload_core::timestamp::now_rfc3339());
    }
}

/// The original upload a manifest is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceObject {
    /// Uploads bucket.
    pub bucket: String,
    /// Original key.
    pub key: ObjectKey,
    /// ETag of the processed version (without quotes).
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// Content type sniffed from magic bytes, if recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sniffed: Option<String>,
    /// Version ID of the processed version, on versioned buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Sequencer of the event that was processed (hex; compare with
    /// [`upload_core::event::sequencer_cmp`]): an event with a smaller one is
    /// about an older version and never replaces this manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
}

/// A bucket and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: ObjectKey,
}

/// The outcome of processing an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Allowed type, scanned clean; variants written for images.
    Clean,
    /// A scanner signature matched; quarantined, no variants.
    Infected,
    /// The scanner could not judge it; quarantined (fail-closed).
    Unscannable,
    /// Refused by policy (type sniffed from magic bytes, size) or not
    /// decodable as the image it claims to be; the original stays, no
    /// variants.
    Rejected,
}

impl Outcome {
    /// The lowercase name (`clean`, `infected`, `unscannable`, `rejected`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Clean => "clean",
            Outcome::Infected => "infected",
            Outcome::Unscannable => "unscannable",
            Outcome::Rejected => "rejected",
        }
    }
}

/// The original image, as decoded for its variants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Width in pixels at full scale, after EXIF orientation.
    pub width: u32,
    /// Height in pixels at full scale, after EXIF orientation.
    pub height: u32,
    /// The ThumbHash and dominant colour to show while a variant loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<Placeholder>,
}

/// What a media processor found in an upload that is not an image, for
/// the manifest: JSON `{"kind": "video", ...}` or
/// `{"kind": "document", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum MediaInfo {
    /// A video (MP4, MOV, WebM).
    Video(VideoInfo),
    /// A paged document (PDF).
    Document(DocumentInfo),
}

/// A video, as probed for its poster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VideoInfo {
    /// Duration in milliseconds (the container's).
    pub duration_ms: u64,
    /// Width in pixels of the first video stream, as displayed (rotation
    /// applied).
    pub width: u32,
    /// Height in pixels, as displayed.
    pub height: u32,
    /// Codec of the first video stream, as ffprobe names it (`h264`,
    /// `vp9`, `hevc`, `av1`, ...).
    pub video_codec: String,
    /// Codec of the first audio stream (`aac`, `opus`, ...), `None`
    /// without audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_codec: Option<String>,
    /// The ThumbHash and dominant colour of the poster frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<Placeholder>,
}

impl VideoInfo {
    /// A video of `duration_ms` and `width` × `height` pixels whose first
    /// video stream is in `video_codec`, without audio or placeholder.
    pub fn new(duration_ms: u64, width: u32, height: u32, video_codec: impl Into<String>) -> Self {
        Self {
            duration_ms,
            width,
            height,
            video_codec: video_codec.into(),
            audio_codec: None,
            placeholder: None,
        }
    }
}

/// A paged document, as read for its poster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DocumentInfo {
    /// Number of pages.
    pub page_count: u64,
    /// The ThumbHash and dominant colour of the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<Placeholder>,
}

impl DocumentInfo {
    /// A document of `page_count` pages, without placeholder.
    pub fn new(page_count: u64) -> Self {
        Self {
            page_count,
            placeholder: None,
        }
    }
}

/// One written variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantRecord {
    /// Variant name (`thumb`, `medium`).
    pub name: String,
    /// Key in the processed store.
    pub key: ObjectKey,
    /// Content type, e.g. `image/webp`.
    pub content_type: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Size in bytes.
    pub bytes: u64,
}

/// The most bytes a name under [`derived_prefix`] takes, `/` included:
/// 128 (a variant file name is at most 64 + 1 + 16 + 1 + 8 + 1 + 4 = 95
/// bytes; `manifest.json` 13).
pub const DERIVED_NAME_ROOM: usize = 128;

/// The folder of an original's manifest and variants in the processed
/// store: the original key itself (`uploads/u1/a.jpg`) when a derived
/// name fits after it within S3's 1024 bytes, else
/// `_long-keys/{SHA-256 of the key}` (see
/// [`ObjectKey::derived_root`]). The manifest records the original key
/// ([`SourceObject::key`]), so the mapping is kept where it is used.
pub fn derived_prefix(original: &ObjectKey) -> String {
    original.derived_root("", DERIVED_NAME_ROOM)
}

/// The manifest key of an original: `{derived prefix}/manifest.json`
/// (`{original}/manifest.json` for every key of up to 896 bytes; see
/// [`derived_prefix`]).
///
/// # Errors
/// [`upload_core::Error::InvalidKey`] never for a valid original; kept for
/// keys the store itself refuses.
pub fn manifest_key(original: &ObjectKey) -> upload_core::Result<ObjectKey> {
    ObjectKey::new(format!("{}/{MANIFEST_NAME}", derived_prefix(original)))
}

/// Hex digits of an ETag kept in variant keys: 16 (64 bits of the MD5).
pub const VARIANT_VERSION_LEN: usize = 16;

/// The key of the variant `spec` of the original version whose ETag is
/// `etag`: `{original}/{name}-{v}-{s}.{ext}` (under [`derived_prefix`]
/// for a key too long for that), where `v` is the first
/// [`VARIANT_VERSION_LEN`] ASCII letters and digits of the ETag (quotes and
/// the multipart `-N` suffix never reach it) and `s` the spec's
/// [`VariantSpec::fingerprint`].
///
/// The key is a pure function of the original key, the spec and the
/// version, so a redelivered event writes the same keys (create-only: a
/// second write is refused by the store), while a new version of the
/// original, or a changed spec, gets new keys: variants can be cached as
/// `immutable`, and two versions processed at once never overwrite each
/// other's variants.
///
/// ```
/// # use upload_core::ObjectKey;
/// # use upload_pipeline::{manifest::variant_key, VariantSpec};
/// let k = ObjectKey::new("uploads/u1/a.jpg").unwrap();
/// let thumb = VariantSpec::thumb();
/// let v = variant_key(&k, &thumb, "\"9bb58f26192e4ba00f01e2e7b136bbd8\"").unwrap();
/// assert_eq!(
///     v.as_str(),
///     format!("uploads/u1/a.jpg/thumb-9bb58f26192e4ba0-{}.webp", thumb.fingerprint())
/// );
/// ```
///
/// # Errors
/// [`upload_core::Error::InvalidKey`] never for a valid original and spec
/// (a spec's name is at most 64 bytes).
pub fn variant_key(
    original: &ObjectKey,
    spec: &VariantSpec,
    etag: &str,
) -> upload_core::Result<ObjectKey> {
    let v: String = etag
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(VARIANT_VERSION_LEN)
        .collect();
    ObjectKey::new(format!(
        "{}/{}-{v}-{}.{}",
        derived_prefix(original),
        spec.name,
        spec.fingerprint(),
        spec.format.extension()
    ))
}
