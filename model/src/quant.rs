//! ggml tensor encodings and their dequantization to `f32`, following ggml's reference
//! (`ggml-quants.c`): block layouts, nibble order and scale packing exactly as written
//! there. Only the block formats batos imports are decoded; the others are named so
//! that an unsupported model is refused with the type in the message.

use half::{bf16, f16};

/// A ggml element encoding (the GGUF tensor type id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// 4-bit, blocks of 32 with one f16 scale.
    Q4_0,
    /// 4-bit with a minimum (not imported).
    Q4_1,
    /// 5-bit, blocks of 32 with one f16 scale.
    Q5_0,
    /// 5-bit with a minimum (not imported).
    Q5_1,
    /// 8-bit, blocks of 32 with one f16 scale.
    Q8_0,
    /// 8-bit with a sum (not imported).
    Q8_1,
    /// 2-bit k-quant (not imported).
    Q2_K,
    /// 3-bit k-quant (not imported).
    Q3_K,
    /// 4-bit k-quant: super-blocks of 256 in 8 sub-blocks with 6-bit scales and mins.
    Q4_K,
    /// 5-bit k-quant (not imported).
    Q5_K,
    /// 6-bit k-quant: super-blocks of 256 in 16 sub-blocks with 8-bit scales.
    Q6_K,
    /// 8-bit k-quant (not imported).
    Q8_K,
    /// bfloat16.
    BF16,
}

impl GgmlType {
    /// The type for a GGUF type id.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            9 => GgmlType::Q8_1,
            10 => GgmlType::Q2_K,
            11 => GgmlType::Q3_K,
            12 => GgmlType::Q4_K,
            13 => GgmlType::Q5_K,
            14 => GgmlType::Q6_K,
            15 => GgmlType::Q8_K,
            30 => GgmlType::BF16,
            _ => return None,
        })
    }

    /// Its GGUF type id.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q8_1 => 9,
            GgmlType::Q2_K => 10,
            GgmlType::Q3_K => 11,
            GgmlType::Q4_K => 12,
            GgmlType::Q5_K => 13,
            GgmlType::Q6_K => 14,
            GgmlType::Q8_K => 15,
            GgmlType::BF16 => 30,
        }
    }

    /// (elements per block, bytes per block).
    pub fn block(self) -> (u64, u64) {
        match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q5_0 => (32, 22),
            GgmlType::Q5_1 => (32, 24),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Q8_1 => (32, 36),
            GgmlType::Q2_K => (256, 84),
            GgmlType::Q3_K => (256, 110),
            GgmlType::Q4_K => (256, 144),
            GgmlType::Q5_K => (256, 176),
            GgmlType::Q6_K => (256, 210),
            GgmlType::Q8_K => (256, 292),
        }
    }

    /// Bytes for `elements` elements, if they fill whole blocks.
    pub fn byte_len(self, elements: u64) -> Option<u64> {
        let (per_block, bytes) = self.block();
        if !elements.is_multiple_of(per_block) {
            return None;
        }
        (elements / per_block).checked_mul(bytes)
    }
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Dequantizes `bytes` of type `t` to `f32`. Fails for types batos does not import, or
/// for a byte length that is not whole blocks.
pub fn dequantize(t: GgmlType, bytes: &[u8]) -> Result<Vec<f32>, String> {
    let (per_block, block_bytes) = t.block();
    let (per_block, block_bytes) = (per_block as usize, block_bytes as usize);
    if !bytes.len().is_multiple_of(block_bytes) {
        return Err(format!("{} bytes is not a whole number of {t:?} blocks", bytes.len()));
    }
    let mut out = Vec::with_capacity(bytes.len() / block_bytes * per_block);
    for block in bytes.chunks_exact(block_bytes) {
        match t {
            GgmlType::F32 => out.push(f32::from_le_bytes([block[0], block[1], block[2], block[3]])),
            GgmlType::F16 => out.push(f16_at(block, 0)),
            GgmlType::BF16 => out.push(bf16::from_le_bytes([block[0], block[1]]).to_f32()),
            GgmlType::Q4_0 => q4_0(block, &mut out),
            GgmlType::Q5_0 => q5_0(block, &mut out),
            GgmlType::Q8_0 => q8_0(block, &mut out),
            GgmlType::Q4_K => q4_k(block, &mut out),
            GgmlType::Q6_K => q6_k(block, &mut out),
            other => return Err(format!("tensor type {other:?} is not supported (supported: F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q6_K)")),
        }
    }
    Ok(out)
}

/// `{d: f16, qs: [u8; 16]}`: element j is the low nibble of qs[j], element j+16 the
/// high nibble, each minus 8, times d.
fn q4_0(b: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    out.extend(qs.iter().map(|q| (f32::from(q & 0x0F) - 8.0) * d));
    out.extend(qs.iter().map(|q| (f32::from(q >> 4) - 8.0) * d));
}

/// The 32 five-bit codes of a Q5_0 block: the low nibble of qs[j] (element j) or its
/// high nibble (element j+16), with a fifth bit from qh (bit j, or bit j+16).
fn q5_0_codes(b: &[u8]) -> [u8; 32] {
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    let mut codes = [0u8; 32];
    for j in 0..16 {
        codes[j] = (qs[j] & 0x0F) | ((((qh >> j) & 1) as u8) << 4);
        codes[j + 16] = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
    }
    codes
}

/// `{d: f16, qh: u32, qs: [u8; 16]}`: five-bit codes minus 16, times d.
fn q5_0(b: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(b, 0);
    out.extend(q5_0_codes(b).iter().map(|q| (f32::from(*q) - 16.0) * d));
}

/// `{d: f16, qs: [i8; 32]}`: element j is qs[j] times d.
fn q8_0(b: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(b, 0);
    out.extend(b[2..34].iter().map(|q| f32::from(*q as i8) * d));
}

/// The 6-bit scale and min of sub-block j from Q4_K's 12 packed bytes.
fn scale_min_k4(j: usize, s: &[u8]) -> (f32, f32) {
    if j < 4 {
        (f32::from(s[j] & 63), f32::from(s[j + 4] & 63))
    } else {
        let sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        let m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        (f32::from(sc), f32::from(m))
    }
}

/// `{d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]}`: 8 sub-blocks of 32; each
/// 64 elements take 32 bytes, low nibbles for the first 32, high for the next.
fn q4_k(b: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for pair in 0..4 {
        let q = &qs[pair * 32..pair * 32 + 32];
        let (sc1, m1) = scale_min_k4(pair * 2, scales);
        let (sc2, m2) = scale_min_k4(pair * 2 + 1, scales);
        out.extend(q.iter().map(|v| d * sc1 * f32::from(v & 0x0F) - dmin * m1));
        out.extend(q.iter().map(|v| d * sc2 * f32::from(v >> 4) - dmin * m2));
    }
}

/// The 256 six-bit codes of a Q6_K block (4 low bits from ql, 2 high bits from qh) and
/// the scale of each run of 16 (d times the signed sub-block scale).
fn q6_k_codes(b: &[u8]) -> ([u8; 256], [f32; 16]) {
    let d = f16_at(b, 208);
    let mut codes = [0u8; 256];
    let mut scales = [0f32; 16];
    for half in 0..2 {
        let ql = &b[half * 64..half * 64 + 64];
        let qh = &b[128 + half * 32..128 + half * 32 + 32];
        let sc = &b[192 + half * 8..192 + half * 8 + 8];
        let base = half * 128;
        for l in 0..32 {
            codes[base + l] = (ql[l] & 0x0F) | ((qh[l] & 3) << 4);
            codes[base + l + 32] = (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4);
            codes[base + l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            codes[base + l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
        // Element e of a half uses scale e / 16: runs of 16 share one.
        for (k, s) in sc.iter().enumerate() {
            scales[half * 8 + k] = d * f32::from(*s as i8);
        }
    }
    (codes, scales)
}

/// `{ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16}`: six-bit codes minus 32,
/// times the scale of their run of 16.
fn q6_k(b: &[u8], out: &mut Vec<f32>) {
    let (codes, scales) = q6_k_codes(b);
    out.extend(codes.iter().enumerate().map(|(e, q)| scales[e / 16] * (f32::from(*q) - 32.0)));
}

/// A weight matrix in ONNX Runtime's `MatMulNBits` layout (com.microsoft): per output
/// row, blocks of `block_size` codes of `bits` bits, with one scale and one (float) zero
/// point per block, so that `w = (code - zero_point) * scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct NBits {
    /// 4 or 8.
    pub bits: u32,
    /// Codes per block.
    pub block_size: usize,
    /// `[rows][blocks][block_size * bits / 8]`; 4-bit codes low nibble first.
    pub packed: Vec<u8>,
    /// `[rows][blocks]`.
    pub scales: Vec<f32>,
    /// `[rows][blocks]`: integer zero points, the only kind ONNX Runtime's fast
    /// `MatMulNBits` kernels take (float ones send it down a dequantize-per-call path
    /// about 100× slower).
    pub zero_points: Vec<u8>,
    /// `[rows][blocks]`, or empty: a per-block offset subtracted after scaling, for
    /// formats with a minimum (Q4_K: `w = d·sc·q − dmin·m`). `MatMulNBits` has no such
    /// term, so the graph adds it as `−(block sums of x) · minsᵀ`, which is exact.
    pub mins: Vec<f32>,
}

/// The `MatMulNBits` layout (bits, codes per block) that format `t` maps onto exactly,
/// if any: what [`to_nbits`] produces for it.
pub fn nbits_layout(t: GgmlType) -> Option<(u32, usize)> {
    match t {
        GgmlType::Q4_K => Some((4, 32)),
        GgmlType::Q8_0 | GgmlType::Q5_0 => Some((8, 32)),
        GgmlType::Q6_K => Some((8, 16)),
        _ => None,
    }
}

/// Re-expresses a ggml-quantized `[rows][cols]` matrix exactly in `MatMulNBits` form, for
/// the block formats where that is possible (Q4_K as 4-bit blocks of 32; Q8_0 and Q5_0
/// as 8-bit blocks of 32; Q6_K as 8-bit blocks of 16). `None` for other types.
pub fn to_nbits(t: GgmlType, bytes: &[u8], rows: usize, cols: usize) -> Option<NBits> {
    let (per_block, block_bytes) = t.block();
    let (per_block, block_bytes) = (per_block as usize, block_bytes as usize);
    if !cols.is_multiple_of(per_block) || bytes.len() != rows * cols / per_block * block_bytes {
        return None;
    }
    let (bits, block_size) = nbits_layout(t)?;
    let mut codes: Vec<u8> = Vec::with_capacity(rows * cols);
    let mut scales = Vec::with_capacity(rows * cols / block_size);
    let mut zero_points = Vec::with_capacity(rows * cols / block_size);
    let mut mins = Vec::new();
    for b in bytes.chunks_exact(block_bytes) {
        match t {
            GgmlType::Q8_0 => {
                scales.push(f16_at(b, 0));
                zero_points.push(128);
                codes.extend(b[2..34].iter().map(|q| (*q as i8 as i16 + 128) as u8));
            }
            GgmlType::Q5_0 => {
                scales.push(f16_at(b, 0));
                zero_points.push(16);
                codes.extend_from_slice(&q5_0_codes(b));
            }
            GgmlType::Q4_K => {
                let d = f16_at(b, 0);
                let dmin = f16_at(b, 2);
                let (sc, qs) = (&b[4..16], &b[16..144]);
                for pair in 0..4 {
                    let q = &qs[pair * 32..pair * 32 + 32];
                    for (sub, high) in [(pair * 2, false), (pair * 2 + 1, true)] {
                        let (s, m) = scale_min_k4(sub, sc);
                        scales.push(d * s);
                        zero_points.push(0);
                        mins.push(dmin * m);
                        codes.extend(q.iter().map(|v| if high { v >> 4 } else { v & 0x0F }));
                    }
                }
            }
            GgmlType::Q6_K => {
                let (block, block_scales) = q6_k_codes(b);
                codes.extend_from_slice(&block);
                scales.extend_from_slice(&block_scales);
                zero_points.extend(std::iter::repeat_n(32, 16));
            }
            _ => return None,
        }
    }
    let packed =
        if bits == 4 { codes.chunks_exact(2).map(|p| p[0] | (p[1] << 4)).collect() } else { codes };
    Some(NBits { bits, block_size, packed, scales, zero_points, mins })
}

impl NBits {
    /// Back to `f32` (`[rows][cols]`), to check the repacking against `dequantize`.
    pub fn dequantize(&self) -> Vec<f32> {
        let per_byte = (8 / self.bits) as usize;
        let codes: Vec<u8> = if per_byte == 2 {
            self.packed.iter().flat_map(|b| [b & 0x0F, b >> 4]).collect()
        } else {
            self.packed.clone()
        };
        codes
            .chunks_exact(self.block_size)
            .enumerate()
            .flat_map(|(i, block)| {
                let (s, z) = (self.scales[i], f32::from(self.zero_points[i]));
                let min = self.mins.get(i).copied().unwrap_or(0.0);
                block.iter().map(move |q| (f32::from(*q) - z) * s - min)
            })
            .collect()
    }
}

/// Quantizes to Q8_0 as ggml does (per block of 32: d = max|x| / 127, q = round(x / d));
/// `values.len()` must be a multiple of 32. Used to write quantized test models.
pub fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / 32 * 34);
    for block in values.chunks(32) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|v| (v * inv).round().clamp(-128.0, 127.0) as i8 as u8));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn h(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    /// `rows` × `cols` random values in block format `t`, its f16 scales (and Q4_K's
    /// minimum scale) kept finite and modest.
    pub(crate) fn random_blocks(t: GgmlType, rows: usize, cols: usize, seed: u32) -> Vec<u8> {
        let mut state = seed;
        let (per_block, block_bytes) = t.block();
        let n = rows * cols / per_block as usize * block_bytes as usize;
        let mut raw: Vec<u8> = (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (state >> 16) as u8
            })
            .collect();
        for block in raw.chunks_exact_mut(block_bytes as usize) {
            let at = if t == GgmlType::Q6_K { 208 } else { 0 };
            let scale = h(0.01 * f32::from(block[at] % 50 + 1));
            block[at..at + 2].copy_from_slice(&scale);
            if t == GgmlType::Q4_K {
                let min_scale = h(0.005 * f32::from(block[2] % 7 + 1));
                block[2..4].copy_from_slice(&min_scale);
            }
        }
        raw
    }

    #[test]
    fn q8_0_block() {
        let mut b = Vec::from(h(0.5));
        b.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let y = dequantize(GgmlType::Q8_0, &b).expect("decodes");
        assert_eq!(y.len(), 32);
        assert_eq!((y[0], y[16], y[31]), (-8.0, 0.0, 7.5));
    }

    #[test]
    fn q4_0_block_puts_low_nibbles_first() {
        let mut b = Vec::from(h(2.0));
        // qs[0] = 0xF1: element 0 = (1-8)*2 = -14, element 16 = (15-8)*2 = 14.
        b.push(0xF1);
        b.extend([0x88u8; 15]);
        let y = dequantize(GgmlType::Q4_0, &b).expect("decodes");
        assert_eq!((y[0], y[16], y[1], y[31]), (-14.0, 14.0, 0.0, 0.0));
    }

    #[test]
    fn q5_0_block_takes_the_fifth_bit_from_qh() {
        let mut b = Vec::from(h(1.0));
        // qh bit 0 set (element 0 gets +16), bit 16 set (element 16 gets +16).
        b.extend((1u32 | (1 << 16)).to_le_bytes());
        b.push(0x21); // element 0: low nibble 1 -> 17-16 = 1; element 16: high nibble 2 -> 18-16 = 2
        b.extend([0x00u8; 15]); // the rest: 0-16 = -16
        let y = dequantize(GgmlType::Q5_0, &b).expect("decodes");
        assert_eq!((y[0], y[16], y[1], y[17]), (1.0, 2.0, -16.0, -16.0));
    }

    #[test]
    fn q4_k_block_uses_packed_six_bit_scales_and_mins() {
        let mut b = Vec::new();
        b.extend(h(0.5)); // d
        b.extend(h(0.25)); // dmin
                           // Sub-blocks 0..4: scale = s[j] & 63, min = s[j+4] & 63.
                           // Sub-blocks 4..8: scale = (s[j+4] & 15) | (s[j-4] >> 6) << 4, min = (s[j+4] >> 4) | (s[j] >> 6) << 4.
        let scales: [u8; 12] = [
            2 | (1 << 6), // j0 scale 2; top bits feed sub-block 4's scale (1 << 4)
            3,            // j1 scale 3
            4,
            5,
            1 | (2 << 6), // j0 min 1; top bits feed sub-block 4's min (2 << 4)
            0,
            0,
            0,
            0x37, // sub-block 4: scale 7 | 16 = 23, min 3 | 32 = 35
            0,
            0,
            0,
        ];
        b.extend(scales);
        let mut qs = [0u8; 128];
        qs[0] = 0xA3; // element 0 (sub-block 0): 3; element 32 (sub-block 1): 10
        qs[64] = 0x05; // element 128 (sub-block 4): 5
        b.extend(qs);
        let y = dequantize(GgmlType::Q4_K, &b).expect("decodes");
        assert_eq!(y.len(), 256);
        assert_eq!(y[0], 0.5 * 2.0 * 3.0 - 0.25 * 1.0);
        assert_eq!(y[32], 0.5 * 3.0 * 10.0);
        assert_eq!(y[128], 0.5 * 23.0 * 5.0 - 0.25 * 35.0);
        assert_eq!(y[1], -0.25 * 1.0, "zero code minus the min");
    }

    #[test]
    fn q6_k_block_assembles_six_bits_and_signed_scales() {
        let mut b = vec![0u8; 210];
        b[0] = 0x21; // ql[0]: element 0 low = 1, element 64 low = 2
        b[128] = 0b1110_0100; // qh[0]: element 0 high 0, element 32 high 1, element 64 high 2, element 96 high 3
        b[32] = 0x00; // ql[32]: elements 32 and 96 low = 0
        for (i, s) in [1i8, 1, -2, -2, 3, 3, 4, 4].iter().enumerate() {
            b[192 + i] = *s as u8; // scales of the first 128: is 0,1 | 2,3 | 4,5 | 6,7
        }
        b[208..210].copy_from_slice(&h(0.5));
        let y = dequantize(GgmlType::Q6_K, &b).expect("decodes");
        assert_eq!(y[0], 0.5 * 1.0 * (1.0 - 32.0));
        assert_eq!(y[32], 0.5 * -2.0 * (16.0 - 32.0));
        assert_eq!(y[64], 0.5 * 3.0 * (2.0 + 32.0 - 32.0));
        assert_eq!(y[96], 0.5 * 4.0 * (48.0 - 32.0));
        assert_eq!(y[1], 0.5 * 1.0 * -32.0);
    }

    #[test]
    fn nbits_repacking_is_exact() {
        for (t, rows, cols) in [
            (GgmlType::Q8_0, 3, 64),
            (GgmlType::Q5_0, 2, 64),
            (GgmlType::Q4_K, 2, 256),
            (GgmlType::Q6_K, 2, 256),
        ] {
            let raw = random_blocks(t, rows, cols, 12345);
            let reference = dequantize(t, &raw).expect("dequantizes");
            let packed = to_nbits(t, &raw, rows, cols).expect("repacks");
            let back = packed.dequantize();
            let worst =
                reference.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            let largest = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
            // Only float rounding may differ.
            assert!(worst <= largest * 1e-6, "{t:?}: {worst} of {largest}");
        }
        assert!(to_nbits(GgmlType::F32, &[0; 4], 1, 1).is_none());
    }

    #[test]
    fn floats_and_refusals() {
        let f16s: Vec<u8> = [1.5f32, -0.5].iter().flat_map(|x| h(*x)).collect();
        assert_eq!(dequantize(GgmlType::F16, &f16s).expect("f16"), vec![1.5, -0.5]);
        let bf16s: Vec<u8> =
            [2.0f32, -3.0].iter().flat_map(|x| bf16::from_f32(*x).to_le_bytes()).collect();
        assert_eq!(dequantize(GgmlType::BF16, &bf16s).expect("bf16"), vec![2.0, -3.0]);
        let e = dequantize(GgmlType::Q5_K, &[0u8; 176]).expect_err("unsupported");
        assert!(e.contains("Q5_K") && e.contains("supported:"), "{e}");
        assert!(dequantize(GgmlType::Q8_0, &[0u8; 33]).is_err(), "a partial block");
        assert_eq!(GgmlType::from_id(12), Some(GgmlType::Q4_K));
        assert_eq!(GgmlType::Q6_K.byte_len(512), Some(420));
        assert_eq!(GgmlType::Q6_K.byte_len(100), None);
    }
}
