//! The Alchemical Crucible's reviewers: BRICK for logic, ALFRED for safety and fit
//! (seeds 003: the red team and the pragmatic audit). Each reads a candidate that has
//! passed its cases — its purpose, code and what it answered — and says `APPROVE` or
//! `REJECT: ARGS => ANSWER because …`, naming an input on which the code is wrong and
//! the answer it should give; the answer is held to that shape while it is sampled (a
//! small model asked for a verdict otherwise writes an essay). The synthesis layer runs
//! the counterexample and sends the candidate back only if it fails it; any objection
//! leaves a `logical_inconsistency` pheromone in the ether.
//!
//! On when `personas.crucible` is `true`; off by default.

use std::sync::Arc;

use batos_mind::{Constraint, Message, Minds, Prefix, Sampling};
use batos_synthesis::crucible::{Critic, Critique, Work};

use crate::image::Value;
use crate::persona;
use crate::runtime::Runtime;
use crate::{Error, Result};

/// Who reviews, and what each looks for.
pub const REVIEWERS: [(&str, &str); 2] = [
    (
        "brick",
        "You check the logic: does the code compute what the purpose asks for every input, not only the cases shown, and are the answers shown right?",
    ),
    (
        "alfred",
        "You check safety and fit: does it do what was asked and nothing else, without special-casing the cases shown, and would a caller expect its name, types and answers?",
    ),
];

/// The longest reason a reviewer may give, in bytes.
const MAX_REASON: usize = 400;

/// The personas as reviewers of `rt`'s candidates.
pub struct PersonaCritic {
    rt: Arc<Runtime>,
    minds: Minds,
}

impl PersonaCritic {
    /// Reviewers thinking with the minds their persona objects name.
    pub fn new(rt: Arc<Runtime>, minds: Minds) -> PersonaCritic {
        PersonaCritic { rt, minds }
    }

    /// A critic when `personas.crucible` is `true`, else `None`.
    pub fn if_enabled(rt: &Arc<Runtime>, minds: &Minds) -> Result<Option<Arc<dyn Critic>>> {
        let on = rt.view(|cx| {
            let tx = cx.tx();
            Ok(match tx.root(persona::PERSONAS_ROOT)? {
                Some(root) => tx.slot(root, "crucible")? == Some(Value::Bool(true)),
                None => false,
            })
        })?;
        Ok(on.then(|| Arc::new(PersonaCritic::new(rt.clone(), minds.clone())) as Arc<dyn Critic>))
    }
}

/// `APPROVE`, or `REJECT: ` and a reason ending at a line break or [`MAX_REASON`].
pub fn verdict_constraint() -> Constraint {
    Constraint::new(
        |text| {
            let t = text.trim_start();
            if t.is_empty()
                || "APPROVE".starts_with(t) && t != "APPROVE"
                || "REJECT: ".starts_with(t)
            {
                return Prefix::Open;
            }
            if t == "APPROVE" {
                return Prefix::Complete;
            }
            match t.strip_prefix("REJECT: ") {
                Some(reason)
                    if reason.trim().len() >= 3
                        && (reason.ends_with('\n') || reason.len() >= MAX_REASON) =>
                {
                    Prefix::Complete
                }
                Some(reason) if reason.len() < MAX_REASON => Prefix::Open,
                _ => Prefix::Dead,
            }
        },
        None,
    )
}

/// Reads a verdict: `REJECT: ARGS => ANSWER because REASON` objects with a
/// counterexample (`REJECT: …` whose first part is not `ARGS => ANSWER` in JSON objects
/// without one); `APPROVE` (or anything else, recorded as unclear) approves.
pub fn parse_verdict(reviewer: &str, answer: &str) -> Critique {
    let t = answer.trim();
    let upper = t.to_ascii_uppercase();
    let critique = |approves: bool, reason: &str, counterexample| Critique {
        reviewer: reviewer.to_owned(),
        approves,
        reason: reason.to_owned(),
        counterexample,
    };
    if upper.starts_with("REJECT") {
        let rest = t.get(6..).unwrap_or("").trim_start_matches([':', ' ']).trim();
        let (case, why) = match rest.split_once(" because ") {
            Some((case, why)) => (case.trim(), why.trim()),
            None => (rest, ""),
        };
        match batos_synthesis::Example::parse(case) {
            Ok(example) => critique(false, if why.is_empty() { case } else { why }, Some(example)),
            Err(_) => critique(false, if rest.is_empty() { "no reason given" } else { rest }, None),
        }
    } else if upper.starts_with("APPROVE") {
        critique(true, "approved", None)
    } else {
        critique(
            true,
            &format!("unclear, taken as approval: {}", crate::heartbeat::shorten(t, 200)),
            None,
        )
    }
}

/// What a reviewer is asked.
pub fn prompt(system: &str, focus: &str, work: &Work<'_>) -> Vec<Message> {
    let mut user = format!(
        "Review this method before it is installed.\nSelector: {}\nPurpose: {}\nSignature: {}\nCode:\n```rust\n{}\n```\nWhat it answered:",
        work.selector, work.purpose, work.signature, work.code
    );
    for (args, answer) in &work.answers {
        user.push_str(&format!("\n  {args} => {answer}"));
    }
    user.push_str(&format!(
        "\n\n{focus}\nAnswer APPROVE if it does what the purpose asks. Otherwise answer REJECT: then one input on which it answers wrongly and the answer it should give, in the same form as the lines above (ARGS => ANSWER, as JSON values), then the word because and the reason."
    ));
    vec![Message::system(system.to_owned()), Message::user(user)]
}

impl Critic for PersonaCritic {
    fn review(&self, work: &Work<'_>) -> Result<Vec<Critique>> {
        let reviewers: Vec<(persona::Persona, &str)> = self.rt.view(|cx| {
            let all = persona::all(cx.tx())?;
            Ok(REVIEWERS
                .iter()
                .filter_map(|(key, focus)| {
                    all.iter().find(|p| p.key == *key).map(|p| (p.clone(), *focus))
                })
                .collect())
        })?;
        let mut critiques = Vec::new();
        for (reviewer, focus) in reviewers {
            let mind = self.minds.mind_for(&self.rt, reviewer.oid)?;
            let sampling = Sampling {
                max_tokens: 120,
                constraint: Some(verdict_constraint()),
                ..Sampling::default()
            };
            let answer = mind
                .complete(&prompt(&reviewer.system, focus, work), &sampling, &mut |_| {})
                .map_err(|e| {
                    Error::MindUnavailable(format!("{} could not review: {e}", reviewer.name))
                })?;
            critiques.push(parse_verdict(&reviewer.name, &answer.text));
        }
        let objections = batos_synthesis::crucible::objections(&critiques);
        if !objections.is_empty() {
            let note = format!("`{}` sent back: {objections}", work.selector);
            self.rt.transact("the crucible leaves a pheromone", |cx| {
                crate::ether::deposit(
                    cx.tx_mut("deposit a pheromone")?,
                    crate::ether::LOGICAL_INCONSISTENCY,
                    1.0,
                    &note,
                    crate::now_ms(),
                )
            })?;
        }
        Ok(critiques)
    }
}
