//! The binding table of the `status` subcommand, shared by the home agent and the
//! correspondent agent (which runs the home agent's core: same bindings, other words).
use std::fmt::Write as _;

use crate::core::BindingStatus;

/// One line per binding: HoA, CoA (headed `coa_header`), seconds of lifetime left (of
/// granted), sequence, SPI, whether the kernel took it.
pub fn bindings_table(bindings: &[BindingStatus], coa_header: &str) -> String {
    let mut out = format!("{} binding(s)\n", bindings.len());
    if bindings.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:<40} {:<40} {:>14} {:>8} {:>10}  KERNEL",
        "HOME ADDRESS", coa_header, "LIFETIME LEFT", "SEQ", "SPI"
    );
    for b in bindings {
        let _ = writeln!(
            out,
            "{:<40} {:<40} {:>14} {:>8} {:>10}  {}",
            b.hoa,
            b.coa,
            format!("{}/{} s", b.lifetime_left_s, b.lifetime_s),
            b.sequence,
            b.spi,
            if b.programmed { "ok" } else { "FAILED" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_field() {
        let bindings = vec![BindingStatus {
            hoa: "2001:db8:1::100".parse().unwrap(),
            coa: "2001:db8:2::9".parse().unwrap(),
            sequence: 42,
            lifetime_s: 40,
            lifetime_left_s: 33,
            spi: 1000,
            programmed: false,
        }];
        let t = bindings_table(&bindings, "CARE-OF ADDRESS");
        let line = t.lines().nth(2).unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words,
            [
                "2001:db8:1::100",
                "2001:db8:2::9",
                "33/40",
                "s",
                "42",
                "1000",
                "FAILED"
            ]
        );
        assert!(t.starts_with("1 binding(s)\n"));
        assert!(t.lines().nth(1).unwrap().contains(" CARE-OF ADDRESS "));
        assert_eq!(bindings_table(&[], "X"), "0 binding(s)\n");
    }
}
