//! The state machine's version: which operations a node understands and how it applies
//! them. Log entries and snapshots carry the version that wrote them, so a node never applies
//! what it does not understand as something else (an older node would otherwise read a newer
//! operation as a malformed no-op, and the replicas would silently diverge): it stops and
//! says which versions met.
//!
//! Raise `STATE_MACHINE_VERSION` with every new operation or change in how one applies.

/// The version this build understands, and writes.
pub const STATE_MACHINE_VERSION: u32 = 1;

/// The version a log entry or snapshot was written with: 0 on the wire is data written
/// before versions existed, which version 1 reads.
pub fn written_with(wire: u32) -> u32 {
    wire.max(1)
}

/// Why this node cannot apply data written with version `theirs`, if it cannot.
pub fn unsupported(what: &str, theirs: u32) -> Option<String> {
    let theirs = written_with(theirs);
    (theirs > STATE_MACHINE_VERSION).then(|| {
        format!(
            "{what} was written by state machine version {theirs}, and this node understands up to version {STATE_MACHINE_VERSION}: upgrade this node before it applies it"
        )
    })
}
