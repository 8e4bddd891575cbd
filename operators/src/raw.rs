//! Raw input records (metrics, TCP events, system calls) as timely streams that keep
//! pace with the windows, so they can be written as tables next to the features.

use meshflow_schemas::TimestampNs;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::ActivateCapability;
use timely::dataflow::operators::core::{UnorderedHandle, UnorderedInput};
use timely::dataflow::{Scope, Stream};

use crate::features::Late;
use crate::window::WindowSpec;

/// One worker's entry point for raw records of type `R`.
///
/// A record at event time `t` is sent at timely time `first_window(epoch_of(t))`,
/// the same time at which the traffic input would admit a flow of that moment, so
/// both inputs close windows together. Records may arrive for any open time; a
/// record for a time the input has already passed is refused as late.
pub struct RawInput<R: 'static> {
    spec: WindowSpec,
    handle: UnorderedHandle<u64, CapacityContainerBuilder<Vec<R>>>,
    cap: Option<ActivateCapability<u64>>,
    pending: Vec<(u64, R)>,
}

impl<R: Clone + 'static> RawInput<R> {
    /// Creates the input in `scope`, returning it with the stream of its records.
    pub fn new<'s>(scope: Scope<'s, u64>, spec: WindowSpec) -> (Self, Stream<'s, u64, Vec<R>>) {
        let ((handle, cap), stream) =
            scope.new_unordered_input::<CapacityContainerBuilder<Vec<R>>>();
        (
            Self {
                spec,
                handle,
                cap: Some(cap),
                pending: Vec::new(),
            },
            stream,
        )
    }

    /// Queues a record with event time `time`; refused if its window has closed.
    pub fn give(&mut self, time: TimestampNs, record: R) -> Result<(), Late> {
        let window = self
            .spec
            .epoch_of(time)
            .map(|e| self.spec.first_window(e))
            .ok_or(Late { time })?;
        match &self.cap {
            Some(cap) if window >= *cap.time() => {
                self.pending.push((window, record));
                Ok(())
            }
            _ => Err(Late { time }),
        }
    }

    /// Sends the queued records, one message per timely time.
    pub fn flush(&mut self) {
        let Some(cap) = &self.cap else {
            self.pending.clear();
            return;
        };
        self.pending.sort_by_key(|(w, _)| *w);
        let mut rest = self.pending.drain(..).peekable();
        while let Some((window, first)) = rest.next() {
            let mut batch = vec![first];
            while let Some((_, r)) = rest.next_if(|(w, _)| *w == window) {
                batch.push(r);
            }
            let at = cap.delayed(&window);
            self.handle
                .activate()
                .session(&at)
                .give_container(&mut batch);
        }
    }

    /// Declares that nothing before epoch `epoch` will follow (as the traffic input's
    /// `advance_to_epoch`), after sending what is queued.
    pub fn advance_to_epoch(&mut self, epoch: u64) {
        self.flush();
        let time = self.spec.first_window(epoch);
        if let Some(cap) = &mut self.cap
            && time > *cap.time()
        {
            cap.downgrade(&time);
        }
    }

    /// Sends what is queued and closes the input.
    pub fn close(&mut self) {
        self.flush();
        self.cap = None;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use timely::dataflow::operators::{Capture, capture::Extract};

    use super::*;

    #[test]
    fn records_arrive_at_their_first_window_and_late_ones_are_refused() {
        let spec = WindowSpec::new(1_000, 3_000, 1_000).unwrap();
        let (send, recv) = std::sync::mpsc::channel();
        let send = Arc::new(Mutex::new(send));
        let lates = Arc::new(Mutex::new(Vec::new()));
        let lates2 = lates.clone();
        timely::execute(timely::Config::thread(), move |worker| {
            let send = send.lock().unwrap().clone();
            let mut input = worker.dataflow::<u64, _, _>(|scope| {
                let (input, stream) = RawInput::<i64>::new(scope, spec);
                stream.capture_into(send);
                input
            });
            input.give(TimestampNs(5_500), 55).unwrap();
            input.give(TimestampNs(1_200), 12).unwrap();
            input.give(TimestampNs(1_900), 19).unwrap();
            input.advance_to_epoch(4);
            let mut late = lates2.lock().unwrap();
            late.push(input.give(TimestampNs(2_100), 21).is_err());
            late.push(input.give(TimestampNs(-1), 0).is_err());
            late.push(input.give(TimestampNs(4_000), 40).is_err());
            input.close();
        })
        .unwrap();
        let mut got = recv.extract();
        for (_, data) in &mut got {
            data.sort();
        }
        assert_eq!(got, vec![(2, vec![12, 19]), (5, vec![40]), (6, vec![55])]);
        assert_eq!(*lates.lock().unwrap(), vec![true, true, false]);
    }
}
