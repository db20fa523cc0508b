//! The wire API, package `coolbeans.api.v1`, generated from `proto/` by build.rs, and what its
//! server (`rpc`) and its client (`client`) both read of it beyond the messages: the metadata
//! keys, the typed stats and the console's pages. Both sides depend on this; neither on the other.

pub mod browse;
pub mod metadata;
pub mod stats;

#[allow(clippy::all, missing_docs)]
mod generated {
    tonic::include_proto!("coolbeans.api.v1");
}

pub use generated::*;
