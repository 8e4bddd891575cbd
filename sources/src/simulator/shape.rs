//! The facts of a flow that both of its ends must agree on, derived by hashing.
//!
//! Whether `src` sends to `dst` in tick `k`, over TCP or UDP, with which flags and
//! ports, is a pure function of `(seed, src, dst, k)` and the sender's flood state, so
//! the receiver can name the sender's real flows in its own events without seeing them.

use super::rng::{SALT_FLOW, SALT_NODE_TICK, SALT_PORT, SALT_SERVICE, splitmix64};

/// Probability that a node sends to a given neighbour in a tick.
const FLOW_PROBABILITY: f64 = 0.9;
/// Share of flows that are TCP (the rest are UDP).
const TCP_SHARE: f64 = 0.85;
/// Share of a flooding node's flows that are TCP.
const FLOOD_TCP_SHARE: f64 = 0.2;
/// Share of TCP flows that open a connection (SYN, with a state change event).
const SYN_SHARE: f64 = 0.05;
/// Share of TCP flows that close one (FIN).
const FIN_SHARE: f64 = 0.03;
/// Ephemeral ports stay the same for this many ticks (a connection's life).
const PORT_EPOCH_TICKS: u64 = 30;
/// Destination ports of services, one picked per directed edge.
pub(crate) const SERVICE_PORTS: [u16; 5] = [443, 80, 53, 8080, 9000];
/// First ephemeral port (Linux default range 32768–60999).
pub(crate) const EPHEMERAL_BASE: u16 = 32_768;
/// Number of ephemeral ports.
const EPHEMERAL_COUNT: u64 = 28_232;

/// TCP FIN flag.
pub(crate) const FIN: u8 = 0x01;
/// TCP SYN flag.
pub(crate) const SYN: u8 = 0x02;
/// TCP PSH flag.
pub(crate) const PSH: u8 = 0x08;
/// TCP ACK flag.
pub(crate) const ACK: u8 = 0x10;

/// A probability as a threshold on 16 hash bits.
const fn threshold(p: f64) -> u64 {
    (p * 65536.0) as u64
}

/// The facts of one flow that sender and receiver agree on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FlowShape {
    /// TCP (protocol 6) rather than UDP (17).
    pub(crate) tcp: bool,
    /// OR of TCP flags (0 for UDP).
    pub(crate) flags: u8,
    /// Sender's (ephemeral) port.
    pub(crate) src_port: u16,
    /// Receiver's (service) port.
    pub(crate) dst_port: u16,
}

/// Salted seeds of the hashed decisions, mixed once per run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hashes {
    flow: u64,
    port: u64,
    service: u64,
    node_tick: u64,
}

/// Both ends of a directed edge in one word (node ids are below 2^24).
#[inline]
fn edge_key(src: u64, dst: u64) -> u64 {
    (src << 24) | dst
}

impl Hashes {
    /// Salts `seed` for each kind of decision.
    pub(crate) fn new(seed: u64) -> Hashes {
        Hashes {
            flow: splitmix64(seed ^ SALT_FLOW),
            port: splitmix64(seed ^ SALT_PORT),
            service: splitmix64(seed ^ SALT_SERVICE),
            node_tick: splitmix64(seed ^ SALT_NODE_TICK),
        }
    }

    /// Seed of node `n`'s random stream in tick `k`.
    #[inline]
    pub(crate) fn node_tick(&self, n: u64, k: u64) -> u64 {
        splitmix64(splitmix64(self.node_tick ^ n) ^ k)
    }

    /// The service port `src` talks to on `dst` (stable per directed edge).
    #[inline]
    fn service_port(&self, src: u64, dst: u64) -> u16 {
        let h = splitmix64(self.service ^ edge_key(src, dst));
        SERVICE_PORTS[(h % SERVICE_PORTS.len() as u64) as usize]
    }

    /// The shape of the flow `src → dst` in tick `k`, or `None` when `src` sends
    /// nothing to `dst` then. A flooding sender always sends, mostly over UDP.
    #[inline]
    pub(crate) fn flow(&self, src: u64, dst: u64, k: u64, flooding: bool) -> Option<FlowShape> {
        let key = edge_key(src, dst);
        let h = splitmix64(splitmix64(self.flow ^ key) ^ k);
        let below = |shift: u32, t: u64| ((h >> shift) & 0xffff) < t;
        if !(flooding || below(0, threshold(FLOW_PROBABILITY))) {
            return None;
        }
        let tcp_share = if flooding { FLOOD_TCP_SHARE } else { TCP_SHARE };
        let tcp = below(16, threshold(tcp_share));
        let flags = match (
            tcp,
            below(32, threshold(SYN_SHARE)),
            below(48, threshold(FIN_SHARE)),
        ) {
            (false, _, _) => 0,
            (true, true, _) => ACK | PSH | SYN,
            (true, false, true) => ACK | PSH | FIN,
            (true, false, false) => ACK | PSH,
        };
        let port_hash = splitmix64(splitmix64(self.port ^ key) ^ (k / PORT_EPOCH_TICKS));
        Some(FlowShape {
            tcp,
            flags,
            src_port: EPHEMERAL_BASE + (port_hash % EPHEMERAL_COUNT) as u16,
            dst_port: self.service_port(src, dst),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_stable_and_follow_the_shares() {
        let h = Hashes::new(3);
        let (mut sent, mut tcp, mut syn) = (0, 0, 0);
        for k in 0..2000 {
            if let Some(s) = h.flow(4, 9, k, false) {
                sent += 1;
                tcp += usize::from(s.tcp);
                syn += usize::from(s.flags & SYN != 0);
                assert_eq!(s.dst_port, h.flow(4, 9, k, false).unwrap().dst_port);
                assert_eq!(s.tcp, s.flags != 0);
            }
        }
        assert!((1700..1900).contains(&sent), "{sent}");
        assert!((1400..1650).contains(&tcp), "{tcp}");
        assert!((40..140).contains(&syn), "{syn}");
        assert!((0..100).all(|k| h.flow(4, 9, k, true).is_some()));
        let ports: Vec<u16> = (0..30)
            .filter_map(|k| h.flow(4, 9, k, true))
            .map(|s| s.src_port)
            .collect();
        assert!(
            ports.windows(2).all(|w| w[0] == w[1]),
            "ports change within an epoch"
        );
    }
}
