//! Generates the gRPC API and the disk format from proto/ with a vendored protoc, so nothing
//! is installed by hand.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let api = ["empty", "job", "client", "cluster", "jsm", "raft", "forward", "browse"].map(|name| format!("proto/coolbeans/api/v1/{name}.proto"));
    // The disk format, a package apart from the API (see its log.proto).
    let storage = ["log", "snapshot"].map(|name| format!("proto/coolbeans/storage/v1/{name}.proto"));
    let files = [&api[..], &storage[..]].concat();
    tonic_build::configure()
        // Job bodies are shared, not copied, between the log, the state machine and replies.
        .bytes(["."])
        // Maps encode in key order, so equal states encode to equal bytes on every replica.
        .btree_map(["."])
        .compile_protos(&files, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
