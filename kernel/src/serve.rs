//! The Synaptic Bridge: a kernel served over WebSocket at `/ws` (axum on tokio),
//! speaking `batos.v1` (`docs/protocol.md`).
//!
//! Each connection has one task that reads the client's frames and writes the
//! connection's queue (its replies and statuses, and the events it subscribed to) to
//! the socket. A request that only touches the image ([`Kernel::runs_briefly`]) runs on
//! that task, since handing it to another thread costs more than running it; any
//! other runs on tokio's blocking pool, since a plugin may run for its deadline and a
//! cycle waits on a mind and a compiler, and the connection must stay free to read a
//! `cancel`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use batos_protocol::limits::{HELLO_TIMEOUT_MS, MAX_FRAME_BYTES, STOP_DEADLINE_MS};
use batos_protocol::{
    close, Cause, ClientMessage, ErrorBody, Format, Frame, KernelInfo, Output, Request,
    ServerMessage, State, PROTOCOL, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK,
};
use tokio::sync::watch;

use crate::events::{Filter, Outgoing};
use crate::{Failure, Kernel};

/// Requests one connection may have running at once: enough for a client that sends
/// many small requests without waiting, few enough that one client cannot occupy the
/// blocking pool.
pub const MAX_IN_FLIGHT: usize = 64;

/// How `batos serve` listens and stops.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen (port 0 picks a free one).
    pub listen: SocketAddr,
    /// How long a stopping kernel lets requests in flight finish.
    pub stop_deadline: Duration,
    /// A socket already listening, inherited from the kernel this one replaces
    /// ([`crate::upgrade::Takeover`]); `listen` is then not bound.
    pub inherited: Option<Arc<std::net::TcpListener>>,
    /// The command line (after the program) a new binary is started with on
    /// `upgrade`; `None` refuses upgrades (an embedder's kernel has no command line).
    pub upgrade_args: Option<Vec<String>>,
    /// Whether this kernel's own runner works the synthesis jobs; off when workers on
    /// other machines do (`batos serve --nats`), so that the kernel only dispatches
    /// them (model pulls always run here: they fill this machine's models folder).
    pub local_jobs: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 7777)),
            stop_deadline: Duration::from_millis(STOP_DEADLINE_MS),
            inherited: None,
            upgrade_args: None,
            local_jobs: true,
        }
    }
}

/// How a served kernel ended.
#[derive(Debug)]
pub struct Served {
    /// Requests that were still running at the deadline (their cycles were cancelled).
    pub abandoned: usize,
    /// The process this kernel handed over to, if it stopped for an upgrade: the
    /// caller should exit with [`crate::upgrade::EXIT_UPGRADED`] promptly, since the
    /// successor waits for the image.
    pub successor: Option<u32>,
}

struct Shared {
    kernel: Arc<Kernel>,
    token: String,
    /// The origin a browser page served by this kernel has.
    origin: String,
    /// New requests are refused.
    stopping: watch::Receiver<bool>,
    /// Connections close with `restarting`.
    closing: watch::Receiver<bool>,
    connections: AtomicUsize,
    sessions: AtomicU64,
}

/// Serves `kernel` until SIGTERM or SIGINT: writes `<image>/kernel.json` once listening
/// (calling `ready` with it), and on a signal stops accepting, refuses new requests,
/// cancels running cycles, lets other requests in flight finish within the deadline,
/// closes every connection with [`close::RESTARTING`], removes `kernel.json`, flushes
/// and closes the image.
pub fn serve(
    kernel: impl Into<Arc<Kernel>>,
    options: ServeOptions,
    ready: impl FnOnce(&KernelInfo),
) -> Result<Served, Failure> {
    serve_until(kernel.into(), options, ready, signal())
}

/// [`serve`], stopping when `stop` completes instead of on a signal (for embedders
/// that run a kernel among other work, and for tests).
pub fn serve_until(
    kernel: Arc<Kernel>,
    options: ServeOptions,
    ready: impl FnOnce(&KernelInfo),
    stop: impl std::future::Future<Output = ()>,
) -> Result<Served, Failure> {
    let io = |what: &str, e: std::io::Error| Failure(ErrorBody::new("io", format!("{what}: {e}")));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("batos-kernel")
        .build()
        .map_err(|e| io("cannot start the kernel's runtime", e))?;
    let image: PathBuf = kernel.runtime().image().path().to_path_buf();
    let served = runtime.block_on(async {
        let listener = match &options.inherited {
            Some(inherited) => {
                let std_listener =
                    inherited.try_clone().map_err(|e| io("cannot use the inherited socket", e))?;
                std_listener
                    .set_nonblocking(true)
                    .map_err(|e| io("cannot use the inherited socket", e))?;
                tokio::net::TcpListener::from_std(std_listener)
                    .map_err(|e| io("cannot use the inherited socket", e))?
            }
            None => tokio::net::TcpListener::bind(options.listen)
                .await
                .map_err(|e| io(&format!("cannot listen on {}", options.listen), e))?,
        };
        let listener_fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        let address = listener.local_addr().map_err(|e| io("no local address", e))?;
        // A request's answer is several small frames (busy, events, reply, idle): with
        // Nagle's algorithm each after the first would wait for the client's delayed
        // ACK, some 40 ms a request.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY: {e}");
            }
        });
        let token = lasting_token(&kernel).map_err(Failure::from)?;
        let info = KernelInfo {
            address: address.to_string(),
            pid: std::process::id(),
            protocol: PROTOCOL.to_owned(),
            token: token.clone(),
        };
        info.write(&image).map_err(|e| io("cannot write kernel.json", e))?;
        let (stop_tx, stopping) = watch::channel(false);
        let (close_tx, closing) = watch::channel(false);
        let shared = Arc::new(Shared {
            kernel: kernel.clone(),
            token,
            origin: format!("http://{address}"),
            stopping,
            closing,
            connections: AtomicUsize::new(0),
            sessions: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .route("/ws", get(upgrade))
            .route("/", get(|| async { crate::ui::asset("/") }))
            .route(
                "/{file}",
                get(|axum::extract::Path(file): axum::extract::Path<String>| async move {
                    crate::ui::asset(&format!("/{file}"))
                }),
            )
            .with_state(shared.clone());
        // The drop-in folder is the kernel's to watch while it holds the image.
        let watched = kernel.clone();
        let _folder = batos::sandbox::watch::DropFolder::watch(
            kernel.runtime().clone(),
            kernel.sandbox().clone(),
            &image.join("plugins"),
            move |report| match report {
                Ok(report) => watched.publish_sync(&report),
                Err(e) => tracing::warn!("the drop-in folder: {e}"),
            },
        )?;
        tracing::info!(%address, "the kernel is serving");
        ready(&info);
        let heart = tokio::spawn(crate::heartbeat::run(kernel.clone(), stop_tx.subscribe()));
        let jobs_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let job_runner = {
            let (kernel, stop) = (kernel.clone(), jobs_stop.clone());
            let kinds: &'static [&'static str] = if options.local_jobs {
                &[crate::jobs::SYNTHESIS, crate::jobs::MODEL_PULL]
            } else {
                &[crate::jobs::MODEL_PULL]
            };
            Some(
                std::thread::Builder::new()
                    .name("batos-jobs".into())
                    .spawn(move || crate::jobs::run_local(kernel, stop, kinds)),
            )
        };
        let (upgrade_tx, mut upgrades) = tokio::sync::mpsc::unbounded_channel::<crate::upgrade::Asked>();
        let forward = {
            let (tx, rx) = std::sync::mpsc::channel::<crate::upgrade::Asked>();
            *kernel.upgrades.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
            std::thread::spawn(move || {
                while let Ok(asked) = rx.recv() {
                    if upgrade_tx.send(asked).is_err() {
                        break;
                    }
                }
            })
        };
        let mut stop_rx = stop_tx.subscribe();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                })
                .await
        });
        let mut stop = std::pin::pin!(stop);
        let image_format = kernel.runtime().image().format().ok().flatten();
        let successor = loop {
            tokio::select! {
                () = &mut stop => break None,
                Some(asked) = upgrades.recv() => {
                    let Some(args) = options.upgrade_args.clone() else {
                        let _ = asked.reply.send(Err(crate::bad_input(
                            "this kernel was not started by `batos serve`, so it cannot start its successor",
                        )));
                        continue;
                    };
                    let binary = asked.binary.clone();
                    let started = tokio::task::spawn_blocking(move || {
                        crate::upgrade::start_successor(&binary, &args, listener_fd, image_format)
                    })
                    .await
                    .unwrap_or_else(|e| Err(format!("the upgrade panicked: {e}")));
                    match started {
                        Ok(successor) => {
                            tracing::info!(pid = successor.pid(), binary = %asked.binary.display(), "handing over");
                            let _ = asked.reply.send(Ok(crate::upgrade::accepted(&asked.binary, successor.pid())));
                            break Some(successor);
                        }
                        Err(why) => {
                            tracing::warn!("upgrade refused, still serving: {why}");
                            let _ = asked.reply.send(Err(Failure(ErrorBody::new(
                                "upgrade_refused",
                                format!("{why}; this kernel goes on serving"),
                            ))));
                        }
                    }
                }
            }
        };
        kernel.upgrades.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        drop(forward);
        tracing::info!("stopping: no new connections or requests");
        let _ = stop_tx.send(true);
        // Before the cancel: a job interrupted by the stop is requeued by the next
        // awakening, not failed.
        jobs_stop.store(true, Ordering::SeqCst);
        kernel.cancel_all();
        let deadline = tokio::time::Instant::now() + options.stop_deadline;
        while kernel.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let abandoned = kernel.in_flight();
        let _ = close_tx.send(true);
        // Connections drain their queues (the last replies) and close.
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        while shared.connections.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), heart).await;
        kernel.wake_jobs();
        if let Some(Ok(runner)) = job_runner {
            let joined = tokio::task::spawn_blocking(move || runner.join());
            let _ = tokio::time::timeout(Duration::from_secs(2), joined).await;
        }
        let _ = std::fs::remove_file(image.join(batos_protocol::KERNEL_FILE));
        let successor = successor.map(|s| {
            let pid = s.pid();
            s.go();
            pid
        });
        Ok::<_, Failure>(Served { abandoned, successor })
    })?;
    // Requests past the deadline are left to end with the process; the image needs no
    // goodbye (every acknowledged commit is already in the OS, `--durable` on disk).
    runtime.shutdown_timeout(Duration::from_millis(100));
    kernel.flush();
    Ok(served)
}

/// Where the image keeps its kernel's access token.
const TOKEN_KEY: &str = "kernel/token";

/// The image's access token, made on first serve and kept in the image (its auxiliary
/// store, readable only by whoever can read the image, like `kernel.json`): a browser
/// tab logged in to this image stays logged in across restarts of its kernel.
fn lasting_token(kernel: &Kernel) -> Result<String, batos::Error> {
    let image = kernel.runtime().image();
    if let Some(kept) = image.aux_get(TOKEN_KEY)? {
        if let Ok(token) = String::from_utf8(kept) {
            if token.len() == 64 {
                return Ok(token);
            }
        }
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    image.aux_put(TOKEN_KEY, token.as_bytes())?;
    Ok(token)
}

/// Waits for SIGTERM or SIGINT.
async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // No signal handling: serve until killed.
        _ => std::future::pending::<()>().await,
    }
}

async fn upgrade(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // Browsers always send Origin; a page from anywhere but the kernel itself must not
    // drive the image with the person's authority (the token is the other half).
    if let Some(origin) = headers.get(header::ORIGIN) {
        if origin.as_bytes() != shared.origin.as_bytes() {
            return (
                StatusCode::FORBIDDEN,
                format!("connections from another origin are refused; open {}", shared.origin),
            )
                .into_response();
        }
    }
    let ws = ws
        .protocols([SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON])
        .max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_FRAME_BYTES);
    let format = match ws.selected_protocol() {
        Some(p) if p.as_bytes() == SUBPROTOCOL_MSGPACK.as_bytes() => Format::Msgpack,
        _ => Format::Json,
    };
    ws.on_upgrade(move |socket| connection(shared, socket, format))
}

fn to_message(message: &ServerMessage, format: Format) -> Message {
    frame_message(batos_protocol::encode(message, format))
}

fn frame_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(t) => Message::Text(t.into()),
        Frame::Binary(b) => Message::Binary(b.into()),
    }
}

/// What goes on the wire for `out`: an event's frame is encoded once for everyone.
fn outgoing_message(out: &Outgoing, format: Format) -> Message {
    match out {
        Outgoing::Direct(m) => to_message(m, format),
        Outgoing::Event(stored) => frame_message(stored.frame(format).clone()),
    }
}

async fn say(socket: &mut WebSocket, format: Format, message: &ServerMessage) -> bool {
    socket.send(to_message(message, format)).await.is_ok()
}

async fn close_with(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

fn error(re: Option<String>, kind: &str, message: impl Into<String>) -> ServerMessage {
    ServerMessage::Error { re, error: ErrorBody::new(kind, message) }
}

/// Counts a connection while it lives.
struct Counted(Arc<Shared>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn connection(shared: Arc<Shared>, mut socket: WebSocket, format: Format) {
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let _counted = Counted(shared.clone());
    let hello = tokio::time::timeout(Duration::from_millis(HELLO_TIMEOUT_MS), socket.recv()).await;
    let frame = match hello {
        Err(_) => {
            let _ =
                say(&mut socket, format, &error(None, "hello_timeout", "no hello in time")).await;
            return close_with(&mut socket, close::HELLO_TIMEOUT, "no hello").await;
        }
        Ok(Some(Ok(m))) => match frame_of(m) {
            Some(f) => f,
            None => return,
        },
        Ok(_) => return,
    };
    let resume_from = match batos_protocol::decode::<ClientMessage>(&frame, format) {
        Ok(ClientMessage::Hello { protocol, client, token, resume_from }) => {
            if protocol != PROTOCOL {
                let text = format!("this kernel speaks {PROTOCOL}, not `{protocol}`");
                let _ = say(&mut socket, format, &error(None, "bad_version", &text)).await;
                return close_with(&mut socket, close::BAD_VERSION, "bad version").await;
            }
            if !same(token.as_bytes(), shared.token.as_bytes()) {
                let text = "wrong token: use the one in the image's kernel.json";
                let _ = say(&mut socket, format, &error(None, "bad_token", text)).await;
                return close_with(&mut socket, close::BAD_TOKEN, "bad token").await;
            }
            tracing::debug!(%client, "a client said hello");
            resume_from
        }
        Ok(_) => {
            let text = "the first message must be `hello`";
            let _ = say(&mut socket, format, &error(None, "hello_first", text)).await;
            return close_with(&mut socket, close::PROTOCOL_ERROR, "hello first").await;
        }
        Err(e) => {
            let _ = say(&mut socket, format, &error(None, e.kind, e.message)).await;
            return close_with(&mut socket, close::PROTOCOL_ERROR, "not batos.v1").await;
        }
    };
    let n = shared.sessions.fetch_add(1, Ordering::SeqCst);
    let session = format!("{}-{n}", hex::encode(rand::random::<[u8; 4]>()));
    let events = shared.kernel.events().clone();
    let mut sub = events.subscribe(resume_from);
    let welcome = ServerMessage::Welcome {
        protocol: PROTOCOL.into(),
        server: format!("batos-kernel {}", env!("CARGO_PKG_VERSION")),
        session: session.clone(),
        capabilities: vec![
            "msgpack".into(),
            "cancel".into(),
            "subscribe".into(),
            "resume".into(),
            "jobs".into(),
            "upgrade".into(),
        ],
        head_seq: sub.head,
    };
    let mut open = say(&mut socket, format, &welcome).await;
    if open && sub.expired {
        let text = "some events you missed are no longer retained; the oldest retained follow";
        open = say(&mut socket, format, &error(None, "resume_expired", text)).await;
    }
    for stored in std::mem::take(&mut sub.replay) {
        if !open {
            break;
        }
        open = socket.send(frame_message(stored.frame(format).clone())).await.is_ok();
    }
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut closing = shared.closing.clone();
    while open {
        tokio::select! {
            biased;
            _ = async { let _ = closing.wait_for(|c| *c).await; } => {
                // The last replies first.
                while let Ok(out) = sub.queue.try_recv() {
                    if socket.send(outgoing_message(&out, format)).await.is_err() { break; }
                }
                close_with(&mut socket, close::RESTARTING, "the kernel is stopping").await;
                break;
            }
            _ = sub.lag.wait() => {
                while let Ok(out) = sub.queue.try_recv() {
                    if socket.send(outgoing_message(&out, format)).await.is_err() { break; }
                }
                let seq = sub.lag.lagged().unwrap_or(0);
                let _ = say(&mut socket, format, &ServerMessage::Lagged { seq }).await;
                close_with(&mut socket, close::LAGGED, "lagged").await;
                break;
            }
            out = sub.queue.recv() => match out {
                Some(out) => open = write_queued(&mut socket, format, out, &mut sub.queue).await,
                None => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(m)) => {
                    // Control frames are the library's (it answers pings).
                    if let Some(frame) = frame_of(m) {
                        let ctx = Ctx { shared: &shared, session: &session, sub_id: sub.id, in_flight: &in_flight };
                        if let Some(reply) = handle(&ctx, &frame, format, &sub.sender, &sub.filter) {
                            open = say(&mut socket, format, &reply).await;
                        }
                    }
                }
                Some(Err(e)) => {
                    // The one read error a client causes on purpose: a frame too big.
                    let text = e.to_string();
                    if text.contains("too long") || text.contains("too big") || text.contains("Space limit") {
                        let _ = say(&mut socket, format, &error(None, "too_big", format!("a frame over {MAX_FRAME_BYTES} bytes"))).await;
                        close_with(&mut socket, close::TOO_BIG, "frame too big").await;
                    }
                    break;
                }
                None => break,
            },
        }
    }
    events.unsubscribe(sub.id);
}

/// Writes `first` and what else is already queued (a bounded batch), then flushes
/// once: a quick request's busy, events, reply and idle go out in one write.
async fn write_queued(
    socket: &mut WebSocket,
    format: Format,
    first: Outgoing,
    queue: &mut tokio::sync::mpsc::Receiver<Outgoing>,
) -> bool {
    use futures_util::SinkExt as _;
    /// Enough to coalesce a burst; few enough that a busy queue still flushes often.
    const BATCH: usize = 64;
    if socket.feed(outgoing_message(&first, format)).await.is_err() {
        return false;
    }
    for _ in 1..BATCH {
        let Ok(out) = queue.try_recv() else { break };
        if socket.feed(outgoing_message(&out, format)).await.is_err() {
            return false;
        }
    }
    socket.flush().await.is_ok()
}

/// Constant-time comparison, so the token cannot be found a byte at a time.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A data frame, or `None` for control frames (pings are answered by the library).
fn frame_of(message: Message) -> Option<Frame> {
    match message {
        Message::Text(t) => Some(Frame::Text(t.as_str().to_owned())),
        Message::Binary(b) => Some(Frame::Binary(b.to_vec())),
        _ => None,
    }
}

struct Ctx<'a> {
    shared: &'a Arc<Shared>,
    session: &'a str,
    sub_id: u64,
    in_flight: &'a Arc<AtomicUsize>,
}

/// One frame after `hello`; answers what to send back at once, if anything.
fn handle(
    ctx: &Ctx<'_>,
    frame: &Frame,
    format: Format,
    sender: &tokio::sync::mpsc::Sender<Outgoing>,
    filter: &Arc<std::sync::Mutex<Filter>>,
) -> Option<ServerMessage> {
    let message: ClientMessage = match batos_protocol::decode(frame, format) {
        Ok(m) => m,
        Err(e) => {
            // Not a message this kernel knows: say whether it is not even JSON/msgpack,
            // and name its id when it has one, so the client can match the error.
            if let Err(e) = batos_protocol::decode::<serde::de::IgnoredAny>(frame, format) {
                return Some(error(None, e.kind, e.message));
            }
            let id = batos_protocol::decode::<Envelope>(frame, format).ok().and_then(|e| e.id);
            let text = e.message.replace("not a batos.v1 message", "not a batos.v1 client message");
            return Some(error(id, "bad_message", text));
        }
    };
    match message {
        ClientMessage::Hello { .. } => {
            Some(error(None, "hello_again", "this connection already said hello"))
        }
        ClientMessage::Subscribe { id, kinds, objects } => {
            if let Ok(mut f) = filter.lock() {
                *f = Filter { kinds, objects };
            }
            Some(ServerMessage::Reply {
                re: id,
                ok: Some(Output {
                    text: "subscribed".into(),
                    json: serde_json::json!({"subscribed": true}),
                }),
                error: None,
            })
        }
        ClientMessage::Cancel { id, target } => {
            let cause = Cause { session: ctx.session.to_owned(), id: target.clone() };
            let found = ctx.shared.kernel.cancel(&cause);
            let text = if found {
                format!("asked request {target} to stop")
            } else {
                format!("request {target} is not running")
            };
            Some(ServerMessage::Reply {
                re: id,
                ok: Some(Output { text, json: serde_json::json!({ "cancelled": found }) }),
                error: None,
            })
        }
        ClientMessage::Request { id, request } => {
            if *ctx.shared.stopping.borrow() {
                return Some(reply_error(
                    id,
                    ErrorBody::new(
                        "stopping",
                        "the kernel is stopping: send it again to the next one",
                    ),
                ));
            }
            if ctx.in_flight.load(Ordering::SeqCst) >= MAX_IN_FLIGHT {
                return Some(reply_error(id, ErrorBody::new("limit", format!("this connection already has {MAX_IN_FLIGHT} requests running; wait for their replies"))));
            }
            let kernel = ctx.shared.kernel.clone();
            let sub_id = ctx.sub_id;
            let cause = Cause { session: ctx.session.to_owned(), id: id.clone() };
            let put = {
                let (sender, events) = (sender.clone(), kernel.events().clone());
                move |m: ServerMessage| {
                    if sender.try_send(Outgoing::Direct(m)).is_err() {
                        events.mark_lagged(sub_id);
                    }
                }
            };
            put(ServerMessage::Status { re: id.clone(), state: State::Busy });
            if kernel.runs_briefly(&request) {
                // Here, on the connection's task: a worker thread would cost more than
                // the request. Its events, reply and idle are queued in order behind
                // its busy, and go out in one write.
                match run_briefly(&kernel, request, &cause, &id, &put) {
                    None => None,
                    // A data slot gone between the look and the send: the send may need
                    // a synthesis cycle after all, which is a worker thread's.
                    Some(request) => spawn_request(ctx, kernel, request, cause, id, put),
                }
            } else {
                spawn_request(ctx, kernel, request, cause, id, put)
            }
        }
    }
}

/// Runs a brief request and queues its reply and idle; answers the request back when
/// it turned out not to be brief (a send nothing understands), having queued nothing.
fn run_briefly(
    kernel: &Kernel,
    request: Request,
    cause: &Cause,
    id: &str,
    put: &impl Fn(ServerMessage),
) -> Option<Request> {
    // A brief send never synthesises here: one nothing understands comes back.
    let (attempt, original) = match request {
        Request::Send { no_synthesis: false, .. } => {
            let mut attempt = request.clone();
            if let Request::Send { no_synthesis, .. } = &mut attempt {
                *no_synthesis = true;
            }
            (attempt, Some(request))
        }
        request => (request, None),
    };
    let reply = match kernel.execute(attempt, Some(cause.clone())) {
        Ok(output) => ServerMessage::Reply { re: id.to_owned(), ok: Some(output), error: None },
        Err(Failure(body)) => {
            if let (Some(original), "does_not_understand") = (&original, body.kind.as_str()) {
                return Some(original.clone());
            }
            reply_error(id.to_owned(), body)
        }
    };
    put(reply);
    put(ServerMessage::Status { re: id.to_owned(), state: State::Idle });
    None
}

/// Runs a request on tokio's blocking pool (its busy already queued), then queues its
/// reply and idle.
fn spawn_request(
    ctx: &Ctx<'_>,
    kernel: Arc<Kernel>,
    request: Request,
    cause: Cause,
    id: String,
    put: impl Fn(ServerMessage) + Send + 'static,
) -> Option<ServerMessage> {
    ctx.in_flight.fetch_add(1, Ordering::SeqCst);
    let in_flight = ctx.in_flight.clone();
    tokio::task::spawn_blocking(move || {
        let reply = match kernel.execute(request, Some(cause)) {
            Ok(output) => ServerMessage::Reply { re: id.clone(), ok: Some(output), error: None },
            Err(Failure(body)) => reply_error(id.clone(), body),
        };
        put(reply);
        put(ServerMessage::Status { re: id, state: State::Idle });
        in_flight.fetch_sub(1, Ordering::SeqCst);
    });
    None
}

/// Just the `id` of a message this kernel could not read (other fields ignored, so
/// reading it works on any map, whatever its values are).
#[derive(serde::Deserialize)]
struct Envelope {
    id: Option<String>,
}

fn reply_error(re: String, body: ErrorBody) -> ServerMessage {
    ServerMessage::Reply { re, ok: None, error: Some(body) }
}
