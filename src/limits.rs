//! Every limit in one place, each with why it is what it is.

/// beanstalkd's default maximum job body (`-z`): 65535 bytes.
pub const JOB_BODY_BYTES_MAX_DEFAULT: usize = 65_535;

/// The largest job body `-z` may allow: a body travels in one raft entry and one gRPC message,
/// and tonic's default message limit is 4 MiB.
pub const JOB_BODY_BYTES_MAX_LIMIT: usize = 3 * 1024 * 1024;

const _: () = assert!(JOB_BODY_BYTES_MAX_DEFAULT <= JOB_BODY_BYTES_MAX_LIMIT);

/// Answers a connection holds encoded before it writes them out. A client may pipeline
/// thousands of commands in one read (2000 `peek` of a 64 KB job are 16 KB); encoding all their
/// answers before the first write took 260 MB. Past this the connection writes, and runs no
/// further command until the client has taken the answers, so it holds at most this plus one
/// answer. 64 KiB is enough to batch many small answers into one write.
pub const CONNECTION_OUTPUT_BYTES_MAX: usize = 64 * 1024;

/// A connection's input or output buffer that grew past this (a large put, a large answer) is
/// replaced by a small one once drained: an idle connection otherwise keeps the largest size
/// it ever needed. Larger than one default-sized job, so a client that puts or peeks 64 KB jobs
/// one at a time does not reallocate for each.
pub const CONNECTION_BUFFER_BYTES_KEPT_MAX: usize = 128 * 1024;

// A connection that writes at the output bound keeps its buffer between writes.
const _: () = assert!(CONNECTION_OUTPUT_BYTES_MAX <= CONNECTION_BUFFER_BYTES_KEPT_MAX);
const _: () = assert!(JOB_BODY_BYTES_MAX_DEFAULT < CONNECTION_BUFFER_BYTES_KEPT_MAX);

/// File descriptors a front end leaves for everything but its clients' connections: the
/// write-ahead log's segments and snapshot files (a rotation or a compaction opens several at
/// once), directory syncs, the listener, the runtime's own, and connections to peers. Storage
/// that runs out of descriptors stops the node; a front end that runs out only makes new
/// clients wait. (A process allowed fewer than twice this keeps half of its descriptors.)
pub const FDS_RESERVED_MAX: u64 = 64;
