//! The Composite Entropy Metric (seeds 004: the system's objective function):
//!
//! ```text
//! CEM = w_cog·H_cog + w_sol·H_sol + w_struc·H_struc + w_rel·H_rel
//! ```
//!
//! over a window of recent activity (`heartbeat.windowSeconds`), each term in [0, 1] so
//! that the weights (`heartbeat.weights`, summing to 1 as made) say how much each
//! matters and the threshold means the same whatever they are:
//!
//! - **H_cog, cognitive diversity**: the Shannon entropy of persona usage,
//!   `−Σ pᵢ log₂ pᵢ / log₂ P`, over every persona turn in a dialogue, every cycle (BRICK
//!   writes the method), every crucible critique and every compression job (BABS writes
//!   the concepts) in the window; `P` is the number of
//!   personas, so 1 is every persona used equally and 0 is one persona (or none).
//! - **H_sol, solution novelty**: the mean over the window's new solutions (dialogue
//!   answers and installed methods' code, in order) of `1 − max(0, max cos)` against
//!   every earlier solution (before the window, and earlier in it); a first solution
//!   ever counts 1. Answers that repeat earlier ones in other words score near 0.
//! - **H_struc, structural growth**: `1 − e^(−n / g)`, `n` the capabilities installed
//!   in the window and `g` the growth expected per window (`heartbeat.expectedGrowth`):
//!   0 with no growth, 0.63 at the expected growth, and bounded, so spamming methods
//!   cannot buy unbounded score.
//! - **H_rel, relevance**: the mean cosine (floored at 0) between each dialogue's
//!   question and each answer in the window — novelty that answers nothing is not
//!   creativity.
//!
//! A term with nothing to measure is 0: an idle system has no diversity, novelty,
//! growth or relevance, and a CEM of 0 is exactly the seeds' "cognitive stagnation" the
//! heartbeat answers.

use std::collections::BTreeMap;

use batos_mind::Embedder;

use crate::image::Value;
use crate::Result;

/// The weights, as `heartbeat.weights` holds them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    /// w_cog.
    pub cog: f64,
    /// w_sol.
    pub sol: f64,
    /// w_struc.
    pub struc: f64,
    /// w_rel.
    pub rel: f64,
}

impl Default for Weights {
    /// Diversity and novelty first (the seeds' formula has only these and growth);
    /// relevance a check beside them.
    fn default() -> Self {
        Weights { cog: 0.3, sol: 0.3, struc: 0.2, rel: 0.2 }
    }
}

/// What happened in a window, as the metric sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    /// The window's start and end, ms since the epoch.
    pub since_ms: i64,
    /// Its end.
    pub until_ms: i64,
    /// Uses of each persona (by key).
    pub uses: BTreeMap<String, usize>,
    /// How many personas there are.
    pub personas: usize,
    /// The window's new solutions' vectors, in order.
    pub solutions: Vec<Vec<f32>>,
    /// Earlier solutions' vectors.
    pub earlier: Vec<Vec<f32>>,
    /// Capabilities installed in the window.
    pub new_capabilities: usize,
    /// The growth expected per window (`g`).
    pub expected_growth: f64,
    /// Question–answer cosines of the window's dialogues.
    pub relevance: Vec<f64>,
}

/// The metric and its terms.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cem {
    /// H_cog.
    pub h_cog: f64,
    /// H_sol.
    pub h_sol: f64,
    /// H_struc.
    pub h_struc: f64,
    /// H_rel.
    pub h_rel: f64,
    /// The weighted sum.
    pub value: f64,
}

impl Cem {
    /// The metric as a slot value (what a beat keeps).
    pub fn to_value(&self) -> Value {
        Value::Map(BTreeMap::from([
            ("cem".to_owned(), Value::Float(self.value)),
            ("hCog".to_owned(), Value::Float(self.h_cog)),
            ("hSol".to_owned(), Value::Float(self.h_sol)),
            ("hStruc".to_owned(), Value::Float(self.h_struc)),
            ("hRel".to_owned(), Value::Float(self.h_rel)),
        ]))
    }
}

/// H_cog of `uses` among `personas`.
pub fn h_cog(uses: &BTreeMap<String, usize>, personas: usize) -> f64 {
    let total: usize = uses.values().sum();
    if total == 0 || personas < 2 {
        return 0.0;
    }
    let entropy: f64 = uses
        .values()
        .filter(|n| **n > 0)
        .map(|n| {
            let p = *n as f64 / total as f64;
            -p * p.log2()
        })
        .sum();
    (entropy / (personas as f64).log2()).clamp(0.0, 1.0)
}

/// H_sol of `solutions` after `earlier`.
pub fn h_sol(solutions: &[Vec<f32>], earlier: &[Vec<f32>]) -> f64 {
    if solutions.is_empty() {
        return 0.0;
    }
    let mut seen: Vec<&[f32]> = earlier.iter().map(Vec::as_slice).collect();
    let mut sum = 0.0;
    for s in solutions {
        let nearest =
            seen.iter().map(|e| crate::routing::cosine(s, e)).fold(f64::NEG_INFINITY, f64::max);
        sum += if nearest.is_finite() { 1.0 - nearest.max(0.0) } else { 1.0 };
        seen.push(s);
    }
    sum / solutions.len() as f64
}

/// H_struc of `n` new capabilities when `g` are expected.
pub fn h_struc(n: usize, g: f64) -> f64 {
    if g <= 0.0 {
        return if n > 0 { 1.0 } else { 0.0 };
    }
    1.0 - (-(n as f64) / g).exp()
}

/// H_rel of the cosines.
pub fn h_rel(relevance: &[f64]) -> f64 {
    if relevance.is_empty() {
        return 0.0;
    }
    relevance.iter().map(|r| r.max(0.0)).sum::<f64>() / relevance.len() as f64
}

/// The metric of `window` under `weights`.
pub fn compute(window: &Window, weights: &Weights) -> Cem {
    let h_cog = h_cog(&window.uses, window.personas);
    let h_sol = h_sol(&window.solutions, &window.earlier);
    let h_struc = h_struc(window.new_capabilities, window.expected_growth);
    let h_rel = h_rel(&window.relevance);
    let value =
        weights.cog * h_cog + weights.sol * h_sol + weights.struc * h_struc + weights.rel * h_rel;
    Cem { h_cog, h_sol, h_struc, h_rel, value }
}

/// How many earlier solutions novelty is measured against: enough to catch repetition
/// of recent work, bounded so that a beat's cost does not grow with the image's age.
pub const EARLIER: usize = 64;

/// Reads the window `[since_ms, until_ms)` from the image: the dialogues (their turns,
/// relevance and answers' vectors) and the cycles (BRICK's work, the crucible's
/// reviewers, installed methods and their code, embedded with `embedder`).
pub fn observe(
    rt: &crate::runtime::Runtime,
    embedder: &dyn Embedder,
    since_ms: i64,
    until_ms: i64,
    expected_growth: f64,
) -> Result<Window> {
    let inside = |t: i64| t >= since_ms && t < until_ms;
    let mut window = Window { since_ms, until_ms, expected_growth, ..Window::default() };
    let mut earlier_answers: Vec<Vec<f32>> = Vec::new();
    let mut earlier_code: Vec<String> = Vec::new();
    let mut new_code: Vec<(i64, String)> = Vec::new();
    let mut new_answers: Vec<(i64, Vec<f32>)> = Vec::new();
    let dimensions = embedder.dimensions();
    let model = embedder.model_id().to_owned();
    let cycles = batos_synthesis::cycle::list(rt)?;
    rt.view(|cx| {
        let tx = cx.tx();
        window.personas = crate::persona::all(tx)?.len();
        for (_, oid) in crate::dialogue::list(tx)? {
            let slots = tx.slots(oid)?;
            let started = int(slots.get("startedMs"));
            let vector = match (slots.get("answerVector"), crate::text(slots.get("vectorModel"))) {
                (Some(v), Some(m)) if m == model => {
                    batos_memory::store::decode_vector(v, dimensions)
                }
                _ => None,
            };
            if inside(started) {
                if let Some(Value::List(turns)) = slots.get("turns") {
                    for turn in turns {
                        if let Value::Map(t) = turn {
                            if let Some(p) = crate::text(t.get("persona")) {
                                *window.uses.entry(p).or_default() += 1;
                            }
                            if let Some(r) = crate::number(t.get("relevance")) {
                                window.relevance.push(r);
                            }
                        }
                    }
                }
                if let Some(v) = vector {
                    new_answers.push((started, v));
                }
            } else if started < since_ms {
                if let Some(v) = vector {
                    earlier_answers.push(v);
                }
            }
        }
        // BABS writes the concepts of each compression job.
        if let Some(memory) = tx.root(batos_memory::MEMORY_ROOT)? {
            if let Some(Value::Object(jobs)) = tx.slot(memory, "jobs")? {
                for (_, job) in tx.slots(jobs)? {
                    let Value::Object(job) = job else { continue };
                    if inside(int(tx.slot(job, "startedAt")?.as_ref())) {
                        *window.uses.entry("babs".to_owned()).or_default() += 1;
                    }
                }
            }
        }
        for (_, oid) in &cycles {
            let oid = *oid;
            let slots = tx.slots(oid)?;
            let updated = int(slots.get("updatedMs"));
            let complete = crate::text(slots.get("state")).as_deref() == Some("COMPLETE");
            if inside(updated) {
                *window.uses.entry("brick".to_owned()).or_default() += 1;
                if let Some(Value::List(reviews)) = slots.get("reviews") {
                    for review in reviews {
                        let Value::List(critiques) = review else { continue };
                        for c in critiques {
                            if let Value::Map(c) = c {
                                if let Some(r) = crate::text(c.get("reviewer")) {
                                    *window.uses.entry(r.to_ascii_lowercase()).or_default() += 1;
                                }
                            }
                        }
                    }
                }
                if complete {
                    window.new_capabilities += 1;
                    if let Some(code) = installed_code(&slots) {
                        new_code.push((updated, code));
                    }
                }
            } else if complete && updated < since_ms {
                if let Some(code) = installed_code(&slots) {
                    earlier_code.push(code);
                }
            }
        }
        Ok(())
    })?;
    let excess = earlier_answers.len().saturating_sub(EARLIER);
    earlier_answers.drain(..excess);
    let excess = earlier_code.len().saturating_sub(EARLIER);
    earlier_code.drain(..excess);
    let code_vectors = embed_all(embedder, &earlier_code)?;
    window.earlier = earlier_answers.into_iter().chain(code_vectors).collect();
    let new_texts: Vec<String> = new_code.iter().map(|(_, c)| c.clone()).collect();
    let new_vectors = embed_all(embedder, &new_texts)?;
    let mut solutions: Vec<(i64, Vec<f32>)> = new_answers;
    solutions.extend(new_code.into_iter().map(|(t, _)| t).zip(new_vectors));
    solutions.sort_by_key(|(t, _)| *t);
    window.solutions = solutions.into_iter().map(|(_, v)| v).collect();
    Ok(window)
}

fn embed_all(embedder: &dyn Embedder, texts: &[String]) -> Result<Vec<Vec<f32>>> {
    if texts.is_empty() {
        return Ok(vec![]);
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    crate::routing::embed(embedder, &refs)
}

fn int(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::Int(i)) => *i,
        _ => 0,
    }
}

/// The code of the candidate a cycle installed (its `chosen` attempt).
fn installed_code(slots: &BTreeMap<String, Value>) -> Option<String> {
    let chosen = crate::text(slots.get("chosen"))?;
    let Some(Value::List(attempts)) = slots.get("attempts") else { return None };
    attempts.iter().rev().find_map(|a| {
        let Value::Map(a) = a else { return None };
        let label = format!("round {} candidate {}", int(a.get("round")), int(a.get("candidate")));
        (label == chosen && crate::text(a.get("outcome")).as_deref() == Some("passed"))
            .then(|| crate::text(a.get("code")))
            .flatten()
    })
}
