//! Compiles hostpulse/v1/hostpulse.proto with protox (pure Rust: no `protoc`
//! on the build machine) and writes the descriptor set that server
//! reflection serves, comments included, so `grpcurl describe` shows them.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "hostpulse/v1/hostpulse.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let bytes = prost::Message::encode_to_vec(&fds);
    std::fs::write(out.join("hostpulse_descriptor.bin"), bytes)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
