//! `MemoryQueue` against a model of SQS visibility semantics, on random
//! sequences of send, receive, delete, change-visibility and clock steps
//! (tokio's paused clock, so time is exact).
//!
//! The model: a sent message is visible at once; a receive hands out up to
//! `max` visible messages, oldest-visible first, each at most once, makes
//! each invisible for the visibility timeout and gives it a new receipt
//! handle (the older ones stop working); a delete with the current handle
//! removes the message, with an older one does nothing; a change of
//! visibility needs the current handle of a message in flight; after
//! `max_receive_count` receives the next receive moves the message to the
//! dead-letter queue instead.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use upload_pipeline::{Error, MemoryQueue, Queue, ReceiveOptions};

#[derive(Debug, Clone)]
enum Op {
    Send,
    Receive { max: u32, visibility_s: u64 },
    Delete { handle: usize },
    ChangeVisibility { handle: usize, timeout_s: u64 },
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Send),
        3 => (1..=10u32, 0..=5u64).prop_map(|(max, visibility_s)| Op::Receive { max, visibility_s }),
        2 => any::<usize>().prop_map(|handle| Op::Delete { handle }),
        1 => (any::<usize>(), 0..=5u64)
            .prop_map(|(handle, timeout_s)| Op::ChangeVisibility { handle, timeout_s }),
        2 => (0..=6_000u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Debug)]
struct ModelMessage {
    visible_at_ms: u64,
    receives: u32,
    /// Index in `handles` of the current delivery.
    current: Option<usize>,
}

struct Model {
    now_ms: u64,
    /// seq -> message; seq is send order.
    messages: BTreeMap<u64, ModelMessage>,
    next_seq: u64,
    dlq: u32,
    max_receives: u32,
}

fn run(ops: Vec<Op>, max_receives: u32) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let dlq = Arc::new(MemoryQueue::new("dlq"));
        let q = MemoryQueue::new("q")
            .with_dead_letter_queue(max_receives, dlq.clone())
            .unwrap();
        let mut m = Model {
            now_ms: 0,
            messages: BTreeMap::new(),
            next_seq: 0,
            dlq: 0,
            max_receives,
        };
        // Real message id -> model seq; handles issued: (handle, seq).
        let mut ids: BTreeMap<String, u64> = BTreeMap::new();
        let mut handles: Vec<(String, u64)> = Vec::new();
        for op in ops {
            match op {
                Op::Send => {
                    let id = q.send(format!("m{}", m.next_seq)).await.unwrap();
                    ids.insert(id, m.next_seq);
                    m.messages.insert(
                        m.next_seq,
                        ModelMessage {
                            visible_at_ms: m.now_ms,
                            receives: 0,
                            current: None,
                        },
                    );
                    m.next_seq += 1;
                }
                Op::Receive { max, visibility_s } => {
                    let got = q
                        .receive(
                            &ReceiveOptions::default()
                                .with_max_messages(max)
                                .with_wait(Duration::ZERO)
                                .with_visibility_timeout(Duration::from_secs(visibility_s)),
                        )
                        .await
                        .unwrap();
                    // The model's pick: visible ones, oldest-visible first;
                    // those received max_receives times go to the DLQ.
                    let mut visible: Vec<(u64, u64)> = m
                        .messages
                        .iter()
                        .filter(|(_, x)| x.visible_at_ms <= m.now_ms)
                        .map(|(&seq, x)| (x.visible_at_ms, seq))
                        .collect();
                    visible.sort();
                    let mut expected = Vec::new();
                    for (_, seq) in visible {
                        if expected.len() == max as usize {
                            break;
                        }
                        if m.messages[&seq].receives >= m.max_receives {
                            m.messages.remove(&seq);
                            m.dlq += 1;
                            continue;
                        }
                        expected.push(seq);
                    }
                    let got_seqs: Vec<u64> = got.iter().map(|g| ids[&g.message_id]).collect();
                    prop_assert_eq!(&got_seqs, &expected, "at {} ms", m.now_ms);
                    for (g, seq) in got.iter().zip(expected) {
                        let x = m.messages.get_mut(&seq).unwrap();
                        x.receives += 1;
                        x.visible_at_ms = m.now_ms + visibility_s * 1000;
                        x.current = Some(handles.len());
                        prop_assert_eq!(g.receive_count, x.receives);
                        prop_assert_eq!(&g.body, &format!("m{seq}"));
                        handles.push((g.receipt_handle.clone(), seq));
                    }
                }
                Op::Delete { handle } if !handles.is_empty() => {
                    let i = handle % handles.len();
                    let (h, seq) = handles[i].clone();
                    q.delete(&h).await.unwrap();
                    if m.messages.get(&seq).is_some_and(|x| x.current == Some(i)) {
                        m.messages.remove(&seq);
                    }
                }
                Op::ChangeVisibility { handle, timeout_s } if !handles.is_empty() => {
                    let i = handle % handles.len();
                    let (h, seq) = handles[i].clone();
                    let got = q
                        .change_visibility(&h, Duration::from_secs(timeout_s))
                        .await;
                    let now = m.now_ms;
                    match m.messages.get_mut(&seq) {
                        Some(x) if x.current == Some(i) && x.visible_at_ms > now => {
                            prop_assert!(got.is_ok(), "{:?}", got);
                            x.visible_at_ms = now + timeout_s * 1000;
                        }
                        _ => {
                            let refused = matches!(got, Err(Error::MessageNotInflight { .. }));
                            prop_assert!(refused, "{:?}", got);
                        }
                    }
                }
                Op::Advance { ms } => {
                    tokio::time::advance(Duration::from_millis(ms)).await;
                    m.now_ms += ms;
                }
                Op::Delete { .. } | Op::ChangeVisibility { .. } => {}
            }
            // Invariants after every step.
            prop_assert_eq!(q.len(), m.messages.len());
            let in_flight = m
                .messages
                .values()
                .filter(|x| x.visible_at_ms > m.now_ms)
                .count();
            prop_assert_eq!(q.in_flight(), in_flight);
            prop_assert_eq!(dlq.len(), m.dlq as usize);
        }
        // A forged handle is refused, not taken for a stale one.
        let forged = q.delete("not-a-handle").await;
        let refused = matches!(forged, Err(Error::ReceiptHandleIsInvalid { .. }));
        prop_assert!(refused, "{:?}", forged);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn memory_queue_follows_the_visibility_model(
        ops in proptest::collection::vec(op(), 1..80),
        max_receives in 1..=4u32,
    ) {
        run(ops, max_receives)?;
    }
}
