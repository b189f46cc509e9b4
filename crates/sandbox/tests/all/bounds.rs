//! Bounded compiling and the one checker (issue #10): hostile module shapes
//! are refused before compiling, naming the bound and the figures; shapes
//! at a bound still load; `check` and `load` agree on every module.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pola_sandbox::vat::{CapletObject, Policy, VatLink};
use pola_sandbox::{
    Bounds, Config, Exceeded, Limit, LoadError, Outside, Problem, Refused, Sandbox,
};
use pola_syrup::Value;
use pola_vat::{Val, Vat};

use crate::child;
use crate::shapes::{Shape, module};
use crate::{test_config, wat};

/// Generous: bounds a hang, not a speed assertion.
const T: Duration = Duration::from_secs(60);

/// Loads `wasm` in a sandbox with `config` and expects it refused before
/// compiling, over `limit` among others; `check_with` must list the same
/// problem first (the one the loader names), list `limit` among them, call
/// the module confined, and say it does not load.
fn refused_for(config: &Config, wasm: &[u8], limit: Limit) -> Exceeded {
    let sb = Sandbox::<Answers>::new(config.clone()).unwrap();
    let started = Instant::now();
    let err = sb.load(wasm).unwrap_err();
    let took = started.elapsed();
    // Refused before compiling: a linear read of the module, so quick even
    // for the largest (the issue's shapes compiled for up to minutes).
    assert!(
        took < Duration::from_secs(2),
        "{limit:?}: {} bytes refused only after {took:?}",
        wasm.len()
    );
    let LoadError::Exceeded(first) = err.clone() else {
        panic!("expected {limit:?}, got {err}");
    };
    assert!(first.found > first.max, "{first:?}");
    let report = pola_sandbox::check_with(wasm, config).unwrap();
    assert!(report.confined && !report.loads, "{report:?}");
    assert_eq!(
        report.problems.first(),
        Some(&Problem::Exceeded(first.clone()))
    );
    let e = report
        .problems
        .iter()
        .find_map(|p| match p {
            Problem::Exceeded(e) if e.limit == limit => Some(e.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{limit:?} not in {:?}", report.problems));
    // Said in plain words, with the figures.
    let text = err.to_string();
    assert!(text.contains(&first.found.to_string()) && text.contains(&first.max.to_string()));
    assert!(text.contains("limit"), "{text}");
    println!(
        "{limit:?}: {} bytes refused in {took:?}: {text}",
        wasm.len()
    );
    e
}

/// The shapes of the issue, at the sizes it reports (or the parser's own
/// maximum), are refused before compiling, each for its own bound. (Unbounded,
/// these take from seconds to minutes and up to gigabytes to compile: see
/// `cargo bench -p pola-sandbox --bench compile`.)
#[test]
fn hostile_shapes_of_the_issue_are_refused_before_compiling() {
    let config = test_config();
    let cases = [
        // 40 000 nested ifs: 30 s to compile.
        (Shape::NestedIf, 40_000, Limit::Nesting),
        // Nested loops: ~20 KB of compiler memory each.
        (Shape::NestedLoop, 1_000_000, Limit::Nesting),
        (Shape::NestedBlock, 100_000, Limit::Nesting),
        // 844 000 diamonds: 39 s and 6 GB.
        (Shape::Diamonds, 844_000, Limit::FunctionOperators),
        (Shape::Straight, 1_000_000, Limit::FunctionOperators),
        // 999 000 functions: 76 s and 5 GB.
        (Shape::Functions, 999_000, Limit::Functions),
        (Shape::Locals, 30_000, Limit::FunctionLocals),
        // (A `br_table` has at most 65 520 targets: the parser's own
        // limit. Each counts as an instruction; see the next test.)
    ];
    for (shape, n, limit) in cases {
        let wasm = module(shape, n);
        let e = refused_for(&config, &wasm, limit);
        if limit != Limit::Functions {
            // The entry point is function 0.
            assert_eq!(e.function, Some(0), "{shape:?}");
        }
    }
}

/// Each bound is exact: a module at it loads (and runs), one past it is
/// refused. Small bounds keep the compiles quick in a debug build; the
/// defaults are exercised at their own edge by the compile bench.
#[test]
fn a_shape_at_each_bound_loads_and_one_past_it_is_refused() {
    let mut config = test_config();
    config.max_instances = 4;
    let mut b = Bounds::default();
    b.max_nesting = 40;
    b.max_function_operators = 3_000;
    b.max_function_locals = 300;
    b.max_functions = 200;
    config.bounds = b;
    let sb = Sandbox::<Answers>::new(config.clone()).unwrap();
    // (shape, largest n within the bounds, the bound it then exceeds)
    let cases = [
        // Depth n + 1 (the body counts).
        (Shape::NestedIf, 39, Limit::Nesting),
        (Shape::NestedLoop, 39, Limit::Nesting),
        // 7 per diamond + the final `i32.const 0; end`.
        (Shape::Diamonds, (3_000 - 2) / 7, Limit::FunctionOperators),
        // `local.get`, 2 per add, `local.set`, `i32.const`, `end`.
        (Shape::Straight, (3_000 - 4) / 2, Limit::FunctionOperators),
        // The entry point and n more.
        (Shape::Functions, 199, Limit::Functions),
        // Two parameters and n locals.
        (Shape::Locals, 298, Limit::FunctionLocals),
        // `block`, `local.get`, the `br_table` and its n targets, `end`,
        // `i32.const`, `end`.
        (Shape::BrTable, 3_000 - 6, Limit::FunctionOperators),
    ];
    for (shape, n, limit) in cases {
        let within = module(shape, n);
        let report = pola_sandbox::check_with(&within, &config).unwrap();
        assert!(report.loads, "{shape:?} {n}: {:?}", report.problems);
        let m = sb
            .load(&within)
            .unwrap_or_else(|e| panic!("{shape:?} {n}: {e}"));
        let mut caplet = m.instantiate(Answers::default()).unwrap();
        caplet.deliver(Value::List(vec![]), None).unwrap();
        // One more step of the shape crosses the bound.
        let mut over = n + 1;
        if limit == Limit::FunctionOperators {
            // Diamonds grow by 7, additions by 2: the first n that is over.
            while pola_sandbox::check_with(&module(shape, over), &config)
                .unwrap()
                .loads
            {
                over += 1;
            }
            assert!(over <= n + 1, "{shape:?}: {n} was not the largest");
        }
        refused_for(&config, &module(shape, over), limit);
    }
}

/// The defaults let real caplets through with room to spare, and the
/// deepest nesting they allow compiles (in a debug build, too).
#[test]
fn default_bounds_leave_room_for_real_caplets() {
    let b = Bounds::default();
    for (name, wasm) in [
        ("echo", pola_sandbox_guests::ECHO),
        ("benign", pola_sandbox_guests::BENIGN),
        ("malicious", pola_sandbox_guests::MALICIOUS),
    ] {
        let r = pola_sandbox::check(wasm).unwrap();
        assert!(r.loads, "{name}: {:?}", r.problems);
        let m = &r.measures;
        println!("{name}: {m:?}");
        assert!(m.nesting * 4 <= u64::from(b.max_nesting), "{name}: {m:?}");
        assert!(
            m.function_operators * 4 <= u64::from(b.max_function_operators),
            "{name}: {m:?}"
        );
        assert!(
            m.functions * 4 <= u64::from(b.max_functions),
            "{name}: {m:?}"
        );
    }
    let deepest = module(Shape::NestedIf, b.max_nesting - 1);
    let mut config = test_config();
    config.max_instances = 4;
    let sb = Sandbox::<Answers>::new(config.clone()).unwrap();
    sb.load(&deepest).unwrap();
    refused_for(
        &config,
        &module(Shape::NestedIf, b.max_nesting),
        Limit::Nesting,
    );
}

/// Modules that `check` used to call confined while `load` refused them
/// (two memories, two tables, a memory or table larger than a slot), the
/// bounds, and a forbidden import in invalid code: `check` and `load`
/// now come to the same answer on each, by the same function.
#[test]
fn check_and_load_agree() {
    let config = test_config();
    let entry = r#"(func (export "pola_deliver") (param i32 i64) (result i32) i32.const 0)"#;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "plain",
            wat(&format!(r#"(module (memory (export "memory") 1) {entry})"#)),
        ),
        (
            "two memories",
            wat(&format!(
                r#"(module (memory (export "memory") 1) (memory 1) {entry})"#
            )),
        ),
        (
            "two tables",
            wat(&format!(
                r#"(module (memory (export "memory") 1) (table 1 funcref) (table 1 funcref) {entry})"#
            )),
        ),
        (
            "memory over the cap",
            // 8 MiB cap in the tests; ask for 16 MiB up front.
            wat(&format!(
                r#"(module (memory (export "memory") 256) {entry})"#
            )),
        ),
        (
            "table over the cap",
            wat(&format!(
                r#"(module (memory (export "memory") 1) (table 20000 funcref) {entry})"#
            )),
        ),
        (
            "one table at the cap",
            wat(&format!(
                r#"(module (memory (export "memory") 1) (table 10000 funcref) {entry})"#
            )),
        ),
        (
            "memory at the cap",
            wat(&format!(
                r#"(module (memory (export "memory") 128) {entry})"#
            )),
        ),
        (
            "too many globals",
            wat(&format!(
                r#"(module (memory (export "memory") 1) {} {entry})"#,
                "(global i32 (i32.const 0))".repeat(5_001)
            )),
        ),
        (
            "forbidden import, invalid code",
            wat(r#"(module
                (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))
                (memory (export "memory") 1)
                (func (export "pola_deliver") (param i32 i64) (result i32) i64.const 0))"#),
        ),
        (
            "confined, invalid code",
            wat(r#"(module (memory (export "memory") 1)
                (func (export "pola_deliver") (param i32 i64) (result i32) i64.const 0))"#),
        ),
        ("nested ifs", module(Shape::NestedIf, 600)),
        ("echo", pola_sandbox_guests::ECHO.to_vec()),
    ];
    let sb = Sandbox::<Answers>::new(config.clone()).unwrap();
    for (name, wasm) in cases {
        let checked = pola_sandbox::check_with(&wasm, &config);
        let loaded = sb.load(&wasm);
        match (&checked, &loaded) {
            (Ok(r), Ok(_)) => assert!(r.loads && r.problems.is_empty(), "{name}"),
            (Ok(r), Err(e)) => {
                assert!(!r.loads, "{name}: check says it loads, load says {e}");
                let expected = match r.problems[0].clone() {
                    Problem::Exceeded(x) => LoadError::Exceeded(x),
                    p => LoadError::NotConfined(p),
                };
                assert_eq!(e, &expected, "{name}");
            }
            (Err(ce), Err(le)) => assert_eq!(ce, le, "{name}"),
            (Err(e), Ok(_)) => panic!("{name}: check says {e}, load accepts it"),
        }
        println!(
            "{name}: {}",
            match &loaded {
                Ok(_) => "loads".to_owned(),
                Err(e) => e.to_string(),
            }
        );
    }
}

/// The outside world of the bystander: keeps its answers.
#[derive(Default)]
struct Answers(Vec<Result<Value<u32>, Value<u32>>>);

impl Outside for Answers {
    type Ref = u32;
    fn send(&mut self, _: &u32, _: Value<u32>) -> Result<u32, Refused> {
        Err(Refused)
    }
    fn send_only(&mut self, _: &u32, _: Value<u32>) -> Result<(), Refused> {
        Err(Refused)
    }
    fn settle(&mut self, _: u32, outcome: Result<Value<u32>, Value<u32>>) {
        self.0.push(outcome);
    }
}

/// The worst modules within the default bounds, each loaded (compiled)
/// in a child process of its own, so that its peak memory is its own:
/// every one loads, in bounded time and memory. (Release figures and the
/// other shapes: `cargo bench -p pola-sandbox --bench compile`.)
#[test]
fn the_worst_modules_within_the_bounds_compile_in_bounded_time_and_memory() {
    const TEST: &str =
        "bounds::the_worst_modules_within_the_bounds_compile_in_bounded_time_and_memory";
    if let Some(task) = child::task() {
        let (name, n) = task.split_once(' ').unwrap();
        let wasm = module(Shape::from_name(name).unwrap(), n.parse().unwrap());
        let (took, peak, outcome) = compile(&wasm);
        println!("compiled: {} {peak} {outcome}", took.as_secs_f64());
        return;
    }
    // Measured in a debug build on two cores: 0.3 to 9.4 s (nested loops
    // in 488 functions; 12.6 s while the bystander test below compiles the
    // same) and 53 to 385 MiB (17 functions of diamonds) each; in release
    // 0.15 to 4.0 s (see the bench). About three times the worst, for a
    // busy CI machine. (Without the bounds, 50 000 diamonds alone take
    // 64 s and 14 GiB.)
    let (max_time, max_peak) = (Duration::from_secs(40), 1u64 << 30);
    for (shape, n) in worst_within_bounds() {
        let task = format!("{} {n}", shape.name());
        let out = child::run(TEST, &task, Duration::from_secs(120));
        let mut f = child::line(&out, "compiled:").splitn(3, ' ');
        let took = Duration::from_secs_f64(f.next().unwrap().parse().unwrap());
        let peak: u64 = f.next().unwrap().parse().unwrap();
        let outcome = f.next().unwrap();
        println!(
            "{task}: {} KB, {outcome} in {took:?}, peak {} MiB",
            module(shape, n).len() / 1000,
            peak >> 20
        );
        assert_eq!(outcome, "loaded", "{task}");
        assert!(took < max_time, "{task}: compiling took {took:?}");
        assert!(peak < max_peak, "{task}: peak {} MiB", peak >> 20);
    }
}

/// The costliest shapes at the default bounds, in time or in memory (by
/// the compile bench): modules at the total of instructions made of the
/// deepest or the largest functions, the most functions, and one function
/// at the nesting and size bounds at once.
fn worst_within_bounds() -> Vec<(Shape, u32)> {
    let worst = [
        Shape::DeepIfFunctions,
        Shape::DeepLoopFunctions,
        Shape::DiamondFunctions,
        Shape::DeepDiamonds,
        Shape::Functions,
    ];
    let all = crate::shapes::at_bounds(&Bounds::default());
    let picked: Vec<_> = all.into_iter().filter(|(s, _)| worst.contains(s)).collect();
    assert_eq!(picked.len(), worst.len());
    picked
}

/// Loads `wasm` with the default bounds in a fresh sandbox (in this
/// process); returns how long it took, the process's peak memory after,
/// and `loaded` or the error.
fn compile(wasm: &[u8]) -> (Duration, u64, String) {
    let mut config = Config::default();
    config.max_instances = 4;
    let sb = Sandbox::<Answers>::new(config).unwrap();
    let started = Instant::now();
    let outcome = match sb.load(wasm) {
        Ok(_) => "loaded".to_owned(),
        Err(e) => e.to_string(),
    };
    (started.elapsed(), child::peak_bytes(), outcome)
}

/// While one thread of the host loads the costliest module within the
/// bounds (seconds of compiling, after refusing the issue's hostile
/// modules), a caplet in a vat of the same sandbox keeps answering, each
/// answer in a small fraction of the compile time: compiling holds no
/// lock that running caplets need.
#[test]
fn a_bystander_keeps_answering_while_the_worst_module_compiles() {
    let mut config = test_config();
    config.max_instances = 4;
    let sb = Sandbox::<VatLink>::new(config).unwrap();
    let vat = Vat::new("compile-bystander");
    let echo = sb.load(pola_sandbox_guests::ECHO).unwrap();
    let bystander = vat.spawn(CapletObject::new(echo, Policy::Persistent));
    let ask = |i: i64| {
        let t = Instant::now();
        let r = vat.send(&bystander, "add", vec![Val::int(i), Val::int(1i64)]);
        match vat.block_on(&r, T) {
            Ok(v) => assert_eq!(v, Val::int(i + 1)),
            Err(e) => panic!("answer {i}: {e}"),
        }
        t.elapsed()
    };
    // The first answer instantiates the caplet.
    ask(0);
    let done = Arc::new(AtomicBool::new(false));
    let loader = {
        let (sb, done) = (sb.clone(), done.clone());
        std::thread::spawn(move || {
            let hostile = [
                module(Shape::NestedIf, 40_000),
                module(Shape::NestedLoop, 200_000),
                module(Shape::Diamonds, 300_000),
                module(Shape::Functions, 500_000),
            ];
            // The longest to compile (by the compile bench).
            let n = crate::shapes::at_bounds(&Bounds::default())
                .into_iter()
                .find_map(|(s, n)| (s == Shape::DeepLoopFunctions).then_some(n))
                .unwrap();
            let worst = module(Shape::DeepLoopFunctions, n);
            let started = Instant::now();
            for wasm in &hostile {
                assert!(matches!(sb.load(wasm), Err(LoadError::Exceeded(_))));
            }
            let loaded = sb.load(&worst).map(drop);
            let took = started.elapsed();
            done.store(true, Ordering::SeqCst);
            (loaded, took)
        })
    };
    let mut slowest = Duration::ZERO;
    let mut answers = 0i64;
    while !done.load(Ordering::SeqCst) {
        answers += 1;
        slowest = slowest.max(ask(answers));
        // Ordinary use: asked without a pause, the bystander would spend
        // its own budget across turns (the vat's work per turn counts).
        std::thread::sleep(Duration::from_millis(5));
    }
    let (loaded, took) = loader.join().unwrap();
    loaded.unwrap();
    println!(
        "while the worst module compiled for {took:?}, the bystander answered {answers} times, the slowest in {slowest:?}"
    );
    // The compile is long enough to tell (seconds in a debug build).
    assert!(took > Duration::from_millis(500), "compiled in {took:?}");
    assert!(answers >= 10, "{answers} answers in {took:?}");
    assert!(
        slowest < Duration::from_secs(1) && slowest * 4 < took,
        "the bystander waited {slowest:?} while compiling took {took:?}"
    );
    vat.shutdown();
}
