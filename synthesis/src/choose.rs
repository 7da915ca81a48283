//! Choosing among candidates that passed: by what they do. Each passing candidate is
//! run on the same generated inputs (see [`crate::inputs`]); candidates that answer
//! alike form a cluster, and the largest cluster wins (AlphaCode's behavioural
//! clustering; CodeT's dual execution agreement). Independent samples that agree are
//! evidence a single sample is not — which is what lets a cycle with no caller's
//! example install anything at all.

use crate::image::Value;

/// What a candidate answered on each generated input, rendered (an error as its kind,
/// so two candidates refusing the same input agree).
pub type Behaviour = Vec<String>;

/// Renders one outcome for comparison.
pub fn render(outcome: &crate::error::Result<Value>) -> String {
    match outcome {
        Ok(value) => crate::image::json::to_json(value).to_string(),
        Err(e) => format!("error:{}", e.kind()),
    }
}

/// The verdict on a pool of passing candidates.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Install the candidate at this index of the pool; `agreeing` candidates (itself
    /// included) answered alike.
    Install {
        /// The pool index.
        index: usize,
        /// The size of its cluster.
        agreeing: usize,
    },
    /// No two candidates agree, and nothing the caller gave decides between them.
    Undecided,
}

/// The clusters of a pool: indices of candidates with one behaviour, largest first,
/// ties broken by fewer misses (of the mind's proposed cases), then by order.
pub fn clusters(behaviours: &[&Behaviour], misses: &[usize]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, b) in behaviours.iter().enumerate() {
        match groups.iter_mut().find(|g| behaviours[g[0]] == *b) {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    let missed = |g: &Vec<usize>| g.iter().map(|i| misses.get(*i).copied().unwrap_or(0)).min();
    groups.sort_by(|a, b| {
        b.len().cmp(&a.len()).then(missed(a).cmp(&missed(b))).then(a[0].cmp(&b[0]))
    });
    groups
}

/// Decides: the largest cluster's first candidate. With the caller's examples every
/// candidate in the pool already meets them, so even a cluster of one may be installed;
/// without, only a cluster of two or more.
pub fn decide(behaviours: &[&Behaviour], misses: &[usize], caller_examples: bool) -> Verdict {
    let groups = clusters(behaviours, misses);
    match groups.first() {
        Some(best) if best.len() >= 2 || caller_examples => {
            Verdict::Install { index: best[0], agreeing: best.len() }
        }
        _ => Verdict::Undecided,
    }
}

/// Whether the pool is settled before every candidate of the round was tried: two
/// candidates agree.
pub fn settled(behaviours: &[&Behaviour]) -> bool {
    behaviours.iter().enumerate().any(|(i, a)| behaviours[..i].contains(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(answers: &[&str]) -> Behaviour {
        answers.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_largest_cluster_wins_and_agreement_is_needed_without_examples() {
        let (x, y, z) = (b(&["1", "2"]), b(&["1", "3"]), b(&["1", "2"]));
        let pool = [&x, &y, &z];
        assert_eq!(clusters(&pool, &[0, 0, 0]), vec![vec![0, 2], vec![1]]);
        assert_eq!(decide(&pool, &[0, 0, 0], false), Verdict::Install { index: 0, agreeing: 2 });
        assert!(settled(&pool));
        let lonely = [&x, &y];
        assert!(!settled(&lonely));
        assert_eq!(decide(&lonely, &[0, 0], false), Verdict::Undecided);
        assert_eq!(
            decide(&lonely, &[2, 0], true),
            Verdict::Install { index: 1, agreeing: 1 },
            "with the caller's examples a lone candidate may win; fewer proposed cases missed breaks the tie"
        );
        assert_eq!(decide(&[], &[], true), Verdict::Undecided);
    }
}
