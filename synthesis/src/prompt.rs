//! What the synthesis cycle says to the mind, and how it reads the answers. Small
//! models follow short, concrete prompts best: the signature to write, the examples as
//! Rust expressions, at most two worked examples, and on a repair round the previous
//! code with exactly what went wrong.

use super::candidate::Signature;
use super::skills::Skill;
use crate::image::{json, Value};
use crate::mind::Message;
use crate::request::Example;

/// What the host offers synthesised code, beyond the standard library.
pub const SDK_SUMMARY: &str =
    "Use only the Rust standard library (no crates, no files, no network, no threads); \
HashMap, HashSet, BTreeMap, VecDeque, max, min and Ordering are already imported. \
Parameters and answers may be integers of any width, f64, bool, String, &str, char, Vec<T>, &[T], \
HashSet<T>, HashMap<String, T>, Option<T>, or Result<T, String> to report an error. \
The host also offers batos_guest_sdk::now() -> (u64, u32) (seconds and nanoseconds since the Unix epoch), \
batos_guest_sdk::random_u64() -> u64 and batos_guest_sdk::complete(prompt: &str) -> Result<String, Error> \
(an answer from the system's language model); use them only when the task needs the time, \
randomness or the model: each needs the person's grant.";

/// What a stateful method may call on its receiver `this` (the SDK's `helpers`: method
/// calls on `this`, which a small model gets right more often than generic functions).
pub const STATE_SUMMARY: &str = "`this` is the object receiving the message. \
Read and write its slots with this.get_int(\"total\") -> Option<i64> (None when unset), this.set_int(\"total\", n), \
this.get_text(\"label\") -> Option<String>, this.set_text(\"label\", text). \
Send it a message with this.send_int(\"double:\", &[n]) -> i64 or this.send_text(\"greet:\", &[\"Ada\"]) -> String; \
for other types, send::<T>(this, \"selector\", (arguments,)) answers a T.";

/// A value as a Rust expression, for prompts.
pub fn rust_literal(value: &Value) -> String {
    match value {
        Value::Text(s) => format!("{s:?}.to_string()"),
        Value::List(items) => {
            format!("vec![{}]", items.iter().map(rust_literal).collect::<Vec<_>>().join(", "))
        }
        Value::Float(f) if f.fract() == 0.0 => format!("{f:.1}"),
        other => json::to_json(other).to_string(),
    }
}

fn call_text(signature: &Signature, example: &Example) -> String {
    let mut args: Vec<String> = example.args.iter().map(rust_literal).collect();
    if signature.receiver {
        args.insert(0, "this".into());
    }
    format!("{}({}) == {}", signature.name, args.join(", "), rust_literal(&example.expected))
}

/// The purpose of the method, for people and the mind: the brief, else the selector's
/// words (`sumList:` → "sum list") with the arguments it was sent.
pub fn purpose(selector: &str, args: &[Value], brief: Option<&str>) -> String {
    if let Some(b) = brief.filter(|b| !b.trim().is_empty()) {
        return b.trim().to_owned();
    }
    let mut words = String::new();
    for c in selector.chars() {
        if c == ':' || c == '_' {
            words.push(' ');
        } else if c.is_ascii_uppercase() {
            words.push(' ');
            words.push(c.to_ascii_lowercase());
        } else {
            words.push(c);
        }
    }
    let words = words.split_whitespace().collect::<Vec<_>>().join(" ");
    let shown: Vec<String> = args.iter().map(rust_literal).collect();
    if shown.is_empty() {
        format!("do what its name says: {words}")
    } else {
        format!("do what its name says: {words} (for example for {})", shown.join(", "))
    }
}

/// The first request for code: the signature, the purpose, the examples, one worked
/// example of the library (`skills`), and what the receiver already understands
/// (`understood`), which the method may use by taking `this: &Object` first.
pub fn synthesize(
    signature: &Signature,
    purpose: &str,
    examples: &[Example],
    skills: &[Skill],
    understood: &[Skill],
) -> Vec<Message> {
    let mut user = format!(
        "Write this Rust function:\n\n{} {{ ... }}\n\nIt should {purpose}.\n{SDK_SUMMARY}\n",
        signature.rust()
    );
    if !signature.returns_known {
        user.push_str("Replace RETURN with the fitting type (i64, f64, bool, String, Vec<i64>, Vec<f64>, Vec<String>, Option<i64>, ...).\n");
    }
    if signature.receiver {
        user.push_str(STATE_SUMMARY);
        user.push('\n');
    }
    if !understood.is_empty() {
        if !signature.receiver {
            user.push_str("\nIt may take `this: &Object` as its first parameter to use what the receiving object already understands:\n");
        } else {
            user.push_str("\n`this` already understands:\n");
        }
        for s in understood {
            let how =
                if s.signature.is_empty() { String::new() } else { format!(" ({})", s.signature) };
            user.push_str(&format!(
                "- \"{}\"{how}: {}\n",
                s.selector,
                s.description.trim_end_matches('.')
            ));
        }
        user.push_str(
            "Call one with this.send_int(\"selector\", &[n]) or this.send_text(\"selector\", &[text]), or send::<T>(this, \"selector\", (arguments,)) for an answer of type T.\n",
        );
    }
    if !examples.is_empty() {
        user.push_str("\nIt must satisfy:\n");
        for e in examples {
            user.push_str(&format!("{}\n", call_text(signature, e)));
        }
    }
    // Worked examples in Rust only: shown a WAT plugin's source, a small model copies it.
    let rust = |s: &&Skill| s.source.contains("fn ") && !s.source.contains("(func ");
    for s in skills.iter().filter(rust).take(2) {
        user.push_str(&format!(
            "\nA verified function of this system that {}:\n```rust\n{}\n```\n",
            s.description.trim_end_matches('.'),
            s.source.trim()
        ));
    }
    user.push_str("\nAnswer with one ```rust code block holding the complete function.");
    vec![
        Message::system("You are an expert Rust programmer. You answer with code only."),
        Message::user(user),
    ]
}

/// The first request for a method in WAT: the `$invoke` function against the WAT
/// prelude's contract and helpers (for minds strong enough to write it).
pub fn synthesize_wat(selector: &str, purpose: &str, examples: &[Example]) -> Vec<Message> {
    let contract: String = crate::sandbox::build::WAT_PRELUDE
        .lines()
        .take_while(|l| l.starts_with(";;"))
        .map(|l| format!("{l}\n"))
        .collect();
    let helpers: String = crate::sandbox::build::WAT_PRELUDE
        .lines()
        .filter(|l| l.trim_start().starts_with(";;") || l.trim_start().starts_with("(func $"))
        .skip_while(|l| l.starts_with(";;"))
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    let mut user = format!("Write the WebAssembly text function `$invoke` that answers the message `{selector}`: it should {purpose}.\n\nThe contract:\n{contract}\nThe helpers you may call:\n{helpers}");
    if !examples.is_empty() {
        user.push_str("\nIt must satisfy (arguments => answer, as JSON):\n");
        for e in examples {
            let args: Vec<String> = e.args.iter().map(|a| json::to_json(a).to_string()).collect();
            user.push_str(&format!("{} => {}\n", args.join(", "), json::to_json(&e.expected)));
        }
    }
    user.push_str("\nAnswer with one ```wat code block holding `(func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32) ...)` and any helper functions of your own.");
    vec![
        Message::system("You are an expert in WebAssembly text format. You answer with code only."),
        Message::user(user),
    ]
}

/// Where an answer with code is complete. What a model writes after its function (a
/// `fn main` or tests showing it off, the code block's end and an explanation) is
/// dropped by extraction anyway, and on this machine a 1.5B model writes about ten
/// tokens a second. A bare fence line closes the block, since the prompt asks for
/// one opened as ```rust (or ```wat); a method named `main` keeps its own definition.
pub fn code_stops(function: &str) -> Vec<String> {
    let mut stops = vec!["\n```\n".to_owned(), "\n#[cfg(test)]".to_owned()];
    if function != "main" {
        stops.push("\nfn main(".to_owned());
    }
    stops
}

/// The `$invoke` function (and its helpers) out of an answer in WAT.
pub fn extract_wat(answer: &str) -> Option<String> {
    let blocks = answer
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|b| b.trim_start_matches(|c: char| c.is_ascii_alphanumeric()).trim());
    blocks
        .chain(std::iter::once(answer.trim()))
        .find(|c| c.contains("(func $invoke"))
        .map(str::to_owned)
}

/// A repair round: the first request again, with the previous code and what went
/// wrong with it. One fresh request, not a continued chat: a small model asked to fix
/// its own answer in a conversation tends to repeat it.
pub fn repair(first: &[Message], code: &str, problem: &str) -> Vec<Message> {
    let mut messages = first.to_vec();
    if let Some(last) = messages.last_mut() {
        let attempt = if code.is_empty() {
            "An earlier attempt was wrong:".to_owned()
        } else {
            format!("This attempt is wrong:\n```rust\n{code}\n```")
        };
        last.content = format!(
            "{}\n\n{attempt}\n{problem}\nWrite a corrected version of the whole function.",
            last.content
                .trim_end_matches(
                    "Answer with one ```rust code block holding the complete function."
                )
                .trim_end()
        );
        last.content
            .push_str("\nAnswer with one ```rust code block holding the complete function.");
    }
    messages
}

/// A request for example cases of a function nobody gave examples for. The answer's
/// type is left open: the cases tell it.
pub fn propose_examples(signature: &Signature, purpose: &str) -> Vec<Message> {
    let mut params: Vec<String> = signature
        .params
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{}: {}", (b'a' + i as u8) as char, t.rust()))
        .collect();
    if signature.receiver {
        params.insert(0, "this: &Object".into());
    }
    let user = format!(
        "The Rust function `{}({})` should {purpose}. Give three test cases, one per line, exactly in the form\n{}(ARGUMENTS) == RESULT\nusing Rust literals (true/false for yes/no answers), and nothing else. Cases on `this` run in order, one after the other.",
        signature.name,
        params.join(", "),
        signature.name
    );
    vec![Message::user(user)]
}

/// Reads proposed cases `name(args) == result` whose arguments have the signature's
/// types and whose results all have one type (the most common among them).
pub fn parse_examples(signature: &Signature, answer: &str) -> Vec<Example> {
    let all = parse_cases(signature, answer);
    let mut counts: Vec<(super::candidate::Type, usize)> = Vec::new();
    for e in &all {
        let t = super::candidate::Type::of(&e.expected);
        match counts.iter_mut().find(|(c, _)| *c == t) {
            Some((_, n)) => *n += 1,
            None => counts.push((t, 1)),
        }
    }
    let Some((common, _)) = counts.iter().max_by_key(|(_, n)| *n).cloned() else { return vec![] };
    all.into_iter().filter(|e| common.fits(&e.expected)).take(3).collect()
}

fn parse_cases(signature: &Signature, answer: &str) -> Vec<Example> {
    let mut out = Vec::new();
    for line in answer.lines() {
        let line = line.trim().trim_end_matches(';');
        let (line, asserted) = match line.strip_prefix("assert_eq!(") {
            Some(inner) => (inner.strip_suffix(')').unwrap_or(inner), true),
            None => (line, false),
        };
        let Some(rest) = line.strip_prefix(&format!("{}(", signature.name)) else { continue };
        let Some(end) = closing_paren(rest) else { continue };
        let after = rest[end + 1..].trim_start();
        let result = if asserted { after.strip_prefix(',') } else { after.strip_prefix("==") };
        let Some(result) = result else { continue };
        let mut inside = rest[..end].trim();
        if signature.receiver {
            inside = inside
                .strip_prefix("&this")
                .or_else(|| inside.strip_prefix("this"))
                .map_or(inside, |r| r.trim_start().trim_start_matches(',').trim());
        }
        let (Some(Value::List(args)), Some(expected)) =
            (from_rust(&format!("[{inside}]")), from_rust(result.trim()))
        else {
            continue;
        };
        let types_match = args.len() == signature.params.len()
            && args
                .iter()
                .zip(&signature.params)
                .all(|(a, t)| t.fits(a) || t.unify(&super::candidate::Type::of(a)) == *t);
        if types_match {
            out.push(Example { args, expected });
        }
    }
    out
}

/// Where the parenthesis opened just before `text` closes (strings and brackets skipped).
fn closing_paren(text: &str) -> Option<usize> {
    let (mut depth, mut in_text, mut escaped) = (1usize, false, false);
    for (i, c) in text.char_indices() {
        if in_text {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_text = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_text = true,
            '(' | '[' => depth += 1,
            ')' | ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// A Rust literal (numbers, strings, `.to_string()`, `vec![…]`, booleans) as a value.
fn from_rust(text: &str) -> Option<Value> {
    let normalized = text
        .replace(".to_string()", "")
        .replace(".to_owned()", "")
        .replace("String::from(", "(")
        .replace("vec![", "[")
        .replace("i64", "")
        .replace("_u64", "");
    json::parse(normalized.trim(), &mut |_| Err("no objects in examples".into())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidate::{extract_function, Type};

    /// `answer` as a mind stopping at the first of `stops` leaves it.
    fn stopped(answer: &str, stops: &[String]) -> String {
        let at = stops.iter().filter_map(|s| answer.find(s.as_str())).min();
        answer[..at.unwrap_or(answer.len())].to_owned()
    }

    #[test]
    fn an_answer_stopped_after_its_function_extracts_the_same_function() {
        let function =
            "fn double(n: i64) -> i64 {\n    helper(n) * 2\n}\nfn helper(n: i64) -> i64 { n }";
        let stops = code_stops("double");
        for tail in [
            "\nfn main() {\n    assert_eq!(double(2), 4);\n}\n```\nThis doubles n.",
            "\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {}\n}\n```\n",
            "\n```\n\nExplanation: it doubles.\n",
            "\n```",
        ] {
            let answer = format!("Here it is:\n```rust\n{function}{tail}");
            let cut = stopped(&answer, &stops);
            assert!(cut.len() < answer.len() || tail == "\n```", "{tail:?} stops early");
            assert_eq!(
                extract_function(&cut, "double"),
                extract_function(&answer, "double"),
                "{tail:?}"
            );
            assert!(extract_function(&cut, "double").is_some_and(|c| c.contains("fn helper")));
        }
        // A method named `main` is not cut off at its own definition.
        let answer = "```rust\nfn main(n: i64) -> i64 {\n    n\n}\n```\n";
        assert_eq!(
            stopped(answer, &code_stops("main")),
            "```rust\nfn main(n: i64) -> i64 {\n    n\n}"
        );
        assert!(extract_function(&stopped(answer, &code_stops("main")), "main").is_some());
    }

    #[test]
    fn proposed_examples_are_read_and_type_checked() {
        let sig = Signature {
            name: "factorial".into(),
            params: vec![Type::Int],
            returns: Type::Int,
            receiver: false,
            returns_known: true,
        };
        let answer = "factorial(0) == 1\nfactorial(5) == 120\nassert_eq!(factorial(3), 6);\nfactorial(\"x\") == 1\nfactorial(2) == \"two\"\nnonsense";
        let got = parse_examples(&sig, answer);
        assert_eq!(
            got.iter().map(|e| (e.args.clone(), e.expected.clone())).collect::<Vec<_>>(),
            vec![
                (vec![Value::Int(0)], Value::Int(1)),
                (vec![Value::Int(5)], Value::Int(120)),
                (vec![Value::Int(3)], Value::Int(6)),
            ],
            "the odd one out (text) loses to the common type"
        );
        let sig = Signature {
            name: "reverse".into(),
            params: vec![Type::Text],
            returns: Type::Text,
            receiver: false,
            returns_known: true,
        };
        let got = parse_examples(&sig, "reverse(\"abc\".to_string()) == \"cba\".to_string()");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].expected, Value::Text("cba".into()));
    }

    #[test]
    fn values_read_as_rust_literals() {
        assert_eq!(rust_literal(&Value::Text("a\"b".into())), "\"a\\\"b\".to_string()");
        assert_eq!(rust_literal(&Value::List(vec![Value::Int(1), Value::Int(2)])), "vec![1, 2]");
        assert_eq!(rust_literal(&Value::Float(2.0)), "2.0");
    }
}
