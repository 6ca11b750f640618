//! IPv6 prefix membership, shared by everything that matches addresses against configured
//! prefixes (home prefixes, security-association scopes, the terminal multicast prefix).
use std::net::Ipv6Addr;

/// True when the first `len` bits of `addr` equal those of `prefix`; false for `len > 128`.
pub fn prefix_contains(prefix: Ipv6Addr, len: u8, addr: Ipv6Addr) -> bool {
    if len > 128 {
        return false;
    }
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    (u128::from(prefix) & mask) == (u128::from(addr) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_zero_to_128() {
        let p: Ipv6Addr = "2001:db8:1::".parse().unwrap();
        assert!(prefix_contains(
            p,
            48,
            "2001:db8:1:ffff::1".parse().unwrap()
        ));
        assert!(!prefix_contains(p, 48, "2001:db8:2::1".parse().unwrap()));
        assert!(prefix_contains(p, 0, "ff02::1".parse().unwrap()));
        assert!(prefix_contains(p, 128, p));
        assert!(!prefix_contains(p, 128, "2001:db8:1::1".parse().unwrap()));
        assert!(!prefix_contains(p, 129, p));
    }
}
