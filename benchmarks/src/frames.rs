//! Crafted Ethernet frames for `BPF_PROG_TEST_RUN`: addresses in 10.202.0.0/24 and
//! fd00:202::/64, never sent on any network.

/// Source MAC, then destination MAC (locally administered), then the ethertype.
fn ethernet(ethertype: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 2, 1, 2, 0, 0, 0, 2, 2];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn ipv4(proto: u8, l4_len: usize) -> Vec<u8> {
    let tot = (20 + l4_len) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&tot.to_be_bytes());
    h.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&[10, 202, 0, 1, 10, 202, 0, 2]);
    h
}

fn ipv6(next: u8, l4_len: usize) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(l4_len as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    for host in [1u8, 2] {
        h.extend_from_slice(&[0xfd, 0, 0x02, 0x02, 0, 0, 0, 0]);
        h.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, host]);
    }
    h
}

fn tcp(flags: u8, payload: usize) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&40000u16.to_be_bytes());
    t.extend_from_slice(&443u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.resize(t.len() + payload, b'x');
    t
}

fn udp(payload: usize) -> Vec<u8> {
    let len = (8 + payload) as u16;
    let mut u = Vec::new();
    u.extend_from_slice(&40000u16.to_be_bytes());
    u.extend_from_slice(&9u16.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.resize(u.len() + payload, b'x');
    u
}

/// IPv4 TCP with `flags` (0x10 = ACK, 0x11 = FIN|ACK) and a 20-byte payload: 74 bytes.
pub fn ipv4_tcp(flags: u8) -> Vec<u8> {
    let l4 = tcp(flags, 20);
    [ethernet(0x0800), ipv4(6, l4.len()), l4].concat()
}

/// IPv6 TCP ACK with a 20-byte payload: 94 bytes.
pub fn ipv6_tcp() -> Vec<u8> {
    let l4 = tcp(0x10, 20);
    [ethernet(0x86dd), ipv6(6, l4.len()), l4].concat()
}

/// IPv4 UDP with an 18-byte payload: 60 bytes, the minimum Ethernet frame.
pub fn ipv4_udp() -> Vec<u8> {
    let l4 = udp(18);
    [ethernet(0x0800), ipv4(17, l4.len()), l4].concat()
}

/// ARP request (who has 10.202.0.2, tell 10.202.0.1): 42 bytes.
pub fn arp() -> Vec<u8> {
    let mut f = ethernet(0x0806);
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[2, 0, 0, 0, 2, 1, 10, 202, 0, 1]);
    f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 202, 0, 2]);
    f
}

/// The frames of the cost table: (label, frame).
pub fn all() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("IPv4 TCP", ipv4_tcp(0x10)),
        ("IPv6 TCP", ipv6_tcp()),
        ("IPv4 UDP", ipv4_udp()),
        ("ARP", arp()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_their_documented_sizes() {
        assert_eq!(ipv4_tcp(0x10).len(), 74);
        assert_eq!(ipv6_tcp().len(), 94);
        assert_eq!(ipv4_udp().len(), 60);
        assert_eq!(arp().len(), 42);
        let v4 = ipv4_udp();
        assert_eq!(
            u16::from_be_bytes([v4[16], v4[17]]),
            46,
            "IPv4 total length"
        );
        let v6 = ipv6_tcp();
        assert_eq!(
            u16::from_be_bytes([v6[18], v6[19]]),
            40,
            "IPv6 payload length"
        );
    }
}
