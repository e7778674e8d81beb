//! What an upload may be: allowed content types, maximum size, URL expiry.

use std::time::Duration;

use crate::error::{Error, Result};

/// Shortest presigned URL expiry: 1 second (SigV4 `X-Amz-Expires` minimum).
pub const MIN_EXPIRY: Duration = Duration::from_secs(1);
/// Longest presigned URL expiry: 7 days = 604800 s (SigV4 maximum).
pub const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default presigned URL expiry: 300 s.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(300);

/// The content types of [`UploadPolicy::media`], lowercase essences:
/// photos, then videos, then documents.
pub const MEDIA_CONTENT_TYPES: [&str; 12] = [
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/heic",
    "image/heif",
    "image/avif",
    "image/jxl",
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "application/pdf",
];

/// The rules an upload is checked against, before presigning (declared
/// type and size) and again in the worker (sniffed type and real size).
///
/// Content types are compared by their essence (`type/subtype`, lowercase,
/// parameters such as `; charset=` dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPolicy {
    allowed_content_types: Vec<String>,
    max_bytes: u64,
    expiry: Duration,
}

impl UploadPolicy {
    /// A policy allowing `content_types` (e.g. `image/jpeg`) up to
    /// `max_bytes` bytes, with the default 300 s URL expiry.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] if no type is given, a type is not of the
    /// form `type/subtype`, or `max_bytes` is 0.
    pub fn new<I, S>(content_types: I, max_bytes: u64) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut allowed = Vec::new();
        for t in content_types {
            let essence = essence(t.as_ref());
            let valid = essence
                .split_once('/')
                .is_some_and(|(a, b)| is_token(a) && is_token(b));
            if !valid {
                return Err(Error::InvalidPolicy {
                    reason: format!("{:?} is not a type/subtype MIME type", t.as_ref()),
                });
            }
            if !allowed.contains(&essence) {
                allowed.push(essence);
            }
        }
        if allowed.is_empty() {
            return Err(Error::InvalidPolicy {
                reason: "no content type allowed".into(),
            });
        }
        if max_bytes == 0 {
            return Err(Error::InvalidPolicy {
                reason: "max_bytes must be at least 1".into(),
            });
        }
        Ok(Self {
            allowed_content_types: allowed,
            max_bytes,
            expiry: DEFAULT_EXPIRY,
        })
    }

    /// The quickstart's policy: JPEG, PNG, WebP, GIF and PDF up to
    /// `max_bytes` bytes.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] if `max_bytes` is 0.
    pub fn images_and_pdf(max_bytes: u64) -> Result<Self> {
        Self::new(
            [
                "image/jpeg",
                "image/png",
                "image/webp",
                "image/gif",
                "application/pdf",
            ],
            max_bytes,
        )
    }

    /// The media policy: every type the worker has a processor for, up to
    /// `max_bytes` bytes ([`MEDIA_CONTENT_TYPES`]): JPEG, PNG, WebP, GIF,
    /// HEIC/HEIF, AVIF and JPEG XL photos, MP4, QuickTime and WebM videos,
    /// and PDF documents.
    ///
    /// Accepting a type is not the same as previewing it: HEIC/HEIF and
    /// AVIF get variants only with `upload-pipeline`'s `heif` feature,
    /// JPEG XL with `jxl`, videos with `video` and PDFs with `pdf`; without
    /// them such an upload is scanned and kept, or refused as unsupported
    /// when the route asks for variants (see `upload-pipeline`). SVG, HTML
    /// and archives are never in it: a browser runs an SVG's scripts.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] if `max_bytes` is 0.
    pub fn media(max_bytes: u64) -> Result<Self> {
        Self::new(MEDIA_CONTENT_TYPES, max_bytes)
    }

    /// Sets the presigned URL expiry.
    ///
    /// # Errors
    /// [`Error::ExpiryOutOfRange`] outside 1 s..=7 days (whole seconds; a
    /// sub-second part is refused rather than rounded).
    pub fn with_expiry(mut self, expiry: Duration) -> Result<Self> {
        check_expiry(expiry)?;
        self.expiry = expiry;
        Ok(self)
    }

    /// The allowed content types, lowercase essences.
    pub fn allowed_content_types(&self) -> &[String] {
        &self.allowed_content_types
    }

    /// Maximum object size in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Presigned URL expiry (1 s..=7 days).
    pub fn expiry(&self) -> Duration {
        self.expiry
    }

    /// Whether `content_type` is allowed (compared by essence).
    pub fn allows(&self, content_type: &str) -> bool {
        let e = essence(content_type);
        self.allowed_content_types.contains(&e)
    }

    /// Checks a content type.
    ///
    /// # Errors
    /// [`Error::ContentTypeNotAllowed`].
    pub fn check_content_type(&self, content_type: &str) -> Result<()> {
        if self.allows(content_type) {
            Ok(())
        } else {
            Err(Error::ContentTypeNotAllowed {
                content_type: content_type.chars().take(200).collect(),
                allowed: self.allowed_content_types.join(", "),
            })
        }
    }

    /// Checks a size in bytes.
    ///
    /// # Errors
    /// [`Error::TooLarge`] above [`Self::max_bytes`].
    pub fn check_size(&self, size: u64) -> Result<()> {
        if size > self.max_bytes {
            Err(Error::TooLarge {
                size,
                max: self.max_bytes,
            })
        } else {
            Ok(())
        }
    }

    /// Checks both content type and size.
    ///
    /// # Errors
    /// [`Error::ContentTypeNotAllowed`] or [`Error::TooLarge`].
    pub fn check(&self, content_type: &str, size: u64) -> Result<()> {
        self.check_content_type(content_type)?;
        self.check_size(size)
    }
}

/// Checks a presigned URL expiry against the SigV4 limits.
///
/// # Errors
/// [`Error::ExpiryOutOfRange`] outside 1 s..=604800 s or with a sub-second
/// part.
pub fn check_expiry(expiry: Duration) -> Result<()> {
    if expiry < MIN_EXPIRY || expiry > MAX_EXPIRY || expiry.subsec_nanos() != 0 {
        return Err(Error::ExpiryOutOfRange { expiry });
    }
    Ok(())
}

/// The lowercase `type/subtype` of a content type, without parameters.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_type_and_size() {
        let p = UploadPolicy::new(["image/jpeg", "IMAGE/PNG"], 1000).unwrap();
        assert_eq!(p.allowed_content_types(), ["image/jpeg", "image/png"]);
        assert!(p.check("image/jpeg", 1000).is_ok());
        assert!(p.check("Image/PNG; charset=binary", 1).is_ok());
        match p.check("image/gif", 10) {
            Err(Error::ContentTypeNotAllowed {
                content_type,
                allowed,
            }) => {
                assert_eq!(content_type, "image/gif");
                assert_eq!(allowed, "image/jpeg, image/png");
            }
            other => panic!("{other:?}"),
        }
        match p.check("image/jpeg", 1001) {
            Err(Error::TooLarge { size, max }) => assert_eq!((size, max), (1001, 1000)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_malformed_policies() {
        assert!(matches!(
            UploadPolicy::new(Vec::<String>::new(), 1),
            Err(Error::InvalidPolicy { .. })
        ));
        assert!(UploadPolicy::new(["jpeg"], 1).is_err());
        assert!(UploadPolicy::new(["image/"], 1).is_err());
        assert!(UploadPolicy::new(["image/jpeg"], 0).is_err());
    }

    #[test]
    fn expiry_limits() {
        let p = UploadPolicy::images_and_pdf(10).unwrap();
        assert_eq!(p.expiry(), Duration::from_secs(300));
        assert_eq!(
            p.clone()
                .with_expiry(Duration::from_secs(604_800))
                .unwrap()
                .expiry()
                .as_secs(),
            604_800
        );
        assert_eq!(
            p.clone()
                .with_expiry(Duration::from_secs(1))
                .unwrap()
                .expiry(),
            MIN_EXPIRY
        );
        for bad in [
            Duration::ZERO,
            Duration::from_millis(1500),
            Duration::from_secs(604_801),
        ] {
            assert!(matches!(
                p.clone().with_expiry(bad),
                Err(Error::ExpiryOutOfRange { .. })
            ));
        }
    }
}
