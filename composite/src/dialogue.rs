//! The Socratic Contrapunto: a question answered by the personas the routing chose, in
//! order, each later one having read the earlier ones (BRICK takes it apart, ROBIN joins
//! it up), with passages from the memory given to all and cited by number. The whole
//! exchange is kept as one object under `dialogues` (`d1`, `d2`, …): the question, the
//! turns, the sources, the routing decision, and each answer's relevance to the
//! question — what the Composite Entropy Metric reads.
//!
//! The minds are asked outside any transaction; the dialogue is written in one
//! transaction at the end, so a failed exchange leaves nothing half-kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use batos_memory::{Memory, SearchOptions};
use batos_mind::{Message, Mind, Minds};

use crate::image::{Oid, Tx, Value};
use crate::persona::{self, Persona};
use crate::routing::{self, Decision};
use crate::{Error, Result};

/// The root holding every dialogue.
pub const DIALOGUES_ROOT: &str = "dialogues";

/// Passages given to the personas: enough to ground an answer, few enough for a small
/// model's context.
pub const SOURCES: usize = 3;

/// Below this cosine between the question and the best passage, the memory is taken to
/// hold nothing on the question (a `knowledge_gap` pheromone is deposited). Unrelated
/// sentences score about 0.0–0.2 with all-MiniLM-L6-v2; paraphrases 0.5 and above.
pub const GAP_COSINE: f32 = 0.3;

/// One persona's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    /// The persona's key.
    pub persona: String,
    /// Its name as shown.
    pub name: String,
    /// What it said.
    pub text: String,
    /// Tokens generated, when the backend says.
    pub tokens: Option<usize>,
    /// Cosine between the question and this answer (the metric's relevance).
    pub relevance: f64,
}

/// A passage given to the personas.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// Its number in the prompt (`[1]`).
    pub n: usize,
    /// The document.
    pub source: String,
    /// The passage.
    pub text: String,
    /// Its fractal.
    pub fractal: Oid,
}

/// A finished exchange.
#[derive(Clone, Debug, PartialEq)]
pub struct Dialogue {
    /// Its id (`d7`).
    pub id: String,
    /// Its object.
    pub oid: Oid,
    /// The question.
    pub question: String,
    /// The answers, in the order given.
    pub turns: Vec<Turn>,
    /// The passages given.
    pub sources: Vec<Source>,
    /// How the personas were chosen.
    pub decision: Decision,
    /// Why no passages were given, when none were (the memory failed or held nothing).
    pub memory_note: String,
}

/// What the person asks.
#[derive(Clone, Debug)]
pub struct Ask<'a> {
    /// The question.
    pub question: &'a str,
    /// A persona to answer alone (`brick`, `@robin`), skipping the routing.
    pub persona: Option<&'a str>,
    /// The seed of the routing's noise.
    pub seed: u64,
    /// Now, in ms since the epoch (pheromones evaporate by it).
    pub now_ms: i64,
}

/// The longest question: a question is one prompt to each persona.
pub const MAX_QUESTION_BYTES: usize = 8192;

pub(crate) fn ensure(tx: &mut Tx<'_>) -> Result<()> {
    crate::runtime::registry_root(
        tx,
        DIALOGUES_ROOT,
        "Every conversation with the personas, by id (d1, d2, …): question, turns, sources and the routing decision.",
    )?;
    Ok(())
}

/// Asks the personas: routes (or takes the named persona), searches the memory for
/// passages, asks each chosen persona in turn — the later ones having read the earlier
/// — and keeps the exchange. `on_text(persona key, piece)` hears each answer as it is
/// written.
pub fn converse(
    rt: &crate::runtime::Runtime,
    minds: &Minds,
    memory: &Memory,
    ask: &Ask<'_>,
    on_text: &mut dyn FnMut(&str, &str),
) -> Result<Dialogue> {
    let question = ask.question.trim();
    if question.is_empty() {
        return Err(Error::BadInput("ask something: the question is empty".into()));
    }
    if question.len() > MAX_QUESTION_BYTES {
        return Err(Error::BadInput(format!(
            "the question is {} bytes; at most {MAX_QUESTION_BYTES} fit a persona's prompt",
            question.len()
        )));
    }
    let decision = match ask.persona {
        Some(name) => {
            let key = rt.view(|cx| persona::find(cx.tx(), name))?.key;
            Decision::forced(&key)
        }
        None => {
            let embedder = memory.embedder()?;
            routing::route(rt, embedder.as_ref(), question, ask.seed, ask.now_ms)?
        }
    };
    let speakers: Vec<Persona> = rt.view(|cx| {
        decision.chosen.iter().map(|k| persona::find(cx.tx(), k)).collect::<Result<Vec<_>>>()
    })?;
    let (sources, memory_note, gap) = match memory.search(
        rt,
        question,
        SearchOptions { limit: SOURCES, ..SearchOptions::default() },
    ) {
        Ok(hits) => {
            let best =
                hits.iter().filter_map(|h| h.meaning.map(|(_, c)| c)).fold(f32::MIN, f32::max);
            let gap = best < GAP_COSINE;
            let sources: Vec<Source> = hits
                .into_iter()
                .enumerate()
                .map(|(i, h)| Source {
                    n: i + 1,
                    source: h.source,
                    text: h.text,
                    fractal: h.fractal,
                })
                .collect();
            let note = if gap {
                "the memory holds nothing close to this question".to_owned()
            } else {
                String::new()
            };
            (sources, note, gap)
        }
        Err(e) => (Vec::new(), format!("the memory could not be searched: {e}"), true),
    };
    let mut turns: Vec<Turn> = Vec::new();
    for speaker in &speakers {
        let mind: Arc<dyn Mind> = minds.mind_for(rt, speaker.oid)?;
        let messages = prompt(speaker, question, &sources, &turns, &speakers);
        let key = speaker.key.clone();
        let completion = mind
            .complete(&messages, &speaker.sampling, &mut |piece| on_text(&key, piece))
            .map_err(|e| {
                Error::MindUnavailable(format!("{} could not answer: {e}", speaker.name))
            })?;
        turns.push(Turn {
            persona: speaker.key.clone(),
            name: speaker.name.clone(),
            text: completion.text.trim().to_owned(),
            tokens: completion.completion_tokens,
            relevance: 0.0,
        });
    }
    // Relevance and the answer's vector, for the metric: one batch, after the minds.
    let embedder = memory.embedder()?;
    let mut texts: Vec<&str> = vec![question];
    texts.extend(turns.iter().map(|t| t.text.as_str()));
    let vectors = routing::embed(embedder.as_ref(), &texts)?;
    for (turn, vector) in turns.iter_mut().zip(vectors.iter().skip(1)) {
        turn.relevance = routing::cosine(&vectors[0], vector);
    }
    let answer_vector = vectors.last().cloned().unwrap_or_default();
    let model_id = embedder.model_id().to_owned();
    let started = ask.now_ms;
    let (id, oid) = rt
        .transact(&format!("dialogue: {}", crate::heartbeat::shorten(question, 60)), |cx| {
            let tx = cx.tx_mut("keep a dialogue")?;
            let (id, oid) = record(tx, question, &turns, &sources, &decision, started)?;
            tx.set_slot(oid, "answerVector", &batos_memory::store::encode_vector(&answer_vector))?;
            tx.set_slot(oid, "vectorModel", &Value::Text(model_id.clone()))?;
            if gap {
                crate::ether::deposit(
                    tx,
                    crate::ether::KNOWLEDGE_GAP,
                    1.0,
                    &format!("{id}: {}", crate::heartbeat::shorten(question, 200)),
                    crate::now_ms(),
                )?;
            }
            Ok((id, oid))
        })?
        .value;
    Ok(Dialogue { id, oid, question: question.to_owned(), turns, sources, decision, memory_note })
}

/// What `speaker` is told: its system prompt and codex; the question with the passages;
/// and, after the first, what the earlier personas said and how to answer having read
/// them.
pub fn prompt(
    speaker: &Persona,
    question: &str,
    sources: &[Source],
    earlier: &[Turn],
    speakers: &[Persona],
) -> Vec<Message> {
    let mut system = speaker.system_message();
    if !sources.is_empty() {
        system.push_str("\n\nCite the passages you use by their number, like [1].");
    }
    let mut user = format!("Question: {question}");
    if !sources.is_empty() {
        user.push_str("\n\nPassages from the memory:");
        for s in sources {
            user.push_str(&format!("\n[{}] ({}) {}", s.n, s.source, s.text));
        }
    }
    for turn in earlier {
        user.push_str(&format!("\n\n{} answered:\n{}", turn.name, turn.text));
    }
    if let Some(last) = earlier.last() {
        let others: Vec<&str> = speakers
            .iter()
            .filter(|p| earlier.iter().any(|t| t.persona == p.key))
            .map(|p| p.name.as_str())
            .collect();
        user.push_str(&format!(
            "\n\nYou answer after {}, having read {}. Say what you keep from {}'s answer, what you add or change and why, and refer to {} by name. Answer in a few sentences.",
            others.join(" and "),
            if others.len() > 1 { "them" } else { "it" },
            last.name,
            last.name
        ));
    } else {
        user.push_str("\n\nAnswer in a few sentences.");
    }
    vec![Message::system(system), Message::user(user)]
}

fn record(
    tx: &mut Tx<'_>,
    question: &str,
    turns: &[Turn],
    sources: &[Source],
    decision: &Decision,
    started: i64,
) -> Result<(String, Oid)> {
    let reg =
        crate::runtime::registry_root(tx, DIALOGUES_ROOT, "Every conversation with the personas.")?;
    let n = match tx.slot(reg, "next")? {
        Some(Value::Int(n)) => n,
        _ => 1,
    };
    tx.set_slot(reg, "next", &Value::Int(n + 1))?;
    let id = format!("d{n}");
    let parents: Vec<Oid> = tx.root(crate::runtime::PRIMORDIAL_TRAITS)?.into_iter().collect();
    let oid = tx.create_object(&parents)?;
    let turns_value = Value::List(
        turns
            .iter()
            .map(|t| {
                Value::Map(BTreeMap::from([
                    ("persona".to_owned(), Value::Text(t.persona.clone())),
                    ("name".to_owned(), Value::Text(t.name.clone())),
                    ("text".to_owned(), Value::Text(t.text.clone())),
                    ("tokens".to_owned(), t.tokens.map_or(Value::Nil, |n| Value::Int(n as i64))),
                    ("relevance".to_owned(), Value::Float(t.relevance)),
                ]))
            })
            .collect(),
    );
    let sources_value = Value::List(
        sources
            .iter()
            .map(|s| {
                Value::Map(BTreeMap::from([
                    ("n".to_owned(), Value::Int(s.n as i64)),
                    ("source".to_owned(), Value::Text(s.source.clone())),
                    ("text".to_owned(), Value::Text(s.text.clone())),
                    ("fractal".to_owned(), Value::Object(s.fractal)),
                ]))
            })
            .collect(),
    );
    let slots = [
        ("id", Value::Text(id.clone())),
        ("question", Value::Text(question.to_owned())),
        ("turns", turns_value),
        ("sources", sources_value),
        ("routing", decision.to_value()),
        ("startedMs", Value::Int(started)),
        ("endedMs", Value::Int(crate::now_ms())),
    ];
    for (name, value) in slots {
        tx.set_slot(oid, name, &value)?;
    }
    tx.set_slot(reg, &id, &Value::Object(oid))?;
    Ok((id, oid))
}

/// Every dialogue: `(id, object)`, oldest first.
pub fn list(tx: &Tx<'_>) -> Result<Vec<(String, Oid)>> {
    let Some(reg) = tx.root(DIALOGUES_ROOT)? else { return Ok(vec![]) };
    crate::runtime::numbered_entries(tx, reg, "d")
}
