//! The tokenizer a GGUF file carries, rebuilt as a Hugging Face `tokenizer.json` for the
//! `tokenizers` crate.
//!
//! GGUF keeps the vocabulary (`tokenizer.ggml.tokens`, `token_type`), the BPE merges and
//! the *name* of the pre-tokenizer (`tokenizer.ggml.pre`), not its regex; the regexes
//! below are the ones those names stand for in llama.cpp. Only byte-level BPE
//! (`tokenizer.ggml.model = "gpt2"`) is rebuilt; anything else is refused by name.

use serde_json::{json, Map, Value as Json};

use super::gguf::{Gguf, MetaValue};

/// The split regex of Qwen2 (and of GPT-4o-style tokenizers that llama.cpp calls `qwen2`).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's split (`llama-bpe`): like Qwen2 but digits in runs of up to three.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// GPT-2's own split (`gpt2` and unnamed byte-level BPE).
const GPT2_SPLIT: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

// GGUF token types.
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

fn strings(g: &Gguf, key: &str) -> Result<Vec<String>, String> {
    let items = g
        .get(key)
        .and_then(MetaValue::as_array)
        .ok_or_else(|| format!("the model has no `{key}`"))?;
    items
        .iter()
        .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| format!("`{key}` holds a non-string")))
        .collect()
}

fn integer(v: &MetaValue) -> Option<i64> {
    match *v {
        MetaValue::I32(n) => Some(n.into()),
        MetaValue::I64(n) => Some(n),
        _ => v.as_u64().and_then(|n| i64::try_from(n).ok()),
    }
}

/// Builds the `tokenizer.json` text for the tokenizer embedded in `g`.
pub fn tokenizer_json(g: &Gguf) -> Result<String, String> {
    let model = g.get("tokenizer.ggml.model").and_then(MetaValue::as_str).unwrap_or("(none)");
    if model != "gpt2" {
        return Err(format!(
            "the model's tokenizer is `{model}`; only byte-level BPE (`gpt2`, as in Qwen2 and Llama 3) can be rebuilt"
        ));
    }
    let pre = g.get("tokenizer.ggml.pre").and_then(MetaValue::as_str).unwrap_or("default");
    let split = match pre {
        "qwen2" => QWEN2_SPLIT,
        "llama-bpe" | "llama3" => LLAMA3_SPLIT,
        "gpt2" | "default" => GPT2_SPLIT,
        other => {
            return Err(format!(
                "the pre-tokenizer `{other}` is not known (known: qwen2, llama-bpe, gpt2)"
            ))
        }
    };
    let tokens = strings(g, "tokenizer.ggml.tokens")?;
    let merges = strings(g, "tokenizer.ggml.merges")?;
    let types: Vec<i64> = match g.get("tokenizer.ggml.token_type").and_then(MetaValue::as_array) {
        Some(items) => items.iter().map(|v| integer(v).unwrap_or(1)).collect(),
        None => vec![1; tokens.len()],
    };
    let mut vocab = Map::new();
    let mut added = Vec::new();
    for (id, token) in tokens.iter().enumerate() {
        let kind = types.get(id).copied().unwrap_or(1);
        if kind == CONTROL || kind == USER_DEFINED {
            added.push(json!({
                "id": id, "content": token, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": kind == CONTROL,
            }));
        }
        // Some vocabularies repeat a padding string; the first id keeps it.
        vocab.entry(token.clone()).or_insert(json!(id));
    }
    let byte_level = json!({ "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false });
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": if pre == "qwen2" { json!({ "type": "NFC" }) } else { Json::Null },
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                { "type": "Split", "pattern": { "Regex": split }, "behavior": "Isolated", "invert": false },
                byte_level,
            ],
        },
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
            "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges,
        },
    });
    Ok(tokenizer.to_string())
}

/// The rebuilt tokenizer, ready to encode and decode.
pub fn tokenizer(g: &Gguf) -> Result<tokenizers::Tokenizer, String> {
    let text = tokenizer_json(g)?;
    text.parse::<tokenizers::Tokenizer>()
        .map_err(|e| format!("the rebuilt tokenizer does not load: {e}"))
}
