//! Words into messages, measured: 33 phrasings of requests (none of them the prompt's
//! examples), each translated by every catalogued model (or `BATOS_BENCH_MODELS`) with
//! the shape enforced while sampling, beside the same prompt unconstrained — the anchor
//! — in one run. A translation is *valid* when it reads as a message to an existing
//! object, *right* when the arguments are the request's and the selector names what it
//! asks for. Run: `cargo bench -p batos --bench translate`

use std::sync::Arc;
use std::time::Instant;

use batos::mind::Sampling;
use batos::synthesis::translate;
use batos::{Runtime, Value};

/// (request, arguments as JSON, words one of which the selector must contain)
const PHRASINGS: &[(&str, &str, &[&str])] = &[
    ("create a method to report the current system time", "[]", &["time", "now", "clock"]),
    (
        "create a method that tells whether a year is a leap year, and ask it about 2024",
        "[2024]",
        &["leap"],
    ),
    ("what is the factorial of 6", "[6]", &["factorial"]),
    ("reverse the text \"stressed\"", "[\"stressed\"]", &["reverse"]),
    ("is 17 a prime number?", "[17]", &["prime"]),
    ("compute the square of 12", "[12]", &["square"]),
    ("count the vowels in \"education\"", "[\"education\"]", &["vowel"]),
    ("double the number 21", "[21]", &["double", "twice"]),
    ("give me the 10th fibonacci number", "[10]", &["fib"]),
    ("convert 100 degrees celsius to fahrenheit", "[100]", &["fahrenheit", "celsius"]),
    (
        "make a method that shouts a word in capitals and try it on \"hello\"",
        "[\"hello\"]",
        &["shout", "upper", "capital"],
    ),
    ("how many words are in \"the quick brown fox\"", "[\"the quick brown fox\"]", &["word"]),
    ("sort the list [5, 3, 9, 1]", "[[5, 3, 9, 1]]", &["sort"]),
    ("find the largest number in [4, 8, 2]", "[[4, 8, 2]]", &["max", "largest"]),
    ("what is the greatest common divisor of 48 and 18", "[48, 18]", &["gcd", "divisor"]),
    ("check whether \"racecar\" is a palindrome", "[\"racecar\"]", &["palindrome"]),
    ("sum the digits of 1234", "[1234]", &["digit"]),
    ("raise 2 to the power 10", "[2, 10]", &["pow"]),
    ("repeat \"ab\" three times", "[\"ab\", 3]", &["repeat"]),
    (
        "capitalize every word of \"hello big world\"",
        "[\"hello big world\"]",
        &["capital", "title", "upper"],
    ),
    ("keep the even numbers of [1, 2, 3, 4, 5, 6]", "[[1, 2, 3, 4, 5, 6]]", &["even"]),
    ("what is the average of [2, 3]", "[[2, 3]]", &["average", "mean"]),
    ("write a method that says hello to the world", "[]", &["hello", "greet"]),
    ("create a method that rolls a six-sided die", "[]", &["roll", "die", "dice"]),
    ("tell me whether 2023 is a leap year", "[2023]", &["leap"]),
    ("how long is the text \"batos\"", "[\"batos\"]", &["length", "len", "count"]),
    ("multiply 6 by 7", "[6, 7]", &["multipl", "times", "product"]),
    ("is 10 an even number", "[10]", &["even"]),
    (
        "make a method that turns minutes into seconds and try it with 3",
        "[3]",
        &["second", "minute"],
    ),
    ("what is the absolute value of -5", "[-5]", &["abs"]),
    ("reverse the list [1, 2, 3]", "[[1, 2, 3]]", &["reverse"]),
    ("convert the text \"Hello\" to lower case", "[\"Hello\"]", &["lower"]),
    ("tell me if 9 is a perfect square", "[9]", &["square"]),
];

fn main() {
    if std::env::args().all(|a| a != "--bench") {
        println!("translate benchmark: skipped outside `cargo bench` (it runs the real models)");
        return;
    }
    let models: Vec<String> = match std::env::var("BATOS_BENCH_MODELS") {
        Ok(list) => list.split(',').map(str::to_owned).collect(),
        Err(_) => batos::model::pull::CATALOGUE.iter().map(|e| e.name.to_owned()).collect(),
    };
    for model in &models {
        batos::model::pull::pull(
            model,
            &batos::model::pull::models_dir(),
            &mut batos::model::pull::Quiet,
        )
        .expect("model");
        let dir = tempfile::tempdir().expect("image dir");
        let minds = batos::minds();
        let rt = Arc::new(
            minds.attach(Runtime::builder()).open(dir.path().join("image")).expect("image"),
        );
        let pllm = rt.resolve("pLLM").expect("pLLM");
        rt.transact("bench: the model", |cx| {
            cx.set_slot(pllm, "model", &Value::Text(model.clone()))
        })
        .expect("model slot");
        let mind = minds.mind_of(&rt).expect("mind");
        let objects: Vec<String> =
            rt.view(|cx| cx.tx().roots()).expect("roots").into_keys().collect();
        println!("{model}, {} phrasings", PHRASINGS.len());
        for constrained in [true, false] {
            let (mut valid, mut right) = (0, 0);
            let started = Instant::now();
            for (request, args, words) in PHRASINGS {
                let sampling = Sampling {
                    max_tokens: 96,
                    constraint: constrained.then(|| translate::constraint(&objects)),
                    ..Sampling::default()
                };
                let answer = mind
                    .complete(&translate::messages(request, &objects), &sampling, &mut |_| {})
                    .map(|c| c.text)
                    .unwrap_or_default();
                let expected: serde_json::Value = serde_json::from_str(args).expect("args JSON");
                let proposal =
                    translate::parse(&answer).ok().filter(|p| objects.contains(&p.object));
                let ok = proposal.as_ref().is_some_and(|p| {
                    let shown: Vec<serde_json::Value> =
                        p.args.iter().map(batos::image::json::to_json).collect();
                    let selector = p.selector.to_lowercase();
                    serde_json::Value::Array(shown) == expected
                        && words.iter().any(|w| selector.contains(w))
                });
                valid += usize::from(proposal.is_some());
                right += usize::from(ok);
                if std::env::var_os("BATOS_BENCH_VERBOSE").is_some() {
                    println!(
                        "    {:<5} {request:<70} {}",
                        if ok { "ok" } else { "WRONG" },
                        answer.replace('\n', " ")
                    );
                }
            }
            println!(
                "  {:<34} valid {valid}/{n} ({:.0}%), right {right}/{n} ({:.0}%), {:.1} s a phrasing",
                if constrained { "constrained while sampling" } else { "anchor: same prompt, unconstrained" },
                100.0 * valid as f64 / PHRASINGS.len() as f64,
                100.0 * right as f64 / PHRASINGS.len() as f64,
                started.elapsed().as_secs_f64() / PHRASINGS.len() as f64,
                n = PHRASINGS.len(),
            );
        }
    }
}
