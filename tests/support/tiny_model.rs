//! A tiny but complete GGUF model that tests write themselves: random weights (F32,
//! Q8_0, Q5_0, Q4_K and Q6_K tensors, grouped-query attention), a byte-level BPE
//! tokenizer and a ChatML template, for qwen2 or llama.
#![allow(dead_code)] // each test binary uses its own part

use batos_model::gguf::{GgufWriter, MetaValue};
use batos_model::quant::{quantize_q8_0, GgmlType};
use rand::{Rng, SeedableRng};

const MERGES: [(&str, &str); 4] = [("h", "e"), ("l", "l"), ("he", "ll"), ("f", "n")];
const SPECIALS: [&str; 3] = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"];
const CHAT_TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// GPT-2's byte-to-character table, which byte-level vocabularies are written in.
pub fn byte_chars() -> Vec<char> {
    let mut bytes: Vec<u32> =
        (u32::from(b'!')..=u32::from(b'~')).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut chars = bytes.clone();
    let mut next = 0;
    for b in 0..256u32 {
        if !bytes.contains(&b) {
            bytes.push(b);
            chars.push(256 + next);
            next += 1;
        }
    }
    let mut table = vec!['\0'; 256];
    for (b, c) in bytes.iter().zip(chars) {
        table[*b as usize] = char::from_u32(c).expect("a valid char");
    }
    table
}

fn tokens() -> Vec<String> {
    let mut tokens: Vec<String> = byte_chars().iter().map(char::to_string).collect();
    tokens.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
    tokens.extend(SPECIALS.iter().map(|s| (*s).to_owned()));
    tokens
}

/// Byte-level tokens (256), a few merges and the chat specials.
pub const VOCAB: usize = 256 + MERGES.len() + SPECIALS.len();
pub const HIDDEN: usize = 64;
// A multiple of 256, so `ffn_down` can be a k-quant (Q4_K, Q6_K) as in real files.
pub const FFN: usize = 256;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const LAYERS: usize = 2;

/// Random blocks of a ggml type with finite, modest f16 scales (weights within about
/// ±0.3), so the reference dequantizes them to a usable model.
pub fn random_blocks(rng: &mut impl Rng, t: GgmlType, count: usize) -> Vec<u8> {
    let (per, size) = t.block();
    let mut raw: Vec<u8> =
        (0..count / per as usize * size as usize).map(|_| rng.random()).collect();
    let h = |x: f32| half::f16::from_f32(x).to_le_bytes();
    for block in raw.chunks_exact_mut(size as usize) {
        match t {
            GgmlType::Q5_0 => block[0..2].copy_from_slice(&h(0.3 / 16.0)),
            GgmlType::Q4_K => {
                block[0..2].copy_from_slice(&h(0.3 / (63.0 * 15.0)));
                block[2..4].copy_from_slice(&h(0.15 / 63.0));
            }
            GgmlType::Q6_K => {
                // Signed 8-bit sub-block scales, then d.
                for s in &mut block[192..208] {
                    *s %= 64;
                }
                block[208..210].copy_from_slice(&h(0.3 / (63.0 * 32.0)));
            }
            other => panic!("no random blocks for {other:?}"),
        }
    }
    raw
}

/// Writes a complete tiny model of `arch` ("qwen2" or "llama") to `path`.
pub fn write_model(path: &std::path::Path, arch: &str, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut rng_blocks = rand::rngs::StdRng::seed_from_u64(seed + 1);
    let mut random = |n: usize, scale: f32| -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-scale..scale)).collect()
    };
    let f32_bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let kv = KV_HEADS * HIDDEN / HEADS;
    let mut w = GgufWriter::default();
    w.meta("general.architecture", MetaValue::String(arch.into()))
        .meta(&format!("{arch}.block_count"), MetaValue::U32(LAYERS as u32))
        .meta(&format!("{arch}.embedding_length"), MetaValue::U32(HIDDEN as u32))
        .meta(&format!("{arch}.feed_forward_length"), MetaValue::U32(FFN as u32))
        .meta(&format!("{arch}.attention.head_count"), MetaValue::U32(HEADS as u32))
        .meta(&format!("{arch}.attention.head_count_kv"), MetaValue::U32(KV_HEADS as u32))
        .meta(&format!("{arch}.rope.freq_base"), MetaValue::F32(10_000.0))
        .meta(&format!("{arch}.attention.layer_norm_rms_epsilon"), MetaValue::F32(1e-6))
        .meta("tokenizer.ggml.model", MetaValue::String("gpt2".into()))
        .meta(
            "tokenizer.ggml.pre",
            MetaValue::String(if arch == "llama" { "llama-bpe" } else { "qwen2" }.into()),
        )
        .meta(
            "tokenizer.ggml.tokens",
            MetaValue::Array(tokens().into_iter().map(MetaValue::String).collect()),
        )
        .meta(
            "tokenizer.ggml.token_type",
            MetaValue::Array(
                (0..VOCAB)
                    .map(|i| MetaValue::I32(if i < VOCAB - SPECIALS.len() { 1 } else { 3 }))
                    .collect(),
            ),
        )
        .meta(
            "tokenizer.ggml.merges",
            MetaValue::Array(
                MERGES.iter().map(|(a, b)| MetaValue::String(format!("{a} {b}"))).collect(),
            ),
        )
        .meta("tokenizer.ggml.eos_token_id", MetaValue::U32((VOCAB - 2) as u32))
        .meta("tokenizer.chat_template", MetaValue::String(CHAT_TEMPLATE.into()));
    let h = HIDDEN as u64;
    w.tensor(
        "token_embd.weight",
        &[h, VOCAB as u64],
        GgmlType::Q8_0,
        quantize_q8_0(&random(VOCAB * HIDDEN, 1.0)),
    );
    w.tensor(
        "output_norm.weight",
        &[h],
        GgmlType::F32,
        f32_bytes(&random(HIDDEN, 1.0).iter().map(|v| 1.0 + v * 0.1).collect::<Vec<_>>()),
    );
    w.tensor(
        "output.weight",
        &[h, VOCAB as u64],
        GgmlType::Q8_0,
        quantize_q8_0(&random(VOCAB * HIDDEN, 0.3)),
    );
    for i in 0..LAYERS {
        let n = |p: &str| format!("blk.{i}.{p}");
        w.tensor(
            &n("attn_norm.weight"),
            &[h],
            GgmlType::F32,
            f32_bytes(&random(HIDDEN, 0.1).iter().map(|v| 1.0 + v).collect::<Vec<_>>()),
        );
        w.tensor(
            &n("ffn_norm.weight"),
            &[h],
            GgmlType::F32,
            f32_bytes(&random(HIDDEN, 0.1).iter().map(|v| 1.0 + v).collect::<Vec<_>>()),
        );
        let q = random_blocks(&mut rng_blocks, GgmlType::Q5_0, HIDDEN * HIDDEN);
        w.tensor(&n("attn_q.weight"), &[h, h], GgmlType::Q5_0, q);
        w.tensor(
            &n("attn_k.weight"),
            &[h, kv as u64],
            GgmlType::Q8_0,
            quantize_q8_0(&random(kv * HIDDEN, 0.3)),
        );
        w.tensor(
            &n("attn_v.weight"),
            &[h, kv as u64],
            GgmlType::F32,
            f32_bytes(&random(kv * HIDDEN, 0.3)),
        );
        w.tensor(
            &n("attn_output.weight"),
            &[h, h],
            GgmlType::F32,
            f32_bytes(&random(HIDDEN * HIDDEN, 0.3)),
        );
        w.tensor(
            &n("ffn_gate.weight"),
            &[h, FFN as u64],
            GgmlType::Q8_0,
            quantize_q8_0(&random(FFN * HIDDEN, 0.3)),
        );
        w.tensor(
            &n("ffn_up.weight"),
            &[h, FFN as u64],
            GgmlType::Q8_0,
            quantize_q8_0(&random(FFN * HIDDEN, 0.3)),
        );
        // Q4_K_M's mix: half the blocks' ffn_down in Q4_K, the others in Q6_K.
        let down = if i % 2 == 0 { GgmlType::Q4_K } else { GgmlType::Q6_K };
        w.tensor(
            &n("ffn_down.weight"),
            &[FFN as u64, h],
            down,
            random_blocks(&mut rng_blocks, down, HIDDEN * FFN),
        );
        if arch == "qwen2" {
            w.tensor(&n("attn_q.bias"), &[h], GgmlType::F32, f32_bytes(&random(HIDDEN, 0.5)));
            w.tensor(&n("attn_k.bias"), &[kv as u64], GgmlType::F32, f32_bytes(&random(kv, 0.5)));
            w.tensor(&n("attn_v.bias"), &[kv as u64], GgmlType::F32, f32_bytes(&random(kv, 0.5)));
        }
    }
    w.write(path).expect("writes the model");
}

/// Writes a tiny model of `arch` as `dir/NAME.gguf` and answers its path.
pub fn write_named(dir: &std::path::Path, name: &str, arch: &str, seed: u64) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.gguf"));
    write_model(&path, arch, seed);
    path
}
