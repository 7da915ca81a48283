//! The synthesis layer: a message nobody understands becomes a cycle in which the mind
//! writes the missing method, the host builds, audits and proves it, and installs it.
//!
//! Built so far: [`candidate`] — the typed signature a message implies, the function
//! taken out of a model's answer, the fixed code around it, and the warm workspace that
//! builds it into a component. The cycle's state machine is the next step.

pub mod candidate;
