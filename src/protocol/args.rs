//! Readers for command arguments, with beanstalkd 1.13's rules: spaces before a number are
//! skipped, a number starts with a digit (no sign), and one that overflows its type is
//! refused. Every failure is `BAD_FORMAT`.

use crate::fsm::validate_tube_name;

use super::error::ProtocolError;

/// The rest of a line after a leading run of spaces (only `' '`, as beanstalkd skips).
pub(crate) fn skip_spaces(rest: &[u8]) -> &[u8] {
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    &rest[start..]
}

/// A u64 in decimal after optional spaces, and what follows its last digit. At least one
/// digit; `-`, `+` or anything else first is refused, as is overflow.
pub(crate) fn leading_u64(rest: &[u8]) -> Result<(u64, &[u8]), ProtocolError> {
    let rest = skip_spaces(rest);
    let digits_bytes = rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
    if digits_bytes == 0 {
        return Err(ProtocolError::BadFormat);
    }
    let mut value: u64 = 0;
    for &digit in &rest[..digits_bytes] {
        value = value.checked_mul(10).and_then(|v| v.checked_add(u64::from(digit - b'0'))).ok_or(ProtocolError::BadFormat)?;
    }
    Ok((value, &rest[digits_bytes..]))
}

/// As `leading_u64`, for a u32.
pub(crate) fn leading_u32(rest: &[u8]) -> Result<(u32, &[u8]), ProtocolError> {
    let (value, rest) = leading_u64(rest)?;
    let value = u32::try_from(value).map_err(|_| ProtocolError::BadFormat)?;
    Ok((value, rest))
}

/// A u64 that is all the rest holds (after optional spaces): trailing bytes, even a space,
/// are `BAD_FORMAT`.
pub(crate) fn whole_u64(rest: &[u8]) -> Result<u64, ProtocolError> {
    let (value, rest) = leading_u64(rest)?;
    end_of_line(rest)?;
    Ok(value)
}

/// As `whole_u64`, for a u32.
pub(crate) fn whole_u32(rest: &[u8]) -> Result<u32, ProtocolError> {
    let (value, rest) = leading_u32(rest)?;
    end_of_line(rest)?;
    Ok(value)
}

/// Nothing may follow: commands without arguments refuse trailing bytes with `BAD_FORMAT`.
pub(crate) fn end_of_line(rest: &[u8]) -> Result<(), ProtocolError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(ProtocolError::BadFormat)
    }
}

/// A tube name that is exactly the rest of the line, checked with the shared rule. No spaces
/// are skipped: `use  foo` (two spaces) is `BAD_FORMAT` in beanstalkd.
pub(crate) fn whole_tube_name(rest: &[u8]) -> Result<String, ProtocolError> {
    let name = std::str::from_utf8(rest).map_err(|_| ProtocolError::BadFormat)?;
    validate_tube_name(name).map_err(|_| ProtocolError::BadFormat)?;
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spaces before a number are skipped, a sign or nothing is refused, overflow is refused.
    #[test]
    fn numbers() {
        assert_eq!(leading_u32(b"  12 x"), Ok((12, &b" x"[..])));
        assert_eq!(leading_u32(b"0007"), Ok((7, &b""[..])));
        assert_eq!(leading_u32(b"4294967295"), Ok((u32::MAX, &b""[..])));
        assert_eq!(leading_u32(b"4294967296"), Err(ProtocolError::BadFormat));
        assert_eq!(leading_u64(b"18446744073709551615"), Ok((u64::MAX, &b""[..])));
        assert_eq!(leading_u64(b"18446744073709551616"), Err(ProtocolError::BadFormat));
        assert_eq!(leading_u64(b"-1"), Err(ProtocolError::BadFormat));
        assert_eq!(leading_u64(b"+1"), Err(ProtocolError::BadFormat));
        assert_eq!(leading_u64(b""), Err(ProtocolError::BadFormat));
        assert_eq!(leading_u64(b"  "), Err(ProtocolError::BadFormat));
        assert_eq!(leading_u64(b"\t1"), Err(ProtocolError::BadFormat));
        assert_eq!(whole_u64(b" 5"), Ok(5));
        assert_eq!(whole_u64(b"5 "), Err(ProtocolError::BadFormat));
        assert_eq!(whole_u32(b"5x"), Err(ProtocolError::BadFormat));
    }

    /// A tube name is the whole rest, valid by the shared rule, and UTF-8.
    #[test]
    fn tube_names() {
        assert_eq!(whole_tube_name(b"a-b"), Ok("a-b".to_owned()));
        assert_eq!(whole_tube_name(b" a"), Err(ProtocolError::BadFormat));
        assert_eq!(whole_tube_name(b"a "), Err(ProtocolError::BadFormat));
        assert_eq!(whole_tube_name(b"-a"), Err(ProtocolError::BadFormat));
        assert_eq!(whole_tube_name(b""), Err(ProtocolError::BadFormat));
        assert_eq!(whole_tube_name(b"\xff"), Err(ProtocolError::BadFormat));
    }
}
