//! Generates the gRPC API from proto/ with a vendored protoc, so nothing is installed by hand.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let files = ["empty", "job", "client", "cluster", "jsm", "raft", "forward", "browse"]
        .map(|name| format!("proto/coolbeans/api/v1/{name}.proto"));
    tonic_build::configure()
        // Job bodies are shared, not copied, between the log, the state machine and replies.
        .bytes(["."])
        // Maps encode in key order, so equal states encode to equal bytes on every replica.
        .btree_map(["."])
        .compile_protos(&files, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
