//! A stand-in chat-completions server on loopback (a test double: it answers scripted
//! replies, one per connection, and records each request; it is not a model).
#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// What the server does with one request.
pub enum Reply {
    /// Answers these raw HTTP bytes.
    Answer(String),
    /// Tells the test (through `arrived`) and never answers: for killing a client
    /// while it waits on its mind.
    Hang,
    /// Answers these raw HTTP bytes once the test says so on the channel: for acting
    /// while a client waits on its mind.
    Gated(String, mpsc::Receiver<()>),
}

/// The server: its base URL, the requests it saw (`(head, body)`, once it has served
/// its script), and a signal per request as it arrives.
pub struct StubChatServer {
    pub base_url: String,
    pub handle: JoinHandle<Vec<(String, String)>>,
    pub arrived: mpsc::Receiver<()>,
}

impl StubChatServer {
    /// Serves `replies` in order, one connection each.
    pub fn start(replies: Vec<Reply>) -> StubChatServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let base_url = format!("http://{}/v1", listener.local_addr().expect("addr"));
        let (tell, arrived) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for reply in replies {
                let (stream, _) = listener.accept().expect("a client connects");
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut head = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).expect("header line");
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().expect("length");
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).expect("body");
                seen.push((head, String::from_utf8(body).expect("utf-8 body")));
                let _ = tell.send(());
                match reply {
                    Reply::Answer(response) => {
                        let mut stream = stream;
                        stream.write_all(response.as_bytes()).expect("answer");
                    }
                    Reply::Gated(response, gate) => {
                        let _ = gate.recv();
                        let mut stream = stream;
                        stream.write_all(response.as_bytes()).expect("answer");
                    }
                    Reply::Hang => {
                        // Hold the connection until the client goes away.
                        let mut rest = Vec::new();
                        let _ = reader.read_to_end(&mut rest);
                    }
                }
            }
            seen
        });
        StubChatServer { base_url, handle, arrived }
    }
}

/// An SSE chat-completions response streaming `chunks` (JSON objects, then `[DONE]`).
pub fn sse(chunks: &[&str]) -> String {
    let body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    format!("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}

/// A streamed response whose whole content is `text`.
pub fn answer(text: &str) -> Reply {
    Reply::Answer(answer_bytes(text))
}

/// The raw HTTP of [`answer`], for [`Reply::Gated`].
pub fn answer_bytes(text: &str) -> String {
    let chunk = serde_json::json!({ "choices": [{ "delta": { "content": text }, "finish_reason": "stop" }] }).to_string();
    sse(&[&chunk, "[DONE]"])
}

/// A stand-in server for any number of requests, concurrently: the first `hangs` are
/// held until their client goes away (each announced on the receiver as it arrives),
/// every other one is answered `text`. For tests whose number of mind calls depends on
/// how many processes think (workers) and how often they are killed.
pub fn always_after_hangs(text: &str, hangs: usize) -> (String, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let base_url = format!("http://{}/v1", listener.local_addr().expect("addr"));
    let (tell, arrived) = mpsc::channel();
    let response = answer_bytes(text);
    std::thread::spawn(move || {
        let held = std::sync::atomic::AtomicUsize::new(0);
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let hang = held.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < hangs;
            let (tell, response) = (tell.clone(), response.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                if hang {
                    let _ = tell.send(());
                    let mut rest = Vec::new();
                    let _ = reader.read_to_end(&mut rest);
                } else {
                    let mut stream = stream;
                    let _ = stream.write_all(response.as_bytes());
                }
            });
        }
    });
    (base_url, arrived)
}
