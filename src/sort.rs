//! Sorting through one shared instance of the standard library's stable sort.
//!
//! Every `slice::sort*` call compiles its own copy of the standard library's sort
//! (driftsort and its small-sort networks: 2–3 KB of wasm per element type and
//! comparator), and so does every `collect()` into a `BTreeMap` or `BTreeSet`, which
//! sorts its input. The browser replica (`edgesync/replica`) had 16 of them, 55 KB of
//! its code (docs/decisions.md, "Size of `edgesync/replica`"). These functions sort a
//! permutation of indices instead — one compiled sort, for `usize` behind a `dyn`
//! comparator — and then move the elements into place by swaps. Stable, O(n log n),
//! for the small lists (tables, column names, a text update's operations) the sync
//! engine and the Text CRDT sort.

use std::cmp::Ordering;

/// Sorts `v` stably by `cmp`, as `v.sort_by(cmp)` does.
pub(crate) fn sort_by<T>(v: &mut [T], mut cmp: impl FnMut(&T, &T) -> Ordering) {
    if v.len() < 2 {
        return;
    }
    let mut order: Vec<usize> = (0..v.len()).collect();
    {
        let items = &*v;
        sort_indices(&mut order, &mut |a, b| cmp(&items[a], &items[b]));
    }
    permute(v, &mut order);
}

/// Sorts `v` stably, as `v.sort()` does.
#[cfg_attr(not(feature = "crdt"), allow(dead_code))]
pub(crate) fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, T::cmp);
}

/// Sorts `v` stably by the key `f` gives, as `v.sort_by_key(f)` does.
#[cfg_attr(not(feature = "crdt"), allow(dead_code))]
pub(crate) fn sort_by_key<T, K: Ord>(v: &mut [T], mut f: impl FnMut(&T) -> K) {
    sort_by(v, |a, b| f(a).cmp(&f(b)));
}

/// The one compiled instance of the standard library's sort.
#[inline(never)]
fn sort_indices(order: &mut [usize], cmp: &mut dyn FnMut(usize, usize) -> Ordering) {
    order.sort_by(|&a, &b| cmp(a, b));
}

/// Puts `v[order[k]]` at `k` for every `k`, following each cycle of the permutation
/// with swaps (`order` is left as the identity).
fn permute<T>(v: &mut [T], order: &mut [usize]) {
    for start in 0..v.len() {
        let mut at = start;
        while order[at] != at {
            let from = order[at];
            order[at] = at;
            if from == start {
                break;
            }
            v.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_as_the_standard_library_does_and_stably() {
        // Pseudo-random lists with many equal keys, every length up to 200.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..200 {
            let v: Vec<(u8, usize)> = (0..len)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    ((seed % 7) as u8, i)
                })
                .collect();
            let mut want = v.clone();
            want.sort_by_key(|p| p.0);
            let mut got = v.clone();
            sort_by_key(&mut got, |p| p.0);
            assert_eq!(got, want, "length {len}");
            let mut all = v.clone();
            sort(&mut all);
            want = v;
            want.sort();
            assert_eq!(all, want, "length {len}");
        }
    }

    #[test]
    fn moves_owned_values_without_losing_or_doubling_any() {
        let mut v: Vec<String> = ["pear", "apple", "fig", "apple", "kiwi", "date"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        sort_by(&mut v, |a, b| b.cmp(a));
        assert_eq!(v, ["pear", "kiwi", "fig", "date", "apple", "apple"]);
    }
}
