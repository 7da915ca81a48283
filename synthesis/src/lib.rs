//! # batos-synthesis
//!
//! The synthesis layer: a message nobody understands becomes a [`cycle`] in which the
//! mind writes the missing method, the host builds, audits and proves it, installs it,
//! and sends the message again — which then succeeds, today and after every restart,
//! without the mind.
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
pub mod journal;
pub mod prompt;
pub mod seal;
pub mod skills;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use serde_json::json;

use batos_image as image;
use batos_image::error;
use batos_mind as mind;
use batos_runtime as runtime;
use batos_sandbox as sandbox;

use crate::error::{Error, Result};
use crate::image::{json as vjson, Method, Oid, Value};
use crate::mind::{Message, Mind, Sampling};
use crate::runtime::Runtime;
use crate::sandbox::{Grants, Sandbox};
use candidate::{Signature, Type, Workspace};
use cycle::State;
use journal::Journal;

/// An example case: arguments and the answer expected.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// The arguments.
    pub args: Vec<Value>,
    /// The answer.
    pub expected: Value,
}

impl Request {
    /// A plain message: no brief, no examples.
    pub fn new(receiver: Oid, selector: &str, args: Vec<Value>) -> Request {
        Request {
            receiver,
            selector: selector.to_owned(),
            args,
            brief: None,
            examples: vec![],
            stateful: false,
            language: Language::Rust,
        }
    }
}

impl Example {
    /// Reads `ARGS => RESULT`, both as JSON (`5 => 120`, `"ab" => "ba"`, `[1,2], 3 => 6`).
    pub fn parse(text: &str) -> std::result::Result<Example, String> {
        let (args, result) = text.split_once("=>").ok_or_else(|| {
            format!("`{text}` is not an example; write ARGS => RESULT, e.g. '5 => 120'")
        })?;
        let mut no_objects = |_: &str| -> std::result::Result<Oid, String> {
            Err("examples hold plain values, not objects".into())
        };
        let args = match vjson::parse(&format!("[{}]", args.trim()), &mut no_objects) {
            Ok(Value::List(items)) => items,
            Ok(_) | Err(_) => {
                return Err(format!(
                    "the arguments of `{text}` are not JSON values separated by commas"
                ))
            }
        };
        let expected = vjson::parse(result.trim(), &mut no_objects)
            .map_err(|e| format!("the result of `{text}` is not a JSON value: {e}"))?;
        Ok(Example { args, expected })
    }
}

/// The language a synthesised method is written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Language {
    /// One Rust function; the host adds the rest. The default: the embedded 0.5B model
    /// writes usable Rust, not usable WAT.
    #[default]
    Rust,
    /// The WAT `$invoke` function against the WAT prelude, for stronger minds.
    Wat,
}

/// A message to send, with what synthesis may need if it is not understood.
#[derive(Clone, Debug)]
pub struct Request {
    /// The receiver.
    pub receiver: Oid,
    /// The selector.
    pub selector: String,
    /// The arguments.
    pub args: Vec<Value>,
    /// What the method should do, in words (the mission brief).
    pub brief: Option<String>,
    /// Cases the method must pass; for a stateful method, a call sequence in order.
    pub examples: Vec<Example>,
    /// The method uses its receiver — keeps state in its slots or sends it messages —
    /// and gets it as `this` (also assumed when the brief mentions a slot).
    pub stateful: bool,
    /// What the mind writes the method in.
    pub language: Language,
}

/// What a cycle reports as it goes, for live views.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A cycle started.
    Started {
        /// Its id.
        cycle: String,
        /// The selector it synthesises.
        selector: String,
    },
    /// This send waits for a cycle another send started.
    Joined {
        /// Its id.
        cycle: String,
    },
    /// A state was entered.
    State {
        /// The cycle.
        cycle: String,
        /// The state.
        state: State,
        /// Details (the signature, the round).
        detail: String,
    },
    /// A candidate was tried.
    Attempt {
        /// The cycle.
        cycle: String,
        /// Its round, from 1.
        round: usize,
        /// `passed`, `no_code`, `refused` (sealing), `compile_error`, `audit_refused` or
        /// `failed_example`.
        outcome: String,
        /// What went wrong (diagnostics, the failing case).
        detail: String,
    },
}

/// Knobs of the cycle.
#[derive(Clone, Debug)]
pub struct Options {
    /// Rounds of synthesis and repair before FAILED (Voyager uses 4).
    pub max_rounds: usize,
    /// Tokens the mind may spend on one answer.
    pub max_tokens: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_rounds: 4, max_tokens: 400 }
    }
}

/// Whether a send's failure is the one a cycle answers: the receiver itself did not
/// understand the selector (not some method deeper down).
pub fn starts_cycle(request: &Request, error: &Error) -> bool {
    matches!(error, Error::DoesNotUnderstand { receiver, selector } if *receiver == request.receiver && *selector == request.selector)
}

/// Passes of the compiler's own suggestions applied to a candidate before its errors go
/// back to the mind: most of a small model's slips are type errors rustc knows the fix
/// for, and a pass costs about a second where a round of the mind costs several.
const COMPILER_FIXES: usize = 3;

struct Flight {
    cycle: String,
    outcome: Mutex<Option<std::result::Result<(), Error>>>,
    done: Condvar,
}

impl Flight {
    /// Records the outcome once and wakes every waiter.
    fn land(&self, outcome: std::result::Result<(), Error>) {
        let mut slot = self.outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(outcome);
        }
        self.done.notify_all();
    }

    /// Waits for the outcome; a failure comes back with the leader's kind and words.
    fn wait(&self) -> Result<()> {
        let mut outcome = self.outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            match &*outcome {
                Some(Ok(())) => return Ok(()),
                Some(Err(e)) => return Err(e.relay()),
                None => {
                    outcome =
                        self.done.wait(outcome).unwrap_or_else(std::sync::PoisonError::into_inner)
                }
            }
        }
    }
}

/// Lands a flight that its leader left without an outcome (an unwinding panic), and
/// takes it out of the registry, so no waiter blocks forever.
struct FlightGuard<'a> {
    flights: &'a Mutex<HashMap<(Oid, String), Arc<Flight>>>,
    key: (Oid, String),
    flight: Arc<Flight>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.flight.land(Err(Error::Failed(format!(
            "cycle {} stopped without an outcome (its leader panicked)",
            self.flight.cycle
        ))));
        self.flights.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.key);
    }
}

/// Runs synthesis cycles for one image.
pub struct Synthesizer {
    rt: Arc<Runtime>,
    sandbox: Arc<Sandbox>,
    mind: Arc<dyn Mind>,
    workspace: Workspace,
    journal: Journal,
    options: Options,
    flights: Mutex<HashMap<(Oid, String), Arc<Flight>>>,
}

/// Why one candidate was not accepted: an outcome name and the feedback for the mind.
struct Rejection {
    outcome: &'static str,
    detail: String,
}

impl Synthesizer {
    /// A synthesizer thinking with `mind`, building in the workspace at `workspace`.
    /// Cycles an earlier process left unfinished are marked FAILED first (see [`cycle`]).
    pub fn new(
        rt: Arc<Runtime>,
        sandbox: Arc<Sandbox>,
        mind: Arc<dyn Mind>,
        workspace: &Path,
        options: Options,
    ) -> Result<Synthesizer> {
        let workspace = Workspace::open(workspace, &Workspace::default_sdk())?;
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
            flights: Mutex::new(HashMap::new()),
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
        let (flight, leader, cycle_oid) = {
            let mut flights =
                self.flights.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match flights.get(&key) {
                Some(f) => (f.clone(), false, None),
                None => {
                    let (id, oid) = cycle::create(
                        &self.rt,
                        request.receiver,
                        &request.selector,
                        &request.args,
                        request.brief.as_deref(),
                        &self.mind.describe(),
                    )?;
                    let f = Arc::new(Flight {
                        cycle: id,
                        outcome: Mutex::new(None),
                        done: Condvar::new(),
                    });
                    flights.insert(key.clone(), f.clone());
                    (f, true, Some(oid))
                }
            }
        };
        if !leader {
            observe(&Event::Joined { cycle: flight.cycle.clone() });
            return flight.wait();
        }
        let guard = FlightGuard { flights: &self.flights, key, flight: flight.clone() };
        let oid = cycle_oid.ok_or_else(|| Error::Failed("a cycle without its object".into()))?;
        observe(&Event::Started {
            cycle: flight.cycle.clone(),
            selector: request.selector.clone(),
        });
        // A panic anywhere in the cycle (the mind, the compiler's output, a bug) is this
        // cycle's failure, recorded like any other, and every waiter hears of it.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run(request, &flight.cycle, oid, observe)
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            Err(Error::Failed(format!("cycle {} panicked: {what}", flight.cycle)))
        });
        if let Err(e) = &result {
            let reason = e.to_string();
            let _ = cycle::transition(
                &self.rt,
                oid,
                State::Failed,
                &[("reason", Value::Text(reason.clone()))],
            );
            self.journal.append(json!({ "cycle": flight.cycle, "state": "FAILED", "reason": reason, "model": self.mind.describe() }));
            observe(&Event::State {
                cycle: flight.cycle.clone(),
                state: State::Failed,
                detail: reason,
            });
        }
        flight.land(result.as_ref().map(|_| ()).map_err(Error::relay));
        drop(guard);
        result
    }

    fn enter(
        &self,
        id: &str,
        oid: Oid,
        state: State,
        detail: String,
        extra: &[(&str, Value)],
        brief: &str,
        observe: &(dyn Fn(&Event) + Sync),
    ) -> Result<()> {
        cycle::transition(&self.rt, oid, state, extra)?;
        self.journal.append(json!({ "cycle": id, "state": state.as_str(), "detail": detail, "model": self.mind.describe(), "brief_blake3": journal::brief_hash(brief) }));
        observe(&Event::State { cycle: id.to_owned(), state, detail });
        Ok(())
    }

    fn run(
        &self,
        request: &Request,
        id: &str,
        oid: Oid,
        observe: &(dyn Fn(&Event) + Sync),
    ) -> Result<()> {
        let started = Instant::now();
        let purpose = prompt::purpose(&request.selector, &request.args, request.brief.as_deref());

        // DECOMPOSING: the signature the message implies, and the cases to prove. The
        // answer's type comes from the caller's examples, else the selector's form
        // (`isPrime:` answers a boolean), else the model chooses it as it writes.
        let stateful =
            request.stateful || request.brief.as_deref().is_some_and(|b| b.contains("slot"));
        let returns = request
            .examples
            .first()
            .and_then(|e| Type::of(&e.expected))
            .or_else(|| predicate(&request.selector).then_some(Type::Bool));
        let signature = Signature::infer(&request.selector, &request.args, returns, stateful)?;
        let mut proposed = Vec::new();
        let mut proposal_text = Value::Nil;
        if request.examples.is_empty() {
            let answer =
                self.ask(id, &prompt::propose_examples(&signature, &purpose), "examples", 0)?;
            proposed = prompt::parse_examples(&signature, &answer);
            proposal_text = Value::Text(answer);
            if returns.is_some() {
                proposed.retain(|e| Type::of(&e.expected) == returns);
            }
        }
        let examples_value = |examples: &[Example], source: &str| -> Vec<Value> {
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
        };
        let mut all_examples = examples_value(&request.examples, "caller");
        all_examples.extend(examples_value(&proposed, "mind"));
        self.enter(
            id,
            oid,
            State::Decomposing,
            signature.rust(),
            &[
                ("signature", Value::Text(signature.rust())),
                ("purpose", Value::Text(purpose.clone())),
                ("examples", Value::List(all_examples)),
                ("proposedCases", proposal_text),
            ],
            &purpose,
            observe,
        )?;

        // DELEGATING: similar verified skills as worked examples.
        let similar =
            skills::similar(&skills::all(&self.rt)?, &format!("{} {purpose}", request.selector), 2);
        let names: Vec<Value> = similar.iter().map(|s| Value::Text(s.selector.clone())).collect();
        self.enter(
            id,
            oid,
            State::Delegating,
            format!("{} similar skill(s)", similar.len()),
            &[("context", Value::List(names))],
            &purpose,
            observe,
        )?;

        // Proposed cases guide the model only when the answer type is settled: a small
        // model's cases can be of the wrong type altogether.
        let shown = if signature.returns_known {
            [request.examples.clone(), proposed.clone()].concat()
        } else {
            request.examples.clone()
        };
        let first = match request.language {
            Language::Rust => prompt::synthesize(&signature, &purpose, &shown, &similar),
            Language::Wat => prompt::synthesize_wat(&request.selector, &purpose, &shown),
        };
        let mut messages = first.clone();
        let mut last = String::from("no round ran");
        for round in 1..=self.options.max_rounds.max(1) {
            // SYNTHESIZING
            self.enter(
                id,
                oid,
                State::Synthesizing,
                format!("round {round}"),
                &[("round", Value::Int(round as i64))],
                &purpose,
                observe,
            )?;
            let answer = self.ask(id, &messages, "code", round)?;
            let extracted = match request.language {
                Language::Rust => candidate::extract_function(&answer, &signature.name),
                Language::Wat => prompt::extract_wat(&answer),
            };
            let Some(code) = extracted else {
                let detail = match request.language {
                    Language::Rust => format!(
                        "The answer held no Rust code defining `fn {}`. Write `{} {{ ... }}`.",
                        signature.name,
                        signature.rust()
                    ),
                    Language::Wat => "The answer held no WAT `(func $invoke ...)`.".to_owned(),
                };
                self.attempt(id, oid, round, "", "no_code", &detail, observe)?;
                messages = prompt::repair(&first, answer.trim(), &detail);
                last = detail;
                continue;
            };
            // VALIDATING
            self.enter(
                id,
                oid,
                State::Validating,
                format!("round {round}"),
                &[],
                &purpose,
                observe,
            )?;
            let last_round = round == self.options.max_rounds.max(1);
            let mut code = code;
            match self.validate(request, &signature, &mut code, &proposed, last_round) {
                Ok((component, unconfirmed)) => {
                    self.attempt(
                        id,
                        oid,
                        round,
                        &code,
                        "passed",
                        &unconfirmed.join("; "),
                        observe,
                    )?;
                    self.install(
                        request,
                        id,
                        oid,
                        &signature.adapted(&code),
                        &purpose,
                        &code,
                        &component,
                        &unconfirmed,
                    )?;
                    self.journal.append(json!({ "cycle": id, "state": "COMPLETE", "rounds": round, "duration_ms": started.elapsed().as_millis() as u64, "model": self.mind.describe() }));
                    observe(&Event::State {
                        cycle: id.to_owned(),
                        state: State::Complete,
                        detail: format!("installed `{}` after {round} round(s)", request.selector),
                    });
                    return Ok(());
                }
                Err(rejection) => {
                    self.attempt(
                        id,
                        oid,
                        round,
                        &code,
                        rejection.outcome,
                        &rejection.detail,
                        observe,
                    )?;
                    // Wrong answers go back without the code: shown its own code, a small
                    // model copies it. Compiler errors need the code they point into.
                    let shown =
                        if rejection.outcome == "failed_example" { "" } else { code.as_str() };
                    messages = prompt::repair(&first, shown, &rejection.detail);
                    last = format!("{}: {}", rejection.outcome, rejection.detail);
                }
            }
        }
        Err(Error::Failed(format!(
            "no candidate for `{}` passed after {} round(s); the last: {}",
            request.selector,
            self.options.max_rounds.max(1),
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

    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &self,
        id: &str,
        oid: Oid,
        round: usize,
        code: &str,
        outcome: &str,
        detail: &str,
        observe: &(dyn Fn(&Event) + Sync),
    ) -> Result<()> {
        let entry = BTreeMap::from([
            ("round".to_owned(), Value::Int(round as i64)),
            ("code".to_owned(), Value::Text(code.to_owned())),
            ("outcome".to_owned(), Value::Text(outcome.to_owned())),
            ("detail".to_owned(), Value::Text(truncate(detail, 4000))),
        ]);
        cycle::record_attempt(&self.rt, oid, entry)?;
        self.journal.append(
            json!({ "cycle": id, "state": "VALIDATING", "round": round, "outcome": outcome }),
        );
        observe(&Event::Attempt {
            cycle: id.to_owned(),
            round,
            outcome: outcome.to_owned(),
            detail: truncate(detail, 4000),
        });
        Ok(())
    }

    /// Builds, audits and proves a candidate; answers its component bytes and the
    /// proposed cases it does not meet (only tolerated in the last round).
    fn validate(
        &self,
        request: &Request,
        signature: &Signature,
        code: &mut String,
        proposed: &[Example],
        last_round: bool,
    ) -> std::result::Result<(Vec<u8>, Vec<String>), Rejection> {
        if request.language == Language::Wat {
            let bytes = crate::sandbox::audit::component_from_wat(
                code,
                &format!("candidate `{}`", request.selector),
            )
            .map_err(|e| Rejection {
                outcome: "compile_error",
                detail: format!("It does not assemble: {}", truncate(&e.to_string(), 1500)),
            })?;
            return self.check(request, signature, bytes, proposed, last_round, false);
        }
        let mut built = self.workspace.build_fixing(&signature.adapted(code), code, COMPILER_FIXES);
        // A function whose body answers another type than it declares is the commonest
        // slip of a small model; the compiler names both types, so the host fixes the
        // declaration itself instead of spending a round of the mind on it.
        if let Err(Error::BuildFailed { detail, .. }) = &built {
            if let Some(fixed) = candidate::retype(code, &signature.name, detail) {
                *code = fixed;
                built = self.workspace.build_fixing(&signature.adapted(code), code, COMPILER_FIXES);
            }
        }
        if let Ok((_, fixed)) = &built {
            code.clone_from(fixed);
        }
        let signature = &signature.adapted(code);
        let bytes = match built {
            Ok((bytes, _)) => bytes,
            Err(Error::BuildFailed { detail, .. }) if detail.starts_with("cargo build failed") => {
                return Err(Rejection {
                    outcome: "compile_error",
                    detail: format!("It does not compile:\n{}", diagnostics(&detail)),
                })
            }
            Err(Error::BuildFailed { detail, .. }) => {
                return Err(Rejection {
                    outcome: "compile_error",
                    detail: format!("It cannot become a capability: {}", truncate(&detail, 1500)),
                })
            }
            // Sealing refused it before cargo ran (see `seal`).
            Err(Error::AuditRefused { reason, .. }) => {
                return Err(Rejection { outcome: "refused", detail: reason })
            }
            Err(e) => return Err(Rejection { outcome: "compile_error", detail: e.to_string() }),
        };
        self.check(request, signature, bytes, proposed, last_round, true)
    }

    /// Audits and proves built candidate bytes. `typed`: the signature's answer type is
    /// the candidate's own (a Rust candidate), so the real arguments' answer must have it.
    fn check(
        &self,
        request: &Request,
        signature: &Signature,
        bytes: Vec<u8>,
        proposed: &[Example],
        last_round: bool,
        typed: bool,
    ) -> std::result::Result<(Vec<u8>, Vec<String>), Rejection> {
        if let Err(e) = self.sandbox.audit(
            &bytes,
            &Grants::default(),
            &format!("candidate `{}`", request.selector),
        ) {
            return Err(Rejection {
                outcome: "audit_refused",
                detail: format!("The audit refused it: {e}. Use only plain computation."),
            });
        }
        // Proposed cases of another answer type than the candidate's say nothing about it.
        let proposed: Vec<Example> = proposed
            .iter()
            .filter(|e| Type::of(&e.expected) == Some(signature.returns))
            .cloned()
            .collect();
        let failures = self
            .prove(request, signature, &bytes, &proposed, typed)
            .map_err(|e| Rejection { outcome: "failed_example", detail: e.to_string() })?;
        let (hard, soft): (Vec<_>, Vec<_>) = failures.into_iter().partition(|(caller, _)| *caller);
        if let Some((_, detail)) = hard.first() {
            return Err(Rejection { outcome: "failed_example", detail: detail.clone() });
        }
        if let Some((_, detail)) = soft.first() {
            if !last_round {
                return Err(Rejection { outcome: "failed_example", detail: detail.clone() });
            }
        }
        Ok((bytes, soft.into_iter().map(|(_, d)| d).collect()))
    }

    /// Runs the cases, then the real arguments, on a clone of the receiver in a
    /// transaction that is always rolled back. Answers `(from the caller, what failed)`.
    fn prove(
        &self,
        request: &Request,
        signature: &Signature,
        bytes: &[u8],
        proposed: &[Example],
        typed: bool,
    ) -> Result<Vec<(bool, String)>> {
        self.rt.view(|cx| {
            let clone = cx.clone_object(request.receiver)?;
            let component = cx.tx_mut("store a blob")?.put_blob(bytes)?;
            cx.set_slot(
                clone,
                &request.selector,
                &Value::Method(Method::Component { component, grants: vec![], deadline_ms: None }),
            )?;
            let mut failures = Vec::new();
            let cases = request
                .examples
                .iter()
                .map(|e| (true, e))
                .chain(proposed.iter().map(|e| (false, e)));
            for (from_caller, example) in cases {
                let shown = format!(
                    "{}({})",
                    signature.name,
                    example.args.iter().map(prompt::rust_literal).collect::<Vec<_>>().join(", ")
                );
                match cx.send(clone, &request.selector, &example.args) {
                    Ok(got) if got == example.expected => {}
                    Ok(got) => failures.push((
                        from_caller,
                        format!(
                            "{shown} returned {} but must return {}.",
                            prompt::rust_literal(&got),
                            prompt::rust_literal(&example.expected)
                        ),
                    )),
                    Err(e) => failures.push((
                        from_caller,
                        format!(
                            "{shown} failed: {e}. It must return {}.",
                            prompt::rust_literal(&example.expected)
                        ),
                    )),
                }
            }
            match cx.send(clone, &request.selector, &request.args) {
                Ok(got) if !typed || Type::of(&got) == Some(signature.returns) => {}
                Ok(got) => failures.push((
                    true,
                    format!(
                        "it answered {} where {} was expected",
                        got.type_name(),
                        signature.returns.rust()
                    ),
                )),
                Err(e) => failures.push((
                    true,
                    format!(
                        "{}({}) failed: {e}",
                        signature.name,
                        request
                            .args
                            .iter()
                            .map(prompt::rust_literal)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            }
            Ok(failures)
        })
    }

    /// One short transaction: the method on the receiver, the skill in the library, the
    /// cycle COMPLETE.
    #[allow(clippy::too_many_arguments)]
    fn install(
        &self,
        request: &Request,
        id: &str,
        oid: Oid,
        signature: &Signature,
        purpose: &str,
        code: &str,
        bytes: &[u8],
        unconfirmed: &[String],
    ) -> Result<()> {
        self.sandbox.audit(bytes, &Grants::default(), &format!("method `{}`", request.selector))?;
        let model = self.mind.describe();
        self.rt.transact(
            &format!("install synthesised {} on {}", request.selector, request.receiver),
            |cx| {
                let tx = cx.tx_mut("record synthesis")?;
                let component = tx.put_blob(bytes)?;
                let source = tx.put_blob(code.as_bytes())?;
                tx.set_slot(
                    request.receiver,
                    &request.selector,
                    &Value::Method(Method::Component {
                        component: component.clone(),
                        grants: vec![],
                        deadline_ms: None,
                    }),
                )?;
                let entry = BTreeMap::from([
                    ("selector".to_owned(), Value::Text(request.selector.clone())),
                    ("description".to_owned(), Value::Text(purpose.to_owned())),
                    ("signature".to_owned(), Value::Text(signature.rust())),
                    ("source".to_owned(), Value::Text(code.to_owned())),
                    ("sourceBlob".to_owned(), Value::Blob(source)),
                    ("component".to_owned(), Value::Blob(component)),
                    ("receiver".to_owned(), Value::Object(request.receiver)),
                    ("cycle".to_owned(), Value::Text(id.to_owned())),
                    ("model".to_owned(), Value::Text(model.clone())),
                    ("promptHash".to_owned(), Value::Text(journal::brief_hash(purpose))),
                ]);
                skills::record(tx, request.receiver, entry)?;
                tx.set_slot(oid, "method", &Value::Text(request.selector.clone()))?;
                tx.set_slot(
                    oid,
                    "unconfirmed",
                    &Value::List(unconfirmed.iter().map(|u| Value::Text(u.clone())).collect()),
                )?;
                cycle::set_state(tx, oid, State::Complete)
            },
        )?;
        Ok(())
    }
}

/// Whether a selector names a yes/no question (`isPrime:`, `hasKey:`, `canVote:`).
fn predicate(selector: &str) -> bool {
    ["is", "has", "can", "contains", "starts", "ends"].iter().any(|p| {
        selector.strip_prefix(p).is_some_and(|rest| {
            rest.starts_with(|c: char| c.is_ascii_uppercase() || c == ':') || rest.is_empty()
        })
    })
}

/// The compiler's errors without cargo's noise: each error's headline, its location and
/// the lines pointing into the code, at most three errors — enough for a small model.
fn diagnostics(stderr: &str) -> String {
    let mut kept = Vec::new();
    let mut errors = 0;
    let mut in_error = false;
    for line in stderr.lines() {
        if line.starts_with("error[")
            || (line.starts_with("error:") && !line.contains("could not compile"))
        {
            errors += 1;
            in_error = errors <= 3;
        } else if line.starts_with("warning")
            || line.starts_with("For more information")
            || line.contains("could not compile")
        {
            in_error = false;
        }
        // The long lists of other types implementing a trait help no one here.
        let listing = line.trim_start().starts_with('`')
            || line.trim_start().starts_with("and ") && line.trim_end().ends_with("others");
        if in_error && !listing {
            kept.push(line);
        }
    }
    truncate(kept.join("\n").trim(), 1500)
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
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

    #[test]
    fn diagnostics_keep_the_errors_and_drop_the_noise() {
        let stderr = "   Compiling batos-candidate v0.0.0\nerror[E0277]: a value of type `Vec<i64>` cannot be made by summing\n  --> src/lib.rs:18:26\n   |\n18 |     a.iter().sum()\n   = help: the following other types implement trait `Sum<A>`:\n             `Duration` implements `Sum`\n           and 88 others\n\nFor more information about this error, try `rustc --explain E0277`.\nerror: could not compile `batos-candidate` (lib) due to 1 previous error";
        let kept = super::diagnostics(stderr);
        assert!(
            kept.starts_with("error[E0277]")
                && kept.contains("src/lib.rs:18:26")
                && kept.contains("a.iter().sum()"),
            "{kept}"
        );
        assert!(
            !kept.contains("Duration")
                && !kept.contains("88 others")
                && !kept.contains("Compiling")
                && !kept.contains("could not compile"),
            "{kept}"
        );
    }
}
