//! Pod IPs from the node's pod CIDR, as CNI's `host-local` IPAM hands them out: the network
//! address and the first host (the bridge/gateway) are never given, nor is the broadcast
//! address; allocation continues after the last address given, wrapping around.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Why a CIDR cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("invalid CIDR {0:?}: expected an IPv4 network such as 10.244.1.0/24")]
    Invalid(String),
    #[error("CIDR {0:?} is too small for pods: use a prefix of /30 or shorter")]
    TooSmall(String),
}

/// An IPv4 pod CIDR and the addresses in use.
#[derive(Clone, Debug)]
pub struct Ipam {
    first: u32,
    last: u32,
    next: u32,
    used: BTreeSet<u32>,
}

/// Parse `a.b.c.d/len` into (network, prefix length).
pub fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, u8), CidrError> {
    let bad = || CidrError::Invalid(cidr.to_string());
    let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(bad());
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((Ipv4Addr::from(u32::from(addr) & mask), len))
}

impl Ipam {
    pub fn new(cidr: &str) -> Result<Ipam, CidrError> {
        let (net, len) = parse_cidr(cidr)?;
        if len > 30 {
            return Err(CidrError::TooSmall(cidr.to_string()));
        }
        let base = u32::from(net);
        let size = 1u64 << (32 - len);
        let first = base + 2;
        let last = (base as u64 + size - 2) as u32;
        Ok(Ipam {
            first,
            last,
            next: first,
            used: BTreeSet::new(),
        })
    }

    /// The next free address, or `None` when the range is exhausted.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let count = (self.last - self.first + 1) as usize;
        if self.used.len() >= count {
            return None;
        }
        let mut candidate = self.next;
        loop {
            if !self.used.contains(&candidate) {
                self.used.insert(candidate);
                self.next = if candidate == self.last {
                    self.first
                } else {
                    candidate + 1
                };
                return Some(Ipv4Addr::from(candidate));
            }
            candidate = if candidate == self.last {
                self.first
            } else {
                candidate + 1
            };
        }
    }

    /// Give an address back.
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_addresses_after_the_gateway_and_reuses_released_ones_last() {
        let mut ipam = Ipam::new("10.244.1.0/30").unwrap();
        let a = ipam.allocate().unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 244, 1, 2));
        assert_eq!(ipam.allocate(), None, "a /30 has one pod address");
        ipam.release(a);
        assert_eq!(ipam.allocate(), Some(a));

        let mut big = Ipam::new("10.244.2.0/24").unwrap();
        let first = big.allocate().unwrap();
        let second = big.allocate().unwrap();
        big.release(first);
        assert_eq!(second, Ipv4Addr::new(10, 244, 2, 3));
        assert_eq!(big.allocate(), Some(Ipv4Addr::new(10, 244, 2, 4)));
    }

    #[test]
    fn rejects_bad_cidrs() {
        assert!(Ipam::new("10.0.0.0").is_err());
        assert!(Ipam::new("10.0.0.0/31").is_err());
        assert!(Ipam::new("fd00::/64").is_err());
    }
}
