//! The MBPP problems in batos values (`../shared/benchmarks/mbpp-rs.batos.jsonl`, read
//! where it lies, never copied): each problem's brief, its one example, its hidden
//! cases and MultiPL-E's Rust signature (for the anchor only: batos is not shown it).

use batos::image::json;
use batos::Value;

/// One problem.
pub struct Problem {
    /// MultiPL-E's id.
    pub name: String,
    /// The message: the function's name.
    pub selector: String,
    /// The problem text.
    pub brief: String,
    /// `(args, expect)` a user would give with `--example`.
    pub examples: Vec<(Vec<Value>, Value)>,
    /// `(args, expect)` checked after installation.
    pub cases: Vec<(Vec<Value>, Value)>,
    /// `fn name(a: T, …) -> R`.
    pub signature: String,
}

impl Problem {
    /// The parameter types the signature writes.
    pub fn param_types(&self) -> Option<Vec<String>> {
        let inner = self.signature.split_once('(')?.1.rsplit_once(") ->")?.0;
        let (mut depth, mut current, mut out) = (0i32, String::new(), Vec::new());
        for c in inner.chars() {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(std::mem::take(&mut current));
                    continue;
                }
                _ => {}
            }
            current.push(c);
        }
        if !current.trim().is_empty() {
            out.push(current);
        }
        out.iter().map(|p| p.split_once(':').map(|(_, t)| t.trim().to_owned())).collect()
    }
}

fn cases(json: &serde_json::Value) -> Vec<(Vec<Value>, Value)> {
    let value = |j: &serde_json::Value| json::from_json(j, &mut |_| Err("no objects".into()));
    json.as_array()
        .into_iter()
        .flatten()
        .filter_map(|case| {
            let args = match value(&case["args"]).ok()? {
                Value::List(items) => items,
                _ => return None,
            };
            Some((args, value(&case["expect"]).ok()?))
        })
        .collect()
}

/// Every problem of the file, or `None` when it is not there.
pub fn load(path: &std::path::Path) -> Option<Vec<Problem>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|p| Problem {
                name: p["name"].as_str().unwrap_or_default().to_owned(),
                selector: p["selector"].as_str().unwrap_or_default().to_owned(),
                brief: p["brief"].as_str().unwrap_or_default().to_owned(),
                examples: cases(&p["examples"]),
                cases: cases(&p["cases"]),
                signature: p["signature"].as_str().unwrap_or_default().to_owned(),
            })
            .collect(),
    )
}

/// `count` problems spread evenly over the set (every k-th), or all of them.
pub fn sample(problems: Vec<Problem>, count: Option<usize>) -> Vec<Problem> {
    match count {
        Some(n) if n > 0 && n < problems.len() => {
            let step = problems.len() as f64 / n as f64;
            let picks: Vec<usize> = (0..n).map(|i| (i as f64 * step) as usize).collect();
            problems
                .into_iter()
                .enumerate()
                .filter(|(i, _)| picks.contains(i))
                .map(|(_, p)| p)
                .collect()
        }
        _ => problems,
    }
}
