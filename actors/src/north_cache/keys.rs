//! Key layout of the `north_cache` column family, and the entry names the commands use.
//!
//! ```text
//! <owner> 0x00 'm' <area> <seq: u64 BE>   metadata (JSON), per area, in arrival order
//! <owner> 0x00 'd' <seq: u64 BE>          content bytes, whatever the area
//! ```
//! `<owner>` is `n<north id>` or `h<history id>`. Moving an entry between areas rewrites only its
//! metadata; the content key does not name the area, so a move never copies content.

use super::{Area, CacheOwner};

pub(super) const SEQ_LEN: usize = 8;

/// The prefix of everything an owner has: ids never hold NUL, so no owner's prefix is another's.
pub(super) fn owner_prefix(owner: &CacheOwner) -> Vec<u8> {
    let (tag, id) = match owner {
        CacheOwner::North(id) => (b'n', id),
        CacheOwner::History(id) => (b'h', id),
    };
    let mut k = Vec::with_capacity(id.len() + 2);
    k.push(tag);
    k.extend_from_slice(id.as_bytes());
    k.push(0);
    k
}

/// The first key after every key starting with `prefix` (prefixes here end with 0x00 or an
/// area byte, never 0xff).
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

pub(super) fn area_byte(area: Area) -> u8 {
    match area {
        Area::Cache => b'c',
        Area::Error => b'e',
        Area::Archive => b'a',
    }
}

pub(super) fn meta_prefix(owner: &[u8], area: Area) -> Vec<u8> {
    let mut k = owner.to_vec();
    k.push(b'm');
    k.push(area_byte(area));
    k
}

pub(super) fn meta_key(owner: &[u8], area: Area, seq: u64) -> Vec<u8> {
    let mut k = meta_prefix(owner, area);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(super) fn content_key(owner: &[u8], seq: u64) -> Vec<u8> {
    let mut k = owner.to_vec();
    k.push(b'd');
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The sequence at the end of a metadata or content key.
pub(super) fn seq_of(key: &[u8]) -> Option<u64> {
    let tail = key.len().checked_sub(SEQ_LEN).map(|at| &key[at..])?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

// Entry names are the sequence through an invertible scramble (multiplication by an odd
// constant modulo 2^64), written in 12 base-62 digits: unique within an owner by construction,
// random-looking like OIBus's `generateRandomId(12)`, and turned back into a key without an index.
const MUL: u64 = 0x9E37_79B9_7F4A_7C15;
const MUL_INV: u64 = inverse(MUL);
const NAME_LEN: usize = 12;
const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const fn inverse(a: u64) -> u64 {
    // Newton's iteration: each step doubles the correct low bits (3 → 96 after 5 steps).
    let mut x = a;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}

pub(super) fn name_of(seq: u64) -> String {
    let mut n = seq.wrapping_mul(MUL) ^ 0x5bd1_e995_2d35_8b1f;
    let mut out = [b'0'; NAME_LEN];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| b as char).collect()
}

/// The sequence a name stands for; `None` for anything `name_of` cannot have produced.
pub(super) fn seq_of_name(name: &str) -> Option<u64> {
    if name.len() != NAME_LEN {
        return None;
    }
    let mut n: u64 = 0;
    for b in name.bytes() {
        let d = DIGITS.iter().position(|&c| c == b)? as u64;
        n = n.checked_mul(62)?.checked_add(d)?;
    }
    Some((n ^ 0x5bd1_e995_2d35_8b1f).wrapping_mul(MUL_INV))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_twelve_characters_and_map_back_to_their_sequence() {
        for seq in [0, 1, 2, 41, 1 << 20, u64::MAX] {
            let name = name_of(seq);
            assert_eq!(name.len(), 12);
            assert_eq!(seq_of_name(&name), Some(seq), "{name}");
        }
        assert_ne!(name_of(1)[..6], name_of(2)[..6]);
        assert_eq!(seq_of_name("not-a-name"), None);
        assert_eq!(seq_of_name("zzzzzzzzzzzz"), None);
    }
}
