//! The Alchemical Crucible (seeds 003): an optional stage of VALIDATING in which other
//! minds review a candidate that already built, passed the audit and met its examples,
//! and may send it back with reasons.
//!
//! Execution decides whether a candidate is *correct on the cases*; the crucible asks
//! whether it is *the method the brief asked for* — a candidate that special-cases the
//! examples or ignores part of the brief passes every test and is still wrong. Who
//! reviews is not this layer's to know: the composite mind (its personas BRICK and
//! ALFRED) implements [`Critic`]. Off unless [`crate::Options::crucible`] names a
//! critic: each review costs a question to the mind per reviewer.
//!
//! **An objection must be executable.** A reviewer that objects names a counterexample
//! — an input and the answer it should give — and the host runs the candidate on it:
//! the objection *stands* (the candidate goes back, the counterexample shown to the
//! mind) only if the candidate answers otherwise and the counterexample does not
//! contradict the caller's own examples. An objection without one is *unsupported* and
//! one the candidate already meets is *dismissed*; both are kept in the cycle's record
//! and send nothing back. Measured with the embedded 0.5B model as reviewer, objections
//! in words alone sent back every candidate of the task set's first tasks, correct ones
//! included ("it does not handle negative numbers"); a small model's doubts are only
//! worth acting on when execution confirms them.

/// A candidate under review: what it is for and what it does.
#[derive(Clone, Debug)]
pub struct Work<'a> {
    /// The selector it answers.
    pub selector: &'a str,
    /// The mission brief (or what the selector implies).
    pub purpose: &'a str,
    /// Its Rust signature.
    pub signature: &'a str,
    /// Its code, as built.
    pub code: &'a str,
    /// What it answered, as `(arguments, answer)` in JSON, on the real arguments and the
    /// cases: reviewers judge behaviour, not only text.
    pub answers: Vec<(String, String)>,
}

/// One reviewer's judgement.
#[derive(Clone, Debug, PartialEq)]
pub struct Critique {
    /// Who judged (a persona's name).
    pub reviewer: String,
    /// Whether it may be installed.
    pub approves: bool,
    /// Why (the reason goes back to the mind when the objection stands).
    pub reason: String,
    /// The input on which, the reviewer says, the candidate is wrong, and the answer it
    /// should give there; an objection without one does not send the candidate back.
    pub counterexample: Option<crate::Example>,
}

/// What became of a critique once the host checked it.
#[derive(Clone, Debug, PartialEq)]
pub enum Finding {
    /// The reviewer approves.
    Approves,
    /// The candidate answers the counterexample otherwise: it goes back.
    Stands {
        /// What it answered there.
        answered: String,
    },
    /// The candidate already answers what the reviewer wants, or the counterexample
    /// contradicts the caller's examples.
    Dismissed(String),
    /// The reviewer objected without a counterexample.
    Unsupported,
}

impl Finding {
    /// Its name, as the cycle's record keeps it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Finding::Approves => "approves",
            Finding::Stands { .. } => "stands",
            Finding::Dismissed(_) => "dismissed",
            Finding::Unsupported => "unsupported",
        }
    }
}

/// Something that reviews candidates: asked once per passing candidate, outside any
/// transaction.
pub trait Critic: Send + Sync {
    /// Every reviewer's critique of `work`. An error (the mind unreachable) fails the
    /// cycle like any other failure to think: a review that could not happen is not an
    /// approval.
    fn review(&self, work: &Work<'_>) -> crate::error::Result<Vec<Critique>>;
}

/// The reasons of the critiques that object, one line each; empty when every reviewer
/// approves.
pub fn objections(critiques: &[Critique]) -> String {
    critiques
        .iter()
        .filter(|c| !c.approves)
        .map(|c| format!("{}: {}", c.reviewer, c.reason))
        .collect::<Vec<_>>()
        .join("\n")
}
