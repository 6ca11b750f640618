//! Binding Update sequence numbers (RFC 6275 §9.5.1): 16-bit, compared modulo 2^16.

/// Whether `new` is newer than `last`: true iff `(new - last) mod 2^16` lies in `1..=32767`.
///
/// A distance of exactly 32768 is neither newer nor older; RFC 6275 only calls the lower half
/// "greater", so such a BU is rejected with status 135 like any stale one.
pub fn is_newer(new: u16, last: u16) -> bool {
    (1..=0x7fff).contains(&new.wrapping_sub(last))
}

#[cfg(test)]
mod tests {
    use super::is_newer;

    #[test]
    fn wraps_around() {
        assert!(is_newer(0, 65535));
        assert!(!is_newer(65535, 0));
        assert!(is_newer(5, 4));
        assert!(!is_newer(4, 4));
        assert!(!is_newer(3, 4));
    }

    #[test]
    fn half_window_boundary() {
        assert!(is_newer(32767, 0));
        assert!(!is_newer(32768, 0));
        assert!(!is_newer(32769, 0));
        assert!(is_newer(100, 100u16.wrapping_sub(32767)));
    }
}
