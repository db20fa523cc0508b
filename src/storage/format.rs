//! The disk format, package `coolbeans.storage.v1`: log entries and snapshots, generated from
//! `proto/coolbeans/storage` by build.rs. Apart from the API (`crate::api`) so that each
//! changes on its own (see log.proto).

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("coolbeans.storage.v1");
