//! beanstalkd's fsync policies (`-f MS`, `-F`) as a disk wrapper over the log's batch syncs:
//! made always, at most once per interval (and then at the latest an interval after a batch
//! went unsynced, by [`PolicyDisk::sync_overdue`]), or never. Anything but "always" can lose
//! acknowledged writes when the machine (not just the process) goes down, exactly as
//! beanstalkd does. Every other sync is made whatever the policy: a snapshot, the segment a
//! compaction starts, and a segment the log leaves for the next one, so a power loss loses
//! at most the unsynced tail of the log, never what a compaction promised, and never leaves
//! a torn segment before another (which recovery would take for damage).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
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

impl SyncPolicy {
    /// How long an acknowledged write may stay unsynced while the `-f` timer runs: a batch put
    /// off falls due an interval later, and the timer finds it within one of its periods.
    /// `None` when no bound holds (`-F`).
    pub fn unsynced_at_most(&self) -> Option<Duration> {
        match *self {
            SyncPolicy::Always => Some(Duration::ZERO),
            SyncPolicy::AtMostEvery(interval) => Some(interval + overdue_check_period(interval)),
            SyncPolicy::Never => None,
        }
    }
}

/// How often the `-f` timer looks for overdue batches.
fn overdue_check_period(interval: Duration) -> Duration {
    (interval / 2).max(Duration::from_millis(1))
}

/// A disk whose batch syncs follow a policy.
pub struct PolicyDisk<D> {
    inner: D,
    policy: SyncPolicy,
    skipped: Mutex<Skipped>,
}

/// Batch syncs put off.
#[derive(Default)]
struct Skipped {
    /// When a batch sync last reached the disk (`AtMostEvery` only).
    last_sync: Option<tokio::time::Instant>,
    /// The file whose batch syncs were put off, and since when: one at most, as a batch of
    /// another file first syncs it.
    owed: Option<(PathBuf, tokio::time::Instant)>,
}

impl<D: Disk> PolicyDisk<D> {
    pub fn new(inner: D, policy: SyncPolicy) -> Self {
        PolicyDisk { inner, policy, skipped: Mutex::new(Skipped::default()) }
    }

    /// The interval after which a batch sync put off is made anyway; `None` when there is
    /// none (every sync is made, or none is).
    pub fn interval(&self) -> Option<Duration> {
        match self.policy {
            SyncPolicy::AtMostEvery(interval) => Some(interval),
            SyncPolicy::Always | SyncPolicy::Never => None,
        }
    }

    /// Makes the batch syncs put off for an interval or longer (`-f MS`), so a write is
    /// durable within about the interval even when no other write follows it.
    pub fn sync_overdue(&self) -> io::Result<()> {
        let Some(interval) = self.interval() else { return Ok(()) };
        let mut skipped = self.skipped();
        let now = tokio::time::Instant::now();
        if let Some((path, _)) = skipped.owed.take_if(|(_, since)| now.duration_since(*since) >= interval) {
            self.inner.sync(&path)?;
            skipped.last_sync = Some(now);
        }
        Ok(())
    }

    fn skipped(&self) -> MutexGuard<'_, Skipped> {
        self.skipped.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the batch sync asked for now is made.
    fn batch_sync_due(&self, skipped: &Skipped, now: tokio::time::Instant) -> bool {
        match self.policy {
            SyncPolicy::Always => true,
            SyncPolicy::Never => false,
            SyncPolicy::AtMostEvery(interval) => skipped.last_sync.is_none_or(|at| now.duration_since(at) >= interval),
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
        self.inner.sync(path)
    }
    fn sync_batch(&self, path: &Path) -> io::Result<()> {
        let mut skipped = self.skipped();
        // The log moved on to another segment: the one it left is made whole first.
        if let Some((left, _)) = skipped.owed.take_if(|(owed, _)| owed != path) {
            self.inner.sync(&left)?;
        }
        let now = tokio::time::Instant::now();
        if self.batch_sync_due(&skipped, now) {
            self.inner.sync(path)?;
            skipped.owed = None;
            skipped.last_sync = Some(now);
        } else {
            skipped.owed.get_or_insert_with(|| (path.to_path_buf(), now));
        }
        Ok(())
    }
    fn puts_batch_syncs_off(&self) -> bool {
        self.policy != SyncPolicy::Always
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn truncate(&self, path: &Path, len_bytes: u64) -> io::Result<()> {
        self.inner.truncate(path, len_bytes)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if let Some((owed, _)) = self.skipped().owed.as_mut().filter(|(owed, _)| owed == from) {
            *owed = to.to_path_buf();
        }
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        // A file compaction removed owes no sync.
        self.skipped().owed.take_if(|(owed, _)| owed == path);
        self.inner.remove(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
}

/// Under `-f MS`, spawns the timer that makes a batch left unsynced durable within about MS
/// even when no write follows it (beanstalkd syncs on a timer too); under other policies,
/// nothing. The timer lives as long as the runtime (or simulated node) that spawned it.
pub fn spawn_overdue_timer<D: Disk>(disk: &Arc<PolicyDisk<D>>) {
    if let Some(interval) = disk.interval() {
        tokio::spawn(sync_overdue_batches(disk.clone(), interval));
    }
}

/// Syncs the batches overdue every period, until dropped.
#[cfg_attr(madsim, allow(deprecated))] // madsim runs a blocking task as an ordinary one.
async fn sync_overdue_batches<D: Disk>(disk: Arc<PolicyDisk<D>>, interval: Duration) {
    let period = overdue_check_period(interval);
    loop {
        tokio::time::sleep(period).await;
        let disk = disk.clone();
        match tokio::task::spawn_blocking(move || disk.sync_overdue()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "syncing the log on the -f timer failed"),
            Err(e) => tracing::error!(error = %e, "the -f timer's sync failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimDisk;

    /// Writes two batches to file `f` ("abc", then "def"), each with its batch sync.
    fn two_batches(policy: SyncPolicy) -> (SimDisk, PolicyDisk<SimDisk>) {
        let sim = SimDisk::new();
        let disk = PolicyDisk::new(sim.clone(), policy);
        let path = Path::new("f");
        disk.write_at(path, 0, b"abc").unwrap();
        disk.sync_batch(path).unwrap();
        disk.sync_dir(Path::new("")).unwrap();
        disk.write_at(path, 3, b"def").unwrap();
        disk.sync_batch(path).unwrap();
        (sim, disk)
    }

    fn synced_after_crash(policy: SyncPolicy) -> Vec<u8> {
        let (sim, _) = two_batches(policy);
        sim.crash(None);
        sim.read(Path::new("f")).unwrap_or_default()
    }

    /// For batches, Always keeps every synced write; Never keeps none; AtMostEvery keeps the
    /// first sync of an interval and skips the next one inside it.
    #[test]
    fn policies_decide_what_survives_a_crash() {
        assert_eq!(synced_after_crash(SyncPolicy::Always), b"abcdef");
        assert_eq!(synced_after_crash(SyncPolicy::Never), b"");
        assert_eq!(synced_after_crash(SyncPolicy::AtMostEvery(Duration::from_secs(3600))), b"abc");
    }

    /// Syncs other than a batch's are made under every policy, and a file the log left with
    /// a batch unsynced is synced when a batch of another file is.
    #[test]
    fn only_the_latest_batch_may_go_unsynced() {
        let sim = SimDisk::new();
        let disk = PolicyDisk::new(sim.clone(), SyncPolicy::Never);
        disk.write_at(Path::new("snapshot"), 0, b"state").unwrap();
        disk.sync(Path::new("snapshot")).unwrap();
        disk.write_at(Path::new("a"), 0, b"left").unwrap();
        disk.sync_batch(Path::new("a")).unwrap();
        disk.write_at(Path::new("b"), 0, b"next").unwrap();
        disk.sync_batch(Path::new("b")).unwrap();
        disk.sync_dir(Path::new("")).unwrap();
        sim.crash(None);
        assert_eq!(sim.read(Path::new("snapshot")).unwrap(), b"state");
        assert_eq!(sim.read(Path::new("a")).unwrap(), b"left");
        assert_eq!(sim.read(Path::new("b")).unwrap(), b"");
    }

    /// Under -f MS a batch left unsynced is synced once the interval has passed, even if no
    /// other write comes: by `sync_overdue`, which does nothing before then.
    #[test]
    fn overdue_batches_are_synced() {
        let (sim, disk) = two_batches(SyncPolicy::AtMostEvery(Duration::from_millis(20)));
        let path = Path::new("f");
        let syncs = sim.sync_count();
        disk.sync_overdue().unwrap();
        assert_eq!(sim.sync_count(), syncs, "not yet due");
        std::thread::sleep(Duration::from_millis(30));
        disk.sync_overdue().unwrap();
        sim.crash(None);
        assert_eq!(sim.read(path).unwrap(), b"abcdef");
    }
}
