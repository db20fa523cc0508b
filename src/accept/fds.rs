//! How many connections a process may hold without taking the descriptors storage needs: a
//! node that cannot open its next log segment stops, while a client turned away waits in the
//! listen backlog until another leaves.

use crate::limits::FDS_RESERVED_MAX;

/// Raises this process's soft limit on open files to its hard limit, as servers that hold
/// many connections do (the soft limit is often 1024 while the hard one is far higher).
/// Returns the soft limit now in force.
#[cfg(not(madsim))]
pub fn raise_soft_limit() -> std::io::Result<u64> {
    let mut limit = get_limit()?;
    // Linux refuses an infinite limit on open files; such a hard limit is left as it is.
    if limit.rlim_cur < limit.rlim_max && limit.rlim_max != libc::RLIM_INFINITY {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct it is given and nothing else.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

#[cfg(not(madsim))]
fn get_limit() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills the struct it is given and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}

/// The most connections this process may hold with descriptors left for the rest; unbounded
/// when the limit cannot be read.
pub fn connections_max() -> usize {
    soft_limit().map_or(usize::MAX, connections_max_within)
}

#[cfg(not(madsim))]
fn soft_limit() -> Option<u64> {
    get_limit().ok().map(|limit| limit.rlim_cur)
}

/// The simulator has no descriptors to run out of.
#[cfg(madsim)]
fn soft_limit() -> Option<u64> {
    None
}

/// Connections allowed under a soft limit of `fds_max` open files.
fn connections_max_within(fds_max: u64) -> usize {
    let reserved = FDS_RESERVED_MAX.min(fds_max / 2);
    usize::try_from(fds_max - reserved).unwrap_or(usize::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reserve comes off the limit; a small limit keeps half for the rest.
    #[test]
    fn connections_leave_a_reserve() {
        assert_eq!(connections_max_within(1024), 1024 - FDS_RESERVED_MAX as usize);
        assert_eq!(connections_max_within(40), 20);
        assert_eq!(connections_max_within(1), 1);
        assert_eq!(connections_max_within(0), 1);
        assert_eq!(connections_max_within(libc::RLIM_INFINITY), usize::try_from(libc::RLIM_INFINITY - FDS_RESERVED_MAX).unwrap());
    }
}
