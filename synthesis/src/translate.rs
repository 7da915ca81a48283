//! Words into a message: the session's "say it" asks the mind for one message as a
//! JSON object — `{"object": ROOT, "selector": SELECTOR, "args": [VALUES]}` — and the
//! shape is enforced while the answer is sampled (a [`Constraint`]): the object must be
//! one of the image's roots, the selector a selector, the arguments JSON. A small model
//! asked for a line of the form `OBJECT SELECTOR ARGS` answered `OBJECT SELECTOR
//! reportTime`; constrained, it cannot.

use crate::image::{json, Value};
use crate::mind::{Constraint, Message, Prefix};

/// A message the mind proposed.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    /// The receiver's root name.
    pub object: String,
    /// The selector.
    pub selector: String,
    /// The arguments.
    pub args: Vec<Value>,
}

impl Proposal {
    /// As the session's words: `OBJECT SELECTOR ARG…`, arguments as JSON.
    pub fn words(&self) -> Vec<String> {
        let mut words = vec![self.object.clone(), self.selector.clone()];
        words.extend(self.args.iter().map(|a| json::to_json(a).to_string()));
        words
    }
}

/// What the primordial objects are for, so that a small model does not send a
/// question about years to the language model because the request says "ask".
fn described(object: &str) -> String {
    match object {
        "genesis" => "genesis (the first object: new methods go on it)".into(),
        "pLLM" => "pLLM (the language model itself, for its settings)".into(),
        "traits" => "traits (behaviour every object shares)".into(),
        other => other.to_owned(),
    }
}

/// The request to the mind.
pub fn messages(request: &str, objects: &[String]) -> Vec<Message> {
    let objects: Vec<String> = objects.iter().map(|o| described(o)).collect();
    let user = format!(
        "Objects: {}.\n\
Turn the request into one message to one of these objects, as JSON: \
{{\"object\": OBJECT, \"selector\": SELECTOR, \"args\": [ARGUMENTS]}}.\n\
OBJECT is genesis unless the request names another object. \
SELECTOR names what to do in camelCase, with one colon per argument \
(`square:` takes one argument, `between:and:` two, `shout` none). \
To create a method and try it, the selector is the method's name and the arguments what to try it on. \
ARGUMENTS are JSON values: numbers, \"texts\", lists.\n\
Examples:\n\
Request: square the number 7\n\
{{\"object\": \"genesis\", \"selector\": \"square:\", \"args\": [7]}}\n\
Request: make a method that counts the vowels in a word, and try it on \"banana\"\n\
{{\"object\": \"genesis\", \"selector\": \"countVowels:\", \"args\": [\"banana\"]}}\n\
Request: write a method that greets the world\n\
{{\"object\": \"genesis\", \"selector\": \"greetWorld\", \"args\": []}}\n\n\
Request: {request}",
        objects.join(", ")
    );
    vec![
        Message::system(
            "You translate requests into messages for an object system. You answer with JSON only.",
        ),
        Message::user(user),
    ]
}

/// The constraint: the shape above, the object one of `objects`.
pub fn constraint(objects: &[String]) -> Constraint {
    let roots = objects.to_vec();
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "object": { "type": "string", "enum": objects },
            "selector": { "type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_:]*$" },
            "args": { "type": "array" },
        },
        "required": ["object", "selector", "args"],
    });
    Constraint::new(move |text| check(text, &roots), Some(schema))
}

/// Reads the mind's answer (constrained or not) into a proposal.
pub fn parse(answer: &str) -> Result<Proposal, String> {
    let start = answer.find('{').ok_or("the answer holds no JSON object")?;
    let end = answer.rfind('}').ok_or("the answer's JSON object is not closed")?;
    let parsed: serde_json::Value =
        serde_json::from_str(&answer[start..=end]).map_err(|e| format!("not JSON: {e}"))?;
    let text = |key: &str| {
        parsed[key].as_str().map(str::to_owned).ok_or_else(|| format!("no `{key}` text"))
    };
    let args = match parsed.get("args") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|j| json::from_json(j, &mut |name| Err(format!("no object `{name}` here"))))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err("no `args` list".into()),
    };
    let mut selector = text("selector")?;
    if crate::candidate::rust_name(&selector).is_none() {
        return Err(format!("`{selector}` is not a selector"));
    }
    // One argument and no colon: the colon the selector should have had; no argument
    // and one colon at the end: a colon too many.
    if args.len() == 1 && !selector.contains(':') {
        selector.push(':');
    } else if args.is_empty() && selector.matches(':').count() == 1 && selector.ends_with(':') {
        selector.pop();
    }
    Ok(Proposal { object: text("object")?, selector, args })
}

/// Why a prefix stops being parsed.
enum Stop {
    /// The text ended inside something that can still be completed.
    Incomplete,
    /// It cannot.
    Bad,
}

struct Cursor<'t> {
    text: &'t [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Result<u8, Stop> {
        self.text.get(self.at).copied().ok_or(Stop::Incomplete)
    }

    fn space(&mut self) {
        while self.text.get(self.at).is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn literal(&mut self, literal: &str) -> Result<(), Stop> {
        self.space();
        for expected in literal.bytes() {
            if self.peek()? != expected {
                return Err(Stop::Bad);
            }
            self.at += 1;
        }
        Ok(())
    }

    /// A string of plain characters that `fits` as a prefix and `whole` when closed.
    fn word(
        &mut self,
        fits: &dyn Fn(&str) -> bool,
        whole: &dyn Fn(&str) -> bool,
    ) -> Result<(), Stop> {
        self.literal("\"")?;
        let start = self.at;
        loop {
            let c = match self.peek() {
                Ok(c) => c,
                Err(stop) => {
                    let so_far = String::from_utf8_lossy(&self.text[start..]);
                    return Err(if fits(&so_far) { stop } else { Stop::Bad });
                }
            };
            if c == b'"' {
                let word = String::from_utf8_lossy(&self.text[start..self.at]).into_owned();
                self.at += 1;
                return if whole(&word) { Ok(()) } else { Err(Stop::Bad) };
            }
            self.at += 1;
        }
    }

    /// Any JSON value (for the arguments), nested at most `depth` deep.
    fn value(&mut self, depth: usize) -> Result<(), Stop> {
        self.space();
        match self.peek()? {
            b'"' => self.string(),
            b'[' if depth > 0 => self.list(b'[', b']', depth),
            b'{' if depth > 0 => self.list(b'{', b'}', depth),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Stop::Bad),
        }
    }

    fn string(&mut self) -> Result<(), Stop> {
        self.at += 1;
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Ok(());
                }
                b'\\' => self.at += 2,
                c if c < 0x20 => return Err(Stop::Bad),
                _ => self.at += 1,
            }
        }
    }

    fn number(&mut self) -> Result<(), Stop> {
        let start = self.at;
        while let Ok(c) = self.peek() {
            if !(c.is_ascii_digit() || b"-+.eE".contains(&c)) {
                break;
            }
            self.at += 1;
        }
        let digits = &self.text[start..self.at];
        if self.at == self.text.len() {
            return Err(Stop::Incomplete);
        }
        let text = String::from_utf8_lossy(digits);
        text.parse::<f64>().map(|_| ()).map_err(|_| Stop::Bad)
    }

    /// A list (or, with `{`, an object: `"key": value` entries) of values.
    fn list(&mut self, open: u8, close: u8, depth: usize) -> Result<(), Stop> {
        self.at += 1;
        self.space();
        if self.peek()? == close {
            self.at += 1;
            return Ok(());
        }
        loop {
            if open == b'{' {
                self.space();
                if self.peek()? != b'"' {
                    return Err(Stop::Bad);
                }
                self.string()?;
                self.literal(":")?;
            }
            self.value(depth - 1)?;
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                c if c == close => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Stop::Bad),
            }
        }
    }
}

/// How `text` stands against the shape.
fn check(text: &str, objects: &[String]) -> Prefix {
    let mut cursor = Cursor { text: text.as_bytes(), at: 0 };
    let is_selector = |s: &str| {
        s.chars().next().is_none_or(|c| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let parsed = (|| {
        cursor.literal("{")?;
        cursor.literal("\"object\"")?;
        cursor.literal(":")?;
        cursor.space();
        cursor.word(&|s| objects.iter().any(|o| o.starts_with(s)), &|s| {
            objects.iter().any(|o| o == s)
        })?;
        cursor.literal(",")?;
        cursor.literal("\"selector\"")?;
        cursor.literal(":")?;
        cursor.space();
        cursor.word(&is_selector, &|s| !s.is_empty() && is_selector(s))?;
        cursor.literal(",")?;
        cursor.literal("\"args\"")?;
        cursor.literal(":")?;
        cursor.space();
        if cursor.peek()? != b'[' {
            return Err(Stop::Bad);
        }
        cursor.list(b'[', b']', 8)?;
        cursor.literal("}")
    })();
    match parsed {
        Ok(()) if cursor.at == text.len() => Prefix::Complete,
        Ok(()) | Err(Stop::Bad) => Prefix::Dead,
        Err(Stop::Incomplete) => Prefix::Open,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_of_the_shape_stay_open_and_nothing_else_does() {
        let roots = vec!["genesis".to_owned(), "pLLM".to_owned()];
        let whole = r#"{"object": "genesis", "selector": "isLeapYear:", "args": [2024]}"#;
        for end in 0..whole.len() {
            assert_eq!(check(&whole[..end], &roots), Prefix::Open, "{}", &whole[..end]);
        }
        assert_eq!(check(whole, &roots), Prefix::Complete);
        for dead in [
            "OBJECT",
            r#"{"object": "OBJECT"#,
            r#"{"object": "genesis", "selector": "2x"#,
            r#"{"object": "genesis", "selector": "a b"#,
            r#"{"object": "genesis", "selector": "f", "args": [1,]"#,
            r#"{"object": "genesis", "selector": "f", "args": []} and more"#,
        ] {
            assert_eq!(check(dead, &roots), Prefix::Dead, "{dead}");
        }
        let nested = r#"{"object":"pLLM","selector":"f:g:","args":[[1.5, -2], {"a": "x\"y"}]}"#;
        assert_eq!(check(nested, &roots), Prefix::Complete);
        assert_eq!(
            parse(whole),
            Ok(Proposal {
                object: "genesis".into(),
                selector: "isLeapYear:".into(),
                args: vec![Value::Int(2024)]
            })
        );
        assert_eq!(
            parse(r#"{"object":"genesis","selector":"isLeap","args":[4]}"#).map(|p| p.selector),
            Ok("isLeap:".into())
        );
    }
}
