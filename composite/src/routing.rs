//! Routing: which personas answer a question (seeds 004, "Mechanisms for Entropy
//! Maximization"). Three parts, each recorded in every [`Decision`]:
//!
//! 1. **The archetype classifier.** The question's embedding is compared with labelled
//!    prototype questions of each archetype (`personas.archetypes`, editable); an
//!    archetype's similarity is its best prototype's cosine, and the similarities become
//!    weights by a softmax at temperature [`ARCHETYPE_TEMPERATURE`]: a mixture, not
//!    a hard label, so a question between two archetypes is routed between them too.
//! 2. **The Collaborative Dynamics Matrix** (`personas.matrix`: archetype → persona →
//!    weight). A persona's base score is Σ over archetypes of the archetype's weight times
//!    its matrix entry. Then live pheromones of `digital_ether` add
//!    `ether.weight × strength` to each persona they attract.
//! 3. **Noisy top-k gating** (Shazeer et al. 2017, the seeds' "intentional function
//!    bleed"): Gaussian noise of standard deviation `personas.noise` is added to each
//!    score before the best `personas.k` are chosen, so a less obvious persona is
//!    sometimes brought in. The noise comes from a seeded generator and the seed is
//!    recorded: any decision can be replayed exactly.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use batos_mind::Embedder;
use rand::{Rng, SeedableRng};

use crate::image::{Oid, Tx, Value};
use crate::{Error, Result};

/// The softmax temperature over archetype similarities. Sentence-embedding cosines of
/// one question against different archetypes' prototypes differ by about 0.05 to 0.3;
/// at 0.05 a lead of 0.1 weighs e² ≈ 7× more, decisive without being a hard choice.
pub const ARCHETYPE_TEMPERATURE: f64 = 0.05;

/// The archetypes as an image is made: name, prototype questions, and the matrix row
/// (weights for alfred, babs, brick, robin).
const ARCHETYPES: [(&str, &[&str], [f64; 4]); 5] = [
    (
        "technical deconstruction",
        &[
            "How does this work internally?",
            "Write a function that parses a date string.",
            "Why does this code fail to compile?",
            "Design the data structure for a cache with expiry.",
        ],
        [0.3, 0.2, 1.0, 0.5],
    ),
    (
        "personal or emotional",
        &[
            "I feel stuck and unmotivated with my project.",
            "How do I tell my team that the release is late?",
            "Why does this matter to the people who use it?",
        ],
        [0.3, 0.1, 0.3, 1.0],
    ),
    (
        "research and facts",
        &[
            "What do the design documents say about persistence?",
            "Find the passage about the synthesis cycle.",
            "What is the definition of a context fractal?",
            "Which sources describe the Ship of Theseus upgrade?",
        ],
        [0.3, 1.0, 0.5, 0.2],
    ),
    (
        "operations and safety",
        &[
            "Is it safe to run this on the production image?",
            "The kernel keeps running out of memory; what should I check?",
            "How do I back up and restore the image?",
        ],
        [1.0, 0.2, 0.5, 0.2],
    ),
    (
        "creative and philosophical",
        &[
            "What would it mean for software to be alive?",
            "Imagine a new way for objects to talk to each other.",
            "Is a system that rewrites itself still the same system?",
        ],
        [0.2, 0.3, 0.7, 0.8],
    ),
];

/// The persona keys in the order of a matrix row in [`ARCHETYPES`].
const ROW: [&str; 4] = ["alfred", "babs", "brick", "robin"];

/// The routing tables as the image holds them.
#[derive(Clone, Debug, PartialEq)]
pub struct Tables {
    /// Archetype → persona key → weight.
    pub matrix: BTreeMap<String, BTreeMap<String, f64>>,
    /// Archetype → prototype questions.
    pub archetypes: BTreeMap<String, Vec<String>>,
    /// How many personas answer.
    pub k: usize,
    /// The standard deviation of the gating noise.
    pub noise: f64,
}

pub(crate) fn ensure_tables(tx: &mut Tx<'_>, root: Oid) -> Result<()> {
    let mut matrix = BTreeMap::new();
    let mut archetypes = BTreeMap::new();
    for (name, prototypes, row) in ARCHETYPES {
        let weights: BTreeMap<String, Value> =
            ROW.iter().zip(row).map(|(k, w)| ((*k).to_owned(), Value::Float(w))).collect();
        matrix.insert(name.to_owned(), Value::Map(weights));
        archetypes.insert(
            name.to_owned(),
            Value::List(prototypes.iter().map(|p| Value::Text((*p).to_owned())).collect()),
        );
    }
    tx.set_slot(root, "matrix", &Value::Map(matrix))?;
    tx.set_slot(root, "archetypes", &Value::Map(archetypes))?;
    // Two: the Socratic Contrapunto is a dialogue of two.
    tx.set_slot(root, "k", &Value::Int(2))?;
    // A tenth of the matrix's range (0.1 to 1.0): enough to swap two personas whose
    // scores are close, too little to bring in one the archetype rules out.
    tx.set_slot(root, "noise", &Value::Float(0.1))?;
    Ok(())
}

/// Reads the tables; a table of the wrong shape is a clear error, not a silent default.
pub fn tables(tx: &Tx<'_>) -> Result<Tables> {
    let root = crate::persona::root(tx)?;
    let shape = |what: &str| {
        Error::BadInput(format!(
            "personas' `{what}` is not a map of the expected shape; `batos inspect personas` shows it"
        ))
    };
    let mut matrix = BTreeMap::new();
    match tx.slot(root, "matrix")? {
        Some(Value::Map(rows)) => {
            for (archetype, row) in rows {
                let Value::Map(row) = row else { return Err(shape("matrix")) };
                let row = row
                    .iter()
                    .map(|(k, v)| {
                        crate::number(Some(v))
                            .map(|w| (k.clone(), w))
                            .ok_or_else(|| shape("matrix"))
                    })
                    .collect::<Result<BTreeMap<_, _>>>()?;
                matrix.insert(archetype, row);
            }
        }
        _ => return Err(shape("matrix")),
    }
    let mut archetypes = BTreeMap::new();
    match tx.slot(root, "archetypes")? {
        Some(Value::Map(rows)) => {
            for (archetype, prototypes) in rows {
                let Value::List(items) = prototypes else { return Err(shape("archetypes")) };
                let texts = items
                    .into_iter()
                    .filter_map(|v| if let Value::Text(t) = v { Some(t) } else { None })
                    .collect();
                archetypes.insert(archetype, texts);
            }
        }
        _ => return Err(shape("archetypes")),
    }
    let k = match tx.slot(root, "k")? {
        Some(Value::Int(k)) if k >= 1 => usize::try_from(k).unwrap_or(2),
        _ => 2,
    };
    let noise = crate::number(tx.slot(root, "noise")?.as_ref()).unwrap_or(0.1).max(0.0);
    Ok(Tables { matrix, archetypes, k, noise })
}

/// A routing decision, kept with the dialogue it chose for.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The likeliest archetype.
    pub archetype: String,
    /// Each archetype's weight (softmax of its similarity).
    pub archetypes: BTreeMap<String, f64>,
    /// Each persona's score from the matrix.
    pub base: BTreeMap<String, f64>,
    /// What pheromones added to each persona's score.
    pub pheromones: BTreeMap<String, f64>,
    /// The noise drawn for each persona.
    pub noise: BTreeMap<String, f64>,
    /// Base + pheromones + noise.
    pub total: BTreeMap<String, f64>,
    /// The personas chosen, best first: the order they speak in.
    pub chosen: Vec<String>,
    /// The seed of the noise.
    pub seed: u64,
    /// The noise's standard deviation.
    pub noise_scale: f64,
    /// Named by the person (`--persona`, `@brick`) rather than routed.
    pub forced: bool,
}

fn floats(map: &BTreeMap<String, f64>) -> Value {
    Value::Map(map.iter().map(|(k, v)| (k.clone(), Value::Float(*v))).collect())
}

impl Decision {
    /// A decision the person made by naming the persona.
    pub fn forced(key: &str) -> Decision {
        Decision {
            archetype: String::new(),
            archetypes: BTreeMap::new(),
            base: BTreeMap::new(),
            pheromones: BTreeMap::new(),
            noise: BTreeMap::new(),
            total: BTreeMap::new(),
            chosen: vec![key.to_owned()],
            seed: 0,
            noise_scale: 0.0,
            forced: true,
        }
    }

    /// The decision as the image keeps it.
    pub fn to_value(&self) -> Value {
        Value::Map(BTreeMap::from([
            ("archetype".to_owned(), Value::Text(self.archetype.clone())),
            ("archetypes".to_owned(), floats(&self.archetypes)),
            ("base".to_owned(), floats(&self.base)),
            ("pheromones".to_owned(), floats(&self.pheromones)),
            ("noise".to_owned(), floats(&self.noise)),
            ("total".to_owned(), floats(&self.total)),
            (
                "chosen".to_owned(),
                Value::List(self.chosen.iter().map(|c| Value::Text(c.clone())).collect()),
            ),
            // As text: a u64 seed does not fit an image integer.
            ("seed".to_owned(), Value::Text(self.seed.to_string())),
            ("noiseScale".to_owned(), Value::Float(self.noise_scale)),
            ("forced".to_owned(), Value::Bool(self.forced)),
        ]))
    }
}

/// Noisy top-k gating: draws `N(0, scale²)` noise for each persona (in key order, from
/// a generator seeded with `seed`), adds it to `scores`, and chooses the `k` best, best
/// first (ties by key). Answers the noise, the totals and the choice.
pub fn gate(
    scores: &BTreeMap<String, f64>,
    scale: f64,
    k: usize,
    seed: u64,
) -> (BTreeMap<String, f64>, BTreeMap<String, f64>, Vec<String>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut noise = BTreeMap::new();
    let mut total = BTreeMap::new();
    for (key, score) in scores {
        // Box–Muller: two uniforms on (0, 1] make one standard normal.
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        noise.insert(key.clone(), z * scale);
        total.insert(key.clone(), score + z * scale);
    }
    let mut order: Vec<(&String, f64)> = total.iter().map(|(k, v)| (k, *v)).collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let chosen = order.into_iter().take(k.max(1)).map(|(k, _)| k.clone()).collect();
    (noise, total, chosen)
}

/// Softmax of `similarities / temperature`.
pub fn mixture(similarities: &BTreeMap<String, f64>, temperature: f64) -> BTreeMap<String, f64> {
    let top = similarities.values().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: BTreeMap<String, f64> = similarities
        .iter()
        .map(|(k, s)| (k.clone(), ((s - top) / temperature.max(1e-6)).exp()))
        .collect();
    let sum: f64 = exp.values().sum();
    exp.into_iter().map(|(k, e)| (k, if sum > 0.0 { e / sum } else { 0.0 })).collect()
}

/// Prototype embeddings already made (the tables change rarely; a question is one
/// embedding, its prototypes would be a dozen more each time).
fn cached_vectors(embedder: &dyn Embedder, texts: &[String]) -> Result<Vec<Vec<f32>>> {
    static CACHE: OnceLock<Mutex<BTreeMap<String, Vec<f32>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    // Keyed by model too: vectors of two models are never compared.
    let key = |t: &str| format!("{}\u{0}{t}", embedder.model_id());
    let missing: Vec<&str> = {
        let known = cache.lock().unwrap_or_else(PoisonError::into_inner);
        texts.iter().map(String::as_str).filter(|t| !known.contains_key(&key(t))).collect()
    };
    if !missing.is_empty() {
        let made = embed(embedder, &missing)?;
        let mut known = cache.lock().unwrap_or_else(PoisonError::into_inner);
        for (text, vector) in missing.into_iter().zip(made) {
            known.insert(key(text), vector);
        }
    }
    let known = cache.lock().unwrap_or_else(PoisonError::into_inner);
    Ok(texts.iter().map(|t| known.get(&key(t)).cloned().unwrap_or_default()).collect())
}

/// Embeds `texts`, a failure of the model being the mind's.
pub(crate) fn embed(embedder: &dyn Embedder, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
    embedder.embed(texts).map_err(|e| Error::MindUnavailable(e.to_string()))
}

/// The cosine of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        f64::from(dot / (na * nb))
    }
}

/// Each archetype's similarity to `query`: its best prototype's cosine.
pub fn classify(
    embedder: &dyn Embedder,
    tables: &Tables,
    query: &str,
) -> Result<BTreeMap<String, f64>> {
    let query = embed(embedder, &[query])?.into_iter().next().unwrap_or_default();
    let mut out = BTreeMap::new();
    for (archetype, prototypes) in &tables.archetypes {
        let vectors = cached_vectors(embedder, prototypes)?;
        let best = vectors.iter().map(|v| cosine(&query, v)).fold(f64::NEG_INFINITY, f64::max);
        if best.is_finite() {
            out.insert(archetype.clone(), best);
        }
    }
    Ok(out)
}

/// Routes `query` among `personas` (their keys): classify, score by the matrix, add
/// the pheromones live at `now_ms`, gate with noise from `seed`.
pub fn route(
    rt: &crate::runtime::Runtime,
    embedder: &dyn Embedder,
    query: &str,
    seed: u64,
    now_ms: i64,
) -> Result<Decision> {
    let (tables, keys, live, ether) = rt.view(|cx| {
        let tx = cx.tx();
        let keys: Vec<String> = crate::persona::all(tx)?.into_iter().map(|p| p.key).collect();
        Ok((tables(tx)?, keys, crate::ether::live(tx, now_ms)?, crate::ether::settings(tx)?))
    })?;
    if keys.is_empty() {
        return Err(Error::BadInput("`personas` holds no persona to route to".into()));
    }
    let similarities = classify(embedder, &tables, query)?;
    let archetypes = mixture(&similarities, ARCHETYPE_TEMPERATURE);
    let archetype = archetypes
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(k, _)| k.clone())
        .unwrap_or_default();
    let mut base = BTreeMap::new();
    let mut pheromones = BTreeMap::new();
    for key in &keys {
        let score: f64 = archetypes
            .iter()
            .map(|(a, w)| {
                w * tables.matrix.get(a).and_then(|row| row.get(key)).copied().unwrap_or(0.0)
            })
            .sum();
        base.insert(key.clone(), score);
        let boost: f64 = live
            .iter()
            .filter(|(p, _)| p.attracts.iter().any(|a| a == key))
            .map(|(_, strength)| strength * ether.weight)
            .sum();
        pheromones.insert(key.clone(), boost);
    }
    let scores: BTreeMap<String, f64> = base
        .iter()
        .map(|(k, b)| (k.clone(), b + pheromones.get(k).copied().unwrap_or(0.0)))
        .collect();
    let (noise, total, chosen) = gate(&scores, tables.noise, tables.k, seed);
    Ok(Decision {
        archetype,
        archetypes,
        base,
        pheromones,
        noise,
        total,
        chosen,
        seed,
        noise_scale: tables.noise,
        forced: false,
    })
}
