//! One process per data dir. Two processes writing one log interleave their batches and each
//! takes the other's records for damage; an advisory `flock` on a file in the dir, held for
//! the process's life, makes the second refuse to start. The kernel drops the lock when the
//! holder exits, however it exits (SIGKILL included), so a crash never leaves a stale lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use super::names::LOCK_FILE;

/// The lock on a data dir, held until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Creates `dir` if it is missing and locks it, recording this process's id in the lock
    /// file so that a refused process can name the holder.
    pub fn acquire(dir: &Path) -> Result<DirLock, String> {
        let io = |what: &str, path: &Path, e: std::io::Error| format!("cannot {what} {}: {e}", path.display());
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| io("create the data dir", dir, e))?;
            // The new dir's entry in its parent survives a crash, as a log in it must.
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            File::open(parent).and_then(|p| p.sync_all()).map_err(|e| io("sync", parent, e))?;
        }
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|e| io("open", &path, e))?;
        // SAFETY: flock takes a descriptor this function owns for the call's whole duration.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io("lock", &path, error));
            }
            return Err(in_use(dir, &path, holder(&mut file)));
        }
        let pid = std::process::id();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(format!("{pid}\n").as_bytes()))
            .map_err(|e| io("write", &path, e))?;
        Ok(DirLock { _file: file })
    }
}

/// The process id the holder wrote, if it has yet.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn in_use(dir: &Path, path: &Path, pid: Option<u32>) -> String {
    let who = pid.map_or_else(|| "another process".to_string(), |pid| format!("process {pid}"));
    format!("data dir {} is in use by {who} (it holds the lock on {}): stop it, or give another data dir", dir.display(), path.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("coolbeans-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_dir_and_holder_until_the_first_is_dropped() {
        let dir = temp_dir("second").join("data");
        let first = DirLock::acquire(&dir).expect("a new dir is created and locked");
        let refused = DirLock::acquire(&dir).expect_err("the dir is held");
        assert!(refused.contains(&dir.display().to_string()), "{refused}");
        assert!(refused.contains(&format!("process {}", std::process::id())), "{refused}");
        drop(first);
        let again = DirLock::acquire(&dir).expect("free once the holder let go");
        drop(again);
        std::fs::remove_dir_all(dir.parent().expect("parent")).expect("clean up");
    }

    #[test]
    fn a_holder_that_wrote_no_id_is_called_another_process() {
        let dir = temp_dir("noid");
        let message = in_use(&dir, &dir.join(LOCK_FILE), None);
        assert!(message.contains("in use by another process"), "{message}");
    }
}
