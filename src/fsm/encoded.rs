//! Walking an encoded protobuf message field by field without decoding it: what lets a large
//! snapshot be restored one job at a time instead of being decoded whole first.

/// One field of an encoded message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    pub number: u32,
    /// A length-delimited field (a message, bytes, a string), rather than a number.
    pub delimited: bool,
    /// The whole field, key included: fields copied out this way decode as they would have.
    pub raw: &'a [u8],
    /// A length-delimited field's content (a message, bytes, a string); empty for the others.
    pub content: &'a [u8],
}

/// The fields of an encoded message, in order; an error ends the walk.
pub fn fields(bytes: &[u8]) -> Fields<'_> {
    Fields { rest: bytes }
}

pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let field = next_field(self.rest);
        // After an error nothing that follows can be placed.
        self.rest = match &field {
            Ok(f) => &self.rest[f.raw.len()..],
            Err(_) => &[],
        };
        Some(field)
    }
}

fn next_field(bytes: &[u8]) -> Result<Field<'_>, String> {
    let (key, key_bytes) = varint(bytes)?;
    let number = u32::try_from(key >> 3).map_err(|_| format!("field number {} is too large", key >> 3))?;
    let after_key = &bytes[key_bytes..];
    let (value_bytes, content) = match key & 7 {
        0 => (varint(after_key)?.1, &after_key[..0]),
        1 => (8, &after_key[..0]),
        2 => {
            let (len, len_bytes) = varint(after_key)?;
            let len = usize::try_from(len).map_err(|_| "a length does not fit in memory".to_string())?;
            let end = len_bytes.checked_add(len).filter(|&end| end <= after_key.len()).ok_or("a field runs past the end")?;
            (end, &after_key[len_bytes..end])
        }
        5 => (4, &after_key[..0]),
        other => return Err(format!("field {number} has wire type {other}, which this encoding never uses")),
    };
    if value_bytes > after_key.len() {
        return Err(format!("field {number} runs past the end"));
    }
    Ok(Field { number, delimited: key & 7 == 2, raw: &bytes[..key_bytes + value_bytes], content })
}

/// A varint at the start of `bytes`: its value and how many bytes it takes.
fn varint(bytes: &[u8]) -> Result<(u64, usize), String> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err("a varint is cut short or too long".into())
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::storage::format::{JobProto, SnapshotProto, TubeProto};

    /// Every field of a message is found with its number and bytes, and the fields copied out
    /// without one of them decode as the message without it.
    #[test]
    fn fields_split_a_message_whole() {
        let job = |id| JobProto { id, body: vec![7; 300].into(), tube_name: "t".into(), priority: u32::MAX, ..JobProto::default() };
        let snap = SnapshotProto {
            jobs: vec![job(1), job(2)],
            tubes: vec![TubeProto { name: "t".into(), ..TubeProto::default() }],
            next_job_id: 3,
            now_ms: -5,
            ..SnapshotProto::default()
        };
        let bytes = snap.encode_to_vec();
        let found: Vec<Field> = fields(&bytes).collect::<Result<_, _>>().expect("walks");
        assert_eq!(found.iter().map(|f| f.number).collect::<Vec<_>>(), [1, 1, 3, 5, 6]);
        assert_eq!(found.iter().map(|f| f.raw.len()).sum::<usize>(), bytes.len());
        assert_eq!(JobProto::decode(found[1].content).expect("decodes"), job(2));
        let others: Vec<u8> = found.iter().filter(|f| f.number != 1).flat_map(|f| f.raw.iter().copied()).collect();
        assert_eq!(SnapshotProto::decode(&others[..]).expect("decodes"), SnapshotProto { jobs: Vec::new(), ..snap });
    }

    /// A field cut anywhere, or one with a group's wire type, is an error, and the walk ends.
    #[test]
    fn damage_ends_the_walk() {
        let bytes = JobProto { body: vec![1; 200].into(), ..JobProto::default() }.encode_to_vec();
        for cut in 1..bytes.len() {
            let walked: Vec<_> = fields(&bytes[..cut]).collect();
            assert!(walked.last().is_some_and(|f| f.is_err()), "cut at {cut}: {walked:?}");
        }
        let mut group = vec![(1 << 3) | 3];
        group.extend_from_slice(&bytes);
        let walked: Vec<_> = fields(&group).collect();
        assert_eq!(walked.len(), 1);
        assert!(walked[0].is_err());
    }
}
