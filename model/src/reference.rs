//! A plain Rust forward pass of the decoder, in `f32`, one token at a time with a KV
//! cache: the yardstick the exported ONNX graph is held to. Written for clarity, not
//! speed.

use super::model::{Architecture, Weights};

/// A running sequence: the KV cache of every block.
pub struct Reference<'w> {
    weights: &'w Weights,
    /// Per block: keys and values, `[position][kv_heads * head_dim]` flattened.
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    position: usize,
}

fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    x.iter().zip(weight).map(|(v, w)| v * scale * w).collect()
}

/// `w` is `[out][in]` row-major.
fn matvec(w: &[f32], x: &[f32], out: usize) -> Vec<f32> {
    let n = x.len();
    (0..out).map(|o| w[o * n..(o + 1) * n].iter().zip(x).map(|(a, b)| a * b).sum()).collect()
}

fn add(a: &mut [f32], b: &[f32]) {
    if !b.is_empty() {
        a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    }
}

/// Rotates one head in place.
fn rope(head: &mut [f32], position: usize, theta: f32, architecture: Architecture) {
    let d = head.len();
    for i in 0..d / 2 {
        let freq = 1.0 / theta.powf(2.0 * i as f32 / d as f32);
        let angle = position as f32 * freq;
        let (sin, cos) = angle.sin_cos();
        let (a, b) = match architecture {
            Architecture::Qwen2 => (i, i + d / 2),
            Architecture::Llama => (2 * i, 2 * i + 1),
        };
        let (x, y) = (head[a], head[b]);
        head[a] = x * cos - y * sin;
        head[b] = y * cos + x * sin;
    }
}

impl<'w> Reference<'w> {
    /// An empty sequence.
    pub fn new(weights: &'w Weights) -> Self {
        let layers = weights.config.layers;
        Reference {
            weights,
            keys: vec![Vec::new(); layers],
            values: vec![Vec::new(); layers],
            position: 0,
        }
    }

    /// Feeds one token and returns the logits for the next.
    pub fn step(&mut self, token: u32) -> Vec<f32> {
        let w = self.weights;
        let c = &w.config;
        let (h, d) = (c.hidden, c.head_dim());
        let kv_dim = c.kv_heads * d;
        let group = c.heads / c.kv_heads;
        let t = token as usize;
        let mut x = w.embed[t * h..(t + 1) * h].to_vec();
        for (layer, b) in w.blocks.iter().enumerate() {
            let hn = rms_norm(&x, &b.attn_norm, c.rms_eps);
            let mut q = matvec(&b.wq, &hn, h);
            let mut k = matvec(&b.wk, &hn, kv_dim);
            let mut v = matvec(&b.wv, &hn, kv_dim);
            add(&mut q, &b.bq);
            add(&mut k, &b.bk);
            add(&mut v, &b.bv);
            for head in q.chunks_mut(d).chain(k.chunks_mut(d)) {
                rope(head, self.position, c.rope_theta, c.architecture);
            }
            self.keys[layer].extend_from_slice(&k);
            self.values[layer].extend_from_slice(&v);
            let positions = self.position + 1;
            let mut attended = vec![0f32; h];
            for head in 0..c.heads {
                let kvh = head / group;
                let qh = &q[head * d..(head + 1) * d];
                let scores: Vec<f32> = (0..positions)
                    .map(|p| {
                        let kp =
                            &self.keys[layer][p * kv_dim + kvh * d..p * kv_dim + (kvh + 1) * d];
                        qh.iter().zip(kp).map(|(a, b)| a * b).sum::<f32>() / (d as f32).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exps: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f32 = exps.iter().sum();
                for (p, e) in exps.iter().enumerate() {
                    let vp = &self.values[layer][p * kv_dim + kvh * d..p * kv_dim + (kvh + 1) * d];
                    for (o, v) in attended[head * d..(head + 1) * d].iter_mut().zip(vp) {
                        *o += e / total * v;
                    }
                }
            }
            add(&mut x, &matvec(&b.wo, &attended, h));
            let hn = rms_norm(&x, &b.ffn_norm, c.rms_eps);
            let gate = matvec(&b.gate, &hn, c.ffn);
            let up = matvec(&b.up, &hn, c.ffn);
            let act: Vec<f32> =
                gate.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            add(&mut x, &matvec(&b.down, &act, h));
        }
        self.position += 1;
        let xn = rms_norm(&x, &w.output_norm, c.rms_eps);
        matvec(&w.output, &xn, c.vocab)
    }
}
