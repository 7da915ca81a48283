//! One beat of the autotelic heartbeat (seeds 002 and 004): measure the Composite
//! Entropy Metric over the window; when it has stayed below `threshold` for
//! `stagnantBeats` beats in a row, act — within a budget — to raise it; keep the beat.
//!
//! The act answers the weakest term (the one with the largest weighted shortfall
//! `w·(1 − H)`), as the seeds' "diagnoses the source of the low entropy":
//!
//! | weakest  | act                                                                    |
//! |----------|------------------------------------------------------------------------|
//! | H_struc  | synthesise again the latest message whose cycle failed in the window and has not been retried; if none, a goal BRICK sets itself (the gadget mandate) |
//! | H_cog    | a goal set by the persona used least in the window                      |
//! | H_sol    | a goal set by the persona used least, told what exists so it proposes something new |
//! | H_rel    | compress the memory (concepts give answers something to stand on)       |
//!
//! A goal is one sentence a persona writes ("create a method on genesis that …"); the
//! actor pursues it as an ordinary request — words into a message, then a send, which
//! synthesises — so it is recorded, journalled and undoable like anything a person does.
//!
//! **Budget**: at most `actionsPerHour` acts in any hour and `tokensPerDay` tokens in any
//! day (counted from the acts' records); a beat over budget records why it did not
//! act. **Off switch**: `enabled` false makes a beat do nothing at all — no metric, no
//! write. Everything is a slot of the root `heartbeat`.
//!
//! Who acts is the caller's: the kernel implements [`Actor`] with its executor and owns
//! the clock; this module decides and records.

use std::collections::BTreeMap;

use batos_mind::{Embedder, Message, Minds, Sampling};

use crate::cem::{self, Cem, Weights};
use crate::image::{Oid, Tx, Value};
use crate::{Error, Result};

/// The root of the heartbeat's settings and record.
pub const HEARTBEAT_ROOT: &str = "heartbeat";

/// Beats kept (`beats`): two days at the default interval.
pub const MAX_BEATS: usize = 288;

/// Acts kept (`acts`): the budget needs a day's; more is history.
pub const MAX_ACTS: usize = 200;

/// The heartbeat's settings as its slots say.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Whether beats do anything.
    pub enabled: bool,
    /// Seconds between beats (the kernel reads it before each wait).
    pub interval_s: u64,
    /// The window the metric is computed over, in seconds.
    pub window_s: u64,
    /// Below this the metric counts as stagnant.
    pub threshold: f64,
    /// Stagnant beats in a row before acting.
    pub stagnant_beats: i64,
    /// Acts allowed in any hour.
    pub actions_per_hour: usize,
    /// Tokens the acts may spend in any day.
    pub tokens_per_day: u64,
    /// The metric's weights.
    pub weights: Weights,
    /// The growth expected per window (H_struc's `g`).
    pub expected_growth: f64,
}

pub(crate) fn ensure(tx: &mut Tx<'_>) -> Result<()> {
    if tx.root(HEARTBEAT_ROOT)?.is_some() {
        return Ok(());
    }
    let root = crate::runtime::registry_root(
        tx,
        HEARTBEAT_ROOT,
        "The autotelic heartbeat: every `intervalSeconds` it computes the Composite Entropy Metric over `windowSeconds`; below `threshold` for `stagnantBeats` beats it acts, at most `actionsPerHour` acts and `tokensPerDay` tokens. `enabled` is its off switch; `beats` and `acts` its record.",
    )?;
    let weights = Weights::default();
    let slots = [
        ("enabled", Value::Bool(true)),
        // Ten minutes: the metric moves with conversations and cycles, which take
        // minutes; beating faster only repeats the same number.
        ("intervalSeconds", Value::Int(600)),
        // An hour of activity: long enough to hold a few exchanges, short enough that
        // yesterday's burst does not hide today's stagnation.
        ("windowSeconds", Value::Int(3600)),
        // A quarter: one persona answering, nothing new installed, scores about 0.1–0.2;
        // a dialogue of two with a new method scores above 0.5.
        ("threshold", Value::Float(0.25)),
        // Three beats (half an hour): one quiet beat is a pause, not stagnation.
        ("stagnantBeats", Value::Int(3)),
        // One act an hour and 4,000 tokens a day: an idle machine's own initiative
        // must cost little and never crowd out the person's work.
        ("actionsPerHour", Value::Int(1)),
        ("tokensPerDay", Value::Int(4000)),
        (
            "weights",
            Value::Map(BTreeMap::from([
                ("cog".to_owned(), Value::Float(weights.cog)),
                ("sol".to_owned(), Value::Float(weights.sol)),
                ("struc".to_owned(), Value::Float(weights.struc)),
                ("rel".to_owned(), Value::Float(weights.rel)),
            ])),
        ),
        ("expectedGrowth", Value::Float(2.0)),
        ("beats", Value::List(vec![])),
        ("acts", Value::List(vec![])),
        ("stagnant", Value::Int(0)),
        ("beat", Value::Int(0)),
    ];
    for (name, value) in slots {
        tx.set_slot(root, name, &value)?;
    }
    Ok(())
}

fn root(tx: &Tx<'_>) -> Result<Oid> {
    tx.root(HEARTBEAT_ROOT)?.ok_or_else(|| {
        Error::not_found(
            "root",
            HEARTBEAT_ROOT,
            "an image made before the heartbeat gets it when a kernel opens it",
        )
    })
}

fn int_slot(tx: &Tx<'_>, oid: Oid, name: &str, default: i64) -> Result<i64> {
    Ok(match tx.slot(oid, name)? {
        Some(Value::Int(n)) => n,
        Some(Value::Float(f)) => f as i64,
        _ => default,
    })
}

/// The settings (a slot of the wrong type falls back to its default, except `enabled`:
/// anything but `true` is off).
pub fn settings(tx: &Tx<'_>) -> Result<Settings> {
    let root = root(tx)?;
    let float = |name: &str, default: f64| -> Result<f64> {
        Ok(crate::number(tx.slot(root, name)?.as_ref()).unwrap_or(default))
    };
    let defaults = Weights::default();
    let weights = match tx.slot(root, "weights")? {
        Some(Value::Map(w)) => Weights {
            cog: crate::number(w.get("cog")).unwrap_or(defaults.cog),
            sol: crate::number(w.get("sol")).unwrap_or(defaults.sol),
            struc: crate::number(w.get("struc")).unwrap_or(defaults.struc),
            rel: crate::number(w.get("rel")).unwrap_or(defaults.rel),
        },
        _ => defaults,
    };
    Ok(Settings {
        enabled: tx.slot(root, "enabled")? == Some(Value::Bool(true)),
        interval_s: u64::try_from(int_slot(tx, root, "intervalSeconds", 600)?)
            .unwrap_or(600)
            .max(1),
        window_s: u64::try_from(int_slot(tx, root, "windowSeconds", 3600)?).unwrap_or(3600).max(1),
        threshold: float("threshold", 0.25)?,
        stagnant_beats: int_slot(tx, root, "stagnantBeats", 3)?.max(1),
        actions_per_hour: usize::try_from(int_slot(tx, root, "actionsPerHour", 1)?).unwrap_or(0),
        tokens_per_day: u64::try_from(int_slot(tx, root, "tokensPerDay", 4000)?).unwrap_or(0),
        weights,
        expected_growth: float("expectedGrowth", 2.0)?,
    })
}

/// A message whose cycle failed: what a retry sends again.
#[derive(Clone, Debug, PartialEq)]
pub struct FailedMessage {
    /// The cycle that failed.
    pub cycle: String,
    /// The receiver.
    pub receiver: Oid,
    /// The selector.
    pub selector: String,
    /// The arguments.
    pub args: Vec<Value>,
    /// The brief, if one was given.
    pub brief: Option<String>,
}

/// What the heartbeat decided to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Act {
    /// Synthesise a failed message again.
    Resynthesize(FailedMessage),
    /// Compress the memory.
    Compress,
    /// Pursue a goal a persona set.
    Pursue {
        /// The persona's key.
        persona: String,
        /// The goal, in its words.
        goal: String,
    },
}

impl Act {
    /// Its kind as recorded.
    pub fn kind(&self) -> &'static str {
        match self {
            Act::Resynthesize(_) => "resynthesize",
            Act::Compress => "compress",
            Act::Pursue { .. } => "pursue",
        }
    }

    /// One line saying what it is.
    pub fn describe(&self) -> String {
        match self {
            Act::Resynthesize(m) => format!(
                "synthesise `{}` on {} again (cycle {} failed)",
                m.selector, m.receiver, m.cycle
            ),
            Act::Compress => "compress the memory".to_owned(),
            Act::Pursue { persona, goal } => format!("{persona}'s goal: {goal}"),
        }
    }
}

/// What an act did, as the actor reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Done {
    /// Whether it succeeded.
    pub ok: bool,
    /// What happened, in one line.
    pub summary: String,
    /// Tokens the minds spent on it (the actor's count, added to the goal's).
    pub tokens: u64,
    /// The transactions it committed: each can be undone (`batos undo TX`).
    pub transactions: Vec<u64>,
}

/// Who carries out the heartbeat's acts: the kernel, with a person's executor.
pub trait Actor {
    /// Sends `message` again, synthesising it.
    fn resynthesize(&self, message: &FailedMessage) -> Done;
    /// Compresses the memory once.
    fn compress(&self) -> Done;
    /// Turns `goal` into a message and sends it.
    fn pursue(&self, goal: &str) -> Done;
}

/// One beat as kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Beat {
    /// Its number (from 1).
    pub n: i64,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// The metric.
    pub cem: Cem,
    /// Stagnant beats in a row, this one included (0 after an act).
    pub stagnant: i64,
    /// What it did, if it acted.
    pub act: Option<Act>,
    /// How the act went.
    pub done: Option<Done>,
    /// Why it did not act although stagnant (the budget), or why it did nothing at all
    /// (`off`).
    pub note: String,
}

impl Beat {
    /// The beat as `beats` keeps it.
    pub fn to_value(&self) -> Value {
        let mut map = match self.cem.to_value() {
            Value::Map(m) => m,
            _ => BTreeMap::new(),
        };
        map.insert("beat".to_owned(), Value::Int(self.n));
        map.insert("atMs".to_owned(), Value::Int(self.at_ms));
        map.insert("stagnant".to_owned(), Value::Int(self.stagnant));
        map.insert(
            "act".to_owned(),
            self.act.as_ref().map_or(Value::Nil, |a| Value::Text(a.kind().into())),
        );
        map.insert("note".to_owned(), Value::Text(self.note.clone()));
        Value::Map(map)
    }
}

/// Text cut to `max` characters, with an ellipsis when cut.
pub fn shorten(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// The maps a list slot of the heartbeat holds (its `beats` or its `acts`).
fn records(tx: &Tx<'_>, root: Oid, slot: &str) -> Result<Vec<BTreeMap<String, Value>>> {
    Ok(match tx.slot(root, slot)? {
        Some(Value::List(items)) => items
            .into_iter()
            .filter_map(|v| if let Value::Map(m) = v { Some(m) } else { None })
            .collect(),
        _ => vec![],
    })
}

/// What the heartbeat has done: its record of acts.
fn acts(tx: &Tx<'_>, root: Oid) -> Result<Vec<BTreeMap<String, Value>>> {
    records(tx, root, "acts")
}

/// Why the budget forbids an act at `now_ms`, or `None` when it allows one.
pub fn over_budget(
    settings: &Settings,
    acts: &[BTreeMap<String, Value>],
    now_ms: i64,
) -> Option<String> {
    let at = |a: &BTreeMap<String, Value>| match a.get("atMs") {
        Some(Value::Int(t)) => *t,
        _ => 0,
    };
    let last_hour = acts.iter().filter(|a| now_ms - at(a) < 3_600_000).count();
    if last_hour >= settings.actions_per_hour {
        return Some(format!(
            "over budget: {last_hour} act(s) in the last hour, {} allowed (`actionsPerHour`)",
            settings.actions_per_hour
        ));
    }
    let tokens: u64 = acts
        .iter()
        .filter(|a| now_ms - at(a) < 86_400_000)
        .map(|a| match a.get("tokens") {
            Some(Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        })
        .sum();
    if tokens >= settings.tokens_per_day {
        return Some(format!(
            "over budget: {tokens} tokens in the last day, {} allowed (`tokensPerDay`)",
            settings.tokens_per_day
        ));
    }
    None
}

/// Which term is weakest: the largest `w·(1 − H)`.
pub fn weakest(cem: &Cem, weights: &Weights) -> &'static str {
    let terms = [
        ("struc", weights.struc * (1.0 - cem.h_struc)),
        ("cog", weights.cog * (1.0 - cem.h_cog)),
        ("sol", weights.sol * (1.0 - cem.h_sol)),
        ("rel", weights.rel * (1.0 - cem.h_rel)),
    ];
    terms.iter().fold(terms[0], |best, t| if t.1 > best.1 { *t } else { best }).0
}

/// The latest message whose cycle failed since `since_ms` and that no act retried.
fn failed_message(
    rt: &crate::runtime::Runtime,
    since_ms: i64,
    retried: &[String],
) -> Result<Option<FailedMessage>> {
    let cycles = batos_synthesis::cycle::list(rt)?;
    rt.view(|cx| {
        let tx = cx.tx();
        for (id, oid) in cycles.iter().rev() {
            let slots = tx.slots(*oid)?;
            let failed = crate::text(slots.get("state")).as_deref() == Some("FAILED");
            let updated = match slots.get("updatedMs") {
                Some(Value::Int(t)) => *t,
                _ => 0,
            };
            if updated < since_ms {
                break;
            }
            if !failed || retried.contains(id) {
                continue;
            }
            let (Some(Value::Object(receiver)), Some(selector)) =
                (slots.get("receiver"), crate::text(slots.get("selector")))
            else {
                continue;
            };
            let args = match slots.get("args") {
                Some(Value::List(a)) => a.clone(),
                _ => vec![],
            };
            return Ok(Some(FailedMessage {
                cycle: id.clone(),
                receiver: *receiver,
                selector,
                args,
                brief: crate::text(slots.get("brief")),
            }));
        }
        Ok(None)
    })
}

/// The persona used least in `uses` (ties: the first by key).
fn least_used(keys: &[String], uses: &BTreeMap<String, usize>) -> String {
    keys.iter()
        .min_by_key(|k| uses.get(*k).copied().unwrap_or(0))
        .cloned()
        .unwrap_or_else(|| "brick".to_owned())
}

/// Asks `persona` for a goal: one sentence starting "create a method". Answers the
/// goal and the tokens spent.
pub fn ask_goal(
    rt: &crate::runtime::Runtime,
    minds: &Minds,
    persona: &str,
    cem: &Cem,
) -> Result<(String, u64)> {
    let (speaker, roots) = rt.view(|cx| {
        let tx = cx.tx();
        let roots: Vec<String> = tx.roots()?.into_keys().collect();
        Ok((crate::persona::find(tx, persona)?, roots))
    })?;
    let known: Vec<String> =
        batos_synthesis::skills::all(rt)?.into_iter().map(|s| s.selector).take(40).collect();
    let user = format!(
        "batos has been idle and its Composite Entropy Metric is low ({:.2}: diversity {:.2}, novelty {:.2}, growth {:.2}, relevance {:.2}). Its objects: {}. Methods it already has: {}.\n\nPropose one new, small method batos could write for itself, as one sentence that starts with \"create a method on genesis that\" and says what it answers. Propose something it does not have.",
        cem.value,
        cem.h_cog,
        cem.h_sol,
        cem.h_struc,
        cem.h_rel,
        roots.join(", "),
        if known.is_empty() { "none yet".to_owned() } else { known.join(", ") }
    );
    let mind = minds.mind_for(rt, speaker.oid)?;
    let sampling =
        Sampling { max_tokens: 60, stop: vec!["\n".to_owned()], ..speaker.sampling.clone() };
    let answer = mind
        .complete(
            &[Message::system(speaker.system_message()), Message::user(user)],
            &sampling,
            &mut |_| {},
        )
        .map_err(|e| {
            Error::MindUnavailable(format!("{} could not set a goal: {e}", speaker.name))
        })?;
    let goal = answer.text.trim().trim_matches('"').trim().to_owned();
    if goal.is_empty() {
        return Err(Error::Failed(format!("{} set no goal", speaker.name)));
    }
    let tokens = answer.completion_tokens.unwrap_or(goal.len() / 4) as u64
        + answer.prompt_tokens.unwrap_or(0) as u64;
    Ok((goal, tokens))
}

/// The window ending at `now_ms` that `settings` describe, and its metric: what a beat
/// and `batos cem` measure.
pub fn measure(
    rt: &crate::runtime::Runtime,
    embedder: &dyn Embedder,
    settings: &Settings,
    now_ms: i64,
) -> Result<(cem::Window, Cem)> {
    let since = now_ms
        .saturating_sub(i64::try_from(settings.window_s.saturating_mul(1000)).unwrap_or(i64::MAX));
    let window = cem::observe(rt, embedder, since, now_ms + 1, settings.expected_growth)?;
    let metric = cem::compute(&window, &settings.weights);
    Ok((window, metric))
}

/// One beat at `now_ms`: measure, decide, act through `actor`, keep the beat (and the
/// act) in one transaction after the act's own.
pub fn beat(
    rt: &crate::runtime::Runtime,
    minds: &Minds,
    embedder: &dyn Embedder,
    actor: &dyn Actor,
    now_ms: i64,
) -> Result<Beat> {
    let (settings, previous, n, past_acts) = rt.view(|cx| {
        let tx = cx.tx();
        let root = root(tx)?;
        Ok((settings(tx)?, int_slot(tx, root, "stagnant", 0)?, next_beat(tx)?, acts(tx, root)?))
    })?;
    if !settings.enabled {
        return Ok(Beat {
            n: n - 1,
            at_ms: now_ms,
            cem: Cem::default(),
            stagnant: previous,
            act: None,
            done: None,
            note: "off: `heartbeat enabled` is not true".to_owned(),
        });
    }
    let (window, cem) = measure(rt, embedder, &settings, now_ms)?;
    let since = window.since_ms;
    let stagnant = if cem.value < settings.threshold { previous + 1 } else { 0 };
    let mut beat =
        Beat { n, at_ms: now_ms, cem, stagnant, act: None, done: None, note: String::new() };
    if stagnant >= settings.stagnant_beats {
        if let Some(why) = over_budget(&settings, &past_acts, now_ms) {
            beat.note = why;
        } else {
            let retried: Vec<String> =
                past_acts.iter().filter_map(|a| crate::text(a.get("cycle"))).collect();
            let keys: Vec<String> = rt.view(|cx| {
                Ok(crate::persona::all(cx.tx())?.into_iter().map(|p| p.key).collect())
            })?;
            let term = weakest(&cem, &settings.weights);
            let chosen = match term {
                "rel" => Ok((Act::Compress, 0)),
                "struc" => match failed_message(rt, since, &retried)? {
                    Some(message) => Ok((Act::Resynthesize(message), 0)),
                    None => ask_goal(rt, minds, "brick", &cem)
                        .map(|(goal, t)| (Act::Pursue { persona: "brick".into(), goal }, t)),
                },
                _ => {
                    let persona = least_used(&keys, &window.uses);
                    ask_goal(rt, minds, &persona, &cem)
                        .map(|(goal, t)| (Act::Pursue { persona, goal }, t))
                }
            };
            let (act, done) = match chosen {
                Ok((act, goal_tokens)) => {
                    let mut done = match &act {
                        Act::Resynthesize(m) => actor.resynthesize(m),
                        Act::Compress => actor.compress(),
                        Act::Pursue { goal, .. } => actor.pursue(goal),
                    };
                    done.tokens += goal_tokens;
                    (Some(act), done)
                }
                Err(e) => (None, Done { ok: false, summary: e.to_string(), ..Done::default() }),
            };
            beat.note = format!("weakest term: H_{term}");
            beat.stagnant = 0;
            beat.act = act;
            beat.done = Some(done);
        }
    }
    keep(rt, &beat)?;
    Ok(beat)
}

/// Keeps a beat (and its act) in the heartbeat's record.
fn keep(rt: &crate::runtime::Runtime, beat: &Beat) -> Result<()> {
    rt.transact(&format!("heartbeat {}", beat.n), |cx| {
        let tx = cx.tx_mut("keep a heartbeat")?;
        let root = root(tx)?;
        let mut beats: Vec<Value> =
            records(tx, root, "beats")?.into_iter().map(Value::Map).collect();
        beats.push(beat.to_value());
        let excess = beats.len().saturating_sub(MAX_BEATS);
        beats.drain(..excess);
        tx.set_slot(root, "beats", &Value::List(beats))?;
        tx.set_slot(root, "beat", &Value::Int(beat.n))?;
        tx.set_slot(root, "stagnant", &Value::Int(beat.stagnant))?;
        if let Some(done) = &beat.done {
            let mut record = BTreeMap::from([
                ("beat".to_owned(), Value::Int(beat.n)),
                ("atMs".to_owned(), Value::Int(beat.at_ms)),
                (
                    "kind".to_owned(),
                    beat.act
                        .as_ref()
                        .map_or(Value::Text("none".into()), |a| Value::Text(a.kind().into())),
                ),
                (
                    "what".to_owned(),
                    Value::Text(beat.act.as_ref().map_or_else(String::new, Act::describe)),
                ),
                ("ok".to_owned(), Value::Bool(done.ok)),
                ("summary".to_owned(), Value::Text(shorten(&done.summary, 1000))),
                ("tokens".to_owned(), Value::Int(i64::try_from(done.tokens).unwrap_or(i64::MAX))),
                (
                    "transactions".to_owned(),
                    Value::List(done.transactions.iter().map(|t| Value::Int(*t as i64)).collect()),
                ),
            ]);
            if let Some(Act::Resynthesize(m)) = &beat.act {
                record.insert("cycle".to_owned(), Value::Text(m.cycle.clone()));
            }
            if let Some(Act::Pursue { persona, goal }) = &beat.act {
                record.insert("persona".to_owned(), Value::Text(persona.clone()));
                record.insert("goal".to_owned(), Value::Text(goal.clone()));
            }
            let mut all = acts(tx, root)?.into_iter().map(Value::Map).collect::<Vec<_>>();
            all.push(Value::Map(record));
            let excess = all.len().saturating_sub(MAX_ACTS);
            all.drain(..excess);
            tx.set_slot(root, "acts", &Value::List(all))?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The number the next beat will have (the counter, not the count of beats kept: only
/// the last [`MAX_BEATS`] are kept).
pub fn next_beat(tx: &Tx<'_>) -> Result<i64> {
    Ok(int_slot(tx, root(tx)?, "beat", 0)? + 1)
}

/// The beats kept, oldest first.
pub fn beats(tx: &Tx<'_>) -> Result<Vec<BTreeMap<String, Value>>> {
    records(tx, root(tx)?, "beats")
}

/// The acts kept, oldest first.
pub fn acts_kept(tx: &Tx<'_>) -> Result<Vec<BTreeMap<String, Value>>> {
    acts(tx, root(tx)?)
}
