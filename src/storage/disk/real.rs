//! [`RealDisk`]: the [`Disk`] calls on the real file system, under a root directory.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::Disk;

/// The real file system under `root`.
///
/// Write handles stay open in a map, so the log's writes (one per Raft batch) do not pay an
/// `open` each; every call that changes a file's identity or length by other means (truncate,
/// rewrite, rename, remove) drops the handle first.
pub struct RealDisk {
    /// Every path is taken relative to this directory.
    root: PathBuf,
    /// Open write handles, keyed by relative path.
    writers: Mutex<HashMap<PathBuf, File>>,
    /// Told each fsync's duration (for metrics), if set.
    sync_observer: Option<SyncObserver>,
}

/// What a [`RealDisk`] tells each fsync's duration.
pub type SyncObserver = Arc<dyn Fn(Duration) + Send + Sync>;

impl RealDisk {
    /// A disk whose paths are relative to `root`. Nothing is created until asked.
    pub fn new(root: impl Into<PathBuf>) -> RealDisk {
        RealDisk { root: root.into(), writers: Mutex::new(HashMap::new()), sync_observer: None }
    }

    /// This disk, telling `observer` how long each fsync took.
    pub fn observing_syncs(self, observer: Option<SyncObserver>) -> RealDisk {
        RealDisk { sync_observer: observer, ..self }
    }

    /// Runs `sync`, timed on tokio's clock when an observer wants it.
    fn timed(&self, sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let Some(observer) = &self.sync_observer else { return sync() };
        let started = tokio::time::Instant::now();
        let result = sync();
        observer(started.elapsed());
        result
    }

    /// The directory every path is relative to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full(&self, path: &Path) -> PathBuf {
        self.root.join(path)
    }

    /// The handle map. A panic while it was held cannot leave it inconsistent (each use is a
    /// single insert, remove or write), so a poisoned lock is taken over rather than unwrapped.
    fn writers(&self) -> MutexGuard<'_, HashMap<PathBuf, File>> {
        self.writers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn forget(&self, path: &Path) {
        self.writers().remove(path);
    }
}

impl Disk for RealDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(self.full(dir))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(self.full(dir))? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(self.full(path))
    }

    fn write_at(&self, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut writers = self.writers();
        if !writers.contains_key(path) {
            // Not in append mode: Linux's pwrite ignores the offset of a file opened so.
            let file = OpenOptions::new().create(true).truncate(false).write(true).open(self.full(path))?;
            writers.insert(path.to_path_buf(), file);
        }
        match writers.get(path) {
            Some(file) => file.write_all_at(bytes, offset),
            None => Err(io::Error::other("write handle vanished")),
        }
    }

    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.forget(path);
        let mut file = File::create(self.full(path))?;
        file.write_all(bytes)
    }

    fn sync(&self, path: &Path) -> io::Result<()> {
        if let Some(file) = self.writers().get(path) {
            return self.timed(|| file.sync_data());
        }
        let file = OpenOptions::new().write(true).open(self.full(path))?;
        self.timed(|| file.sync_data())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = File::open(self.full(dir))?;
        self.timed(|| dir.sync_all())
    }

    fn truncate(&self, path: &Path, len_bytes: u64) -> io::Result<()> {
        self.forget(path);
        OpenOptions::new().write(true).open(self.full(path))?.set_len(len_bytes)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.forget(from);
        self.forget(to);
        fs::rename(self.full(from), self.full(to))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.forget(path);
        fs::remove_file(self.full(path))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.full(path).try_exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every call works on the real file system under a fresh temporary root: appends through
    // a kept handle, rewrites, truncation, rename, listing and removal.
    #[test]
    fn real_disk_calls_work() {
        let root = std::env::temp_dir().join(format!("coolbeans-real-disk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let disk = RealDisk::new(&root);
        let (dir, file) = (Path::new("d"), Path::new("d/f"));
        disk.create_dir_all(dir).expect("mkdir");
        disk.write_at(file, 0, b"abc").expect("write");
        disk.write_at(file, 3, b"def").expect("write");
        disk.sync(file).expect("sync");
        disk.sync_dir(dir).expect("sync dir");
        assert_eq!(disk.read(file).expect("read"), b"abcdef");
        disk.truncate(file, 4).expect("truncate");
        disk.write_at(file, 4, b"!").expect("write after truncate");
        assert_eq!(disk.read(file).expect("read"), b"abcd!");
        disk.write_at(file, 1, b"X").expect("overwrite");
        disk.write_at(file, 7, b"Z").expect("write past the end");
        assert_eq!(disk.read(file).expect("read"), b"aXcd!\0\0Z");
        disk.write_new(Path::new("d/g"), b"new").expect("write");
        disk.rename(Path::new("d/g"), Path::new("d/a")).expect("rename");
        assert_eq!(disk.list(dir).expect("list"), vec!["a".to_string(), "f".to_string()]);
        disk.remove(file).expect("remove");
        assert!(!disk.exists(file).expect("exists"));
        assert!(disk.exists(Path::new("d/a")).expect("exists"));
        fs::remove_dir_all(&root).expect("clean up");
    }
}
