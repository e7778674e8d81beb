//! Fuzz target `post_policy`: verification of a presigned POST form (the
//! fields a browser sends before the file).
//!
//! Two modes, chosen by the first byte:
//! - raw: the rest becomes form fields (`name=value` lines) and a file
//!   size; verification must answer with S3's status codes (400 or 403)
//!   and never panic;
//! - mutation: a valid form for `uploads/alice/` keys, `image/jpeg` and
//!   at most 1 MiB is edited (a field removed, duplicated, renamed, its
//!   value changed, or a field added) and the file size chosen by the
//!   input. A form that still verifies must keep the policy, signature,
//!   credential, date and content type exactly, the signed key, no
//!   unsigned metadata, and a file size within the signed 1..=1 MiB.

#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use upload_core::{ObjectKey, UploadPolicy};
use upload_presign::{Credentials, Presigner, Url, Verifier, presign_post_upload};

struct Setup {
    verifier: Verifier,
    fields: Vec<(String, String)>,
    now: SystemTime,
}

const MAX: u64 = 1 << 20;

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let creds = Credentials::new("AKIDFUZZEXAMPLE", "fuzz-secret-key-0123456789");
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let presigner = Presigner::new(
            Url::parse("http://127.0.0.1:9000").unwrap(),
            "us-east-1",
            creds.clone(),
        )
        .unwrap();
        let policy = UploadPolicy::new(["image/jpeg"], MAX).unwrap();
        let key = ObjectKey::new("uploads/alice/photo.jpg").unwrap();
        let post =
            presign_post_upload(&presigner, &policy, "uploads", &key, "image/jpeg", None, at)
                .unwrap();
        Setup {
            verifier: Verifier::new("us-east-1", [creds]),
            fields: post.fields,
            now: at + Duration::from_secs(10),
        }
    })
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        let fields: Vec<(String, String)> = text
            .split('\n')
            .filter_map(|l| l.split_once('='))
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        let size = rest.len() as u64 * 997;
        if let Err(e) = s.verifier.verify_post("uploads", &fields, size, s.now) {
            assert!(e.status == 400 || e.status == 403, "{e:?}");
        }
        return;
    }
    let mut fields = s.fields.clone();
    let mut it = rest.iter().copied();
    let mut next = || it.next().unwrap_or(0);
    let size = match next() % 4 {
        0 => 0,
        1 => MAX,
        2 => MAX + 1,
        _ => u64::from(next()) * 4099,
    };
    for _ in 0..(next() % 3) {
        let i = next() as usize % fields.len().max(1);
        match next() % 5 {
            0 if !fields.is_empty() => {
                fields.remove(i);
            }
            1 if !fields.is_empty() => {
                let f = fields[i].clone();
                fields.push(f);
            }
            2 if !fields.is_empty() => {
                let pos = next() as usize;
                let v = &mut fields[i].1;
                let at = pos % (v.len() + 1);
                let c = char::from(next());
                if v.is_char_boundary(at) {
                    v.insert(at, c);
                }
            }
            3 if !fields.is_empty() => {
                let upper = fields[i].0.to_uppercase();
                fields[i].0 = upper;
            }
            _ => fields.push((format!("x-amz-meta-f{}", next()), "v".into())),
        }
    }
    if let Ok(v) = s.verifier.verify_post("uploads", &fields, size, s.now) {
        for name in [
            "policy",
            "x-amz-signature",
            "x-amz-credential",
            "x-amz-date",
            "x-amz-algorithm",
            "content-type",
        ] {
            assert_eq!(field(&fields, name), field(&s.fields, name), "{name} changed");
        }
        assert_eq!(v.key.as_str(), "uploads/alice/photo.jpg", "the signed key changed");
        assert_eq!(v.content_type.as_deref(), Some("image/jpeg"));
        assert!(v.metadata.is_empty(), "unsigned metadata accepted: {:?}", v.metadata);
        assert!((1..=MAX).contains(&size), "size {size} accepted");
    }
});
