//! The state machine's version: which operations a node understands and how it applies
//! them. Log entries and snapshots (the disk format, `storage::format`) carry the version
//! that wrote them, so a node never applies what it does not understand as something else (an
//! older node would otherwise read a newer operation as a malformed no-op, and the replicas
//! would silently diverge): it stops and says which versions met.
//!
//! A rolling upgrade runs old and new nodes side by side, so the versions also say what may
//! be proposed: each operation type names the version that introduced it (`introduced_in`),
//! every node stamps its version on its raft traffic, and a leader proposes an operation only
//! once every voter has said it runs that version or later (`Versions::behind`). An entry is
//! stamped with the highest version among its operations, not the leader's own, so entries of
//! old operations stay readable by old nodes while an upgrade is under way.
//!
//! Raise `STATE_MACHINE_VERSION` with every new operation or change in how one applies, and
//! give the new operation's `introduced_in` arm that version.

use std::collections::BTreeMap;

use crate::storage::format::{ApplyOpRequest, OpType};

/// The version this build understands.
pub const STATE_MACHINE_VERSION: u32 = 2;

/// The first version: every node understands it, so its operations need no check.
pub const BASE_VERSION: u32 = 1;

const _: () = assert!(BASE_VERSION <= STATE_MACHINE_VERSION);

/// The version a log entry or snapshot was written with: 0 on the wire is data written
/// before versions existed, which version 1 reads.
pub fn written_with(wire: u32) -> u32 {
    wire.max(BASE_VERSION)
}

/// The state machine version that introduced each operation type. No wildcard arm: a new
/// operation type does not build until it names its version here.
pub fn introduced_in(op: OpType) -> u32 {
    match op {
        OpType::Put
        | OpType::Reserve
        | OpType::Tick
        | OpType::Delete
        | OpType::Release
        | OpType::CheckClientState
        | OpType::Bury
        | OpType::Kick
        | OpType::Kickn
        | OpType::Touch
        | OpType::GetJob
        | OpType::PeekReady
        | OpType::PeekBuried
        | OpType::PeekDelayed
        | OpType::StatsJobYaml
        | OpType::StatsTubeYaml
        | OpType::StatsYaml
        | OpType::ListTubes
        | OpType::ReserveJob
        | OpType::PauseTube
        | OpType::ClientGone
        | OpType::ProxyGone
        | OpType::UseTube
        | OpType::WatchTube
        | OpType::IgnoreTube
        | OpType::ProxyLease
        | OpType::ClientHello
        | OpType::NewLeader
        | OpType::DiscardPut => 1,
        // The console's move.
        OpType::MoveJob => 2,
        // Not an operation: no version applies it.
        OpType::Unknown => u32::MAX,
    }
}

/// The versions a node runs with: the one it understands and the table of which version
/// introduced each operation. Both are this build's (`Versions::default`) but in the
/// simulator, which runs one node as an older version and declares an operation newer to
/// rehearse an upgrade.
#[derive(Clone, Copy, Debug)]
pub struct Versions {
    /// The highest version this node applies, and the one it reports to its peers.
    pub understood: u32,
    /// Which version introduced each operation type.
    pub introduced_in: fn(OpType) -> u32,
}

impl Default for Versions {
    fn default() -> Self {
        Versions { understood: STATE_MACHINE_VERSION, introduced_in }
    }
}

impl Versions {
    /// The version an entry of `ops` is stamped with: the highest that introduced one of
    /// them, so a node of that version or later can apply it.
    pub fn entry_version(&self, ops: &[ApplyOpRequest]) -> u32 {
        let op_version = |request: &ApplyOpRequest| OpType::try_from(request.op).map_or(u32::MAX, self.introduced_in);
        ops.iter().map(op_version).max().unwrap_or(BASE_VERSION).max(BASE_VERSION)
    }

    /// The voters that do not run version `needs` or later, as far as this node knows: each
    /// with the version it last reported (`heard`; None when it has not been heard from since
    /// this node started, which counts as behind). `me` is this node, which runs `understood`.
    pub fn behind(&self, needs: u32, me: u64, voters: &[u64], heard: &BTreeMap<u64, u32>) -> Vec<(u64, Option<u32>)> {
        let version = |voter: u64| if voter == me { Some(self.understood) } else { heard.get(&voter).copied() };
        voters.iter().map(|&voter| (voter, version(voter))).filter(|(_, v)| v.is_none_or(|v| v < needs)).collect()
    }
}

/// Why a node that understands up to version `understood` cannot apply data written with
/// version `theirs`, if it cannot.
pub fn unsupported(what: &str, theirs: u32, understood: u32) -> Option<String> {
    let theirs = written_with(theirs);
    (theirs > understood).then(|| {
        format!(
            "{what} was written by state machine version {theirs}, and this node understands up to version {understood}: upgrade this node before it applies it"
        )
    })
}

/// A refused proposal's explanation: which voters are behind, and what they run.
pub fn describe_behind(behind: &[(u64, Option<u32>)]) -> String {
    let one = |(id, version): &(u64, Option<u32>)| match version {
        Some(v) => format!("node {id} runs version {v}"),
        None => format!("node {id} has not been heard from"),
    };
    behind.iter().map(one).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation of this build is of a version it understands, and the base version's
    /// need no voter to be asked.
    #[test]
    fn every_operation_is_of_a_known_version() {
        for op in (1..).map_while(|n| OpType::try_from(n).ok()) {
            let v = introduced_in(op);
            assert!((BASE_VERSION..=STATE_MACHINE_VERSION).contains(&v), "{op:?} is of version {v}");
        }
        assert_eq!(introduced_in(OpType::Unknown), u32::MAX);
    }

    /// An entry is stamped with the highest version among its operations (the base version
    /// when it has none), not the version of the node that writes it.
    #[test]
    fn entries_are_stamped_with_their_newest_operation() {
        let table = |op| if op == OpType::PauseTube { 3 } else { introduced_in(op) };
        let versions = Versions { understood: 5, introduced_in: table };
        let request = |op: OpType| ApplyOpRequest { op: op as i32, ..Default::default() };
        assert_eq!(versions.entry_version(&[]), BASE_VERSION);
        assert_eq!(versions.entry_version(&[request(OpType::Put), request(OpType::Tick)]), 1);
        assert_eq!(versions.entry_version(&[request(OpType::Put), request(OpType::PauseTube)]), 3);
    }

    /// A voter is behind when it reported a lower version or has not been heard from; the
    /// node itself counts with the version it runs.
    #[test]
    fn voters_behind_a_version() {
        let versions = Versions { understood: 2, introduced_in };
        let heard = BTreeMap::from([(2, 2), (3, 1), (9, 1)]);
        assert_eq!(versions.behind(2, 1, &[1, 2, 3, 4], &heard), vec![(3, Some(1)), (4, None)]);
        assert_eq!(versions.behind(1, 1, &[1, 2, 3], &heard), vec![]);
        assert_eq!(versions.behind(3, 1, &[1], &heard), vec![(1, Some(2))]);
        assert_eq!(describe_behind(&[(3, Some(1)), (4, None)]), "node 3 runs version 1, node 4 has not been heard from");
    }
}
