//! VALIDATING: a candidate is built (sealed), audited with no grants, and proven on a
//! clone of the receiver in a transaction that is always rolled back; what fails comes
//! back as an [`Outcome`] and the feedback for the mind.

use crate::candidate::Workspace;
use crate::candidate::{self, BuildError, Signature};
use crate::choose::{self, Behaviour};
use crate::error::{Error, Result};
use crate::image::{Method, Value};
use crate::prompt;
use crate::request::{Example, Language, Outcome, Request};
use crate::runtime::Runtime;
use crate::sandbox::Sandbox;
use crate::text::truncate;

/// Passes of the compiler's own suggestions applied to a candidate before its errors go
/// back to the mind: most of a small model's slips are type errors rustc knows the fix
/// for, and a pass costs about a second where a round of the mind costs several.
const COMPILER_FIXES: usize = 3;

/// A candidate that built, passed the audit and met every example the caller gave.
pub(crate) struct Passed {
    /// The component.
    pub(crate) bytes: Vec<u8>,
    /// Its signature, as adapted to what the model declared.
    pub(crate) signature: Signature,
    /// The mind's proposed cases it does not meet.
    pub(crate) misses: Vec<String>,
    /// What it answered on the generated inputs.
    pub(crate) behaviour: Behaviour,
}

/// Why one candidate was not accepted: what became of it and the feedback for the mind.
pub(crate) struct Rejection {
    pub(crate) outcome: Outcome,
    pub(crate) detail: String,
}

/// What validation needs of a synthesizer: the image to prove in, the sandbox that
/// audits, the workspace that builds.
pub(crate) struct Prover<'a> {
    pub(crate) rt: &'a Runtime,
    pub(crate) sandbox: &'a Sandbox,
    pub(crate) workspace: &'a Workspace,
}

impl Prover<'_> {
    /// Builds, audits and proves a candidate (`code` becomes the code as finally
    /// built), and runs it on the generated `inputs`.
    pub(crate) fn validate(
        &self,
        request: &Request,
        signature: &Signature,
        code: &mut String,
        proposed: &[Example],
        inputs: &[Vec<Value>],
    ) -> std::result::Result<Passed, Rejection> {
        if request.language == Language::Wat {
            let bytes = crate::sandbox::build::component_from_wat(
                code,
                &format!("candidate `{}`", request.selector),
            )
            .map_err(|e| Rejection {
                outcome: Outcome::CompileError,
                detail: format!("It does not assemble: {}", truncate(&e.to_string(), 1500)),
            })?;
            return self.check(request, signature, bytes, proposed, inputs, false);
        }
        let mut built = self.workspace.build_fixing(&signature.adapted(code), code, COMPILER_FIXES);
        // A function whose body answers another type than it declares is the commonest
        // slip of a small model; the compiler names both types, so the host fixes the
        // declaration itself instead of spending a round of the mind on it.
        if let Err(BuildError::Compile(rendered)) = &built {
            if let Some(fixed) = candidate::retype(code, &signature.name, rendered) {
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
            Err(BuildError::Compile(rendered)) => {
                return Err(Rejection {
                    outcome: Outcome::CompileError,
                    detail: format!("It does not compile:\n{}", diagnostics(&rendered)),
                })
            }
            // Sealing refused it before cargo ran (see `seal`).
            Err(BuildError::Sealed(reason)) => {
                return Err(Rejection { outcome: Outcome::Refused, detail: reason })
            }
            Err(BuildError::Host(Error::BuildFailed { detail, .. })) => {
                return Err(Rejection {
                    outcome: Outcome::CompileError,
                    detail: format!("It cannot become a capability: {}", truncate(&detail, 1500)),
                })
            }
            Err(BuildError::Host(e)) => {
                return Err(Rejection { outcome: Outcome::CompileError, detail: e.to_string() })
            }
        };
        self.check(request, signature, bytes, proposed, inputs, true)
    }

    /// Audits and proves built candidate bytes. `typed`: the signature's answer type is
    /// the candidate's own (a Rust candidate), so the real arguments' answer must have it.
    fn check(
        &self,
        request: &Request,
        signature: &Signature,
        bytes: Vec<u8>,
        proposed: &[Example],
        inputs: &[Vec<Value>],
        typed: bool,
    ) -> std::result::Result<Passed, Rejection> {
        let what = format!("candidate `{}`", request.selector);
        let granted = crate::sandbox::gate::parse_grants(&request.grants)
            .map_err(|e| Rejection { outcome: Outcome::AuditRefused, detail: e })?;
        // The audit compiles the component once; only a refused one is asked which
        // grants its imports need, to tell a missing grant from any other refusal.
        if let Err(e) = self.sandbox.audit(&bytes, &granted, &what) {
            let needed = self.sandbox.grants_needed(&bytes, &what).unwrap_or_default();
            let missing: Vec<String> =
                needed.difference(&granted).map(|g| g.name().to_owned()).collect();
            if !missing.is_empty() {
                return Err(Rejection { outcome: Outcome::NeedsGrant, detail: missing.join(", ") });
            }
            return Err(Rejection {
                outcome: Outcome::AuditRefused,
                detail: format!("The audit refused it: {e}. Use only plain computation."),
            });
        }
        // Proposed cases of another answer type than the candidate's say nothing about it.
        let proposed: Vec<Example> =
            proposed.iter().filter(|e| signature.returns.fits(&e.expected)).cloned().collect();
        let (failures, behaviour) = self
            .prove(request, signature, &bytes, &proposed, inputs, typed)
            .map_err(|e| Rejection { outcome: Outcome::FailedExample, detail: e.to_string() })?;
        let (hard, soft): (Vec<_>, Vec<_>) = failures.into_iter().partition(|(caller, _)| *caller);
        if let Some((_, detail)) = hard.first() {
            return Err(Rejection { outcome: Outcome::FailedExample, detail: detail.clone() });
        }
        Ok(Passed {
            bytes,
            signature: signature.clone(),
            misses: soft.into_iter().map(|(_, d)| d).collect(),
            behaviour,
        })
    }

    /// What the candidate `bytes` answers for `args`, on a clone of the receiver in a
    /// transaction that is always rolled back (rendered as the behaviour is).
    pub(crate) fn answer(&self, request: &Request, bytes: &[u8], args: &[Value]) -> Result<String> {
        self.rt.view(|cx| {
            let clone = self.candidate_on_clone(cx, request, bytes)?;
            Ok(choose::render(&cx.send(clone, &request.selector, args)))
        })
    }

    /// A clone of the receiver with the candidate installed under the selector.
    fn candidate_on_clone(
        &self,
        cx: &mut crate::runtime::Context<'_, '_>,
        request: &Request,
        bytes: &[u8],
    ) -> Result<crate::image::Oid> {
        let clone = cx.clone_object(request.receiver)?;
        let component = cx.tx_mut("store a blob")?.put_blob(bytes)?;
        cx.set_slot(
            clone,
            &request.selector,
            &Value::Method(Method::Component {
                component,
                grants: request.grants.clone(),
                deadline_ms: None,
            }),
        )?;
        Ok(clone)
    }

    /// Runs the cases, the real arguments, then the generated inputs, on a clone of
    /// the receiver in a transaction that is always rolled back. Answers `(from the
    /// caller, what failed)` and the behaviour on the inputs.
    fn prove(
        &self,
        request: &Request,
        signature: &Signature,
        bytes: &[u8],
        proposed: &[Example],
        inputs: &[Vec<Value>],
        typed: bool,
    ) -> Result<(Vec<(bool, String)>, Behaviour)> {
        self.rt.view(|cx| {
            let clone = self.candidate_on_clone(cx, request, bytes)?;
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
                Ok(got) if !typed || signature.returns.fits(&got) => {}
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
            // The real arguments and the mind's proposed cases are inputs too:
            // candidates that agree on them agree on what was asked.
            let behaviour = std::iter::once(&request.args)
                .chain(proposed.iter().map(|e| &e.args))
                .chain(inputs)
                .map(|args| choose::render(&cx.send(clone, &request.selector, args)))
                .collect();
            Ok((failures, behaviour))
        })
    }
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

#[cfg(test)]
mod tests {
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
