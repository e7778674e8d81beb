//! The [`Storage`] conformance suite.

use bytes::Bytes;
use futures::TryStreamExt;

use super::key;
use crate::ObjectKey;
use crate::error::Error;
use crate::storage::{PutOptions, Storage, Tags, etag_of};

/// Runs every check below under `prefix`.
pub async fn run_all(s: &dyn Storage, prefix: &str) {
    put_get_head_delete(s, prefix).await;
    create_only(s, prefix).await;
    if_match(s, prefix).await;
    ranges(s, prefix).await;
    stream(s, prefix).await;
    copy_keeps_metadata(s, prefix).await;
    tags(s, prefix).await;
    list_by_prefix(s, prefix).await;
    missing_objects(s, prefix).await;
}

/// Bytes, content type, cache control, size and ETag survive a round trip;
/// a delete removes the object and deleting again succeeds.
pub async fn put_get_head_delete(s: &dyn Storage, prefix: &str) {
    let k = key(prefix, "basic/photo one.jpg");
    let body = Bytes::from_static(b"\xFF\xD8\xFF\xE0 not really a jpeg");
    let opts = PutOptions::default()
        .with_content_type("image/jpeg")
        .with_cache_control("public, max-age=60")
        .with_metadata("upload-route", "avatar")
        .with_metadata("Upload-Owner", "user-7");
    let put = s.put(&k, body.clone(), opts).await.expect("put");
    assert_eq!(put.size, body.len() as u64, "put size");
    assert_eq!(put.etag, etag_of(&body), "put ETag is the MD5");
    let got = s.get(&k).await.expect("get");
    assert_eq!(got.body, body, "get bytes");
    assert_eq!(got.meta.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(
        got.meta.cache_control.as_deref(),
        Some("public, max-age=60")
    );
    let want_meta: std::collections::BTreeMap<String, String> = [
        ("upload-owner".to_owned(), "user-7".to_owned()),
        ("upload-route".to_owned(), "avatar".to_owned()),
    ]
    .into();
    assert_eq!(got.meta.metadata, want_meta, "user metadata on GET");
    let head = s.head(&k).await.expect("head");
    assert_eq!(head.metadata, want_meta, "user metadata on HEAD");
    assert_eq!(head.size, body.len() as u64);
    assert_eq!(head.etag, put.etag, "head ETag");
    assert_eq!(head.key, k);
    // Overwrite without create-only replaces.
    let put2 = s
        .put(&k, Bytes::from_static(b"v2"), PutOptions::default())
        .await
        .expect("overwrite");
    assert_eq!(s.get(&k).await.expect("get v2").body.as_ref(), b"v2");
    assert_eq!(put2.size, 2);
    s.delete(&k).await.expect("delete");
    assert!(
        matches!(s.head(&k).await, Err(Error::NotFound { .. })),
        "deleted object is gone"
    );
    s.delete(&k).await.expect("deleting a missing key succeeds");
    // Empty objects are objects.
    let e = key(prefix, "basic/empty");
    let m = s
        .put(&e, Bytes::new(), PutOptions::default())
        .await
        .expect("put empty");
    assert_eq!(m.size, 0);
    assert_eq!(m.etag, "d41d8cd98f00b204e9800998ecf8427e");
    assert!(s.get(&e).await.expect("get empty").body.is_empty());
    s.delete(&e).await.expect("delete empty");
}

/// A create-only write over an existing key fails and leaves the original.
pub async fn create_only(s: &dyn Storage, prefix: &str) {
    let k = key(prefix, "create-only/original");
    let first = PutOptions::default().with_create_only(true);
    s.put(&k, Bytes::from_static(b"original"), first.clone())
        .await
        .expect("first create-only put");
    let err = s
        .put(&k, Bytes::from_static(b"intruder"), first)
        .await
        .expect_err("second create-only put must fail");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert_eq!(
        s.get(&k).await.expect("get").body.as_ref(),
        b"original",
        "original untouched"
    );
    s.delete(&k).await.expect("cleanup");
}

/// A write conditional on the stored ETag replaces that version only.
pub async fn if_match(s: &dyn Storage, prefix: &str) {
    let k = key(prefix, "if-match/manifest.json");
    let missing = s
        .put(
            &k,
            Bytes::from_static(b"v0"),
            PutOptions::default().with_if_match("d41d8cd98f00b204e9800998ecf8427e"),
        )
        .await
        .expect_err("If-Match on a missing key must fail");
    assert!(matches!(missing, Error::NotFound { .. }), "{missing:?}");
    let v1 = s
        .put(&k, Bytes::from_static(b"v1"), PutOptions::default())
        .await
        .expect("put v1");
    let v2 = s
        .put(
            &k,
            Bytes::from_static(b"v2"),
            PutOptions::default().with_if_match(v1.etag.clone()),
        )
        .await
        .expect("If-Match of the stored version");
    assert_eq!(v2.etag, crate::storage::etag_of(b"v2"));
    let stale = s
        .put(
            &k,
            Bytes::from_static(b"v3"),
            PutOptions::default().with_if_match(format!("\"{}\"", v1.etag)),
        )
        .await
        .expect_err("If-Match of a replaced version must fail");
    assert!(
        matches!(stale, Error::PreconditionFailed { .. }),
        "{stale:?}"
    );
    assert_eq!(s.get(&k).await.expect("get").body.as_ref(), b"v2");
    s.delete(&k).await.expect("cleanup");
}

/// Ranged reads: exact, clamped past the end, refused when empty or past
/// the end.
pub async fn ranges(s: &dyn Storage, prefix: &str) {
    let k = key(prefix, "ranges/digits");
    s.put(&k, Bytes::from_static(b"0123456789"), PutOptions::default())
        .await
        .expect("put");
    assert_eq!(s.get_range(&k, 0..4).await.expect("0..4").as_ref(), b"0123");
    assert_eq!(
        s.get_range(&k, 7..10).await.expect("7..10").as_ref(),
        b"789"
    );
    assert_eq!(
        s.get_range(&k, 8..100).await.expect("clamped").as_ref(),
        b"89",
        "end past the object is clamped"
    );
    for bad in [10..12, 50..60, 3..3] {
        let err = s.get_range(&k, bad.clone()).await.expect_err("bad range");
        assert!(
            matches!(err, Error::InvalidRange { .. }),
            "{bad:?}: {err:?}"
        );
    }
    s.delete(&k).await.expect("cleanup");
}

/// A streamed read yields the same bytes as a whole read, in several
/// chunks for a large object.
pub async fn stream(s: &dyn Storage, prefix: &str) {
    let k = key(prefix, "stream/big");
    let body: Bytes = (0..300_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    s.put(&k, body.clone(), PutOptions::default())
        .await
        .expect("put");
    let (meta, st) = s.get_stream(&k).await.expect("get_stream");
    assert_eq!(meta.size, 300_000);
    let chunks: Vec<Bytes> = st.try_collect().await.expect("stream");
    assert!(chunks.len() > 1, "a 300 kB object streams in chunks");
    assert_eq!(chunks.concat(), body.as_ref(), "streamed bytes");
    s.delete(&k).await.expect("cleanup");
}

/// Copy keeps bytes, content type, cache control and tags; the source
/// stays.
pub async fn copy_keeps_metadata(s: &dyn Storage, prefix: &str) {
    let a = key(prefix, "copy/a");
    let b = key(prefix, "copy/b");
    let tags = Tags::from_pairs([("scan-status", "CLEAN")]).expect("tags");
    let opts = PutOptions::default()
        .with_content_type("image/png")
        .with_cache_control("no-store")
        .with_metadata("upload-route", "document")
        .with_tags(tags.clone());
    s.put(&a, Bytes::from_static(b"pixels"), opts)
        .await
        .expect("put");
    let m = s.copy(&a, &b).await.expect("copy");
    assert_eq!(m.size, 6);
    let got = s.get(&b).await.expect("get copy");
    assert_eq!(got.body.as_ref(), b"pixels");
    assert_eq!(got.meta.content_type.as_deref(), Some("image/png"));
    assert_eq!(got.meta.cache_control.as_deref(), Some("no-store"));
    assert_eq!(
        got.meta.metadata.get("upload-route").map(String::as_str),
        Some("document"),
        "copy keeps user metadata"
    );
    assert_eq!(s.get_tags(&b).await.expect("copy tags"), tags);
    assert!(s.head(&a).await.is_ok(), "source stays");
    let missing = key(prefix, "copy/missing");
    assert!(matches!(
        s.copy(&missing, &b).await,
        Err(Error::NotFound { .. })
    ));
    s.delete(&a).await.expect("cleanup");
    s.delete(&b).await.expect("cleanup");
}

/// Tags replace as a set and read back; a GET says how many there are
/// ([`ObjectMeta::tag_count`](crate::ObjectMeta::tag_count)), a HEAD says
/// the same or nothing.
pub async fn tags(s: &dyn Storage, prefix: &str) {
    async fn counts(s: &dyn Storage, k: &ObjectKey) -> (Option<u32>, Option<u32>) {
        let got = s.get(k).await.expect("get");
        let head = s.head(k).await.expect("head");
        (got.meta.tag_count, head.tag_count)
    }
    let k = key(prefix, "tags/x");
    s.put(&k, Bytes::from_static(b"x"), PutOptions::default())
        .await
        .expect("put");
    assert!(s.get_tags(&k).await.expect("no tags").is_empty());
    let (got, head) = counts(s, &k).await;
    assert_eq!(got, Some(0), "a GET of an untagged object");
    assert!(matches!(head, None | Some(0)), "HEAD: {head:?}");
    let t1 = Tags::from_pairs([("a", "1"), ("b", "2")]).expect("t1");
    s.put_tags(&k, &t1).await.expect("put t1");
    assert_eq!(s.get_tags(&k).await.expect("get t1"), t1);
    let (got, head) = counts(s, &k).await;
    assert_eq!(got, Some(2), "a GET of an object with 2 tags");
    assert!(matches!(head, None | Some(2)), "HEAD: {head:?}");
    let t2 = Tags::from_pairs([("c", "3")]).expect("t2");
    s.put_tags(&k, &t2).await.expect("put t2");
    assert_eq!(
        s.get_tags(&k).await.expect("get t2"),
        t2,
        "tags replace as a set"
    );
    assert_eq!(s.get(&k).await.expect("get").meta.tag_count, Some(1));
    let with_tags = key(prefix, "tags/given-at-upload");
    s.put(
        &with_tags,
        Bytes::from_static(b"y"),
        PutOptions::default().with_tags(t1.clone()),
    )
    .await
    .expect("put with tags");
    let (stream_meta, _) = s.get_stream(&with_tags).await.expect("get stream");
    assert_eq!(stream_meta.tag_count, Some(2), "a streamed GET");
    s.delete(&with_tags).await.expect("cleanup");
    s.delete(&k).await.expect("cleanup");
    assert!(matches!(
        s.put_tags(&k, &t1).await,
        Err(Error::NotFound { .. })
    ));
}

/// Listing returns exactly the keys under a prefix, in key order.
pub async fn list_by_prefix(s: &dyn Storage, prefix: &str) {
    let names = ["list/b", "list/a", "list/c/d", "listx"];
    for n in names {
        s.put(
            &key(prefix, n),
            Bytes::from_static(b"."),
            PutOptions::default(),
        )
        .await
        .expect("put");
    }
    let listed: Vec<String> = s
        .list(&format!("{prefix}/list/"))
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.key.into_string())
        .collect();
    assert_eq!(
        listed,
        ["list/a", "list/b", "list/c/d"].map(|n| format!("{prefix}/{n}"))
    );
    for n in names {
        s.delete(&key(prefix, n)).await.expect("cleanup");
    }
}

/// Reads of a missing key fail with `NotFound`.
pub async fn missing_objects(s: &dyn Storage, prefix: &str) {
    let k = key(prefix, "missing/none");
    assert!(matches!(s.get(&k).await, Err(Error::NotFound { .. })));
    assert!(matches!(s.head(&k).await, Err(Error::NotFound { .. })));
    assert!(matches!(
        s.get_range(&k, 0..1).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.get_stream(&k).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(s.get_tags(&k).await, Err(Error::NotFound { .. })));
}

/// For a store with versioning enabled (not part of [`run_all`]): every
/// write gets its own version ID; each version reads, heads, streams and
/// tags by that ID while a newer one is current; a delete without a
/// version ID hides the object but keeps its versions; deleting a version
/// by ID removes it for good and the previous one becomes current.
/// Versions are removed at the end, so the store is left as found.
pub async fn versions(s: &dyn Storage, prefix: &str) {
    let k = key(prefix, "versions/photo.jpg");
    let v1_body = Bytes::from_static(b"first version");
    let v2_body = Bytes::from_static(b"second version, longer");
    let opts = PutOptions::default().with_content_type("image/jpeg");
    let v1 = s.put(&k, v1_body.clone(), opts.clone()).await.expect("v1");
    let v2 = s.put(&k, v2_body.clone(), opts).await.expect("v2");
    let id1 = v1
        .version_id
        .clone()
        .expect("a versioned put returns its version ID");
    let id2 = v2
        .version_id
        .clone()
        .expect("a versioned put returns its version ID");
    assert_ne!(id1, id2, "each write is a new version");

    // The current version is the newest; the older one reads by its ID.
    let current = s.get(&k).await.expect("get current");
    assert_eq!(current.body, v2_body);
    assert_eq!(current.meta.version_id.as_deref(), Some(id2.as_str()));
    let old = s.get_version(&k, Some(&id1)).await.expect("get v1");
    assert_eq!(old.body, v1_body, "the version named, not the current one");
    assert_eq!(old.meta.etag, etag_of(&v1_body));
    assert_eq!(old.meta.version_id.as_deref(), Some(id1.as_str()));
    let head = s.head_version(&k, Some(&id1)).await.expect("head v1");
    assert_eq!(
        (head.size, head.etag.as_str()),
        (v1_body.len() as u64, v1.etag.as_str())
    );
    let (meta, stream) = s
        .get_stream_version(&k, Some(&id1))
        .await
        .expect("stream v1");
    let chunks: Vec<Bytes> = stream.try_collect().await.expect("stream v1 body");
    assert_eq!(chunks.concat(), v1_body.to_vec());
    assert_eq!(meta.version_id.as_deref(), Some(id1.as_str()));

    // Tags belong to a version.
    let t = Tags::from_pairs([("scan-status", "CLEAN")]).expect("tags");
    s.put_tags_version(&k, Some(&id1), &t)
        .await
        .expect("tag v1");
    assert_eq!(
        s.get_tags_version(&k, Some(&id1)).await.expect("v1 tags"),
        t
    );
    assert!(
        s.get_tags(&k).await.expect("current tags").is_empty(),
        "tagging v1 left the current version untagged"
    );

    // A delete without a version ID hides the object; its versions stay.
    s.delete(&k).await.expect("delete marker");
    assert!(matches!(s.head(&k).await, Err(Error::NotFound { .. })));
    assert_eq!(
        s.get_version(&k, Some(&id2))
            .await
            .expect("v2 after delete")
            .body,
        v2_body,
        "a version outlives a delete without version ID"
    );

    // Deleting versions by ID removes them for good.
    s.delete_version(&k, Some(&id1)).await.expect("delete v1");
    assert!(matches!(
        s.get_version(&k, Some(&id1)).await,
        Err(Error::NotFound { .. })
    ));
    s.delete_version(&k, Some(&id2)).await.expect("delete v2");
    assert!(matches!(
        s.get_version(&k, Some(&id2)).await,
        Err(Error::NotFound { .. })
    ));

    // Deleting the current version by ID makes the previous one current.
    let k2 = key(prefix, "versions/restore.txt");
    let a = s
        .put(&k2, Bytes::from_static(b"a"), PutOptions::default())
        .await
        .expect("a");
    let b = s
        .put(&k2, Bytes::from_static(b"b"), PutOptions::default())
        .await
        .expect("b");
    let (ida, idb) = (a.version_id.expect("a id"), b.version_id.expect("b id"));
    s.delete_version(&k2, Some(&idb))
        .await
        .expect("delete current");
    let now = s.get(&k2).await.expect("previous version is current");
    assert_eq!(now.body, Bytes::from_static(b"a"));
    assert_eq!(now.meta.version_id.as_deref(), Some(ida.as_str()));
    s.delete_version(&k2, Some(&ida)).await.expect("cleanup");
    assert!(matches!(s.head(&k2).await, Err(Error::NotFound { .. })));
}
