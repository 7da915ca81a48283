//! The Alchemical Crucible (seeds 003): an optional stage of VALIDATING in which other
//! minds review a candidate that already built, passed the audit and met its examples,
//! and may send it back with reasons.
//!
//! Execution decides whether a candidate is *correct on the cases*; the crucible asks
//! whether it is *the method the brief asked for* — a candidate that special-cases the
//! examples, ignores part of the brief, or does something unsafe for the receiver passes
//! every test and is still wrong. Who reviews is not this layer's to know: the composite
//! mind (its personas BRICK and ALFRED) implements [`Critic`], and the cycle records
//! every critique in the candidate's attempt. Off unless [`crate::Options::crucible`]
//! names a critic: each review costs a question to the mind per reviewer.

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
    /// Why (the reason goes back to the mind when it does not approve).
    pub reason: String,
}

/// Something that reviews candidates: asked once per passing candidate, outside any
/// transaction.
pub trait Critic: Send + Sync {
    /// Every reviewer's critique of `work`. An error (the mind unreachable) fails the
    /// cycle like any other failure to think: a review that could not happen is not an
    /// approval.
    fn review(&self, work: &Work<'_>) -> crate::error::Result<Vec<Critique>>;
}

/// The reasons of the critiques that send a candidate back, one line each; empty when
/// every reviewer approves.
pub fn objections(critiques: &[Critique]) -> String {
    critiques
        .iter()
        .filter(|c| !c.approves)
        .map(|c| format!("{}: {}", c.reviewer, c.reason))
        .collect::<Vec<_>>()
        .join("\n")
}
