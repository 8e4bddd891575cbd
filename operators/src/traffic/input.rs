//! Feeding flow records into the traffic dataflow with event-time progress.

use differential_dataflow::input::InputSession;
use meshflow_schemas::TimestampNs;

use super::combiner::TrafficCombiner;
use super::diff::{TrafficDiff, TrafficVal};
use crate::window::WindowSpec;

/// A flow that arrived after its windows were already closed, or before 1970.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Late {
    /// The flow's event time.
    pub time: TimestampNs,
}

/// One worker's entry point into the traffic dataflow: combines flows, tracks the
/// watermark, and advances the differential input so windows close.
pub struct TrafficInput {
    spec: WindowSpec,
    combiner: TrafficCombiner,
    session: InputSession<u64, (u64, TrafficVal), TrafficDiff>,
}

impl TrafficInput {
    /// Wraps a differential input session (already attached to a dataflow).
    pub fn new(
        session: InputSession<u64, (u64, TrafficVal), TrafficDiff>,
        spec: WindowSpec,
    ) -> Self {
        Self {
            spec,
            combiner: TrafficCombiner::new(spec),
            session,
        }
    }

    /// Adds a flow whose event time is `last_seen`. A flow older than the current
    /// watermark is refused: its windows are closed and their rows already out.
    pub fn add_flow(
        &mut self,
        last_seen: TimestampNs,
        src: u64,
        dst: u64,
        bytes: u64,
        packets: u64,
    ) -> Result<(), Late> {
        let epoch = self
            .spec
            .epoch_of(last_seen)
            .ok_or(Late { time: last_seen })?;
        if self.spec.first_window(epoch) < *self.session.time() {
            return Err(Late { time: last_seen });
        }
        self.combiner.add_flow(epoch, src, dst, bytes, packets);
        Ok(())
    }

    /// Declares that no flow with an epoch below `epoch` will follow: windows that
    /// end at or before it can close.
    pub fn advance_to_epoch(&mut self, epoch: u64) {
        let time = self.spec.first_window(epoch);
        if time <= *self.session.time() {
            return;
        }
        let session = &mut self.session;
        self.combiner
            .flush(time, |key, t, diff| session.update_at(key, t, diff));
        session.advance_to(time);
        session.flush();
    }

    /// The current input time (window end) in epochs.
    pub fn time(&self) -> u64 {
        *self.session.time()
    }

    /// Sends everything still pending and closes the input, so every window closes.
    pub fn close(mut self) {
        let session = &mut self.session;
        self.combiner
            .flush(u64::MAX, |key, t, diff| session.update_at(key, t, diff));
        session.flush();
    }
}
