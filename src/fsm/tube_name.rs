//! beanstalkd's tube naming rule, shared by the state machine and the protocol parser.

use super::types::FsmError;

/// The longest tube name beanstalkd accepts, in bytes.
pub const TUBE_NAME_BYTES_MAX: usize = 200;

/// Whether a byte may appear in a tube name: `A-Z a-z 0-9 - + / ; . $ _ ( )`.
pub fn is_tube_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-+/;.$_()".contains(&b)
}

/// 1 to 200 bytes of the allowed set, not starting with `-`.
pub fn validate_tube_name(name: &str) -> Result<(), FsmError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > TUBE_NAME_BYTES_MAX {
        return Err(FsmError::BadArgument("tube name must be 1 to 200 bytes"));
    }
    if bytes[0] == b'-' {
        return Err(FsmError::BadArgument("tube name must not start with '-'"));
    }
    if !bytes.iter().all(|&b| is_tube_name_byte(b)) {
        return Err(FsmError::BadArgument("tube name has a character outside A-Za-z0-9-+/;.$_()"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every allowed character passes; the limits and the leading hyphen are enforced.
    #[test]
    fn naming_rules() {
        assert!(validate_tube_name("default").is_ok());
        assert!(validate_tube_name("A-z0+9/;.$_()").is_ok());
        assert!(validate_tube_name(&"a".repeat(200)).is_ok());
        assert!(validate_tube_name(&"a".repeat(201)).is_err());
        assert!(validate_tube_name("").is_err());
        assert!(validate_tube_name("-a").is_err());
        assert!(validate_tube_name("a b").is_err());
        assert!(validate_tube_name("a*").is_err());
        assert!(validate_tube_name("é").is_err());
    }
}
