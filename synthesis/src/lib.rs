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
pub mod choose;
mod confirm;
pub mod crucible;
pub mod cycle;
mod flight;
pub mod inputs;
mod install;
pub mod journal;
pub mod prompt;
mod request;
mod running;
pub mod seal;
pub mod skills;
mod text;
pub mod translate;
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
use choose::Verdict;
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
    /// A second model whose candidates alternate with the mind's (see
    /// [`Synthesizer::with_companion`]).
    companion: Option<Arc<dyn Mind>>,
    workspace: Workspace,
    journal: Journal,
    options: Options,
    flights: Flights,
    /// Set by the person (the bridge's `cancel`, a stopping kernel): the cycle fails
    /// before its next step.
    cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Where skill retrieval gets its embedding model, if it ranks by meaning.
    embedder: Option<EmbedderSource>,
    /// Skill texts already embedded.
    skill_vectors: Arc<skills::SkillVectors>,
}

/// Makes (or answers the loaded) embedding model on the first cycle that needs one.
pub type EmbedderSource =
    Arc<dyn Fn() -> std::result::Result<Arc<dyn mind::Embedder>, String> + Send + Sync>;

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
            companion: None,
            workspace,
            journal,
            options,
            flights: Flights::default(),
            cancel: None,
            embedder: None,
            skill_vectors: Arc::default(),
        })
    }

    /// Makes the cycles this synthesizer leads stop, failed and recorded, before their
    /// next step (a state change or a question to the mind) once `flag` is set.
    pub fn cancelled_by(mut self, flag: Arc<std::sync::atomic::AtomicBool>) -> Synthesizer {
        self.cancel = Some(flag);
        self
    }

    /// Asks every second candidate of a round (the 2nd, the 4th…) from `companion`
    /// instead of the mind: a different model fails differently, so a round is less
    /// likely to hold one wrong idea three times, and execution chooses among them as
    /// among any candidates. Everything else (proposed cases, repairs' prompts, the
    /// crucible) stays with the mind. Each candidate's record names its model.
    pub fn with_companion(mut self, companion: Option<Arc<dyn Mind>>) -> Synthesizer {
        self.companion = companion;
        self
    }

    /// The mind that writes candidate `index` of a round (from 0).
    fn candidate_mind(&self, index: usize) -> &Arc<dyn Mind> {
        match &self.companion {
            Some(companion) if index % 2 == 1 => companion,
            _ => &self.mind,
        }
    }

    /// Ranks the skill library by meaning as well as by words (see
    /// [`skills::similar_by_meaning`]), with the embedding model `source` answers —
    /// asked only when the library holds more skills than a round has candidates, since
    /// otherwise every skill is offered whatever the order.
    pub fn retrieving_with(mut self, source: EmbedderSource) -> Synthesizer {
        self.embedder = Some(source);
        self
    }

    /// The `k` skills most similar to `query`, and a note when meaning could not be
    /// used (it is shown in the DELEGATING step, never hidden).
    fn similar_skills(
        &self,
        library: &[skills::Skill],
        query: &str,
        k: usize,
    ) -> (Vec<skills::Skill>, String) {
        let Some(source) = self.embedder.as_ref().filter(|_| library.len() > k) else {
            return (skills::similar(library, query, k), String::new());
        };
        match source().and_then(|e| {
            skills::similar_by_meaning(library, query, k, e.as_ref(), &self.skill_vectors)
                .map_err(|e| e.to_string())
        }) {
            Ok(found) => (found, " (by words and meaning)".into()),
            Err(why) => (skills::similar(library, query, k), format!(" (by words only: {why})")),
        }
    }

    /// Fails with why when the person cancelled the cycle.
    fn check_cancel(&self, id: &str) -> Result<()> {
        match &self.cancel {
            Some(flag) if flag.load(std::sync::atomic::Ordering::SeqCst) => Err(Error::Failed(
                format!("cycle {id} was cancelled before it finished; nothing was installed"),
            )),
            _ => Ok(()),
        }
    }

    /// The metacognition journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Sends the message; when it is not understood, synthesises the method and sends
    /// it again. `observe` sees the cycle's events as they happen.
    pub fn send(&self, request: &Request, observe: &(dyn Fn(&Event) + Sync)) -> Result<Value> {
        if !request.examples.is_empty() {
            confirm::confirm_or_remove(&self.rt, request)?;
        }
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
        if state != State::Complete {
            self.check_cancel(run.id)?;
        }
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
            let greedy = Sampling { max_tokens: self.options.max_tokens, ..Sampling::default() };
            let answer =
                self.ask(id, &prompt::propose_examples(&signature, purpose), "examples", &greedy)?;
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

        // DELEGATING: similar verified skills, a different one for each candidate as
        // its worked example, and what the receiver already understands, to compose.
        let candidates = self.options.candidates.max(1);
        let library = skills::all(&self.rt)?;
        let query = format!("{} {purpose} {}", request.selector, signature.rust());
        let (similar, retrieval) = self.similar_skills(&library, &query, candidates);
        let understood = match request.language {
            Language::Rust => {
                skills::understood(&self.rt, request.receiver, &library, &request.selector, 8)?
            }
            Language::Wat => Vec::new(),
        };
        let names: Vec<Value> = similar.iter().map(|s| Value::Text(s.selector.clone())).collect();
        self.enter(
            run,
            State::Delegating,
            format!(
                "{} similar skill(s){retrieval}, {} understood",
                similar.len(),
                understood.len()
            ),
            &[("context", Value::List(names))],
        )?;

        // Proposed cases guide the model only when the answer type is settled: a small
        // model's cases can be of the wrong type altogether.
        let shown = if signature.returns_known {
            [request.examples.clone(), proposed.clone()].concat()
        } else {
            request.examples.clone()
        };
        // The inputs every passing candidate is run on, to tell them apart.
        let seen: Vec<Vec<Value>> = request
            .examples
            .iter()
            .chain(&proposed)
            .map(|e| e.args.clone())
            .chain(std::iter::once(request.args.clone()))
            .collect();
        let inputs = inputs::generate(&signature.params, &seen);
        let rounds = self.options.max_rounds.max(1);
        let caller_examples = !request.examples.is_empty();
        let mut pool: Vec<Candidate> = Vec::new();
        // Grants that candidates reached for.
        let mut wanted = std::collections::BTreeSet::new();
        let mut feedback: Option<Feedback> = None;
        let mut last = String::from("no round ran");
        for round in 1..=rounds {
            // SYNTHESIZING
            self.enter(
                run,
                State::Synthesizing,
                format!("round {round}: {candidates} candidate(s)"),
                &[("round", Value::Int(round as i64))],
            )?;
            let mut failure: Option<Feedback> = None;
            // How many candidates of this round reached for a grant not given.
            let mut wanting = 0;
            for index in 0..candidates {
                let worked: Vec<skills::Skill> =
                    similar.get(index % similar.len().max(1)).cloned().into_iter().collect();
                let first = match request.language {
                    Language::Rust => {
                        prompt::synthesize(&signature, purpose, &shown, &worked, &understood)
                    }
                    Language::Wat => prompt::synthesize_wat(&request.selector, purpose, &shown),
                };
                let messages = match &feedback {
                    Some(f) => prompt::repair(&first, &f.code, &f.detail),
                    None => first,
                };
                // Each model's first answer of the first round is its greedy one.
                let greedy = round == 1 && index < 1 + usize::from(self.companion.is_some());
                let stops = prompt::code_stops(&signature.name);
                let variant = Variant::of(round, index, greedy, self.options.max_tokens, stops);
                let writer = self.candidate_mind(index);
                let answer = self.ask_watched(
                    run,
                    writer.as_ref(),
                    (round, index + 1),
                    &messages,
                    &variant.sampling,
                )?;
                let tried = Tried {
                    round,
                    index,
                    temperature: variant.sampling.temperature,
                    worked: worked.first().map(|s| s.selector.clone()),
                    model: writer.describe(),
                };
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
                    self.attempt(
                        run,
                        &tried,
                        &truncate(answer.trim(), 2000),
                        Outcome::NoCode,
                        &detail,
                    )?;
                    failure.get_or_insert(Feedback {
                        outcome: Outcome::NoCode,
                        code: answer.trim().to_owned(),
                        detail: detail.clone(),
                    });
                    last = detail;
                    continue;
                };
                // VALIDATING
                self.enter(
                    run,
                    State::Validating,
                    format!("round {round}, candidate {}", index + 1),
                    &[],
                )?;
                let prover =
                    Prover { rt: &self.rt, sandbox: &self.sandbox, workspace: &self.workspace };
                let validated = prover
                    .validate(request, &signature, &mut code, &proposed, &inputs)
                    .and_then(|passed| {
                        self.crucible(run, &signature, &code, &passed, &proposed, &inputs)
                            .map(|()| passed)
                    });
                match validated {
                    Ok(passed) => {
                        self.attempt(
                            run,
                            &tried,
                            &code,
                            Outcome::Passed,
                            &passed.misses.join("; "),
                        )?;
                        pool.push(Candidate { tried, code, passed });
                        let behaviours: Vec<&choose::Behaviour> =
                            pool.iter().map(|c| &c.passed.behaviour).collect();
                        let vouched = caller_examples && !self.options.second_opinion;
                        if vouched || choose::settled(&behaviours) {
                            break;
                        }
                    }
                    Err(rejection) if rejection.outcome == Outcome::NeedsGrant => {
                        // Not this candidate; the person decides whether the method may
                        // have the grant once no candidate does without it.
                        self.attempt(run, &tried, &code, rejection.outcome, &rejection.detail)?;
                        wanted.extend(rejection.detail.split(", ").map(str::to_owned));
                        wanting += 1;
                    }
                    Err(rejection) => {
                        self.attempt(run, &tried, &code, rejection.outcome, &rejection.detail)?;
                        last = format!("{}: {}", rejection.outcome, rejection.detail);
                        // A wrong answer goes back without its code (shown its own code,
                        // a small model copies it) and wins over a compile error: fresh
                        // samples with the failing case shown beat repairing.
                        let wrong =
                            matches!(rejection.outcome, Outcome::FailedExample | Outcome::SentBack);
                        let shown = if wrong { String::new() } else { code };
                        let next = Feedback {
                            outcome: rejection.outcome,
                            code: shown,
                            detail: rejection.detail,
                        };
                        if failure.as_ref().is_none_or(|f| {
                            wrong
                                && !matches!(f.outcome, Outcome::FailedExample | Outcome::SentBack)
                        }) {
                            failure = Some(next);
                        }
                    }
                }
            }
            // A task that needs a grant shows it in most candidates: the cycle stops and
            // asks, rather than writing around it. One candidate reaching for the clock
            // while others do without is only that candidate's failure.
            if pool.is_empty() && (wanting * 2 > candidates || (round == rounds && wanting > 0)) {
                return Err(Error::NeedsGrant {
                    selector: request.selector.clone(),
                    grants: wanted.into_iter().collect(),
                });
            }
            if pool.is_empty() || (!caller_examples && pool.len() < 2 && round < rounds) {
                feedback = failure;
                continue;
            }
            let behaviours: Vec<&choose::Behaviour> =
                pool.iter().map(|c| &c.passed.behaviour).collect();
            let misses: Vec<usize> = pool.iter().map(|c| c.passed.misses.len()).collect();
            let clusters = choose::clusters(&behaviours, &misses);
            let choice = Value::List(
                clusters
                    .iter()
                    .map(|g| {
                        Value::List(g.iter().map(|i| Value::Text(pool[*i].tried.label())).collect())
                    })
                    .collect(),
            );
            let Verdict::Install { index, agreeing } =
                choose::decide(&behaviours, &misses, caller_examples)
            else {
                let detail = disagreement(&pool, &request.args, &proposed, &inputs);
                cycle::transition(
                    &self.rt,
                    run.oid,
                    State::Validating,
                    &[("clusters", choice), ("disagreement", Value::Text(detail.clone()))],
                )?;
                return Err(Error::NeedsExample { selector: request.selector.clone(), detail });
            };
            let chosen = &pool[index];
            let installer = Installer {
                rt: &self.rt,
                sandbox: &self.sandbox,
                model: chosen.tried.model.clone(),
            };
            let signature = chosen.passed.signature.adapted(&chosen.code);
            let proven = Proven {
                signature: &signature,
                code: &chosen.code,
                bytes: &chosen.passed.bytes,
                unconfirmed: &chosen.passed.misses,
                confirmed: caller_examples,
                chosen: &chosen.tried.label(),
                agreeing,
                clusters: choice,
            };
            installer.install(run, &proven)?;
            self.journal.append(json!({ "cycle": id, "state": "COMPLETE", "rounds": round, "candidates": pool.len(), "agreeing": agreeing, "duration_ms": started.elapsed().as_millis() as u64, "model": chosen.tried.model }));
            (run.observe)(&Event::State {
                cycle: id.to_owned(),
                state: State::Complete,
                detail: format!(
                    "installed `{}` ({}; {agreeing} of {} passing candidate(s) agree{})",
                    request.selector,
                    chosen.tried.label(),
                    pool.len(),
                    if caller_examples { "" } else { "; unconfirmed: no example was given" }
                ),
            });
            return Ok(());
        }
        Err(Error::Failed(format!(
            "no candidate for `{}` passed after {rounds} round(s); the last: {}",
            request.selector,
            truncate(&last, 600)
        )))
    }

    /// The crucible's review of a candidate that passed its cases (when
    /// [`Options::crucible`] names a critic): every critique goes into the cycle as a
    /// `review` step; an objection sends the candidate back with its reasons.
    fn crucible(
        &self,
        run: &Running<'_>,
        signature: &Signature,
        code: &str,
        passed: &validate::Passed,
        proposed: &[Example],
        inputs: &[Vec<Value>],
    ) -> std::result::Result<(), validate::Rejection> {
        let Some(critic) = &self.options.crucible else { return Ok(()) };
        let shown = |args: &[Value]| {
            let parts: Vec<String> =
                args.iter().map(|a| crate::image::json::to_json(a).to_string()).collect();
            parts.join(", ")
        };
        let arguments: Vec<&[Value]> = std::iter::once(run.request.args.as_slice())
            .chain(proposed.iter().map(|e| e.args.as_slice()))
            .chain(inputs.iter().map(Vec::as_slice))
            .collect();
        let answers = arguments
            .iter()
            .zip(&passed.behaviour)
            .take(6)
            .map(|(args, answer)| (shown(args), answer.clone()))
            .collect();
        let signature = signature.rust();
        let work = crucible::Work {
            selector: &run.request.selector,
            purpose: &run.purpose,
            signature: &signature,
            code,
            answers,
        };
        let critiques = critic.review(&work).map_err(|e| validate::Rejection {
            outcome: Outcome::SentBack,
            detail: format!("the crucible could not review it: {e}"),
        })?;
        // Each objection is checked by running its counterexample (see `crucible`).
        let prover = Prover { rt: &self.rt, sandbox: &self.sandbox, workspace: &self.workspace };
        let findings: Vec<crucible::Finding> = critiques
            .iter()
            .map(|c| {
                self.check_objection(&prover, run.request, &passed.signature, &passed.bytes, c)
            })
            .collect();
        let record: Vec<Value> = critiques
            .iter()
            .zip(&findings)
            .map(|(c, finding)| {
                let mut entry = BTreeMap::from([
                    ("reviewer".to_owned(), Value::Text(c.reviewer.clone())),
                    ("approves".to_owned(), Value::Bool(c.approves)),
                    ("reason".to_owned(), Value::Text(truncate(&c.reason, 1000))),
                    ("finding".to_owned(), Value::Text(finding.as_str().to_owned())),
                ]);
                if let crucible::Finding::Dismissed(why) = finding {
                    entry.insert("dismissed".to_owned(), Value::Text(why.clone()));
                }
                if let Some(e) = &c.counterexample {
                    entry.insert("counterexample".to_owned(), Value::List(e.args.clone()));
                    entry.insert("expected".to_owned(), e.expected.clone());
                }
                Value::Map(entry)
            })
            .collect();
        let mut reviews = match self.rt.object(run.oid).map(|o| o.slots.get("reviews").cloned()) {
            Ok(Some(Value::List(items))) => items,
            _ => Vec::new(),
        };
        reviews.push(Value::List(record));
        // The record of the review is kept even when it sends the candidate back.
        let _ = cycle::transition(
            &self.rt,
            run.oid,
            State::Validating,
            &[("reviews", Value::List(reviews))],
        );
        self.journal.append(json!({ "cycle": run.id, "event": "crucible", "findings": findings.iter().map(crucible::Finding::as_str).collect::<Vec<_>>(), "reviewers": critiques.iter().map(|c| c.reviewer.clone()).collect::<Vec<_>>() }));
        let standing: Vec<String> = critiques
            .iter()
            .zip(&findings)
            .filter_map(|(c, finding)| match (finding, &c.counterexample) {
                (crucible::Finding::Stands { answered }, Some(e)) => Some(format!(
                    "{}: for {} it answers {answered} but should answer {}: {}",
                    c.reviewer,
                    e.args.iter().map(prompt::rust_literal).collect::<Vec<_>>().join(", "),
                    prompt::rust_literal(&e.expected),
                    c.reason
                )),
                _ => None,
            })
            .collect();
        if standing.is_empty() {
            Ok(())
        } else {
            Err(validate::Rejection {
                outcome: Outcome::SentBack,
                detail: format!("The reviewers sent it back:\n{}", standing.join("\n")),
            })
        }
    }

    /// Whether an objection stands: it names a counterexample that fits the signature
    /// and does not contradict the caller's examples, and the candidate answers it
    /// otherwise.
    fn check_objection(
        &self,
        prover: &Prover<'_>,
        request: &Request,
        signature: &Signature,
        bytes: &[u8],
        critique: &crucible::Critique,
    ) -> crucible::Finding {
        if critique.approves {
            return crucible::Finding::Approves;
        }
        let Some(counter) = &critique.counterexample else {
            return crucible::Finding::Unsupported;
        };
        // A counterexample of other types (a small model copies the shape of whatever
        // example it was shown) is not evidence about this method.
        let fits = counter.args.len() == signature.params.len()
            && signature.params.iter().zip(&counter.args).all(|(t, v)| t.fits(v))
            && (!signature.returns_known || signature.returns.fits(&counter.expected));
        if !fits {
            return crucible::Finding::Dismissed(format!(
                "it does not fit the signature {}",
                signature.rust()
            ));
        }
        if let Some(given) = request.examples.iter().find(|e| e.args == counter.args) {
            if given.expected != counter.expected {
                return crucible::Finding::Dismissed(
                    "it contradicts the caller's own example".into(),
                );
            }
        }
        let wanted = choose::render(&Ok(counter.expected.clone()));
        match prover.answer(request, bytes, &counter.args) {
            Ok(answered) if answered == wanted => {
                crucible::Finding::Dismissed("the candidate already answers that".into())
            }
            Ok(answered) => crucible::Finding::Stands { answered },
            Err(e) => {
                crucible::Finding::Dismissed(format!("the counterexample could not be run: {e}"))
            }
        }
    }

    /// Asks the mind, outside any transaction, journalling time and tokens.
    fn ask(
        &self,
        id: &str,
        messages: &[Message],
        what: &str,
        sampling: &Sampling,
    ) -> Result<String> {
        self.ask_streaming(self.mind.as_ref(), id, messages, what, sampling, &mut |_| {})
    }

    /// [`Self::ask`] for a candidate's code, its text shown as [`Event::Text`] while it
    /// is written: gathered for a tenth of a second at a time, since a piece per token
    /// would be an event per token.
    fn ask_watched(
        &self,
        run: &Running<'_>,
        mind: &dyn Mind,
        (round, candidate): (usize, usize),
        messages: &[Message],
        sampling: &Sampling,
    ) -> Result<String> {
        const GATHER: std::time::Duration = std::time::Duration::from_millis(100);
        let mut pending = String::new();
        let mut told = Instant::now();
        let tell = |text: String| {
            (run.observe)(&Event::Text { cycle: run.id.to_owned(), round, candidate, text })
        };
        let answer =
            self.ask_streaming(mind, run.id, messages, "code", sampling, &mut |piece| {
                pending.push_str(piece);
                if told.elapsed() >= GATHER {
                    tell(std::mem::take(&mut pending));
                    told = Instant::now();
                }
            })?;
        if !pending.is_empty() {
            tell(pending);
        }
        Ok(answer)
    }

    fn ask_streaming(
        &self,
        mind: &dyn Mind,
        id: &str,
        messages: &[Message],
        what: &str,
        sampling: &Sampling,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<String> {
        self.check_cancel(id)?;
        let t = Instant::now();
        let completion = mind
            .complete(messages, sampling, on_text)
            .map_err(|e| Error::MindUnavailable(e.to_string()))?;
        self.journal.append(json!({
            "cycle": id, "event": "mind", "asked_for": what, "model": mind.describe(), "duration_ms": t.elapsed().as_millis() as u64,
            "temperature": sampling.temperature, "prompt_tokens": completion.prompt_tokens, "cached_tokens": completion.cached_tokens, "completion_tokens": completion.completion_tokens,
        }));
        Ok(completion.text)
    }

    /// Records one candidate and its fate in the cycle, the journal and the view.
    fn attempt(
        &self,
        run: &Running<'_>,
        tried: &Tried,
        code: &str,
        outcome: Outcome,
        detail: &str,
    ) -> Result<()> {
        let entry = BTreeMap::from([
            ("round".to_owned(), Value::Int(tried.round as i64)),
            ("candidate".to_owned(), Value::Int(tried.index as i64 + 1)),
            ("temperature".to_owned(), Value::Float(f64::from(tried.temperature))),
            ("workedExample".to_owned(), tried.worked.clone().map_or(Value::Nil, Value::Text)),
            ("model".to_owned(), Value::Text(tried.model.clone())),
            ("code".to_owned(), Value::Text(code.to_owned())),
            ("outcome".to_owned(), Value::Text(outcome.as_str().to_owned())),
            ("detail".to_owned(), Value::Text(truncate(detail, 4000))),
        ]);
        cycle::record_attempt(&self.rt, run.oid, entry)?;
        self.journal.append(json!({ "cycle": run.id, "state": "VALIDATING", "round": tried.round, "candidate": tried.index + 1, "outcome": outcome.as_str() }));
        (run.observe)(&Event::Attempt {
            cycle: run.id.to_owned(),
            round: tried.round,
            candidate: tried.index + 1,
            outcome,
            detail: truncate(detail, 4000),
        });
        Ok(())
    }
}

/// How one candidate of a round is asked for: greedily when `greedy` (each model's
/// first), the others sampled warmer and each with its own seed, so a small model's
/// candidates differ rather than repeat one idea; every one stops at `stop`.
struct Variant {
    sampling: Sampling,
}

impl Variant {
    fn of(
        round: usize,
        index: usize,
        greedy: bool,
        max_tokens: usize,
        stop: Vec<String>,
    ) -> Variant {
        let mut sampling = Sampling { max_tokens, stop, ..Sampling::default() };
        if !greedy {
            sampling.temperature = [0.7, 0.9, 1.0][(round + index) % 3];
            sampling.top_p = 0.95;
            sampling.seed = (round * 64 + index) as u64;
        }
        Variant { sampling }
    }
}

/// Which candidate this is, for the record.
struct Tried {
    round: usize,
    index: usize,
    temperature: f32,
    worked: Option<String>,
    /// The model that wrote it.
    model: String,
}

impl Tried {
    fn label(&self) -> String {
        format!("round {} candidate {}", self.round, self.index + 1)
    }
}

/// A candidate that passed, waiting for the choice.
struct Candidate {
    tried: Tried,
    code: String,
    passed: validate::Passed,
}

/// What the next round is told about this one's failures.
struct Feedback {
    outcome: Outcome,
    code: String,
    detail: String,
}

/// How the passing candidates differ, for the person asked for an example: the first
/// input on which they answer differently, and their answers.
fn disagreement(
    pool: &[Candidate],
    args: &[Value],
    proposed: &[Example],
    inputs: &[Vec<Value>],
) -> String {
    let all: Vec<&[Value]> = std::iter::once(args)
        .chain(proposed.iter().map(|e| e.args.as_slice()))
        .chain(inputs.iter().map(Vec::as_slice))
        .collect();
    for (i, args) in all.iter().enumerate() {
        let mut answers: Vec<&str> =
            pool.iter().filter_map(|c| c.passed.behaviour.get(i).map(String::as_str)).collect();
        answers.dedup();
        if answers.len() > 1 {
            let shown: Vec<String> =
                args.iter().map(|a| crate::image::json::to_json(a).to_string()).collect();
            return format!("for {} they answered {}", shown.join(", "), answers.join(" / "));
        }
    }
    format!("only {} candidate(s) passed", pool.len())
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
