//! A CIDR block (`203.0.113.7/32`, `2001:db8::/64`) as the stack's `ssh_cidr`
//! holds it: parsed once at check time, so the template knows its address
//! family (an IPv6 block is a `CidrIpv6` rule, never an IPv4 one) and the
//! checker knows when it opens a port to the whole internet.

use serde::Serialize;
use std::fmt;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a string is not a CIDR block EC2 accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CidrError {
    /// Neither `address/prefix` with an IPv4 nor an IPv6 address.
    Syntax,
    /// An address without `/prefix`; the block of that one address is proposed.
    NoPrefix(Cidr),
    /// A prefix longer than the address (`/33` for IPv4, `/129` for IPv6).
    PrefixTooLong { bits: u8 },
    /// Bits set past the prefix (`10.0.0.5/16`): EC2 refuses it; the network it meant is proposed.
    HostBits(Cidr),
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let Some((addr, prefix)) = s.split_once('/') else {
            let addr: IpAddr = s.parse().map_err(|_| CidrError::Syntax)?;
            return Err(CidrError::NoPrefix(Cidr { addr, prefix: bits(addr) }));
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::Syntax)?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 3 {
            return Err(CidrError::Syntax);
        }
        let prefix: u8 = prefix.parse().map_err(|_| CidrError::Syntax)?;
        if prefix > bits(addr) {
            return Err(CidrError::PrefixTooLong { bits: bits(addr) });
        }
        let network = Cidr { addr: network(addr, prefix), prefix };
        if network.addr != addr {
            return Err(CidrError::HostBits(network));
        }
        Ok(network)
    }

    pub fn is_v6(&self) -> bool {
        self.addr.is_ipv6()
    }

    /// `0.0.0.0/0` or `::/0`: every address of its family.
    pub fn is_world(&self) -> bool {
        self.prefix == 0
    }
}

fn bits(a: IpAddr) -> u8 {
    if a.is_ipv6() {
        128
    } else {
        32
    }
}

fn network(a: IpAddr, prefix: u8) -> IpAddr {
    match a {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// As the string it was written as, so the plan's hash of a stack reads as before.
impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_and_ipv6_blocks_parse_with_their_family() {
        let c = Cidr::parse("203.0.113.7/32").unwrap();
        assert!(!c.is_v6() && !c.is_world());
        assert_eq!(c.to_string(), "203.0.113.7/32");
        let c = Cidr::parse("2001:db8::/64").unwrap();
        assert!(c.is_v6() && !c.is_world());
        assert!(Cidr::parse("0.0.0.0/0").unwrap().is_world());
        let c = Cidr::parse("::/0").unwrap();
        assert!(c.is_v6() && c.is_world());
    }

    #[test]
    fn junk_bad_prefixes_and_host_bits_are_refused_with_what_was_meant() {
        for junk in
            ["", "junk", "10.0.0/8", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/+8", "10.0.0.0/8/8", " 10.0.0.0/8", "1.2.3.4/0008"]
        {
            assert_eq!(Cidr::parse(junk), Err(CidrError::Syntax), "{junk:?}");
        }
        assert_eq!(Cidr::parse("10.0.0.0/33"), Err(CidrError::PrefixTooLong { bits: 32 }));
        assert_eq!(Cidr::parse("::/129"), Err(CidrError::PrefixTooLong { bits: 128 }));
        match Cidr::parse("10.0.0.5/16") {
            Err(CidrError::HostBits(n)) => assert_eq!(n.to_string(), "10.0.0.0/16"),
            other => panic!("{other:?}"),
        }
        match Cidr::parse("2001:db8::1/64") {
            Err(CidrError::HostBits(n)) => assert_eq!(n.to_string(), "2001:db8::/64"),
            other => panic!("{other:?}"),
        }
        match Cidr::parse("203.0.113.7") {
            Err(CidrError::NoPrefix(n)) => assert_eq!(n.to_string(), "203.0.113.7/32"),
            other => panic!("{other:?}"),
        }
    }
}
