//! The anchor of the MBPP benchmark: the raw model, asked once (greedy) for the
//! problem as a plain Rust function with its signature, compiled natively by rustc and
//! run on the same hidden cases — what the model does without batos around it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use batos::mind::{Message, Mind, Sampling};
use batos::Value;

use super::mbpp::Problem;

/// How the anchor did on one problem.
pub struct AnchorResult {
    /// Every hidden case passed.
    pub solved: bool,
    /// Seconds: the model's answer, the compile and the run.
    pub seconds: f64,
}

/// Asks `mind` once, greedily, compiles and runs the answer on the hidden cases.
pub fn run(mind: &dyn Mind, problem: &Problem, dir: &Path) -> AnchorResult {
    let started = Instant::now();
    let example = problem
        .examples
        .first()
        .map(|(args, expect)| {
            let shown: Vec<String> =
                args.iter().map(batos::image::json::to_json).map(|j| j.to_string()).collect();
            format!(
                "\nFor example, {}({}) == {}.",
                problem.selector,
                shown.join(", "),
                batos::image::json::to_json(expect)
            )
        })
        .unwrap_or_default();
    let messages = vec![
        Message::system("You are an expert Rust programmer. You answer with code only."),
        Message::user(format!(
            "{}\n\nWrite the Rust function `{}`.{example}\nAnswer with one ```rust code block holding the complete function.",
            problem.brief, problem.signature
        )),
    ];
    let sampling = Sampling { max_tokens: 512, ..Sampling::default() };
    let answer =
        mind.complete(&messages, &sampling, &mut |_| {}).map(|c| c.text).unwrap_or_default();
    let solved = batos::synthesis::candidate::extract_function(&answer, &problem.selector)
        .and_then(|function| program(problem, &function))
        .and_then(|source| compile_and_run(&source, dir))
        .is_some_and(|lines| {
            lines.len() == problem.cases.len()
                && lines.iter().zip(&problem.cases).all(|(line, (_, expect))| {
                    batos::image::json::parse(line, &mut |_| Err("no objects".into()))
                        .is_ok_and(|got| super::close(&got, expect))
                })
        });
    AnchorResult { solved, seconds: started.elapsed().as_secs_f64() }
}

/// A program printing the function's answer on each hidden case as JSON, one a line
/// (`panic` for a case that panics).
fn program(problem: &Problem, function: &str) -> Option<String> {
    let params = problem.param_types()?;
    let mut calls = String::new();
    for (args, _) in &problem.cases {
        let literals: Option<Vec<String>> =
            args.iter().zip(&params).map(|(v, t)| literal(v, t)).collect();
        calls.push_str(&format!(
            "    match std::panic::catch_unwind(|| {}({})) {{ Ok(v) => println!(\"{{}}\", v.j()), Err(_) => println!(\"panic\") }}\n",
            problem.selector,
            literals?.join(", ")
        ));
    }
    Some(format!(
        "#![allow(unused, non_snake_case)]\nuse std::collections::*;\nuse std::cmp::*;\n{function}\n{JSON}\nfn main() {{\n    std::panic::set_hook(Box::new(|_| {{}}));\n{calls}}}\n"
    ))
}

/// JSON output for the answer types MBPP uses.
const JSON: &str = r#"trait J { fn j(&self) -> String; }
impl J for isize { fn j(&self) -> String { self.to_string() } }
impl J for i64 { fn j(&self) -> String { self.to_string() } }
impl J for usize { fn j(&self) -> String { self.to_string() } }
impl J for i32 { fn j(&self) -> String { self.to_string() } }
impl J for bool { fn j(&self) -> String { self.to_string() } }
impl J for f64 { fn j(&self) -> String { if self.is_finite() { format!("{:?}", self) } else { "null".into() } } }
impl J for String { fn j(&self) -> String {
    let mut out = String::from("\"");
    for c in self.chars() { match c { '"' => out.push_str("\\\""), '\\' => out.push_str("\\\\"), c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)), c => out.push(c) } }
    out.push('"'); out } }
impl<T: J> J for Vec<T> { fn j(&self) -> String { format!("[{}]", self.iter().map(|x| x.j()).collect::<Vec<_>>().join(",")) } }
"#;

/// A value as a Rust literal of type `t` (as the signature writes it).
fn literal(value: &Value, t: &str) -> Option<String> {
    Some(match (value, t) {
        (Value::Int(n), _) => format!("{n}"),
        (Value::Float(f), _) => format!("{f:?}f64"),
        (Value::Bool(b), _) => b.to_string(),
        (Value::Text(s), _) => format!("String::from({s:?})"),
        (Value::List(items), t) => {
            let item = t.strip_prefix("Vec<")?.strip_suffix('>')?;
            let items: Option<Vec<String>> = items.iter().map(|v| literal(v, item)).collect();
            format!("Vec::<{item}>::from([{}])", items?.join(", "))
        }
        _ => return None,
    })
}

/// Compiles with rustc and runs with a time limit; the output's lines.
fn compile_and_run(source: &str, dir: &Path) -> Option<Vec<String>> {
    let main = dir.join("anchor.rs");
    let binary = dir.join("anchor");
    std::fs::write(&main, source).ok()?;
    let built = Command::new("rustc")
        .args(["--edition", "2021", "-O", "-o"])
        .arg(&binary)
        .arg(&main)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    if !built.success() {
        return None;
    }
    let child = Command::new(&binary).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(out) => out.ok()?,
        Err(_) => {
            // Past its time (a loop on some case): killed, and the problem unsolved.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            return None;
        }
    };
    Some(String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect())
}
