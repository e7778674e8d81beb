//! Parts sent over HTTP to presigned part URLs on the local endpoint, then
//! completed into the exact object.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use upload_core::{
    ChecksumAlgorithm, CompletedPart, MemoryStorage, MultipartStore, ObjectKey, PutOptions, Storage,
};
use upload_multipart::{
    DEFAULT_PART_SIZE, MemoryMultipartStore, PartPlan, presign_parts, presign_planned_parts,
};
use upload_presign::headers::PartHeaders;
use upload_presign::{Credentials, LocalEndpoint, Presigner, Verifier};

#[tokio::test]
async fn parts_through_presigned_urls() {
    let creds = Credentials::random();
    let storage = Arc::new(MemoryStorage::new("uploads").unwrap());
    let mp = Arc::new(MemoryMultipartStore::new(storage.clone()));
    let endpoint = LocalEndpoint::new(Verifier::new("us-east-1", [creds.clone()]))
        .with_bucket(storage.clone(), Some(mp.clone()))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let presigner = Presigner::new(endpoint.url(), "us-east-1", creds).unwrap();
    let key = ObjectKey::new("uploads/big.bin").unwrap();
    let data: Vec<u8> = (0..(DEFAULT_PART_SIZE as usize * 2 + 777))
        .map(|i| (i * 7 % 256) as u8)
        .collect();
    let plan = PartPlan::new(data.len() as u64, DEFAULT_PART_SIZE).unwrap();
    assert_eq!(plan.part_count(), 3);
    let id = mp
        .create_multipart_upload(
            &key,
            PutOptions::default()
                .with_content_type("application/octet-stream")
                .with_checksum(ChecksumAlgorithm::Crc32c),
        )
        .await
        .unwrap();
    let urls = presign_planned_parts(
        &presigner,
        "uploads",
        &key,
        &id,
        &plan,
        1..=plan.part_count(),
        Duration::from_secs(60),
        SystemTime::now(),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let mut done = Vec::new();
    // Each planned part URL signs its exact size: a part of another size
    // is refused by storage at once (403, as S3 does), not at completion.
    assert_eq!(
        urls[2].request.headers,
        [("content-length".to_owned(), "777".to_owned())]
    );
    for wrong in [1000, DEFAULT_PART_SIZE as usize + 1] {
        let r = http
            .put(urls[0].request.url.clone())
            .body(data[..wrong].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("<Code>SignatureDoesNotMatch</Code>")
        );
    }
    // A checksum header the URL does not sign is refused as S3 refuses
    // unsigned x-amz-* headers, before the body is looked at.
    let first = &data[..DEFAULT_PART_SIZE as usize];
    let r = http
        .put(urls[0].request.url.clone())
        .header(
            "x-amz-checksum-crc32c",
            ChecksumAlgorithm::Crc32c.checksum(first).value,
        )
        .body(first.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<HeadersNotSigned>x-amz-checksum-crc32c</HeadersNotSigned>")
    );
    // A part whose signed CRC-32C header does not match its body is
    // refused as S3 refuses it (400 BadDigest) and not stored.
    let part_url = |n: u32, len: u64, checksum: Option<upload_core::PartChecksum>| {
        let mut h = PartHeaders::default().with_content_length(len);
        if let Some(c) = checksum {
            h = h.with_checksum(c);
        }
        presigner
            .presign_upload_part_with(
                "uploads",
                &key,
                &id,
                n,
                &h,
                Duration::from_secs(60),
                SystemTime::now(),
            )
            .unwrap()
    };
    let other = ChecksumAlgorithm::Crc32c.checksum(b"other");
    let u = part_url(1, 1000, Some(other.clone()));
    let r = http
        .put(u.url.clone())
        .header(other.algorithm.header_name(), other.value.clone())
        .body(data[..1000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("<Code>BadDigest</Code>"));
    assert!(mp.list_parts(&key, &id).await.unwrap().is_empty());
    for p in plan.parts() {
        let body = data[p.offset as usize..(p.offset + p.len) as usize].to_vec();
        // The upload was created for CRC-32C: a part without it, or with
        // SHA-256 instead, is refused (S3's checksum type mismatch).
        let sha = ChecksumAlgorithm::Sha256.checksum(&body);
        for bad in [None, Some(sha)] {
            let signed = part_url(p.number, p.len, bad.clone());
            let mut req = http.put(signed.url.clone());
            if let Some(c) = &bad {
                req = req.header(c.algorithm.header_name(), c.value.clone());
            }
            let r = req.body(body.clone()).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 400);
            assert!(r.text().await.unwrap().contains("Checksum Type mismatch"));
        }
        let checksum = ChecksumAlgorithm::Crc32c.checksum(&body);
        let signed = part_url(p.number, p.len, Some(checksum.clone()));
        let mut req = http.put(signed.url.clone());
        for (n, v) in &signed.headers {
            req = req.header(n.as_str(), v.as_str());
        }
        let r = req.body(body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        done.push(CompletedPart {
            part_number: p.number,
            etag: r.headers()["etag"].to_str().unwrap().to_owned(),
            checksum: Some(checksum),
        });
    }
    // A part URL for another upload ID is refused by the store, not stored.
    let stray = presign_parts(
        &presigner,
        "uploads",
        &key,
        "bogus",
        1..=1,
        Duration::from_secs(60),
        SystemTime::now(),
    )
    .unwrap();
    let r = http
        .put(stray[0].request.url.clone())
        .body(vec![1u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<Code>NoSuchUpload</Code>")
    );

    let listed = mp.list_parts(&key, &id).await.unwrap();
    assert_eq!(listed.len(), 3);
    let meta = mp
        .complete_multipart_upload(&key, &id, &done)
        .await
        .unwrap();
    assert!(meta.etag.ends_with("-3"), "{}", meta.etag);
    assert_eq!(
        storage.get(&key).await.unwrap().body.as_ref(),
        data.as_slice()
    );

    assert!(
        presign_parts(
            &presigner,
            "uploads",
            &key,
            &id,
            0..=1,
            Duration::from_secs(60),
            SystemTime::now()
        )
        .is_err()
    );
    assert!(
        presign_parts(
            &presigner,
            "uploads",
            &key,
            &id,
            1..=1001,
            Duration::from_secs(60),
            SystemTime::now()
        )
        .is_err()
    );
    endpoint.shutdown().await.unwrap();
}
