//! Choosing the next token from logits: greedy, or temperature with top-k and top-p,
//! after a repetition penalty; and recognising stop strings in the generated text.

use rand::{Rng, SeedableRng};

use batos_mind::Sampling;

/// Picks tokens according to a [`Sampling`]; seeded, so a run can be repeated.
pub struct Sampler {
    settings: Sampling,
    rng: rand::rngs::StdRng,
}

impl Sampler {
    /// A sampler for these settings.
    pub fn new(settings: &Sampling) -> Sampler {
        Sampler {
            settings: settings.clone(),
            rng: rand::rngs::StdRng::seed_from_u64(settings.seed),
        }
    }

    /// The next token among those `allowed` accepts, or `None` when it accepts none.
    /// Only tokens worth sampling are asked about: the most likely first (a shape
    /// usually admits one of them), all of them only when none of those fits.
    pub fn next_allowed(
        &mut self,
        logits: &[f32],
        history: &[u32],
        allowed: &mut dyn FnMut(u32) -> bool,
    ) -> Option<u32> {
        const LIKELY: usize = 256;
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let by_logit = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]);
        if order.len() > LIKELY {
            order.select_nth_unstable_by(LIKELY, by_logit);
        }
        let (likely, rest) = order.split_at_mut(LIKELY.min(logits.len()));
        likely.sort_by(by_logit);
        let mut keep: Vec<u32> = likely.iter().copied().filter(|t| allowed(*t)).collect();
        if keep.is_empty() {
            rest.sort_by(by_logit);
            keep.extend(rest.iter().copied().find(|t| allowed(*t)));
        }
        if keep.is_empty() {
            return None;
        }
        let mut masked = vec![f32::NEG_INFINITY; logits.len()];
        for t in &keep {
            masked[*t as usize] = logits[*t as usize];
        }
        Some(self.next(&masked, history))
    }

    /// The next token, given the logits over the vocabulary and the tokens so far
    /// (prompt and generated) for the repetition penalty.
    pub fn next(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let mut logits = logits.to_vec();
        let penalty = self.settings.repetition_penalty;
        if penalty != 1.0 && penalty > 0.0 {
            // The CTRL penalty as transformers applies it: make seen tokens less likely
            // whatever the sign of their logit.
            let mut seen = vec![false; logits.len()];
            for &t in history {
                if let Some(s) = seen.get_mut(t as usize) {
                    *s = true;
                }
            }
            for (l, s) in logits.iter_mut().zip(seen) {
                if s {
                    *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
                }
            }
        }
        if self.settings.temperature <= 0.0 {
            return argmax(&logits);
        }
        let mut candidates: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, l)| (i as u32, l / self.settings.temperature))
            .collect();
        if candidates.is_empty() {
            return argmax(&logits);
        }
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if self.settings.top_k > 0 {
            candidates.truncate(self.settings.top_k);
        }
        let max = candidates[0].1;
        let mut probs: Vec<f32> = candidates.iter().map(|(_, l)| (l - max).exp()).collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if self.settings.top_p < 1.0 {
            let mut cumulative = 0.0;
            let keep = probs
                .iter()
                .position(|p| {
                    cumulative += p;
                    cumulative >= self.settings.top_p
                })
                .map_or(probs.len(), |i| i + 1);
            candidates.truncate(keep);
            probs.truncate(keep);
            let total: f32 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= total);
        }
        let mut pick: f32 = self.rng.random();
        for ((token, _), p) in candidates.iter().zip(&probs) {
            if pick < *p {
                return *token;
            }
            pick -= p;
        }
        candidates[candidates.len() - 1].0
    }
}

/// The index of the largest logit (the lowest index among equals; NaN never wins).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, l) in logits.iter().enumerate() {
        if *l > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

/// Where the text should end if it contains a stop string: the byte index where the
/// earliest stop string starts.
pub fn stop_at(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(temperature: f32, top_k: usize, top_p: f32) -> Sampling {
        Sampling { temperature, top_k, top_p, seed: 7, ..Sampling::default() }
    }

    #[test]
    fn greedy_takes_the_largest_logit() {
        let mut s = Sampler::new(&Sampling::default());
        assert_eq!(s.next(&[0.1, 3.0, 2.9, f32::NAN], &[]), 1);
        assert_eq!(argmax(&[1.0, 1.0]), 0, "ties go to the lower id");
    }

    #[test]
    fn top_k_of_one_is_greedy_at_any_temperature() {
        let mut s = Sampler::new(&settings(5.0, 1, 1.0));
        for _ in 0..50 {
            assert_eq!(s.next(&[0.0, 0.5, 0.4], &[]), 1);
        }
    }

    #[test]
    fn a_small_top_p_keeps_only_the_head() {
        let mut s = Sampler::new(&settings(1.0, 0, 0.5));
        for _ in 0..50 {
            assert_eq!(s.next(&[5.0, 0.0, 0.0, 0.0], &[]), 0);
        }
    }

    #[test]
    fn sampling_follows_the_distribution_and_the_seed() {
        let logits = [0.0f32, 2.0f32.ln()];
        let mut counts = [0u32; 2];
        let mut s = Sampler::new(&settings(1.0, 0, 1.0));
        for _ in 0..3000 {
            counts[s.next(&logits, &[]) as usize] += 1;
        }
        let ratio = f64::from(counts[1]) / f64::from(counts[0]);
        assert!(
            (1.6..2.5).contains(&ratio),
            "p(1)/p(0) should be about 2, got {ratio} from {counts:?}"
        );
        let run = |seed| {
            let mut s = Sampler::new(&Sampling { seed, ..settings(1.0, 0, 1.0) });
            (0..20).map(|_| s.next(&[0.0, 0.1, 0.2, 0.3], &[])).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn the_repetition_penalty_demotes_seen_tokens() {
        let mut s = Sampler::new(&Sampling { repetition_penalty: 2.0, ..Sampling::default() });
        assert_eq!(s.next(&[3.0, 2.0], &[0]), 1, "3/2 < 2");
        assert_eq!(s.next(&[-1.0, -1.5], &[0]), 1, "-1*2 < -1.5");
    }

    #[test]
    fn stop_strings_cut_at_the_earliest() {
        let stops = vec!["```".to_owned(), "\n\n".to_owned()];
        assert_eq!(stop_at("fn f() {}\n\nmore```", &stops), Some(9));
        assert_eq!(stop_at("no stop here", &stops), None);
    }
}
