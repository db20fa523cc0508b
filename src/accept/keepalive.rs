//! TCP keepalive on accepted client connections. A client whose machine died or whose link
//! dropped sends no FIN: without probes its connection (its session, its waiting reserve, its
//! buffers) would stay open for ever, since beanstalkd clients may be silent for hours.

use std::os::fd::AsRawFd;

/// Probes start after a minute of silence, then every 10 s; three unanswered close the
/// connection: a dead peer is found within about 90 s.
const IDLE_SECS: libc::c_int = 60;
const INTERVAL_SECS: libc::c_int = 10;
const PROBES: libc::c_int = 3;

/// Turns keepalive on for `socket`, with the timings above.
pub fn set(socket: &impl AsRawFd) -> std::io::Result<()> {
    let fd = socket.as_raw_fd();
    set_option(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set_option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, IDLE_SECS)?;
    set_option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, INTERVAL_SECS)?;
    set_option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, PROBES)
}

fn set_option(fd: libc::c_int, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> std::io::Result<()> {
    let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the value is a live c_int of the size given, for an option that takes one.
    match unsafe { libc::setsockopt(fd, level, name, (&value as *const libc::c_int).cast(), size) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(fd: libc::c_int, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut value: libc::c_int = 0;
        let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: value and size are live and describe one c_int.
        let done = unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut libc::c_int).cast(), &mut size) };
        assert_eq!(done, 0, "getsockopt: {}", std::io::Error::last_os_error());
        value
    }

    #[test]
    fn an_accepted_connection_probes_its_peer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let _client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        let fd = accepted.as_raw_fd();
        assert_eq!(option(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0, "off until set");
        set(&accepted).expect("set keepalive");
        assert_ne!(option(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0);
        assert_eq!(option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), IDLE_SECS);
        assert_eq!(option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL), INTERVAL_SECS);
        assert_eq!(option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT), PROBES);
    }
}
