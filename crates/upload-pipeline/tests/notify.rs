//! Notifications: the payload (JSON shape, IDs) and the Notifier
//! conformance suite on MemoryNotifier, ChannelNotifier and
//! QueueNotifier<MemoryQueue>.

use std::sync::Arc;

use upload_core::ObjectKey;
use upload_pipeline::manifest::Outcome;
use upload_pipeline::notify::{NotificationKind, NotificationOutcome};
use upload_pipeline::testkit::notify::{
    self as suite, ChannelDelivered, MemoryDelivered, Promises, QueueDelivered,
};
use upload_pipeline::{
    ChannelNotifier, MemoryNotifier, MemoryQueue, Notifier, NotifyError, QueueNotifier,
    UploadContext, UploadNotification,
};

#[tokio::test]
async fn memory_notifier_passes_the_notifier_suite() {
    let n = MemoryNotifier::new();
    suite::run_all(&n, &mut MemoryDelivered(&n), &Promises::queue()).await;
}

#[tokio::test]
async fn channel_notifier_passes_the_notifier_suite() {
    let (n, rx) = ChannelNotifier::new(64);
    let promises = Promises {
        ordered: true,
        max_bytes: None,
    };
    suite::run_all(&n, &mut ChannelDelivered(rx), &promises).await;
}

#[tokio::test(start_paused = true)]
async fn queue_notifier_on_a_memory_queue_passes_the_notifier_suite() {
    let q = Arc::new(MemoryQueue::new("notifications"));
    let n = QueueNotifier::new(q.clone());
    suite::run_all(&n, &mut QueueDelivered(q.as_ref()), &Promises::queue()).await;
    assert!(q.is_empty());
}

#[tokio::test]
async fn arc_and_box_of_a_notifier_are_notifiers() {
    let m = Arc::new(MemoryNotifier::new());
    let boxed: Box<dyn Notifier> = Box::new(m.clone());
    let n = &suite::sample_notifications()[0];
    boxed.notify(n).await.unwrap();
    m.notify(n).await.unwrap();
    assert_eq!(m.ids(), [n.id(), n.id()]);
}

#[test]
fn processed_payload_has_the_standard_webhooks_shape() {
    let n = &suite::sample_notifications()[0];
    let v: serde_json::Value = serde_json::from_str(&n.to_json().unwrap()).unwrap();
    assert_eq!(v["type"], "upload.processed");
    assert_eq!(v["timestamp"], "2026-12-04T13:05:00Z");
    let d = &v["data"];
    assert_eq!(d["bucket"], "uploads");
    assert_eq!(d["key"], "uploads/u1/a.jpg");
    assert_eq!(d["etag"], "9bb58f26192e4ba00f01e2e7b136bbd8");
    assert_eq!(d["size"], 123_456);
    assert!(d.get("version_id").is_none(), "absent, not null: {d}");
    assert_eq!(d["route"], "avatar");
    assert_eq!(d["owner"], "user-42");
    assert_eq!(d["metadata"]["album"], "Été \"2026\" ✓");
    assert_eq!(d["content_type"], "image/jpeg");
    assert_eq!(d["variants"][0]["name"], "thumb");
    assert_eq!(
        d["variants"][0]["key"],
        "uploads/u1/a.jpg/thumb-9bb58f26192e4ba0-abcd.webp"
    );
    assert_eq!(d["variants"][0]["content_type"], "image/webp");
    assert_eq!(d["variants"][0]["width"], 128);
    assert_eq!(d["variants"][0]["height"], 96);
    assert_eq!(d["variants"][0]["bytes"], 2048);
    assert_eq!(d["variants"][1]["name"], "medium");
    assert_eq!(d["image"]["width"], 4032);
    assert_eq!(d["image"]["placeholder"]["dominant_color"], "#c81e1e");
    for absent in ["reason", "signature", "verdict", "quarantine"] {
        assert!(d.get(absent).is_none(), "{absent}: {d}");
    }
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["data", "timestamp", "type"]);
}

#[test]
fn rejected_quarantined_and_removed_carry_their_facts() {
    let all = suite::sample_notifications();
    let json = |n: &UploadNotification| -> serde_json::Value {
        serde_json::from_str(&n.to_json().unwrap()).unwrap()
    };
    let rejected = json(&all[1]);
    assert_eq!(rejected["type"], "upload.rejected");
    assert_eq!(
        rejected["data"]["reason"],
        "type image/svg+xml is not allowed"
    );
    assert!(rejected["data"].get("variants").is_none());
    let infected = json(&all[2]);
    assert_eq!(infected["type"], "upload.quarantined");
    assert_eq!(infected["data"]["verdict"], "infected");
    assert_eq!(infected["data"]["signature"], "Eicar-Test-Signature");
    assert_eq!(
        infected["data"]["quarantine"]["key"],
        "quarantine/uploads/u1/c.zip"
    );
    let unscannable = json(&all[3]);
    assert_eq!(unscannable["data"]["verdict"], "unscannable");
    assert_eq!(unscannable["data"]["reason"], "archive nested too deep");
    assert!(unscannable["data"].get("signature").is_none());
    let removed = json(&all[4]);
    assert_eq!(removed["type"], "upload.removed");
    assert_eq!(
        removed["data"]["version_id"],
        "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    );
    assert!(removed["data"].get("etag").is_none());
    assert!(removed["data"].get("size").is_none());
    assert_eq!(removed["data"]["owner"], "user-42");
    assert!(matches!(
        all[2].outcome,
        NotificationOutcome::Quarantined {
            verdict: Outcome::Infected,
            ..
        }
    ));
}

#[test]
fn ids_depend_on_bucket_key_version_and_type_only() {
    let m = suite::sample_manifest("uploads/u1/a.jpg", Outcome::Clean);
    let a = UploadNotification::from_manifest(&m, suite::sample_context());
    let id = a.id();
    assert!(id.starts_with("upl_"), "{id}");
    assert_eq!(id.len(), 36);
    assert!(
        id[4..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    // Another context, another time: same record, same ID.
    let mut b = UploadNotification::from_manifest(&m, UploadContext::default());
    b.timestamp = "2030-01-01T00:00:00Z".into();
    assert_eq!(b.id(), id);
    // Another ETag (unversioned), another key, bucket or type: another ID.
    let mut other = m.clone();
    other.source.etag = "0000".into();
    let mut ids = vec![
        id.clone(),
        UploadNotification::from_manifest(&other, UploadContext::default()).id(),
    ];
    let mut other = m.clone();
    other.source.bucket = "uploads2".into();
    ids.push(UploadNotification::from_manifest(&other, UploadContext::default()).id());
    let mut other = m.clone();
    other.verdict = Outcome::Rejected;
    ids.push(UploadNotification::from_manifest(&other, UploadContext::default()).id());
    let key = ObjectKey::new("uploads/u1/a.jpg").unwrap();
    ids.push(
        UploadNotification::removed("uploads", key.clone(), None, UploadContext::default()).id(),
    );
    // With a version ID, it replaces the ETag: a new version is a new ID,
    // the same version with another ETag string is not.
    let mut v1 = m.clone();
    v1.source.version_id = Some("v1".into());
    let v1_id = UploadNotification::from_manifest(&v1, UploadContext::default()).id();
    ids.push(v1_id.clone());
    let mut v1_other_etag = v1.clone();
    v1_other_etag.source.etag = "ffff".into();
    assert_eq!(
        UploadNotification::from_manifest(&v1_other_etag, UploadContext::default()).id(),
        v1_id
    );
    // Separators are unambiguous: "a" + "b/c" differs from "a/b" + "c".
    let k1 = UploadNotification::removed(
        "a",
        ObjectKey::new("b/c").unwrap(),
        None,
        UploadContext::default(),
    );
    let k2 = UploadNotification::removed(
        "a/b",
        ObjectKey::new("c").unwrap(),
        None,
        UploadContext::default(),
    );
    ids.push(k1.id());
    ids.push(k2.id());
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "all distinct");
    // Pinned: a change of the ID scheme breaks receivers' deduplication.
    let pinned =
        UploadNotification::removed("uploads", key, Some("v1".into()), UploadContext::default());
    assert_eq!(pinned.id(), pinned_id());
}

/// `upl_` + the first 32 hex digits of SHA-256 over the length-prefixed
/// fields, computed independently here.
fn pinned_id() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in [
        "upload-notification/1",
        "uploads",
        "uploads/u1/a.jpg",
        "version",
        "v1",
        "upload.removed",
    ] {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f);
    }
    format!("upl_{}", &hex(&h.finalize())[..32])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn payload_round_trips_and_bad_payloads_are_typed_errors() {
    for n in suite::sample_notifications() {
        let back = UploadNotification::from_json(&n.to_json().unwrap()).unwrap();
        assert_eq!(back, n);
        assert_eq!(back.id(), n.id());
    }
    for bad in [
        "",
        "{}",
        r#"{"type":"upload.exploded","timestamp":"t","data":{"bucket":"b","key":"k"}}"#,
        r#"{"type":"upload.removed","timestamp":"t","data":{"key":"k"}}"#,
        r#"{"type":"upload.quarantined","timestamp":"t","data":{"bucket":"b","key":"k","verdict":"clean"}}"#,
    ] {
        let err = UploadNotification::from_json(bad).unwrap_err();
        assert!(
            matches!(err, NotifyError::Malformed { .. }),
            "{bad}: {err:?}"
        );
    }
    let minimal = UploadNotification::from_json(
        r#"{"type":"upload.processed","timestamp":"t","data":{"bucket":"b","key":"k"}}"#,
    )
    .unwrap();
    assert_eq!(minimal.kind(), NotificationKind::Processed);
    assert_eq!(minimal.context, UploadContext::default());
}

#[tokio::test]
async fn characters_sqs_refuses_are_escaped() {
    let mut ctx = UploadContext::default();
    ctx.metadata
        .insert("odd".into(), "a\u{FFFF}b\u{FFFE}\u{1}".into());
    let n = UploadNotification::removed("b", ObjectKey::new("k").unwrap(), None, ctx);
    let json = n.to_json().unwrap();
    assert!(json.contains(r"a\uffffb\ufffe\u0001"), "{json}");
    assert_eq!(UploadNotification::from_json(&json).unwrap(), n);
    let q = Arc::new(MemoryQueue::new("q"));
    QueueNotifier::new(q.clone()).notify(&n).await.unwrap();
    assert_eq!(q.len(), 1, "the queue accepted it");
}
