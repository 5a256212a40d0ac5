//! A strict RLP decoder (Ethereum Yellow Paper, appendix B); encoding is the `rlp`
//! crate's ([`encode`]).
//!
//! Only what BFT extraData needs: byte strings and lists. The decoder accepts
//! exactly the canonical encoding of a single item and nothing else, the same
//! rules Besu's `BytesValueRLPInput` enforces in strict mode:
//! - the input is exactly one item: no trailing bytes, no missing bytes;
//! - a single byte below `0x80` must be written bare, never as `0x81 xx`;
//! - the long forms (`0xb8..=0xbf`, `0xf8..=0xff`) are only for payloads of
//!   56 bytes or more, and their length has no leading zero byte;
//! - lists nest at most [`MAX_DEPTH`] deep (so hostile input cannot exhaust
//!   the stack).
//!
//! Decoding never panics; every failure is an [`RlpError`].

use thiserror::Error;

/// The deepest list nesting the decoder accepts. BFT extraData needs 2.
pub const MAX_DEPTH: usize = 16;

/// A decoded RLP item, borrowing from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item<'a> {
    Bytes(&'a [u8]),
    List(Vec<Item<'a>>),
}

/// Why an input is not one canonical RLP item. Offsets count from the start
/// of the input.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RlpError {
    #[error("RLP input is empty")]
    Empty,
    #[error("RLP item at offset {offset} needs {needed} more bytes than the input has")]
    Truncated { offset: usize, needed: usize },
    #[error("RLP input has {extra} trailing bytes after the item that ends at offset {end}")]
    TrailingBytes { end: usize, extra: usize },
    #[error("RLP item at offset {offset}: single byte below 0x80 written with a length prefix")]
    NonCanonicalSingleByte { offset: usize },
    #[error("RLP item at offset {offset}: long-form length {len} is below 56")]
    NonCanonicalLongLength { offset: usize, len: usize },
    #[error("RLP item at offset {offset}: length has a leading zero byte")]
    LengthLeadingZero { offset: usize },
    #[error("RLP item at offset {offset}: length does not fit in memory")]
    LengthOverflow { offset: usize },
    #[error("RLP list at offset {offset}: items run past the end of the list")]
    ListOverrun { offset: usize },
    #[error("RLP lists nest deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// Decodes one canonical RLP item that must span the whole input.
pub fn decode(input: &[u8]) -> Result<Item<'_>, RlpError> {
    if input.is_empty() {
        return Err(RlpError::Empty);
    }
    let (item, end) = decode_at(input, 0, 0)?;
    if end != input.len() {
        return Err(RlpError::TrailingBytes {
            end,
            extra: input.len() - end,
        });
    }
    Ok(item)
}

/// Header of the item at `offset`: (is_list, payload start, payload length).
fn header(input: &[u8], offset: usize) -> Result<(bool, usize, usize), RlpError> {
    let prefix = *input
        .get(offset)
        .ok_or(RlpError::Truncated { offset, needed: 1 })?;
    match prefix {
        0x00..=0x7f => Ok((false, offset, 1)),
        0x80..=0xb7 => {
            let len = usize::from(prefix - 0x80);
            if len == 1 {
                // A single byte below 0x80 must be written bare.
                if let Some(&b) = input.get(offset + 1)
                    && b < 0x80
                {
                    return Err(RlpError::NonCanonicalSingleByte { offset });
                }
            }
            Ok((false, offset + 1, len))
        }
        0xb8..=0xbf => {
            let (start, len) = long_length(input, offset, usize::from(prefix - 0xb7))?;
            Ok((false, start, len))
        }
        0xc0..=0xf7 => Ok((true, offset + 1, usize::from(prefix - 0xc0))),
        0xf8..=0xff => {
            let (start, len) = long_length(input, offset, usize::from(prefix - 0xf7))?;
            Ok((true, start, len))
        }
    }
}

fn long_length(input: &[u8], offset: usize, len_of_len: usize) -> Result<(usize, usize), RlpError> {
    let start = offset + 1;
    let bytes = input
        .get(start..start + len_of_len)
        .ok_or(RlpError::Truncated {
            offset,
            needed: (start + len_of_len).saturating_sub(input.len()),
        })?;
    if bytes.first() == Some(&0) {
        return Err(RlpError::LengthLeadingZero { offset });
    }
    let mut len: usize = 0;
    for &b in bytes {
        len = len
            .checked_mul(256)
            .and_then(|l| l.checked_add(usize::from(b)))
            .ok_or(RlpError::LengthOverflow { offset })?;
    }
    if len < 56 {
        return Err(RlpError::NonCanonicalLongLength { offset, len });
    }
    Ok((start + len_of_len, len))
}

/// Decodes the item at `offset`; returns it and the offset just past it.
fn decode_at(input: &[u8], offset: usize, depth: usize) -> Result<(Item<'_>, usize), RlpError> {
    let (is_list, start, len) = header(input, offset)?;
    let end = start
        .checked_add(len)
        .ok_or(RlpError::LengthOverflow { offset })?;
    if end > input.len() {
        return Err(RlpError::Truncated {
            offset,
            needed: end - input.len(),
        });
    }
    if !is_list {
        return Ok((Item::Bytes(&input[start..end]), end));
    }
    if depth >= MAX_DEPTH {
        return Err(RlpError::TooDeep);
    }
    // Decode the list's payload as its own buffer so that no child can read
    // past the list's end.
    let payload = &input[..end];
    let mut items = Vec::new();
    let mut at = start;
    while at < end {
        let (child, next) = match decode_at(payload, at, depth + 1) {
            Ok(ok) => ok,
            Err(RlpError::Truncated { .. }) => return Err(RlpError::ListOverrun { offset }),
            Err(e) => return Err(e),
        };
        items.push(child);
        at = next;
    }
    Ok((Item::List(items), end))
}

/// Encodes an item tree with the `rlp` crate (the encoder the whole Ethereum Rust
/// ecosystem shares; this module keeps only the strict decoder).
pub fn encode(item: &Item<'_>, out: &mut Vec<u8>) {
    let mut stream = ::rlp::RlpStream::new();
    append(&mut stream, item);
    out.extend_from_slice(&stream.out());
}

fn append(stream: &mut ::rlp::RlpStream, item: &Item<'_>) {
    match item {
        Item::Bytes(b) => {
            stream.append(b);
        }
        Item::List(items) => {
            stream.begin_list(items.len());
            for i in items {
                append(stream, i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(item: Item<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&item, &mut out);
        out
    }
    fn enc_bytes(b: &[u8]) -> Vec<u8> {
        enc(Item::Bytes(b))
    }

    // Vectors from the Ethereum wiki / Yellow Paper RLP examples.
    #[test]
    fn encodes_yellow_paper_examples() {
        assert_eq!(enc_bytes(b"dog"), [0x83, b'd', b'o', b'g']);
        assert_eq!(enc_bytes(b""), [0x80]);
        assert_eq!(enc_bytes(&[0x00]), [0x00]);
        assert_eq!(enc_bytes(&[0x0f]), [0x0f]);
        assert_eq!(enc_bytes(&[0x04, 0x00]), [0x82, 0x04, 0x00]);
        assert_eq!(enc_bytes(&[0x80]), [0x81, 0x80]);
        let lorem = b"Lorem ipsum dolor sit amet, consectetur adipisicing elit";
        let e = enc_bytes(lorem);
        assert_eq!(&e[..2], &[0xb8, 0x38]);
        assert_eq!(&e[2..], lorem);
        assert_eq!(
            enc(Item::List(vec![Item::Bytes(b"cat"), Item::Bytes(b"dog")])),
            [0xc8, 0x83, b'c', b'a', b't', 0x83, b'd', b'o', b'g']
        );
        assert_eq!(enc(Item::List(vec![])), [0xc0]);
    }

    #[test]
    fn long_lengths_use_minimal_bytes() {
        let big = vec![0xaa; 1024];
        let e = enc_bytes(&big);
        assert_eq!(&e[..3], &[0xb9, 0x04, 0x00]);
        assert_eq!(decode(&e), Ok(Item::Bytes(&big)));
        let long_list = enc(Item::List(vec![Item::Bytes(&big[..60])]));
        assert_eq!(&long_list[..4], &[0xf8, 62, 0xb8, 60]);
        assert_eq!(
            decode(&long_list),
            Ok(Item::List(vec![Item::Bytes(&big[..60])]))
        );
    }

    #[test]
    fn decodes_nested_lists() {
        // [ [], [[]], [ [], [[]] ] ] (set-theoretic three)
        let input = [0xc7, 0xc0, 0xc1, 0xc0, 0xc3, 0xc0, 0xc1, 0xc0];
        let item = decode(&input).unwrap();
        let mut out = Vec::new();
        encode(&item, &mut out);
        assert_eq!(out, input);
    }

    #[test]
    fn rejects_non_canonical_and_broken_input() {
        assert_eq!(decode(&[]), Err(RlpError::Empty));
        assert_eq!(
            decode(&[0x81, 0x05]),
            Err(RlpError::NonCanonicalSingleByte { offset: 0 })
        );
        assert!(decode(&[0x81, 0x80]).is_ok());
        assert_eq!(
            decode(&[0xb8, 0x01, 0xff]),
            Err(RlpError::NonCanonicalLongLength { offset: 0, len: 1 })
        );
        let mut padded = vec![0xb9, 0x00, 0x38];
        padded.extend(vec![0; 56]);
        assert_eq!(
            decode(&padded),
            Err(RlpError::LengthLeadingZero { offset: 0 })
        );
        assert!(matches!(
            decode(&[0x83, b'd', b'o']),
            Err(RlpError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&[0x80, 0x80]),
            Err(RlpError::TrailingBytes { .. })
        ));
        // A list whose child claims more bytes than the list holds.
        assert_eq!(
            decode(&[0xc2, 0x83, b'a', b'b', b'c']),
            Err(RlpError::ListOverrun { offset: 0 })
        );
        // A length that overflows usize.
        let mut huge = vec![0xbf];
        huge.extend([0xff; 8]);
        assert!(decode(&huge).is_err());
        // Deep nesting is refused rather than recursing without bound.
        let mut deep = vec![0xc0];
        for _ in 0..MAX_DEPTH {
            // One more list around the last: payloads stay below 56 bytes.
            let mut outer = vec![0xc0 + u8::try_from(deep.len()).unwrap()];
            outer.extend_from_slice(&deep);
            deep = outer;
        }
        assert_eq!(decode(&deep), Err(RlpError::TooDeep));
        assert!(decode(&deep[1..]).is_ok());
    }
}
