//! Fuzzes the caplet host calls (`pola_sandbox`): a real instance of a
//! small caplet that replays a byte script of host calls, with arbitrary
//! pointers, lengths and handles, across several deliveries,
//! notifications, an outside world that turns to refusing, and fresh
//! instances.
//!
//! Input: steps `[kind, len, script…]`. Kind 0 delivers the script with an
//! answer (the message also carries three references, before the
//! script), 1 delivers it send-only, 2 notifies the oldest pending `when`
//! with it (fulfilled or broken), 3 makes the outside world refuse (or
//! accept again) every send and `when`, 4
//! replaces the instance with a fresh one that keeps the committed
//! storage (as a vat does). The caplet reads its message, skips to the
//! first `:` (past the Syrup byte string's length) and runs the rest as
//! host calls; see `REPLAY` for the encoding.
//!
//! Oracle: no panic; every reference the caplet passes out, targets or
//! settles is one the host gave it (a reference, an answer, a forwarder),
//! never a resolver passed as a reference; every resolver handed in is settled at most once, and all of them are
//! settled by the time the instance is gone; the c-list and the storage
//! stay within their limits.
#![no_main]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pola_sandbox::{CapletModule, Config, Outside, Refused, Sandbox};
use pola_syrup::Value;

/// The replaying caplet. Handles are random per instance, so it learns
/// them: slot 0 holds the delivery's resolver, slots 1 to 3 the references
/// in the message (every `digits+` before the script's `:`), slots 4 to 15
/// the answers of its sends, in turn. An op is one byte: the low 4 bits
/// pick the call (modulo 14), bit 7 makes its arguments wide. A handle is
/// one byte, a slot if below 16, a slot plus one if below 32, else the
/// byte itself (wide: 8 bytes, as is); a pointer or length is two bytes
/// (wide: 4), all little endian, read from the script as it goes:
/// 0 read(p, l) · 1 send(h, p, l) · 2 send_only(h, p, l) ·
/// 3 resolve(h, p, l) · 4 break_promise(h, p, l) · 5 when(h, tag) ·
/// 6 drop(h) · 7 storage_get(p, l) · 8 storage_put(p, l, p, l) ·
/// 9 storage_delete(p, l) · 10 write `n` (one byte) script bytes at `p`
/// (below the script area) · 11 return the next byte as the entry's code
/// · 12 trap · 13 write the reference record `<pola:ref H>` for the
/// handle in slot `s` (one byte) at `p` (two bytes), to pass it on.
const REPLAY: &str = r#"(module
  (import "pola" "read" (func $read (param i32 i32) (result i32)))
  (import "pola" "send" (func $send (param i64 i32 i32) (result i64)))
  (import "pola" "send_only" (func $send_only (param i64 i32 i32) (result i32)))
  (import "pola" "resolve" (func $resolve (param i64 i32 i32) (result i32)))
  (import "pola" "break_promise" (func $break (param i64 i32 i32) (result i32)))
  (import "pola" "when" (func $when (param i64 i64) (result i32)))
  (import "pola" "drop" (func $drop (param i64) (result i32)))
  (import "pola" "storage_get" (func $sget (param i32 i32) (result i32)))
  (import "pola" "storage_put" (func $sput (param i32 i32 i32 i32) (result i32)))
  (import "pola" "storage_delete" (func $sdel (param i32 i32) (result i32)))
  (memory (export "memory") 1 2)
  (data (i32.const 0x7e80) "<8'pola:ref")
  (global $p (mut i32) (i32.const 0))
  (global $wide (mut i32) (i32.const 0))
  (global $ring (mut i32) (i32.const 0))
  ;; The script lives at 0x8000; it may be at most 0x7000 bytes. Handle
  ;; slots: 16 i64 at 0x7f00.
  (func $slot (param $i i32) (result i32)
    (i32.add (i32.const 0x7f00) (i32.shl (i32.and (local.get $i) (i32.const 15)) (i32.const 3))))
  (func $h (result i64)
    (local $v i64) (local $b i32)
    (if (result i64) (global.get $wide)
      (then
        (local.set $v (i64.load (global.get $p)))
        (global.set $p (i32.add (global.get $p) (i32.const 8)))
        (local.get $v))
      (else
        (local.set $b (i32.load8_u (global.get $p)))
        (global.set $p (i32.add (global.get $p) (i32.const 1)))
        (if (result i64) (i32.lt_u (local.get $b) (i32.const 16))
          (then (i64.load (call $slot (local.get $b))))
          (else
            (if (result i64) (i32.lt_u (local.get $b) (i32.const 32))
              (then (i64.add (i64.load (call $slot (local.get $b))) (i64.const 1)))
              (else (i64.extend_i32_u (local.get $b)))))))))
  (func $answer (param $h i64)
    (if (i64.gt_s (local.get $h) (i64.const 0))
      (then
        (i64.store (call $slot (i32.add (i32.const 4) (i32.rem_u (global.get $ring) (i32.const 12))))
          (local.get $h))
        (global.set $ring (i32.add (global.get $ring) (i32.const 1))))))
  (func $w (result i32)
    (local $v i32)
    (if (result i32) (global.get $wide)
      (then
        (local.set $v (i32.load (global.get $p)))
        (global.set $p (i32.add (global.get $p) (i32.const 4)))
        (local.get $v))
      (else
        (local.set $v (i32.load16_u (global.get $p)))
        (global.set $p (i32.add (global.get $p) (i32.const 2)))
        (local.get $v))))
  (func $run (param $len i32) (result i32)
    (local $end i32) (local $op i32) (local $dst i32) (local $n i32)
    (local $c i32) (local $acc i64) (local $digits i32) (local $k i32) (local $q i32)
    (if (i32.gt_u (local.get $len) (i32.const 0x7000)) (then (return (i32.const 1))))
    (drop (call $read (i32.const 0x8000) (local.get $len)))
    (global.set $p (i32.const 0x8000))
    (local.set $end (i32.add (i32.const 0x8000) (local.get $len)))
    ;; Learn the handles (digits then '+') up to the first ':', and skip
    ;; past it (the byte string's length).
    (local.set $k (i32.const 1))
    (block $found
      (loop $scan
        (br_if $found (i32.ge_u (global.get $p) (local.get $end)))
        (local.set $c (i32.load8_u (global.get $p)))
        (global.set $p (i32.add (global.get $p) (i32.const 1)))
        (br_if $found (i32.eq (local.get $c) (i32.const 0x3a)))
        (if (i32.lt_u (i32.sub (local.get $c) (i32.const 0x30)) (i32.const 10))
          (then
            (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 10))
              (i64.extend_i32_u (i32.sub (local.get $c) (i32.const 0x30)))))
            (local.set $digits (i32.const 1)))
          (else
            (if (i32.and (local.get $digits) (i32.and (i32.eq (local.get $c) (i32.const 0x2b))
                  (i32.lt_u (local.get $k) (i32.const 4))))
              (then
                (i64.store (call $slot (local.get $k)) (local.get $acc))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))))
            (local.set $acc (i64.const 0))
            (local.set $digits (i32.const 0))))
        (br $scan)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (global.get $p) (local.get $end)))
        (local.set $op (i32.load8_u (global.get $p)))
        (global.set $p (i32.add (global.get $p) (i32.const 1)))
        (global.set $wide (i32.shr_u (local.get $op) (i32.const 7)))
        (block $b13 (block $b12 (block $b11 (block $b10 (block $b9 (block $b8 (block $b7
        (block $b6 (block $b5 (block $b4 (block $b3 (block $b2 (block $b1 (block $b0
          (br_table $b0 $b1 $b2 $b3 $b4 $b5 $b6 $b7 $b8 $b9 $b10 $b11 $b12 $b13
            (i32.rem_u (i32.and (local.get $op) (i32.const 0x0f)) (i32.const 14))))
          (drop (call $read (call $w) (call $w))) (br $next))
          (call $answer (call $send (call $h) (call $w) (call $w))) (br $next))
          (drop (call $send_only (call $h) (call $w) (call $w))) (br $next))
          (drop (call $resolve (call $h) (call $w) (call $w))) (br $next))
          (drop (call $break (call $h) (call $w) (call $w))) (br $next))
          (drop (call $when (call $h) (call $h))) (br $next))
          (drop (call $drop (call $h))) (br $next))
          (drop (call $sget (call $w) (call $w))) (br $next))
          (drop (call $sput (call $w) (call $w) (call $w) (call $w))) (br $next))
          (drop (call $sdel (call $w) (call $w))) (br $next))
          ;; write n script bytes at dst, if it stays below the script
          (local.set $dst (i32.load16_u (global.get $p)))
          (local.set $n (i32.load8_u (i32.add (global.get $p) (i32.const 2))))
          (global.set $p (i32.add (global.get $p) (i32.const 3)))
          (if (i32.le_u (i32.add (local.get $dst) (local.get $n)) (i32.const 0x8000))
            (then (memory.copy (local.get $dst) (global.get $p) (local.get $n))))
          (global.set $p (i32.add (global.get $p) (local.get $n)))
          (br $next))
          (return (i32.load8_u (global.get $p))))
        unreachable)
        ;; 13: the reference record for slot s at dst
        (local.set $dst (i32.load16_u (global.get $p)))
        (local.set $acc (i64.load (call $slot (i32.load8_u (i32.add (global.get $p) (i32.const 2))))))
        (global.set $p (i32.add (global.get $p) (i32.const 3)))
        (if (i32.le_u (local.get $dst) (i32.const 0x7dc0))
          (then
            (memory.copy (local.get $dst) (i32.const 0x7e80) (i32.const 11))
            (local.set $q (i32.const 0x7e40))
            (loop $digit
              (local.set $q (i32.sub (local.get $q) (i32.const 1)))
              (i32.store8 (local.get $q)
                (i32.add (i32.const 0x30) (i32.wrap_i64 (i64.rem_u (local.get $acc) (i64.const 10)))))
              (local.set $acc (i64.div_u (local.get $acc) (i64.const 10)))
              (br_if $digit (i64.ne (local.get $acc) (i64.const 0))))
            (local.set $n (i32.sub (i32.const 0x7e40) (local.get $q)))
            (memory.copy (i32.add (local.get $dst) (i32.const 11)) (local.get $q) (local.get $n))
            (i32.store8 (i32.add (local.get $dst) (i32.add (local.get $n) (i32.const 11))) (i32.const 0x2b))
            (i32.store8 (i32.add (local.get $dst) (i32.add (local.get $n) (i32.const 12))) (i32.const 0x3e))))
        (br $next)))
    (i32.const 0))
  (func (export "pola_deliver") (param $len i32) (param $resolver i64) (result i32)
    (i64.store (call $slot (i32.const 0)) (local.get $resolver))
    (call $run (local.get $len)))
  (func (export "pola_notify") (param $tag i64) (param $broken i32) (param $len i32) (result i32)
    (call $run (local.get $len))))"#;

/// References: objects below 100, resolvers from 1 000, answers from
/// 10 000.
const RESOLVERS: u32 = 1_000;
const MADE: u32 = 10_000;

#[derive(Default)]
struct World {
    /// References the caplet may hold: given, answers.
    known: BTreeSet<u32>,
    /// Resolvers handed in, and whether settled.
    resolvers: BTreeMap<u32, bool>,
    whens: VecDeque<i64>,
    next: u32,
    /// Refuse every send and `when`.
    refusing: bool,
}

impl World {
    fn check_ref(&self, r: &u32) {
        assert!(
            self.known.contains(r),
            "a reference the host never gave: {r}"
        );
        assert!(
            !(RESOLVERS..MADE).contains(r),
            "a resolver passed as a reference: {r}"
        );
    }

    fn check_value(&self, v: &Value<u32>) {
        v.for_each_ref(&mut |r| self.check_ref(r));
    }

    fn fresh(&mut self) -> u32 {
        self.next += 1;
        let r = MADE + self.next;
        self.known.insert(r);
        r
    }
}

impl Outside for World {
    type Ref = u32;

    fn send(&mut self, target: &u32, message: Value<u32>) -> Result<u32, Refused> {
        self.check_ref(target);
        self.check_value(&message);
        if self.refusing {
            return Err(Refused);
        }
        Ok(self.fresh())
    }

    fn send_only(&mut self, target: &u32, message: Value<u32>) -> Result<(), Refused> {
        self.check_ref(target);
        self.check_value(&message);
        if self.refusing {
            return Err(Refused);
        }
        Ok(())
    }

    fn settle(&mut self, resolver: u32, outcome: Result<Value<u32>, Value<u32>>) {
        match self.resolvers.get_mut(&resolver) {
            Some(settled) => {
                assert!(!*settled, "resolver {resolver} settled twice");
                *settled = true;
            }
            None => panic!("settled something that is not a resolver: {resolver}"),
        }
        match outcome {
            Ok(v) | Err(v) => self.check_value(&v),
        }
    }

    fn when(&mut self, promise: &u32, tag: i64) -> Result<(), Refused> {
        self.check_ref(promise);
        if !self.refusing && self.whens.len() < 64 {
            self.whens.push_back(tag);
            Ok(())
        } else {
            Err(Refused)
        }
    }
}

fn config() -> Config {
    let mut c = Config::default();
    c.max_instances = 8;
    c.fuel_per_call = 5_000_000;
    c.memory_bytes = 2 << 16;
    c.max_message_bytes = 64 << 10;
    c.max_handles = 64;
    c.storage_keys = 8;
    c.storage_value_bytes = 1 << 10;
    c.storage_bytes = 4 << 10;
    c.wall_time_per_call = None;
    c
}

fn module() -> &'static CapletModule<World> {
    static M: OnceLock<CapletModule<World>> = OnceLock::new();
    M.get_or_init(|| {
        let wasm = wat::parse_str(REPLAY).expect("the replay caplet is valid WAT");
        let sandbox = Sandbox::<World>::new(config()).expect("sandbox");
        sandbox.load(&wasm).expect("the replay caplet loads")
    })
}

fn world() -> World {
    let mut w = World::default();
    w.known.extend([1, 2, 3]);
    w
}

fuzz_target!(|data: &[u8]| {
    let module = module();
    let limits = module.config().clone();
    let mut caplet = module.instantiate(world()).expect("an instance");
    let mut rest = data;
    let mut next_resolver = RESOLVERS;
    let mut steps = 0;
    while let [kind, len, tail @ ..] = rest {
        steps += 1;
        if steps > 16 {
            break;
        }
        let n = usize::from(*len).min(tail.len());
        let (script, after) = tail.split_at(n);
        rest = after;
        match kind % 5 {
            0 | 1 => {
                let resolver = (kind % 5 == 0).then(|| {
                    next_resolver += 1;
                    caplet.outside_mut().resolvers.insert(next_resolver, false);
                    next_resolver
                });
                // References first, so the caplet learns their handles
                // before the script's `:`.
                let message = Value::List(vec![
                    Value::Ref(1),
                    Value::Ref(2),
                    Value::Ref(3),
                    Value::bytes(script.to_vec()),
                ]);
                let _ = caplet.deliver(message, resolver);
            }
            2 => {
                let Some(tag) = caplet.outside_mut().whens.pop_front() else {
                    continue;
                };
                let v = Value::bytes(script.to_vec());
                let outcome = if kind & 0x80 == 0 { Ok(v) } else { Err(v) };
                let _ = caplet.notify(tag, outcome);
            }
            3 => {
                let w = caplet.outside_mut();
                w.refusing = !w.refusing;
            }
            _ => {
                // A fresh instance with the committed storage, as a vat
                // replaces a dead one; the old one's resolvers are settled
                // as it goes.
                let storage = caplet.storage().clone();
                let old = std::mem::replace(
                    &mut caplet,
                    module.instantiate(world()).expect("an instance"),
                );
                let refusing = old.outside().refusing;
                let w = retire(old);
                caplet.outside_mut().refusing = refusing;
                caplet.outside_mut().next = w.next;
                caplet.set_storage(storage);
            }
        }
        assert!(caplet.handles() <= limits.max_handles);
        let stored = caplet.storage();
        assert!(stored.len() <= limits.storage_keys);
        assert!(stored.bytes() <= limits.storage_bytes);
    }
    retire(caplet);
});

/// Drops an instance and checks that every resolver it was given is
/// settled.
fn retire(caplet: pola_sandbox::CapletInstance<World>) -> World {
    let w = caplet.retire();
    for (r, settled) in &w.resolvers {
        assert!(settled, "resolver {r} left unsettled by a gone instance");
    }
    w
}
