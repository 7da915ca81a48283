//! `recall: question` — searches the image's memory (what `batos ingest` made of
//! documents) and answers the best passage with its source, as `TEXT (SOURCE)`. It needs
//! the `memory` grant: without it the audit refuses the component.

use batos_guest_sdk::prelude::*;

#[capability]
fn recall(question: &str) -> Result<String, Error> {
    if question.trim().is_empty() {
        return Err(error(ErrorKind::BadArguments, "recall: needs a question"));
    }
    let found = batos_guest_sdk::search(question, 1)?;
    match found.first() {
        Some(passage) => Ok(format!("{} ({})", passage.text, passage.source)),
        None => Ok("nothing in the memory matches".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use batos_guest_sdk::testing;
    use batos_guest_sdk::Value;

    #[test]
    fn an_empty_question_is_refused_before_the_memory_is_asked() {
        let answer = testing::call(super::__batos_call, vec![Value::from("  ")]);
        let message = answer.map(|_| ()).map_err(|e| e.message);
        assert_eq!(message, Err("recall: needs a question".to_owned()));
    }
}
