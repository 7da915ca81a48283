//! `batos session`: the interactive face — an `Architect >` prompt, like the seeds'
//! chat client. A line is a message (`genesis factorial: 5`, with optional
//! `--brief "…"`, `--example "5 => 120"`, `--stateful`), any command of the command
//! line (`inspect OBJ`, `cycles`, `cycle ID`, `plugin list`, …, parsed by the same clap
//! definitions), `@brick …` (a question to one persona; `@ …` to the personas the
//! routing chooses), `help`, `quit`, or words: the mind translates words into a message,
//! shows it, and runs it when the user agrees.

use std::io::{BufRead, Write};

use batos_kernel::Failure;
use batos_protocol::Request;
use clap::error::ErrorKind;
use clap::Parser;

use crate::args::{Command, SessionLine};
use crate::backend::Backend;
use crate::commands;

const HELP: &str = "Send a message:   OBJECT SELECTOR [ARGS…] [--brief \"what it should do\"] [--example \"ARGS => RESULT\"]… [--stateful] [--wat]
                  e.g.  genesis factorial: 5
Or say it:        create a method to report the current system time
Ask the personas: @brick how does the image survive a crash?   (@alfred, @robin, @babs; `@ …` lets the routing choose two)
Commands:         any command of `batos` (inspect OBJECT · cycles · cycle ID · history · plugin list …) · help · quit
A message nothing understands starts a synthesis cycle, shown as it runs.";

/// Splits a line into words, keeping "double quoted" stretches (with \" inside) whole.
pub fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
                word.push('"');
            }
            '\\' if quoted => {
                word.push('\\');
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err("a quote is not closed".into());
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

/// Runs the session on stdin/stdout until `quit` or end of input, through `backend`
/// (the kernel serving the image at `dir`, or this process's own).
pub fn run(backend: &mut Backend, dir: &std::path::Path) -> Result<(), Failure> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let how = if backend.remote() { " (through its kernel)" } else { "" };
    println!("batos — the image at {}{how}. Type `help` for what you can say.", dir.display());
    loop {
        print!("Architect > ");
        let _ = std::io::stdout().flush();
        let Some(Ok(line)) = lines.next() else { break };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match handle(backend, line, &mut |question| {
            print!("{question}");
            let _ = std::io::stdout().flush();
            match lines.next() {
                Some(Ok(answer)) => Some(answer.trim().to_owned()),
                _ => None,
            }
        }) {
            Ok(Some(text)) => println!("{text}"),
            Ok(None) => break,
            Err(message) => println!("error: {message}"),
        }
    }
    Ok(())
}

/// Asks the person a question and answers their reply (`None`: input ended).
type Ask<'a> = dyn FnMut(&str) -> Option<String> + 'a;

/// One line; `Ok(None)` ends the session.
fn handle(backend: &mut Backend, line: &str, ask: &mut Ask<'_>) -> Result<Option<String>, String> {
    let words = words(line)?;
    let first = words.first().map(String::as_str).unwrap_or_default();
    match (first, words.len()) {
        ("quit" | "exit", 1) => return Ok(None),
        ("help", 1) => return Ok(Some(HELP.into())),
        _ => {}
    }
    // `@brick why …` asks one persona; `@ why …` lets the routing choose.
    if let Some(rest) = line.trim_start().strip_prefix('@') {
        let (name, question) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let persona = (!name.is_empty()).then(|| name.to_owned());
        let question = if persona.is_none() { rest.trim() } else { question.trim() };
        return backend
            .execute(Request::Chat { question: question.to_owned(), persona }, true)
            .map(|o| Some(o.text))
            .map_err(|Failure(f)| f.message);
    }
    // A command of the command line, by the command line's own definitions.
    match SessionLine::try_parse_from(&words) {
        Ok(parsed) => return run_command(backend, parsed.command, None, ask).map(Some),
        Err(e) if e.kind() != ErrorKind::InvalidSubcommand => return Err(e.to_string()),
        Err(_) => {}
    }
    // A message: `OBJECT SELECTOR …` is `send OBJECT SELECTOR …`.
    let known =
        backend.execute(Request::Inspect { object: first.to_owned(), at: None }, false).is_ok();
    if known && words.len() >= 2 {
        return message(backend, &words, None, ask).map(Some);
    }
    // Words, not a message: the mind proposes one, the user decides.
    let translated = backend
        .execute(Request::Translate { words: line.to_owned() }, false)
        .map_err(|Failure(f)| f.message)?;
    let words: Vec<String> = serde_json::from_value(translated.json["words"].clone())
        .map_err(|e| format!("the kernel's translation is not a list of words: {e}"))?;
    println!("→ {}", words.join(" "));
    let run = ask("run it? [Y/n] ").is_some_and(|a| !a.to_lowercase().starts_with('n'));
    if !run {
        return Ok(Some("not run".into()));
    }
    message(backend, &words, Some(line.to_owned()), ask).map(Some)
}

/// `OBJECT SELECTOR ARGS… [--brief T] [--example E]… [--stateful] [--wat]`, parsed as
/// `send` parses it and sent; `brief_from_words` is the brief when the line gives none.
fn message(
    backend: &mut Backend,
    words: &[String],
    brief_from_words: Option<String>,
    ask: &mut Ask<'_>,
) -> Result<String, String> {
    let line = std::iter::once("send".to_owned()).chain(words.iter().cloned());
    let parsed = SessionLine::try_parse_from(line).map_err(|e| e.to_string())?;
    run_command(backend, parsed.command, brief_from_words, ask)
}

/// Runs a parsed command as the command line would, answering its text. A send whose
/// cycle could not decide without an example asks the person for one and tries again.
fn run_command(
    backend: &mut Backend,
    command: Command,
    brief_from_words: Option<String>,
    ask: &mut Ask<'_>,
) -> Result<String, String> {
    let mut message = match command {
        Command::Session => return Err("this is the session already".into()),
        Command::Serve { .. } | Command::Up { .. } | Command::Worker { .. } => {
            return Err("run the kernel, its supervisor and workers from a shell: `batos serve`, `batos up`, `batos worker`".into())
        }
        Command::Model(command) => {
            return commands::model_command(command).map(|o| o.text).map_err(|Failure(f)| f.message)
        }
        Command::Send(message) => message,
        other => {
            return commands::dispatch(other, backend, false)
                .map(|o| o.text)
                .map_err(|Failure(f)| f.message)
        }
    };
    if message.brief.is_none() {
        message.brief = brief_from_words;
    }
    loop {
        match commands::dispatch(Command::Send(message.clone()), backend, false) {
            Ok(output) => return Ok(output.text),
            Err(Failure(f)) if f.kind == "needs_grant" => {
                let grants = f.grants.clone();
                let question = format!(
                    "The method needs the grant(s) {}. Allow it? [y/N] ",
                    grants.join(", ")
                );
                match ask(&question) {
                    Some(a) if a.to_lowercase().starts_with('y') && !grants.is_empty() => {
                        message.grants.extend(grants)
                    }
                    _ => return Err(f.message),
                }
            }
            Err(Failure(f)) if f.kind == "needs_example" => {
                let question = format!(
                    "{}\nWhat should it answer? Give an example as ARGS => RESULT (empty to give up): ",
                    f.message.split(": send it again").next().unwrap_or(&f.message)
                );
                match ask(&question) {
                    Some(example) if !example.is_empty() => message.examples.push(example),
                    _ => return Err(f.message),
                }
            }
            Err(Failure(f)) => return Err(f.message),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_split_into_words_keeping_quotes() {
        assert_eq!(
            super::words(r#"genesis greet: "Ada Lovelace" --example "\"a\" => \"b\"""#)
                .expect("splits"),
            ["genesis", "greet:", "\"Ada Lovelace\"", "--example", "\"\\\"a\\\" => \\\"b\\\"\""]
        );
        assert!(super::words("say \"unclosed").is_err());
        assert_eq!(crate::commands::unquote("\"5 => 120\""), "5 => 120");
        assert_eq!(crate::commands::unquote("5 => 120"), "5 => 120");
    }
}
