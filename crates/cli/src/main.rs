//! The `pola` binary: subcommands over every layer of pola.
//!
//! With no subcommand it runs the main job on embedded defaults: the desk
//! (`pola desk`), with its state in the user's data folder.
#![forbid(unsafe_code)]

mod caplets;
mod config;
mod control;
mod desk;
mod hex;
mod host;
mod ocapn;
mod serve;
mod sturdy;

use std::time::Duration;

use clap::{Parser, Subcommand};

/// jemalloc, not the system's malloc: after a peer's memory attack ends,
/// glibc kept what it had freed (RSS 0.2 → 3.3 → 6.3 GB over three rounds
/// with nothing live); jemalloc gives it back (14–24 MB). See
/// `benches/memory`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// pola: a least-authority computing platform.
#[derive(Parser)]
#[command(name = "pola", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the desk (the default): a web desktop for confined apps on
    /// 127.0.0.1; prints the one URL to open (it carries the desk's
    /// secret token: it is the key to the desk).
    Desk {
        /// State folder [default: $XDG_DATA_HOME/pola/desk, or
        /// ~/.local/share/pola/desk].
        #[arg(long)]
        state: Option<std::path::PathBuf>,
        /// The documents folder: the only files apps can be given
        /// [default: STATE/Documents].
        #[arg(long)]
        documents: Option<std::path::PathBuf>,
        /// Port on 127.0.0.1; 0 picks a free one.
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Install an app package into a desk that is not running, granting
    /// what it asks as asked (files at the places it suggests inside the
    /// documents folder; web and objects are left out): for packages you
    /// trust. Prints Granma's warnings first; refuses if there are any
    /// unless --despite-warnings.
    Install {
        /// The `.polapkg` file.
        package: std::path::PathBuf,
        /// The desk's state folder [default: as for `pola desk`].
        #[arg(long)]
        state: Option<std::path::PathBuf>,
        /// The documents folder [default: STATE/Documents].
        #[arg(long)]
        documents: Option<std::path::PathBuf>,
        /// The name to give it [default: the name it calls itself].
        #[arg(long)]
        name: Option<String>,
        /// Install even when Granma's rules warn.
        #[arg(long)]
        despite_warnings: bool,
    },
    /// Run the mint/purse payment between Alice, Bob and the Mint in three
    /// vats, printing each step.
    Demo,
    /// Caplet (confined WebAssembly) tools.
    Caplet {
        #[command(subcommand)]
        command: CapletCommand,
    },
    /// OCapN tools.
    Ocapn {
        #[command(subcommand)]
        command: OcapnCommand,
    },
    /// Enliven an `ocapn://…` sturdyref, send it one message and print the
    /// answer. Arguments are Syrup text: 42, -7, "text", 'symbol, [1 2],
    /// {"k" 1}, t, f (booleans), <'label 1>.
    Call {
        /// The sturdyref URI (`ocapn://<designator>.<transport>/s/<swiss>?…`).
        uri: String,
        /// The method symbol; an empty string sends the arguments alone.
        method: String,
        /// Arguments, each one Syrup text value.
        args: Vec<String>,
    },
    /// Serve only the objects registered as sturdyrefs at start-up (no
    /// eval), over the encrypted `noise` netlayer; prints `NAME URI` per
    /// object, then `ready`, and serves until killed. Runs from
    /// `DIR/pola.toml`; role flags on a first start write that file, and
    /// on later starts must agree with it.
    Serve {
        /// State folder (mode 0700): `pola.toml` (the config) and
        /// `state.redb` (identity, Swiss numbers, objects).
        #[arg(long)]
        state: std::path::PathBuf,
        /// Address to listen on (and advertise) [default: 127.0.0.1].
        #[arg(long)]
        listen: Option<String>,
        /// TCP port; 0 picks a free one [default: 0].
        #[arg(long)]
        port: Option<u16>,
        /// Host to put in the URIs instead of --listen (e.g. with
        /// --listen 0.0.0.0).
        #[arg(long, value_name = "HOST")]
        advertise: Option<String>,
        /// Serve a new mint: `mint` (prints money: keep it private) and
        /// `issuer` (makes empty purses only).
        #[arg(long)]
        mint: bool,
        /// Serve a `wallet` over a purse obtained from this mint or issuer
        /// URI.
        #[arg(long, value_name = "URI")]
        wallet_from: Option<String>,
        /// The wallet's opening balance [default: 0].
        #[arg(long)]
        initial: Option<u64>,
        /// INSECURE, for interop tests only: also listen on this port (0
        /// picks one) with tcp-testing-only, which neither encrypts nor
        /// authenticates, so OCapN implementations without pola's Noise
        /// framing can reach the served objects; prints `NAME.tcp-testing-only
        /// URI` lines too. Never use it on a network you do not control.
        #[arg(long, value_name = "PORT")]
        insecure_tcp_testing_only: Option<u16>,
    },
    /// Write one export file of a host (its config and store) to stdout,
    /// while it runs or not: `pola export --state DIR > host.pola`.
    Export {
        /// The host's state folder.
        #[arg(long)]
        state: std::path::PathBuf,
        /// Export only this vat instance (for `pola import --instance`).
        #[arg(long, value_name = "NAME")]
        instance: Option<String>,
    },
    /// Make a new host folder from an export (`-` reads stdin); `pola
    /// serve --state NEWDIR` then answers the same sturdyrefs.
    Import {
        /// The export file.
        file: std::path::PathBuf,
        /// The new state folder (must not exist, or be empty); with
        /// --instance, the existing folder of a stopped host.
        #[arg(long)]
        state: std::path::PathBuf,
        /// Add an instance export to an existing host under this name.
        #[arg(long, value_name = "NAME")]
        instance: Option<String>,
    },
    /// Take a named savepoint of a host's whole store, or with --instance
    /// of one vat instance (while it runs or not), or delete one with
    /// --delete.
    Savepoint {
        /// The host's state folder.
        #[arg(long)]
        state: std::path::PathBuf,
        /// The savepoint's name (letters, digits, '.', '_', '-').
        name: String,
        /// Delete the savepoint instead.
        #[arg(long)]
        delete: bool,
        /// A savepoint of this vat instance alone (e.g. `serve`).
        #[arg(long, value_name = "NAME")]
        instance: Option<String>,
    },
    /// List a host's savepoints (or with --instance, that instance's),
    /// oldest first, with the time each was taken.
    Savepoints {
        /// The host's state folder.
        #[arg(long)]
        state: std::path::PathBuf,
        /// List the savepoints of this vat instance.
        #[arg(long, value_name = "NAME")]
        instance: Option<String>,
    },
    /// Return a stopped host's whole store to a savepoint (newer
    /// savepoints are deleted), or with --instance only that instance
    /// (every other instance and the host's own rows stay as they are).
    Rollback {
        /// The host's state folder.
        #[arg(long)]
        state: std::path::PathBuf,
        /// The savepoint's name.
        name: String,
        /// Roll back only this vat instance, to its own savepoint.
        #[arg(long, value_name = "NAME")]
        instance: Option<String>,
    },
    /// Revoke a sturdyref of a host: one an object made (e.g. a purse's
    /// `sturdyref()`), or a served object's URI (it gets a new one at the
    /// next start). Later fetches of it fail.
    Revoke {
        /// The host's state folder.
        #[arg(long)]
        state: std::path::PathBuf,
        /// The sturdyref's URI.
        uri: String,
    },
    /// Delete the stored objects of a host that nothing can reach any
    /// more; with `--migrate`, also rewrite every object stored by an
    /// older version of its kind.
    Collect {
        /// The host's state folder.
        #[arg(long)]
        state: std::path::PathBuf,
        /// Also migrate old records eagerly.
        #[arg(long)]
        migrate: bool,
    },
}

#[derive(Subcommand)]
enum CapletCommand {
    /// Print what a module imports and exports, whether it is confined
    /// (imports nothing but pola's caplet interface) and whether it loads
    /// (compiling included) under the bounds it states: pola serve's
    /// defaults for a `.wasm`, the desk's for a package. Exits 0 if it
    /// is confined and loads, 1 if not, 2 if the file is not a valid
    /// module.
    Check {
        /// The `.wasm` file, or a `.polapkg` package (then its manifest
        /// is checked too, and its module under the desk's bounds).
        file: std::path::PathBuf,
    },
    /// Build an app package (`.polapkg`) from a TOML manifest, a `.wasm`
    /// and an optional PNG icon; checks all three.
    Pack {
        /// The manifest (TOML; see crates/desk/PROTOCOL.md).
        #[arg(long)]
        manifest: std::path::PathBuf,
        /// The caplet module.
        #[arg(long)]
        wasm: std::path::PathBuf,
        /// The icon (PNG, at most 512×512).
        #[arg(long)]
        icon: Option<std::path::PathBuf>,
        /// Where to write the package.
        #[arg(long, short)]
        output: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum OcapnCommand {
    /// Host the objects the public OCapN test suite expects, over
    /// tcp-testing-only on 127.0.0.1; prints the locator, serves until killed.
    TestPeer {
        /// TCP port (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The error and its causes in plain words: never a backtrace
            // (whatever RUST_BACKTRACE says), and never a raw control
            // character from what a file or a peer chose (line breaks
            // between the faults of one config file stay).
            let text = format!("{e:#}");
            let clean = text.lines().map(shown).collect::<Vec<_>>().join("\n");
            eprintln!("pola: {clean}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let no_state = || -> anyhow::Result<std::path::PathBuf> { desk::default_state() };
    match cli.command.unwrap_or(Command::Desk {
        state: None,
        documents: None,
        port: 0,
    }) {
        Command::Desk {
            state,
            documents,
            port,
        } => pola_desk::run(&pola_desk::RunOptions {
            state: state.map_or_else(no_state, Ok)?,
            documents,
            port,
        }),
        Command::Install {
            package,
            state,
            documents,
            name,
            despite_warnings,
        } => desk::install(
            &package,
            &state.map_or_else(no_state, Ok)?,
            documents,
            name,
            despite_warnings,
        ),
        Command::Demo => demo(),
        Command::Caplet {
            command: CapletCommand::Check { file },
        } => caplet_check(&file),
        Command::Caplet {
            command:
                CapletCommand::Pack {
                    manifest,
                    wasm,
                    icon,
                    output,
                },
        } => desk::pack(&manifest, &wasm, icon.as_deref(), &output),
        Command::Ocapn {
            command: OcapnCommand::TestPeer { port },
        } => ocapn::test_peer(port),
        Command::Call { uri, method, args } => ocapn::call(&uri, &method, &args),
        Command::Serve {
            state,
            listen,
            port,
            advertise,
            mint,
            wallet_from,
            initial,
            insecure_tcp_testing_only,
        } => {
            let flags = config::ServeFlags {
                listen,
                port,
                advertise,
                mint,
                wallet_from,
                initial,
            };
            serve::make_state_dir(&state)?;
            let config = config::resolve(&state, &flags)?;
            let mut options = serve::ServeOptions::from_config(state, &config);
            options.insecure_tcp_port = insecure_tcp_testing_only;
            serve::serve(&options)
        }
        Command::Export { state, instance } => host::export(&state, instance.as_deref()),
        Command::Import {
            file,
            state,
            instance,
        } => host::import(&file, &state, instance.as_deref()),
        Command::Savepoint {
            state,
            name,
            delete,
            instance,
        } => host::savepoint(&state, &name, delete, instance.as_deref()),
        Command::Savepoints { state, instance } => host::savepoints(&state, instance.as_deref()),
        Command::Rollback {
            state,
            name,
            instance,
        } => host::rollback(&state, &name, instance.as_deref()),
        Command::Revoke { state, uri } => host::revoke(&state, &uri),
        Command::Collect { state, migrate } => host::collect(&state, migrate),
    }
}

fn demo() -> anyhow::Result<()> {
    println!("pola demo: the E mint/purse payment, Alice, Bob and the Mint in three vats");
    pola_apps::mint::demo_exchange_with(Duration::from_secs(10), &mut |line| {
        println!("  {line}");
    })?;
    println!("done: every step settled as expected");
    Ok(())
}

fn caplet_check(file: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let path = shown(&file.display().to_string());
    // A package is one Syrup record: `<`; anything else is taken for a
    // module (and said to be invalid if it is not one).
    if bytes.starts_with(b"<") {
        return desk::check_package(file, &bytes);
    }
    // What `pola serve` runs a caplet without quotas under; the report
    // says so, since whether a module loads depends on the bounds.
    let config = pola_sandbox::Config::default();
    let report = match pola_sandbox::check_with(&bytes, &config) {
        Ok(r) => r,
        Err(pola_sandbox::LoadError::Invalid(why)) => {
            eprintln!("{path}: not a valid WebAssembly module: {}", shown(&why));
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("{path}: refused: {}", shown(&e.to_string()));
            std::process::exit(2);
        }
    };
    // Every name here was chosen by the module's author: escaped, so no
    // escape sequence can redraw the terminal (a fake "confined: yes").
    println!("{path}");
    println!("imports ({}):", report.imports.len());
    for i in &report.imports {
        println!("  {}::{}  {}", shown(&i.module), shown(&i.name), i.ty);
    }
    println!("exports ({}):", report.exports.len());
    for e in &report.exports {
        println!("  {}  {}", shown(&e.name), e.ty);
    }
    if report.confined {
        println!("confined: yes (its only authority is the references it is handed)");
    } else {
        println!("confined: NO");
    }
    let m = &report.measures;
    println!(
        "size: {} functions, {} instructions, at most {} in one function, nested {} deep",
        m.functions, m.operators, m.function_operators, m.nesting
    );
    println!(
        "bounds: pola serve's defaults (a caplet without quotas): {}",
        bounds_text(&config)
    );
    // The loader's own decision under those bounds, compiling included:
    // the checker's, then the compiler's.
    let refused = if report.loads {
        load_under(&config, &bytes)
            .err()
            .map(|e| vec![shown(&e)])
            .unwrap_or_default()
    } else {
        report
            .problems
            .iter()
            .map(|p| shown(&p.to_string()))
            .collect()
    };
    if refused.is_empty() {
        println!("loads: yes (within these bounds; compiled)");
        return Ok(());
    }
    println!("loads: NO");
    for p in &refused {
        println!("  - {p}");
    }
    std::process::exit(1);
}

/// Loads (compiles) `wasm` in a sandbox built with `config`, as a host
/// with that config would.
///
/// # Errors
/// Why the sandbox refused it (not escaped), or could not be set up.
pub(crate) fn load_under(config: &pola_sandbox::Config, wasm: &[u8]) -> Result<(), String> {
    let sandbox = pola_sandbox::Sandbox::<pola_sandbox::vat::VatLink>::new(config.clone())
        .map_err(|e| format!("setting up WebAssembly: {e}"))?;
    sandbox.load(wasm).map(drop).map_err(|e| e.to_string())
}

/// The bounds a module is held to under `config`, in one line, in the
/// units its refusals use.
pub(crate) fn bounds_text(config: &pola_sandbox::Config) -> String {
    let b = &config.bounds;
    format!(
        "memory up to {} bytes, tables up to {} elements, modules up to {} bytes, blocks nested up to {} deep, up to {} instructions in one function and {} in all, up to {} functions",
        config.memory_bytes,
        config.table_elements,
        config.max_module_bytes,
        b.max_nesting,
        b.max_function_operators,
        b.max_operators,
        b.max_functions
    )
}

/// `s` safe to print to a terminal: control characters and invisible
/// formatting characters (bidirectional overrides, zero-width ones) are
/// written as `\u{…}` escapes, as the Syrup text form writes them.
pub(crate) fn shown(s: &str) -> String {
    s.chars()
        .map(|c| {
            if pola_syrup::text::hidden(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
