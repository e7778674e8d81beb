//! Presigned PUT URLs per second on one core: our sans-IO
//! [`upload_presign::Presigner`] against `aws-sdk-s3`'s `presigned()` and
//! against `rusty-s3`, in the same run, each compared in the form the other
//! library returns: `presign_url` (the URL as text) against the SDK, whose
//! `PresignedRequest::uri()` is text; `presign` (a parsed `url::Url`)
//! against rusty-s3, which returns a `Url`. And how far our text path is
//! from the cached-key floor, measured in the same run.
//!
//! ```text
//! cargo run --release -p upload-benches --bin bench-presign [URLS_PER_ROUND]
//! ```
//!
//! Every signer presigns the same PUTs (same credentials, time, bucket,
//! keys, `Content-Type` signed, 300 s expiry). Before timing, the run checks
//! that our URL is byte-identical to the SDK's (given the SDK's `x-id`
//! parameter) and carries the same signature as rusty-s3's. Each round
//! signs `URLS_PER_ROUND` URLs (default 20,000; the SDK does a tenth, it is
//! that much slower) with distinct keys; rounds alternate between the
//! signers, 7 rounds each, on a single-threaded runtime (one core), each
//! timed with the thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`), so that
//! other processes on a busy machine do not count.
//!
//! **The floor** is the least work a SigV4 presigner does per URL once its
//! signing key is derived and cached: one HMAC-SHA256 keyed with the
//! cached 32-byte signing key (`Hmac::<Sha256>::new_from_slice`, the
//! `hmac` and `sha2` crates our signer uses, so the same SHA-NI code) over
//! a string to sign of exactly our length
//! (`AWS4-HMAC-SHA256\n{X-Amz-Date}\n{scope}\n{64 hex digits}`, one per key,
//! built before timing), and the MAC hex-encoded into a stack buffer. No
//! canonical request is hashed and no URL written: a signer does both on
//! top of it. `floor_ratio` is our text path's time per URL over the
//! floor's.
//!
//! It prints each signer's median rate and ends with one line:
//!
//! ```text
//! RESULT ours_urls_per_s=... ours_parsed_urls_per_s=... aws_sdk_urls_per_s=... rusty_s3_urls_per_s=... speedup_vs_aws_sdk=... speedup_vs_rusty_s3=... ours_ns_per_url=... floor_ns_per_url=... floor_ratio=...
//! ```

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use rusty_s3::S3Action as _;
use sha2::{Digest, Sha256};
use upload_benches::{median, thread_cpu_secs};
use upload_core::ObjectKey;
use upload_core::s3::AwsSettings;
use upload_core::s3::aws_config::{self, BehaviorVersion, Region};
use upload_core::s3::aws_sdk_s3::Client;
use upload_core::s3::aws_sdk_s3::config::Credentials as SdkCredentials;
use upload_core::s3::aws_sdk_s3::presigning::PresigningConfig;
use upload_presign::sigv4::{Method, PresignRequest};
use upload_presign::{Credentials, Presigner, Url};

const AK: &str = "AKIAIOSFODNN7EXAMPLE";
const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const ENDPOINT: &str = "https://s3.eu-west-3.amazonaws.com";
const REGION: &str = "eu-west-3";
const BUCKET: &str = "upload-sdk-bench";
const EXPIRES: Duration = Duration::from_secs(300);
const ROUNDS: usize = 7;

fn request(key: &ObjectKey) -> PresignRequest {
    PresignRequest::new(Method::Put, BUCKET, key, EXPIRES)
        .with_query("x-id", "PutObject")
        .with_header("content-type", "image/jpeg")
}

/// Our URL as text (`presign_url`), as the SDK gives it (`uri()`).
fn ours(p: &Presigner, key: &ObjectKey, now: SystemTime) -> String {
    p.presign_url(&request(key), now)
        .expect("valid request")
        .url
}

/// Our URL parsed into a `url::Url` (`presign`), as rusty-s3 gives it.
fn ours_parsed(p: &Presigner, key: &ObjectKey, now: SystemTime) -> url::Url {
    p.presign(&request(key), now).expect("valid request").url
}

async fn sdk(c: &Client, key: &ObjectKey, now: SystemTime) -> String {
    let cfg = PresigningConfig::builder()
        .start_time(now)
        .expires_in(EXPIRES)
        .build()
        .expect("valid expiry");
    c.put_object()
        .bucket(BUCKET)
        .key(key.as_str())
        .content_type("image/jpeg")
        .presigned(cfg)
        .await
        .expect("presigned")
        .uri()
        .to_owned()
}

fn rusty(
    b: &rusty_s3::Bucket,
    c: &rusty_s3::Credentials,
    key: &ObjectKey,
    now: &jiff::Timestamp,
) -> String {
    let mut action = b.put_object(Some(c), key.as_str());
    action.headers_mut().insert("content-type", "image/jpeg");
    action.sign_with_time(EXPIRES, now).into()
}

/// The floor: one HMAC-SHA256 keyed with the cached signing key over
/// `string_to_sign`, hex-encoded (see the module docs). Returns a byte of
/// the hex, so that the work is not optimized away.
fn floor(signing_key: &[u8; 32], string_to_sign: &[u8]) -> u8 {
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_key).expect("any key length");
    mac.update(string_to_sign);
    let mut hex = [0u8; 64];
    hex::encode_to_slice(mac.finalize().into_bytes(), &mut hex).expect("64 hex digits");
    hex[63]
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn signature(url: &str) -> String {
    Url::parse(url)
        .expect("a URL")
        .query_pairs()
        .find(|(k, _)| k == "X-Amz-Signature")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn main() -> ExitCode {
    let per_round = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => 20_000,
        Some(Ok(n)) if n >= 10 => n,
        Some(_) => {
            eprintln!("usage: bench-presign [URLS_PER_ROUND >= 10]");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sdk_client = rt.block_on(async {
        let cfg = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(SdkCredentials::new(AK, SK, None, None, "bench"))
            .load()
            .await;
        AwsSettings::default()
            .with_endpoint_url(ENDPOINT)
            .with_force_path_style(true)
            .s3_client(&cfg)
    });
    let presigner = Presigner::new(
        Url::parse(ENDPOINT).expect("url"),
        REGION,
        Credentials::new(AK, SK),
    )
    .expect("presigner");
    let rusty_bucket = rusty_s3::Bucket::new(
        Url::parse(ENDPOINT).expect("url"),
        rusty_s3::UrlStyle::Path,
        BUCKET,
        REGION,
    )
    .expect("bucket");
    let rusty_creds = rusty_s3::Credentials::new(AK, SK);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let jiff_now = jiff::Timestamp::from_second(1_767_225_600).expect("time");
    let keys: Vec<ObjectKey> = (0..per_round)
        .map(|i| {
            ObjectKey::new(format!(
                "uploads/user-{}/{:032x}.jpg",
                i % 97,
                i as u128 * 0x9E37_79B9_7F4A_7C15
            ))
            .expect("key")
        })
        .collect();

    // Same URLs before any timing.
    for key in keys.iter().take(50) {
        let a = ours(&presigner, key, now);
        let b = rt.block_on(sdk(&sdk_client, key, now));
        if a != b || ours_parsed(&presigner, key, now).as_str() != a {
            eprintln!("error: our URL differs from aws-sdk-s3's:\n  ours {a}\n  sdk  {b}");
            return ExitCode::FAILURE;
        }
        let c = rusty(&rusty_bucket, &rusty_creds, key, &jiff_now);
        // rusty-s3 adds no x-id, so only the signature over its own
        // canonical request can match: check that it equals ours for the
        // same request without x-id.
        let plain = presigner
            .presign(
                &PresignRequest::new(Method::Put, BUCKET, key, EXPIRES)
                    .with_header("content-type", "image/jpeg"),
                now,
            )
            .expect("presign");
        if signature(c.as_str()) != signature(plain.url.as_str()) {
            eprintln!(
                "error: rusty-s3's signature differs from ours:\n  ours  {}\n  rusty {c}",
                plain.url
            );
            return ExitCode::FAILURE;
        }
    }
    println!("checked: 50 URLs byte-identical to aws-sdk-s3's, signatures identical to rusty-s3's");

    // The floor's inputs: the signing key of the run's date, derived once,
    // and one string to sign per key, of our format and length.
    let signing_key = [REGION.as_bytes(), b"s3", b"aws4_request"].iter().fold(
        hmac(format!("AWS4{SK}").as_bytes(), b"20260101"),
        |k, part| hmac(&k, part),
    );
    let strings_to_sign: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| {
            format!(
                "AWS4-HMAC-SHA256\n20260101T000000Z\n20260101/{REGION}/s3/aws4_request\n{}",
                hex::encode(Sha256::digest(k.as_str().as_bytes()))
            )
            .into_bytes()
        })
        .collect();

    let sdk_n = (per_round / 10).max(10);
    let mut rates: [Vec<f64>; 5] = Default::default();
    let mut sink = 0usize;
    for _ in 0..ROUNDS {
        let t = thread_cpu_secs();
        for k in &keys {
            sink += ours(&presigner, k, now).len();
        }
        rates[0].push(keys.len() as f64 / (thread_cpu_secs() - t));

        let t = thread_cpu_secs();
        rt.block_on(async {
            for k in &keys[..sdk_n] {
                sink += sdk(&sdk_client, k, now).await.len();
            }
        });
        rates[1].push(sdk_n as f64 / (thread_cpu_secs() - t));

        let t = thread_cpu_secs();
        for k in &keys {
            sink += rusty(&rusty_bucket, &rusty_creds, k, &jiff_now)
                .as_str()
                .len();
        }
        rates[2].push(keys.len() as f64 / (thread_cpu_secs() - t));

        let t = thread_cpu_secs();
        for k in &keys {
            sink += ours_parsed(&presigner, k, now).as_str().len();
        }
        rates[3].push(keys.len() as f64 / (thread_cpu_secs() - t));

        let t = thread_cpu_secs();
        for sts in &strings_to_sign {
            sink += usize::from(floor(&signing_key, sts));
        }
        rates[4].push(keys.len() as f64 / (thread_cpu_secs() - t));
    }
    let [o, s, r, op, f] = rates.map(|mut v| median(&mut v).unwrap_or(f64::NAN));
    println!(
        "ours, text  {o:>12.0} URLs/s (median of {ROUNDS} rounds of {}; presign_url)",
        keys.len()
    );
    println!(
        "ours, Url   {op:>12.0} URLs/s (median of {ROUNDS} rounds of {}; presign)",
        keys.len()
    );
    println!("aws-sdk-s3  {s:>12.0} URLs/s (median of {ROUNDS} rounds of {sdk_n})");
    println!(
        "rusty-s3    {r:>12.0} URLs/s (median of {ROUNDS} rounds of {})",
        keys.len()
    );
    println!(
        "floor       {f:>12.0} URLs/s (median of {ROUNDS} rounds of {}; one cached-key HMAC-SHA256 + hex per URL)",
        keys.len()
    );
    let (ours_ns, floor_ns) = (1e9 / o, 1e9 / f);
    println!(
        "ours, text: {ours_ns:.0} ns per URL, {:.2}x the floor's {floor_ns:.0} ns",
        ours_ns / floor_ns
    );
    println!("(checksum of outputs: {sink})");
    println!(
        "RESULT ours_urls_per_s={o:.0} ours_parsed_urls_per_s={op:.0} aws_sdk_urls_per_s={s:.0} rusty_s3_urls_per_s={r:.0} speedup_vs_aws_sdk={:.2} speedup_vs_rusty_s3={:.2} ours_ns_per_url={ours_ns:.0} floor_ns_per_url={floor_ns:.0} floor_ratio={:.2}",
        o / s,
        op / r,
        ours_ns / floor_ns
    );
    ExitCode::SUCCESS
}
