//! Feeding events into the feature dataflow with event-time progress.

use differential_dataflow::input::InputSession;
use meshflow_schemas::{NodeMetric, SyscallLatency, TcpEvent, TcpEventKind, TimestampNs};
use timely::dataflow::InputHandleVec;

use super::combiner::FeatureCombiner;
use super::diff::{FeatureDiff, FeatureVal, Names, quantize_metric};
use crate::sketch::bucket_of;
use crate::window::WindowSpec;

/// The drop reason recorded for a drop event that carries none (the kernel's name
/// for an unspecified reason).
pub const UNKNOWN_DROP_REASON: &str = "NOT_SPECIFIED";

/// An event that arrived after its windows were already closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Late {
    /// The event's time.
    pub time: TimestampNs,
}

/// The most bytes or packets one flow record may carry: 2^53 (9.0e15, 9 PB). A
/// window's totals are 64-bit sums, which this keeps from wrapping however many such
/// records a node has in a window (up to a thousand at the bound); larger counts are
/// corrupt or wrapped counters, not traffic.
pub const MAX_FLOW_COUNT: u64 = 1 << 53;

/// Why a record was not admitted.
#[derive(Clone, Debug, PartialEq)]
pub enum Refused {
    /// Its windows are closed.
    Late(Late),
    /// The record itself is bad; the text says what and where.
    Invalid(String),
}

/// What [`FeatureInput::add_records`] refused.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Refusals {
    /// Records whose windows had closed.
    pub late: u64,
    /// Bad records (e.g. a NaN metric value).
    pub invalid: u64,
    /// The first bad record's description, if any.
    pub first_invalid: Option<String>,
}

impl Refusals {
    /// Counts `result` if it is a refusal.
    pub fn tally(&mut self, result: Result<(), Refused>) {
        match result {
            Ok(()) => {}
            Err(Refused::Late(_)) => self.late += 1,
            Err(Refused::Invalid(what)) => {
                self.invalid += 1;
                self.first_invalid.get_or_insert(what);
            }
        }
    }
}

/// A link of a given topology (`meshflow import metrics --edges`): it joins `src` and
/// `dst` in every window from `from_epoch` on, as a flow without traffic would.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    /// The first epoch the link holds in.
    pub from_epoch: u64,
    /// One end (its out-degree counts the link).
    pub src: u64,
    /// The other end (its in-degree counts the link).
    pub dst: u64,
}

/// The input session type of the feature dataflow.
pub type FeatureSession = InputSession<u64, (u64, FeatureVal), FeatureDiff>;

/// The input on which a worker announces, when its input closes, the last window
/// its data filled: `Some(first_window(last epoch with an event))`, or `None` when it
/// saw no event. Windows after the latest such end hold only the tail of the data
/// (each slide retracts more of it and adds nothing), so the anomaly scorer leaves
/// them unscored ([`crate::anomaly::anomaly_scores`]).
pub type DataEndInput = InputHandleVec<u64, Option<u64>>;

/// One worker's entry point into the feature dataflow: combines events, tracks the
/// watermark, and advances the differential input so windows close.
pub struct FeatureInput {
    spec: WindowSpec,
    combiner: FeatureCombiner,
    session: FeatureSession,
    links: Vec<Link>,
    /// Links hold in epochs before this one.
    links_until: u64,
    /// The first epoch whose links are not yet added.
    links_next: u64,
    /// The latest epoch of an admitted event.
    last_epoch: Option<u64>,
    /// Where the end of this worker's data is announced at close, if anywhere.
    data_end: Option<DataEndInput>,
    /// Drop reasons and metric names seen, shared by the updates that carry them.
    names: Names,
}

impl FeatureInput {
    /// Wraps a differential input session (already attached to a dataflow).
    pub fn new(session: FeatureSession, spec: WindowSpec) -> Self {
        Self {
            spec,
            combiner: FeatureCombiner::new(spec),
            session,
            links: Vec::new(),
            links_until: 0,
            links_next: 0,
            last_epoch: None,
            data_end: None,
            names: Names::default(),
        }
    }

    /// Announces the end of this worker's data on `input` when the input closes, and
    /// keeps `input` in step with the feature input until then.
    pub fn set_data_end_input(&mut self, mut input: DataEndInput) {
        input.advance_to(self.time());
        self.data_end = Some(input);
    }

    /// Notes that an event of `epoch` was admitted.
    fn admitted(&mut self, epoch: u64) {
        self.last_epoch = Some(self.last_epoch.map_or(epoch, |e| e.max(epoch)));
    }

    /// Gives this worker its share of a topology's links, each holding from its
    /// `from_epoch` up to (not including) epoch `until`, so nodes that only report
    /// metrics still have degrees, neighbourhoods and components. Call it before the
    /// first [`FeatureInput::advance_to_epoch`]. The epochs are global (from the
    /// trace, not from this worker's events), so any split of the links over workers
    /// gives the same windows.
    pub fn set_links(&mut self, mut links: Vec<Link>, until: u64) {
        links.sort_unstable();
        self.links_next = links.first().map_or(0, |l| l.from_epoch);
        self.links = links;
        self.links_until = until;
    }

    /// Adds the links of every epoch before `epoch` not yet added.
    fn add_links_before(&mut self, epoch: u64) {
        let end = epoch.min(self.links_until);
        for e in self.links_next..end {
            // Sorted by `from_epoch`: the links that hold at `e` are a prefix.
            for l in self.links.iter().take_while(|l| l.from_epoch <= e) {
                self.combiner.add_link(e, l.src, l.dst);
            }
        }
        self.links_next = self.links_next.max(end);
    }

    /// The epoch of `table`'s event of `node` at `time`: refused as late if its
    /// windows have closed, and as invalid before 1970 (an unset or wrapped time,
    /// which no window holds; counting it as late would blame the watermark).
    fn epoch(&self, table: &str, node: u64, time: TimestampNs) -> Result<u64, Refused> {
        let epoch = self.spec.epoch_of(time).ok_or_else(|| {
            Refused::Invalid(format!(
                "{table}: node {node} has a record at {} ns before 1970-01-01: not an \
                 event time (unset or wrapped?)",
                time.0
            ))
        })?;
        if self.spec.first_window(epoch) < *self.session.time() {
            return Err(Refused::Late(Late { time }));
        }
        Ok(epoch)
    }

    /// Adds a flow whose event time is `last_seen`. A flow older than the current
    /// watermark is refused as late: its windows are closed and their rows already out.
    /// One with more than [`MAX_FLOW_COUNT`] bytes or packets is refused as invalid.
    pub fn add_flow(
        &mut self,
        last_seen: TimestampNs,
        src: u64,
        dst: u64,
        bytes: u64,
        packets: u64,
    ) -> Result<(), Refused> {
        if bytes > MAX_FLOW_COUNT || packets > MAX_FLOW_COUNT {
            return Err(Refused::Invalid(format!(
                "flows: the flow from node {src} to node {dst} at {} ns has {bytes} bytes and \
                 {packets} packets; more than 2^53 (9.0e15) in one record is not a real count \
                 (a wrapped or corrupt counter?)",
                last_seen.0
            )));
        }
        let epoch = self.epoch("flows", src, last_seen)?;
        self.combiner.add_flow(epoch, src, dst, bytes, packets);
        self.admitted(epoch);
        Ok(())
    }

    /// Adds a metric sample; NaN, infinite values and magnitudes beyond
    /// [`MAX_METRIC_VALUE`](super::diff::MAX_METRIC_VALUE) are refused as invalid.
    pub fn add_metric(&mut self, m: &NodeMetric) -> Result<(), Refused> {
        let epoch = self.epoch("node_metrics", m.node, m.time)?;
        let sum = quantize_metric(m.value).ok_or_else(|| {
            Refused::Invalid(format!(
                "node_metrics: node {} metric `{}` at {} ns has value {}, which is not a \
                 finite number of magnitude at most 1e18",
                m.node, m.metric, m.time.0, m.value
            ))
        })?;
        let diff = FeatureDiff {
            count: 1,
            sum,
            ..Default::default()
        };
        self.combiner.add(
            epoch,
            m.node,
            FeatureVal::Metric(self.names.get_shared(&m.metric)),
            diff,
        );
        self.admitted(epoch);
        Ok(())
    }

    /// Adds a TCP event: a retransmit or a drop (by reason) of `node`, and its
    /// smoothed RTT as a sample when it carries one.
    pub fn add_tcp(&mut self, t: &TcpEvent) -> Result<(), Refused> {
        let epoch = self.epoch("tcp_events", t.node, t.time)?;
        self.admitted(epoch);
        match t.kind {
            TcpEventKind::Retransmit => {
                let diff = FeatureDiff {
                    retransmits: 1,
                    ..Default::default()
                };
                self.combiner.add(epoch, t.node, FeatureVal::Totals, diff);
            }
            TcpEventKind::Drop => {
                let reason = t.drop_reason.as_deref().unwrap_or(UNKNOWN_DROP_REASON);
                let val = FeatureVal::Drop(self.names.get(reason));
                self.combiner.add(epoch, t.node, val, FeatureDiff::count(1));
            }
            TcpEventKind::StateChange => {}
        }
        if let Some(srtt) = t.srtt_us.filter(|&s| s > 0) {
            let val = FeatureVal::Rtt(bucket_of(f64::from(srtt)));
            self.combiner.add(epoch, t.node, val, FeatureDiff::count(1));
        }
        Ok(())
    }

    /// Adds a system-call latency sample (kept in nanoseconds in the sketch).
    pub fn add_syscall(&mut self, s: &SyscallLatency) -> Result<(), Refused> {
        let epoch = self.epoch("syscall_latency", s.node, s.time)?;
        let val = FeatureVal::Syscall(bucket_of(s.latency_ns as f64));
        self.combiner.add(epoch, s.node, val, FeatureDiff::count(1));
        self.admitted(epoch);
        Ok(())
    }

    /// Adds every metric, TCP event and system call, counting what was refused.
    pub fn add_records(
        &mut self,
        metrics: &[NodeMetric],
        tcp: &[TcpEvent],
        syscalls: &[SyscallLatency],
    ) -> Refusals {
        let mut refusals = Refusals::default();
        for m in metrics {
            refusals.tally(self.add_metric(m));
        }
        for t in tcp {
            refusals.tally(self.add_tcp(t));
        }
        for s in syscalls {
            refusals.tally(self.add_syscall(s));
        }
        refusals
    }

    /// Declares that no event with an epoch below `epoch` will follow: windows that
    /// end at or before it can close.
    pub fn advance_to_epoch(&mut self, epoch: u64) {
        let time = self.spec.first_window(epoch);
        if time <= *self.session.time() {
            return;
        }
        self.add_links_before(epoch);
        let session = &mut self.session;
        self.combiner
            .flush(time, |key, t, diff| session.update_at(key, t, diff));
        session.advance_to(time);
        session.flush();
        if let Some(input) = &mut self.data_end {
            input.advance_to(time);
        }
    }

    /// Nets the retractions due at the next window's close against its inserts now
    /// ([`FeatureCombiner::prepare`]), so the close has less to do. It changes no
    /// update; call it when the worker would otherwise wait.
    pub fn prepare(&mut self) {
        self.combiner.prepare(self.time());
    }

    /// The current input time (window end) in epochs.
    pub fn time(&self) -> u64 {
        *self.session.time()
    }

    /// The end (in epochs) of the last window this worker's admitted events filled,
    /// the window of its newest event; later windows only hold the data's tail.
    pub fn last_window(&self) -> Option<u64> {
        self.last_epoch.map(|e| self.spec.first_window(e))
    }

    /// Announces the end of this worker's data (see [`DataEndInput`]) and closes that
    /// input: no event follows. [`FeatureInput::close`] does it too, if not done.
    pub fn announce_data_end(&mut self) {
        if let Some(mut input) = self.data_end.take() {
            input.send(self.last_window());
        }
    }

    /// The end of the next window that still has updates to send once no event
    /// follows (the retractions of the data's last windows, and given links), or
    /// `None`. Advancing to it window by window, stepping the dataflow in between,
    /// closes the tail with one window in flight instead of all at once.
    pub fn next_pending_window(&self) -> Option<u64> {
        let links = (self.links_next < self.links_until && !self.links.is_empty())
            .then(|| self.spec.first_window(self.links_next));
        [self.combiner.next_time(), links]
            .into_iter()
            .flatten()
            .min()
    }

    /// Sends everything still pending and closes the input, so every window closes;
    /// announces the end of this worker's data first (see [`DataEndInput`]).
    pub fn close(mut self) {
        self.announce_data_end();
        self.add_links_before(u64::MAX);
        let session = &mut self.session;
        self.combiner
            .flush(u64::MAX, |key, t, diff| session.update_at(key, t, diff));
        session.flush();
    }
}
