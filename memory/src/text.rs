//! Documents into sentences: what kinds of file the memory reads, why it skips the rest,
//! and where one sentence ends and the next begins.

use std::path::Path;

/// Files larger than this are skipped: the memory holds passages people wrote, and a
/// text file of more than 4 MiB is nearly always data or a log, whose embedding would
/// take minutes and whose passages would drown the rest.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// What a file is read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Plain text: paragraphs of sentences.
    Prose,
    /// Markdown: headings, list items and table rows stand alone; fenced code is kept
    /// whole.
    Markdown,
    /// JSON lines: each line's text fields.
    JsonLines,
    /// Program source: blocks separated by blank lines.
    Source,
}

const SOURCE: &[&str] = &[
    "rs", "py", "js", "ts", "tsx", "jsx", "go", "c", "h", "cc", "cpp", "hpp", "java", "kt",
    "swift", "rb", "sh", "bash", "toml", "yaml", "yml", "json", "wit", "wat", "sql", "css", "html",
    "xml", "cs", "scala", "lua", "zig", "hs", "ml", "ex", "exs", "erl", "clj",
];

impl Kind {
    /// What `path` is read as, by its extension (prose when it has none it knows).
    pub fn of(path: &Path) -> Kind {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        match ext.as_str() {
            "md" | "markdown" | "mdx" => Kind::Markdown,
            "jsonl" | "ndjson" => Kind::JsonLines,
            e if SOURCE.contains(&e) => Kind::Source,
            _ => Kind::Prose,
        }
    }
}

/// Why a file was not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// It has no bytes, or only white space.
    Empty,
    /// It holds NUL bytes: a binary file.
    Binary,
    /// It is not UTF-8 from this byte on.
    NotUtf8(usize),
    /// It is larger than [`MAX_FILE_BYTES`].
    TooLarge(u64),
    /// A JSON-lines file whose line is not JSON.
    BadJsonLine(usize, String),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Empty => f.write_str("it is empty"),
            Skip::Binary => f.write_str("it is binary (it holds NUL bytes)"),
            Skip::NotUtf8(at) => write!(f, "it is not UTF-8 text (invalid from byte {at}); convert it to UTF-8 first"),
            Skip::TooLarge(size) => write!(
                f,
                "it is {size} bytes, over the {MAX_FILE_BYTES}-byte limit for one document; split it"
            ),
            Skip::BadJsonLine(line, why) => write!(f, "line {line} is not JSON ({why})"),
        }
    }
}

/// The text of a file's bytes, or why it is not text.
pub fn decode(bytes: &[u8]) -> Result<&str, Skip> {
    if bytes.contains(&0) {
        return Err(Skip::Binary);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| Skip::NotUtf8(e.valid_up_to()))?;
    if text.trim().is_empty() {
        return Err(Skip::Empty);
    }
    Ok(text)
}

/// The sentences of a document, in order, each trimmed and non-empty.
pub fn sentences(kind: Kind, text: &str) -> Result<Vec<String>, Skip> {
    Ok(match kind {
        Kind::Prose => prose(text, false),
        Kind::Markdown => prose(text, true),
        Kind::Source => blocks(text),
        Kind::JsonLines => json_lines(text)?,
    })
}

/// Paragraphs split into sentences. In Markdown, a heading, list item, table row or
/// quote line is a sentence of its own and a fenced code block is kept whole.
fn prose(text: &str, markdown: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut paragraph = String::new();
    let mut fence: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if markdown {
            if let Some(code) = &mut fence {
                code.push('\n');
                code.push_str(line);
                if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
                    out.push(std::mem::take(code).trim().to_owned());
                    fence = None;
                }
                continue;
            }
            if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
                split_sentences(&std::mem::take(&mut paragraph), &mut out);
                fence = Some(line.to_owned());
                continue;
            }
            let standalone = trimmed.starts_with('#')
                || trimmed.starts_with("- ")
                || trimmed.starts_with("* ")
                || trimmed.starts_with("+ ")
                || trimmed.starts_with('|')
                || trimmed.starts_with('>')
                || trimmed
                    .split_once(". ")
                    .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            if standalone {
                split_sentences(&std::mem::take(&mut paragraph), &mut out);
                split_sentences(trimmed, &mut out);
                continue;
            }
        }
        if trimmed.is_empty() {
            split_sentences(&std::mem::take(&mut paragraph), &mut out);
        } else {
            if !paragraph.is_empty() {
                paragraph.push(' ');
            }
            paragraph.push_str(trimmed);
        }
    }
    if let Some(code) = fence {
        out.push(code.trim().to_owned());
    }
    split_sentences(&paragraph, &mut out);
    out.retain(|s| !s.is_empty());
    if markdown {
        out = headed(out);
    }
    out
}

/// Joins each heading to the sentence after it: a heading alone is a poor passage, and
/// its words ("ROBIN, the heart") are what a search for the section needs.
fn headed(sentences: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(sentences.len());
    let mut heading: Option<String> = None;
    for s in sentences {
        if s.starts_with('#') {
            out.extend(heading.replace(s));
        } else if let Some(h) = heading.take() {
            out.push(format!("{h}\n{s}"));
        } else {
            out.push(s);
        }
    }
    out.extend(heading);
    out
}

/// Splits a paragraph after `.`, `!` or `?` (and any closing quotes or brackets) where
/// white space follows and the next word does not start in lower case — so "e.g. this"
/// and "3.5 times" stay whole.
fn split_sentences(paragraph: &str, out: &mut Vec<String>) {
    let chars: Vec<(usize, char)> = paragraph.char_indices().collect();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let (_, c) = chars[i];
        if matches!(c, '.' | '!' | '?') {
            let mut j = i + 1;
            while j < chars.len() && matches!(chars[j].1, '"' | '\'' | ')' | ']' | '”' | '’') {
                j += 1;
            }
            if j < chars.len() && chars[j].1.is_whitespace() {
                let mut k = j;
                while k < chars.len() && chars[k].1.is_whitespace() {
                    k += 1;
                }
                if k < chars.len() && !chars[k].1.is_lowercase() {
                    let end = chars[j].0;
                    out.push(paragraph[start..end].trim().to_owned());
                    start = chars[k].0;
                    i = k;
                    continue;
                }
            }
        }
        i += 1;
    }
    let rest = paragraph[start..].trim();
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
}

/// Blocks of source separated by blank lines (a function, an impl, a paragraph of
/// comments), trailing white space of each line kept out.
fn blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !block.trim().is_empty() {
                out.push(std::mem::take(&mut block).trim_end().to_owned());
            }
            block.clear();
        } else {
            block.push_str(line.trim_end());
            block.push('\n');
        }
    }
    if !block.trim().is_empty() {
        out.push(block.trim_end().to_owned());
    }
    out
}

/// Each line's text: the fields `text`, `content`, `body` or `message` when the line
/// has one, else every string in it, joined; each then split into sentences.
fn json_lines(text: &str) -> Result<Vec<String>, Skip> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| Skip::BadJsonLine(n + 1, e.to_string()))?;
        let preferred = ["text", "content", "body", "message"]
            .iter()
            .find_map(|k| value.get(k).and_then(|v| v.as_str()).map(str::to_owned));
        let line_text = match preferred {
            Some(t) => t,
            None => {
                let mut strings = Vec::new();
                collect_strings(&value, &mut strings);
                strings.join(". ")
            }
        };
        split_sentences(&line_text, &mut out);
    }
    Ok(out)
}

fn collect_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_splits_at_sentence_ends_but_not_inside_abbreviations() {
        let s = sentences(
            Kind::Prose,
            "The image persists. It is, e.g. a graph!\nIs it? Yes 3.5 times.\n\nNew paragraph",
        )
        .expect("text");
        assert_eq!(
            s,
            [
                "The image persists.",
                "It is, e.g. a graph!",
                "Is it?",
                "Yes 3.5 times.",
                "New paragraph"
            ]
        );
    }

    #[test]
    fn markdown_keeps_headings_items_and_code_whole() {
        let md = "# Title\n## Part\nSome text here.\n- item one\n- item two\n```rust\nfn a() {}\n\nfn b() {}\n```\nAfter.";
        let s = sentences(Kind::Markdown, md).expect("text");
        assert_eq!(
            s,
            [
                "# Title",
                "## Part\nSome text here.",
                "- item one",
                "- item two",
                "```rust\nfn a() {}\n\nfn b() {}\n```",
                "After."
            ]
        );
    }

    #[test]
    fn json_lines_read_text_fields_and_refuse_bad_lines() {
        let s = sentences(
            Kind::JsonLines,
            "{\"text\": \"One. Two.\"}\n{\"a\": [\"x y\", {\"b\": \"z\"}]}",
        )
        .expect("json");
        assert_eq!(s, ["One.", "Two.", "x y. z"]);
        assert!(matches!(
            sentences(Kind::JsonLines, "{\"text\": 1}\nnot json"),
            Err(Skip::BadJsonLine(2, _))
        ));
    }

    #[test]
    fn binary_empty_and_invalid_files_say_why() {
        assert_eq!(decode(b"a\0b"), Err(Skip::Binary));
        assert_eq!(decode(b"  \n"), Err(Skip::Empty));
        assert_eq!(decode(b"ok \xff"), Err(Skip::NotUtf8(3)));
        assert_eq!(Kind::of(Path::new("a/b.RS")), Kind::Source);
        assert_eq!(Kind::of(Path::new("README")), Kind::Prose);
    }
}
