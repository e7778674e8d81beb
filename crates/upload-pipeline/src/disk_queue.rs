//! [`DiskQueue`]: a durable [`Queue`] with SQS's semantics, kept in one
//! file by the embedded database [redb](https://www.redb.org) (feature
//! `disk-queue`). The queue of the one-binary local mode: events survive a
//! restart and are delivered again like SQS's.
//!
//! # Guarantees
//!
//! - **Committed before it returns**: every send, receive (the receive
//!   count and the visibility timeout it sets), delete and visibility
//!   change is one redb write transaction committed with
//!   [`redb::Durability::Immediate`] (the data and the commit slot are
//!   fsynced before `commit` returns), so an acknowledged operation
//!   survives a crash or a power cut, not only a clean exit. The price is
//!   one fsync per operation; `delete_batch` deletes its whole list in one
//!   transaction (one fsync).
//! - **Wall-clock times**: when a message becomes visible is stored as
//!   UNIX milliseconds, so a message whose visibility timeout ran out
//!   while the process was down is delivered again at once after a
//!   restart, with its receive count carried on. A wall clock set back
//!   keeps in-flight messages hidden longer by as much.
//! - **Receipt handles** are `{message id}:{seq}:{delivery}:{tag}` (hex),
//!   the tag an HMAC-SHA256 (truncated to 128 bits) of the queue name,
//!   sequence number and delivery number under a 256-bit key drawn from
//!   the OS's random source when the file is created and **kept in the
//!   file**: a handle issued before a restart still deletes its message
//!   (or changes its visibility) after it, as long as it is the message's
//!   current delivery. A handle of an earlier delivery deletes nothing but
//!   succeeds, and cannot change the visibility (as in SQS).
//! - **Dead-letter queue in the same file**: with
//!   [`DiskQueue::with_dead_letter_queue`], a message received
//!   `max_receive_count` times and not deleted moves to the dead-letter
//!   queue, a second queue in the same database file, in the write
//!   transaction of the receive that finds it: it is never in both queues
//!   nor in neither.
//! - **O(log n) receive**: messages are indexed by `(visible_at, seq)` as
//!   [`MemoryQueue`](crate::MemoryQueue) does in memory.
//! - **One process**: the file is locked while open; a second
//!   [`DiskQueue::open`] of it, from another process or this one, fails
//!   with [`Error::QueueFileLocked`]. Long polls wake on sends made
//!   through this process's handles.
//!
//! Database calls block, so each operation runs on tokio's blocking pool
//! (`spawn_blocking`).

use std::collections::HashSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio::time::Instant;
use upload_core::EventSink;

use crate::error::{Error, Result};
use crate::queue::{
    DEFAULT_VISIBILITY_TIMEOUT, Queue, QueueMessage, ReceiveOptions, check_body,
    check_max_receive_count, check_visibility,
};

/// File-wide settings: the format version and the receipt-handle key.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Per-queue counters: `{queue}/seq` (next sequence number) and
/// `{queue}/delivery` (next delivery number).
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
/// The format of the file's tables, stored under `format` in [`META`].
const FORMAT: &[u8] = b"upload-pipeline disk queue 1";
const KEY_LEN: usize = 32;

/// Longest queue name: 80 characters (SQS).
pub const MAX_QUEUE_NAME: usize = 80;

/// The database and what every queue in it shares.
struct Shared {
    db: Database,
    path: PathBuf,
    /// Keys the tags of receipt handles; kept in the file.
    key: [u8; KEY_LEN],
}

/// One queue's tables and its in-process wake-up.
struct Tables {
    name: String,
    /// `seq -> record` ([`Record::encode`]).
    messages: String,
    /// `(visible_at UNIX ms, seq) -> ()`.
    visibility: String,
    seq_counter: String,
    delivery_counter: String,
    /// Wakes this process's long polls on a send or a release.
    notify: Notify,
}

impl Tables {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            messages: format!("queue/{name}/messages"),
            visibility: format!("queue/{name}/visibility"),
            seq_counter: format!("{name}/seq"),
            delivery_counter: format!("{name}/delivery"),
            notify: Notify::new(),
        }
    }

    fn messages(&self) -> TableDefinition<'_, u64, &'static [u8]> {
        TableDefinition::new(&self.messages)
    }

    fn visibility(&self) -> TableDefinition<'_, (u64, u64), ()> {
        TableDefinition::new(&self.visibility)
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    /// When it is (or becomes) visible, UNIX ms.
    visible_at: u64,
    receive_count: u32,
    /// The delivery number of its current receipt handle; 0 before the
    /// first delivery.
    delivery: u64,
    id: String,
    body: String,
}

impl Record {
    /// `visible_at` (8 bytes LE), `receive_count` (4), `delivery` (8),
    /// ID length (1), ID, body.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(21 + self.id.len() + self.body.len());
        out.extend_from_slice(&self.visible_at.to_le_bytes());
        out.extend_from_slice(&self.receive_count.to_le_bytes());
        out.extend_from_slice(&self.delivery.to_le_bytes());
        // Message IDs are UUIDs (36 bytes).
        out.push(self.id.len() as u8);
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(self.body.as_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let visible_at = u64::from_le_bytes(b.get(0..8)?.try_into().ok()?);
        let receive_count = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?);
        let delivery = u64::from_le_bytes(b.get(12..20)?.try_into().ok()?);
        let id_len = usize::from(*b.get(20)?);
        let id = std::str::from_utf8(b.get(21..21 + id_len)?).ok()?;
        let body = std::str::from_utf8(b.get(21 + id_len..)?).ok()?;
        Some(Self {
            visible_at,
            receive_count,
            delivery,
            id: id.to_owned(),
            body: body.to_owned(),
        })
    }
}

/// A durable [`Queue`] in one database file, with SQS's semantics:
/// visibility timeouts, a new receipt handle per delivery, receive counts,
/// long polling, batch deletes and a redrive policy into a dead-letter
/// queue in the same file. See the [module docs](self) for what is
/// committed when, and what survives a restart.
///
/// Cloning is cheap and shares the open database.
#[derive(Clone)]
pub struct DiskQueue {
    shared: Arc<Shared>,
    tables: Arc<Tables>,
    visibility_timeout: Duration,
    /// `max_receive_count` and the dead-letter queue's tables.
    redrive: Option<(u32, Arc<Tables>)>,
}

impl std::fmt::Debug for DiskQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskQueue")
            .field("path", &self.shared.path)
            .field("name", &self.tables.name)
            .field("visibility_timeout", &self.visibility_timeout)
            .field("redrive", &self.redrive.as_ref().map(|(n, t)| (n, &t.name)))
            .finish()
    }
}

/// Milliseconds since the UNIX epoch (0 for a clock before it).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Queue names as SQS allows them: 1..=80 of `A-Z a-z 0-9 - _`.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_QUEUE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidQueueParameter {
            name: "queue_name",
            reason: format!(
                "{:?} is not 1..=80 characters of A-Z, a-z, 0-9, '-' and '_'",
                name.chars().take(100).collect::<String>()
            ),
        })
    }
}

impl Shared {
    /// Maps a database error to this crate's: a locked file, a corrupt
    /// one, otherwise [`Error::QueueUnavailable`] naming the file.
    fn error(&self, e: impl Into<redb::Error>) -> Error {
        map_error(&self.path, e.into(), false)
    }

    fn corrupt(&self, reason: impl Into<String>) -> Error {
        Error::QueueFileCorrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn begin(&self) -> Result<redb::WriteTransaction> {
        let mut txn = self.db.begin_write().map_err(|e| self.error(e))?;
        // redb's default, set explicitly: fsynced when `commit` returns.
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.error(e))?;
        Ok(txn)
    }

    /// The tag of delivery `delivery` of message `seq` of queue `queue`.
    fn tag(&self, queue: &str, seq: u64, delivery: u64) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(queue.as_bytes());
        mac.update(&[0]);
        mac.update(&seq.to_be_bytes());
        mac.update(&delivery.to_be_bytes());
        mac
    }

    fn handle(&self, queue: &str, id: &str, seq: u64, delivery: u64) -> String {
        let tag = self.tag(queue, seq, delivery).finalize().into_bytes();
        let tag = u128::from_be_bytes(tag[..16].try_into().expect("32-byte digest"));
        format!("{id}:{seq:x}:{delivery:x}:{tag:032x}")
    }

    /// `(seq, delivery)` of `handle` if this file's queue `queue` issued
    /// it.
    fn parse_handle(&self, queue: &str, handle: &str) -> Result<(u64, u64)> {
        let parsed = (|| {
            let mut parts = handle.rsplitn(4, ':');
            let tag = parts.next().filter(|t| t.len() == 32)?;
            let tag = u128::from_str_radix(tag, 16).ok()?;
            let delivery = u64::from_str_radix(parts.next()?, 16).ok()?;
            let seq = u64::from_str_radix(parts.next()?, 16).ok()?;
            parts.next()?;
            self.tag(queue, seq, delivery)
                .verify_truncated_left(&tag.to_be_bytes())
                .ok()?;
            Some((seq, delivery))
        })();
        parsed.ok_or_else(|| Error::ReceiptHandleIsInvalid {
            receipt_handle: handle.chars().take(200).collect(),
        })
    }
}

fn map_error(path: &Path, e: redb::Error, opening: bool) -> Error {
    let path = path.to_owned();
    match e {
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
            Error::QueueFileLocked { path }
        }
        redb::Error::Corrupted(_)
        | redb::Error::UpgradeRequired(_)
        | redb::Error::TableTypeMismatch(_)
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TypeDefinitionChanged(_) => Error::QueueFileCorrupt {
            path,
            reason: e.to_string(),
        },
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            Error::QueueFileCorrupt {
                path,
                reason: io.to_string(),
            }
        }
        e if opening => Error::QueueFile {
            path,
            reason: e.to_string(),
        },
        e => Error::QueueUnavailable {
            reason: format!("queue file {}: {e}", path.display()),
        },
    }
}

/// Runs `f` on the blocking pool (database calls block on I/O).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::QueueUnavailable {
            reason: format!("disk queue task failed: {e}"),
        })?
}

/// Creates `queue`'s tables and counters if missing.
fn create_tables(shared: &Shared, t: &Tables) -> Result<()> {
    let txn = shared.begin()?;
    {
        txn.open_table(t.messages()).map_err(|e| shared.error(e))?;
        txn.open_table(t.visibility())
            .map_err(|e| shared.error(e))?;
        let mut counters = txn.open_table(COUNTERS).map_err(|e| shared.error(e))?;
        for name in [&t.seq_counter, &t.delivery_counter] {
            if counters
                .get(name.as_str())
                .map_err(|e| shared.error(e))?
                .is_none()
            {
                counters
                    .insert(name.as_str(), 1)
                    .map_err(|e| shared.error(e))?;
            }
        }
    }
    txn.commit().map_err(|e| shared.error(e))
}

/// Takes the next value of counter `name`.
fn take_counter(
    shared: &Shared,
    counters: &mut redb::Table<'_, &'static str, u64>,
    name: &str,
) -> Result<u64> {
    let n = counters
        .get(name)
        .map_err(|e| shared.error(e))?
        .map(|g| g.value())
        .ok_or_else(|| shared.corrupt(format!("counter {name} is missing")))?;
    counters.insert(name, n + 1).map_err(|e| shared.error(e))?;
    Ok(n)
}

/// What one receive transaction did.
struct Taken {
    messages: Vec<QueueMessage>,
    /// When the next message becomes visible (UNIX ms), if one is stored.
    next_visible: Option<u64>,
    /// Whether messages moved to the dead-letter queue.
    dead_lettered: bool,
}

impl DiskQueue {
    /// Opens queue `name` in the database file at `path`, creating the
    /// file (not its directory) if missing, with the 30 s default
    /// visibility timeout and no dead-letter queue. Messages already in
    /// the file are kept, with their receive counts and visibility.
    ///
    /// The file stays locked until every clone of the queue (and of its
    /// [`dead_letter_queue`](Self::dead_letter_queue)) is dropped. Opening
    /// blocks on file I/O (and, after a crash, on redb's repair of the
    /// file): call it before serving, or from `spawn_blocking`.
    ///
    /// # Errors
    /// [`Error::InvalidQueueParameter`] for a name that is not 1..=80 of
    /// `A-Z a-z 0-9 - _`; [`Error::QueueFileLocked`] when the file is open
    /// in another process or elsewhere in this one;
    /// [`Error::QueueFileCorrupt`] for a file that is not a queue
    /// database or is damaged; [`Error::QueueFile`] when it cannot be
    /// created or read (missing directory, permissions).
    pub fn open(path: impl AsRef<Path>, name: &str) -> Result<Self> {
        check_name(name)?;
        let path = path.as_ref().to_owned();
        let db = Database::builder()
            .create(&path)
            .map_err(|e| map_error(&path, e.into(), true))?;
        let mut shared = Shared {
            db,
            path,
            key: [0; KEY_LEN],
        };
        shared.key = Self::load_key(&shared)?;
        let tables = Arc::new(Tables::new(name));
        create_tables(&shared, &tables)?;
        Ok(Self {
            shared: Arc::new(shared),
            tables,
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            redrive: None,
        })
    }

    /// The receipt-handle key of the file, made and stored with the
    /// format tag on first open.
    fn load_key(shared: &Shared) -> Result<[u8; KEY_LEN]> {
        let txn = shared.begin()?;
        let key = {
            let mut meta = txn.open_table(META).map_err(|e| shared.error(e))?;
            let format = meta
                .get("format")
                .map_err(|e| shared.error(e))?
                .map(|g| g.value().to_vec());
            let stored = meta
                .get("receipt_key")
                .map_err(|e| shared.error(e))?
                .map(|g| g.value().to_vec());
            match (format, stored) {
                (Some(f), Some(k)) if f == FORMAT => k.try_into().map_err(|k: Vec<u8>| {
                    shared.corrupt(format!("receipt key of {} bytes, not {KEY_LEN}", k.len()))
                })?,
                (None, None) => {
                    let mut key = [0; KEY_LEN];
                    OsRng
                        .try_fill_bytes(&mut key)
                        .map_err(|e| Error::QueueFile {
                            path: shared.path.clone(),
                            reason: format!("no random bytes for the receipt-handle key: {e}"),
                        })?;
                    meta.insert("format", FORMAT).map_err(|e| shared.error(e))?;
                    meta.insert("receipt_key", key.as_slice())
                        .map_err(|e| shared.error(e))?;
                    key
                }
                (f, _) => {
                    return Err(shared.corrupt(format!(
                        "not a disk queue of this version (format {:?})",
                        f.map(|f| String::from_utf8_lossy(&f).into_owned())
                    )));
                }
            }
        };
        txn.commit().map_err(|e| shared.error(e))?;
        Ok(key)
    }

    /// Sets the default visibility timeout (not stored: give it at every
    /// open).
    ///
    /// # Errors
    /// [`Error::InvalidQueueParameter`] over 12 h.
    pub fn with_visibility_timeout(mut self, t: Duration) -> Result<Self> {
        check_visibility(t)?;
        self.visibility_timeout = t;
        Ok(self)
    }

    /// Moves a message to the queue `dlq_name` of the same file instead of
    /// delivering it a `max_receive_count + 1`-th time (SQS redrive
    /// policy), in the same write transaction. Reach that queue with
    /// [`dead_letter_queue`](Self::dead_letter_queue). Not stored: give it
    /// at every open.
    ///
    /// # Errors
    /// [`Error::InvalidQueueParameter`] unless `max_receive_count` is
    /// 1..=1000 and `dlq_name` a valid name other than this queue's; the
    /// errors of a write ([`Error::QueueUnavailable`]) when creating its
    /// tables fails.
    pub fn with_dead_letter_queue(
        mut self,
        max_receive_count: u32,
        dlq_name: &str,
    ) -> Result<Self> {
        check_max_receive_count(max_receive_count)?;
        check_name(dlq_name)?;
        if dlq_name == self.tables.name {
            return Err(Error::InvalidQueueParameter {
                name: "dlq_name",
                reason: format!("{dlq_name:?} is the queue itself"),
            });
        }
        let dlq = Arc::new(Tables::new(dlq_name));
        create_tables(&self.shared, &dlq)?;
        self.redrive = Some((max_receive_count, dlq));
        Ok(self)
    }

    /// The dead-letter queue set by
    /// [`with_dead_letter_queue`](Self::with_dead_letter_queue), as a
    /// queue of its own sharing this file (30 s visibility timeout, no
    /// redrive); `None` without a redrive policy. Its long polls wake
    /// when this queue moves a message to it.
    pub fn dead_letter_queue(&self) -> Option<DiskQueue> {
        self.redrive.as_ref().map(|(_, dlq)| DiskQueue {
            shared: self.shared.clone(),
            tables: dlq.clone(),
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            redrive: None,
        })
    }

    /// The queue name.
    pub fn name(&self) -> &str {
        &self.tables.name
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Messages stored, visible or in flight (SQS
    /// `ApproximateNumberOfMessages` + `...NotVisible`). Reads the file
    /// (blocking, short).
    ///
    /// # Errors
    /// [`Error::QueueUnavailable`] or [`Error::QueueFileCorrupt`] when the
    /// file cannot be read.
    pub fn len(&self) -> Result<u64> {
        let s = &self.shared;
        let txn = s.db.begin_read().map_err(|e| s.error(e))?;
        let t = txn
            .open_table(self.tables.messages())
            .map_err(|e| s.error(e))?;
        t.len().map_err(|e| s.error(e))
    }

    /// Whether no message is stored.
    ///
    /// # Errors
    /// As [`len`](Self::len).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Messages received and neither deleted nor visible again. Counts
    /// them (O(in flight), blocking, short).
    ///
    /// # Errors
    /// As [`len`](Self::len).
    pub fn in_flight(&self) -> Result<u64> {
        let s = &self.shared;
        let txn = s.db.begin_read().map_err(|e| s.error(e))?;
        let t = txn
            .open_table(self.tables.visibility())
            .map_err(|e| s.error(e))?;
        let mut n = 0;
        for entry in t
            .range((now_ms().saturating_add(1), 0)..)
            .map_err(|e| s.error(e))?
        {
            entry.map_err(|e| s.error(e))?;
            n += 1;
        }
        Ok(n)
    }

    /// One receive transaction: takes up to `max` visible messages and
    /// hides them for `vt`, moving those over the redrive count to the
    /// dead-letter queue. Commits only when something changed.
    fn take_visible(&self, max: usize, vt: Duration) -> Result<Taken> {
        let s = &*self.shared;
        let q = &*self.tables;
        let now = now_ms();
        let hidden_until = now.saturating_add(millis(vt));
        let txn = s.begin()?;
        let mut out = Vec::new();
        let mut dead_lettered = false;
        let next_visible;
        {
            let mut messages = txn.open_table(q.messages()).map_err(|e| s.error(e))?;
            let mut visibility = txn.open_table(q.visibility()).map_err(|e| s.error(e))?;
            let mut counters = txn.open_table(COUNTERS).map_err(|e| s.error(e))?;
            let mut dlq = match &self.redrive {
                Some((max_rc, t)) => Some((
                    *max_rc,
                    t,
                    txn.open_table(t.messages()).map_err(|e| s.error(e))?,
                    txn.open_table(t.visibility()).map_err(|e| s.error(e))?,
                )),
                None => None,
            };
            // A zero visibility timeout puts a delivered message back among
            // the visible ones: never deliver one twice in one receive.
            let mut delivered = HashSet::new();
            let mut cursor: Option<(u64, u64)> = None;
            let end = Bound::Included((now, u64::MAX));
            while out.len() < max {
                let start = cursor.map_or(Bound::Unbounded, Bound::Excluded);
                let next = visibility
                    .range((start, end))
                    .map_err(|e| s.error(e))?
                    .next()
                    .transpose()
                    .map_err(|e| s.error(e))?
                    .map(|(k, _)| k.value());
                let Some((at, seq)) = next else {
                    break;
                };
                cursor = Some((at, seq));
                if !delivered.insert(seq) {
                    continue;
                }
                let mut rec = messages
                    .get(seq)
                    .map_err(|e| s.error(e))?
                    .and_then(|g| Record::decode(g.value()))
                    .ok_or_else(|| {
                        s.corrupt(format!(
                            "queue {}: message {seq} is indexed but missing or unreadable",
                            q.name
                        ))
                    })?;
                visibility.remove((at, seq)).map_err(|e| s.error(e))?;
                if let Some((max_rc, dlq_tables, dlq_messages, dlq_visibility)) = &mut dlq
                    && rec.receive_count >= *max_rc
                {
                    messages.remove(seq).map_err(|e| s.error(e))?;
                    let dlq_seq = take_counter(s, &mut counters, &dlq_tables.seq_counter)?;
                    tracing::warn!(queue = %q.name, dlq = %dlq_tables.name, message_id = %rec.id, receives = rec.receive_count, "moved to the dead-letter queue");
                    let moved = Record {
                        visible_at: now,
                        receive_count: 0,
                        delivery: 0,
                        id: rec.id,
                        body: rec.body,
                    };
                    dlq_messages
                        .insert(dlq_seq, moved.encode().as_slice())
                        .map_err(|e| s.error(e))?;
                    dlq_visibility
                        .insert((now, dlq_seq), ())
                        .map_err(|e| s.error(e))?;
                    dead_lettered = true;
                    continue;
                }
                let delivery = take_counter(s, &mut counters, &q.delivery_counter)?;
                rec.receive_count = rec.receive_count.saturating_add(1);
                rec.delivery = delivery;
                rec.visible_at = hidden_until;
                messages
                    .insert(seq, rec.encode().as_slice())
                    .map_err(|e| s.error(e))?;
                visibility
                    .insert((hidden_until, seq), ())
                    .map_err(|e| s.error(e))?;
                out.push(QueueMessage {
                    receipt_handle: s.handle(&q.name, &rec.id, seq, delivery),
                    message_id: rec.id,
                    body: rec.body,
                    receive_count: rec.receive_count,
                });
            }
            next_visible = visibility
                .first()
                .map_err(|e| s.error(e))?
                .map(|(k, _)| k.value().0);
        }
        if out.is_empty() && !dead_lettered {
            txn.abort().map_err(|e| s.error(e))?;
        } else {
            txn.commit().map_err(|e| s.error(e))?;
        }
        Ok(Taken {
            messages: out,
            next_visible,
            dead_lettered,
        })
    }

    /// Deletes the current deliveries among `handles` in one transaction.
    fn delete_all(&self, handles: &[(u64, u64)]) -> Result<()> {
        let s = &*self.shared;
        let q = &*self.tables;
        let txn = s.begin()?;
        let mut changed = false;
        {
            let mut messages = txn.open_table(q.messages()).map_err(|e| s.error(e))?;
            let mut visibility = txn.open_table(q.visibility()).map_err(|e| s.error(e))?;
            for &(seq, delivery) in handles {
                let rec = messages
                    .get(seq)
                    .map_err(|e| s.error(e))?
                    .map(|g| Record::decode(g.value()));
                match rec {
                    Some(Some(rec)) if rec.delivery == delivery => {
                        messages.remove(seq).map_err(|e| s.error(e))?;
                        visibility
                            .remove((rec.visible_at, seq))
                            .map_err(|e| s.error(e))?;
                        changed = true;
                    }
                    Some(None) => {
                        return Err(
                            s.corrupt(format!("queue {}: message {seq} is unreadable", q.name))
                        );
                    }
                    // Deleted already, or a handle of an earlier delivery.
                    _ => {}
                }
            }
        }
        if changed {
            txn.commit().map_err(|e| s.error(e))
        } else {
            txn.abort().map_err(|e| s.error(e))
        }
    }

    fn set_visibility(&self, handle: &str, seq: u64, delivery: u64, t: Duration) -> Result<()> {
        let s = &*self.shared;
        let q = &*self.tables;
        let now = now_ms();
        let txn = s.begin()?;
        {
            let mut messages = txn.open_table(q.messages()).map_err(|e| s.error(e))?;
            let mut visibility = txn.open_table(q.visibility()).map_err(|e| s.error(e))?;
            let rec = messages
                .get(seq)
                .map_err(|e| s.error(e))?
                .and_then(|g| Record::decode(g.value()));
            let Some(mut rec) = rec.filter(|r| r.delivery == delivery && r.visible_at > now) else {
                return Err(Error::MessageNotInflight {
                    receipt_handle: handle.chars().take(200).collect(),
                });
            };
            visibility
                .remove((rec.visible_at, seq))
                .map_err(|e| s.error(e))?;
            rec.visible_at = now.saturating_add(millis(t));
            visibility
                .insert((rec.visible_at, seq), ())
                .map_err(|e| s.error(e))?;
            messages
                .insert(seq, rec.encode().as_slice())
                .map_err(|e| s.error(e))?;
        }
        txn.commit().map_err(|e| s.error(e))
    }
}

#[async_trait]
impl Queue for DiskQueue {
    async fn send(&self, body: String) -> Result<String> {
        check_body(&body)?;
        let id = uuid::Uuid::new_v4().to_string();
        let this = self.clone();
        let rec_id = id.clone();
        blocking(move || {
            let s = &*this.shared;
            let q = &*this.tables;
            let now = now_ms();
            let txn = s.begin()?;
            {
                let mut counters = txn.open_table(COUNTERS).map_err(|e| s.error(e))?;
                let seq = take_counter(s, &mut counters, &q.seq_counter)?;
                let rec = Record {
                    visible_at: now,
                    receive_count: 0,
                    delivery: 0,
                    id: rec_id,
                    body,
                };
                txn.open_table(q.messages())
                    .map_err(|e| s.error(e))?
                    .insert(seq, rec.encode().as_slice())
                    .map_err(|e| s.error(e))?;
                txn.open_table(q.visibility())
                    .map_err(|e| s.error(e))?
                    .insert((now, seq), ())
                    .map_err(|e| s.error(e))?;
            }
            txn.commit().map_err(|e| s.error(e))
        })
        .await?;
        self.tables.notify.notify_waiters();
        Ok(id)
    }

    async fn receive(&self, opts: &ReceiveOptions) -> Result<Vec<QueueMessage>> {
        opts.validate()?;
        let vt = opts.visibility_timeout.unwrap_or(self.visibility_timeout);
        let max = opts.max_messages as usize;
        let deadline = Instant::now() + opts.wait;
        loop {
            let notified = self.tables.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let this = self.clone();
            let taken = blocking(move || this.take_visible(max, vt)).await?;
            if taken.dead_lettered
                && let Some((_, dlq)) = &self.redrive
            {
                dlq.notify.notify_waiters();
            }
            if !taken.messages.is_empty() || Instant::now() >= deadline {
                return Ok(taken.messages);
            }
            // Wake when the next message becomes visible (wall clock), on a
            // send through this process, or at the deadline.
            let wake = taken.next_visible.map_or(deadline, |at| {
                let in_ms = at.saturating_sub(now_ms()).max(1);
                deadline.min(Instant::now() + Duration::from_millis(in_ms))
            });
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn delete(&self, receipt_handle: &str) -> Result<()> {
        let parsed = self
            .shared
            .parse_handle(&self.tables.name, receipt_handle)?;
        let this = self.clone();
        blocking(move || this.delete_all(&[parsed])).await
    }

    /// Deletes every valid handle's message in one write transaction (one
    /// fsync), whatever the list's length; an invalid handle fails its
    /// own slot with [`Error::ReceiptHandleIsInvalid`], and a failed
    /// commit fails every other slot with its error.
    async fn delete_batch(&self, receipt_handles: &[String]) -> Vec<Result<()>> {
        let parsed: Vec<Result<(u64, u64)>> = receipt_handles
            .iter()
            .map(|h| self.shared.parse_handle(&self.tables.name, h))
            .collect();
        let valid: Vec<(u64, u64)> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .copied()
            .collect();
        let outcome = if valid.is_empty() {
            Ok(())
        } else {
            let this = self.clone();
            blocking(move || this.delete_all(&valid)).await
        };
        parsed
            .into_iter()
            .map(|p| match (p, &outcome) {
                (Err(e), _) => Err(e),
                (Ok(_), Ok(())) => Ok(()),
                (Ok(_), Err(e)) => Err(copy_error(e)),
            })
            .collect()
    }

    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<()> {
        check_visibility(timeout)?;
        let (seq, delivery) = self
            .shared
            .parse_handle(&self.tables.name, receipt_handle)?;
        let this = self.clone();
        let handle = receipt_handle.to_owned();
        blocking(move || this.set_visibility(&handle, seq, delivery, timeout)).await?;
        self.tables.notify.notify_waiters();
        Ok(())
    }
}

/// The same failure for each slot of a batch.
fn copy_error(e: &Error) -> Error {
    match e {
        Error::QueueFileCorrupt { path, reason } => Error::QueueFileCorrupt {
            path: path.clone(),
            reason: reason.clone(),
        },
        Error::QueueFileLocked { path } => Error::QueueFileLocked { path: path.clone() },
        e => Error::QueueUnavailable {
            reason: e.to_string(),
        },
    }
}

#[async_trait]
impl EventSink for DiskQueue {
    async fn publish(&self, body: String) -> upload_core::Result<()> {
        self.send(body)
            .await
            .map(|_| ())
            .map_err(|e| upload_core::Error::Unavailable {
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_short_ones_are_refused() {
        let r = Record {
            visible_at: 1_700_000_000_123,
            receive_count: 7,
            delivery: 42,
            id: "0b7a3f0e-0000-4000-8000-000000000001".into(),
            body: "{\"Records\":[]} é".into(),
        };
        let b = r.encode();
        assert_eq!(b.len(), 21 + 36 + r.body.len());
        assert_eq!(Record::decode(&b), Some(r));
        assert_eq!(Record::decode(&b[..20]), None);
        assert_eq!(Record::decode(&b[..40]), None, "ID cut short");
    }

    #[test]
    fn queue_names_follow_sqs() {
        for ok in ["events", "uploads-dlq", "a_b-9", &"x".repeat(80)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(81)] {
            assert!(
                matches!(check_name(bad), Err(Error::InvalidQueueParameter { .. })),
                "{bad}"
            );
        }
    }
}
