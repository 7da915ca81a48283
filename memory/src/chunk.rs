//! Semantic chunking: sentences into context fractals. Neighbouring sentences stay
//! together until the meaning moves — the cosine distance between one sentence and the
//! next is above the document's 95th percentile — or the passage would pass the
//! embedder's word-piece cap.

use std::ops::Range;

/// Where a document's breakpoints fall: distances above this percentile of its
/// neighbour distances (Kamradt's semantic chunking, the value the design names).
pub const BREAKPOINT_PERCENTILE: f64 = 95.0;

/// Below this many sentences a percentile says nothing, so only the cap splits.
const MIN_SENTENCES_FOR_BREAKPOINTS: usize = 4;

/// The cosine distance of each sentence to the next (`vectors` are unit length).
pub fn distances(vectors: &[Vec<f32>]) -> Vec<f32> {
    vectors
        .windows(2)
        .map(|w| 1.0 - w[0].iter().zip(&w[1]).map(|(a, b)| a * b).sum::<f32>())
        .collect()
}

/// The `p`th percentile of `values`, interpolated linearly between ranks (numpy's
/// default), or `None` for no values.
pub fn percentile(values: &[f32], p: f64) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let rank = p.clamp(0.0, 100.0) / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let frac = (rank - lo as f64) as f32;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Groups sentences into passages: a passage ends after sentence `i` when the distance
/// from `i` to `i + 1` is above the breakpoint threshold, or when adding the next
/// sentence would take it past `cap` word pieces. `tokens[i]` is sentence `i`'s length
/// in word pieces; each must already be at most `cap` (see [`split_long`]).
pub fn passages(tokens: &[usize], vectors: &[Vec<f32>], cap: usize) -> Vec<Range<usize>> {
    let gaps = distances(vectors);
    let threshold = if tokens.len() >= MIN_SENTENCES_FOR_BREAKPOINTS {
        percentile(&gaps, BREAKPOINT_PERCENTILE)
    } else {
        None
    };
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, &n) in tokens.iter().enumerate() {
        if i > start && size + n > cap {
            out.push(start..i);
            start = i;
            size = 0;
        }
        size += n;
        let breaks = threshold.zip(gaps.get(i)).is_some_and(|(t, &g)| g > t);
        if breaks {
            out.push(start..i + 1);
            start = i + 1;
            size = 0;
        }
    }
    if start < tokens.len() {
        out.push(start..tokens.len());
    }
    out
}

/// Cuts a sentence longer than `cap` word pieces into pieces that fit, at word
/// boundaries (a single word longer than the cap is cut by characters). `count` says
/// how many word pieces a text is.
pub fn split_long<E>(
    sentence: &str,
    cap: usize,
    count: &dyn Fn(&str) -> Result<usize, E>,
) -> Result<Vec<(String, usize)>, E> {
    let whole = count(sentence)?;
    if whole <= cap {
        return Ok(vec![(sentence.to_owned(), whole)]);
    }
    let mut out = Vec::new();
    let mut piece = String::new();
    let mut size = 0;
    for word in sentence.split_whitespace() {
        let mut n = count(word)?;
        let mut word = word.to_owned();
        while n > cap {
            // A "word" of more than `cap` pieces (a hash, a URL, minified code): halve it.
            let mut mid = word.len() / 2;
            while !word.is_char_boundary(mid) {
                mid -= 1;
            }
            let (head, tail) = (word[..mid].to_owned(), word[mid..].to_owned());
            out.extend(split_long(&head, cap, count)?);
            word = tail;
            n = count(&word)?;
        }
        if size + n > cap && !piece.is_empty() {
            let done = std::mem::take(&mut piece);
            let counted = count(&done)?;
            out.push((done, counted));
            size = 0;
        }
        if !piece.is_empty() {
            piece.push(' ');
        }
        piece.push_str(&word);
        size += n;
    }
    if !piece.is_empty() {
        let counted = count(&piece)?;
        out.push((piece, counted));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(angle: f32) -> Vec<f32> {
        vec![angle.cos(), angle.sin()]
    }

    #[test]
    fn the_percentile_interpolates_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&v, 50.0), Some(3.0));
        assert!((percentile(&v, 95.0).expect("some") - 4.8).abs() < 1e-6);
        assert_eq!(percentile(&[], 95.0), None);
    }

    #[test]
    fn a_change_of_topic_is_a_breakpoint_and_the_cap_holds() {
        // Ten sentences on one topic, ten on another: the one large jump is the break.
        let vectors: Vec<Vec<f32>> = (0..20)
            .map(|i| unit(if i < 10 { 0.01 * i as f32 } else { 1.5 + 0.01 * i as f32 }))
            .collect();
        let tokens = vec![10; 20];
        assert_eq!(passages(&tokens, &vectors, 256), vec![0..10, 10..20]);
        // The same with a cap of 35 word pieces: three sentences at most per passage.
        let capped = passages(&tokens, &vectors, 35);
        assert!(capped.iter().all(|r| r.len() * 10 <= 35), "{capped:?}");
        assert!(capped.iter().any(|r| r.end == 10), "the topic change still splits: {capped:?}");
        assert_eq!(capped.last().map(|r| r.end), Some(20));
    }

    #[test]
    fn long_sentences_are_cut_at_words_within_the_cap() {
        let count = |s: &str| -> Result<usize, ()> {
            Ok(s.split_whitespace().map(|w| w.len().div_ceil(4)).sum())
        };
        let sentence = vec!["word"; 100].join(" ") + " " + &"x".repeat(50);
        let pieces = split_long(&sentence, 16, &count).expect("splits");
        assert!(pieces.iter().all(|(p, n)| *n <= 16 && count(p) == Ok(*n)), "{pieces:?}");
        let words: usize = pieces.iter().map(|(p, _)| p.matches("word").count()).sum();
        assert_eq!(words, 100, "no word is lost");
    }
}
