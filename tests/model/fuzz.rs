//! Mutated model files through everything that reads them before a model runs: the
//! GGUF reader, the hyper-parameters, the weights' dequantization, the tokenizer
//! rebuilt from the GGUF, and the chat template rendered. Whatever the bytes, the host
//! answers with a value or an error, never a panic (a panic fails the test and prints
//! the case's seed).
//!
//! Mutations are aimed: most land in the header and metadata, where counts, lengths
//! and types are read; some in the tensor data. CI runs 300 cases. The long run
//! (documented in ARCHITECTURE.md):
//! `BATOS_FUZZ_CASES=100000 cargo test -p batos-model --test model fuzz -- --nocapture`
//! (`BATOS_FUZZ_SEED` replays one case).

use crate::tiny_model;

use batos_mind::Message;
use batos_model::gguf::Gguf;
use batos_model::template::ChatTemplate;
use batos_model::{model, tokenizer};
use rand::{Rng, SeedableRng};

/// Values that make counts, lengths and dimensions extreme when written over a field.
const EXTREMES: [u64; 8] =
    [0, 1, 0x7f, 0xff, 0xffff_ffff, 0x7fff_ffff_ffff_ffff, u64::MAX, 1 << 32];

fn mutate(rng: &mut impl Rng, original: &[u8], header: usize) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for _ in 0..rng.random_range(1..=2) {
        if bytes.len() < 16 {
            break;
        }
        // Nine in ten mutations land where the reader parses counts and lengths.
        let limit = if rng.random_ratio(9, 10) { header.min(bytes.len()) } else { bytes.len() };
        let at = rng.random_range(4..limit.max(5));
        // Mostly in place, so that the rest of the file still parses and the deeper
        // readers (hyper-parameters, tokenizer, template) see the damage.
        match rng.random_range(0..20) {
            0..=7 => bytes[at] ^= 1 << rng.random_range(0..8),
            8..=11 => bytes[at] = rng.random(),
            12..=16 => {
                let value = EXTREMES[rng.random_range(0..EXTREMES.len())].to_le_bytes();
                let width = [1, 2, 4, 8][rng.random_range(0..4)];
                let end = (at + width).min(bytes.len());
                bytes[at..end].copy_from_slice(&value[..end - at]);
            }
            17 => bytes.truncate(at),
            18 => {
                let extra: Vec<u8> = (0..rng.random_range(1..32)).map(|_| rng.random()).collect();
                bytes.splice(at..at, extra);
            }
            _ => {
                let end = (at + rng.random_range(1..64)).min(bytes.len());
                bytes.drain(at..end);
            }
        }
    }
    bytes
}

/// Everything an import and a first use read, in order; errors are fine.
fn read_everything(path: &std::path::Path) {
    let Ok(g) = Gguf::read(path) else { return };
    if let Ok(config) = model::config(&g) {
        let _ = config.head_dim();
        let _ = model::load(&g);
    }
    let _ = tokenizer::tokenizer_json(&g);
    if let Ok(tok) = tokenizer::tokenizer(&g) {
        let _ = tok.encode("fn main() { println!(\"héllo\"); }", false);
    }
    if let Ok(template) = ChatTemplate::from_gguf(&g) {
        let _ = template.render(&[Message::system("Be brief."), Message::user("hi")], true);
    }
}

#[test]
fn mutated_model_files_never_panic_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: u64 =
        std::env::var("BATOS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let only: Option<u64> = std::env::var("BATOS_FUZZ_SEED").ok().and_then(|v| v.parse().ok());
    let mut originals = Vec::new();
    for (i, arch) in ["qwen2", "llama"].into_iter().enumerate() {
        let path = dir.path().join(format!("{arch}.gguf"));
        tiny_model::write_model(&path, arch, 7 + i as u64);
        let header = usize::try_from(Gguf::read(&path).expect("the seed model reads").data_offset)
            .expect("header size");
        originals.push((std::fs::read(&path).expect("read"), header));
    }
    let case_path = dir.path().join("case.gguf");
    let (mut parsed, mut configured, mut tokenized) = (0u64, 0u64, 0u64);
    for case in only.map_or(0..cases, |s| s..s + 1) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(case);
        let (original, header) = &originals[(case % 2) as usize];
        let bytes = mutate(&mut rng, original, *header);
        std::fs::write(&case_path, &bytes).expect("write case");
        let outcome = std::panic::catch_unwind(|| read_everything(&case_path));
        assert!(outcome.is_ok(), "case {case} panicked; replay with BATOS_FUZZ_SEED={case}");
        if let Ok(g) = Gguf::read(&case_path) {
            parsed += 1;
            configured += u64::from(model::config(&g).is_ok());
            tokenized += u64::from(tokenizer::tokenizer(&g).is_ok());
        }
    }
    println!("{cases} mutated model files: {parsed} parsed, {configured} with a usable configuration, {tokenized} with a tokenizer, 0 panics");
    // The harness must reach past the header checks, or it tests nothing deep.
    assert!(only.is_some() || parsed > 0, "no mutated file parsed: the mutations are too coarse");
}
