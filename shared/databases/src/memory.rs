//! The process-wide memory for query results (`MAKO_EXECUTE_MEMORY_BYTES`), one permit per
//! KiB, which every sink that holds rows takes from.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ConnectorError;

/// The part of the process's result memory a sink holds, one permit per KiB.
pub(crate) struct MemoryCharge {
    pool: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    held_kib: usize,
}

/// KiB taken from the pool at a time, so a large result does not take permits row by row,
/// while a small one holds little.
const CHARGE_STEP_KIB: usize = 64;

impl MemoryCharge {
    /// Takes permits until the sink has `bytes` covered, or fails when the pool cannot
    /// supply them now. It never waits, because the rows are already in memory.
    pub(crate) fn cover(&mut self, bytes: usize) -> Result<(), ConnectorError> {
        let needed_kib = bytes.div_ceil(1024);
        if needed_kib <= self.held_kib {
            return Ok(());
        }
        let step = (needed_kib - self.held_kib).max(CHARGE_STEP_KIB);
        let step = step.min(self.pool.available_permits().max(needed_kib - self.held_kib));
        let permits = u32::try_from(step).map_err(|_| ConnectorError::ResultMemoryFull)?;
        let permit = self
            .pool
            .clone()
            .try_acquire_many_owned(permits)
            .map_err(|_| ConnectorError::ResultMemoryFull)?;
        match self.held.as_mut() {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        self.held_kib += step;
        Ok(())
    }
}

impl MemoryCharge {
    pub(crate) fn new(pool: Arc<Semaphore>) -> MemoryCharge {
        MemoryCharge {
            pool,
            held: None,
            held_kib: 0,
        }
    }

    /// Gives back every permit held.
    pub(crate) fn release(&mut self) {
        self.held = None;
        self.held_kib = 0;
    }

    /// Returns the pool the permits come from.
    pub(crate) fn pool(&self) -> Arc<Semaphore> {
        self.pool.clone()
    }

    /// Returns the permits held, to be dropped when the memory is free again.
    pub(crate) fn into_permit(self) -> Option<OwnedSemaphorePermit> {
        self.held
    }
}
