//! `ponder: question` — asks the image's mind (`pLLM`) to answer in one sentence and
//! answers its reply, trimmed. It needs the `mind` grant: without it the audit refuses
//! the component.

use batos_guest_sdk::prelude::*;

#[capability]
fn ponder(question: &str) -> Result<String, Error> {
    if question.trim().is_empty() {
        return Err(error(ErrorKind::BadArguments, "ponder: needs a question"));
    }
    let answer = batos_guest_sdk::complete(&format!("Answer in one sentence: {question}"))?;
    Ok(answer.trim().to_owned())
}
