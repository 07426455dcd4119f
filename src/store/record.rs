//! The store's one binary encoding of writes, shared by the write-ahead log (a frame's
//! payload, [`super::wal`]) and the redb file (a chunk's value, [`super::redb`]):
//!
//! ```text
//! records = count u32 LE ‖ record*count
//! record  = kind u8 (1 put, 2 delete) ‖ mod_revision u64 ‖ create_revision u64
//!           ‖ key_len u32 ‖ key ‖ value_len u32 ‖ value        (a delete has no value)
//! ```
//!
//! All integers are little-endian. The encoding carries no checksum of its own: a WAL frame
//! adds a CRC32, and redb checksums its pages.

use std::sync::Arc;

use super::{Event, EventType, KeyValue};

const PUT: u8 = 1;
const DELETE: u8 = 2;

/// Appends records to a buffer; the count in front is written by [`RecordWriter::finish`].
pub(super) struct RecordWriter<'a> {
    buf: &'a mut Vec<u8>,
    /// Where this sequence's count goes in `buf`.
    start: usize,
    count: u32,
}

impl<'a> RecordWriter<'a> {
    /// Start a sequence of records at the end of `buf`.
    pub(super) fn new(buf: &'a mut Vec<u8>) -> RecordWriter<'a> {
        let start = buf.len();
        buf.extend_from_slice(&[0; COUNT_BYTES]);
        RecordWriter {
            buf,
            start,
            count: 0,
        }
    }

    /// Append `event` (a delete keeps only its key and revisions).
    pub(super) fn push(&mut self, event: &Event) {
        let kv = &event.kv;
        let (kind, value): (u8, &[u8]) = match event.kind {
            EventType::Put => (PUT, &kv.value),
            EventType::Delete => (DELETE, &[]),
        };
        self.buf.push(kind);
        self.buf.extend_from_slice(&kv.mod_revision.to_le_bytes());
        self.buf
            .extend_from_slice(&kv.create_revision.to_le_bytes());
        self.buf
            .extend_from_slice(&(kv.key.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(kv.key.as_bytes());
        self.buf
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(value);
        self.count += 1;
    }

    /// Bytes appended so far, the count included.
    pub(super) fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Write the count in front of the records.
    pub(super) fn finish(self) {
        self.buf[self.start..self.start + COUNT_BYTES].copy_from_slice(&self.count.to_le_bytes());
    }
}

/// Bytes a sequence's count takes.
pub(super) const COUNT_BYTES: usize = 4;

/// Bytes `event` takes as a record: `kind ‖ mod_revision ‖ create_revision ‖ key_len ‖ key ‖
/// value_len ‖ value` (a delete's value is empty).
pub(super) fn encoded_len(event: &Event) -> usize {
    let value = match event.kind {
        EventType::Put => event.kv.value.len(),
        EventType::Delete => 0,
    };
    1 + 8 + 8 + 4 + event.kv.key.len() + 4 + value
}

/// Encode `events` as one sequence at the end of `buf`.
pub(super) fn encode<'e>(buf: &mut Vec<u8>, events: impl IntoIterator<Item = &'e Arc<Event>>) {
    let mut writer = RecordWriter::new(buf);
    for event in events {
        writer.push(event);
    }
    writer.finish();
}

/// Decode a sequence of records (the whole of `bytes`). A decoded delete carries an empty
/// value. Returns a description of the first damage found.
pub(super) fn decode(bytes: &[u8]) -> Result<Vec<Arc<Event>>, String> {
    struct Reader<'a>(&'a [u8]);
    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            if self.0.len() < n {
                return Err(format!(
                    "record ends early: need {n} bytes, {} left",
                    self.0.len()
                ));
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Ok(head)
        }
        fn u32(&mut self) -> Result<u32, String> {
            Ok(u32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            ))
        }
        fn u64(&mut self) -> Result<u64, String> {
            Ok(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            ))
        }
    }
    let mut r = Reader(bytes);
    let count = r.u32()? as usize;
    let mut events = Vec::with_capacity(count.min(bytes.len()));
    for _ in 0..count {
        let kind = match r.take(1)?[0] {
            PUT => EventType::Put,
            DELETE => EventType::Delete,
            other => return Err(format!("unknown event kind {other}")),
        };
        let mod_revision = r.u64()?;
        let create_revision = r.u64()?;
        let key_len = r.u32()? as usize;
        let key = std::str::from_utf8(r.take(key_len)?)
            .map_err(|e| format!("key is not UTF-8: {e}"))?
            .to_string();
        let value_len = r.u32()? as usize;
        let value = Arc::from(r.take(value_len)?);
        events.push(Arc::new(Event {
            kind,
            kv: KeyValue {
                key,
                value,
                create_revision,
                mod_revision,
            },
            prev: None,
        }));
    }
    if !r.0.is_empty() {
        return Err(format!("{} trailing bytes after {count} events", r.0.len()));
    }
    Ok(events)
}
