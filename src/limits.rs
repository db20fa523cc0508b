//! Every limit on what a process holds or takes in (sizes, counts, queues), in one place,
//! each with why it is what it is. Two kinds stay beside their code: the beanstalkd
//! protocol's own limits, in `protocol::limits` (the protocol is pure and stands alone), and
//! the timeout of one exchange, beside the exchange.

use std::time::Duration;

/// What a job counts for against `--max-jobs-bytes`: its body, its tube's name and this much
/// beside, about what it takes in a snapshot (its id, numbers and counters, and reserved-by;
/// the proto encoding of them stays under 100 bytes).
pub const JOB_OVERHEAD_BYTES: u64 = 128;

/// The bytes a job of `body_bytes` in tube `tube_bytes` long counts for.
pub fn job_bytes(body_bytes: usize, tube_bytes: usize) -> u64 {
    (body_bytes + tube_bytes) as u64 + JOB_OVERHEAD_BYTES
}

/// The default of `--max-jobs-bytes`, the jobs a node holds before puts get `OUT_OF_MEMORY`:
/// three quarters of [`SNAPSHOT_BYTES_MAX`], which must hold every job (a state too large to
/// snapshot stops the node at its next snapshot), leaving a quarter for sessions, tubes and the
/// table of answered writes.
pub const JOBS_BYTES_MAX_DEFAULT: u64 = SNAPSHOT_BYTES_MAX / 4 * 3;
/// The most `--max-jobs-bytes` may allow: seven eighths of a snapshot.
pub const JOBS_BYTES_MAX_LIMIT: u64 = SNAPSHOT_BYTES_MAX / 8 * 7;
const _: () = assert!(JOBS_BYTES_MAX_DEFAULT <= JOBS_BYTES_MAX_LIMIT);

/// The default of `--max-tubes`: past it, what would make a new tube gets `OUT_OF_MEMORY`.
/// Every tube is in each snapshot and in each `list-tubes` answer (which holds about 1.3
/// million of the longest names, see [`CLIENT_API_ANSWER_BYTES_MAX`]).
pub const TUBES_MAX_DEFAULT: usize = 100_000;

/// beanstalkd's default maximum job body (`-z`): 65535 bytes.
pub const JOB_BODY_BYTES_MAX_DEFAULT: usize = 65_535;

/// The largest job body `-z` may allow: a body travels in one raft entry and in one gRPC
/// message (a put, or a reserve's or peek's answer), which must fit in
/// [`CLIENT_API_REQUEST_BYTES_MAX`] with the message's other fields.
pub const JOB_BODY_BYTES_MAX_LIMIT: usize = 3 * 1024 * 1024;

/// Room for the fields of a message beside one job body (a tube name of at most 200 bytes,
/// ids, numbers, a caller id): far more than they take.
pub const MESSAGE_FIELDS_BYTES_MAX: usize = 64 * 1024;

/// The largest gRPC request the client API (`JobStateMachine`, `Cluster`) decodes: tonic's
/// own default. A request holds at most one job body; a larger request is refused before it
/// is buffered whole. A put whose body is within this but above the node's own `-z` is
/// refused by the node, which names its limit.
pub const CLIENT_API_REQUEST_BYTES_MAX: usize = 4 * 1024 * 1024;

/// The largest answer of the client API, as a node encodes it and a proxy or client
/// decodes it (tonic's default of 4 MiB stopped a long `list-tubes` short), and the largest
/// frame on a proxy's `Forwarding` stream, either way. Most answers are small or hold one
/// job body, and frames stop growing past [`FORWARD_FRAME_BYTES_SOFT_MAX`]; `list-tubes`
/// grows with the tubes that exist, at most 203 bytes a tube (a 200-byte name and its
/// framing), so it comes back for up to about 1.3 million tubes of the longest names. A
/// longer list fails with an error rather than be buffered whole.
pub const CLIENT_API_ANSWER_BYTES_MAX: usize = 256 * 1024 * 1024;

/// A frame of forwarded writes, or of their answers, takes no more once it holds this many
/// bytes: one more write or answer (at most one job body) may still go in.
pub const FORWARD_FRAME_BYTES_SOFT_MAX: usize = 1024 * 1024;

/// Encoded operations in one log entry at most, in bytes (one larger operation goes alone).
/// Raft's own messages are cut at the same size (`max_size_per_msg`), so an entry fills a
/// message and never needs two.
pub const ENTRY_OPS_BYTES_MAX: usize = 1024 * 1024;
const _: () = assert!(ENTRY_OPS_BYTES_MAX <= RAFT_MESSAGE_BYTES_MAX);

/// Writes proposed together in one entry at most: the entry is applied under one lock of the
/// state, and a larger batch would keep readers waiting longer for little gain.
pub const ENTRY_OPS_MAX: usize = 1024;

/// A batch of raft messages on a peer's stream takes no more once it holds this many bytes:
/// one more message may still go in (an append of up to about 1 MiB of entries, or a single
/// larger entry, which holds at most one job body beyond 1 MiB of operations).
pub const RAFT_BATCH_BYTES_SOFT_MAX: usize = 8 * 1024 * 1024;

/// The largest message the internal `RaftTransport` decodes or encodes: a batch of raft
/// messages is far smaller (see [`RAFT_BATCH_BYTES_SOFT_MAX`]), but nodes of earlier versions
/// send a whole snapshot in one `Send`, up to this.
pub const RAFT_MESSAGE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// The largest chunk of a snapshot's data on `RaftTransport.SendSnapshot`, and the size the
/// sender cuts it into (the simulator asks for smaller ones). Each chunk is acknowledged and
/// has its own timeout: 1 MiB takes about 8 s on a link of 1 Mbit/s and a millisecond on a
/// LAN, while costing one message and one acknowledgement per MiB.
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 1024 * 1024;

/// Chunks of a snapshot sent and not yet acknowledged, at most: enough to keep a link with a
/// round trip of several chunks' time busy, few enough that a stalled receiver holds little.
pub const SNAPSHOT_CHUNKS_IN_FLIGHT_MAX: usize = 4;

/// How long a snapshot's sender waits for the next acknowledgement, and its receiver for the
/// next part, before the call counts as failed (raft then tries again later, and the retry
/// resumes from the bytes received).
pub const SNAPSHOT_CHUNK_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest snapshot data a follower takes: the same as the largest a node can store (a
/// snapshot file is one record, of at most 1 GiB), so no snapshot a leader could send is
/// refused, and a declared size above it, damaged or hostile, is refused before any memory
/// is taken for it. The receiver holds the data whole before raft installs it, as the state
/// machine it restores is held whole.
pub const SNAPSHOT_BYTES_MAX: u64 = 1 << 30;

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

/// File descriptors a process leaves for everything but the connections it accepts (a proxy's
/// clients, and gRPC callers: proxies, peers, clients): the write-ahead log's
/// segments and snapshot files (a rotation or a compaction opens several at once), directory
/// syncs, the listeners, the runtime's own, and connections to peers. Storage that runs out of
/// descriptors stops the node; a listener that runs out only makes new callers wait. (A
/// process allowed fewer than twice this keeps half of its descriptors.)
pub const FDS_RESERVED_MAX: u64 = 64;
const _: () = assert!(JOB_BODY_BYTES_MAX_LIMIT + MESSAGE_FIELDS_BYTES_MAX <= CLIENT_API_REQUEST_BYTES_MAX);
const _: () = assert!(CLIENT_API_REQUEST_BYTES_MAX <= CLIENT_API_ANSWER_BYTES_MAX);
// A full forward frame and one more write or answer of the largest body fit the limit.
const _: () = assert!(FORWARD_FRAME_BYTES_SOFT_MAX + JOB_BODY_BYTES_MAX_LIMIT + MESSAGE_FIELDS_BYTES_MAX * 2 <= CLIENT_API_ANSWER_BYTES_MAX);
// A full raft batch and one more message of the largest entry fit, as does a chunk.
const _: () = assert!(RAFT_BATCH_BYTES_SOFT_MAX + 1024 * 1024 + JOB_BODY_BYTES_MAX_LIMIT + MESSAGE_FIELDS_BYTES_MAX <= RAFT_MESSAGE_BYTES_MAX);
const _: () = assert!(SNAPSHOT_CHUNK_BYTES_MAX + MESSAGE_FIELDS_BYTES_MAX <= RAFT_MESSAGE_BYTES_MAX);
const _: () = assert!(SNAPSHOT_CHUNK_BYTES_MAX as u64 <= SNAPSHOT_BYTES_MAX);

// ---- Queues, buffers and records ----

/// Inputs waiting for the driver before senders wait.
pub const DRIVER_INPUTS_MAX: usize = 16_384;

/// Applied entries' reservation events buffered per stream subscriber.
pub const APPLIED_EVENTS_BUFFERED_MAX: usize = 16_384;

/// Raft messages queued per peer before new ones are dropped (raft sends them again).
pub const RAFT_PEER_QUEUE_MESSAGES_MAX: usize = 4096;

/// Raft messages sent in one batch on a peer's stream (and bytes: [`RAFT_BATCH_BYTES_SOFT_MAX`]).
pub const RAFT_BATCH_MESSAGES_MAX: usize = 256;

/// Batches waiting to go out on a peer's stream: past this the peer has stopped reading (it
/// is paused or cut off though its connection looks open), and the stream is dropped.
pub const RAFT_STREAM_BATCHES_MAX: usize = 64;

/// The longest request head the metrics endpoint reads: a scraper's is a few hundred bytes.
pub const METRICS_REQUEST_BYTES_MAX: usize = 8 * 1024;

/// Metrics scrapes answered at once; more wait in the listen backlog.
pub const METRICS_SCRAPES_MAX: usize = 8;

/// The largest payload a record of the log or of a snapshot file may carry. Raft entries are far smaller (a job body is
/// bounded well under this), and a snapshot of a job queue this large would not fit the
/// memory a node has anyway; so a larger length can only be damage, and is reported as such
/// rather than trusted and read past.
pub const RECORD_PAYLOAD_BYTES_MAX: u32 = 1 << 30;

/// Applied log kept in memory before it is dropped, by `serve` without `-b`: compaction there
/// encodes nothing and only drops entries, so it can be frequent, and a small log is reused
/// while still in the cache instead of growing into fresh pages the kernel must zero.
pub const MEMORY_LOG_BYTES_MAX: u64 = 1024 * 1024;

/// Responses kept per caller for deduplication: a caller with more writes in flight than this
/// cannot have its oldest ones deduplicated (it gets an error instead of a second apply).
pub const CALLER_RESPONSES_MAX: usize = 1024;

/// Callers remembered at once; the one whose last write is oldest is forgotten first.
/// Both are rules of the replicated state (every replica forgets the same callers at the
/// same entry): changing either needs a new state machine version.
pub const CALLERS_MAX: usize = 4096;

/// Answers in one frame of a proxy's `Forwarding` stream at most (and bytes:
/// [`FORWARD_FRAME_BYTES_SOFT_MAX`]).
pub const FORWARD_FRAME_ANSWERS_MAX: usize = 1024;

/// Reservation results buffered per stream before a slow proxy starts losing them (it then
/// sees the stream end and resubscribes, checking its clients' states).
pub const RESERVATION_STREAM_BUFFERED_MAX: usize = 4096;

/// Writes waiting for a `Forwarding` stream's task before their callers wait.
pub const FORWARD_CALLS_QUEUED_MAX: usize = 16_384;

/// Frames waiting to be sent on a `Forwarding` stream: past this, the stream counts as stalled.
pub const FORWARD_FRAMES_QUEUED_MAX: usize = 64;

/// Writes in one frame of a `Forwarding` stream at most (and bytes:
/// [`FORWARD_FRAME_BYTES_SOFT_MAX`]).
pub const FORWARD_FRAME_WRITES_MAX: usize = 1024;

/// Acknowledgements waiting for a snapshot's sender: it has at most this many parts
/// unacknowledged (the chunks in flight, the header and the end), so a sender that reads them
/// never finds the queue full.
pub const SNAPSHOT_ACKS_QUEUED_MAX: usize = SNAPSHOT_CHUNKS_IN_FLIGHT_MAX + 4;

/// The longest page of the Browse calls: a console asks for a screenful, and a longer page
/// would hold the state's lock for longer than a command takes.
pub const BROWSE_PAGE_MAX: usize = 500;
