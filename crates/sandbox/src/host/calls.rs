//! The ten host functions a caplet imports, and the checks and charges
//! they share. None panics on caplet input: every pointer, length and
//! handle is checked and failures become a [`Code`].

use pola_syrup::Value;
use wasmtime::{Caller, Linker};

use super::data::Data;
use super::instance::{handle_i64, has_reserved_label, stage_inbound};
use super::outside::Outside;
use crate::abi::{self, Code, REF_LABEL};
use crate::clist::{Entry, Kind};
use crate::error::CallError;

/// Checks `(ptr, len)` against the caplet's memory and the message limit.
fn range(ptr: i32, len: i32, max: usize) -> Result<std::ops::Range<usize>, Code> {
    let start = usize::try_from(ptr as u32).map_err(|_| Code::BadMemory)?;
    let len = usize::try_from(len as u32).map_err(|_| Code::BadMemory)?;
    if len > max {
        return Err(Code::TooLarge);
    }
    let end = start.checked_add(len).ok_or(Code::BadMemory)?;
    Ok(start..end)
}

/// Decodes one message from caplet memory, once (the caplet cannot change
/// what the host saw), within the message limits, and charges fuel for the
/// values decoded ([`Config::value_fuel`](crate::Config::value_fuel)). A message with more values
/// than [`crate::Config::max_message_values`] is [`Code::TooLarge`]; the
/// decoder
/// stops at the limit, so it never allocates more than the limit allows.
fn decode_message<O: Outside>(
    caller: &mut Caller<'_, Data<O>>,
    ptr: i32,
    len: i32,
) -> Result<Value, Code> {
    let memory = caller.data().memory.ok_or(Code::BadMemory)?;
    let max = caller.data().max_message_bytes;
    let r = range(ptr, len, max)?;
    let (mem, data) = memory.data_and_store_mut(&mut *caller);
    let bytes = mem.get(r).ok_or(Code::BadMemory)?;
    let plain = pola_syrup::decode_with(bytes, &data.limits).map_err(|e| match e.kind {
        pola_syrup::DecodeErrorKind::ValuesLimit | pola_syrup::DecodeErrorKind::ItemsLimit => {
            Code::TooLarge
        }
        _ => Code::BadMessage,
    })?;
    let values = u64::try_from(plain.count()).unwrap_or(u64::MAX);
    let fuel = values.saturating_mul(caller.data().value_fuel);
    burn(caller, fuel)?;
    Ok(plain)
}

/// Reads one message from caplet memory and turns its `<pola:ref h>`
/// records into references.
fn read_value<O: Outside>(
    caller: &mut Caller<'_, Data<O>>,
    ptr: i32,
    len: i32,
) -> Result<Value<O::Ref>, Code> {
    let plain = decode_message(caller, ptr, len)?;
    let clist = &caller.data().clist;
    lift(plain, &mut |h| Ok(clist.get(h, Kind::Ref)?.cap.clone()))
}

/// Rebuilds a decoded value with every `<pola:ref h>` replaced by `f(h)`.
fn lift<R: Ord>(v: Value, f: &mut impl FnMut(i64) -> Result<R, Code>) -> Result<Value<R>, Code> {
    v.try_lift_refs(&mut |v| match v.as_record_labelled(REF_LABEL) {
        None => Ok(None),
        Some([h]) => f(h.as_i64().ok_or(Code::BadMessage)?).map(Some),
        Some(_) => Err(Code::BadMessage),
    })
}

/// Charges fuel for a host call moving `len` bytes. When the budget cannot
/// pay, the remaining fuel is taken too, so the caplet traps with
/// `OutOfFuel` at its next instruction.
fn charge<O: Outside>(caller: &mut Caller<'_, Data<O>>, len: i32) -> Result<(), Code> {
    let d = caller.data();
    // A length over the limit is refused unread, so it costs no bytes.
    let bytes = usize::try_from(len)
        .ok()
        .filter(|n| *n <= d.max_message_bytes)
        .map_or(0, |n| n as u64);
    let cost = bytes
        .saturating_mul(d.message_byte_fuel)
        .saturating_add(d.host_call_fuel);
    burn(caller, cost)
}

/// Takes `cost` fuel from the running entry; when the budget cannot pay,
/// takes the rest, so the caplet traps with `OutOfFuel` at its next
/// instruction.
fn burn<O: Outside>(caller: &mut Caller<'_, Data<O>>, cost: u64) -> Result<(), Code> {
    let paid = !caller.data().outside.should_stop()
        && caller
            .get_fuel()
            .ok()
            .and_then(|fuel| fuel.checked_sub(cost))
            .is_some_and(|left| caller.set_fuel(left).is_ok());
    if paid {
        return Ok(());
    }
    let _ = caller.set_fuel(0);
    // The entry fails as out of fuel however it ends: with no fuel left the
    // caplet usually traps at once, but code already paid for (the rest
    // of a basic block) can still return normally.
    caller.data_mut().exhausted = true;
    Err(Code::Exhausted)
}

/// Charges a storage call (a host call plus its key bytes) and reads the
/// key from caplet memory.
fn storage_key<O: Outside>(
    caller: &mut Caller<'_, Data<O>>,
    ptr: i32,
    len: i32,
) -> Result<Vec<u8>, Code> {
    charge(caller, len)?;
    if !caller.data().in_entry {
        return Err(Code::Refused);
    }
    let memory = caller.data().memory.ok_or(Code::BadMemory)?;
    let r = range(ptr, len, caller.data().storage.key_limit())?;
    let mem = memory.data(&*caller);
    mem.get(r).map(<[u8]>::to_vec).ok_or(Code::BadMemory)
}

/// Before an entry's first write, charges the copy of the storage that
/// applying its writes will make.
fn charge_first_write<O: Outside>(caller: &mut Caller<'_, Data<O>>) -> Result<(), Code> {
    let d = caller.data();
    if d.storage.has_written() {
        return Ok(());
    }
    let bytes = u64::try_from(d.storage.base().bytes()).unwrap_or(u64::MAX);
    let cost = bytes.saturating_mul(d.storage_copy_fuel);
    burn(caller, cost)
}

fn status(r: Result<(), Code>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(c) => c.as_i32(),
    }
}

pub(super) fn define_host_functions<O: Outside>(
    linker: &mut Linker<Data<O>>,
) -> wasmtime::Result<()> {
    linker.func_wrap(
        abi::MODULE,
        "read",
        |mut caller: Caller<'_, Data<O>>, ptr: i32, len: i32| -> i32 {
            status((|| {
                charge(&mut caller, len)?;
                let memory = caller.data().memory.ok_or(Code::BadMemory)?;
                let (mem, data) = memory.data_and_store_mut(&mut caller);
                if !data.inbound_pending {
                    return Err(Code::NoMessage);
                }
                let r = range(ptr, len, data.max_message_bytes)?;
                if r.len() != data.inbound.len() {
                    return Err(Code::NoMessage);
                }
                let dst = mem.get_mut(r).ok_or(Code::BadMemory)?;
                dst.copy_from_slice(&data.inbound);
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        abi::MODULE,
        "send",
        |mut caller: Caller<'_, Data<O>>, target: i64, ptr: i32, len: i32| -> i64 {
            let r = (|| {
                charge(&mut caller, len)?;
                let cap = caller.data().clist.get(target, Kind::Ref)?.cap.clone();
                if !caller.data().clist.has_room(1) {
                    return Err(Code::CListFull);
                }
                let msg = read_value(&mut caller, ptr, len)?;
                let d = caller.data_mut();
                let answer = d.outside.send(&cap, msg).map_err(|_| Code::Refused)?;
                let h = d.clist.insert(Entry {
                    cap: answer,
                    kind: Kind::Ref,
                })?;
                Ok(handle_i64(h))
            })();
            r.unwrap_or_else(|c: Code| i64::from(c.as_i32()))
        },
    )?;
    linker.func_wrap(
        abi::MODULE,
        "send_only",
        |mut caller: Caller<'_, Data<O>>, target: i64, ptr: i32, len: i32| -> i32 {
            status((|| {
                charge(&mut caller, len)?;
                let cap = caller.data().clist.get(target, Kind::Ref)?.cap.clone();
                let msg = read_value(&mut caller, ptr, len)?;
                caller
                    .data_mut()
                    .outside
                    .send_only(&cap, msg)
                    .map_err(|_| Code::Refused)
            })())
        },
    )?;
    for (name, broken) in [("resolve", false), ("break_promise", true)] {
        linker.func_wrap(
            abi::MODULE,
            name,
            move |mut caller: Caller<'_, Data<O>>, resolver: i64, ptr: i32, len: i32| -> i32 {
                status((|| {
                    charge(&mut caller, len)?;
                    caller.data().clist.get(resolver, Kind::Resolver)?;
                    let v = read_value(&mut caller, ptr, len)?;
                    let d = caller.data_mut();
                    let r = d.clist.take_resolver(resolver)?;
                    d.outside.settle(r, if broken { Err(v) } else { Ok(v) });
                    Ok(())
                })())
            },
        )?;
    }
    linker.func_wrap(
        abi::MODULE,
        "when",
        |mut caller: Caller<'_, Data<O>>, promise: i64, tag: i64| -> i32 {
            status((|| {
                charge(&mut caller, 0)?;
                let d = caller.data_mut();
                let cap = d.clist.get(promise, Kind::Ref)?.cap.clone();
                d.outside.when(&cap, tag).map_err(|_| Code::Refused)
            })())
        },
    )?;
    linker.func_wrap(
        abi::MODULE,
        "drop",
        |mut caller: Caller<'_, Data<O>>, handle: i64| -> i32 {
            status((|| {
                charge(&mut caller, 0)?;
                let d = caller.data_mut();
                let e = d.clist.take(handle)?;
                if e.kind == Kind::Resolver {
                    // Dropping a resolver breaks its promise: nobody else
                    // can settle it now.
                    d.outside
                        .settle(e.cap, Err(Value::error("dropped by caplet")));
                }
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        abi::MODULE,
        "storage_get",
        |mut caller: Caller<'_, Data<O>>, key_ptr: i32, key_len: i32| -> i32 {
            let r = (|| {
                let key = storage_key(&mut caller, key_ptr, key_len)?;
                let d = caller.data();
                let size = d.storage.get_sized(&key).ok_or(Code::NotFound)?.1;
                // Paid before the host copies and encodes the value (and
                // again, by size, when the caplet reads it).
                let cost = u64::try_from(size)
                    .unwrap_or(u64::MAX)
                    .saturating_mul(d.message_byte_fuel);
                burn(&mut caller, cost)?;
                let value = caller
                    .data()
                    .storage
                    .get(&key)
                    .cloned()
                    .ok_or(Code::NotFound)?;
                // Stored values never hold the reserved label as data
                // (they come from caplet messages, where it means a
                // reference); one restored from elsewhere might.
                if has_reserved_label(&value) {
                    return Err(Code::BadMessage);
                }
                let len = stage_inbound(caller.data_mut(), value, 0).map_err(|e| match e {
                    CallError::CListFull => Code::CListFull,
                    CallError::MessageTooLarge { .. } => Code::TooLarge,
                    _ => Code::BadMessage,
                })?;
                Ok(len)
            })();
            r.unwrap_or_else(|c: Code| c.as_i32())
        },
    )?;
    linker.func_wrap(
        abi::MODULE,
        "storage_put",
        |mut caller: Caller<'_, Data<O>>, key_ptr: i32, key_len: i32, ptr: i32, len: i32| -> i32 {
            status((|| {
                let key = storage_key(&mut caller, key_ptr, key_len)?;
                charge(&mut caller, len)?;
                charge_first_write(&mut caller)?;
                let value = read_value(&mut caller, ptr, len)?;
                caller.data_mut().storage.put(key, value)
            })())
        },
    )?;
    linker.func_wrap(
        abi::MODULE,
        "storage_delete",
        |mut caller: Caller<'_, Data<O>>, key_ptr: i32, key_len: i32| -> i32 {
            status((|| {
                let key = storage_key(&mut caller, key_ptr, key_len)?;
                charge_first_write(&mut caller)?;
                caller.data_mut().storage.delete(key)
            })())
        },
    )?;
    Ok(())
}
