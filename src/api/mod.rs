//! The wire API, package `coolbeans.api.v1`, generated from `proto/` by build.rs.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("coolbeans.api.v1");
