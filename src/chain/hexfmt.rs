//! Hex parsing shared by keys, public keys and addresses. Errors carry only
//! positions and counts, never the text itself, so they are safe to show even
//! when the text is a private key.

/// What is wrong with a hex string. Positions are 1-based and count from the
/// start of the text as given, including any `0x` prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HexProblem {
    NonHex { position: usize },
    Length { digits: usize },
}

/// Splits an optional `0x`/`0X` prefix; returns (digits, prefix length).
pub(crate) fn strip_0x(s: &str) -> (&str, usize) {
    match s.get(..2) {
        Some("0x" | "0X") => (&s[2..], 2),
        _ => (s, 0),
    }
}

/// Parses exactly `N` bytes (2N hex digits, any case) from `digits`.
/// `prefix_len` is added to reported positions. Non-hex characters are
/// reported before a wrong length.
pub(crate) fn parse_exact<const N: usize>(
    digits: &str,
    prefix_len: usize,
) -> Result<[u8; N], HexProblem> {
    if let Some((i, _)) = digits.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        // Count characters, not bytes, for the position.
        let position = prefix_len + digits[..i].chars().count() + 1;
        return Err(HexProblem::NonHex { position });
    }
    if digits.len() != 2 * N {
        return Err(HexProblem::Length {
            digits: digits.len(),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).map_err(|_| HexProblem::Length {
        digits: digits.len(),
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_prefix_and_characters() {
        assert_eq!(strip_0x("0xab"), ("ab", 2));
        assert_eq!(strip_0x("0Xab"), ("ab", 2));
        assert_eq!(strip_0x("ab"), ("ab", 0));
        assert_eq!(strip_0x("é"), ("é", 0));
        assert_eq!(
            parse_exact::<1>("zz", 2),
            Err(HexProblem::NonHex { position: 3 })
        );
        assert_eq!(
            parse_exact::<2>("abéc", 0),
            Err(HexProblem::NonHex { position: 3 })
        );
        assert_eq!(
            parse_exact::<2>("abc", 0),
            Err(HexProblem::Length { digits: 3 })
        );
        assert_eq!(parse_exact::<2>("AbCd", 0), Ok([0xab, 0xcd]));
    }
}
