//! Compiles `proto/ledger/v1/*.proto` with protox (pure Rust: no `protoc`
//! on these machines) into client and server stubs, and writes the encoded
//! file descriptor set for gRPC server reflection.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    let files = [
        proto_root.join("ledger/v1/ledger.proto"),
        proto_root.join("ledger/v1/projections.proto"),
        proto_root.join("ledger/v1/bundles.proto"),
        proto_root.join("ledger/v1/admin.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let fds = protox::compile(&files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("ledger_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
