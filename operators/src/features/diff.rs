//! The values and weights of the feature collection.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Semigroup};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::FxHasher;

/// A drop reason or metric series name: shared, so the many updates and rows that
/// carry one name do not each allocate a copy ([`Names`] hands them out). Its hash is
/// computed once, from the text: hashing an update then costs one word, not the
/// name's bytes, and stays the same on every worker and process.
#[derive(Clone, Debug)]
pub struct Name {
    text: Arc<str>,
    hash: u64,
}

impl Name {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The text itself, shared: what an output row holds.
    pub fn shared(&self) -> Arc<str> {
        self.text.clone()
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        let mut hasher = FxHasher::default();
        hasher.write(s.as_bytes());
        Name {
            text: s.into(),
            hash: hasher.finish(),
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    /// By text, so rows list names alphabetically whatever their hashes. One worker's
    /// updates share each name's text ([`Names`]), so most equal names are the same
    /// pointer, found without reading the text.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.text, &other.text) {
            return std::cmp::Ordering::Equal;
        }
        self.text.cmp(&other.text)
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|s| Name::from(s.as_str()))
    }
}

/// One worker's cache of [`Name`]s, so each distinct name is allocated once. It holds
/// at most `Names::CAPACITY` names and starts over when full, so endless distinct
/// names cost memory only up to that bound.
///
/// Input records that carry their name as shared text ([`Names::get_shared`]) are
/// first matched by pointer against the last few texts seen: a batch read from Arrow
/// or the simulator shares one text per name, so most samples find their name
/// without hashing it.
#[derive(Default)]
pub struct Names {
    by_text: crate::hash::FxHashMap<String, Name>,
    /// Recently seen input texts and their names, replaced round-robin.
    recent: [Option<(Arc<str>, Name)>; RECENT_TEXTS],
    /// The slot of `recent` replaced next.
    next: usize,
}

/// Input texts [`Names`] matches by pointer.
const RECENT_TEXTS: usize = 8;

impl Names {
    /// Names kept before the cache starts over.
    pub const CAPACITY: usize = 4096;

    /// The shared name for `s`.
    pub fn get(&mut self, s: &str) -> Name {
        if let Some(name) = self.by_text.get(s) {
            return name.clone();
        }
        if self.by_text.len() >= Self::CAPACITY {
            self.by_text.clear();
        }
        let name = Name::from(s);
        self.by_text.insert(s.to_string(), name.clone());
        name
    }

    /// The shared name for the input text `s`: the same as [`Names::get`], found by
    /// pointer when `s` itself was seen recently.
    pub fn get_shared(&mut self, s: &Arc<str>) -> Name {
        let mut seen = self.recent.iter().flatten();
        if let Some((_, name)) = seen.find(|(text, _)| Arc::ptr_eq(text, s)) {
            return name.clone();
        }
        let name = self.get(s);
        self.recent[self.next] = Some((s.clone(), name.clone()));
        self.next = (self.next + 1) % RECENT_TEXTS;
        name
    }

    /// Names currently cached.
    pub fn len(&self) -> usize {
        self.by_text.len()
    }

    /// Whether no name is cached.
    pub fn is_empty(&self) -> bool {
        self.by_text.is_empty()
    }
}

/// Direction of traffic relative to the keyed node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// The peer sent to the node.
    In,
    /// The node sent to the peer.
    Out,
}

/// What an update to a node's features is about. The weight ([`FeatureDiff`]) carries
/// the numbers; the value says which numbers they are.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FeatureVal {
    /// Traffic totals and retransmits; the weight carries the sums.
    Totals,
    /// Presence of a peer in one direction; the weight's `count` counts flushes.
    Peer(u64, Direction),
    /// Drops with this reason; the weight's `count` counts them.
    Drop(Name),
    /// RTT samples in this sketch bucket ([`crate::sketch`]); `count` counts them.
    Rtt(i32),
    /// System-call latency samples in this sketch bucket; `count` counts them.
    Syscall(i32),
    /// Samples of this `NodeMetric` series: `count` samples summing to `sum` micro-units.
    Metric(Name),
}

/// The weight of a feature update: an Abelian group, so windows can retract. Every
/// field is an integer, so an insert and its retraction cancel exactly.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct FeatureDiff {
    /// Peer presence, drops, sketch samples or metric samples (see [`FeatureVal`]).
    pub count: i64,
    /// Bytes received.
    pub bytes_in: i64,
    /// Bytes sent.
    pub bytes_out: i64,
    /// Packets received.
    pub packets_in: i64,
    /// Packets sent.
    pub packets_out: i64,
    /// Flows received.
    pub flows_in: i64,
    /// Flows sent.
    pub flows_out: i64,
    /// TCP retransmits.
    pub retransmits: i64,
    /// Sum of metric samples in micro-units ([`quantize_metric`]).
    pub sum: i128,
}

impl FeatureDiff {
    /// A weight that only counts.
    pub fn count(n: i64) -> Self {
        Self {
            count: n,
            ..Default::default()
        }
    }
}

/// Micro-units per unit of a metric sample.
pub const METRIC_SCALE: f64 = 1e6;

/// A metric sample as an integer number of micro-units, so sums retract exactly, or
/// `None` for NaN and infinities. Values beyond ±1.7e32 saturate.
pub fn quantize_metric(value: f64) -> Option<i128> {
    value
        .is_finite()
        .then(|| (value * METRIC_SCALE).round() as i128)
}

/// The mean of `count` quantized samples summing to `sum`.
pub fn metric_mean(sum: i128, count: u64) -> f64 {
    sum as f64 / METRIC_SCALE / count as f64
}

impl IsZero for FeatureDiff {
    fn is_zero(&self) -> bool {
        *self == Self::default()
    }
}

impl Semigroup for FeatureDiff {
    fn plus_equals(&mut self, rhs: &Self) {
        self.count += rhs.count;
        self.bytes_in += rhs.bytes_in;
        self.bytes_out += rhs.bytes_out;
        self.packets_in += rhs.packets_in;
        self.packets_out += rhs.packets_out;
        self.flows_in += rhs.flows_in;
        self.flows_out += rhs.flows_out;
        self.retransmits += rhs.retransmits;
        self.sum += rhs.sum;
    }
}

impl Monoid for FeatureDiff {
    fn zero() -> Self {
        Self::default()
    }
}

impl Abelian for FeatureDiff {
    fn negate(&mut self) {
        self.count = -self.count;
        self.bytes_in = -self.bytes_in;
        self.bytes_out = -self.bytes_out;
        self.packets_in = -self.packets_in;
        self.packets_out = -self.packets_out;
        self.flows_in = -self.flows_in;
        self.flows_out = -self.flows_out;
        self.retransmits = -self.retransmits;
        self.sum = -self.sum;
    }
}
