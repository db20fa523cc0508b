//! The part of getrandom 0.2's API that rand_core 0.6 uses, filled from libc's `getrandom()`.
//!
//! Upstream getrandom 0.2 issues the raw `SYS_getrandom` syscall, which madsim cannot see, so a
//! simulated run drew real entropy and one seed gave two different runs. madsim overrides the
//! libc symbol, so going through libc makes the same seed give the same bytes; outside the
//! simulator this is the ordinary kernel call.

use core::fmt;
use core::num::NonZeroU32;

/// An error code as getrandom 0.2 reports it: an errno, or one of its own codes above
/// `INTERNAL_START`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error(NonZeroU32);

impl Error {
    /// Codes at and above this value belong to getrandom itself (same value as upstream).
    pub const INTERNAL_START: u32 = 1 << 31;
    /// Codes at and above this value are free for custom sources (same value as upstream).
    pub const CUSTOM_START: u32 = (1 << 31) + (1 << 30);
    /// The kernel returned an error without setting errno.
    pub const ERRNO_NOT_POSITIVE: Error = Error(match NonZeroU32::new(Self::INTERNAL_START + 1) {
        Some(code) => code,
        None => unreachable!(),
    });

    /// The raw errno, when this error came from the OS.
    pub fn raw_os_error(self) -> Option<i32> {
        (self.0.get() < Self::INTERNAL_START).then_some(self.0.get() as i32)
    }

    /// The code as a non-zero integer.
    pub const fn code(self) -> NonZeroU32 {
        self.0
    }
}

impl From<NonZeroU32> for Error {
    fn from(code: NonZeroU32) -> Self {
        Error(code)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.raw_os_error() {
            Some(errno) => write!(f, "getrandom failed: OS error {errno}"),
            None => write!(f, "getrandom failed: internal error {}", self.0),
        }
    }
}

impl std::error::Error for Error {}

/// Fills `dest` with random bytes from libc's `getrandom()`, retrying short reads and EINTR.
pub fn getrandom(dest: &mut [u8]) -> Result<(), Error> {
    let mut filled = 0;
    while filled < dest.len() {
        let rest = &mut dest[filled..];
        // SAFETY: the pointer and length describe the unfilled, writable tail of `dest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            if errno == libc::EINTR {
                continue;
            }
            return Err(NonZeroU32::new(errno as u32).map_or(Error::ERRNO_NOT_POSITIVE, Error));
        }
        filled += n as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two draws of 64 bytes come back filled and different, so the call really reaches libc.
    #[test]
    fn fills_the_buffer() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        getrandom(&mut a).unwrap();
        getrandom(&mut b).unwrap();
        assert_ne!(a, b);
    }

    /// OS errors keep their errno; internal codes report none.
    #[test]
    fn error_codes_round_trip() {
        let os = Error::from(NonZeroU32::new(5).unwrap());
        assert_eq!(os.raw_os_error(), Some(5));
        assert_eq!(Error::ERRNO_NOT_POSITIVE.raw_os_error(), None);
    }
}
