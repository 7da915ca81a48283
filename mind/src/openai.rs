//! [`OpenAiMind`]: any server that speaks the OpenAI chat-completions API (Ollama, vLLM,
//! llama.cpp's server, OpenAI itself), streamed as server-sent events.
//!
//! **The sampling contract.** A local server fills every parameter a request leaves out
//! with its own defaults — llama-cpp-python's server samples with `top_k` 40, `min_p`
//! 0.05 and a repeat penalty of 1.1 — so the same model answers differently through it
//! than in process, and a repeat penalty is poison for code, which repeats by nature.
//! Every request therefore says everything: temperature, `top_p`, `top_k` (0: off),
//! `min_p` 0, `typical_p` 1, the repetition penalty under both names servers use
//! (`repeat_penalty`: llama.cpp; `repetition_penalty`: vLLM) at [`Sampling`]'s value
//! (1.0: off), presence and frequency penalties 0, no mirostat, the seed, the token
//! budget and the stops. OpenAI's own API refuses parameters it does not know, so to
//! `api.openai.com` only its standard ones go.

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use serde_json::{json, Value as Json};

use super::chat::{Completion, Finish, Message, Mind, MindError, Sampling};

/// A chat-completions endpoint.
#[derive(Clone, Debug)]
pub struct OpenAiMind {
    /// The API's base URL, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// The model name the server knows.
    pub model: String,
    /// A bearer token, when the server wants one.
    pub api_key: Option<String>,
    /// How long one completion may take end to end. Generous: a long answer from a
    /// slow local model takes minutes.
    pub timeout: Duration,
}

impl OpenAiMind {
    /// An endpoint with the default timeout (10 minutes) and no key.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiMind {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(600),
        }
    }

    fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.base_url.trim_end_matches('/'))
    }

    fn body(&self, messages: &[Message], sampling: &Sampling) -> Json {
        let messages: Vec<Json> = messages
            .iter()
            .map(|m| json!({ "role": m.role.as_str(), "content": m.content }))
            .collect();
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": sampling.seed,
        });
        if !sampling.stop.is_empty() {
            body["stop"] = json!(sampling.stop);
        }
        if let Some(schema) = sampling.constraint.as_ref().and_then(|c| c.schema()) {
            // llama.cpp's server and vLLM turn a schema into a grammar they sample under.
            body["response_format"] = json!({
                "type": "json_object",
                "schema": schema,
            });
        }
        // OpenAI's own parameters, off unless asked: servers differ in their defaults.
        body["presence_penalty"] = json!(0.0);
        body["frequency_penalty"] = json!(0.0);
        if !self.base_url.contains("api.openai.com") {
            body["top_k"] = json!(sampling.top_k);
            body["min_p"] = json!(0.0);
            body["typical_p"] = json!(1.0);
            body["repeat_penalty"] = json!(sampling.repetition_penalty);
            body["repetition_penalty"] = json!(sampling.repetition_penalty);
            body["mirostat_mode"] = json!(0);
        }
        body
    }
}

/// Reads a server-sent-event stream of chat-completion chunks.
fn read_stream(
    endpoint: &str,
    reader: impl Read,
    on_text: &mut dyn FnMut(&str),
) -> Result<Completion, MindError> {
    let malformed = |detail: String| MindError::Malformed { endpoint: endpoint.to_owned(), detail };
    let mut text = String::new();
    let mut finish = Finish::Stop;
    let mut usage = (None, None, None);
    let mut saw_done = false;
    for line in BufReader::new(reader).lines() {
        let line = line.map_err(|e| MindError::Unreachable {
            endpoint: endpoint.to_owned(),
            detail: format!("the stream broke: {e}"),
        })?;
        let Some(data) = line.strip_prefix("data:").map(str::trim) else { continue };
        if data == "[DONE]" {
            saw_done = true;
            break;
        }
        let chunk: Json = serde_json::from_str(data)
            .map_err(|e| malformed(format!("a chunk is not JSON ({e}): {data}")))?;
        if let Some(error) = chunk.get("error") {
            return Err(malformed(format!("the stream carried an error: {error}")));
        }
        if let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) {
            if let Some(piece) = choice.pointer("/delta/content").and_then(Json::as_str) {
                on_text(piece);
                text.push_str(piece);
            }
            if choice.get("finish_reason").and_then(Json::as_str) == Some("length") {
                finish = Finish::Length;
            }
        }
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            let count =
                |k: &str| u.get(k).and_then(Json::as_u64).and_then(|n| usize::try_from(n).ok());
            // OpenAI and llama.cpp's server report a reused prompt prefix here.
            let cached = u
                .pointer("/prompt_tokens_details/cached_tokens")
                .and_then(Json::as_u64)
                .and_then(|n| usize::try_from(n).ok());
            usage = (count("prompt_tokens"), count("completion_tokens"), cached);
        }
    }
    if !saw_done && text.is_empty() {
        return Err(malformed("the stream ended without any completion".into()));
    }
    Ok(Completion {
        text,
        prompt_tokens: usage.0,
        completion_tokens: usage.1,
        cached_tokens: usage.2,
        finish,
    })
}

impl Mind for OpenAiMind {
    fn describe(&self) -> String {
        format!("openai-compatible {} at {}", self.model, self.base_url)
    }

    fn complete(
        &self,
        messages: &[Message],
        sampling: &Sampling,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, MindError> {
        let endpoint = self.endpoint();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(self.timeout))
            .build()
            .into();
        let mut request = agent
            .post(&endpoint)
            .header("Content-Type", "application/json")
            .header("Accept", "text/event-stream");
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", &format!("Bearer {key}"));
        }
        let body = self.body(messages, sampling).to_string();
        let mut response = request.send(body.as_bytes()).map_err(|e| MindError::Unreachable {
            endpoint: endpoint.clone(),
            detail: e.to_string(),
        })?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let mut detail = String::new();
            let _ = response.body_mut().as_reader().take(2000).read_to_string(&mut detail);
            return Err(MindError::Refused { endpoint, status, detail: detail.trim().to_owned() });
        }
        read_stream(&endpoint, response.body_mut().as_reader(), on_text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_assembled_and_streamed() {
        let stream = concat!(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"fn main\"}}]}\n\n",
            ": a comment line\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"() {}\"},\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":5}}}\n\n",
            "data: [DONE]\n\n",
        );
        let mut pieces = Vec::new();
        let c = read_stream("test", stream.as_bytes(), &mut |p| pieces.push(p.to_owned()))
            .expect("parses");
        assert_eq!(c.text, "fn main() {}");
        assert_eq!(pieces, vec!["fn main", "() {}"]);
        assert_eq!(
            (c.prompt_tokens, c.completion_tokens, c.cached_tokens, c.finish),
            (Some(7), Some(3), Some(5), Finish::Length)
        );
    }

    #[test]
    fn broken_streams_are_errors() {
        assert!(read_stream("test", "data: {not json\n".as_bytes(), &mut |_| {}).is_err());
        assert!(read_stream("test", "".as_bytes(), &mut |_| {}).is_err());
        let e = read_stream(
            "test",
            "data: {\"error\":{\"message\":\"model not found\"}}\n".as_bytes(),
            &mut |_| {},
        )
        .expect_err("error");
        assert!(e.to_string().contains("model not found"), "{e}");
    }
}
