//! The model's function out of its answer, and the Rust name a selector gives.

/// `reverseWords:` → `reverse_words`; `None` when the selector cannot be one.
pub fn rust_name(selector: &str) -> Option<String> {
    let mut name = String::new();
    for part in selector.split(':').filter(|p| !p.is_empty()) {
        if !name.is_empty() {
            name.push('_');
        }
        for c in part.chars() {
            if c.is_ascii_uppercase() {
                if !name.is_empty() && !name.ends_with('_') {
                    name.push('_');
                }
                name.push(c.to_ascii_lowercase());
            } else if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
            } else {
                return None;
            }
        }
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return None;
    }
    const KEYWORDS: [&str; 12] =
        ["fn", "let", "if", "else", "match", "loop", "while", "for", "type", "use", "mod", "impl"];
    if KEYWORDS.contains(&name.as_str()) {
        name.push('_');
    }
    Some(name)
}

/// The function `name` out of a model's answer: the first fenced code block that
/// defines it (or the answer itself when it is bare code). `None` when there is none.
pub fn extract_function(answer: &str, name: &str) -> Option<String> {
    let defines =
        |code: &str| code.contains(&format!("fn {name}(")) || code.contains(&format!("fn {name}<"));
    let blocks = answer
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|b| b.trim_start_matches(|c: char| c.is_ascii_alphanumeric()).trim());
    let code = blocks.chain(std::iter::once(answer.trim())).find(|c| defines(c))?;
    Some(without_scaffolding(code))
}

/// `code` without the `fn main`, `fn test_…` and `mod tests` a model adds to show its
/// function off: they are not part of the method, and often do not compile here.
fn without_scaffolding(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while !rest.is_empty() {
        let line_end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let line = &rest[..line_end];
        let trimmed = line.trim_start();
        let scaffolding = line == trimmed
            && (trimmed.starts_with("fn main(")
                || trimmed.starts_with("fn test")
                || trimmed.starts_with("#[cfg(test)]")
                || trimmed.starts_with("#[test]")
                || trimmed.starts_with("mod tests"));
        if !scaffolding {
            out.push_str(line);
            rest = &rest[line_end..];
            continue;
        }
        // Skip to the end of the item: the brace that closes its first opening brace.
        let (mut depth, mut opened, mut end) = (0i32, false, rest.len());
        for (i, c) in rest.char_indices() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => {
                    depth -= 1;
                    if opened && depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &rest[end..];
    }
    out.trim().to_owned()
}
