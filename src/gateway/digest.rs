//! A digest of a set of row keys, so a replica and the gateway can tell cheaply whether
//! the replica holds exactly the rows the user may read ([`super::protocol::ScopeRequest`]).
//!
//! Order-independent: the count, and the XOR and the wrapping sum of each key's 64-bit
//! FNV-1a hash over its canonical text. Two different sets collide only if both the
//! XOR and the sum of their hashes agree.

/// FNV-1a, 64 bits.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The digest of `keys` (canonical key texts; order does not matter).
pub fn digest<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let (mut n, mut x, mut sum) = (0u64, 0u64, 0u64);
    for k in keys {
        let h = fnv1a(k);
        n += 1;
        x ^= h;
        sum = sum.wrapping_add(h);
    }
    format!("{n:x}-{x:016x}-{sum:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn order_does_not_matter(mut keys in proptest::collection::vec("[a-z0-9\\[\\]\",]{0,12}", 0..20)) {
            let a = digest(keys.iter().map(String::as_str));
            keys.reverse();
            prop_assert_eq!(a, digest(keys.iter().map(String::as_str)));
        }

        #[test]
        fn one_key_more_or_less_differs(keys in proptest::collection::btree_set("[a-z0-9]{1,12}", 1..20)) {
            let all: Vec<&str> = keys.iter().map(String::as_str).collect();
            prop_assert_ne!(digest(all.iter().copied()), digest(all[1..].iter().copied()));
        }
    }

    #[test]
    fn empty_and_swapped_sets() {
        assert_eq!(digest([]), "0-0000000000000000-0000000000000000");
        assert_ne!(digest(["[1]", "[2]"]), digest(["[1]", "[3]"]));
    }
}
