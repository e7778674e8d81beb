//! What an `object_store` backend keeps natively.

/// What a backend keeps natively, declared by whoever builds an
/// [`ObjectStoreStorage`](crate::ObjectStoreStorage) (the constructors of
/// this crate declare it for the backends they build).
///
/// Whatever a backend lacks the adapter keeps in its sidecar objects, so
/// every backend passes the whole Storage suite; these flags decide only
/// what is *also* written natively (for readers that bypass the SDK, such
/// as a browser following a signed URL) and how an If-Match write is made
/// atomic.
///
/// | backend | `attributes` | `user_metadata` | `conditional_update` | tags readable |
/// |---|---|---|---|---|
/// | `LocalFileSystem` | no | no | no (adapter lock) | no (sidecar) |
/// | `InMemory` | yes | yes | yes | no (sidecar) |
/// | `MicrosoftAzure` | yes | no (names must be C# identifiers) | yes | no (sidecar) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The backend stores `Content-Type` and `Cache-Control` with the
    /// object (object_store `Attributes`) and returns them on GET.
    pub attributes: bool,
    /// The backend stores user metadata names such as `upload-route`
    /// (object_store `Attribute::Metadata`). Azure does not: its metadata
    /// names must be C# identifiers, and the SDK's contain `-`.
    pub user_metadata: bool,
    /// The backend implements `PutMode::Update` (a write conditional on
    /// the stored ETag). Without it, If-Match writes take a create-only
    /// lock object instead (see
    /// [`ObjectStoreStorage`](crate::ObjectStoreStorage)).
    pub conditional_update: bool,
}

impl Capabilities {
    /// `object_store::local::LocalFileSystem` 0.14: no attributes, no
    /// `PutMode::Update`.
    pub const LOCAL_FILE_SYSTEM: Self = Self {
        attributes: false,
        user_metadata: false,
        conditional_update: false,
    };
    /// `object_store::memory::InMemory` 0.14: attributes of every kind and
    /// `PutMode::Update`.
    pub const IN_MEMORY: Self = Self {
        attributes: true,
        user_metadata: true,
        conditional_update: true,
    };
    /// `object_store::azure::MicrosoftAzure` 0.14: content type, cache
    /// control and `If-Match` writes; user metadata only in the sidecar.
    pub const AZURE: Self = Self {
        attributes: true,
        user_metadata: false,
        conditional_update: true,
    };
    /// Nothing native: the safe choice for a backend not listed here.
    pub const NONE: Self = Self::LOCAL_FILE_SYSTEM;
}
