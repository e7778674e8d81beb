//! Fuzz target `presigned_url`: presigned-URL verification as the local
//! endpoint does it (method, raw path, raw query, headers).
//!
//! Two modes, chosen by the first byte:
//! - raw: the rest is split into method, path, query and headers; the
//!   verifier must answer without panicking, and whatever it accepts must
//!   re-verify to the same result;
//! - mutation: a valid presigned UploadPart URL (`partNumber` and an
//!   `uploadId` with reserved characters) is edited by the input
//!   (bytes replaced, inserted or removed in the path, query or a header);
//!   an edited request that still verifies must mean exactly what the
//!   original meant (same bucket and key as the endpoint splits them, same
//!   part number and upload ID, signed headers and values, access key and
//!   expiry).

#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use upload_core::ObjectKey;
use upload_presign::{Credentials, IncomingRequest, Presigner, Url, Verifier};

struct Setup {
    verifier: Verifier,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    now: SystemTime,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let creds = Credentials::new("AKIDFUZZEXAMPLE", "fuzz-secret-key-0123456789");
        let signed_at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let presigner = Presigner::new(
            Url::parse("http://127.0.0.1:9000").unwrap(),
            "us-east-1",
            creds.clone(),
        )
        .unwrap();
        let key = ObjectKey::new("uploads/alice/a b+c%ü.jpg").unwrap();
        let p = presigner
            .presign_upload_part(
                "uploads",
                &key,
                "upl0ad-ID~with+odd=chars",
                7,
                Duration::from_secs(300),
                signed_at,
            )
            .unwrap();
        let mut headers = p.headers.clone();
        headers.push(("host".into(), "127.0.0.1:9000".into()));
        Setup {
            verifier: Verifier::new("us-east-1", [creds]),
            method: "PUT".into(),
            path: p.url.path().to_owned(),
            query: p.url.query().unwrap_or("").to_owned(),
            headers,
            now: signed_at + Duration::from_secs(10),
        }
    })
}

fn verify(
    v: &Verifier,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    now: SystemTime,
) -> Option<upload_presign::VerifiedRequest> {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    v.verify(
        &IncomingRequest {
            method,
            path,
            query,
            headers: &h,
        },
        now,
    )
    .ok()
}

/// Applies byte edits from `ops` to `s` (lossy: the result stays UTF-8).
fn edit(s: &str, ops: &[u8]) -> String {
    let mut b = s.as_bytes().to_vec();
    for op in ops.chunks(3) {
        let [kind, at, val] = [op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0)];
        if b.is_empty() {
            b.push(val);
            continue;
        }
        let i = at as usize % b.len();
        match kind % 3 {
            0 => b[i] = val,
            1 => b.insert(i, val),
            _ => {
                b.remove(i);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        let mut parts = text.splitn(4, '\n');
        let method = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("");
        let query = parts.next().unwrap_or("");
        let headers: Vec<(String, String)> = parts
            .next()
            .unwrap_or("")
            .split('\n')
            .filter_map(|l| l.split_once(':'))
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        if let Some(ok) = verify(&s.verifier, method, path, query, &headers, s.now) {
            assert_eq!(
                verify(&s.verifier, method, path, query, &headers, s.now),
                Some(ok)
            );
        }
        return;
    }
    let original = verify(&s.verifier, &s.method, &s.path, &s.query, &s.headers, s.now)
        .expect("the untouched URL verifies");
    let (mut path, mut query, mut headers) = (s.path.clone(), s.query.clone(), s.headers.clone());
    let target = rest.first().copied().unwrap_or(0);
    let ops = rest.get(1..).unwrap_or(&[]);
    match target % 4 {
        0 => path = edit(&path, ops),
        1 => query = edit(&query, ops),
        2 => {
            let i = ops.first().copied().unwrap_or(0) as usize % headers.len();
            headers[i].1 = edit(&headers[i].1, ops.get(1..).unwrap_or(&[]));
        }
        _ => {
            let i = ops.first().copied().unwrap_or(0) as usize % headers.len();
            headers[i].0 = edit(&headers[i].0, ops.get(1..).unwrap_or(&[]));
        }
    }
    if let Some(v) = verify(&s.verifier, &s.method, &path, &query, &headers, s.now) {
        assert_eq!(v, original, "an edited request verified with another meaning");
        // The signed headers still say what they said.
        for name in &v.signed_headers {
            let get = |hs: &[(String, String)]| {
                hs.iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_owned())
                    .collect::<Vec<_>>()
            };
            assert_eq!(get(&headers), get(&s.headers), "signed header {name} changed");
        }
        // Bucket and key as the local endpoint splits them: at the first
        // `/` of the raw path, then percent-decoded.
        let split = |p: &str| {
            let rest = p.strip_prefix('/').unwrap_or(p);
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            let decode = |x: &str| percent_encoding::percent_decode_str(x).collect::<Vec<u8>>();
            (decode(bucket), decode(key))
        };
        assert_eq!(split(&path), split(&s.path), "bucket or key changed: {path:?}");
        assert_eq!(v.param("partNumber"), Some("7"));
        assert_eq!(v.param("uploadId"), Some("upl0ad-ID~with+odd=chars"));
    }
});
