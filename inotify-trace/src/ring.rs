//! Reading records out of the ring buffer, woken either by the kernel (a CPU
//! has sent its share of the wakeup threshold) or by a short poll timer (the eBPF side
//! submits most records without a wakeup, which saves ~1 µs per call).
use std::{io, time::Duration};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use tokio::io::{unix::AsyncFd, Interest};

use crate::{event::Event, stream::Item};

/// How often records submitted without a wakeup are picked up. The ring must
/// hold a burst's worth of this interval.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

pub struct RingReader {
    ring: AsyncFd<RingBuf<MapData>>,
    lost: PerCpuArray<MapData, u64>,
    lost_reported: u64,
    timer: tokio::time::Interval,
}

impl RingReader {
    pub fn new(ring: RingBuf<MapData>, lost: PerCpuArray<MapData, u64>) -> Result<Self> {
        // SAFETY: the fd belongs to `ring`, which the AsyncFd owns from here
        // on, so it stays open and the same for the AsyncFd's lifetime.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
            .context("watching the ring buffer for data")?;
        let mut timer = tokio::time::interval(POLL_INTERVAL);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(RingReader {
            ring,
            lost,
            lost_reported: 0,
            timer,
        })
    }

    /// Waits until records may be waiting: a kernel wakeup or the timer.
    pub async fn ready(&mut self) -> Result<()> {
        tokio::select! {
            guard = self.ring.readable_mut() => {
                guard.context("waiting on the ring buffer")?.clear_ready();
            }
            _ = self.timer.tick() => {}
        }
        Ok(())
    }

    /// Hands every waiting record to `push` as an item, then the count of
    /// records lost since the last drain; stops at `push`'s first error.
    pub fn drain(&mut self, mut push: impl FnMut(Item<'_>) -> io::Result<()>) -> Result<()> {
        let ring = self.ring.get_mut();
        while let Some(record) = ring.next() {
            push(match Event::decode(&record) {
                Ok(event) => Item::Event(event),
                Err(err) => Item::Undecodable(err),
            })?;
        }
        let lost = self.newly_lost()?;
        if lost > 0 {
            push(Item::Lost(lost))?;
        }
        Ok(())
    }

    /// Records lost in the kernel since the last call.
    fn newly_lost(&mut self) -> Result<u64> {
        let per_cpu = self
            .lost
            .get(&0, 0)
            .context("reading the lost-records counter")?;
        let total = per_cpu.iter().fold(0u64, |sum, n| sum.saturating_add(*n));
        let new = total.saturating_sub(self.lost_reported);
        self.lost_reported = total;
        Ok(new)
    }
}
