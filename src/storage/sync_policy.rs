//! beanstalkd's fsync policies (`-f MS`, `-F`) as a disk wrapper: syncs pass through always,
//! at most once per interval, or never. Anything but "always" can lose acknowledged writes
//! when the machine (not just the process) goes down, exactly as beanstalkd does.

use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use super::disk::Disk;

/// When file syncs reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every sync (the default: an acknowledged write survives a power loss).
    Always,
    /// At most one per interval; the syncs in between are skipped (`-f MS`).
    AtMostEvery(Duration),
    /// None (`-F`).
    Never,
}

/// A disk whose file syncs follow a policy. Directory syncs always pass through: they are
/// rare (new segments, snapshots) and keep the files findable after a crash.
pub struct PolicyDisk<D> {
    inner: D,
    policy: SyncPolicy,
    /// When a sync last reached the disk (`AtMostEvery` only).
    last_sync: Mutex<Option<tokio::time::Instant>>,
}

impl<D: Disk> PolicyDisk<D> {
    pub fn new(inner: D, policy: SyncPolicy) -> Self {
        PolicyDisk { inner, policy, last_sync: Mutex::new(None) }
    }

    fn sync_due(&self) -> bool {
        match self.policy {
            SyncPolicy::Always => true,
            SyncPolicy::Never => false,
            SyncPolicy::AtMostEvery(interval) => {
                let now = tokio::time::Instant::now();
                let mut last = self.last_sync.lock().unwrap_or_else(|p| p.into_inner());
                let due = last.is_none_or(|at| now.duration_since(at) >= interval);
                if due {
                    *last = Some(now);
                }
                due
            }
        }
    }
}

impl<D: Disk> Disk for PolicyDisk<D> {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn write_at(&self, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_at(path, offset, bytes)
    }
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_new(path, bytes)
    }
    fn sync(&self, path: &Path) -> io::Result<()> {
        if self.sync_due() {
            self.inner.sync(path)
        } else {
            Ok(())
        }
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn truncate(&self, path: &Path, len_bytes: u64) -> io::Result<()> {
        self.inner.truncate(path, len_bytes)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimDisk;

    fn synced_after_crash(policy: SyncPolicy) -> Vec<u8> {
        let sim = SimDisk::new();
        let disk = PolicyDisk::new(sim.clone(), policy);
        let path = Path::new("f");
        disk.write_at(path, 0, b"abc").unwrap();
        disk.sync(path).unwrap();
        disk.sync_dir(Path::new("")).unwrap();
        disk.write_at(path, 3, b"def").unwrap();
        disk.sync(path).unwrap();
        sim.crash(None);
        sim.read(path).unwrap_or_default()
    }

    /// Always keeps every synced write; Never keeps none; AtMostEvery keeps the first sync of
    /// an interval and skips the next one inside it.
    #[test]
    fn policies_decide_what_survives_a_crash() {
        assert_eq!(synced_after_crash(SyncPolicy::Always), b"abcdef");
        assert_eq!(synced_after_crash(SyncPolicy::Never), b"");
        assert_eq!(synced_after_crash(SyncPolicy::AtMostEvery(Duration::from_secs(3600))), b"abc");
    }
}
