//! A byte-level BPE tokenizer written into a GGUF by this test, rebuilt by batos, must
//! turn text into ids and back without loss: unicode, code, whitespace, special tokens.

use crate::tiny_model;

use batos_model::gguf::{Gguf, GgufWriter, MetaValue};
use batos_model::quant::GgmlType;
use batos_model::tokenizer;
use tiny_model::byte_chars;

fn model(path: &std::path::Path, pre: &str) {
    let table = byte_chars();
    let mut tokens: Vec<String> = table.iter().map(char::to_string).collect();
    let mut types = vec![MetaValue::I32(1); 256];
    let space = table[usize::from(b' ')].to_string();
    let merges =
        [("h", "e"), ("l", "l"), ("he", "ll"), (space.as_str(), "w"), ("f", "n"), ("hell", "o")];
    let mut merge_texts = Vec::new();
    for (a, b) in merges {
        tokens.push(format!("{a}{b}"));
        types.push(MetaValue::I32(1));
        merge_texts.push(MetaValue::String(format!("{a} {b}")));
    }
    for special in ["<|im_start|>", "<|im_end|>", "<|endoftext|>"] {
        tokens.push(special.to_owned());
        types.push(MetaValue::I32(3));
    }
    GgufWriter::default()
        .meta("general.architecture", MetaValue::String("qwen2".into()))
        .meta("tokenizer.ggml.model", MetaValue::String("gpt2".into()))
        .meta("tokenizer.ggml.pre", MetaValue::String(pre.into()))
        .meta(
            "tokenizer.ggml.tokens",
            MetaValue::Array(tokens.into_iter().map(MetaValue::String).collect()),
        )
        .meta("tokenizer.ggml.token_type", MetaValue::Array(types))
        .meta("tokenizer.ggml.merges", MetaValue::Array(merge_texts))
        .tensor("output_norm.weight", &[1], GgmlType::F32, 1.0f32.to_le_bytes().to_vec())
        .write(path)
        .expect("writes");
}

#[test]
fn text_round_trips_through_the_rebuilt_tokenizer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus = [
        "hello world",
        "héllo wörld ✓ 日本語 🚀 ﬁ",
        "fn main() {\n    println!(\"{}\", 1 + 2);\n}\n",
        "  \t\n\n   x  \r\n",
        "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
        "it's 12345 o'clock; they'll see",
    ];
    for pre in ["qwen2", "llama-bpe", "gpt2"] {
        let path = dir.path().join(format!("{pre}.gguf"));
        model(&path, pre);
        let gguf = Gguf::read(&path).expect("reads");
        let tok = tokenizer::tokenizer(&gguf).expect("rebuilds");
        for text in corpus {
            let enc = tok.encode(text, false).expect("encodes");
            let back = tok.decode(enc.get_ids(), false).expect("decodes");
            // Qwen2's normalizer is NFC: compare with the NFC form (the corpus is NFC).
            assert_eq!(back, text, "{pre}: {text:?} → {:?}", enc.get_ids());
        }
        let ids = tok.encode("hello", false).expect("encodes").get_ids().to_vec();
        assert_eq!(ids, vec![261], "{pre}: the merges make `hello` one token");
        let ids =
            tok.encode("<|im_start|>hi<|im_end|>", false).expect("encodes").get_ids().to_vec();
        assert_eq!(
            (ids[0], ids[ids.len() - 1]),
            (262, 263),
            "{pre}: special tokens are single ids"
        );
    }
}

#[test]
fn unsupported_tokenizers_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("spm.gguf");
    GgufWriter::default()
        .meta("tokenizer.ggml.model", MetaValue::String("llama".into()))
        .tensor("x", &[1], GgmlType::F32, 0f32.to_le_bytes().to_vec())
        .write(&path)
        .expect("writes");
    let e = tokenizer::tokenizer(&Gguf::read(&path).expect("reads")).expect_err("refused");
    assert!(e.contains("`llama`") && e.contains("byte-level BPE"), "{e}");
}
