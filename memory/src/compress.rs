//! Concept fractals: clusters of passages compressed by the mind, speaking as BABS, into
//! one concept each, linked to the passages it came from (RAPTOR's recursive tree).
//!
//! A compression takes the lowest level that has at least two passages no concept
//! covers yet (context fractals are level 0, concepts of them level 1, and so on),
//! clusters them by meaning (k-means on their vectors, about [`CLUSTER_SIZE`] to a
//! cluster), asks the mind for one concept per cluster, embeds the concepts and writes
//! them — searchable like any passage, under a source `batos:concepts/…` — in one
//! transaction with the links both ways. Each compression is a **job** object under
//! `memory.jobs`: RUNNING with its inputs when it starts, then COMPLETE with its
//! outputs (in the transaction that writes them) or FAILED with why. The mind is asked
//! with no transaction open.

use batos_image::{Error, Oid, Result, Tx, Value};
use batos_mind::{Embedder, Message, Mind, Sampling};
use batos_runtime::Runtime;

use crate::store::{self, Layout, NewFractal};

/// Passages per concept, on average: RAPTOR's clusters hold a handful, and eight
/// passages of at most 256 word pieces still fit a small model's context with room for
/// its answer.
pub const CLUSTER_SIZE: usize = 8;

/// Each passage is cut to this many characters in the prompt, so a cluster's prompt
/// stays under about 2,500 tokens whatever its passages.
pub const MAX_PASSAGE_CHARS: usize = 1200;

/// The concept's length cap: a title and a few sentences.
pub const MAX_CONCEPT_TOKENS: usize = 160;

/// k-means rounds: the assignment settles within a few on clusters this small.
const KMEANS_ROUNDS: usize = 12;

/// What a compression did.
#[derive(Clone, Debug, PartialEq)]
pub struct Compressed {
    /// The job object.
    pub job: Oid,
    /// The level of the passages compressed (their concepts are one above).
    pub level: i64,
    /// How many passages went in.
    pub inputs: usize,
    /// The concepts made.
    pub concepts: Vec<Oid>,
}

/// A passage waiting for a concept.
struct Node {
    oid: Oid,
    text: String,
    vector: Vec<f32>,
}

fn level_of(tx: &Tx<'_>, oid: Oid) -> Result<i64> {
    store::counter(tx, oid, "level")
}

/// The lowest level with at least two passages no concept covers, and those passages.
fn pending(tx: &Tx<'_>, layout: &Layout, dimensions: usize) -> Result<Option<(i64, Vec<Node>)>> {
    let mut by_level: std::collections::BTreeMap<i64, Vec<Node>> = Default::default();
    for source in store::sources(tx, layout)?.into_values() {
        for oid in store::fractals_of(tx, source)? {
            if tx.slot(oid, "concept")?.is_some() {
                continue;
            }
            let (Some(Value::Text(text)), Some(vector)) = (
                tx.slot(oid, "text")?,
                tx.slot(oid, "vector")?.and_then(|v| store::decode_vector(&v, dimensions)),
            ) else {
                continue;
            };
            by_level.entry(level_of(tx, oid)?).or_default().push(Node { oid, text, vector });
        }
    }
    Ok(by_level.into_iter().find(|(_, nodes)| nodes.len() >= 2))
}

/// Assigns each vector to one of `k` clusters (spherical k-means, seeded with the
/// farthest-first points so the result is the same every run).
pub fn cluster(vectors: &[Vec<f32>], k: usize) -> Vec<usize> {
    let n = vectors.len();
    let k = k.clamp(1, n.max(1));
    let dot = |a: &[f32], b: &[f32]| -> f32 { a.iter().zip(b).map(|(x, y)| x * y).sum() };
    let mut centres: Vec<Vec<f32>> = vec![vectors[0].clone()];
    while centres.len() < k {
        let farthest = (0..n)
            .max_by(|&a, &b| {
                let near =
                    |i: usize| centres.iter().map(|c| dot(c, &vectors[i])).fold(f32::MIN, f32::max);
                near(b).total_cmp(&near(a))
            })
            .unwrap_or(0);
        centres.push(vectors[farthest].clone());
    }
    let mut assignment = vec![0usize; n];
    for _ in 0..KMEANS_ROUNDS {
        let mut changed = false;
        for (i, v) in vectors.iter().enumerate() {
            let best = (0..k)
                .max_by(|&a, &b| dot(&centres[a], v).total_cmp(&dot(&centres[b], v)))
                .unwrap_or(0);
            changed |= assignment[i] != best;
            assignment[i] = best;
        }
        for (c, centre) in centres.iter_mut().enumerate() {
            let mut sum = vec![0f32; centre.len()];
            for (v, _) in vectors.iter().zip(&assignment).filter(|(_, &a)| a == c) {
                sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
            }
            let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                *centre = sum.into_iter().map(|x| x / norm).collect();
            }
        }
        if !changed {
            break;
        }
    }
    assignment
}

/// What BABS is told for one cluster.
pub fn prompt(passages: &[&str]) -> Vec<Message> {
    let mut listed = String::new();
    for (i, p) in passages.iter().enumerate() {
        let cut: String = p.chars().take(MAX_PASSAGE_CHARS).collect();
        listed.push_str(&format!("[{}] {}\n\n", i + 1, cut.trim()));
    }
    vec![
        Message::system(
            "You are BABS, the memory of batos: you map what is known with joyful, flawless precision. You compress passages into the one concept they share.",
        ),
        Message::user(format!(
            "Passages:\n\n{listed}Write the one concept these passages share: a short title on the first line, then two or three plain sentences that state it in your own words. Write nothing else."
        )),
    ]
}

fn job_slot(n: i64) -> String {
    format!("job-{n:04}")
}

fn write_job(tx: &mut Tx<'_>, job: Oid, fields: &[(&str, Value)]) -> Result<()> {
    for (name, value) in fields {
        tx.set_slot(job, name, value)?;
    }
    Ok(())
}

fn now() -> Value {
    Value::Int(i64::try_from(batos_image::now_ms()).unwrap_or(0))
}

/// Runs one compression of the memory of `rt` (see the module documentation).
/// `progress` hears of each cluster as its concept is written by the mind.
pub fn compress(
    rt: &Runtime,
    mind: &dyn Mind,
    embedder: &dyn Embedder,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Compressed> {
    let dims = embedder.dimensions();
    let started = rt.transact("compress: start a job", |cx| {
        let tx = cx.tx_mut("start a compression job")?;
        let layout = store::ensure(tx)?;
        let Some((level, nodes)) = pending(tx, &layout, dims)? else {
            return Err(Error::BadInput(
                "nothing to compress: every level has fewer than two passages without a concept; `batos ingest` documents first".into(),
            ));
        };
        let jobs = match tx.slot(layout.memory, "jobs")? {
            Some(Value::Object(o)) => o,
            _ => {
                let o = tx.create_object(&[])?;
                tx.set_slot(layout.memory, "jobs", &Value::Object(o))?;
                o
            }
        };
        let n = store::counter(tx, layout.memory, "jobCount")? + 1;
        tx.set_slot(layout.memory, "jobCount", &Value::Int(n))?;
        let job = tx.create_object(&[])?;
        write_job(tx, job, &[
            ("kind", Value::Text("compress".into())),
            ("state", Value::Text("RUNNING".into())),
            ("level", Value::Int(level)),
            ("inputs", Value::List(nodes.iter().map(|n| Value::Object(n.oid)).collect())),
            ("mind", Value::Text(mind.describe())),
            ("startedAt", now()),
        ])?;
        tx.set_slot(jobs, &job_slot(n), &Value::Object(job))?;
        Ok((job, n, level, nodes))
    })?;
    let (job, number, level, nodes) = started.value;
    match think(rt, mind, embedder, job, number, level, &nodes, progress) {
        Ok(concepts) => Ok(Compressed { job, level, inputs: nodes.len(), concepts }),
        Err(e) => {
            let why = e.to_string();
            rt.transact("compress: the job failed", |cx| {
                let tx = cx.tx_mut("record a failed job")?;
                write_job(
                    tx,
                    job,
                    &[
                        ("state", Value::Text("FAILED".into())),
                        ("error", Value::Text(why.clone())),
                        ("finishedAt", now()),
                    ],
                )
            })?;
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn think(
    rt: &Runtime,
    mind: &dyn Mind,
    embedder: &dyn Embedder,
    job: Oid,
    number: i64,
    level: i64,
    nodes: &[Node],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Oid>> {
    let vectors: Vec<Vec<f32>> = nodes.iter().map(|n| n.vector.clone()).collect();
    let k = nodes.len().div_ceil(CLUSTER_SIZE);
    let assignment = cluster(&vectors, k);
    let mut clusters: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, &c) in assignment.iter().enumerate() {
        clusters[c].push(i);
    }
    clusters.retain(|c| !c.is_empty());
    let sampling = Sampling { max_tokens: MAX_CONCEPT_TOKENS, ..Sampling::default() };
    let mut concepts = Vec::with_capacity(clusters.len());
    for (done, members) in clusters.iter().enumerate() {
        let passages: Vec<&str> = members.iter().map(|&i| nodes[i].text.as_str()).collect();
        let answer = mind
            .complete(&prompt(&passages), &sampling, &mut |_| {})
            .map_err(|e| Error::MindUnavailable(format!("BABS could not write a concept: {e}")))?;
        let text = answer.text.trim().to_owned();
        if text.is_empty() {
            return Err(Error::Failed("the mind answered an empty concept".into()));
        }
        concepts.push(text);
        progress(done + 1, clusters.len());
    }
    let refs: Vec<&str> = concepts.iter().map(String::as_str).collect();
    let embedded = embedder
        .embed(&refs)
        .map_err(|e| Error::MindUnavailable(format!("the embedding model failed: {e}")))?;
    let fractals: Vec<NewFractal> = concepts
        .into_iter()
        .zip(embedded)
        .map(|(text, vector)| NewFractal { text, vector })
        .collect();
    let path = format!("batos:concepts/level-{}/{}", level + 1, job_slot(number));
    let hash = blake3::hash(format!("{job}").as_bytes()).to_hex().to_string();
    let model = embedder.model_id().to_owned();
    let written = rt.transact("compress: write the concepts", |cx| {
        let tx = cx.tx_mut("write concept fractals")?;
        let layout = store::ensure(tx)?;
        let replaced = store::replace_source(tx, &layout, &path, &hash, 0, &model, &fractals)?;
        for (concept, members) in replaced.fractals.iter().zip(&clusters) {
            tx.set_slot(*concept, "level", &Value::Int(level + 1))?;
            tx.set_slot(*concept, "kind", &Value::Text("concept".into()))?;
            let linked: Vec<Value> = members.iter().map(|&i| Value::Object(nodes[i].oid)).collect();
            tx.set_slot(*concept, "members", &Value::List(linked))?;
            for &i in members {
                tx.set_slot(nodes[i].oid, "concept", &Value::Object(*concept))?;
            }
        }
        write_job(
            tx,
            job,
            &[
                ("state", Value::Text("COMPLETE".into())),
                (
                    "outputs",
                    Value::List(replaced.fractals.iter().map(|o| Value::Object(*o)).collect()),
                ),
                ("finishedAt", now()),
            ],
        )?;
        Ok(replaced.fractals)
    })?;
    Ok(written.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_follow_the_vectors() {
        let v = |x: f32, y: f32| {
            let n = (x * x + y * y).sqrt();
            vec![x / n, y / n]
        };
        let vectors = vec![v(1.0, 0.05), v(1.0, 0.0), v(0.0, 1.0), v(0.05, 1.0), v(1.0, 0.1)];
        let a = cluster(&vectors, 2);
        assert_eq!(a[0], a[1]);
        assert_eq!(a[0], a[4]);
        assert_eq!(a[2], a[3]);
        assert_ne!(a[0], a[2]);
        assert_eq!(cluster(&vectors, 1), vec![0; 5]);
    }

    #[test]
    fn the_prompt_lists_every_passage_cut_to_its_limit() {
        let long = "x".repeat(5000);
        let messages = prompt(&["first passage", &long]);
        let user = &messages[1].content;
        assert!(user.contains("[1] first passage") && user.contains("[2] "));
        assert!(user.len() < 5000, "passages are cut");
    }
}
