//! Score normalisation shared by score plugins (upstream `plugins/helper/normalize_score.go`).

/// Upstream `helper.DefaultNormalizeScore`: scale to [0, max], optionally reversed.
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [i64]) {
    let max_count = scores.iter().copied().max().unwrap_or(0).max(0);
    if max_count == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = max_priority);
        }
        return;
    }
    for s in scores.iter_mut() {
        let mut v = max_priority * *s / max_count;
        if reverse {
            v = max_priority - v;
        }
        *s = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::MAX_NODE_SCORE;

    #[test]
    fn normalize_table() {
        let cases: [(&[i64], bool, &[i64]); 4] = [
            (&[1, 2, 4], false, &[25, 50, 100]),
            (&[1, 2, 4], true, &[75, 50, 0]),
            (&[0, 0], true, &[100, 100]),
            (&[0, 0], false, &[0, 0]),
        ];
        for (input, reverse, want) in cases {
            let mut s = input.to_vec();
            default_normalize_score(MAX_NODE_SCORE, reverse, &mut s);
            assert_eq!(s, want, "{input:?} reverse={reverse}");
        }
    }
}
