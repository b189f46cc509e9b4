//! The host's limits and sizes ([`Config`]). Read by both the checker
//! ([`crate::check`]) and the host ([`crate::Sandbox`]), so it sits below
//! them and imports neither.

use crate::bounds::Bounds;

/// Limits and sizes for a [`Sandbox`](crate::Sandbox). Start from `Config::default()` and
/// change fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Fuel (roughly, wasm instructions) for each entry into a caplet.
    /// Default 50 M (about 5 ms of work).
    pub fuel_per_call: u64,
    /// Most linear memory one instance may have, in bytes. Default 16 MiB.
    pub memory_bytes: usize,
    /// Most table elements one instance may have. Default 10 000.
    pub table_elements: usize,
    /// Largest message in either direction, in encoded bytes. Default 1 MiB.
    pub max_message_bytes: usize,
    /// Most entries in one instance's c-list. Default 4096.
    pub max_handles: usize,
    /// Most native stack wasm may use, in bytes. Default 512 KiB.
    pub max_stack_bytes: usize,
    /// Instances that may be alive at once (pooling allocator slots).
    /// Default 256.
    pub max_instances: u32,
    /// Largest module accepted by the loader, in bytes. Default 16 MiB.
    pub max_module_bytes: usize,
    /// Fuel charged for every call the caplet makes to the host, on top of
    /// the per-byte charge. Host work is not metered by the engine, so this
    /// keeps a caplet from spending host CPU and memory without limit
    /// inside one delivery (for example sending in a loop). Default 10 000.
    pub host_call_fuel: u64,
    /// Fuel charged per byte of every message the caplet sends, settles
    /// or reads. Default 8 (so one delivery can move at most about 6 MB at
    /// the default budget).
    pub message_byte_fuel: u64,
    /// Bytes at the start of each pooled linear memory that stay resident
    /// between instances (reset in place instead of unmapped), which makes
    /// the first call into a fresh instance cheaper (measured: 16 µs instead
    /// of 25 µs for a small Rust caplet, p99 25 µs instead of 70 µs), at the
    /// price of up to this much resident memory per pool slot ever used.
    /// Default 1 MiB.
    pub keep_resident_bytes: usize,
    /// Wall-clock limit for each entry into a caplet, on top of fuel, or
    /// `None` for fuel alone. Fuel bounds the caplet's own work and the
    /// host calls it makes; this bounds time spent anywhere, including an
    /// [`Outside`](crate::Outside) that blocks. It is enforced by epoch interruption: a
    /// ticker thread per [`Sandbox`](crate::Sandbox) advances the engine's epoch every
    /// [`Config::epoch_tick`], and the caplet traps with
    /// [`crate::CallError::TimedOut`] at the first function entry or loop
    /// back-edge
    /// after the deadline. A host call in progress is not interrupted: a
    /// blocking `Outside` delays the stop until it returns. The limit is
    /// rounded up to whole ticks. Default 1 s.
    pub wall_time_per_call: Option<std::time::Duration>,
    /// Granularity of [`Config::wall_time_per_call`]. Default 10 ms.
    pub epoch_tick: std::time::Duration,
    /// Longest storage key, in bytes. Default 256.
    pub storage_key_bytes: usize,
    /// Largest stored value (encoded; a reference counts
    /// [`StorageMap::REF_BYTES`](crate::StorageMap::REF_BYTES)). Default 64 KiB.
    pub storage_value_bytes: usize,
    /// Most keys in one caplet's storage. Default 1024.
    pub storage_keys: usize,
    /// Most bytes (keys plus values) in one caplet's storage. Default 1 MiB.
    pub storage_bytes: usize,
    /// Fuel charged per byte of a caplet's storage the first time an entry
    /// writes to it, for the copy the host makes when the entry's writes
    /// are applied (and, in a persistent vat, the portrait it encodes).
    /// Default 1.
    pub storage_copy_fuel: u64,
    /// Bounds on a module's shape, checked before compiling it, so that
    /// compiling a module takes bounded time and memory (see [`Bounds`](crate::Bounds)).
    pub bounds: Bounds,
    /// Most values (atoms and containers, at every depth) in one message a
    /// caplet sends, settles or stores; a message over it is refused with
    /// [`crate::abi::Code::TooLarge`] as it is decoded. One encoded byte
    /// can become a
    /// value of several dozen bytes of host memory, so this, not
    /// [`Config::max_message_bytes`], bounds what decoding one message may
    /// allocate. Default 256 Ki (about 12 MiB decoded at most).
    pub max_message_values: usize,
    /// Fuel charged per value decoded from a caplet's message, on top of
    /// the per-byte charge, for the host memory and time decoding costs.
    /// Default 100 (so one entry can decode at most about 500 000 values
    /// at the default budget).
    pub value_fuel: u64,
    /// A caplet object's sustained CPU budget across its turns
    /// ([`crate::vat::CapletObject`]): fuel per second of wall time that
    /// refills its budget. A caplet that spends its budget faster than
    /// this, for longer than [`Config::fuel_burst`] allows, is stopped.
    /// Default 1 G (roughly a fifth to a half of one core, depending on
    /// the code).
    pub fuel_per_second: u64,
    /// The most fuel a caplet object may spend at once across its turns:
    /// its budget when full. Default 5 G (a hundred full entries, some
    /// seconds of one core).
    pub fuel_burst: u64,
    /// Fuel charged to a caplet object's budget for every entry (message
    /// or notification), on top of what the entry spends, for the vat's
    /// own work per turn (which fuel does not meter). Default 100 000.
    pub turn_fuel: u64,
    /// The most bytes of host memory a caplet object's sends may hold at
    /// once: each message it sends counts its decoded size (its values, as
    /// for [`Config::value_fuel`], plus their
    /// bytes) from the send until its answer settles (a send-only message:
    /// until it is delivered or dropped; to another vat: until its session
    /// takes it). A caplet over it is stopped. This bounds what a caplet
    /// can pile up in its vat, for example sends queued on a promise that
    /// never settles. Default 64 MiB.
    pub pending_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fuel_per_call: 50_000_000,
            memory_bytes: 16 << 20,
            table_elements: 10_000,
            max_message_bytes: 1 << 20,
            max_handles: 4096,
            max_stack_bytes: 512 << 10,
            max_instances: 256,
            max_module_bytes: 16 << 20,
            keep_resident_bytes: 1 << 20,
            host_call_fuel: 10_000,
            message_byte_fuel: 8,
            wall_time_per_call: Some(std::time::Duration::from_secs(1)),
            epoch_tick: std::time::Duration::from_millis(10),
            storage_key_bytes: 256,
            storage_value_bytes: 64 << 10,
            storage_keys: 1024,
            storage_bytes: 1 << 20,
            storage_copy_fuel: 1,
            bounds: Bounds::default(),
            max_message_values: 256 << 10,
            value_fuel: 100,
            fuel_per_second: 1_000_000_000,
            fuel_burst: 5_000_000_000,
            turn_fuel: 100_000,
            pending_bytes: 64 << 20,
        }
    }
}
