//! # batos-synthesis
//!
//! The synthesis layer: a message nobody understands becomes a [`cycle`] in which the
//! mind writes the missing method, the host builds, audits and proves it, installs it,
//! and sends the message again — which then succeeds, today and after every restart,
//! without the mind.
//!
//! It sees the mind only through `batos-mind`'s [`Mind`] trait (any backend, never
//! ONNX Runtime), builds through `batos-sandbox` (cargo, sealed; `syn` and `rustfix` for
//! the candidate's source) and proves on the runtime; nothing else.
//!
//! [`Synthesizer::send`] is the door: it sends; when the receiver does not understand
//! the selector, it runs a cycle *outside* any image transaction (the mind and the
//! compiler take seconds), commits each state change on its own, installs in one
//! short transaction, and re-sends. Only a top-level `doesNotUnderstand` starts a cycle:
//! one raised deeper inside a method is that method's error.
//!
//! Policies, written down:
//! - A candidate is installed only once it builds, passes the audit with no grants, and
//!   passes every example in a transaction that is always rolled back, on a clone of
//!   the receiver. Examples the caller gives must all pass. Examples the mind proposes
//!   (when the caller gives none) steer repair rounds, but a candidate that still fails
//!   one in the last round is installed if everything else passes; the cycle records
//!   the unconfirmed cases.
//! - Proving also runs the real arguments on the clone: a candidate that traps there is
//!   not installed. If the re-send of the original message still fails afterwards
//!   (state differs from the clone's), the method stays installed — it was verified —
//!   and the caller gets that error.
//! - Concurrent sends of one unknown selector to one object in this process share one
//!   cycle: the later ones wait for it and then re-send.

pub mod candidate;
pub mod cycle;
mod flight;
mod install;
pub mod journal;
pub mod prompt;
mod request;
mod running;
pub mod seal;
pub mod skills;
mod text;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use batos_image as image;
use batos_image::error;
use batos_mind as mind;
use batos_runtime as runtime;
use batos_sandbox as sandbox;

pub use request::{starts_cycle, Event, Example, Language, Options, Outcome, Request};

use crate::error::{Error, Result};
use crate::image::Value;
use crate::mind::{Message, Mind, Sampling};
use crate::runtime::Runtime;
use crate::sandbox::Sandbox;
use candidate::{Signature, Type, Workspace};
use cycle::State;
use flight::{Flights, Role};
use install::{Installer, Proven};
use journal::Journal;
use running::Running;
use text::truncate;
use validate::Prover;

/// Runs synthesis cycles for one image.
pub struct Synthesizer {
    rt: Arc<Runtime>,
    sandbox: Arc<Sandbox>,
    mind: Arc<dyn Mind>,
    workspace: Workspace,
    journal: Journal,
    options: Options,
    flights: Flights,
}

impl Synthesizer {
    /// A synthesizer thinking with `mind`, building in the workspace at `workspace`.
    /// Cycles an earlier process left unfinished are marked FAILED at the first
    /// synthesizer of an awakening (see [`cycle::recover`]).
    pub fn new(
        rt: Arc<Runtime>,
        sandbox: Arc<Sandbox>,
        mind: Arc<dyn Mind>,
        workspace: &Path,
        options: Options,
    ) -> Result<Synthesizer> {
        let workspace = Workspace::open(workspace)?;
        let journal = Journal::new(rt.image().path());
        for id in cycle::recover(&rt)? {
            journal.append(json!({ "cycle": id, "state": "FAILED", "outcome": "interrupted" }));
        }
        Ok(Synthesizer {
            rt,
            sandbox,
            mind,
            workspace,
            journal,
            options,
            flights: Flights::default(),
        })
    }

    /// The metacognition journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Sends the message; when it is not understood, synthesises the method and sends
    /// it again. `observe` sees the cycle's events as they happen.
    pub fn send(&self, request: &Request, observe: &(dyn Fn(&Event) + Sync)) -> Result<Value> {
        match self.rt.send(request.receiver, &request.selector, request.args.clone()) {
            Err(e) if starts_cycle(request, &e) => {}
            other => return other,
        }
        self.synthesize(request, observe)?;
        self.rt.send(request.receiver, &request.selector, request.args.clone())
    }

    /// Runs (or waits for) the cycle that makes `request`'s receiver understand its
    /// selector.
    pub fn synthesize(&self, request: &Request, observe: &(dyn Fn(&Event) + Sync)) -> Result<()> {
        if candidate::rust_name(&request.selector).is_none() {
            return Err(Error::BadInput(format!(
                "`{}` cannot be synthesised: a selector must start with a letter and hold only letters, digits, `_` and `:`",
                request.selector
            )));
        }
        let key = (request.receiver, request.selector.clone());
        let role = self.flights.join_or_lead(key, || {
            cycle::create(
                &self.rt,
                request.receiver,
                &request.selector,
                &request.args,
                request.brief.as_deref(),
                &self.mind.describe(),
            )
        })?;
        let leading = match role {
            Role::Join(flight) => {
                observe(&Event::Joined { cycle: flight.cycle.clone() });
                return flight.wait();
            }
            Role::Lead(leading) => leading,
        };
        let id = leading.cycle().to_owned();
        observe(&Event::Started { cycle: id.clone(), selector: request.selector.clone() });
        let purpose = prompt::purpose(&request.selector, &request.args, request.brief.as_deref());
        let run = Running { request, id: &id, oid: leading.oid, purpose, observe };
        // A panic anywhere in the cycle (the mind, the compiler's output, a bug) is this
        // cycle's failure, recorded like any other, and every waiter hears of it.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(&run)))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                Err(Error::Failed(format!("cycle {id} panicked: {what}")))
            });
        if let Err(e) = &result {
            let reason = e.to_string();
            let _ = cycle::transition(
                &self.rt,
                run.oid,
                State::Failed,
                &[("reason", Value::Text(reason.clone()))],
            );
            self.journal.append(json!({ "cycle": id, "state": "FAILED", "reason": reason, "model": self.mind.describe() }));
            observe(&Event::State { cycle: id.clone(), state: State::Failed, detail: reason });
        }
        leading.land(&result);
        result
    }

    /// Commits a state change (with `extra` slots), journals it and shows it.
    fn enter(
        &self,
        run: &Running<'_>,
        state: State,
        detail: String,
        extra: &[(&str, Value)],
    ) -> Result<()> {
        cycle::transition(&self.rt, run.oid, state, extra)?;
        self.journal.append(json!({ "cycle": run.id, "state": state.as_str(), "detail": detail, "model": self.mind.describe(), "brief_blake3": journal::brief_hash(&run.purpose) }));
        (run.observe)(&Event::State { cycle: run.id.to_owned(), state, detail });
        Ok(())
    }

    /// The state machine, DECOMPOSING to COMPLETE; an error is the cycle's failure.
    fn run(&self, run: &Running<'_>) -> Result<()> {
        let (request, id, purpose) = (run.request, run.id, run.purpose.as_str());
        let started = Instant::now();

        // DECOMPOSING: the signature the message implies, and the cases to prove. The
        // answer's type comes from the caller's examples, else the selector's form
        // (`isPrime:` answers a boolean), else the model chooses it as it writes.
        let stateful =
            request.stateful || request.brief.as_deref().is_some_and(|b| b.contains("slot"));
        let returns = request
            .examples
            .first()
            .map(|e| Type::of(&e.expected))
            .or_else(|| predicate(&request.selector).then_some(Type::Bool));
        let signature =
            Signature::infer(&request.selector, &request.args, returns.clone(), stateful)?;
        let mut proposed = Vec::new();
        let mut proposal_text = Value::Nil;
        if request.examples.is_empty() {
            let answer =
                self.ask(id, &prompt::propose_examples(&signature, purpose), "examples", 0)?;
            proposed = prompt::parse_examples(&signature, &answer);
            proposal_text = Value::Text(answer);
            if returns.is_some() {
                proposed.retain(|e| returns.as_ref().is_none_or(|t| t.fits(&e.expected)));
            }
        }
        let mut all_examples = examples_value(&request.examples, "caller");
        all_examples.extend(examples_value(&proposed, "mind"));
        self.enter(
            run,
            State::Decomposing,
            signature.rust(),
            &[
                ("signature", Value::Text(signature.rust())),
                ("purpose", Value::Text(purpose.to_owned())),
                ("examples", Value::List(all_examples)),
                ("proposedCases", proposal_text),
            ],
        )?;

        // DELEGATING: similar verified skills as worked examples.
        let similar =
            skills::similar(&skills::all(&self.rt)?, &format!("{} {purpose}", request.selector), 2);
        let names: Vec<Value> = similar.iter().map(|s| Value::Text(s.selector.clone())).collect();
        self.enter(
            run,
            State::Delegating,
            format!("{} similar skill(s)", similar.len()),
            &[("context", Value::List(names))],
        )?;

        // Proposed cases guide the model only when the answer type is settled: a small
        // model's cases can be of the wrong type altogether.
        let shown = if signature.returns_known {
            [request.examples.clone(), proposed.clone()].concat()
        } else {
            request.examples.clone()
        };
        let first = match request.language {
            Language::Rust => prompt::synthesize(&signature, purpose, &shown, &similar),
            Language::Wat => prompt::synthesize_wat(&request.selector, purpose, &shown),
        };
        let rounds = self.options.max_rounds.max(1);
        let mut messages = first.clone();
        let mut last = String::from("no round ran");
        for round in 1..=rounds {
            // SYNTHESIZING
            self.enter(
                run,
                State::Synthesizing,
                format!("round {round}"),
                &[("round", Value::Int(round as i64))],
            )?;
            let answer = self.ask(id, &messages, "code", round)?;
            let extracted = match request.language {
                Language::Rust => candidate::extract_function(&answer, &signature.name),
                Language::Wat => prompt::extract_wat(&answer),
            };
            let Some(mut code) = extracted else {
                let detail = match request.language {
                    Language::Rust => format!(
                        "The answer held no Rust code defining `fn {}`. Write `{} {{ ... }}`.",
                        signature.name,
                        signature.rust()
                    ),
                    Language::Wat => "The answer held no WAT `(func $invoke ...)`.".to_owned(),
                };
                self.attempt(run, round, "", Outcome::NoCode, &detail)?;
                messages = prompt::repair(&first, answer.trim(), &detail);
                last = detail;
                continue;
            };
            // VALIDATING
            self.enter(run, State::Validating, format!("round {round}"), &[])?;
            let prover =
                Prover { rt: &self.rt, sandbox: &self.sandbox, workspace: &self.workspace };
            match prover.validate(request, &signature, &mut code, &proposed, round == rounds) {
                Ok((component, unconfirmed)) => {
                    self.attempt(run, round, &code, Outcome::Passed, &unconfirmed.join("; "))?;
                    let installer = Installer {
                        rt: &self.rt,
                        sandbox: &self.sandbox,
                        model: self.mind.describe(),
                    };
                    let signature = signature.adapted(&code);
                    let proven = Proven {
                        signature: &signature,
                        code: &code,
                        bytes: &component,
                        unconfirmed: &unconfirmed,
                    };
                    installer.install(run, &proven)?;
                    self.journal.append(json!({ "cycle": id, "state": "COMPLETE", "rounds": round, "duration_ms": started.elapsed().as_millis() as u64, "model": self.mind.describe() }));
                    (run.observe)(&Event::State {
                        cycle: id.to_owned(),
                        state: State::Complete,
                        detail: format!("installed `{}` after {round} round(s)", request.selector),
                    });
                    return Ok(());
                }
                Err(rejection) => {
                    self.attempt(run, round, &code, rejection.outcome, &rejection.detail)?;
                    // Wrong answers go back without the code: shown its own code, a small
                    // model copies it. Compiler errors need the code they point into.
                    let shown = if rejection.outcome == Outcome::FailedExample {
                        ""
                    } else {
                        code.as_str()
                    };
                    messages = prompt::repair(&first, shown, &rejection.detail);
                    last = format!("{}: {}", rejection.outcome, rejection.detail);
                }
            }
        }
        Err(Error::Failed(format!(
            "no candidate for `{}` passed after {rounds} round(s); the last: {}",
            request.selector,
            truncate(&last, 600)
        )))
    }

    /// Asks the mind, outside any transaction, journalling time and tokens. The first
    /// round is greedy; repair rounds sample (seeded by the round), because a greedy
    /// small model tends to answer a repair request with the code it wrote before.
    fn ask(&self, id: &str, messages: &[Message], what: &str, round: usize) -> Result<String> {
        let t = Instant::now();
        let mut sampling = Sampling { max_tokens: self.options.max_tokens, ..Sampling::default() };
        if round > 1 {
            sampling.temperature = 1.0;
            sampling.top_p = 0.95;
            sampling.seed = round as u64;
        }
        let completion = self
            .mind
            .complete(messages, &sampling, &mut |_| {})
            .map_err(|e| Error::MindUnavailable(e.to_string()))?;
        self.journal.append(json!({
            "cycle": id, "event": "mind", "asked_for": what, "model": self.mind.describe(), "duration_ms": t.elapsed().as_millis() as u64,
            "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
        }));
        Ok(completion.text)
    }

    /// Records one candidate and its fate in the cycle, the journal and the view.
    fn attempt(
        &self,
        run: &Running<'_>,
        round: usize,
        code: &str,
        outcome: Outcome,
        detail: &str,
    ) -> Result<()> {
        let entry = BTreeMap::from([
            ("round".to_owned(), Value::Int(round as i64)),
            ("code".to_owned(), Value::Text(code.to_owned())),
            ("outcome".to_owned(), Value::Text(outcome.as_str().to_owned())),
            ("detail".to_owned(), Value::Text(truncate(detail, 4000))),
        ]);
        cycle::record_attempt(&self.rt, run.oid, entry)?;
        self.journal.append(json!({ "cycle": run.id, "state": "VALIDATING", "round": round, "outcome": outcome.as_str() }));
        (run.observe)(&Event::Attempt {
            cycle: run.id.to_owned(),
            round,
            outcome,
            detail: truncate(detail, 4000),
        });
        Ok(())
    }
}

/// Examples as the cycle keeps them: a map each, with where they came from.
fn examples_value(examples: &[Example], source: &str) -> Vec<Value> {
    examples
        .iter()
        .map(|e| {
            Value::Map(BTreeMap::from([
                ("args".into(), Value::List(e.args.clone())),
                ("expected".into(), e.expected.clone()),
                ("source".into(), Value::Text(source.into())),
            ]))
        })
        .collect()
}

/// Whether a selector names a yes/no question (`isPrime:`, `hasKey:`, `canVote:`).
fn predicate(selector: &str) -> bool {
    ["is", "has", "can", "contains", "starts", "ends"].iter().any(|p| {
        selector.strip_prefix(p).is_some_and(|rest| {
            rest.starts_with(|c: char| c.is_ascii_uppercase() || c == ':') || rest.is_empty()
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn yes_no_selectors_are_predicates() {
        for (selector, yes) in [
            ("isPrime:", true),
            ("hasKey:", true),
            ("isEmpty", true),
            ("island:", false),
            ("hash:", false),
            ("factorial", false),
            ("contains:", true),
        ] {
            assert_eq!(super::predicate(selector), yes, "{selector}");
        }
    }
}
