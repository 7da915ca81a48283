//! Bridge benchmarks, side by side in one run: the round trip of a trivial send over
//! loopback WebSocket (request → busy, reply, idle) beside the same send executed
//! in-process and beside a bare WebSocket echo on the same stack (axum on tokio, a
//! tungstenite client); then events per second delivered to 1 and to 50 subscribers.
//! Run: `cargo bench -p batos-kernel --bench bridge`

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as AxumMessage, WebSocketUpgrade};
use batos_client::{Client, ConnectOptions};
use batos_protocol::{Event, Format, Request, ServerMessage};

#[path = "support/serving.rs"]
mod serving;

use serving::Serving;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The trivial send: `genesis description`, a data slot answered by lookup.
fn trivial() -> Request {
    Request::send_known("genesis", "description", vec![])
}

/// p50 and p99 of `n` timed runs of each of `runs` (after a warm-up of a tenth as
/// many), taken in turn so that every one of them meets the same conditions: on a
/// shared machine the anchor's own time moves by a third between runs.
fn interleaved(n: usize, runs: &mut [&mut dyn FnMut()]) -> Vec<(Duration, Duration)> {
    for _ in 0..n / 10 {
        for run in runs.iter_mut() {
            run();
        }
    }
    let mut times = vec![Vec::with_capacity(n); runs.len()];
    for _ in 0..n {
        for (run, times) in runs.iter_mut().zip(&mut times) {
            let start = Instant::now();
            run();
            times.push(start.elapsed());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_unstable();
            (t[n / 2], t[(n * 99 / 100).min(n - 1)])
        })
        .collect()
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// A bare WebSocket echo server on the kernel's stack, on its own runtime thread.
fn echo_server() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/ws",
                axum::routing::get(|ws: WebSocketUpgrade| async move {
                    ws.on_upgrade(|mut socket| async move {
                        while let Some(Ok(m)) = socket.recv().await {
                            if matches!(m, AxumMessage::Text(_) | AxumMessage::Binary(_))
                                && socket.send(m).await.is_err()
                            {
                                break;
                            }
                        }
                    })
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
            tx.send(listener.local_addr().expect("an address")).expect("told");
            // As the kernel does.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app).await.expect("serves");
        });
    });
    rx.recv().expect("the echo server listens")
}

/// A small event.
fn tick() -> Event {
    Event::Log { capability: "bench".into(), level: "info".into(), message: "tick".into() }
}

fn main() {
    let quick = std::env::args().all(|a| a != "--bench");
    let n = if quick { 200 } else { 5_000 };
    let serving = Serving::start();
    let (kernel, info) = (serving.kernel.clone(), serving.info.clone());
    println!("bridge benchmarks{}", if quick { " — quick mode" } else { "" });
    println!();

    // The round trip, three ways.
    let mut json =
        Client::connect(&info, ConnectOptions { format: Format::Json, ..Default::default() })
            .expect("connects");
    let mut msgpack =
        Client::connect(&info, ConnectOptions { format: Format::Msgpack, ..Default::default() })
            .expect("connects");
    // The echo carries a frame the size of the JSON request, over a stream set up as
    // the client's is.
    let frame = serde_json::to_string(&batos_protocol::ClientMessage::Request {
        id: "1".into(),
        request: trivial(),
    })
    .expect("encodes");
    let echo = echo_server();
    let stream = TcpStream::connect(echo).expect("connects");
    stream.set_nodelay(true).expect("nodelay");
    let (mut socket, _): (WebSocket<MaybeTlsStream<TcpStream>>, _) =
        tungstenite::client(format!("ws://{echo}/ws"), MaybeTlsStream::Plain(stream))
            .expect("upgrades");
    let times = interleaved(
        n,
        &mut [
            &mut || {
                kernel.execute(trivial(), None).expect("answers");
            },
            &mut || {
                json.request(trivial(), &mut |_| {}).expect("connected").expect("answers");
            },
            &mut || {
                msgpack.request(trivial(), &mut |_| {}).expect("connected").expect("answers");
            },
            &mut || {
                socket.send(Message::text(frame.clone())).expect("sent");
                socket.read().expect("echoed");
            },
        ],
    );
    let [(in50, in99), (j50, j99), (m50, m99), (e50, e99)] = times[..] else {
        unreachable!("four runs, four results")
    };
    println!("round trip of a trivial send ({n} runs)        p50          p99     p50 vs echo");
    for (name, p50, p99) in [
        ("in-process (Kernel::execute)", in50, in99),
        ("bridge, JSON", j50, j99),
        ("bridge, msgpack", m50, m99),
        ("bare WebSocket echo (anchor)", e50, e99),
    ] {
        let ratio = p50.as_secs_f64() / e50.as_secs_f64();
        println!("  {name:<38} {:>12} {:>12}     {ratio:.2}×", us(p50), us(p99));
    }
    println!();

    // Events to subscribers: published straight into the log, each subscriber reading
    // on its own thread; the publisher stays within the queue of the slowest one, so
    // nobody lags and every event is delivered.
    let events = if quick { 2_000 } else { 100_000 };
    // The anchor for delivery: publishing alone (numbering, keeping in the image).
    let start = Instant::now();
    for _ in 0..events {
        kernel.events().publish(None, tick());
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "publishing with no subscriber (anchor): {events} events in {elapsed:.2} s = {:.0} events/s",
        events as f64 / elapsed
    );
    for subscribers in [1usize, 50] {
        let per = if subscribers == 1 { events } else { events / 5 };
        let start_seq = kernel.events().head();
        let seen: Vec<Arc<AtomicU64>> =
            (0..subscribers).map(|_| Arc::new(AtomicU64::new(start_seq))).collect();
        let readers: Vec<_> = seen
            .iter()
            .map(|seen| {
                let seen = seen.clone();
                let mut client = Client::connect(
                    &info,
                    ConnectOptions { format: Format::Msgpack, ..Default::default() },
                )
                .expect("connects");
                std::thread::spawn(move || {
                    let last = start_seq + per as u64;
                    while seen.load(Ordering::Relaxed) < last {
                        if let ServerMessage::Event { seq, .. } =
                            client.next_message().expect("delivered")
                        {
                            seen.store(seq, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        let start = Instant::now();
        for i in 0..per as u64 {
            while seen.iter().map(|s| s.load(Ordering::Relaxed)).min().unwrap_or(0) + 2_000
                < start_seq + i
            {
                std::thread::yield_now();
            }
            kernel.events().publish(None, tick());
        }
        for reader in readers {
            reader.join().expect("a reader");
        }
        let elapsed = start.elapsed().as_secs_f64();
        println!(
            "events to {subscribers:>2} subscriber(s): {per} events in {elapsed:.2} s = {:.0} events/s to each, {:.0} deliveries/s in all",
            per as f64 / elapsed,
            (per * subscribers) as f64 / elapsed,
        );
    }
    serving.stop();
}
