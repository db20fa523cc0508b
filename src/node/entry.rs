//! A log entry's data: a normal entry's format byte and its batch of operations, and the
//! membership change a conf-change entry holds. Decoding is total, as the operations' is.

use bytes::Bytes;
use prost::Message;
use raft::eraftpb::{ConfChange, ConfChangeSingle, ConfChangeV2, EntryType};

use crate::codec::{invalid, DecodeError};
use crate::storage::format::ApplyOpBatch;
use crate::storage::parse_message;

/// The first byte of a normal entry's data: the format of the rest. A byte of its own, not a
/// protobuf field, so that data of any other format (or garbage) is refused before a decoder
/// can read it as something it is not.
pub const ENTRY_FORMAT_OP_BATCH: u8 = 1;

/// A normal entry's whole data when its operations stay in the memory of the process that
/// proposed them (`LocalOp`): no other process can apply it.
pub const ENTRY_FORMAT_LOCAL: u8 = 2;

/// A normal entry's data: the format byte, then the batch of operations.
pub fn encode_entry(batch: &ApplyOpBatch) -> Vec<u8> {
    debug_assert!(batch.version >= super::version::BASE_VERSION, "entries are written with a version");
    let mut data = Vec::with_capacity(1 + batch.encoded_len());
    data.push(ENTRY_FORMAT_OP_BATCH);
    // Cannot fail: the vector grows as needed.
    let _ = batch.encode(&mut data);
    data
}

/// The batch of operations a normal entry's data holds. The operations' bodies are slices
/// of `data`, not copies: they live only until applied, and the state machine copies what
/// it keeps (a job's body) out of them.
pub fn decode_entry(data: &Bytes) -> Result<ApplyOpBatch, DecodeError> {
    match data.first() {
        Some(&ENTRY_FORMAT_OP_BATCH) => ApplyOpBatch::decode(data.slice(1..)).map_err(|e| invalid(format!("undecodable entry: {e}"))),
        Some(&ENTRY_FORMAT_LOCAL) => Err(invalid("an entry whose operations were kept in its proposer's memory")),
        Some(format) => Err(invalid(format!("unknown entry format {format}"))),
        None => Err(invalid("empty entry data")),
    }
}

/// The membership change a conf-change entry's data holds, a v1 change as the one-change v2
/// form so that one path applies both; its lengths checked before anything is allocated for
/// them (see `parse_message`).
pub fn decode_conf_change(entry_type: EntryType, data: &Bytes) -> Result<ConfChangeV2, String> {
    let decoded = match entry_type {
        EntryType::EntryConfChange => parse_message::<ConfChange>(data).map(v2),
        EntryType::EntryConfChangeV2 => parse_message::<ConfChangeV2>(data),
        EntryType::EntryNormal => return Err("a normal entry holds no membership change".into()),
    };
    decoded.map_err(|e| e.to_string())
}

/// A v1 conf change as the one-change v2 form.
fn v2(cc: ConfChange) -> ConfChangeV2 {
    let mut single = ConfChangeSingle::default();
    single.set_change_type(cc.get_change_type());
    single.node_id = cc.node_id;
    let mut v2 = ConfChangeV2::default();
    v2.mut_changes().push(single);
    v2.set_context(cc.get_context().to_vec().into());
    v2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::log;
    use crate::fsm::Op;

    /// A batch of operations survives encode then decode in order; data of another format,
    /// empty data, and a batch that does not decode are errors that say so.
    #[test]
    fn entries_round_trip_and_refuse_other_formats() {
        let batch = ApplyOpBatch {
            version: crate::node::version::STATE_MACHINE_VERSION,
            ops: vec![log::op_request(&Op::KickJob { id: 3 }, String::new(), 0), log::op_request(&Op::Tick, "p".into(), 9)],
        };
        let data = encode_entry(&batch);
        assert_eq!(data[0], ENTRY_FORMAT_OP_BATCH);
        assert_eq!(decode_entry(&Bytes::from(data.clone())), Ok(batch));
        let mut other = data;
        other[0] = 7;
        assert_eq!(decode_entry(&Bytes::from(other)), Err(invalid("unknown entry format 7")));
        assert_eq!(decode_entry(&Bytes::new()), Err(invalid("empty entry data")));
        assert!(decode_entry(&Bytes::from_static(&[ENTRY_FORMAT_OP_BATCH, 0xff, 0xff])).is_err());
    }

    /// A conf change of either version decodes to the v2 form, and one whose context (v1) or
    /// unknown field (v2) claims more bytes than follow is refused without an allocation of
    /// what it claims (8 MB claimed in 5 bytes: protobuf 2's reader reserved it).
    #[test]
    fn conf_changes_decode_and_damaged_lengths_allocate_nothing_like_them() {
        let mut cc = ConfChange { node_id: 4, context: Bytes::from_static(b"addr"), ..ConfChange::default() };
        cc.set_change_type(raft::eraftpb::ConfChangeType::AddLearnerNode);
        let data = Bytes::from(protobuf::Message::write_to_bytes(&cc).expect("encode"));
        let decoded = decode_conf_change(EntryType::EntryConfChange, &data).expect("decodes");
        assert_eq!(decoded, v2(cc));
        let again = Bytes::from(protobuf::Message::write_to_bytes(&decoded).expect("encode"));
        assert_eq!(decode_conf_change(EntryType::EntryConfChangeV2, &again), Ok(decoded));
        assert!(decode_conf_change(EntryType::EntryNormal, &data).is_err());
        let field_4_of_8_mib = Bytes::from_static(&[0x22, 0x80, 0x80, 0x80, 0x04]);
        for entry_type in [EntryType::EntryConfChange, EntryType::EntryConfChangeV2] {
            crate::fuzz_checks::reset_largest_allocation();
            assert!(decode_conf_change(entry_type, &field_4_of_8_mib).is_err());
            let largest = crate::fuzz_checks::largest_allocation_bytes();
            assert!(largest < 4096, "an allocation of {largest} bytes for {entry_type:?}");
        }
    }
}
