//! What one caplet instance's store holds ([`Data`]) and its memory and
//! table limiter.

use pola_syrup::Limits;
use wasmtime::{Memory, ResourceLimiter};

use super::outside::Outside;
use crate::clist::CList;
use crate::storage::Staging;

/// The per-instance memory and table limiter.
pub(crate) struct Limiter {
    pub(crate) memory_bytes: usize,
    pub(crate) table_elements: usize,
    /// Set when a growth was refused during the current call.
    pub(crate) hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_bytes;
        self.hit |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.table_elements;
        self.hit |= !ok;
        Ok(ok)
    }
}

/// Everything one caplet instance's store holds.
pub(crate) struct Data<O: Outside> {
    pub(crate) outside: O,
    pub(crate) clist: CList<O::Ref>,
    pub(crate) memory: Option<Memory>,
    /// The message of the current delivery or notification.
    pub(crate) inbound: Vec<u8>,
    pub(crate) inbound_pending: bool,
    pub(crate) limiter: Limiter,
    pub(crate) max_message_bytes: usize,
    pub(crate) limits: Limits,
    pub(crate) host_call_fuel: u64,
    pub(crate) message_byte_fuel: u64,
    /// Fuel per value decoded from a caplet's message.
    pub(crate) value_fuel: u64,
    /// The caplet's storage: committed base and this entry's writes.
    pub(crate) storage: Staging<O::Ref>,
    pub(crate) storage_copy_fuel: u64,
    /// Whether an entry (delivery or notification) is running.
    pub(crate) in_entry: bool,
    /// Whether a host call of the current entry found the fuel budget
    /// spent (the entry then fails as [`CallError::OutOfFuel`](crate::CallError::OutOfFuel)).
    pub(crate) exhausted: bool,
}
