//! Validated S3 object keys.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Maximum key length in bytes of UTF-8 (the S3 limit).
pub const MAX_KEY_LEN: usize = 1024;

/// The folder of [`ObjectKey::derived_root`]'s hashed layout, for keys too
/// long to have derived keys beside them: `_long-keys/`.
pub const LONG_KEY_DIR: &str = "_long-keys/";

/// An S3 object key that is safe to use as a path in any store.
///
/// Rules (checked by [`ObjectKey::new`]):
/// - 1..=1024 bytes of UTF-8 (the S3 limit);
/// - no leading `/`, and no empty, `.` or `..` segment between `/`s (so no
///   `//`, no trailing `/`, no path traversal on filesystem-backed stores);
/// - no control characters (U+0000..=U+001F, U+007F..=U+009F);
/// - not blank: a key of only whitespace is refused, because the AWS SDKs
///   treat it as a missing key and cannot address the object.
///
/// Keys in S3 event notifications arrive URL-encoded; decode them with
/// [`crate::S3EventRecord::key`], never by hand.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Validates `key`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] naming the rule the key breaks.
    pub fn new(key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        let invalid = |reason| Error::InvalidKey {
            key: key.chars().take(200).collect(),
            reason,
        };
        if key.is_empty() {
            return Err(invalid("empty key"));
        }
        if key.trim().is_empty() {
            return Err(invalid("blank key (only whitespace)"));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(invalid("longer than 1024 bytes"));
        }
        if key.starts_with('/') {
            return Err(invalid("leading '/'"));
        }
        if key.chars().any(char::is_control) {
            return Err(invalid("control character"));
        }
        for segment in key.split('/') {
            match segment {
                "" => return Err(invalid("empty path segment")),
                "." | ".." => return Err(invalid("'.' or '..' path segment")),
                _ => {}
            }
        }
        Ok(Self(key))
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key with `suffix` appended after a `/`, validated again
    /// (e.g. `uploads/a.jpg` + `thumb.webp` = `uploads/a.jpg/thumb.webp`).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the result is not a valid key.
    pub fn join(&self, suffix: &str) -> Result<Self> {
        Self::new(format!("{}/{suffix}", self.0))
    }

    /// The key with `prefix` put in front (a `/` is added between them when
    /// `prefix` does not end with one), validated again.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the result is not a valid key.
    pub fn with_prefix(&self, prefix: &str) -> Result<Self> {
        if prefix.is_empty() {
            return Ok(self.clone());
        }
        let sep = if prefix.ends_with('/') { "" } else { "/" };
        Self::new(format!("{prefix}{sep}{}", self.0))
    }

    /// The root under which keys derived from this one are written (its
    /// manifest and variants, its quarantine copy): `{prefix}{key}` when
    /// that leaves `room` bytes within S3's 1024-byte limit, otherwise
    /// `{prefix}{LONG_KEY_DIR}{SHA-256 of the key, hex}` (84 bytes after the
    /// prefix), which always does. Ordinary keys keep the readable layout;
    /// an original of up to 1024 bytes still gets derived keys, and the
    /// long layout is a pure function of the key, so the same original
    /// always maps to the same root; a key that itself starts with
    /// [`LONG_KEY_DIR`] always gets the hashed layout, so two originals
    /// never share a root. Whoever writes under the root should
    /// record the original key there (the pipeline's manifest does).
    ///
    /// ```
    /// # use upload_core::ObjectKey;
    /// let k = ObjectKey::new("uploads/u1/a.jpg").unwrap();
    /// assert_eq!(k.derived_root("", 128), "uploads/u1/a.jpg");
    /// assert_eq!(k.derived_root("quarantine/", 0), "quarantine/uploads/u1/a.jpg");
    /// let long = ObjectKey::new(format!("uploads/{}", "x".repeat(1000))).unwrap();
    /// let root = long.derived_root("", 128);
    /// assert!(root.starts_with("_long-keys/") && root.len() == 11 + 64);
    /// // An original named like a hashed root cannot take another's.
    /// let mimic = ObjectKey::new(root.clone()).unwrap();
    /// assert_ne!(mimic.derived_root("", 128), root);
    /// ```
    pub fn derived_root(&self, prefix: &str, room: usize) -> String {
        // A key that itself starts with `_long-keys/` always takes the
        // hashed layout, so no plain root can be another key's hashed one.
        if !self.0.starts_with(LONG_KEY_DIR) && prefix.len() + self.0.len() + room <= MAX_KEY_LEN {
            return format!("{prefix}{}", self.0);
        }
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.0.as_bytes());
        format!("{prefix}{LONG_KEY_DIR}{}", hex::encode(digest))
    }

    /// The last segment's extension, without the dot, if it has one
    /// (`uploads/a/b.jpg` → `jpg`).
    pub fn extension(&self) -> Option<&str> {
        let last = self.0.rsplit('/').next()?;
        let (stem, ext) = last.rsplit_once('.')?;
        (!stem.is_empty() && !ext.is_empty()).then_some(ext)
    }

    /// Consumes the key, returning the string.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Checks an owner ID for the `uploads/{owner}/` segment of upload keys:
/// 1..=128 bytes of ASCII letters, digits, `-` and `_`.
///
/// # Errors
/// [`Error::InvalidKey`] otherwise.
pub fn check_owner(owner: &str) -> Result<()> {
    let ok = !owner.is_empty()
        && owner.len() <= 128
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidKey {
            key: owner.chars().take(200).collect(),
            reason: "owner must be 1..=128 of [A-Za-z0-9_-]",
        })
    }
}

/// Picks the key for a new upload, server-side:
/// `uploads/{owner}/{uuid v4}.{extension}`.
///
/// The client never chooses a key; `extension` must come from the allowed
/// content type (see [`crate::extension_for`]), never from the client's file
/// name.
///
/// # Errors
/// [`Error::InvalidKey`] if `owner` is empty, longer than 128 bytes or holds
/// anything but ASCII letters, digits, `-` and `_`, or if `extension` holds
/// anything but ASCII letters and digits.
pub fn upload_key(owner: &str, extension: &str) -> Result<ObjectKey> {
    check_owner(owner)?;
    if extension.is_empty()
        || extension.len() > 16
        || !extension.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(Error::InvalidKey {
            key: extension.chars().take(200).collect(),
            reason: "extension must be 1..=16 ASCII letters or digits",
        });
    }
    ObjectKey::new(format!(
        "uploads/{owner}/{}.{extension}",
        uuid::Uuid::new_v4()
    ))
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for ObjectKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for ObjectKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<String> for ObjectKey {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<&str> for ObjectKey {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl From<ObjectKey> for String {
    fn from(k: ObjectKey) -> String {
        k.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(k: &str) -> &'static str {
        match ObjectKey::new(k) {
            Err(Error::InvalidKey { reason, .. }) => reason,
            other => panic!("{k:?} should be invalid, got {other:?}"),
        }
    }

    #[test]
    fn accepts_ordinary_keys() {
        for k in [
            "a",
            "uploads/alice/photo.jpg",
            "my photo+1 (2).JPG",
            "ünïcødé/日本.png",
            "a.b/..c/d..",
        ] {
            assert_eq!(ObjectKey::new(k).unwrap().as_str(), k);
        }
        assert!(ObjectKey::new("x".repeat(1024)).is_ok());
    }

    #[test]
    fn rejects_each_rule() {
        assert_eq!(reason(""), "empty key");
        assert_eq!(reason(" "), "blank key (only whitespace)");
        assert_eq!(reason("\u{3000} \u{a0}"), "blank key (only whitespace)");
        assert_eq!(reason(&"x".repeat(1025)), "longer than 1024 bytes");
        // 342 three-byte characters are 1026 bytes, though only 342 chars.
        assert_eq!(reason(&"日".repeat(342)), "longer than 1024 bytes");
        assert_eq!(reason("/abs"), "leading '/'");
        assert_eq!(reason("a//b"), "empty path segment");
        assert_eq!(reason("a/"), "empty path segment");
        assert_eq!(reason("a/./b"), "'.' or '..' path segment");
        assert_eq!(reason("../etc/passwd"), "'.' or '..' path segment");
        assert_eq!(reason("a/.."), "'.' or '..' path segment");
        assert_eq!(reason("a\nb"), "control character");
        assert_eq!(reason("a\u{0}b"), "control character");
        assert_eq!(reason("a\u{7f}"), "control character");
        assert_eq!(reason("a\u{85}"), "control character");
    }

    #[test]
    fn extension_and_join() {
        let k = ObjectKey::new("uploads/a/b.jpg").unwrap();
        assert_eq!(k.extension(), Some("jpg"));
        assert_eq!(ObjectKey::new("a/.hidden").unwrap().extension(), None);
        assert_eq!(ObjectKey::new("a.d/noext").unwrap().extension(), None);
        assert_eq!(
            k.join("thumb.webp").unwrap().as_str(),
            "uploads/a/b.jpg/thumb.webp"
        );
        assert!(k.join("../x").is_err());
        assert_eq!(
            k.with_prefix("quarantine").unwrap().as_str(),
            "quarantine/uploads/a/b.jpg"
        );
        assert_eq!(k.with_prefix("q/").unwrap().as_str(), "q/uploads/a/b.jpg");
    }

    #[test]
    fn serde_validates() {
        let k: ObjectKey = serde_json::from_str("\"a/b\"").unwrap();
        assert_eq!(k.as_str(), "a/b");
        assert!(serde_json::from_str::<ObjectKey>("\"a//b\"").is_err());
        assert_eq!(serde_json::to_string(&k).unwrap(), "\"a/b\"");
    }

    #[test]
    fn upload_key_shape() {
        let k = upload_key("alice_1", "jpg").unwrap();
        let parts: Vec<&str> = k.as_str().split('/').collect();
        assert_eq!(parts[0], "uploads");
        assert_eq!(parts[1], "alice_1");
        let (id, ext) = parts[2].split_once('.').unwrap();
        assert_eq!(ext, "jpg");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        assert_ne!(k, upload_key("alice_1", "jpg").unwrap());
        assert!(upload_key("../bob", "jpg").is_err());
        assert!(upload_key("", "jpg").is_err());
        assert!(upload_key("bob", "j/pg").is_err());
        assert!(upload_key("bob", "").is_err());
    }

    proptest::proptest! {
        #[test]
        fn valid_keys_round_trip(s in "[a-zA-Z0-9 _+%-]{1,20}(/[a-zA-Z0-9 _+%.-]{1,20}){0,5}") {
            let ok = !s.split('/').any(|seg| seg == "." || seg == "..") && !s.trim().is_empty();
            let parsed = ObjectKey::new(s.clone());
            proptest::prop_assert_eq!(parsed.is_ok(), ok);
            if let Ok(k) = parsed {
                proptest::prop_assert_eq!(k.as_str(), s.as_str());
                let back: ObjectKey = k.to_string().parse().unwrap();
                proptest::prop_assert_eq!(back, k);
            }
        }
    }
}
