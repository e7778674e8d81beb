//! The [`MultipartStore`] conformance suite. It needs the [`Storage`] view
//! of the same bucket to read completed objects.

use bytes::Bytes;

use super::key;
use crate::error::Error;
use crate::multipart::{ChecksumAlgorithm, CompletedPart, MultipartStore};
use crate::storage::{PutOptions, Storage, etag_of, multipart_etag};

/// 5 MiB, the S3 minimum for every part but the last.
const MIB5: usize = 5 * 1024 * 1024;

/// Runs every check below under `prefix`.
pub async fn run_all(m: &dyn MultipartStore, s: &dyn Storage, prefix: &str) {
    upload_list_complete(m, s, prefix).await;
    refuses_bad_completions(m, prefix).await;
    abort_frees_upload(m, s, prefix).await;
    completion_can_be_repeated(m, s, prefix).await;
    create_only_completion_never_replaces(m, s, prefix).await;
    upload_part_needs_its_upload(m, prefix).await;
    lists_uploads_in_progress(m, prefix).await;
    part_checksums_are_verified(m, s, prefix, true).await;
}

/// Part checksums as S3 has them: an upload created with an algorithm
/// ([`PutOptions::with_checksum`]) takes parts carrying that checksum,
/// lists them with it, and completes when the completion names each one;
/// when `strict`, a part whose checksum does not match its body is
/// refused with `BadDigest` and not stored, a part without the checksum
/// or with another algorithm is refused, and so is a completion that does
/// not name the checksums. (moto 5.1 and s3s-fs 0.14 check none of it:
/// their tests pass `false`, and check that they still do not.)
pub async fn part_checksums_are_verified(
    m: &dyn MultipartStore,
    s: &dyn Storage,
    prefix: &str,
    strict: bool,
) {
    for algorithm in [ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Sha256] {
        let k = key(prefix, &format!("checksums-{}", algorithm.as_str()));
        let id = m
            .create_multipart_upload(&k, PutOptions::default().with_checksum(algorithm))
            .await
            .unwrap();
        let p1 = Bytes::from(vec![b'c'; MIB5]);
        let p2 = Bytes::from_static(b"tail bytes");
        let u1 = m
            .upload_part_checked(&k, &id, 1, p1.clone(), &algorithm.checksum(&p1))
            .await
            .expect("a matching checksum");
        assert_eq!(u1.etag, etag_of(&p1));
        assert_eq!(u1.checksum, Some(algorithm.checksum(&p1)));
        let other = match algorithm {
            ChecksumAlgorithm::Crc32c => ChecksumAlgorithm::Sha256,
            ChecksumAlgorithm::Sha256 => ChecksumAlgorithm::Crc32c,
        };
        let wrong = m
            .upload_part_checked(&k, &id, 2, p2.clone(), &algorithm.checksum(b"other"))
            .await;
        let unchecked = m.upload_part(&k, &id, 3, p2.clone()).await;
        let mismatched = m
            .upload_part_checked(&k, &id, 4, p2.clone(), &other.checksum(&p2))
            .await;
        if strict {
            let err = wrong.expect_err("a checksum of other bytes is refused");
            assert!(matches!(err, Error::BadDigest { .. }), "{err:?}");
            assert!(err.is_transient(), "a bad digest is worth sending again");
            unchecked.expect_err("a part without the upload's checksum is refused");
            mismatched.expect_err("a part with another algorithm is refused");
            let listed = m.list_parts(&k, &id).await.unwrap();
            assert_eq!(
                listed
                    .iter()
                    .map(|p| (p.part_number, p.checksum.clone()))
                    .collect::<Vec<_>>(),
                [(1, Some(algorithm.checksum(&p1)))],
                "refused parts are not stored; stored ones are listed with their checksum"
            );
        } else {
            // Parts 3 and 4 stay out of the completion below.
            assert!(
                wrong.is_ok() && unchecked.is_ok() && mismatched.is_ok(),
                "the server now checks part checksums: pass true"
            );
        }
        let u2 = m
            .upload_part_checked(&k, &id, 2, p2.clone(), &algorithm.checksum(&p2))
            .await
            .expect("a matching checksum");
        let named = [CompletedPart::from(&u1), CompletedPart::from(&u2)];
        if strict {
            let bare = [
                CompletedPart::new(1, u1.etag.clone()),
                CompletedPart::new(2, u2.etag.clone()),
            ];
            m.complete_multipart_upload(&k, &id, &bare)
                .await
                .expect_err("a completion must name the checksums");
        }
        let meta = m.complete_multipart_upload(&k, &id, &named).await.unwrap();
        assert_eq!(meta.size, (MIB5 + p2.len()) as u64);
        let got = s.get(&k).await.unwrap().body;
        assert_eq!(&got[..MIB5], &p1[..]);
        assert_eq!(&got[MIB5..], &p2[..]);
        s.delete(&k).await.unwrap();
    }
    // An upload created without an algorithm takes no part checksum.
    if strict {
        let k = key(prefix, "checksums-none");
        let id = m
            .create_multipart_upload(&k, PutOptions::default())
            .await
            .unwrap();
        let body = Bytes::from_static(b"x");
        m.upload_part_checked(
            &k,
            &id,
            1,
            body.clone(),
            &ChecksumAlgorithm::Crc32c.checksum(&body),
        )
        .await
        .expect_err("checksum type mismatch: the upload declared none");
        m.abort_multipart_upload(&k, &id).await.unwrap();
    }
}

/// Uploads in progress are listed by prefix until completed or aborted.
pub async fn lists_uploads_in_progress(m: &dyn MultipartStore, prefix: &str) {
    let a = key(prefix, "in-progress/a");
    let b = key(prefix, "in-progress/b");
    let elsewhere = key(prefix, "elsewhere/c");
    let id_a = m
        .create_multipart_upload(&a, PutOptions::default())
        .await
        .expect("create a");
    let id_b = m
        .create_multipart_upload(&b, PutOptions::default())
        .await
        .expect("create b");
    let id_c = m
        .create_multipart_upload(&elsewhere, PutOptions::default())
        .await
        .expect("create c");
    let listed = m
        .list_multipart_uploads(&format!("{prefix}/in-progress/"))
        .await
        .expect("list");
    let ids: Vec<(&str, &str)> = listed
        .iter()
        .map(|u| (u.key.as_str(), u.upload_id.as_str()))
        .collect();
    assert_eq!(
        ids,
        [(a.as_str(), id_a.as_str()), (b.as_str(), id_b.as_str())],
        "both uploads under the prefix, by key"
    );
    // moto 5.1 reports a fixed initiation time (2010-11-10): only check
    // that one is given.
    assert!(
        listed.iter().all(|u| u
            .initiated
            .is_some_and(|t| t > std::time::SystemTime::UNIX_EPOCH)),
        "initiation times: {listed:?}"
    );
    m.abort_multipart_upload(&a, &id_a).await.expect("abort a");
    let left = m
        .list_multipart_uploads(&format!("{prefix}/in-progress/"))
        .await
        .expect("list again");
    assert_eq!(left.len(), 1, "an aborted upload is not listed");
    assert_eq!(left[0].upload_id, id_b);
    m.abort_multipart_upload(&b, &id_b).await.expect("abort b");
    m.abort_multipart_upload(&elsewhere, &id_c)
        .await
        .expect("abort c");
}

fn part(seed: u8, len: usize) -> Bytes {
    (0..len)
        .map(|i| seed.wrapping_add((i % 239) as u8))
        .collect::<Vec<_>>()
        .into()
}

/// Parts uploaded out of order, one replaced, listed in order and completed
/// into the exact bytes, with the S3 multipart ETag.
pub async fn upload_list_complete(m: &dyn MultipartStore, s: &dyn Storage, prefix: &str) {
    let k = key(prefix, "mpu/object.bin");
    let id = m
        .create_multipart_upload(
            &k,
            PutOptions::default()
                .with_content_type("image/jpeg")
                .with_metadata("upload-route", "video"),
        )
        .await
        .expect("create");
    let (p1, p2, p3) = (part(1, MIB5), part(2, MIB5), part(3, 1234));
    let u3 = m.upload_part(&k, &id, 3, p3.clone()).await.expect("part 3");
    assert_eq!(u3.etag, etag_of(&p3), "part ETag is the part's MD5");
    assert_eq!(u3.size, 1234);
    m.upload_part(&k, &id, 1, part(9, 10))
        .await
        .expect("part 1, first try");
    let u1 = m
        .upload_part(&k, &id, 1, p1.clone())
        .await
        .expect("part 1 again");
    let u2 = m.upload_part(&k, &id, 2, p2.clone()).await.expect("part 2");
    let listed = m.list_parts(&k, &id).await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|p| (p.part_number, p.size))
            .collect::<Vec<_>>(),
        [(1, MIB5 as u64), (2, MIB5 as u64), (3, 1234)],
        "parts listed in order, the replaced one with its new size"
    );
    let done: Vec<CompletedPart> = [&u1, &u2, &u3]
        .iter()
        .map(|u| CompletedPart {
            part_number: u.part_number,
            etag: format!("\"{}\"", u.etag),
            checksum: None,
        })
        .collect();
    let meta = m
        .complete_multipart_upload(&k, &id, &done)
        .await
        .expect("complete");
    let expect_etag =
        multipart_etag([u1.etag.as_str(), u2.etag.as_str(), u3.etag.as_str()]).expect("etag");
    assert_eq!(meta.etag, expect_etag, "multipart ETag");
    assert_eq!(meta.size, (2 * MIB5 + 1234) as u64);
    let got = s.get(&k).await.expect("get completed");
    assert_eq!(got.body.len(), 2 * MIB5 + 1234);
    assert_eq!(&got.body[..MIB5], p1.as_ref(), "part 1 bytes");
    assert_eq!(&got.body[MIB5..2 * MIB5], p2.as_ref(), "part 2 bytes");
    assert_eq!(&got.body[2 * MIB5..], p3.as_ref(), "part 3 bytes");
    assert_eq!(got.meta.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(
        got.meta.metadata.get("upload-route").map(String::as_str),
        Some("video"),
        "metadata given at CreateMultipartUpload is the object's"
    );
    assert!(
        matches!(m.list_parts(&k, &id).await, Err(Error::NoSuchUpload { .. })),
        "a completed upload is gone"
    );
    s.delete(&k).await.expect("cleanup");
}

/// Bad completions are refused with S3's errors, and the upload survives
/// them.
pub async fn refuses_bad_completions(m: &dyn MultipartStore, prefix: &str) {
    let k = key(prefix, "mpu/bad.bin");
    let id = m
        .create_multipart_upload(&k, PutOptions::default())
        .await
        .expect("create");
    let small = m.upload_part(&k, &id, 1, part(1, 100)).await.expect("p1");
    let last = m.upload_part(&k, &id, 2, part(2, 100)).await.expect("p2");
    let cp = |n: u32, e: &str| CompletedPart {
        part_number: n,
        etag: e.to_owned(),
        checksum: None,
    };
    let err = m
        .complete_multipart_upload(&k, &id, &[cp(1, &small.etag), cp(2, &last.etag)])
        .await
        .expect_err("first part under 5 MiB");
    assert!(
        matches!(err, Error::EntityTooSmall { part_number: 1, .. }),
        "{err:?}"
    );
    let err = m
        .complete_multipart_upload(&k, &id, &[cp(2, &last.etag), cp(1, &small.etag)])
        .await
        .expect_err("descending");
    assert!(matches!(err, Error::InvalidPartOrder), "{err:?}");
    let err = m
        .complete_multipart_upload(&k, &id, &[])
        .await
        .expect_err("empty");
    assert!(matches!(err, Error::InvalidPartOrder), "{err:?}");
    let err = m
        .complete_multipart_upload(&k, &id, &[cp(1, "00000000000000000000000000000000")])
        .await
        .expect_err("wrong ETag");
    assert!(
        matches!(err, Error::InvalidPart { part_number: 1, .. }),
        "{err:?}"
    );
    let err = m
        .complete_multipart_upload(&k, &id, &[cp(7, &small.etag)])
        .await
        .expect_err("never uploaded");
    assert!(
        matches!(err, Error::InvalidPart { part_number: 7, .. }),
        "{err:?}"
    );
    for bad in [0, 10_001] {
        let err = m
            .upload_part(&k, &id, bad, part(0, 1))
            .await
            .expect_err("bad part number");
        assert!(matches!(err, Error::InvalidPartNumber { .. }), "{err:?}");
    }
    // A single small part is a valid (last) part.
    let meta = m
        .complete_multipart_upload(&k, &id, &[cp(1, &small.etag)])
        .await
        .expect("one small part completes");
    assert_eq!(meta.size, 100);
}

/// Abort ends the upload: its parts cannot be listed or completed, and no
/// object appears.
pub async fn abort_frees_upload(m: &dyn MultipartStore, s: &dyn Storage, prefix: &str) {
    let k = key(prefix, "mpu/aborted.bin");
    let id = m
        .create_multipart_upload(&k, PutOptions::default())
        .await
        .expect("create");
    let p = m.upload_part(&k, &id, 1, part(5, 10)).await.expect("part");
    m.abort_multipart_upload(&k, &id).await.expect("abort");
    assert!(matches!(
        m.list_parts(&k, &id).await,
        Err(Error::NoSuchUpload { .. })
    ));
    let err = m
        .complete_multipart_upload(
            &k,
            &id,
            &[CompletedPart {
                part_number: 1,
                etag: p.etag,
                checksum: None,
            }],
        )
        .await
        .expect_err("complete after abort");
    assert!(matches!(err, Error::NoSuchUpload { .. }), "{err:?}");
    assert!(
        matches!(s.head(&k).await, Err(Error::NotFound { .. })),
        "no object"
    );
    assert!(matches!(
        m.abort_multipart_upload(&k, &id).await,
        Err(Error::NoSuchUpload { .. })
    ));
}

/// A completion repeated after it succeeded (its response was lost, say)
/// reports the same object instead of failing; a different part list for
/// the finished upload is still `NoSuchUpload`.
pub async fn completion_can_be_repeated(m: &dyn MultipartStore, s: &dyn Storage, prefix: &str) {
    let k = key(prefix, "mpu/repeated.bin");
    let id = m
        .create_multipart_upload(&k, PutOptions::default())
        .await
        .expect("create");
    let p1 = m.upload_part(&k, &id, 1, part(7, MIB5)).await.expect("p1");
    let p2 = m.upload_part(&k, &id, 2, part(8, 10)).await.expect("p2");
    let done = [
        CompletedPart {
            part_number: 1,
            etag: p1.etag.clone(),
            checksum: None,
        },
        CompletedPart {
            part_number: 2,
            etag: p2.etag.clone(),
            checksum: None,
        },
    ];
    let first = m
        .complete_multipart_upload(&k, &id, &done)
        .await
        .expect("complete");
    let again = m
        .complete_multipart_upload(&k, &id, &done)
        .await
        .expect("the same completion again succeeds");
    assert_eq!(again.etag, first.etag);
    assert_eq!(again.size, (MIB5 + 10) as u64);
    let err = m
        .complete_multipart_upload(&k, &id, &done[..1])
        .await
        .expect_err("another part list for a finished upload");
    assert!(matches!(err, Error::NoSuchUpload { .. }), "{err:?}");
    s.delete(&k).await.expect("cleanup");
}

/// A create-only completion (`If-None-Match: *`) over an existing object
/// is refused with `AlreadyExists` and leaves that object as it was; on a
/// free key it makes the object, and repeating it answers with that
/// object.
pub async fn create_only_completion_never_replaces(
    m: &dyn MultipartStore,
    s: &dyn Storage,
    prefix: &str,
) {
    let k = key(prefix, "mpu/create-only.bin");
    let original = Bytes::from_static(b"the original, scanned and processed");
    s.put(&k, original.clone(), PutOptions::default())
        .await
        .expect("original");
    let id = m
        .create_multipart_upload(&k, PutOptions::default())
        .await
        .expect("create");
    let p1 = m.upload_part(&k, &id, 1, part(9, 10)).await.expect("p1");
    let done = [CompletedPart {
        part_number: 1,
        etag: p1.etag.clone(),
        checksum: None,
    }];
    let err = m
        .complete_multipart_upload_create_only(&k, &id, &done)
        .await
        .expect_err("an object is there");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert_eq!(
        s.get(&k).await.expect("original stays").body,
        original,
        "the original is not replaced"
    );
    m.abort_multipart_upload(&k, &id).await.expect("abort");
    s.delete(&k).await.expect("free the key");
    let id = m
        .create_multipart_upload(&k, PutOptions::default())
        .await
        .expect("create again");
    let p1 = m.upload_part(&k, &id, 1, part(9, 10)).await.expect("p1");
    let done = [CompletedPart {
        part_number: 1,
        etag: p1.etag,
        checksum: None,
    }];
    let made = m
        .complete_multipart_upload_create_only(&k, &id, &done)
        .await
        .expect("a free key");
    let again = m
        .complete_multipart_upload_create_only(&k, &id, &done)
        .await
        .expect("repeating a completion that succeeded");
    assert_eq!((again.etag, again.size), (made.etag, 10));
    s.delete(&k).await.expect("cleanup");
}

/// UploadPart refuses an unknown upload ID, and an upload ID used with a
/// key other than its own, with `NoSuchUpload` (as AWS S3 does; moto
/// 5.1 accepts the part for the other key and answers an unknown ID with a
/// 500, so its tests leave this check out).
pub async fn upload_part_needs_its_upload(m: &dyn MultipartStore, prefix: &str) {
    let k = key(prefix, "mpu/owned.bin");
    let id = m
        .create_multipart_upload(&k, PutOptions::default())
        .await
        .expect("create");
    let other = key(prefix, "mpu/other.bin");
    assert!(
        matches!(
            m.upload_part(&other, &id, 1, part(0, 1)).await,
            Err(Error::NoSuchUpload { .. })
        ),
        "upload ID used with another key"
    );
    assert!(matches!(
        m.upload_part(&k, "no-such-upload", 1, part(0, 1)).await,
        Err(Error::NoSuchUpload { .. })
    ));
    m.abort_multipart_upload(&k, &id).await.expect("abort");
}
