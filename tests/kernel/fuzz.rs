//! Random and mutated frames against a live kernel: each gets an error reply or a
//! clean close, and afterwards the kernel serves a fresh client and the image is as it
//! was. CI sends a few thousand frames; the long run (≥ 100,000 frames):
//! `BATOS_FUZZ_FRAMES=100000 cargo test -p batos-kernel --test kernel fuzz -- --nocapture`

use batos_protocol::{Format, Request, ServerMessage};
use rand::{Rng, SeedableRng};

use super::support::{self, hello, set};

/// Valid frames to mutate: reads only, so that a mutation that stays valid changes
/// nothing either.
const SEEDS: &[&str] = &[
    r#"{"type":"request","id":"a","request":{"op":"inspect","object":"genesis"}}"#,
    r#"{"type":"request","id":"b","request":{"op":"history","limit":3}}"#,
    r#"{"type":"request","id":"c","request":{"op":"cycles"}}"#,
    r#"{"type":"subscribe","id":"d","kinds":["transaction"]}"#,
    r#"{"type":"cancel","id":"e","target":"a"}"#,
    r#"{"type":"hello","protocol":"batos.v1","client":"x","token":"y"}"#,
];

fn mutate(rng: &mut rand::rngs::StdRng) -> Vec<u8> {
    let mut bytes = SEEDS[rng.random_range(0..SEEDS.len())].as_bytes().to_vec();
    match rng.random_range(0..5) {
        0 => (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),
        1 => {
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] = rng.random();
            }
            bytes
        }
        2 => {
            bytes.truncate(rng.random_range(0..bytes.len()));
            bytes
        }
        3 => {
            let i = rng.random_range(0..bytes.len());
            bytes.insert(i, b"{}[]\":,0a"[rng.random_range(0..9)]);
            bytes
        }
        _ => bytes,
    }
}

#[test]
fn random_and_mutated_frames_leave_the_kernel_serving_and_the_image_intact() {
    let frames: usize =
        std::env::var("BATOS_FUZZ_FRAMES").ok().and_then(|n| n.parse().ok()).unwrap_or(3000);
    let served = support::serve();
    let mut control = support::client(&served, Format::Msgpack);
    set(&mut control, "kept", serde_json::json!("before"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let mut ws = support::raw(&served);
    hello(&mut ws, &served);
    let (mut sent, mut reconnects) = (0, 0);
    while sent < frames {
        let bytes = mutate(&mut rng);
        let frame = match String::from_utf8(bytes) {
            Ok(text) if rng.random_bool(0.8) => tungstenite::Message::text(text),
            Ok(text) => tungstenite::Message::binary(text.into_bytes()),
            Err(e) => tungstenite::Message::binary(e.into_bytes()),
        };
        sent += 1;
        if ws.send(frame).is_err() {
            ws = support::raw(&served);
            hello(&mut ws, &served);
            reconnects += 1;
            continue;
        }
        // Everything is answered: drain what came back so far without waiting.
        if sent % 100 == 0 {
            send_marker(&mut ws);
        }
    }
    println!("{sent} frames, {reconnects} reconnects");
    let mut fresh = support::client(&served, Format::Json);
    let out = fresh
        .request(Request::Inspect { object: "genesis".into(), at: None }, &mut |_| {})
        .expect("a fresh client is served")
        .expect("inspects");
    assert_eq!(out.json["slots"]["kept"], serde_json::json!("before"));
    assert!(control
        .request(Request::Awaken, &mut |_| {})
        .expect("the control client lives")
        .is_ok());
}

/// Sends a request and reads until its idle, so the kernel's answers never pile up.
fn send_marker(
    ws: &mut tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
) {
    support::send_json(ws, r#"{"type":"request","id":"marker","request":{"op":"roots"}}"#);
    loop {
        match support::read(ws) {
            Ok(ServerMessage::Status { re, state: batos_protocol::State::Idle })
                if re == "marker" =>
            {
                return
            }
            Ok(_) => continue,
            Err(_) => return,
        }
    }
}
