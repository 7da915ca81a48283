//! A synthesised method's Rust candidate: the typed signature a message implies, the
//! function taken out of a model's answer, and the fixed code around it, built in a
//! warm workspace into a component.
//!
//! The model writes only the function (`fn factorial(n: i64) -> i64 { … }`); the host
//! supplies the imports, the argument conversions and the export macro, so a small
//! model cannot break them. The workspace keeps one crate whose `src/lib.rs` is
//! rewritten per candidate: its dependencies stay compiled, so a candidate builds in
//! about a second after the first.

mod extract;
mod signature;
mod types;
mod workspace;
mod wrap;

pub use extract::{extract_function, rust_name};
pub use signature::{retype, Signature};
pub use types::Type;
pub use workspace::{BuildError, Workspace};

#[cfg(test)]
mod tests {
    use super::signature::declared;
    use super::*;
    use crate::image::Value;

    #[test]
    fn selectors_become_rust_names() {
        for (selector, name) in [
            ("factorial", Some("factorial")),
            ("factorial:", Some("factorial")),
            ("reverseWords:", Some("reverse_words")),
            ("at:put:", Some("at_put")),
            ("fn", Some("fn_")),
            ("2x", None),
            ("", None),
            ("a-b", None),
            ("Upper", Some("upper")),
        ] {
            assert_eq!(rust_name(selector).as_deref(), name, "{selector:?}");
        }
    }

    #[test]
    fn signatures_follow_the_arguments_and_examples() {
        let s = Signature::infer("factorial:", &[Value::Int(5)], None, false).expect("signature");
        assert_eq!(
            s.rust(),
            "fn factorial(a: i64) -> RETURN",
            "the answer type is the model's to choose"
        );
        assert_eq!(
            s.adapted("fn factorial(a: i64) -> u64 { 1 }").rust(),
            "fn factorial(a: i64) -> i64"
        );
        let s = Signature::infer(
            "join:with:",
            &[Value::List(vec![Value::Text("a".into())]), Value::Text(",".into())],
            Some(Type::Text),
            false,
        )
        .expect("signature");
        assert_eq!(s.rust(), "fn join_with(a: Vec<String>, b: String) -> String");
        let s = Signature::infer("increment", &[], Some(Type::Int), true).expect("signature");
        assert_eq!(s.rust(), "fn increment(this: &Object) -> i64");
        let every_kind = Signature::infer(
            "f:g:h:i:",
            &[
                Value::Nil,
                Value::List(vec![Value::Float(1.5), Value::Int(2)]),
                Value::List(vec![Value::List(vec![Value::Int(1)]), Value::List(vec![])]),
                Value::Map([("a".to_owned(), Value::Bool(true))].into()),
            ],
            None,
            false,
        )
        .expect("every value kind is a parameter type");
        assert_eq!(
            every_kind.rust(),
            "fn f_g_h_i(a: Option<Value>, b: Vec<f64>, c: Vec<Vec<i64>>, d: BTreeMap<String, bool>) -> RETURN"
        );
    }

    #[test]
    fn the_entry_forwards_with_the_types_the_model_declared() {
        let sig = Signature::infer("sumList:", &[Value::List(vec![Value::Int(1)])], None, false)
            .expect("signature");
        let f = "fn sum_list(numbers: &[i32]) -> i32 { numbers.iter().sum() }";
        assert_eq!(
            declared(f, "sum_list"),
            Some((vec!["&[i32]".to_owned()], Some("i32".to_owned())))
        );
        assert_eq!(sig.adapted(f).returns, Type::Int);
        let wrapped = sig.wrap(f);
        assert!(
            wrapped.contains(
                "#[capability]\nfn __batos_entry(a: &[i32]) -> i32 {\n    sum_list(a)\n}"
            ),
            "{wrapped}"
        );
        assert!(wrapped.contains(f), "the model's function is kept as written: {wrapped}");
        let f = "fn push_all_text<'a>(this: &Object, into: &mut Vec<i64>, text: &'a str) { }";
        let sig = Signature::infer(
            "pushAll:text:",
            &[Value::List(vec![]), Value::Text("a".into())],
            None,
            false,
        )
        .expect("signature");
        assert!(
            sig.wrap(f).contains("fn __batos_entry(a: &Object, b: &mut Vec<i64>, c: &str) {"),
            "a receiver the model chose to use is passed; `&mut` keeps its space: {}",
            sig.wrap(f)
        );
        let counter = Signature::infer("increment", &[], Some(Type::Int), true).expect("signature");
        let unreadable = "fn increment() -> usize { 1 }";
        assert!(
            counter
                .wrap(unreadable)
                .contains("fn __batos_entry(a: &Object) -> i64 {\n    increment(a)\n}"),
            "a header that does not fit the call takes the signature's types: {}",
            counter.wrap(unreadable)
        );
    }

    #[test]
    fn a_body_of_another_type_than_declared_is_retyped() {
        let f = "fn reverse_text(a: String) -> i64 {\n    a.chars().rev().collect::<String>()\n}";
        let stderr = "error[E0308]: mismatched types\n  --> src/lib.rs:34:5\n   |\n33 | fn reverse_text(a: String) -> i64 {\n   |                               --- expected `i64` because of return type\n34 |     a.chars().rev().collect::<String>()\n   |     ^^^ expected `i64`, found `String`";
        assert_eq!(retype(f, "reverse_text", stderr).as_deref(), Some("fn reverse_text(a: String) -> String {\n    a.chars().rev().collect::<String>()\n}"));
        assert_eq!(
            retype(f, "reverse_text", "error[E0425]: cannot find value `b`"),
            None,
            "only that one error is fixed"
        );
        let weird = stderr.replace("found `String`", "found `std::rc::Rc<i64>`");
        assert_eq!(retype(f, "reverse_text", &weird), None, "only to a type batos carries");
    }

    #[test]
    fn the_function_comes_out_of_the_answer() {
        let answer = "Here you go:\n```rust\nfn factorial(a: i64) -> i64 {\n    (1..=a).product()\n}\n\nfn main() {\n    println!(\"{}\", factorial(5));\n}\n```\nIt multiplies.";
        let f = extract_function(answer, "factorial").expect("found");
        assert!(
            f.starts_with("fn factorial") && f.ends_with('}') && !f.contains("It multiplies"),
            "{f}"
        );
        assert!(
            !f.contains("fn main") && !f.contains("println"),
            "the model's demo is left out: {f}"
        );
        let with_tests = "fn double(a: i64) -> i64 { a * 2 }\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() { assert_eq!(super::double(2), 4); }\n}\nfn test_double() {\n    let x = Object::new();\n}\nfn helper(x: i64) -> i64 { x }";
        let kept = extract_function(with_tests, "double").expect("found");
        assert!(
            kept.starts_with("fn double(a: i64) -> i64 { a * 2 }")
                && kept.ends_with("fn helper(x: i64) -> i64 { x }"),
            "helpers stay: {kept}"
        );
        assert!(
            !kept.contains("mod tests")
                && !kept.contains("test_double")
                && !kept.contains("Object::new"),
            "tests go: {kept}"
        );
        assert_eq!(
            extract_function("fn double(a: i64) -> i64 { a * 2 }", "double").as_deref(),
            Some("fn double(a: i64) -> i64 { a * 2 }")
        );
        assert_eq!(extract_function("I cannot help with that.", "double"), None);
        assert_eq!(
            extract_function("```rust\nfn triple(a: i64) -> i64 { a * 3 }\n```", "double"),
            None,
            "a function of another name is not the one asked for"
        );
    }
}
