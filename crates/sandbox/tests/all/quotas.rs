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
