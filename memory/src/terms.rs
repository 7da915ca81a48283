//! Words for BM25: what a passage is made of when it is searched by its words.

use std::collections::BTreeMap;

/// Longer "words" are identifiers, hashes or base64; they are cut to this many bytes,
/// which keeps every posting's slot name short and bounded.
pub const MAX_TERM_BYTES: usize = 40;

/// Words too common to tell passages apart (a short English list: BM25's idf already
/// weighs them down, but their postings would be the largest in the image).
const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "do", "does",
    "for", "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in", "into", "is",
    "it", "it's", "its", "me", "my", "no", "not", "of", "on", "or", "our", "she", "so", "such",
    "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those",
    "to", "too", "us", "very", "was", "we", "were", "what", "when", "where", "which", "while",
    "who", "whom", "why", "will", "with", "would", "you", "your",
];

/// The terms of `text`, in order: lower-cased runs of letters, digits and `_`, without
/// stop words and single letters, each at most [`MAX_TERM_BYTES`].
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| {
            (w.chars().count() > 1 || w.chars().all(|c| c.is_ascii_digit())) && !is_stopword(w)
        })
        .map(|mut w| {
            if w.len() > MAX_TERM_BYTES {
                let mut end = MAX_TERM_BYTES;
                while !w.is_char_boundary(end) {
                    end -= 1;
                }
                w.truncate(end);
            }
            w
        })
        .collect()
}

fn is_stopword(word: &str) -> bool {
    STOPWORDS.binary_search(&word).is_ok()
}

/// Each term of `text` with how often it occurs, and the number of terms in all: a
/// passage's row of the BM25 index.
pub fn counts(text: &str) -> (BTreeMap<String, u32>, u32) {
    let mut counts = BTreeMap::new();
    let mut total = 0u32;
    for term in terms(text) {
        *counts.entry(term).or_insert(0u32) += 1;
        total = total.saturating_add(1);
    }
    (counts, total)
}

/// Okapi BM25's two knobs, at the values most systems ship (Lucene, Elasticsearch).
#[derive(Clone, Copy, Debug)]
pub struct Bm25 {
    /// How fast repeated occurrences stop counting.
    pub k1: f64,
    /// How much a long passage is discounted.
    pub b: f64,
}

impl Default for Bm25 {
    fn default() -> Self {
        Bm25 { k1: 1.2, b: 0.75 }
    }
}

impl Bm25 {
    /// The weight of a term found in `df` of `n` passages.
    pub fn idf(&self, n: u64, df: u64) -> f64 {
        let (n, df) = (n as f64, df as f64);
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// A term occurring `tf` times in a passage of `len` terms, where passages average
    /// `average` terms.
    pub fn term(&self, tf: u32, len: u32, average: f64) -> f64 {
        let tf = f64::from(tf);
        let norm = 1.0 - self.b + self.b * f64::from(len) / average.max(1.0);
        tf * (self.k1 + 1.0) / (tf + self.k1 * norm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted_for_the_binary_search() {
        let mut sorted = STOPWORDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, STOPWORDS);
    }

    #[test]
    fn terms_are_lowercased_words_without_stopwords() {
        assert_eq!(
            terms("The Image is a graph of Prototype objects, 42 of them; x"),
            ["image", "graph", "prototype", "objects", "42"]
        );
        let long = "z".repeat(100);
        assert_eq!(terms(&long)[0].len(), MAX_TERM_BYTES);
        let (counts, total) = counts("fjall fjall image");
        assert_eq!((counts["fjall"], total), (2, 3));
    }

    #[test]
    fn rarer_terms_and_shorter_passages_weigh_more() {
        let bm = Bm25::default();
        assert!(bm.idf(1000, 1) > bm.idf(1000, 500));
        assert!(bm.term(1, 10, 20.0) > bm.term(1, 40, 20.0));
        assert!(bm.term(3, 20, 20.0) > bm.term(1, 20, 20.0));
    }
}
