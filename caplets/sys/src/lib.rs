//! Raw imports of pola's caplet interface, module `"pola"`.
//!
//! This tiny crate is the unsafe exception (see STYLE.md): declaring and
//! calling WebAssembly imports is `unsafe` in Rust. Every function here
//! passes the host a pointer and length taken from a live Rust slice, and
//! the host only reads or writes inside that range, so each call is sound.
//! The contract of each function is documented in `pola_sandbox::abi`.
//!
//! On targets other than wasm32 the functions exist but fail with
//! `NOT_WASM` so that the SDK can be unit-tested natively.
// Not forbid(unsafe_code): this crate is the one unsafe exception (declaring
// and calling WebAssembly imports); each block is allowed locally with a SAFETY note.
#![deny(unsafe_code)]

/// Returned by every function when not compiled for wasm32.
pub const NOT_WASM: i32 = -100;

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod imp {
    #[link(wasm_import_module = "pola")]
    unsafe extern "C" {
        fn read(ptr: *mut u8, len: usize) -> i32;
        fn send(target: i64, ptr: *const u8, len: usize) -> i64;
        fn send_only(target: i64, ptr: *const u8, len: usize) -> i32;
        fn resolve(resolver: i64, ptr: *const u8, len: usize) -> i32;
        fn break_promise(resolver: i64, ptr: *const u8, len: usize) -> i32;
        fn when(promise: i64, tag: i64) -> i32;
        fn drop(handle: i64) -> i32;
        fn storage_get(key: *const u8, key_len: usize) -> i32;
        fn storage_put(key: *const u8, key_len: usize, value: *const u8, len: usize) -> i32;
        fn storage_delete(key: *const u8, key_len: usize) -> i32;
    }

    pub fn read_into(buf: &mut [u8]) -> i32 {
        // SAFETY: the host writes exactly `buf.len()` bytes at `buf`.
        unsafe { read(buf.as_mut_ptr(), buf.len()) }
    }
    pub fn send_bytes(target: i64, msg: &[u8]) -> i64 {
        // SAFETY: the host only reads `msg.len()` bytes at `msg`.
        unsafe { send(target, msg.as_ptr(), msg.len()) }
    }
    pub fn send_only_bytes(target: i64, msg: &[u8]) -> i32 {
        // SAFETY: as for `send_bytes`.
        unsafe { send_only(target, msg.as_ptr(), msg.len()) }
    }
    pub fn resolve_bytes(resolver: i64, value: &[u8]) -> i32 {
        // SAFETY: as for `send_bytes`.
        unsafe { resolve(resolver, value.as_ptr(), value.len()) }
    }
    pub fn break_bytes(resolver: i64, reason: &[u8]) -> i32 {
        // SAFETY: as for `send_bytes`.
        unsafe { break_promise(resolver, reason.as_ptr(), reason.len()) }
    }
    pub fn when_settled(promise: i64, tag: i64) -> i32 {
        // SAFETY: integers only.
        unsafe { when(promise, tag) }
    }
    pub fn drop_handle(handle: i64) -> i32 {
        // SAFETY: integers only.
        unsafe { drop(handle) }
    }
    pub fn storage_get_key(key: &[u8]) -> i32 {
        // SAFETY: the host only reads `key.len()` bytes at `key`.
        unsafe { storage_get(key.as_ptr(), key.len()) }
    }
    pub fn storage_put_bytes(key: &[u8], value: &[u8]) -> i32 {
        // SAFETY: the host only reads `key.len()` bytes at `key` and
        // `value.len()` bytes at `value`.
        unsafe { storage_put(key.as_ptr(), key.len(), value.as_ptr(), value.len()) }
    }
    pub fn storage_delete_key(key: &[u8]) -> i32 {
        // SAFETY: as for `storage_get_key`.
        unsafe { storage_delete(key.as_ptr(), key.len()) }
    }
    /// Raw access for tests of the host's checks (bad pointers).
    pub fn send_raw(target: i64, ptr: usize, len: usize) -> i64 {
        // SAFETY: the host checks `(ptr, len)` against this instance's
        // memory and never touches anything outside it; nothing on the
        // Rust side is read or written.
        unsafe { send(target, ptr as *const u8, len) }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::NOT_WASM;
    pub fn read_into(_: &mut [u8]) -> i32 {
        NOT_WASM
    }
    pub fn send_bytes(_: i64, _: &[u8]) -> i64 {
        i64::from(NOT_WASM)
    }
    pub fn send_only_bytes(_: i64, _: &[u8]) -> i32 {
        NOT_WASM
    }
    pub fn resolve_bytes(_: i64, _: &[u8]) -> i32 {
        NOT_WASM
    }
    pub fn break_bytes(_: i64, _: &[u8]) -> i32 {
        NOT_WASM
    }
    pub fn when_settled(_: i64, _: i64) -> i32 {
        NOT_WASM
    }
    pub fn drop_handle(_: i64) -> i32 {
        NOT_WASM
    }
    pub fn send_raw(_: i64, _: usize, _: usize) -> i64 {
        i64::from(NOT_WASM)
    }
    pub fn storage_get_key(_: &[u8]) -> i32 {
        NOT_WASM
    }
    pub fn storage_put_bytes(_: &[u8], _: &[u8]) -> i32 {
        NOT_WASM
    }
    pub fn storage_delete_key(_: &[u8]) -> i32 {
        NOT_WASM
    }
}

/// `read`: copies the current inbound message into `buf` (exact length).
pub fn read_into(buf: &mut [u8]) -> i32 {
    imp::read_into(buf)
}
/// `send`: returns the answer promise's handle, or a negative code.
pub fn send_bytes(target: i64, msg: &[u8]) -> i64 {
    imp::send_bytes(target, msg)
}
/// `send_only`: `0` or a negative code.
pub fn send_only_bytes(target: i64, msg: &[u8]) -> i32 {
    imp::send_only_bytes(target, msg)
}
/// `resolve`: `0` or a negative code.
pub fn resolve_bytes(resolver: i64, value: &[u8]) -> i32 {
    imp::resolve_bytes(resolver, value)
}
/// `break_promise`: `0` or a negative code.
pub fn break_bytes(resolver: i64, reason: &[u8]) -> i32 {
    imp::break_bytes(resolver, reason)
}
/// `when`: `0` or a negative code.
pub fn when_settled(promise: i64, tag: i64) -> i32 {
    imp::when_settled(promise, tag)
}
/// `drop`: `0` or a negative code.
pub fn drop_handle(handle: i64) -> i32 {
    imp::drop_handle(handle)
}
/// `storage_get`: the value's length (fetch it with [`read_into`]), or a
/// negative code (`-11`: no such key).
pub fn storage_get_key(key: &[u8]) -> i32 {
    imp::storage_get_key(key)
}
/// `storage_put`: `0` or a negative code.
pub fn storage_put_bytes(key: &[u8], value: &[u8]) -> i32 {
    imp::storage_put_bytes(key, value)
}
/// `storage_delete`: `0` or a negative code (`-11`: no such key).
pub fn storage_delete_key(key: &[u8]) -> i32 {
    imp::storage_delete_key(key)
}
/// `send` with an arbitrary `(ptr, len)`: only for testing the host's
/// bounds checks.
pub fn send_raw(target: i64, ptr: usize, len: usize) -> i64 {
    imp::send_raw(target, ptr, len)
}
