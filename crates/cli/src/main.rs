//! The `pola` binary: subcommands over every layer of pola.
//!
//! With no subcommand it runs the main job on embedded defaults (for now the
//! vat-runtime demo: the E mint/purse payment between three vats).
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

/// pola: a least-authority computing platform.
#[derive(Parser)]
#[command(name = "pola", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mint/purse payment between Alice, Bob and the Mint in three
    /// vats, printing each step (the default).
    Demo,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Demo) {
        Command::Demo => demo(),
    }
}

fn demo() -> anyhow::Result<()> {
    println!("pola demo: (vat runtime not yet wired)");
    Ok(())
}
