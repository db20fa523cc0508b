//! A raft snapshot message cut into the parts of `RaftTransport.SendSnapshot`, and put back
//! together; pure, no I/O. The sender takes the data out of the message and sends the rest as
//! the header, then the data in chunks, then the data's checksum. The receiver checks each
//! part against the header, keeps the data received so far (a retry of the same snapshot
//! resumes where the last call stopped), and gives back the whole message once its size and
//! checksum agree with what the sender declared.

use std::fmt;

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};

use crate::api::snapshot_part::Part;
use crate::api::{SnapshotChunk, SnapshotEnd, SnapshotHeader, SnapshotPart};
use crate::limits::SNAPSHOT_CHUNK_BYTES_MAX;

/// What tells one snapshot's data from another's: raft's index and term of the snapshot, and
/// the data's size. The checksum at the end confirms that data joined from two calls under
/// one key were one snapshot's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotKey {
    pub index: u64,
    pub term: u64,
    pub data_bytes: u64,
}

/// Why a part of a snapshot was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PartError {
    /// The header's message does not decode, or is not a snapshot message.
    NotASnapshot(String),
    /// The header's message carries data of its own: the data comes in chunks.
    DataInHeader,
    /// The declared data is larger than this node takes.
    TooLarge { data_bytes: u64, max: u64 },
    /// A chunk larger than any sender cuts.
    ChunkTooLarge { bytes: usize, max: usize },
    /// A chunk that does not start where the data received so far ends.
    OutOfOrder { offset: u64, expected: u64 },
    /// A chunk that runs past the declared size.
    PastEnd { end: u64, data_bytes: u64 },
    /// The end came before the declared data had.
    Short { received: u64, data_bytes: u64 },
    /// The data received does not have the checksum the sender computed.
    Checksum { received: u32, sent: u32 },
    /// A later call took this snapshot over (or replaced it with another).
    Superseded,
}

impl fmt::Display for PartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartError::NotASnapshot(why) => write!(f, "the header holds no snapshot message: {why}"),
            PartError::DataInHeader => f.write_str("the header's message carries data; data comes in chunks"),
            PartError::TooLarge { data_bytes, max } => {
                write!(f, "a snapshot of {data_bytes} bytes is above this node's limit of {max} bytes")
            }
            PartError::ChunkTooLarge { bytes, max } => write!(f, "a chunk of {bytes} bytes is above the limit of {max} bytes"),
            PartError::OutOfOrder { offset, expected } => write!(f, "a chunk at offset {offset}, where {expected} was expected"),
            PartError::PastEnd { end, data_bytes } => write!(f, "a chunk ending at {end}, past the declared {data_bytes} bytes"),
            PartError::Short { received, data_bytes } => {
                write!(f, "the snapshot ended after {received} of its declared {data_bytes} bytes")
            }
            PartError::Checksum { received, sent } => {
                write!(f, "the data received has checksum {received:08x}, the sender's has {sent:08x}")
            }
            PartError::Superseded => f.write_str("a later call took this snapshot over"),
        }
    }
}

impl std::error::Error for PartError {}

fn part(part: Part) -> SnapshotPart {
    SnapshotPart { part: Some(part) }
}

/// A snapshot message to send: the header, and the data apart to cut into chunks.
pub(crate) struct Outgoing {
    header: SnapshotHeader,
    key: SnapshotKey,
    /// The raft message's own term: a resent message of a newer term is another send.
    message_term: u64,
    data: Bytes,
    chunk_bytes: usize,
    /// The checksum of `data[..hashed_bytes]`: chunks are hashed as they go, and the bytes a
    /// receiver already held before them, apart.
    hasher: crc32fast::Hasher,
    hashed_bytes: u64,
}

impl Outgoing {
    /// Cuts `message`, a MsgSnapshot, into a header and chunks of `chunk_bytes` of its data.
    pub fn new(from: u64, from_addr: String, mut message: Message, chunk_bytes: usize) -> Outgoing {
        assert_eq!(message.get_msg_type(), MessageType::MsgSnapshot);
        assert!(chunk_bytes > 0);
        assert!(chunk_bytes <= SNAPSHOT_CHUNK_BYTES_MAX);
        let data = message.mut_snapshot().take_data();
        let metadata = message.get_snapshot().get_metadata();
        let key = SnapshotKey { index: metadata.index, term: metadata.term, data_bytes: data.len() as u64 };
        let encoded = message.write_to_bytes().expect("raft-rs messages always encode");
        let header = SnapshotHeader { from, from_addr, message: encoded.into(), data_bytes: key.data_bytes, ..SnapshotHeader::default() };
        Outgoing { header, key, message_term: message.term, data, chunk_bytes, hasher: crc32fast::Hasher::new(), hashed_bytes: 0 }
    }

    /// Stamps the header with the sender's cluster (0: not known).
    pub fn in_cluster(mut self, cluster_id: u64) -> Outgoing {
        self.header.cluster_id = cluster_id;
        self
    }

    pub fn key(&self) -> SnapshotKey {
        self.key
    }

    pub fn message_term(&self) -> u64 {
        self.message_term
    }

    pub fn data_bytes(&self) -> u64 {
        self.key.data_bytes
    }

    pub fn header(&self) -> SnapshotPart {
        part(Part::Header(self.header.clone()))
    }

    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes
    }

    /// Where the chunk that starts at `offset` ends.
    pub fn chunk_end(&self, offset: u64) -> u64 {
        (offset + self.chunk_bytes as u64).min(self.data_bytes())
    }

    /// The chunk that starts at `offset` (below the data's size), hashed on the way if the
    /// checksum has reached it.
    pub fn chunk(&mut self, offset: u64) -> SnapshotPart {
        assert!(offset < self.data_bytes());
        let (start, end) = (offset as usize, self.chunk_end(offset) as usize);
        let data = self.data.slice(start..end);
        if self.hashed_bytes == offset {
            self.hasher.update(&data);
            self.hashed_bytes = end as u64;
        }
        part(Part::Chunk(SnapshotChunk { offset, data }))
    }

    /// Hashes one chunk's worth more of the data below `offset`, which the receiver held
    /// before this call; answers whether any remains below it. (In steps, so the sender can
    /// yield between them: a large snapshot takes a while to hash.)
    pub fn hash_toward(&mut self, offset: u64) -> bool {
        assert!(offset <= self.data_bytes());
        if self.hashed_bytes < offset {
            let start = self.hashed_bytes as usize;
            let end = (start + self.chunk_bytes).min(offset as usize);
            self.hasher.update(&self.data[start..end]);
            self.hashed_bytes = end as u64;
        }
        self.hashed_bytes < offset
    }

    /// The end: the checksum of the whole data, hashed chunk by chunk before.
    pub fn end(&self) -> SnapshotPart {
        assert_eq!(self.hashed_bytes, self.data_bytes(), "every byte is hashed before the end");
        part(Part::End(SnapshotEnd { data_crc32: self.hasher.clone().finalize() }))
    }
}

/// A whole snapshot message, put back together, and who sent it.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub from: u64,
    pub from_addr: String,
    pub message: Message,
}

/// A snapshot being received: its header's message, and its data so far.
pub(crate) struct Incoming {
    key: SnapshotKey,
    from: u64,
    from_addr: String,
    message: Message,
    /// The data from its start; its capacity is taken once, for the declared size.
    data: Vec<u8>,
    /// The checksum of `data`.
    hasher: crc32fast::Hasher,
}

impl Incoming {
    /// Starts receiving the snapshot `header` declares, if it is one of at most
    /// `data_bytes_max` bytes.
    pub fn start(header: SnapshotHeader, data_bytes_max: u64) -> Result<Incoming, PartError> {
        let message = crate::storage::parse_message::<Message>(&header.message).map_err(|e| PartError::NotASnapshot(e.to_string()))?;
        if message.get_msg_type() != MessageType::MsgSnapshot || !message.has_snapshot() {
            return Err(PartError::NotASnapshot(format!("a {:?}", message.get_msg_type())));
        }
        if !message.get_snapshot().get_data().is_empty() {
            return Err(PartError::DataInHeader);
        }
        if header.data_bytes > data_bytes_max {
            return Err(PartError::TooLarge { data_bytes: header.data_bytes, max: data_bytes_max });
        }
        let metadata = message.get_snapshot().get_metadata();
        let key = SnapshotKey { index: metadata.index, term: metadata.term, data_bytes: header.data_bytes };
        let (from, from_addr) = (header.from, header.from_addr);
        Ok(Incoming { key, from, from_addr, message, data: Vec::new(), hasher: crc32fast::Hasher::new() })
    }

    pub fn key(&self) -> SnapshotKey {
        self.key
    }

    pub fn received_bytes(&self) -> u64 {
        self.data.len() as u64
    }

    /// A later call sends the same snapshot: its sender and message (maybe of a newer term)
    /// take over the data received so far.
    fn resume_with(&mut self, later: Incoming) {
        assert_eq!(self.key, later.key);
        self.from = later.from;
        self.from_addr = later.from_addr;
        self.message = later.message;
    }

    /// Takes the next chunk of the data.
    pub fn take_chunk(&mut self, chunk: SnapshotChunk) -> Result<(), PartError> {
        let received = self.received_bytes();
        if chunk.data.len() > SNAPSHOT_CHUNK_BYTES_MAX {
            return Err(PartError::ChunkTooLarge { bytes: chunk.data.len(), max: SNAPSHOT_CHUNK_BYTES_MAX });
        }
        if chunk.offset != received {
            return Err(PartError::OutOfOrder { offset: chunk.offset, expected: received });
        }
        let end = received + chunk.data.len() as u64;
        if end > self.key.data_bytes {
            return Err(PartError::PastEnd { end, data_bytes: self.key.data_bytes });
        }
        if self.data.capacity() == 0 {
            self.data.reserve_exact(self.key.data_bytes as usize);
        }
        self.data.extend_from_slice(&chunk.data);
        self.hasher.update(&chunk.data);
        assert!(self.received_bytes() <= self.key.data_bytes);
        Ok(())
    }

    /// The end came: the whole message, if every declared byte arrived and the checksum agrees.
    pub fn finish(self, end: SnapshotEnd) -> Result<Delivery, PartError> {
        let received = self.received_bytes();
        if received != self.key.data_bytes {
            return Err(PartError::Short { received, data_bytes: self.key.data_bytes });
        }
        let checksum = self.hasher.finalize();
        if checksum != end.data_crc32 {
            return Err(PartError::Checksum { received: checksum, sent: end.data_crc32 });
        }
        let mut message = self.message;
        message.mut_snapshot().set_data(Bytes::from(self.data));
        Ok(Delivery { from: self.from, from_addr: self.from_addr, message })
    }
}

/// The snapshot a node is receiving, shared by the calls that carry it. One at a time, so a
/// follower holds at most one snapshot's data beside its state. A call that ends early leaves
/// the data here, for a later call of the same snapshot to resume from (it stays until then,
/// or until another snapshot's call replaces it: at most one snapshot's size); a call that a
/// later one took over is refused at its next part.
#[derive(Default)]
pub(crate) struct Receiving {
    /// How many calls began: each call's parts name its number, and only the latest's count.
    calls: u64,
    held: Option<Incoming>,
}

impl Receiving {
    /// A call begins with `header`: answers the call's number and how many bytes of its data
    /// are held already (from an earlier call of the same snapshot), where the sender resumes.
    pub fn begin(&mut self, header: SnapshotHeader, data_bytes_max: u64) -> Result<(u64, u64), PartError> {
        let fresh = Incoming::start(header, data_bytes_max)?;
        self.calls += 1;
        let held = match self.held.take() {
            Some(mut held) if held.key() == fresh.key() => {
                held.resume_with(fresh);
                held
            }
            _ => fresh,
        };
        let received = held.received_bytes();
        self.held = Some(held);
        Ok((self.calls, received))
    }

    /// Takes call `call`'s next chunk; answers the bytes held since. A chunk refused drops the
    /// data: the next call starts over.
    pub fn take_chunk(&mut self, call: u64, chunk: SnapshotChunk) -> Result<u64, PartError> {
        let held = self.current(call)?;
        match held.take_chunk(chunk) {
            Ok(()) => Ok(held.received_bytes()),
            Err(e) => {
                self.held = None;
                Err(e)
            }
        }
    }

    /// Call `call` ended its snapshot: the whole message, or why not (the data is dropped
    /// either way).
    pub fn finish(&mut self, call: u64, end: SnapshotEnd) -> Result<Delivery, PartError> {
        self.current(call)?;
        self.held.take().expect("the current call holds a snapshot").finish(end)
    }

    /// Drops the data held (the simulator's buggify: as if it had been lost).
    pub fn forget(&mut self) {
        self.held = None;
    }

    fn current(&mut self, call: u64) -> Result<&mut Incoming, PartError> {
        match &mut self.held {
            Some(held) if call == self.calls => Ok(held),
            _ => Err(PartError::Superseded),
        }
    }
}

#[cfg(test)]
mod tests {
    use raft::eraftpb::{ConfState, Snapshot};

    use super::*;

    /// Chunks this small make many of a test's data.
    const CHUNK: usize = 16;

    fn snapshot_message(index: u64, data: &[u8]) -> Message {
        let mut snapshot = Snapshot::default();
        snapshot.set_data(Bytes::copy_from_slice(data));
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = 3;
        snapshot.mut_metadata().set_conf_state(ConfState::from((vec![1, 2, 3], vec![4])));
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgSnapshot);
        (m.from, m.to, m.term) = (1, 4, 5);
        m.set_snapshot(snapshot);
        m
    }

    fn data_of(bytes: usize) -> Vec<u8> {
        (0..bytes).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn header(part: SnapshotPart) -> SnapshotHeader {
        match part.part {
            Some(Part::Header(h)) => h,
            other => panic!("not a header: {other:?}"),
        }
    }

    fn chunk(part: SnapshotPart) -> SnapshotChunk {
        match part.part {
            Some(Part::Chunk(c)) => c,
            other => panic!("not a chunk: {other:?}"),
        }
    }

    fn end(part: SnapshotPart) -> SnapshotEnd {
        match part.part {
            Some(Part::End(e)) => e,
            other => panic!("not an end: {other:?}"),
        }
    }

    /// Sends every part of `outgoing` from `from_bytes` into `receiving` as call `call`.
    fn send_rest(outgoing: &mut Outgoing, receiving: &mut Receiving, call: u64, from_bytes: u64) -> Result<Delivery, PartError> {
        while outgoing.hash_toward(from_bytes) {}
        let mut offset = from_bytes;
        while offset < outgoing.data_bytes() {
            let c = chunk(outgoing.chunk(offset));
            offset += c.data.len() as u64;
            assert!(c.data.len() <= CHUNK);
            assert_eq!(receiving.take_chunk(call, c)?, offset);
        }
        receiving.finish(call, end(outgoing.end()))
    }

    /// Data of every awkward size (none, one byte, a chunk less one, one, one more, several,
    /// several and a bit) crosses chunk by chunk and comes back as the very message sent.
    #[test]
    fn every_size_comes_back_whole() {
        for bytes in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7] {
            let sent = snapshot_message(9, &data_of(bytes));
            let mut outgoing = Outgoing::new(1, "h:1".into(), sent.clone(), CHUNK);
            assert_eq!(outgoing.data_bytes(), bytes as u64);
            let mut receiving = Receiving::default();
            let (call, held) = receiving.begin(header(outgoing.header()), 1 << 20).expect("header taken");
            assert_eq!(held, 0);
            let delivery = send_rest(&mut outgoing, &mut receiving, call, 0).expect("delivered");
            assert_eq!((delivery.from, delivery.from_addr.as_str()), (1, "h:1"));
            assert_eq!(delivery.message, sent, "{bytes} bytes");
            assert!(receiving.held.is_none(), "nothing held after delivery");
        }
    }

    /// A declared size above the limit is refused at the header, before any chunk; exactly
    /// the limit is taken.
    #[test]
    fn an_oversized_declaration_is_refused() {
        let outgoing = Outgoing::new(1, String::new(), snapshot_message(9, &data_of(100)), CHUNK);
        let mut receiving = Receiving::default();
        let refused = receiving.begin(header(outgoing.header()), 99);
        assert_eq!(refused.err(), Some(PartError::TooLarge { data_bytes: 100, max: 99 }));
        assert!(receiving.held.is_none());
        assert!(receiving.begin(header(outgoing.header()), 100).is_ok());
    }

    /// Data that adds up to another size than declared is refused: an end before all of it,
    /// or a chunk past it (the data is dropped then).
    #[test]
    fn a_size_mismatch_is_refused() {
        let mut outgoing = Outgoing::new(1, String::new(), snapshot_message(9, &data_of(40)), CHUNK);
        let mut receiving = Receiving::default();
        let (call, _) = receiving.begin(header(outgoing.header()), 1 << 20).expect("header taken");
        receiving.take_chunk(call, chunk(outgoing.chunk(0))).expect("first chunk");
        let short = receiving.finish(call, SnapshotEnd { data_crc32: 0 });
        assert_eq!(short.err(), Some(PartError::Short { received: CHUNK as u64, data_bytes: 40 }));

        let (call, held) = receiving.begin(header(outgoing.header()), 1 << 20).expect("header taken");
        assert_eq!(held, 0, "a refused end drops the data");
        let long = SnapshotChunk { offset: 0, data: Bytes::from(data_of(41)) };
        assert_eq!(receiving.take_chunk(call, long).err(), Some(PartError::PastEnd { end: 41, data_bytes: 40 }));
        assert!(receiving.held.is_none());
    }

    /// A chunk out of order, or larger than any sender cuts, is refused.
    #[test]
    fn a_chunk_out_of_place_is_refused() {
        let mut outgoing = Outgoing::new(1, String::new(), snapshot_message(9, &data_of(40)), CHUNK);
        let mut receiving = Receiving::default();
        let (call, _) = receiving.begin(header(outgoing.header()), 1 << 30).expect("header taken");
        let skipped = chunk(outgoing.chunk(CHUNK as u64));
        assert_eq!(receiving.take_chunk(call, skipped).err(), Some(PartError::OutOfOrder { offset: CHUNK as u64, expected: 0 }));
        let (call, _) = receiving.begin(header(outgoing.header()), 1 << 30).expect("header taken");
        let huge = SnapshotChunk { offset: 0, data: Bytes::from(vec![0; SNAPSHOT_CHUNK_BYTES_MAX + 1]) };
        let refused = receiving.take_chunk(call, huge);
        assert_eq!(refused.err(), Some(PartError::ChunkTooLarge { bytes: SNAPSHOT_CHUNK_BYTES_MAX + 1, max: SNAPSHOT_CHUNK_BYTES_MAX }));
    }

    /// A header whose message is not a snapshot, carries the data itself, or is damaged, is
    /// refused.
    #[test]
    fn a_header_without_a_bare_snapshot_is_refused() {
        let mut receiving = Receiving::default();
        let heartbeat = Message { msg_type: MessageType::MsgHeartbeat, ..Message::default() };
        let not_a_snapshot = SnapshotHeader { message: heartbeat.write_to_bytes().expect("encodes").into(), ..SnapshotHeader::default() };
        assert!(matches!(receiving.begin(not_a_snapshot, 1 << 20), Err(PartError::NotASnapshot(_))));
        let garbage = SnapshotHeader { message: Bytes::from_static(b"\xff\xff\xff"), ..SnapshotHeader::default() };
        assert!(matches!(receiving.begin(garbage, 1 << 20), Err(PartError::NotASnapshot(_))));
        let whole = snapshot_message(9, b"inline data").write_to_bytes().expect("encodes");
        let inline = SnapshotHeader { message: whole.into(), data_bytes: 0, ..SnapshotHeader::default() };
        assert_eq!(receiving.begin(inline, 1 << 20).err(), Some(PartError::DataInHeader));
        // A message whose field 12 (the snapshot) claims 8 MiB in 5 bytes allocates nothing
        // like it: its length is checked against the bytes there first.
        let claims_8_mib = SnapshotHeader { message: Bytes::from_static(&[0x62, 0x80, 0x80, 0x80, 0x04]), ..SnapshotHeader::default() };
        crate::fuzz_checks::reset_largest_allocation();
        assert!(matches!(receiving.begin(claims_8_mib, 1 << 20), Err(PartError::NotASnapshot(_))));
        let largest = crate::fuzz_checks::largest_allocation_bytes();
        assert!(largest < 4096, "an allocation of {largest} bytes");
    }

    /// A call cut off midway leaves its data: a later call of the same snapshot (from another
    /// sender, with a newer message term) resumes where it stopped, the first call's parts are
    /// refused from then on, and the message delivered is the later sender's, whole.
    #[test]
    fn a_later_call_of_the_same_snapshot_resumes() {
        let data = data_of(5 * CHUNK + 3);
        let mut first = Outgoing::new(1, "h:1".into(), snapshot_message(9, &data), CHUNK);
        let mut receiving = Receiving::default();
        let (call_1, _) = receiving.begin(header(first.header()), 1 << 20).expect("header taken");
        receiving.take_chunk(call_1, chunk(first.chunk(0))).expect("chunk");
        receiving.take_chunk(call_1, chunk(first.chunk(CHUNK as u64))).expect("chunk");

        let mut later_message = snapshot_message(9, &data);
        (later_message.from, later_message.term) = (2, 6);
        let mut later = Outgoing::new(2, "h:2".into(), later_message.clone(), CHUNK);
        let (call_2, held) = receiving.begin(header(later.header()), 1 << 20).expect("header taken");
        assert_eq!(held, 2 * CHUNK as u64);
        let stale = receiving.take_chunk(call_1, chunk(first.chunk(2 * CHUNK as u64)));
        assert_eq!(stale.err(), Some(PartError::Superseded));
        let delivery = send_rest(&mut later, &mut receiving, call_2, held).expect("delivered");
        assert_eq!((delivery.from, delivery.message), (2, later_message));
    }

    /// Another snapshot's call replaces the data held; and data joined from two snapshots
    /// under one key (index, term and size alike, bytes not) fails the checksum and is dropped.
    #[test]
    fn another_snapshot_starts_over_and_a_mixed_one_fails_its_checksum() {
        let mut receiving = Receiving::default();
        let mut old = Outgoing::new(1, String::new(), snapshot_message(9, &data_of(3 * CHUNK)), CHUNK);
        let (call, _) = receiving.begin(header(old.header()), 1 << 20).expect("header taken");
        receiving.take_chunk(call, chunk(old.chunk(0))).expect("chunk");
        let newer = Outgoing::new(1, String::new(), snapshot_message(10, &data_of(3 * CHUNK)), CHUNK);
        assert_eq!(receiving.begin(header(newer.header()), 1 << 20).expect("header taken").1, 0);

        let (call, _) = receiving.begin(header(old.header()), 1 << 20).expect("header taken");
        receiving.take_chunk(call, chunk(old.chunk(0))).expect("chunk");
        let mut other_bytes = data_of(3 * CHUNK);
        other_bytes[0] ^= 1;
        let mut impostor = Outgoing::new(2, String::new(), snapshot_message(9, &other_bytes), CHUNK);
        let (call, held) = receiving.begin(header(impostor.header()), 1 << 20).expect("header taken");
        assert_eq!(held, CHUNK as u64, "same key: resumed");
        let mixed = send_rest(&mut impostor, &mut receiving, call, held);
        assert!(matches!(mixed, Err(PartError::Checksum { .. })), "{mixed:?}");
        assert!(receiving.held.is_none());
    }
}
