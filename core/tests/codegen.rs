//! The generated gRPC code (`src/wire/gen/`) is committed so that building needs no `protoc`;
//! this test regenerates it from `proto/hatchery.proto` and fails when the two differ.
//! `HATCHERY_BLESS=1` overwrites the committed file instead (docs/protocol.md).

use std::error::Error;
use std::path::Path;

const GENERATED: &str = "src/wire/gen/hatchery.v1.rs";

#[test]
fn committed_grpc_code_matches_the_proto() -> Result<(), Box<dyn Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hatchery-codegen");
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    std::fs::create_dir_all(&out)?;

    let fds = protox::compile([root.join("proto/hatchery.proto")], [root.join("proto")])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(true)
        .emit_rerun_if_changed(false)
        .out_dir(&out)
        .compile_fds(fds)?;

    let fresh = std::fs::read_to_string(out.join("hatchery.v1.rs"))?;
    let committed_path = root.join(GENERATED);
    if std::env::var_os("HATCHERY_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&committed_path, &fresh)?;
        return Ok(());
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        fresh == committed,
        "{GENERATED} is out of date with proto/hatchery.proto; regenerate it with \
         `HATCHERY_BLESS=1 cargo test -p hatchery-core --test codegen` and commit the result"
    );
    Ok(())
}
