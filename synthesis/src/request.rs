//! What a synthesis is asked for ([`Request`], [`Example`], [`Language`]), what it
//! reports as it goes ([`Event`], [`Outcome`]), and its knobs ([`Options`]).

use crate::cycle::State;
use crate::error::Error;
use crate::image::{json as vjson, Oid, Value};

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
            grants: vec![],
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
    /// One Rust function; the host adds the rest. The default: small models write
    /// usable Rust, not usable WAT (measured on the embedded 0.5B).
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
    /// Grants the person allows the synthesised method (`clock`, `random`, `mind`):
    /// the audit admits those imports, the method is installed with them, and the gate
    /// enforces them on every call. A brief that needs one the request lacks stops the
    /// cycle with `needs_grant` before the mind is asked.
    pub grants: Vec<String>,
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
        /// Which candidate of the round, from 1.
        candidate: usize,
        /// What became of it.
        outcome: Outcome,
        /// What went wrong (diagnostics, the failing case).
        detail: String,
    },
    /// The mind wrote more of a candidate (pieces gathered a few times a second), for
    /// people watching the cycle.
    Text {
        /// The cycle.
        cycle: String,
        /// Its round, from 1.
        round: usize,
        /// Which candidate of the round, from 1.
        candidate: usize,
        /// The text since the last piece.
        text: String,
    },
}

/// Knobs of the cycle.
#[derive(Clone)]
pub struct Options {
    /// Rounds of synthesis and repair before FAILED (Voyager uses 4).
    pub max_rounds: usize,
    /// Tokens the mind may spend on one answer.
    pub max_tokens: usize,
    /// Candidates asked for in a round (each sampled differently, with its own worked
    /// example); a round stops early once two that pass agree, or, with the caller's
    /// examples and no `second_opinion`, once one passes. Several diverse samples
    /// filtered by execution beat long repair chains for small models (Olausson et al.
    /// 2023; Brown et al. 2024); three keeps a round within seconds on two cores.
    pub candidates: usize,
    /// With the caller's examples, also wait for a second passing candidate that agrees
    /// with the first (or for the round's end) before installing. Off by default: the
    /// caller's examples already vouch for a candidate that meets them, and the second
    /// opinion costs a whole extra answer from the mind, which takes about nine tenths
    /// of a cycle: measured on the 1.5B, it raised the task set's median from 8.5 s to
    /// 22.4 s and solved nothing more (ARCHITECTURE.md, "The default model";
    /// `BATOS_SECOND_OPINION=1` in the synthesis bench). Without the
    /// caller's examples agreement is always required (see [`crate::choose`]).
    pub second_opinion: bool,
    /// The Alchemical Crucible: who reviews a candidate that passed its cases before it
    /// may compete ([`crate::crucible`]). `None` (the default): each review is a
    /// question to the mind per reviewer, and its effect on success is measured by the
    /// synthesis bench, not assumed.
    pub crucible: Option<std::sync::Arc<dyn crate::crucible::Critic>>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("max_rounds", &self.max_rounds)
            .field("max_tokens", &self.max_tokens)
            .field("candidates", &self.candidates)
            .field("second_opinion", &self.second_opinion)
            .field("crucible", &self.crucible.is_some())
            .finish()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_rounds: 4,
            max_tokens: 400,
            candidates: 3,
            second_opinion: false,
            crucible: None,
        }
    }
}

/// Whether a send's failure is the one a cycle answers: the receiver itself did not
/// understand the selector (not some method deeper down).
pub fn starts_cycle(request: &Request, error: &Error) -> bool {
    matches!(error, Error::DoesNotUnderstand { receiver, selector } if *receiver == request.receiver && *selector == request.selector)
}

/// What became of one candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It built, passed the audit and every case: installed.
    Passed,
    /// The answer held no code for the function.
    NoCode,
    /// Sealing refused it before it was built.
    Refused,
    /// It did not compile (or assemble, or componentize).
    CompileError,
    /// The audit refused the component.
    AuditRefused,
    /// A case, or the real arguments, failed.
    FailedExample,
    /// It needs grants the person did not give.
    NeedsGrant,
    /// It passed its cases, and the crucible's reviewers sent it back with reasons.
    SentBack,
}

impl Outcome {
    /// Its stable name, as kept in the cycle's attempts and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::NoCode => "no_code",
            Outcome::Refused => "refused",
            Outcome::CompileError => "compile_error",
            Outcome::AuditRefused => "audit_refused",
            Outcome::FailedExample => "failed_example",
            Outcome::NeedsGrant => "needs_grant",
            Outcome::SentBack => "sent_back",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
