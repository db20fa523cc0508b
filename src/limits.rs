//! Every limit in one place, each with why it is what it is.

/// beanstalkd's default maximum job body (`-z`): 65535 bytes.
pub const JOB_BODY_BYTES_MAX_DEFAULT: usize = 65_535;

/// The largest job body `-z` may allow: a body travels in one raft entry and one gRPC message,
/// and tonic's default message limit is 4 MiB.
pub const JOB_BODY_BYTES_MAX_LIMIT: usize = 3 * 1024 * 1024;

const _: () = assert!(JOB_BODY_BYTES_MAX_DEFAULT <= JOB_BODY_BYTES_MAX_LIMIT);
