//! The chat template a GGUF carries (`tokenizer.chat_template`, Jinja), rendered with
//! minijinja, with Python's string methods available as Hugging Face templates expect.

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};

use super::gguf::{Gguf, MetaValue};
use batos_mind::Message;

/// A chat template.
#[derive(Clone, Debug)]
pub struct ChatTemplate {
    source: String,
    bos: String,
    eos: String,
}

/// Instructions a chat template may run for one rendering.
const TEMPLATE_FUEL: u64 = 1_000_000;

fn raise_exception(message: String) -> Result<String, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, message))
}

impl ChatTemplate {
    /// A template from its Jinja source.
    pub fn new(source: impl Into<String>) -> Self {
        ChatTemplate { source: source.into(), bos: String::new(), eos: String::new() }
    }

    /// The template of a GGUF model, with its BOS and EOS tokens.
    pub fn from_gguf(g: &Gguf) -> Result<Self, String> {
        let source = g
            .get("tokenizer.chat_template")
            .and_then(MetaValue::as_str)
            .ok_or("the model carries no chat template (tokenizer.chat_template)")?;
        let token = |key: &str| -> String {
            let id = g.get(key).and_then(MetaValue::as_u64);
            let tokens = g.get("tokenizer.ggml.tokens").and_then(MetaValue::as_array);
            match (id, tokens) {
                (Some(id), Some(tokens)) => tokens
                    .get(id as usize)
                    .and_then(MetaValue::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                _ => String::new(),
            }
        };
        Ok(ChatTemplate {
            source: source.to_owned(),
            bos: token("tokenizer.ggml.bos_token_id"),
            eos: token("tokenizer.ggml.eos_token_id"),
        })
    }

    /// Renders a conversation; with `add_generation_prompt` the text ends where the
    /// assistant's answer begins.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, String> {
        let mut env = Environment::new();
        // A template comes from a file: bound its work, so a hostile one (nested loops
        // over large ranges) ends in an error instead of running for hours. A real chat
        // template over a long conversation uses a few thousand units.
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template("chat", &self.source)
            .map_err(|e| format!("the chat template does not parse: {e}"))?;
        let messages: Vec<_> = messages
            .iter()
            .map(|m| context! { role => m.role.as_str(), content => m.content.clone() })
            .collect();
        let template = env.get_template("chat").map_err(|e| e.to_string())?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos.clone(),
                eos_token => self.eos.clone(),
            })
            .map_err(|e| format!("the chat template failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chatml_template_renders() {
        let t = ChatTemplate::new(
            "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}\
             {%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        );
        let text =
            t.render(&[Message::system("Be brief. "), Message::user("hi")], true).expect("renders");
        assert_eq!(text, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn python_methods_and_exceptions_work() {
        let t = ChatTemplate::new("{% if messages[0].role != 'user' %}{{ raise_exception('users first') }}{% endif %}{{ messages[0].content.strip().upper() }}");
        assert_eq!(t.render(&[Message::user("  hey ")], false).expect("renders"), "HEY");
        let e = t.render(&[Message::system("x")], false).expect_err("raises");
        assert!(e.contains("users first"), "{e}");
        assert!(ChatTemplate::new("{% if %}").render(&[], false).is_err());
    }
}
