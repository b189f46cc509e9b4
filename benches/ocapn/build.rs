//! Compiles `schema/bench.capnp` with the `capnp` tool (Debian package
//! `capnproto`). Without the tool the capnp-rpc comparison is left out
//! (cfg `has_capnp` unset) and a warning says so; everything else builds.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_capnp)");
    println!("cargo::rerun-if-changed=schema/bench.capnp");
    println!("cargo::rerun-if-env-changed=CAPNP");
    let mut cmd = capnpc::CompilerCommand::new();
    cmd.src_prefix("schema").file("schema/bench.capnp");
    // `CAPNP=/path/to/capnp` picks the tool (a missing path builds without
    // the capnp comparison).
    if let Some(tool) = std::env::var_os("CAPNP") {
        cmd.capnp_executable(tool);
    }
    match cmd.run() {
        Ok(()) => println!("cargo::rustc-cfg=has_capnp"),
        Err(e) => println!(
            "cargo::warning=capnp-rpc comparison disabled: cannot compile schema/bench.capnp ({e}); install the `capnp` tool (apt-get install capnproto)"
        ),
    }
}
