//! A kernel served in this process on a free port, stopped when dropped.

use std::net::TcpStream;
use std::sync::Arc;

use batos::ImageOptions;
use batos_client::{Client, ConnectOptions};
use batos_kernel::{Kernel, ServeOptions};
use batos_protocol::{Bytes, ClientMessage, Format, KernelInfo, Request, ServerMessage};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A served kernel.
pub struct Served {
    pub info: KernelInfo,
    pub kernel: Arc<Kernel>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Held so the image's folder outlives the kernel (fields drop in order).
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn serve() -> Served {
    let dir = tempfile::tempdir().expect("works");
    let kernel =
        Arc::new(Kernel::open(&dir.path().join("image"), ImageOptions::default()).expect("works"));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = kernel.clone();
    let thread = std::thread::spawn(move || {
        let options = ServeOptions {
            listen: "127.0.0.1:0".parse().expect("works"),
            stop_deadline: std::time::Duration::from_secs(5),
            ..Default::default()
        };
        batos_kernel::serve_until(
            served,
            options,
            |info| ready_tx.send(info.clone()).expect("works"),
            async move {
                let _ = stopped.await;
            },
        )
        .expect("works");
    });
    let info = ready_rx.recv().expect("works");
    Served { info, kernel, stop: Some(stop), thread: Some(thread), _dir: dir }
}

pub fn client(served: &Served, format: Format) -> Client {
    Client::connect(&served.info, ConnectOptions { format, ..Default::default() }).expect("works")
}

/// A raw JSON WebSocket to the kernel, for frames no client library would send.
pub fn raw(served: &Served) -> WebSocket<MaybeTlsStream<TcpStream>> {
    tungstenite::connect(served.info.url()).expect("works").0
}

pub fn send_json(ws: &mut WebSocket<MaybeTlsStream<TcpStream>>, json: &str) {
    ws.send(Message::text(json.to_owned())).expect("works");
}

/// The next data frame as a message, or the close code.
pub fn read(ws: &mut WebSocket<MaybeTlsStream<TcpStream>>) -> Result<ServerMessage, u16> {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return Ok(serde_json::from_str(t.as_str()).expect("works")),
            Ok(Message::Close(frame)) => return Err(frame.map_or(1005, |f| u16::from(f.code))),
            Ok(_) => continue,
            Err(_) => return Err(1006),
        }
    }
}

pub fn hello(ws: &mut WebSocket<MaybeTlsStream<TcpStream>>, served: &Served) -> ServerMessage {
    let hello = ClientMessage::Hello {
        protocol: batos_protocol::PROTOCOL.into(),
        client: "test".into(),
        token: served.info.token.clone(),
        resume_from: None,
    };
    send_json(ws, &serde_json::to_string(&hello).expect("works"));
    read(ws).expect("works")
}

/// A WAT method `increment` on genesis: adds one to its `count` slot and answers it.
pub const INCREMENT: &str = include_str!("../support/increment.wat");

/// Installs `increment` and sets `count` to 0, through `client`.
pub fn install_increment(client: &mut Client) {
    client
        .request(
            Request::PluginAdd {
                file: "increment.wat".into(),
                component: Bytes(INCREMENT.as_bytes().to_vec()),
                manifest:
                    "selector = \"increment\"\ntarget = \"genesis\"\ndescription = \"Counts.\"\n"
                        .into(),
                source: None,
                origin: None,
            },
            &mut |_| {},
        )
        .expect("works")
        .expect("works");
    set(client, "count", serde_json::json!(0));
}

pub fn set(client: &mut Client, slot: &str, value: serde_json::Value) {
    client
        .request(Request::Set { object: "genesis".into(), slot: slot.into(), value }, &mut |_| {})
        .expect("works")
        .expect("works");
}

pub fn increment(client: &mut Client) -> i64 {
    let out = client
        .request(Request::send_known("genesis", "increment", vec![]), &mut |_| {})
        .expect("works")
        .expect("works");
    out.json["result"].as_i64().expect("works")
}
