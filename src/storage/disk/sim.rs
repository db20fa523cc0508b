//! [`SimDisk`]: an in-memory [`Disk`] for the simulator that loses, on [`SimDisk::crash`],
//! exactly what a power loss may lose.
//!
//! Each file (an inode) has its durable bytes and its current bytes; names map to inodes
//! twice, as the running system sees them and as they would be after a crash. `sync` makes a
//! file's current bytes durable; `sync_dir` makes the names in one directory durable. A crash
//! throws away everything else, except that the caller may let the newest unsynced write
//! survive torn. The caller supplies that randomness, so the simulator's seed decides every
//! crash and the disk itself stays deterministic.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Disk;

/// An in-memory disk. Clones share the same files, so the simulator can keep a node's disk
/// while the node itself is dropped and rebuilt across a restart.
#[derive(Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<SimState>>,
}

/// What a name points at. The root (the empty path) is an implicit directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File(u64),
}

/// One file's bytes.
#[derive(Default)]
struct Inode {
    /// What reads see: every write, synced or not.
    data: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// The first offset where `data` may differ from `durable` (a write, truncate or rewrite
    /// since the last sync), so a sync copies only from there on; `None` when they agree.
    dirty_from: Option<usize>,
}

/// A write not yet made durable, kept so that a crash can leave the newest one torn.
struct UnsyncedWrite {
    inode: u64,
    offset: usize,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct SimState {
    /// Every file by inode number; those no name reaches are dropped at a crash.
    inodes: BTreeMap<u64, Inode>,
    /// The number the next created file gets.
    inode_next: u64,
    /// Names as the running system sees them.
    names: BTreeMap<PathBuf, Node>,
    /// Names as they would be after a crash.
    names_durable: BTreeMap<PathBuf, Node>,
    /// Writes since their file's last sync, oldest first.
    unsynced_writes: Vec<UnsyncedWrite>,
    /// When set, how many more calls succeed before every call fails (until a crash).
    calls_until_fault: Option<u64>,
    /// When set, the bytes the files may hold in all: a write past it fails with ENOSPC.
    /// A crash keeps it (the disk is still full), as it keeps the files.
    capacity: Option<u64>,
    /// Every sync fails with EIO (until a crash), as on a disk that lost a write back.
    syncs_fail: bool,
    /// File and directory syncs done, for tests that count fsyncs.
    sync_count: u64,
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    /// A power loss: every write since its file's last sync is lost, and every name change
    /// since its directory's last sync is undone. With `tear` = `Some(r)`, the newest unsynced
    /// write of the whole disk keeps its first `r % (len + 1)` bytes at its offset, as a torn
    /// write does (if earlier writes to that file were lost, the gap reads as zeros, as a
    /// file system's hole does). Clears any fault set by [`SimDisk::fail_after`].
    pub fn crash(&self, tear: Option<u64>) {
        let mut state = self.lock();
        state.crash(tear);
    }

    /// Makes every call after the next `calls` ones fail with an I/O error, as a dying disk
    /// does, until the next crash; `None` heals the disk.
    pub fn fail_after(&self, calls: Option<u64>) {
        self.lock().calls_until_fault = calls;
    }

    /// Lets the files hold `bytes` in all from now on (`None`: no limit): a write that would
    /// pass it fails with ENOSPC, changing nothing, as on a full file system.
    pub fn fill_at(&self, bytes: Option<u64>) {
        self.lock().capacity = bytes;
    }

    /// The bytes the files hold in all.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }

    /// Makes every file and directory sync fail with EIO until the next crash.
    pub fn fail_syncs(&self) {
        self.lock().syncs_fail = true;
    }

    /// Flips every bit of the durable (and current) byte at `offset` of the file at `path`,
    /// so tests can check that corruption is detected.
    pub fn corrupt(&self, path: &Path, offset: u64) -> io::Result<()> {
        let mut state = self.lock();
        let inode = state.file_inode(&key(path)?)?;
        let file = state.inode_mut(inode)?;
        let at = usize::try_from(offset).map_err(|_| invalid("offset too large"))?;
        if at >= file.durable.len() || at >= file.data.len() {
            return Err(invalid("offset past the durable end of the file"));
        }
        file.durable[at] ^= 0xFF;
        file.data[at] ^= 0xFF;
        Ok(())
    }

    /// File and directory syncs done so far.
    pub fn sync_count(&self) -> u64 {
        self.lock().sync_count
    }

    /// The state. Each call leaves it consistent before it can panic, so a poisoned lock is
    /// taken over rather than unwrapped.
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state, after counting one call against an injected fault.
    fn call(&self) -> io::Result<MutexGuard<'_, SimState>> {
        let mut state = self.lock();
        match state.calls_until_fault {
            Some(0) => return Err(io::Error::other("injected disk fault")),
            Some(calls) => state.calls_until_fault = Some(calls - 1),
            None => {}
        }
        Ok(state)
    }
}

/// A path as a map key: its normal components only, so `a/./b/` and `a/b` are one name.
fn key(path: &Path) -> io::Result<PathBuf> {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => normal.push(part),
            Component::CurDir => {}
            _ => return Err(invalid("paths must be relative and stay under the root")),
        }
    }
    Ok(normal)
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn invalid(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

fn not_found() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such file or directory")
}

impl Inode {
    fn mark_dirty(&mut self, offset: usize) {
        self.dirty_from = Some(self.dirty_from.map_or(offset, |from| from.min(offset)));
    }
}

impl SimState {
    fn is_dir(&self, path: &Path) -> bool {
        path.as_os_str().is_empty() || self.names.get(path) == Some(&Node::Dir)
    }

    fn file_inode(&self, path: &Path) -> io::Result<u64> {
        match self.names.get(path) {
            Some(Node::File(inode)) => Ok(*inode),
            Some(Node::Dir) => Err(invalid("is a directory")),
            None => Err(not_found()),
        }
    }

    fn inode_mut(&mut self, inode: u64) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&inode).ok_or_else(not_found)
    }

    /// The file at `path`, created empty (not yet durably named) if missing.
    fn file_or_create(&mut self, path: &Path) -> io::Result<u64> {
        if self.names.contains_key(path) {
            return self.file_inode(path);
        }
        if path.as_os_str().is_empty() || !self.is_dir(&parent(path)) {
            return Err(not_found());
        }
        let inode = self.inode_next;
        self.inode_next += 1;
        self.inodes.insert(inode, Inode::default());
        self.names.insert(path.to_path_buf(), Node::File(inode));
        Ok(inode)
    }

    fn used_bytes(&self) -> u64 {
        self.inodes.values().map(|file| file.data.len() as u64).sum()
    }

    /// Refuses, with ENOSPC, growing the file `inode` to `end` bytes past the capacity.
    fn room_for(&self, inode: u64, end: usize) -> io::Result<()> {
        let Some(capacity) = self.capacity else { return Ok(()) };
        let now = self.inodes.get(&inode).map_or(0, |file| file.data.len());
        let grown = end.saturating_sub(now) as u64;
        match self.used_bytes() + grown > capacity {
            true => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
            false => Ok(()),
        }
    }

    /// Fails a sync with EIO while syncs are set to fail.
    fn sync_allowed(&self) -> io::Result<()> {
        match self.syncs_fail {
            true => Err(io::Error::from_raw_os_error(libc::EIO)),
            false => Ok(()),
        }
    }

    fn write(&mut self, inode: u64, offset: usize, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.unsynced_writes.push(UnsyncedWrite { inode, offset, bytes: bytes.to_vec() });
    }

    fn crash(&mut self, tear: Option<u64>) {
        self.names = self.names_durable.clone();
        let orphans: Vec<PathBuf> = self.names.keys().filter(|name| name.ancestors().skip(1).any(|dir| !self.is_dir(dir))).cloned().collect();
        for orphan in orphans {
            self.names.remove(&orphan);
        }
        self.names_durable = self.names.clone();
        for file in self.inodes.values_mut() {
            file.data = file.durable.clone();
            file.dirty_from = None;
        }
        if let (Some(random), Some(last)) = (tear, self.unsynced_writes.pop()) {
            self.keep_torn(&last, random);
        }
        self.unsynced_writes.clear();
        self.calls_until_fault = None;
        self.syncs_fail = false;
        let named: Vec<u64> = self.names.values().filter_map(|node| if let Node::File(i) = node { Some(*i) } else { None }).collect();
        self.inodes.retain(|inode, _| named.contains(inode));
    }

    /// Lays the first `random % (len + 1)` bytes of `write` onto its file's durable bytes.
    fn keep_torn(&mut self, write: &UnsyncedWrite, random: u64) {
        let len = write.bytes.len() as u64;
        let kept = (random % (len + 1)) as usize;
        let Some(file) = self.inodes.get_mut(&write.inode).filter(|_| kept > 0) else { return };
        let end = write.offset + kept;
        if file.durable.len() < end {
            file.durable.resize(end, 0);
        }
        file.durable[write.offset..end].copy_from_slice(&write.bytes[..kept]);
        file.data = file.durable.clone();
    }
}

impl Disk for SimDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let dir = key(dir)?;
        let mut state = self.call()?;
        let mut ancestors: Vec<&Path> = dir.ancestors().filter(|a| !a.as_os_str().is_empty()).collect();
        ancestors.reverse();
        for ancestor in ancestors {
            match state.names.get(ancestor) {
                None => {
                    state.names.insert(ancestor.to_path_buf(), Node::Dir);
                }
                Some(Node::Dir) => {}
                Some(Node::File(_)) => return Err(io::Error::new(io::ErrorKind::AlreadyExists, "a file is in the way")),
            }
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let dir = key(dir)?;
        let state = self.call()?;
        if !state.is_dir(&dir) {
            return Err(not_found());
        }
        let mut names: Vec<String> = state
            .names
            .keys()
            .filter(|name| parent(name) == dir)
            .filter_map(|name| name.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        names.sort();
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let path = key(path)?;
        let mut state = self.call()?;
        let inode = state.file_inode(&path)?;
        Ok(state.inode_mut(inode)?.data.clone())
    }

    fn write_at(&self, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let path = key(path)?;
        let offset = usize::try_from(offset).map_err(|_| invalid("offset too large"))?;
        let mut state = self.call()?;
        let inode = state.file_or_create(&path)?;
        let end = offset + bytes.len();
        state.room_for(inode, end)?;
        let file = state.inode_mut(inode)?;
        if file.data.len() < end {
            file.data.resize(end, 0);
        }
        file.data[offset..end].copy_from_slice(bytes);
        file.mark_dirty(offset);
        state.write(inode, offset, bytes);
        Ok(())
    }

    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let path = key(path)?;
        let mut state = self.call()?;
        let inode = state.file_or_create(&path)?;
        // Replacing the content: only growth needs room.
        state.room_for(inode, bytes.len())?;
        let file = state.inode_mut(inode)?;
        file.data = bytes.to_vec();
        file.mark_dirty(0);
        state.write(inode, 0, bytes);
        Ok(())
    }

    fn sync(&self, path: &Path) -> io::Result<()> {
        let path = key(path)?;
        let mut state = self.call()?;
        state.sync_allowed()?;
        let inode = state.file_inode(&path)?;
        let file = state.inode_mut(inode)?;
        let from = file.dirty_from.take().unwrap_or(usize::MAX).min(file.durable.len()).min(file.data.len());
        file.durable.truncate(from);
        file.durable.extend_from_slice(&file.data[from..]);
        state.unsynced_writes.retain(|write| write.inode != inode);
        state.sync_count += 1;
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = key(dir)?;
        let mut state = self.call()?;
        state.sync_allowed()?;
        if !state.is_dir(&dir) {
            return Err(not_found());
        }
        let mut children: Vec<PathBuf> = state.names.keys().filter(|n| parent(n) == dir).cloned().collect();
        children.extend(state.names_durable.keys().filter(|n| parent(n) == dir).cloned());
        for child in children {
            match state.names.get(&child).copied() {
                Some(node) => state.names_durable.insert(child, node),
                None => state.names_durable.remove(&child),
            };
        }
        state.sync_count += 1;
        Ok(())
    }

    fn truncate(&self, path: &Path, len_bytes: u64) -> io::Result<()> {
        let path = key(path)?;
        let len = usize::try_from(len_bytes).map_err(|_| invalid("length too large"))?;
        let mut state = self.call()?;
        let inode = state.file_inode(&path)?;
        let file = state.inode_mut(inode)?;
        file.data.resize(len, 0);
        file.mark_dirty(len);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (key(from)?, key(to)?);
        let mut state = self.call()?;
        let inode = state.file_inode(&from)?;
        if state.is_dir(&to) || !state.is_dir(&parent(&to)) {
            return Err(invalid("rename target is a directory or has no parent"));
        }
        state.names.remove(&from);
        state.names.insert(to, Node::File(inode));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let path = key(path)?;
        let mut state = self.call()?;
        state.file_inode(&path)?;
        state.names.remove(&path);
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let path = key(path)?;
        let state = self.call()?;
        Ok(state.is_dir(&path) || state.names.contains_key(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(path: &str) -> &Path {
        Path::new(path)
    }

    // A crash keeps synced bytes and drops unsynced ones, and reads see both before it.
    #[test]
    fn crash_drops_unsynced_writes() {
        let disk = SimDisk::new();
        disk.create_dir_all(p("d")).expect("mkdir");
        disk.sync_dir(p("")).expect("sync root");
        disk.write_at(p("d/f"), 0, b"synced").expect("write");
        disk.sync(p("d/f")).expect("sync");
        disk.sync_dir(p("d")).expect("sync dir");
        disk.write_at(p("d/f"), 6, b" lost").expect("write");
        assert_eq!(disk.read(p("d/f")).expect("read"), b"synced lost");
        disk.crash(None);
        assert_eq!(disk.read(p("d/f")).expect("read"), b"synced");
    }

    // Creations, renames and removals are undone by a crash until their directory is synced,
    // and a directory whose own name was never synced vanishes with everything in it.
    #[test]
    fn crash_undoes_unsynced_directory_changes() {
        let disk = SimDisk::new();
        disk.create_dir_all(p("d")).expect("mkdir");
        disk.write_new(p("d/a"), b"a").expect("write");
        disk.sync(p("d/a")).expect("sync");
        disk.sync_dir(p("d")).expect("sync dir");
        disk.crash(None);
        assert!(!disk.exists(p("d")).expect("exists"), "d itself was never synced into the root");

        disk.create_dir_all(p("d")).expect("mkdir");
        disk.sync_dir(p("")).expect("sync root");
        disk.write_new(p("d/a"), b"a").expect("write");
        disk.sync(p("d/a")).expect("sync");
        disk.sync_dir(p("d")).expect("sync dir");
        disk.rename(p("d/a"), p("d/b")).expect("rename");
        disk.write_new(p("d/c"), b"c").expect("write");
        disk.sync(p("d/c")).expect("sync");
        disk.crash(None);
        assert_eq!(disk.list(p("d")).expect("list"), vec!["a".to_string()]);

        disk.remove(p("d/a")).expect("remove");
        disk.sync_dir(p("d")).expect("sync dir");
        disk.crash(None);
        assert!(disk.list(p("d")).expect("list").is_empty());
    }

    // A tear keeps a prefix of the newest unsynced write only, its length chosen by the
    // caller's number modulo the write's length plus one, at the write's own offset (earlier
    // lost writes before it read as zeros, a hole).
    #[test]
    fn tear_keeps_a_prefix_of_the_newest_write() {
        let disk = SimDisk::new();
        disk.write_at(p("f"), 0, b"0123").expect("write");
        disk.sync(p("f")).expect("sync");
        disk.sync_dir(p("")).expect("sync root");
        disk.write_at(p("f"), 4, b"xyz").expect("write");
        disk.crash(Some(4 + 2));
        assert_eq!(disk.read(p("f")).expect("read"), b"0123xy");
        disk.write_at(p("f"), 6, b"abc").expect("write");
        disk.write_at(p("f"), 9, b"defgh").expect("write");
        disk.crash(Some(6));
        assert_eq!(disk.read(p("f")).expect("read"), b"0123xy", "a tear of zero bytes keeps nothing");
        disk.write_at(p("f"), 6, b"abc").expect("write");
        disk.write_at(p("f"), 9, b"defgh").expect("write");
        disk.crash(Some(2));
        assert_eq!(disk.read(p("f")).expect("read"), b"0123xy\0\0\0de");
    }

    // Writes inside synced bytes are lost by a crash until synced, and a sync keeps them
    // (a preallocated file overwritten in place), as does a sync after a truncate.
    #[test]
    fn overwrites_are_durable_only_once_synced() {
        let disk = SimDisk::new();
        disk.write_at(p("f"), 0, &[0; 8]).expect("preallocate");
        disk.sync(p("f")).expect("sync");
        disk.sync_dir(p("")).expect("sync root");
        disk.write_at(p("f"), 2, b"ab").expect("overwrite");
        disk.crash(None);
        assert_eq!(disk.read(p("f")).expect("read"), vec![0; 8]);
        disk.write_at(p("f"), 2, b"ab").expect("overwrite");
        disk.sync(p("f")).expect("sync");
        disk.crash(None);
        assert_eq!(disk.read(p("f")).expect("read"), b"\0\0ab\0\0\0\0");
        disk.truncate(p("f"), 3).expect("truncate");
        disk.write_at(p("f"), 3, b"c").expect("write");
        disk.sync(p("f")).expect("sync");
        disk.crash(None);
        assert_eq!(disk.read(p("f")).expect("read"), b"\0\0ac");
    }

    // An injected fault fails every call after the allowed ones until a crash heals it.
    #[test]
    fn fault_fails_calls_until_crash() {
        let disk = SimDisk::new();
        disk.fail_after(Some(1));
        disk.write_at(p("f"), 0, b"a").expect("the one allowed call");
        assert!(disk.sync(p("f")).is_err());
        assert!(disk.read(p("f")).is_err());
        disk.crash(None);
        assert!(!disk.exists(p("f")).expect("exists after the crash heals the disk"));
    }

    // Corrupting flips a durable byte, and refuses offsets past the durable end.
    #[test]
    fn corrupt_flips_a_durable_byte() {
        let disk = SimDisk::new();
        disk.write_new(p("f"), &[0x0F, 0x00]).expect("write");
        disk.sync(p("f")).expect("sync");
        disk.sync_dir(p("")).expect("sync root");
        disk.corrupt(p("f"), 0).expect("corrupt");
        assert!(disk.corrupt(p("f"), 2).is_err());
        disk.crash(None);
        assert_eq!(disk.read(p("f")).expect("read"), vec![0xF0, 0x00]);
    }

    // A full disk refuses growth, changing nothing, but takes writes within what files hold;
    // it stays full across a crash until given room.
    #[test]
    fn a_full_disk_refuses_growth_with_enospc() {
        let disk = SimDisk::new();
        disk.write_new(p("a"), b"0123456789").expect("write");
        disk.sync(p("a")).expect("sync");
        disk.sync_dir(p("")).expect("sync root");
        disk.fill_at(Some(12));
        let full = disk.write_at(p("a"), 8, b"abcdef").expect_err("past the capacity");
        assert_eq!(full.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(disk.read(p("a")).expect("read"), b"0123456789", "a refused write changes nothing");
        disk.write_at(p("a"), 0, b"ab").expect("an overwrite needs no room");
        disk.write_at(p("a"), 10, b"cd").expect("growth within the capacity");
        disk.sync(p("a")).expect("sync");
        disk.crash(None);
        assert!(disk.write_new(p("b"), b"x").is_err(), "still full after a crash");
        disk.fill_at(None);
        disk.write_new(p("b"), b"x").expect("room again");
        assert_eq!(disk.used_bytes(), 13);
    }

    // Failing syncs fail with EIO, file and directory alike, until a crash.
    #[test]
    fn failing_syncs_fail_until_a_crash() {
        let disk = SimDisk::new();
        disk.write_new(p("a"), b"kept").expect("write");
        disk.sync(p("a")).expect("sync");
        disk.sync_dir(p("")).expect("sync root");
        disk.fail_syncs();
        disk.write_at(p("a"), 4, b" lost").expect("writes still go");
        assert_eq!(disk.sync(p("a")).expect_err("sync fails").raw_os_error(), Some(libc::EIO));
        assert_eq!(disk.sync_dir(p("")).expect_err("sync fails").raw_os_error(), Some(libc::EIO));
        disk.crash(None);
        assert_eq!(disk.read(p("a")).expect("read"), b"kept", "what no sync took is lost");
        disk.sync(p("a")).expect("syncs work after the crash");
    }
}
