//! Generates the CRI v1 client and server from the vendored `proto/api.proto`.
//! protox compiles the proto in-process, so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    let fds = protox::compile(["proto/api.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The fake CRI in tests implements only what the kubelet calls.
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}
