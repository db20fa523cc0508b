//! Planted bugs. With the `mutants` feature, the simulator picks at most one per run (by name,
//! from `COOLBEANS_MUTANT`) and `planted` answers whether it is the one; without the feature
//! `planted` is `false` everywhere and the compiler removes the buggy branches.

/// The bugs that can be planted, each one that the simulator must catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutant {
    /// The node answers a write before its log entry is on disk.
    AckBeforeFsync,
    /// Deleting a buried job leaves it in the tube's buried index.
    DeleteBuriedKeepsIndex,
    /// A put hands the job to two waiting reserves.
    JobToTwoWaiters,
    /// A follower applies entries it has received but that are not committed yet.
    ApplyUncommitted,
    /// A snapshot does not carry the clients waiting in reserve.
    SnapshotForgetsWaiters,
    /// The proxy drops the first reservation result after a leader change.
    DropReservationAfterLeaderChange,
}

impl Mutant {
    pub const ALL: [Mutant; 6] = [
        Mutant::AckBeforeFsync,
        Mutant::DeleteBuriedKeepsIndex,
        Mutant::JobToTwoWaiters,
        Mutant::ApplyUncommitted,
        Mutant::SnapshotForgetsWaiters,
        Mutant::DropReservationAfterLeaderChange,
    ];

    /// The name used in `COOLBEANS_MUTANT` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::AckBeforeFsync => "ack-before-fsync",
            Mutant::DeleteBuriedKeepsIndex => "delete-buried-keeps-index",
            Mutant::JobToTwoWaiters => "job-to-two-waiters",
            Mutant::ApplyUncommitted => "apply-uncommitted",
            Mutant::SnapshotForgetsWaiters => "snapshot-forgets-waiters",
            Mutant::DropReservationAfterLeaderChange => "drop-reservation-after-leader-change",
        }
    }

    pub fn from_name(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|m| m.name() == name)
    }
}

#[cfg(feature = "mutants")]
static PLANTED: std::sync::OnceLock<Option<Mutant>> = std::sync::OnceLock::new();

/// The planted bug, read once from `COOLBEANS_MUTANT`.
#[cfg(feature = "mutants")]
pub fn current() -> Option<Mutant> {
    *PLANTED.get_or_init(|| std::env::var("COOLBEANS_MUTANT").ok().and_then(|n| Mutant::from_name(&n)))
}

/// Whether `m` is the planted bug.
#[inline]
pub fn planted(m: Mutant) -> bool {
    #[cfg(feature = "mutants")]
    {
        current() == Some(m)
    }
    #[cfg(not(feature = "mutants"))]
    {
        let _ = m;
        false
    }
}

/// For `DropReservationAfterLeaderChange`: a proxy saw the leader move.
static LEADER_MOVED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Notes that a proxy followed the leader to another node.
pub fn note_leader_change() {
    if planted(Mutant::DropReservationAfterLeaderChange) {
        LEADER_MOVED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether the leader moved since the last call.
pub fn take_leader_change() -> bool {
    LEADER_MOVED.swap(false, std::sync::atomic::Ordering::Relaxed)
}
