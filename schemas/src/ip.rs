//! IP addresses and mesh node identifiers.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IP address as 16 bytes (IPv4 is stored IPv4-mapped), Arrow `FixedSizeBinary(16)`.
///
/// Fixed width keeps flow records allocation-free on the hot path.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ip16(pub [u8; 16]);

impl Ip16 {
    /// Converts to a standard address, unmapping IPv4.
    pub fn to_ip(self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.0);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }
}

impl From<IpAddr> for Ip16 {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Ip16(v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => Ip16(v6.octets()),
        }
    }
}

impl From<Ipv4Addr> for Ip16 {
    fn from(ip: Ipv4Addr) -> Self {
        IpAddr::V4(ip).into()
    }
}

impl fmt::Display for Ip16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_ip().fmt(f)
    }
}

impl fmt::Debug for Ip16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_ip().fmt(f)
    }
}

impl FromStr for Ip16 {
    type Err = std::net::AddrParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(IpAddr::from_str(s)?.into())
    }
}

impl Serialize for Ip16 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ip16 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Tag bits of a node id derived from an IPv4 address.
const IPV4_TAG: u64 = 0x0400_0000_0000_0000;
/// Tag bit of a node id derived (by hash) from an IPv6 address.
const IPV6_TAG: u64 = 0x8000_0000_0000_0000;

/// The default mesh node id of an IP address: IPv4 is kept readable and reversible,
/// IPv6 is hashed (FNV-1a) into 63 bits.
pub fn node_id_of_ip(ip: IpAddr) -> u64 {
    match Ip16::from(ip).to_ip() {
        IpAddr::V4(v4) => IPV4_TAG | u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in v6.octets() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            IPV6_TAG | (h >> 1)
        }
    }
}

/// Tag bit of a node id derived (by hash) from a name.
const NAME_TAG: u64 = 0x2000_0000_0000_0000;

/// The node id of a node given by name in imported data: a decimal number is the id
/// itself, an IP address gives [`node_id_of_ip`], any other name is hashed (FNV-1a)
/// into 61 bits under its own tag, so names never collide with addresses.
pub fn node_id_of_name(name: &str) -> u64 {
    let name = name.trim();
    if let Ok(id) = name.parse::<u64>() {
        return id;
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        return node_id_of_ip(ip);
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    NAME_TAG | (h >> 3)
}

/// The names of nodes given by name ([`node_id_of_name`]), as the traces being read
/// list them (`nodes/`): read-only input data, loaded once at the start of a job.
fn node_names() -> &'static std::sync::RwLock<std::collections::HashMap<u64, String>> {
    static NAMES: std::sync::OnceLock<std::sync::RwLock<std::collections::HashMap<u64, String>>> =
        std::sync::OnceLock::new();
    NAMES.get_or_init(Default::default)
}

/// Makes [`node_label`] show the given names of nodes whose id is a hash (ids from
/// [`node_id_of_name`] of names and of IPv6 addresses) instead of the hash. Other ids
/// (numbers, IPv4 addresses) keep their own labels.
pub fn register_node_names(names: impl IntoIterator<Item = (u64, String)>) {
    let mut known = node_names().write().unwrap_or_else(|e| e.into_inner());
    known.extend(names.into_iter().filter(|(node, _)| is_hashed(*node)));
}

/// Whether `node` is a hash (of a name or an IPv6 address), so its label can only
/// come from a registered name.
fn is_hashed(node: u64) -> bool {
    node & IPV6_TAG != 0 || (node & NAME_TAG != 0 && node >> 61 == 1)
}

/// The registered name of `node` ([`register_node_names`]), if any.
fn registered_name(node: u64) -> Option<String> {
    let known = node_names().read().unwrap_or_else(|e| e.into_inner());
    known.get(&node).cloned()
}

/// A human-readable label for a node id: `n17` for simulator nodes, the address
/// for IPv4-derived ids, and for hashed ids (IPv6 addresses, names) the name
/// registered for them ([`register_node_names`]), or else `v6:<hex>` and `h:<hex>`.
pub fn node_label(node: u64) -> String {
    if node & IPV6_TAG != 0 {
        registered_name(node).unwrap_or_else(|| format!("v6:{:015x}", node & !IPV6_TAG))
    } else if node & IPV4_TAG != 0 && node >> 32 == IPV4_TAG >> 32 {
        Ipv4Addr::from((node & 0xffff_ffff) as u32).to_string()
    } else if node & NAME_TAG != 0 && node >> 61 == 1 {
        registered_name(node).unwrap_or_else(|| format!("h:{:015x}", node & !NAME_TAG))
    } else {
        simulator_label(node)
    }
}

/// `n<node>`, written digit by digit: every output row carries a label, and the
/// formatting machinery costs several times this.
fn simulator_label(node: u64) -> String {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = node;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut label = String::with_capacity(1 + digits.len() - at);
    label.push('n');
    label.extend(digits[at..].iter().map(|&d| char::from(d)));
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_round_trips_through_ip16_and_node_ids() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(Ip16::from(ip).to_ip(), ip);
        assert_eq!(node_label(node_id_of_ip(ip)), "10.1.2.3");
        assert_eq!(node_label(17), "n17");
    }

    proptest::proptest! {
        #[test]
        fn simulator_labels_are_the_decimal_id(node in proptest::num::u64::ANY) {
            proptest::prop_assert_eq!(simulator_label(node), format!("n{node}"));
        }
    }

    #[test]
    fn registered_names_label_their_nodes() {
        let id = node_id_of_name("payments-api");
        assert!(node_label(id).starts_with("h:"), "{}", node_label(id));
        let v6 = node_id_of_name("2001:DB8::1");
        assert!(node_label(v6).starts_with("v6:"), "{}", node_label(v6));
        let v4 = node_id_of_name("10.0.0.9");
        register_node_names([
            (id, "payments-api".to_string()),
            (v6, "2001:DB8::1".to_string()),
            (17, "not a named node".to_string()),
            (v4, "not an address".to_string()),
        ]);
        assert_eq!(node_label(id), "payments-api");
        assert_eq!(node_label(v6), "2001:DB8::1", "an IPv6 hash takes its name");
        assert_eq!(node_label(17), "n17", "only hashed ids take a name");
        assert_eq!(node_label(v4), "10.0.0.9", "only hashed ids take a name");
    }

    #[test]
    fn names_give_numbers_addresses_or_tagged_hashes() {
        assert_eq!(node_id_of_name("42"), 42);
        assert_eq!(node_label(node_id_of_name(" 10.0.0.7 ")), "10.0.0.7");
        let id = node_id_of_name("checkout-service");
        assert_eq!(id, node_id_of_name("checkout-service"));
        assert_ne!(id, node_id_of_name("checkout-servicf"));
        assert!(node_label(id).starts_with("h:"), "{}", node_label(id));
    }

    #[test]
    fn ipv6_ids_are_tagged_and_stable() {
        let ip: IpAddr = "fd00::1".parse().unwrap();
        let id = node_id_of_ip(ip);
        assert_eq!(id, node_id_of_ip(ip));
        assert!(node_label(id).starts_with("v6:"));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(node_label(node_id_of_ip(mapped)), "10.0.0.1");
    }
}
