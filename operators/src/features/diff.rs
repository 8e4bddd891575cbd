//! The values and weights of the feature collection.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Semigroup};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::FxHasher;

/// A drop reason or metric series name: shared, so the many updates and rows that
/// carry one name do not each allocate a copy ([`Names`] hands them out). Its hash is
/// computed once, from the text: hashing an update then costs one word, not the
/// name's bytes, and stays the same on every worker and process.
///
/// The first [`INTERNED_NAMES`] distinct names of a process are interned for its
/// life, and cloning one of those copies a pointer: the hot path clones a name per
/// sample and update, and a reference count's atomic increment made the worker wait
/// for its earlier stores each time (benchmarks/README.md, session 35). Names past
/// that bound are counted references, so endless distinct names cost memory only
/// while they are in use.
#[derive(Clone, Debug)]
pub struct Name {
    text: Text,
    hash: u64,
}

/// Where a [`Name`]'s text lives.
#[derive(Clone, Debug)]
enum Text {
    /// Interned for the life of the process.
    Interned(&'static Interned),
    /// Counted, past the interning bound.
    Counted(Arc<str>),
}

/// An interned name's text, as output rows share it.
#[derive(Debug)]
struct Interned(Arc<str>);

/// Distinct names a process interns at most (and their text, in bytes); the rest are
/// counted references.
pub const INTERNED_NAMES: usize = 65_536;
const INTERNED_BYTES: usize = 16 << 20;

/// The process's interned text equal to `s`, interning it if there is room.
fn intern(s: &str) -> Option<&'static Interned> {
    /// The interned names, and the bytes of text they hold.
    type Table = (HashMap<Box<str>, &'static Interned>, usize);
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    let mut table = TABLE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&interned) = table.0.get(s) {
        return Some(interned);
    }
    if table.0.len() >= INTERNED_NAMES || table.1 + s.len() > INTERNED_BYTES {
        return None;
    }
    let interned: &'static Interned = Box::leak(Box::new(Interned(s.into())));
    table.0.insert(s.into(), interned);
    table.1 += s.len();
    Some(interned)
}

impl Name {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        match &self.text {
            Text::Interned(interned) => &interned.0,
            Text::Counted(text) => text,
        }
    }

    /// The text itself, shared: what an output row holds.
    pub fn shared(&self) -> Arc<str> {
        match &self.text {
            Text::Interned(interned) => interned.0.clone(),
            Text::Counted(text) => text.clone(),
        }
    }

    /// The hash of the text: equal names have equal hashes, so an order by it first
    /// groups equal names without reading their text.
    pub(crate) fn text_hash(&self) -> u64 {
        self.hash
    }

    /// Whether both are the same text in memory (equal without reading it).
    pub(crate) fn same(&self, other: &Self) -> bool {
        match (&self.text, &other.text) {
            (Text::Interned(a), Text::Interned(b)) => std::ptr::eq(*a, *b),
            (Text::Counted(a), Text::Counted(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        let mut hasher = FxHasher::default();
        hasher.write(s.as_bytes());
        let text = match intern(s) {
            Some(interned) => Text::Interned(interned),
            None => Text::Counted(s.into()),
        };
        Name {
            text,
            hash: hasher.finish(),
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && (self.same(other) || self.as_str() == other.as_str())
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    /// By text, so rows list names alphabetically whatever their hashes. Equal names
    /// are mostly the same text in memory, found without reading it.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self.same(other) {
            return std::cmp::Ordering::Equal;
        }
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Name {
    /// Through the thread's own [`Names`], so updates from other processes do not
    /// each take the process's interning lock.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        thread_local! {
            static NAMES: RefCell<Names> = RefCell::default();
        }
        let s = String::deserialize(deserializer)?;
        Ok(NAMES.with(|names| names.borrow_mut().get(&s)))
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
    /// Samples of this `NodeMetric` series: `count` samples summing to `sum` nano-units.
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
    /// Sum of metric samples in nano-units ([`quantize_metric`]).
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

/// Nano-units per unit of a metric sample: a window's mean is exact to 1e-9 absolute.
pub const METRIC_SCALE: f64 = 1e9;

/// The largest metric sample magnitude meshflow sums exactly: 1e18. A sample is 1e27
/// nano-units at most, so a 128-bit sum cannot wrap below 1.7e11 samples of one series
/// in one window.
pub const MAX_METRIC_VALUE: f64 = 1e18;

/// A metric sample as an integer number of nano-units, so sums retract exactly, or
/// `None` for NaN, infinities and magnitudes beyond [`MAX_METRIC_VALUE`].
pub fn quantize_metric(value: f64) -> Option<i128> {
    (value.abs() <= MAX_METRIC_VALUE).then(|| (value * METRIC_SCALE).round() as i128)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_allocated_once_and_the_cache_is_bounded() {
        let mut names = Names::default();
        let (a, b) = (names.get("cpu_load"), names.get("cpu_load"));
        assert_eq!(a, b);
        assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr(), "one allocation");
        for i in 0..Names::CAPACITY + 10 {
            assert_eq!(names.get(&i.to_string()).as_str(), i.to_string());
            assert!(names.len() <= Names::CAPACITY);
        }
        assert_eq!(
            names.get("cpu_load"),
            a,
            "equal after the cache started over"
        );
    }

    /// Past the process's interning bound, names are counted references and behave the
    /// same: equal by text, ordered by text, hashed by text.
    #[test]
    fn names_past_the_interning_bound_behave_the_same() {
        use std::hash::BuildHasher;
        let early = Name::from("interned early");
        let all: Vec<Name> = (0..INTERNED_NAMES + 10)
            .map(|i| Name::from(format!("bound test {i:06}").as_str()))
            .collect();
        let late = Name::from("past the bound");
        let again = Name::from("past the bound");
        assert_eq!(late, again);
        assert_ne!(late, early);
        assert_eq!(late.as_str(), "past the bound");
        let hasher = std::hash::BuildHasherDefault::<crate::hash::FxHasher>::default();
        assert_eq!(hasher.hash_one(&late), hasher.hash_one(&again));
        assert!(early < late && all[0] < all[all.len() - 1]);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(&*late.shared(), "past the bound");
        assert_eq!(early, Name::from("interned early"));
    }

    #[test]
    fn shared_texts_find_the_name_their_text_has() {
        let mut names = Names::default();
        let cpu: std::sync::Arc<str> = "cpu_load".into();
        let by_text = names.get("cpu_load");
        let shared = names.get_shared(&cpu);
        assert_eq!(shared, by_text);
        assert_eq!(
            shared.as_str().as_ptr(),
            by_text.as_str().as_ptr(),
            "one allocation"
        );
        // More distinct texts than are matched by pointer, each seen twice, interleaved
        // with other copies of the same texts: every one finds the name of its text.
        let texts: Vec<std::sync::Arc<str>> = (0..20).map(|i| format!("m{i}").into()).collect();
        for round in 0..3 {
            for (i, text) in texts.iter().enumerate() {
                let copy: std::sync::Arc<str> = text.as_ref().into();
                for t in [text, &copy] {
                    let name = names.get_shared(t);
                    assert_eq!(name.as_str(), format!("m{i}"), "round {round}");
                    assert_eq!(name, names.get(&format!("m{i}")));
                }
            }
        }
        assert_eq!(names.get_shared(&cpu), by_text);
    }
}
