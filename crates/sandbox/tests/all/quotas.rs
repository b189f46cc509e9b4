//! Quotas and instance-per-use.

use pola_sandbox::{CallError, Config, Sandbox};
use pola_sandbox_guests::ECHO;
use pola_syrup::Value;

use crate::caplet;
use crate::world::{Driver, Link, TRef};

#[test]
fn many_fresh_instances_reuse_the_pool() {
    let module = caplet(ECHO);
    let mut d = Driver::new();
    d.spawn(&module);
    for i in 0..300i64 {
        d.replace(0, &module);
        assert_eq!(
            d.ok(
                &TRef::Caplet(0),
                "add",
                vec![Value::int(i), Value::int(1i64)]
            ),
            Value::int(i + 1)
        );
    }
}

#[test]
fn pool_exhaustion_is_busy_not_a_crash() {
    let mut c = Config::default();
    c.max_instances = 3;
    let sb = Sandbox::<Link>::new(c).unwrap();
    // Any module will do (a small one compiles at once).
    let module = sb.load(&crate::module_with("")).unwrap();
    let mut d = Driver::new();
    let live: Vec<_> = (0..3)
        .map(|i| {
            module
                .instantiate(Link {
                    world: d.world.clone(),
                    me: i,
                })
                .unwrap()
        })
        .collect();
    let err = module
        .instantiate(Link {
            world: d.world.clone(),
            me: 9,
        })
        .unwrap_err();
    assert_eq!(err, CallError::Busy);
    drop(live);
    d.spawn(&module);
}

#[test]
fn fuel_is_per_delivery_not_cumulative() {
    let module = caplet(ECHO);
    let mut d = Driver::new();
    let c = d.spawn(&module);
    let big: Vec<_> = (0..2000i64).map(Value::int).collect();
    for _ in 0..50 {
        d.ok(&c, "echo", big.clone());
    }
    assert!(d.errors.is_empty());
}

#[test]
fn start_function_loop_is_stopped_at_instantiation() {
    let sb = crate::shared();
    let bytes = crate::wat(
        r#"(module
            (memory (export "memory") 1)
            (func $spin (loop $l (br $l)))
            (start $spin)
            (func (export "pola_deliver") (param i32 i64) (result i32) i32.const 0))"#,
    );
    let module = sb.load(&bytes).unwrap();
    let d = Driver::new();
    let err = module
        .instantiate(Link {
            world: d.world.clone(),
            me: 0,
        })
        .unwrap_err();
    assert_eq!(err, CallError::OutOfFuel);
}

#[test]
fn memory_declared_above_the_cap_is_refused() {
    // 8 MiB cap in tests; ask for 16 MiB up front.
    let bytes = crate::wat(
        r#"(module
            (memory (export "memory") 256)
            (func (export "pola_deliver") (param i32 i64) (result i32) i32.const 0))"#,
    );
    assert!(crate::shared().load(&bytes).is_err());
}

/// An outside world whose sends block (a slow or stuck embedder).
struct Sleepy {
    sends: u32,
}

impl pola_sandbox::Outside for Sleepy {
    type Ref = u32;
    fn send(&mut self, _: &u32, _: Value<u32>) -> Result<u32, pola_sandbox::Refused> {
        self.sends += 1;
        std::thread::sleep(std::time::Duration::from_millis(30));
        Ok(1_000 + self.sends)
    }
    fn send_only(&mut self, _: &u32, _: Value<u32>) -> Result<(), pola_sandbox::Refused> {
        Err(pola_sandbox::Refused)
    }
    fn settle(&mut self, _: u32, _: Result<Value<u32>, Value<u32>>) {}
}

#[test]
fn wall_clock_limit_stops_a_caplet_whose_host_calls_block() {
    let mut c = crate::test_config();
    c.max_instances = 4;
    c.fuel_per_call = 50_000_000;
    c.wall_time_per_call = Some(std::time::Duration::from_millis(150));
    c.epoch_tick = std::time::Duration::from_millis(5);
    let sb = Sandbox::<Sleepy>::new(c).unwrap();
    let module = sb.load(pola_sandbox_guests::MALICIOUS).unwrap();
    let mut caplet = module.instantiate(Sleepy { sends: 0 }).unwrap();
    // Fuel alone would allow 5 000 sends here (50 M / 10 000 per host
    // call), 150 s of blocking; the wall-clock limit stops it after a
    // handful.
    let err = caplet
        .deliver(
            Value::List(vec![Value::sym("flood-answers"), Value::Ref(7)]),
            Some(1),
        )
        .unwrap_err();
    assert_eq!(err, CallError::TimedOut);
    assert!(caplet.is_dead());
    let sends = caplet.outside().sends;
    assert!((1..100).contains(&sends), "{sends} blocking sends");
    // A fresh instance works: the limit is per entry.
    let mut fresh = module.instantiate(Sleepy { sends: 0 }).unwrap();
    fresh
        .deliver(Value::List(vec![Value::sym("guess")]), Some(2))
        .unwrap();
}

/// An outside world that keeps what the host settles and abandons.
#[derive(Default)]
struct Kept(Vec<(u32, Settled)>);

/// How the host settled a promise.
type Settled = Result<Value<u32>, Value<u32>>;

impl pola_sandbox::Outside for Kept {
    type Ref = u32;
    fn send(&mut self, _: &u32, _: Value<u32>) -> Result<u32, pola_sandbox::Refused> {
        Err(pola_sandbox::Refused)
    }
    fn send_only(&mut self, _: &u32, _: Value<u32>) -> Result<(), pola_sandbox::Refused> {
        Err(pola_sandbox::Refused)
    }
    fn settle(&mut self, r: u32, outcome: Result<Value<u32>, Value<u32>>) {
        self.0.push((r, outcome));
    }
}

fn kept_sandbox() -> Sandbox<Kept> {
    let mut c = crate::test_config();
    c.max_instances = 4;
    Sandbox::new(c).unwrap()
}

/// A refused `memory.grow` is not a trap: the caplet sees -1. If it then
/// traps some other way, that trap is what is reported; only an abort
/// (`unreachable`, where an allocator's out-of-memory path ends) after a
/// refused growth counts as hitting the memory limit.
#[test]
fn a_trap_after_a_refused_memory_grow_is_reported_as_itself() {
    let caplet = |after: &str| {
        crate::wat(&format!(
            r#"(module
                (memory (export "memory") 1)
                (func (export "pola_deliver") (param i32 i64) (result i32)
                    ;; 64 MiB more, over the 8 MiB cap: refused, -1.
                    (if (i32.ne (memory.grow (i32.const 1024)) (i32.const -1))
                        (then (return (i32.const 7))))
                    {after}))"#
        ))
    };
    let sb = kept_sandbox();
    let run = |wasm: Vec<u8>| {
        let m = sb.load(&wasm).unwrap();
        let mut c = m.instantiate(Kept::default()).unwrap();
        c.deliver(Value::List(vec![]), Some(1))
    };
    // It saw -1 and went on: no trap at all.
    assert_eq!(run(caplet("(i32.const 0)")), Ok(()));
    // Division by zero after the refusal: an arithmetic trap.
    assert_eq!(
        run(caplet("(i32.div_s (i32.const 1) (i32.const 0))")),
        Err(CallError::Trap(pola_sandbox::TrapKind::Arithmetic))
    );
    // An access out of bounds after the refusal.
    assert_eq!(
        run(caplet("(i32.load (i32.const 1000000))")),
        Err(CallError::Trap(pola_sandbox::TrapKind::MemoryOutOfBounds))
    );
    // An abort after the refusal: out of memory.
    assert_eq!(run(caplet("(unreachable)")), Err(CallError::MemoryLimit));
}

/// `table.grow` (and `memory.grow`) past the cap, by any amount, returns
/// -1; it never traps (it used to run out of fuel: the engine charged for
/// the elements asked for before refusing them).
#[test]
fn table_grow_past_the_cap_returns_minus_one() {
    let sb = kept_sandbox();
    let grows = [
        "(table.grow (ref.null func) (i32.const -1))",
        "(table.grow (ref.null func) (i32.const 0x7fffffff))",
        "(table.grow (ref.null func) (i32.const 10000))",
        "(memory.grow (i32.const -1))",
        "(memory.grow (i32.const 0x10000))",
    ];
    for grow in grows {
        let wasm = crate::wat(&format!(
            r#"(module
                (memory (export "memory") 1)
                (table 1 funcref)
                (func (export "pola_deliver") (param i32 i64) (result i32)
                    (i32.ne {grow} (i32.const -1))))"#
        ));
        let delta = grow;
        let m = sb.load(&wasm).unwrap();
        let mut c = m.instantiate(Kept::default()).unwrap();
        assert_eq!(
            c.deliver(Value::List(vec![]), None),
            Ok(()),
            "delta {delta}"
        );
        assert!(!c.is_dead());
    }
}

/// Fuel that runs out inside a host call fails the delivery as out of
/// fuel, even when the caplet, told `exhausted`, returns 0 at once (code
/// already paid for can run without more fuel): the resolver it holds is
/// broken, not left pending, and its storage writes are discarded.
#[test]
fn fuel_running_out_inside_a_host_call_fails_the_delivery() {
    let mut c = crate::test_config();
    c.max_instances = 4;
    c.fuel_per_call = 200_000;
    let sb = Sandbox::<Kept>::new(c).unwrap();
    let wasm = crate::wat(&format!(
        r#"(module
            (import "pola" "drop" (func $drop (param i64) (result i32)))
            (import "pola" "storage_put" (func $put (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (data (i32.const 0) "kt")
            (func (export "pola_deliver") (param i32 i64) (result i32)
                (drop (call $put (i32.const 0) (i32.const 1) (i32.const 1) (i32.const 1)))
                (block $out
                    (loop $again
                        ;; Each host call costs 10 000 fuel; stop at `exhausted`.
                        (br_if $out (i32.eq (call $drop (i64.const 0)) (i32.const {exhausted})))
                        (br $again)))
                (i32.const 0)))"#,
        exhausted = pola_sandbox::abi::Code::Exhausted.as_i32()
    ));
    let m = sb.load(&wasm).unwrap();
    let mut caplet = m.instantiate(Kept::default()).unwrap();
    let err = caplet.deliver(Value::List(vec![]), Some(5)).unwrap_err();
    assert_eq!(err, CallError::OutOfFuel);
    assert!(caplet.is_dead());
    assert_eq!(
        caplet.outside().0,
        [(5, Err(Value::error("caplet exceeded its CPU budget")))]
    );
    assert!(caplet.storage().is_empty());
}
