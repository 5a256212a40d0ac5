//! A strict RLP reader, refusing what Besu's strict reader refuses.
//!
//! Besu: `ethereum/rlp/.../BytesValueRLPInput.java` (constructed with `lenient = false` by
//! the extraData codecs) and `RLPDecodingHelpers.java`:
//! - a single byte below 0x80 must be written as itself, not as `0x81 xx`
//!   (`validateCurrentItem`: "should have been written without a prefix");
//! - a long-form length must not start with a zero byte, must fit 4 bytes and must be at
//!   least 56 (`readLongSize`, `extractSizeFromLongItem`);
//! - an item must not run past its input or its enclosing list (`validateCurrentItem`,
//!   `enterList`).

use std::fmt;

/// An RLP item: a byte string or a list. An empty string (`0x80`, Besu's "null") and
/// an empty list (`0xc0`) are different items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item<'a> {
    Bytes(&'a [u8]),
    List(Vec<Item<'a>>),
}

impl<'a> Item<'a> {
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Item::Bytes(b) => Some(b),
            Item::List(_) => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Item<'a>]> {
        match self {
            Item::List(l) => Some(l),
            Item::Bytes(_) => None,
        }
    }
}

/// Malformed RLP: what is wrong and at which byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RlpError {
    pub offset: usize,
    pub problem: &'static str,
}

impl fmt::Display for RlpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed RLP at byte {}: {}", self.offset, self.problem)
    }
}

impl std::error::Error for RlpError {}

/// Lists nested deeper than this are refused (extraData nests 3 deep).
const MAX_DEPTH: usize = 32;

fn err(offset: usize, problem: &'static str) -> RlpError {
    RlpError { offset, problem }
}

/// Reads the item that starts `input`. Returns it and the number of bytes it takes; bytes
/// after it are not looked at (Besu's codecs do not check for trailing input either).
pub fn read(input: &[u8]) -> Result<(Item<'_>, usize), RlpError> {
    read_at(input, 0, 0)
}

/// Reads the item at `at`, which must end within `input`.
fn read_at(input: &[u8], at: usize, depth: usize) -> Result<(Item<'_>, usize), RlpError> {
    let prefix = *input
        .get(at)
        .ok_or_else(|| err(at, "input is fully consumed"))?;
    let (is_list, start, len) = match prefix {
        0x00..=0x7f => return Ok((Item::Bytes(&input[at..at + 1]), 1)),
        0x80..=0xb7 => (false, at + 1, usize::from(prefix - 0x80)),
        0xb8..=0xbf => {
            let size_len = usize::from(prefix - 0xb7);
            (false, at + 1 + size_len, long_size(input, at, size_len)?)
        }
        0xc0..=0xf7 => (true, at + 1, usize::from(prefix - 0xc0)),
        0xf8..=0xff => {
            let size_len = usize::from(prefix - 0xf7);
            (true, at + 1 + size_len, long_size(input, at, size_len)?)
        }
    };
    let end = start
        .checked_add(len)
        .filter(|end| *end <= input.len())
        .ok_or_else(|| err(at, "item runs past the end of its input or enclosing list"))?;
    let payload = &input[start..end];
    if !is_list {
        if len == 1 && payload[0] <= 0x7f {
            return Err(err(
                at,
                "a single byte below 0x80 must be written without a prefix",
            ));
        }
        return Ok((Item::Bytes(payload), end - at));
    }
    if depth >= MAX_DEPTH {
        return Err(err(at, "lists nested too deep"));
    }
    let mut items = Vec::new();
    let mut pos = 0;
    while pos < payload.len() {
        // Offsets inside the list are reported relative to the list payload's start
        // plus `start`, i.e. absolute.
        let (item, used) = read_at(payload, pos, depth + 1).map_err(|e| RlpError {
            offset: e.offset + start,
            problem: e.problem,
        })?;
        items.push(item);
        pos += used;
    }
    Ok((Item::List(items), end - at))
}

/// `RLPDecodingHelpers.readLongSize`: the `size_len` bytes after the prefix at `at`.
fn long_size(input: &[u8], at: usize, size_len: usize) -> Result<usize, RlpError> {
    let bytes = input
        .get(at + 1..at + 1 + size_len)
        .ok_or_else(|| err(at, "not enough bytes for the payload size"))?;
    if bytes[0] == 0 {
        return Err(err(at, "payload size has leading zeros"));
    }
    if size_len > 4 {
        return Err(err(at, "payload size does not fit 4 bytes"));
    }
    let size = bytes
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    if size < 56 {
        return Err(err(at, "a size below 56 must use the short form"));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_hex(s: &str) -> Result<(Item<'static>, usize), RlpError> {
        let bytes: &'static [u8] = Box::leak(hex::decode(s).unwrap().into_boxed_slice());
        read(bytes)
    }

    #[test]
    fn reads_strings_and_lists() {
        assert_eq!(read_hex("80").unwrap(), (Item::Bytes(&[]), 1));
        assert_eq!(read_hex("c0").unwrap(), (Item::List(vec![]), 1));
        assert_eq!(read_hex("7f").unwrap(), (Item::Bytes(&[0x7f]), 1));
        assert_eq!(read_hex("81ff").unwrap(), (Item::Bytes(&[0xff]), 2));
        assert_eq!(
            read_hex("c3800102").unwrap(),
            (
                Item::List(vec![Item::Bytes(&[]), Item::Bytes(&[1]), Item::Bytes(&[2])]),
                4
            )
        );
        // A 56-byte string takes the long form b8 38.
        let long = format!("b838{}", "aa".repeat(56));
        assert_eq!(read_hex(&long).unwrap().1, 58);
        // Trailing input is not read.
        assert_eq!(read_hex("c0c0").unwrap().1, 1);
    }

    /// The strict-mode refusals of `BytesValueRLPInput` / `RLPDecodingHelpers`.
    #[test]
    fn refuses_non_canonical_and_truncated_input() {
        let problem = |s: &str| read_hex(s).unwrap_err().problem;
        assert_eq!(
            problem("8105"),
            "a single byte below 0x80 must be written without a prefix"
        );
        assert_eq!(problem("b80100"), "a size below 56 must use the short form");
        assert_eq!(problem("b9003800"), "payload size has leading zeros");
        assert_eq!(
            problem("83aabb"),
            "item runs past the end of its input or enclosing list"
        );
        // An item inside a list must end within the list.
        assert_eq!(
            problem("c28300"),
            "item runs past the end of its input or enclosing list"
        );
        assert_eq!(problem("f8"), "not enough bytes for the payload size");
        assert_eq!(problem(""), "input is fully consumed");
        assert_eq!(problem("bc0100000000"), "payload size does not fit 4 bytes");
    }
}
