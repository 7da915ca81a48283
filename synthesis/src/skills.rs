//! The skill library: every verified capability — synthesised here, or a hand-written
//! plugin — with its description, signature and source, retrievable by similarity so a
//! new cycle gets worked examples (Voyager's and CRAFT's lesson). Synthesised skills
//! live in the image under the root `skills` (one map per `selector@receiver`); plugins
//! are read from the plugin registry. Similarity is by words — shared words of selector,
//! description and signature, weighted by rarity (a small BM25, [`similar`]) — and, when
//! the synthesizer has an embedding model, by meaning too: both rankings fused by
//! reciprocal rank ([`similar_by_meaning`]), so `sumOfSquares:` finds `addSquares:`.

use std::collections::{BTreeMap, HashMap};

use crate::error::Result;
use crate::image::{Oid, Tx, Value};
use crate::runtime::Runtime;
use crate::sandbox::plugin;

/// The root holding synthesised skills.
pub const SKILLS_ROOT: &str = "skills";

/// One verified capability.
#[derive(Clone, Debug, PartialEq)]
pub struct Skill {
    /// The selector it answers.
    pub selector: String,
    /// What it does.
    pub description: String,
    /// Its Rust signature, when known.
    pub signature: String,
    /// Its source, when kept.
    pub source: String,
    /// `synthesised` or `plugin`.
    pub origin: String,
}

/// Records a synthesised skill in `tx` (the install transaction).
pub fn record(tx: &mut Tx<'_>, receiver: Oid, entry: BTreeMap<String, Value>) -> Result<()> {
    let reg = crate::runtime::registry_root(
        tx,
        SKILLS_ROOT,
        "Verified synthesised capabilities, by selector@receiver.",
    )?;
    let selector = match entry.get("selector") {
        Some(Value::Text(s)) => s.clone(),
        _ => String::new(),
    };
    tx.set_slot(reg, &format!("{selector}@{receiver}"), &Value::Map(entry))
}

fn text(map: &BTreeMap<String, Value>, key: &str) -> String {
    match map.get(key) {
        Some(Value::Text(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Every skill: synthesised ones from the image, plugins from their registry.
pub fn all(rt: &Runtime) -> Result<Vec<Skill>> {
    let mut skills: Vec<Skill> = rt.view(|cx| {
        let Some(reg) = cx.tx().root(SKILLS_ROOT)? else { return Ok(vec![]) };
        Ok(cx
            .tx()
            .slots(reg)?
            .into_values()
            .filter_map(|v| match v {
                Value::Map(m) => Some(Skill {
                    selector: text(&m, "selector"),
                    description: text(&m, "description"),
                    signature: text(&m, "signature"),
                    source: text(&m, "source"),
                    origin: "synthesised".into(),
                }),
                _ => None,
            })
            .collect())
    })?;
    for p in plugin::list(rt)? {
        let source = match &p.source {
            Some(blob) => rt
                .image()
                .blobs()
                .read(blob)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            None => String::new(),
        };
        skills.push(Skill {
            selector: p.selector,
            description: p.description,
            signature: String::new(),
            source,
            origin: "plugin".into(),
        });
    }
    Ok(skills)
}

/// The skills `receiver` already understands (its lookup finds a method for the
/// selector), other than `except`, at most `k`: what a new method on it can compose.
pub fn understood(
    rt: &Runtime,
    receiver: Oid,
    skills: &[Skill],
    except: &str,
    k: usize,
) -> Result<Vec<Skill>> {
    rt.view(|cx| {
        let mut out: Vec<Skill> = Vec::new();
        for s in skills {
            if out.len() >= k
                || s.selector == except
                || out.iter().any(|o| o.selector == s.selector)
            {
                continue;
            }
            if let Some((_, Value::Method(_))) = cx.lookup(receiver, &s.selector)? {
                out.push(s.clone());
            }
        }
        Ok(out)
    })
}

fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_ascii_uppercase() && !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if c.is_alphanumeric() {
            word.push(c.to_ascii_lowercase());
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out.retain(|w| w.len() > 1);
    out
}

/// The `k` skills most similar to `query` (best first), leaving out those with nothing
/// in common with it.
pub fn similar(skills: &[Skill], query: &str, k: usize) -> Vec<Skill> {
    ranked_by_words(skills, query).into_iter().take(k).map(|i| skills[i].clone()).collect()
}

/// A skill's text as it is ranked: selector, description and signature.
fn skill_text(s: &Skill) -> String {
    format!("{} {} {}", s.selector, s.description, s.signature)
}

/// Below this cosine similarity a skill is not offered by meaning alone: MiniLM puts
/// unrelated code descriptions around 0.1–0.2.
const MIN_COSINE: f32 = 0.3;

/// Vectors of skill texts already embedded, by the blake3 of the text: a library is
/// re-ranked on every cycle, and its skills rarely change.
#[derive(Default)]
pub struct SkillVectors(std::sync::Mutex<HashMap<[u8; 32], Vec<f32>>>);

/// The `k` skills most similar to `query` by words and by meaning, the two rankings
/// fused by reciprocal rank (k = 60, as the memory's search). `embedder` embeds the
/// query and every skill not in `cache`.
pub fn similar_by_meaning(
    skills: &[Skill],
    query: &str,
    k: usize,
    embedder: &dyn crate::mind::Embedder,
    cache: &SkillVectors,
) -> std::result::Result<Vec<Skill>, crate::mind::MindError> {
    let texts: Vec<String> = skills.iter().map(skill_text).collect();
    let keys: Vec<[u8; 32]> =
        texts.iter().map(|t| *blake3::hash(t.as_bytes()).as_bytes()).collect();
    let mut held = cache.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let missing: Vec<usize> = (0..texts.len()).filter(|&i| !held.contains_key(&keys[i])).collect();
    let fresh = embedder.embed(&missing.iter().map(|&i| texts[i].as_str()).collect::<Vec<_>>())?;
    for (&i, v) in missing.iter().zip(fresh) {
        held.insert(keys[i], v);
    }
    let query_vector = embedder.embed(&[query])?.pop().unwrap_or_default();
    let mut by_meaning: Vec<(f32, usize)> = keys
        .iter()
        .enumerate()
        .filter_map(|(i, key)| {
            let v = held.get(key)?;
            let cosine: f32 = v.iter().zip(&query_vector).map(|(a, b)| a * b).sum();
            (cosine >= MIN_COSINE).then_some((cosine, i))
        })
        .collect();
    by_meaning.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut fused: HashMap<usize, f64> = HashMap::new();
    for (rank, i) in ranked_by_words(skills, query).into_iter().enumerate() {
        *fused.entry(i).or_default() += 1.0 / (60.0 + rank as f64 + 1.0);
    }
    for (rank, (_, i)) in by_meaning.into_iter().enumerate() {
        *fused.entry(i).or_default() += 1.0 / (60.0 + rank as f64 + 1.0);
    }
    let mut order: Vec<(f64, usize)> = fused.into_iter().map(|(i, s)| (s, i)).collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    Ok(order.into_iter().take(k).map(|(_, i)| skills[i].clone()).collect())
}

/// Indices of the skills sharing words with `query`, best first.
fn ranked_by_words(skills: &[Skill], query: &str) -> Vec<usize> {
    let docs: Vec<Vec<String>> = skills.iter().map(|s| words(&skill_text(s))).collect();
    let mut df: HashMap<&str, usize> = HashMap::new();
    for doc in &docs {
        let mut seen: Vec<&str> = doc.iter().map(String::as_str).collect();
        seen.sort_unstable();
        seen.dedup();
        for w in seen {
            *df.entry(w).or_default() += 1;
        }
    }
    let n = docs.len().max(1) as f64;
    let avg = docs.iter().map(Vec::len).sum::<usize>() as f64 / n;
    let query = words(query);
    let mut scored: Vec<(f64, usize)> = docs
        .iter()
        .enumerate()
        .map(|(i, doc)| {
            let score: f64 = query
                .iter()
                .map(|q| {
                    let tf = doc.iter().filter(|w| *w == q).count() as f64;
                    let d = *df.get(q.as_str()).unwrap_or(&0) as f64;
                    let idf = ((n - d + 0.5) / (d + 0.5) + 1.0).ln();
                    idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * doc.len() as f64 / avg.max(1.0)))
                })
                .sum();
            (score, i)
        })
        .filter(|(s, _)| *s > 0.0)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill(selector: &str, description: &str) -> Skill {
        Skill {
            selector: selector.into(),
            description: description.into(),
            signature: String::new(),
            source: String::new(),
            origin: "test".into(),
        }
    }

    #[test]
    fn similar_skills_rank_by_shared_rare_words() {
        let skills = [
            skill("reverseText:", "reverses the characters of a text"),
            skill("factorial", "the factorial of an integer"),
            skill("sumList:", "adds the integers of a list"),
        ];
        let best = similar(&skills, "reverseWords: reverses the words of a text", 2);
        assert_eq!(best.first().map(|s| s.selector.as_str()), Some("reverseText:"));
        assert!(similar(&skills, "zebra", 3).is_empty(), "nothing in common, nothing offered");
        assert_eq!(similar(&skills, "fibonacci of an integer", 1)[0].selector, "factorial");
    }

    /// A test double of an embedding model: each text's vector counts the words of a
    /// few fixed topics, so texts sharing a topic but no word are near.
    struct TopicTestEmbedder;

    impl crate::mind::Embedder for TopicTestEmbedder {
        fn model_id(&self) -> &str {
            "topic-test"
        }
        fn dimensions(&self) -> usize {
            3
        }
        fn max_tokens(&self) -> usize {
            256
        }
        fn count_tokens(&self, text: &str) -> std::result::Result<usize, crate::mind::MindError> {
            Ok(text.split_whitespace().count())
        }
        fn embed(
            &self,
            texts: &[&str],
        ) -> std::result::Result<Vec<Vec<f32>>, crate::mind::MindError> {
            let topics: [&[&str]; 3] = [
                &["square", "squares", "sum", "add", "adds"],
                &["text", "reverse", "characters"],
                &["prime", "divisor"],
            ];
            Ok(texts
                .iter()
                .map(|t| {
                    let lower = t.to_lowercase();
                    let mut v: Vec<f32> = topics
                        .iter()
                        .map(|words| words.iter().filter(|w| lower.contains(*w)).count() as f32)
                        .collect();
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                    v.iter_mut().for_each(|x| *x /= norm);
                    v
                })
                .collect())
        }
    }

    #[test]
    fn meaning_finds_a_skill_that_shares_no_word_and_vectors_are_cached() {
        let skills = [
            skill("reverseText:", "reverses the characters of a text"),
            skill("addSquares:", "adds up squares"),
            skill("isPrime:", "whether it has no divisor"),
        ];
        let query = "sumSquare: total";
        assert!(similar(&skills, query, 3).is_empty(), "no word in common");
        let cache = SkillVectors::default();
        let found =
            similar_by_meaning(&skills, query, 1, &TopicTestEmbedder, &cache).expect("ranks");
        assert_eq!(found[0].selector, "addSquares:");
        assert_eq!(cache.0.lock().expect("cache").len(), 3, "every skill embedded once");
        let again = similar_by_meaning(&skills, "reverse a text", 2, &TopicTestEmbedder, &cache)
            .expect("ranks");
        assert_eq!(again[0].selector, "reverseText:", "words and meaning agree");
    }
}
