//! One worker's share of the simulator, delivered tick by tick: as fast as possible,
//! or paced to the wall clock like a live source.

use std::time::{Duration, Instant};

use meshflow_schemas::{Counters, TimestampNs};
use meshflow_sources::SourceBatch;
use meshflow_sources::simulator::{SimPartition, Tick};

/// Reads one worker's simulator partition.
///
/// Paced, it behaves like a live source: each record is delivered once the wall clock
/// reaches its event time (in the batches the worker's polls cut), and the watermark
/// moves to a tick's end once all of it is out. A tick is generated ahead of its
/// time, in one go; while the worker's dataflow is still emitting a closed window
/// (`wait` is zero), that generation waits, so it does not delay the window's rows,
/// unless the tick is already overdue.
pub struct SimReader {
    /// The partition.
    partition: Box<SimPartition>,
    /// The tick being delivered (buffers reused).
    tick: Tick,
    /// Tick width.
    tick_ns: i64,
    /// Wall-clock pacing: (wall start, simulated start), when real-time.
    pace: Option<(Instant, TimestampNs)>,
    /// End of the last tick delivered whole, as a watermark.
    watermark: Option<TimestampNs>,
    /// `tick` is generated and not yet delivered whole.
    held: bool,
    /// How many of the held tick's flows and TCP events are delivered, and whether its
    /// metrics are.
    sent: (usize, usize, bool),
    /// Whether generation is over.
    done: bool,
}

impl SimReader {
    /// A reader of `partition` with ticks `tick_ns` long; paced from `pace` =
    /// (wall-clock start, simulated start) if given.
    pub fn new(
        partition: SimPartition,
        tick_ns: i64,
        pace: Option<(Instant, TimestampNs)>,
    ) -> Self {
        Self {
            partition: Box::new(partition),
            tick: Tick::default(),
            tick_ns,
            pace,
            watermark: None,
            held: false,
            sent: (0, 0, false),
            done: false,
        }
    }

    /// The wall-clock instant at which simulated time `t` comes, when paced.
    fn wall_of(&self, t: TimestampNs) -> Option<Instant> {
        self.pace
            .map(|(wall, start)| wall + Duration::from_nanos((t.0 - start.0).max(0) as u64))
    }

    /// The simulated time the wall clock has reached, when paced.
    fn reached(&self) -> Option<TimestampNs> {
        self.pace
            .map(|(wall, start)| TimestampNs(start.0 + wall.elapsed().as_nanos() as i64))
    }

    /// Exclusive end of the held tick.
    fn tick_end(&self) -> TimestampNs {
        TimestampNs(self.tick.start.0 + self.tick_ns)
    }

    /// Adds the next records to `out`: a whole tick, or (paced) what has come due,
    /// waiting at most `wait` for the next of it. Returns `false` once every tick is
    /// delivered.
    pub fn next_batch(
        &mut self,
        out: &mut SourceBatch,
        counters: &Counters,
        wait: Duration,
    ) -> bool {
        if self.done {
            return false;
        }
        if !self.held {
            let next_due = (self.partition.next_tick_start())
                .and_then(|start| self.wall_of(TimestampNs(start.0 + self.tick_ns)));
            if wait.is_zero() && next_due.is_some_and(|due| Instant::now() < due) {
                return true;
            }
            if !self.partition.next_tick(&mut self.tick) {
                self.done = true;
                return false;
            }
            self.held = true;
            self.sent = (0, 0, false);
        }
        let end = self.tick_end();
        if let Some(due) = self.wall_of(end) {
            std::thread::sleep(due.saturating_duration_since(Instant::now()).min(wait));
        }
        let until = self.reached().map_or(end, |t| t.min(end));
        let before = out.len();
        self.deliver(out, until);
        counters.add_received((out.len() - before) as u64);
        true
    }

    /// Moves the held tick's records with an event time before `until` to `out`; at
    /// the tick's end, the rest, and the watermark moves there.
    fn deliver(&mut self, out: &mut SourceBatch, until: TimestampNs) {
        let end = self.tick_end();
        let whole = until >= end;
        let tick = &mut self.tick;
        let (flows, tcp, metrics) = &mut self.sent;
        let upto = match whole {
            true => tick.flows.len(),
            false => *flows + tick.flows[*flows..].partition_point(|f| f.last_seen < until),
        };
        for f in &tick.flows[*flows..upto] {
            out.flows.push(f);
        }
        out.flow_records
            .extend_from_slice(&tick.flows[*flows..upto]);
        *flows = upto;
        // TCP events hold strings: the rest of a tick moves out, a part is cloned.
        if whole {
            out.tcp.extend(tick.tcp_events.drain(*tcp..));
        } else {
            let upto = *tcp + tick.tcp_events[*tcp..].partition_point(|e| e.time < until);
            out.tcp.extend_from_slice(&tick.tcp_events[*tcp..upto]);
            *tcp = upto;
        }
        if !*metrics && tick.start < until {
            out.metrics.append(&mut tick.metrics);
            *metrics = true;
        }
        if whole {
            self.held = false;
            self.watermark = Some(end);
        }
    }

    /// Stops generating (Ctrl-C).
    pub fn stop(&mut self) {
        self.done = true;
    }

    /// Whether every tick is delivered (or the reader was stopped).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// End of the last tick delivered whole.
    pub fn watermark(&self) -> Option<TimestampNs> {
        self.watermark
    }
}

#[cfg(test)]
mod tests {
    use meshflow_sources::simulator::{SimConfig, Simulator};

    use super::*;

    /// A small mesh: 30 nodes, three ticks of `tick_ms`, no faults.
    fn simulator(tick_ms: u64) -> Simulator {
        let mut cfg = SimConfig {
            nodes: 30,
            duration: format!("{}ms", 3 * tick_ms).parse().expect("duration"),
            tick: format!("{tick_ms}ms").parse().expect("tick"),
            ..SimConfig::default()
        };
        cfg.faults.count = 0;
        Simulator::new(cfg).expect("simulator")
    }

    /// What a batch delivered, as comparable values: flows as `(src, dst, last_seen)`,
    /// TCP events as `(node, time)`, and the number of metric samples.
    type Records = (Vec<(u64, u64, i64)>, Vec<(u64, i64)>, usize);

    /// What `out` delivered, as [`Records`].
    fn records(out: &SourceBatch) -> Records {
        (
            (out.flow_records.iter())
                .map(|f| (f.src_node, f.dst_node, f.last_seen.0))
                .collect(),
            out.tcp.iter().map(|e| (e.node, e.time.0)).collect(),
            out.metrics.len(),
        )
    }

    /// Reads `reader` to its end, `wait` per call; returns every batch's records with
    /// the simulated time reached when it was returned, and the watermark then.
    fn drain(
        reader: &mut SimReader,
        wait: Duration,
    ) -> Vec<(SourceBatch, i64, Option<TimestampNs>)> {
        let counters = Counters::default();
        let mut batches = Vec::new();
        loop {
            let mut out = SourceBatch::default();
            let more = reader.next_batch(&mut out, &counters, wait);
            let reached = reader.pace.map_or(i64::MAX, |(wall, start)| {
                start.0 + wall.elapsed().as_nanos() as i64
            });
            if !out.is_empty() {
                assert_eq!(
                    out.flows.len(),
                    out.flow_records.len(),
                    "flow columns and records"
                );
                batches.push((out, reached, reader.watermark()));
            }
            if !more {
                break;
            }
        }
        assert_eq!(
            counters.snapshot().received,
            batches.iter().map(|b| b.0.len() as u64).sum::<u64>(),
            "every delivered record counted once"
        );
        batches
    }

    #[test]
    fn unpaced_delivers_each_tick_whole_with_its_end_as_watermark() {
        let sim = simulator(50);
        let mut reader = SimReader::new(sim.partition(0, 1), sim.tick_ns(), None);
        let batches = drain(&mut reader, Duration::ZERO);
        assert_eq!(batches.len(), 3, "one batch per tick");
        for (i, (out, _, watermark)) in batches.iter().enumerate() {
            let end = sim.start_time().0 + (i as i64 + 1) * sim.tick_ns();
            assert_eq!(*watermark, Some(TimestampNs(end)));
            assert!(
                !out.flows.is_empty() && !out.metrics.is_empty(),
                "tick {i} is empty"
            );
            assert!(out.flow_records.iter().all(|f| f.last_seen.0 < end));
        }
        assert!(reader.is_done());
    }

    #[test]
    fn paced_delivers_records_when_their_time_comes_and_the_same_records_in_all() {
        let sim = simulator(60);
        let mut unpaced = SimReader::new(sim.partition(0, 2), sim.tick_ns(), None);
        let whole = drain(&mut unpaced, Duration::ZERO);
        let pace = Some((Instant::now(), sim.start_time()));
        let mut paced = SimReader::new(sim.partition(0, 2), sim.tick_ns(), pace);
        let parts = drain(&mut paced, Duration::from_millis(5));
        assert!(
            parts.len() > 2 * whole.len(),
            "{} batches for {} ticks: not spread over the ticks",
            parts.len(),
            whole.len()
        );
        let mut last_watermark = None;
        for (out, reached, watermark) in &parts {
            let (flows, tcp, _) = records(out);
            for t in flows.iter().map(|f| f.2).chain(tcp.iter().map(|e| e.1)) {
                assert!(
                    t < *reached,
                    "a record of {t} delivered at {reached}, before its time"
                );
            }
            assert!(*watermark >= last_watermark, "watermark went back");
            if let Some(w) = watermark {
                assert!(
                    w.0 <= *reached,
                    "watermark {} ahead of the clock ({reached})",
                    w.0
                );
            }
            last_watermark = *watermark;
        }
        // Every tick's records reach the worker before its end does.
        for (i, (out, _, watermark)) in parts.iter().enumerate() {
            if let Some(w) = watermark {
                let later = parts[i + 1..].iter().flat_map(|p| p.0.flow_records.iter());
                assert!(
                    later.clone().all(|f| f.last_seen >= *w),
                    "a record behind the watermark"
                );
                assert!(!out.is_empty());
            }
        }
        let joined = |batches: &[(SourceBatch, i64, Option<TimestampNs>)]| {
            let mut all = (Vec::new(), Vec::new(), 0);
            for (out, _, _) in batches {
                let (f, t, m) = records(out);
                all.0.extend(f);
                all.1.extend(t);
                all.2 += m;
            }
            all
        };
        assert_eq!(
            joined(&parts),
            joined(&whole),
            "paced and unpaced deliver the same records"
        );
        assert_eq!(paced.watermark(), unpaced.watermark());
    }

    #[test]
    fn paced_generation_waits_while_the_output_trails_unless_the_tick_is_overdue() {
        let sim = simulator(200);
        let counters = Counters::default();
        let pace = Some((Instant::now(), sim.start_time()));
        let mut reader = SimReader::new(sim.partition(0, 1), sim.tick_ns(), pace);
        let mut out = SourceBatch::default();
        assert!(reader.next_batch(&mut out, &counters, Duration::ZERO));
        assert!(
            out.is_empty() && !reader.held,
            "generated while the output trails"
        );
        assert!(reader.next_batch(&mut out, &counters, Duration::from_millis(1)));
        assert!(reader.held, "not generated when idle");
        assert_eq!(
            out.metrics.len(),
            4 * 30,
            "the tick's metrics are due at its start"
        );
        // A tick already past its end is generated and delivered whole at once.
        let late = Some((Instant::now() - Duration::from_secs(1), sim.start_time()));
        let mut reader = SimReader::new(sim.partition(0, 1), sim.tick_ns(), late);
        let mut out = SourceBatch::default();
        assert!(reader.next_batch(&mut out, &counters, Duration::ZERO));
        assert_eq!(
            reader.watermark(),
            Some(TimestampNs(sim.start_time().0 + sim.tick_ns()))
        );
        assert!(!out.flows.is_empty());
    }
}
