//! A blocking Rust client of the batos kernel (`batos serve`), for embedders and for
//! the command line: find the kernel serving an image through its `kernel.json`,
//! connect, say `hello`, and make requests, seeing the events each causes.
//!
//! This crate narrows its dependencies to the protocol crate and tungstenite (the same
//! WebSocket implementation the kernel's axum uses). It opens no image: everything
//! goes through the kernel, with a person's authority, through the same gate as the
//! command line.
//!
//! ```no_run
//! use batos_client::Client;
//! use batos_protocol::Request;
//!
//! let info = batos_protocol::read_kernel_info("batos-image".as_ref()).expect("a kernel serves it");
//! let mut client = Client::connect(&info, Default::default())?;
//! let answer = client.request(Request::Inspect { object: "genesis".into(), at: None }, &mut |_| {})?;
//! println!("{}", answer.map(|o| o.text).unwrap_or_else(|e| e.message));
//! # Ok::<(), batos_client::ClientError>(())
//! ```

#![forbid(unsafe_code)]

use std::net::TcpStream;

use batos_protocol::{
    ClientMessage, ErrorBody, Format, Frame, KernelInfo, Output, Request, ServerMessage, State,
    PROTOCOL, SUBPROTOCOL_MSGPACK,
};
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Why the client could not do what was asked (a request the kernel refused is not
/// this: it is the `Err` inside `Ok`).
#[derive(Debug)]
pub enum ClientError {
    /// The kernel could not be reached, or the connection broke.
    Connection(String),
    /// The kernel refused the connection (`bad_token`, `bad_version`, …).
    Refused(ErrorBody),
    /// The kernel closed the connection: with [`batos_protocol::close::RESTARTING`] it
    /// is stopping, with [`batos_protocol::close::LAGGED`] this client fell behind;
    /// either way, connect again with `resume_from` [`Client::last_seq`].
    Closed {
        /// The close code.
        code: u16,
        /// Its reason.
        reason: String,
    },
    /// The kernel said something that is not `batos.v1`.
    Protocol(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connection(e) => write!(f, "cannot talk to the kernel: {e}"),
            ClientError::Refused(e) => {
                write!(f, "the kernel refused the connection: {}", e.message)
            }
            ClientError::Closed { code, reason } => {
                write!(f, "the kernel closed the connection ({code}: {reason})")
            }
            ClientError::Protocol(e) => write!(f, "the kernel answered outside batos.v1: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// How to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// JSON text frames or msgpack binary frames.
    pub format: Format,
    /// Who is talking, for the kernel's log.
    pub client: String,
    /// The last event `seq` handled before, to get the missed ones replayed.
    pub resume_from: Option<u64>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            format: Format::Msgpack,
            client: format!("batos-client {}", env!("CARGO_PKG_VERSION")),
            resume_from: None,
        }
    }
}

/// One connection to a kernel.
pub struct Client {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    format: Format,
    session: String,
    head_seq: u64,
    last_seq: u64,
    next_id: u64,
}

impl Client {
    /// Connects to the kernel `info` describes and says hello.
    pub fn connect(info: &KernelInfo, options: ConnectOptions) -> Result<Client, ClientError> {
        let connection = |e: tungstenite::Error| ClientError::Connection(e.to_string());
        let mut request = info.url().into_client_request().map_err(connection)?;
        if options.format == Format::Msgpack {
            let protocol = SUBPROTOCOL_MSGPACK
                .parse()
                .map_err(|_| ClientError::Protocol("bad subprotocol header".into()))?;
            request.headers_mut().insert("Sec-WebSocket-Protocol", protocol);
        }
        // Our own stream, so that a request goes out at once (no Nagle delay).
        let stream = TcpStream::connect(&info.address)
            .map_err(|e| ClientError::Connection(format!("{}: {e}", info.address)))?;
        let _ = stream.set_nodelay(true);
        let (socket, _) = tungstenite::client(request, MaybeTlsStream::Plain(stream))
            .map_err(|e| ClientError::Connection(e.to_string()))?;
        let mut client = Client {
            socket,
            format: options.format,
            session: String::new(),
            head_seq: 0,
            last_seq: options.resume_from.unwrap_or(0),
            next_id: 1,
        };
        client.say(&ClientMessage::Hello {
            protocol: PROTOCOL.into(),
            client: options.client,
            token: info.token.clone(),
            resume_from: options.resume_from,
        })?;
        match client.read()? {
            ServerMessage::Welcome { session, head_seq, .. } => {
                client.session = session;
                client.head_seq = head_seq;
                Ok(client)
            }
            ServerMessage::Error { error, .. } => Err(ClientError::Refused(error)),
            other => Err(ClientError::Protocol(format!("expected welcome, got {other:?}"))),
        }
    }

    /// The session id the kernel gave this connection (in every `cause` it brings about).
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The newest event `seq` when this connection was welcomed.
    pub fn head_seq(&self) -> u64 {
        self.head_seq
    }

    /// The last event `seq` this client has read: what to resume from.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Sends a message as it is (for requests made by hand, `subscribe` and `cancel`).
    pub fn say(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        let frame = match batos_protocol::encode(message, self.format) {
            Frame::Text(t) => Message::text(t),
            Frame::Binary(b) => Message::binary(b),
        };
        self.socket.send(frame).map_err(|e| ClientError::Connection(e.to_string()))
    }

    /// A fresh request id of this client.
    pub fn next_id(&mut self) -> String {
        let id = self.next_id.to_string();
        self.next_id += 1;
        id
    }

    /// The next message from the kernel (waiting for it).
    pub fn next_message(&mut self) -> Result<ServerMessage, ClientError> {
        self.read()
    }

    fn read(&mut self) -> Result<ServerMessage, ClientError> {
        loop {
            let message = self.socket.read().map_err(|e| match e {
                tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                    ClientError::Closed { code: 1006, reason: "closed".into() }
                }
                e => ClientError::Connection(e.to_string()),
            })?;
            let frame = match message {
                Message::Text(t) => Frame::Text(t.as_str().to_owned()),
                Message::Binary(b) => Frame::Binary(b.to_vec()),
                Message::Close(frame) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    });
                    return Err(ClientError::Closed { code, reason });
                }
                _ => continue,
            };
            let message: ServerMessage = batos_protocol::decode(&frame, self.format)
                .map_err(|e| ClientError::Protocol(e.message))?;
            if let ServerMessage::Event { seq, .. } = &message {
                self.last_seq = self.last_seq.max(*seq);
            }
            return Ok(message);
        }
    }

    /// Makes a request and waits until it is done (its `idle`), handing every other
    /// message that arrives meanwhile — its events, and anything else — to `on_message`.
    /// Answers the request's output, or the kernel's reason for refusing it.
    pub fn request(
        &mut self,
        request: Request,
        on_message: &mut dyn FnMut(&ServerMessage),
    ) -> Result<Result<Output, ErrorBody>, ClientError> {
        let id = self.next_id();
        self.say(&ClientMessage::Request { id: id.clone(), request })?;
        let mut answer = None;
        loop {
            match self.read()? {
                ServerMessage::Reply { re, ok, error } if re == id => {
                    answer = Some(match (ok, error) {
                        (Some(ok), _) => Ok(ok),
                        (None, Some(e)) => Err(e),
                        (None, None) => Err(ErrorBody::new("failed", "an empty reply")),
                    });
                }
                ServerMessage::Status { re, state: State::Idle } if re == id => {
                    return answer.ok_or_else(|| {
                        ClientError::Protocol(format!("request {id} went idle without a reply"))
                    });
                }
                ServerMessage::Error { re: Some(re), error } if re == id => return Ok(Err(error)),
                other => on_message(&other),
            }
        }
    }

    /// Closes the connection politely.
    pub fn close(mut self) {
        let _ = self.socket.close(None);
        let _ = self.socket.flush();
    }
}
