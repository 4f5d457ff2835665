//! Reading segments and ack files back at start-up, tolerating damage.
//!
//! A torn or corrupt record at the tail of a segment (the usual result of a
//! crash mid-write) is cut off with a warning. Damage in the middle — a record
//! whose CRC fails but whose successors are intact — is skipped with an error
//! log by scanning forward for the next record that checks out. The reader
//! never panics on what it finds.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::store::record::{
    ACK_RECORD, MAX_RECORD, QueueId, RECORD_HEADER, StoredMessage, decode_ack, decode_message,
    record_crc,
};

/// A message record found in a segment, with its offset.
pub struct Found {
    /// Offset of the record within the segment.
    pub offset: u32,
    /// The decoded message.
    pub message: StoredMessage,
}

/// Path of segment `number` in `dir`.
pub fn segment_path(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("{number:010}.seg"))
}

/// Path of the ack file of segment `number` in `dir`.
pub fn ack_path(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("{number:010}.ack"))
}

/// Segment numbers present in `dir`, ascending. Ack files left without their
/// segment (a crash between the two deletions) are removed, so a later
/// segment reusing the number never inherits stale acks.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u32>> {
    let numbered = |suffix: &str| -> io::Result<Vec<u32>> {
        let mut numbers: Vec<u32> = std::fs::read_dir(dir)?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(suffix)?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    };
    let segments = numbered(".seg")?;
    for orphan in numbered(".ack")?
        .into_iter()
        .filter(|n| !segments.contains(n))
    {
        tracing::warn!(segment = orphan, "ack file without its segment removed");
        std::fs::remove_file(ack_path(dir, orphan))?;
    }
    Ok(segments)
}

/// Reads every intact message record of a segment, truncating a damaged tail.
pub fn read_segment(path: &Path) -> io::Result<Vec<Found>> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let data = Bytes::from(data);
    let mut found = Vec::new();
    let mut at = 0usize;
    let mut valid_end = 0usize;
    while at < data.len() {
        match record_at(&data, at) {
            Some((message, next)) => {
                found.push(Found {
                    offset: at as u32,
                    message,
                });
                at = next;
                valid_end = next;
            }
            None => match skip_damaged(&data, at) {
                Some(next) => {
                    tracing::error!(
                        segment = %path.display(),
                        from = at,
                        to = next,
                        "corrupt records in the middle of a segment skipped"
                    );
                    at = next;
                }
                None => break,
            },
        }
    }
    if valid_end < data.len() {
        tracing::warn!(
            segment = %path.display(),
            kept = valid_end,
            dropped = data.len() - valid_end,
            "torn or corrupt tail truncated"
        );
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(valid_end as u64)?;
    }
    Ok(found)
}

/// The record starting at `at` if its length and CRC check out, with the offset after it.
fn record_at(data: &Bytes, at: usize) -> Option<(StoredMessage, usize)> {
    let header = data.get(at..at + RECORD_HEADER)?;
    let len = u32::from_be_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(header[4..8].try_into().ok()?);
    if len > MAX_RECORD || at + RECORD_HEADER + len > data.len() {
        return None;
    }
    let payload = data.slice(at + RECORD_HEADER..at + RECORD_HEADER + len);
    if record_crc(at as u32, &payload) != crc {
        return None;
    }
    Some((decode_message(payload)?, at + RECORD_HEADER + len))
}

/// Where the next intact record after a damaged one at `at` starts, if any.
///
/// If the damaged record's length still leads to an intact record, the whole
/// record is skipped, so bytes inside its body are never taken for records;
/// only when the length itself is damaged are later offsets searched.
fn skip_damaged(data: &Bytes, at: usize) -> Option<usize> {
    let len = data
        .get(at..at + 4)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")));
    if let Some(len) = len {
        let next = at + RECORD_HEADER + len as usize;
        if next < data.len() && record_at(data, next).is_some() {
            return Some(next);
        }
    }
    (at + 1..data.len()).find(|&offset| record_at(data, offset).is_some())
}

/// Reads the (queue, offset) pairs settled in an ack file; damaged records are skipped.
pub fn read_acks(path: &Path) -> io::Result<Vec<(QueueId, u32)>> {
    let mut data = Vec::new();
    match File::open(path) {
        Ok(mut file) => file.read_to_end(&mut data)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let whole = data.len() / ACK_RECORD * ACK_RECORD;
    let mut acks = Vec::with_capacity(whole / ACK_RECORD);
    let mut damaged = 0;
    for chunk in data[..whole].chunks_exact(ACK_RECORD) {
        match decode_ack(chunk.try_into().expect("exact chunk")) {
            Some(ack) => acks.push(ack),
            None => damaged += 1,
        }
    }
    if damaged > 0 || whole < data.len() {
        tracing::warn!(ack_file = %path.display(), damaged, "damaged ack records ignored");
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(whole as u64)?;
    }
    Ok(acks)
}
