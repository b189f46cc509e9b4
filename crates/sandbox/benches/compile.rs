//! What compiling a module costs: wall time and the peak resident memory of
//! the process, against module size, for the stock caplets, for any module
//! named in `POLA_WASM` (paths separated by `:`, e.g. a large real caplet),
//! and for the hostile shapes of issue #10 (`tests/all/shapes.rs`), both
//! without the loader's bounds (to show what they guard against) and at
//! the default bounds (to show the worst a module within them costs).
//!
//! Each compile runs in a fresh child process (this binary, re-run with
//! `--child`), so its peak memory (`VmHWM` in `/proc/self/status`) is its
//! own; a child over its time limit is killed and reported as such.
//!
//! `cargo bench -p pola-sandbox --bench compile` (set `POLA_COMPILE_QUICK=1`
//! for the bounded shapes and the stock caplets only).
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/all/shapes.rs"]
mod shapes;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pola_sandbox::{Bounds, Config, Outside, Refused, Sandbox};
use pola_syrup::Value;
use shapes::Shape;

/// An outside world that refuses everything (nothing runs here).
struct Nothing;

impl Outside for Nothing {
    type Ref = u32;
    fn send(&mut self, _: &u32, _: Value<u32>) -> Result<u32, Refused> {
        Err(Refused)
    }
    fn send_only(&mut self, _: &u32, _: Value<u32>) -> Result<(), Refused> {
        Err(Refused)
    }
    fn settle(&mut self, _: u32, _: Result<Value<u32>, Value<u32>>) {}
}

/// Peak resident memory of this process so far, in KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// In the child: load `wasm` and print `seconds peak_kib baseline_kib outcome`.
fn child(wasm: &[u8], bounded: bool) {
    let mut config = Config::default();
    config.max_instances = 4;
    config.max_module_bytes = 64 << 20;
    if !bounded {
        config.bounds = Bounds::unbounded();
    }
    let sandbox = Sandbox::<Nothing>::new(config).unwrap();
    let baseline = peak_kib();
    let start = Instant::now();
    let outcome = match sandbox.load(wasm) {
        Ok(_) => "loaded".to_owned(),
        Err(e) => format!("refused: {e}"),
    };
    let secs = start.elapsed().as_secs_f64();
    println!("{secs:.3} {} {baseline} {outcome}", peak_kib());
}

/// Runs one compile in a child process with `limit` of wall time.
fn measure(label: &str, args: &[String], bytes: usize, limit: Duration) {
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new(exe)
        .arg("--child")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if c.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = c.kill();
            let _ = c.wait();
            println!(
                "{label:<34} {:>9} KB  over {:.0} s: killed",
                bytes / 1000,
                limit.as_secs_f64()
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut f = out.trim().splitn(4, ' ');
    let (secs, peak, base, outcome) = (
        f.next().unwrap_or("?"),
        f.next().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0),
        f.next().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0),
        f.next().unwrap_or("child failed (crashed or aborted)"),
    );
    println!(
        "{label:<34} {:>9} KB  {secs:>7} s  peak {:>6} MiB (+{:>5} MiB)  {outcome}",
        bytes / 1000,
        peak / 1024,
        peak.saturating_sub(base) / 1024,
    );
}

fn shape_args(shape: Shape, n: u32, bounded: bool) -> Vec<String> {
    vec![
        "shape".into(),
        shape.name().into(),
        n.to_string(),
        if bounded { "bounded" } else { "unbounded" }.into(),
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        match args.get(1).map(String::as_str) {
            Some("shape") => {
                let shape = Shape::from_name(&args[2]).unwrap();
                let n: u32 = args[3].parse().unwrap();
                child(&shapes::module(shape, n), args[4] == "bounded");
            }
            Some("file") => child(&std::fs::read(&args[2]).unwrap(), true),
            Some("stock") => {
                let wasm = match args[2].as_str() {
                    "echo" => pola_sandbox_guests::ECHO,
                    "benign" => pola_sandbox_guests::BENIGN,
                    _ => pola_sandbox_guests::MALICIOUS,
                };
                child(wasm, true);
            }
            _ => panic!("unknown child"),
        }
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not run us.
    let quick = std::env::var_os("POLA_COMPILE_QUICK").is_some();
    let limit = Duration::from_secs(
        std::env::var("POLA_COMPILE_LIMIT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );
    let b = Bounds::default();
    println!(
        "compile time and peak memory per module (child process each; +: over the process before loading)"
    );
    println!("-- stock caplets and POLA_WASM modules (default bounds)");
    for (name, wasm) in [
        ("echo", pola_sandbox_guests::ECHO),
        ("benign", pola_sandbox_guests::BENIGN),
        ("malicious", pola_sandbox_guests::MALICIOUS),
    ] {
        let r = pola_sandbox::check(wasm).unwrap();
        let label = format!(
            "{name} (nest {}, ops/fn {}, fns {}, ops {})",
            r.measures.nesting,
            r.measures.function_operators,
            r.measures.functions,
            r.measures.operators
        );
        measure(&label, &["stock".into(), name.into()], wasm.len(), limit);
    }
    for path in std::env::var("POLA_WASM").unwrap_or_default().split(':') {
        if path.is_empty() {
            continue;
        }
        let wasm = std::fs::read(path).unwrap();
        let name = std::path::Path::new(path)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let label = match pola_sandbox::check_with(&wasm, &{
            let mut c = Config::default();
            c.max_module_bytes = 64 << 20;
            c
        }) {
            Ok(r) => format!(
                "{name} (nest {}, ops/fn {}, fns {}, ops {})",
                r.measures.nesting,
                r.measures.function_operators,
                r.measures.functions,
                r.measures.operators
            ),
            Err(e) => format!("{name} ({e})"),
        };
        measure(&label, &["file".into(), path.into()], wasm.len(), limit);
    }
    // The worst of each shape that the default bounds let through.
    let at_bound = shapes::at_bounds(&b);
    println!("-- hostile shapes at the default bounds");
    for &(shape, n) in &at_bound {
        let wasm = shapes::module(shape, n);
        let label = format!("{} n={n}", shape.name());
        measure(&label, &shape_args(shape, n, true), wasm.len(), limit);
    }
    println!("-- the same shapes over the bounds (refused)");
    for &(shape, n) in &at_bound {
        let n = n.saturating_mul(4);
        let wasm = shapes::module(shape, n);
        let label = format!("{} n={n}", shape.name());
        measure(&label, &shape_args(shape, n, true), wasm.len(), limit);
    }
    if quick {
        return;
    }
    println!("-- hostile shapes without bounds (what the bounds guard against)");
    let sweeps: [(Shape, &[u32]); 9] = [
        (Shape::NestedIf, &[1_000, 2_000, 5_000, 10_000, 20_000]),
        (Shape::NestedLoop, &[1_000, 10_000, 50_000, 100_000]),
        (Shape::NestedBlock, &[1_000, 10_000, 100_000]),
        (Shape::Diamonds, &[1_000, 2_000, 5_000, 10_000, 20_000]),
        (Shape::Straight, &[10_000, 25_000, 50_000, 100_000]),
        (Shape::Functions, &[10_000, 50_000, 100_000, 200_000]),
        (Shape::Locals, &[5_000, 20_000, 49_000]),
        (Shape::BrTable, &[60_000]),
        (Shape::DiamondFunctions, &[1, 2, 4, 8, 16, 32]),
    ];
    for (shape, ns) in sweeps {
        for &n in ns {
            let wasm = shapes::module(shape, n);
            let label = format!("{} n={n}", shape.name());
            measure(&label, &shape_args(shape, n, false), wasm.len(), limit);
        }
    }
}
