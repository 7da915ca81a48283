//! A program as a client of the kernel: connect with the token from `kernel.json`, make
//! requests, and see the events each one causes, linked to it by `cause`.
//! `cargo run -p batos-client --example client -- IMAGE` talks to the kernel serving
//! IMAGE (`batos --image IMAGE serve`); with no IMAGE it starts a kernel of its own on a
//! temporary image.

use batos_client::{Client, ConnectOptions};
use batos_protocol::{Event, KernelInfo, Request, ServerMessage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (info, own_kernel) = match std::env::args().nth(1) {
        Some(image) => {
            let info = batos_protocol::read_kernel_info(image.as_ref()).ok_or(format!(
                "no kernel serves {image}: start one with `batos --image {image} serve`"
            ))?;
            (info, None)
        }
        None => {
            let (info, kernel) = start_kernel()?;
            (info, Some(kernel))
        }
    };
    println!("talking to the kernel at {}", info.url());

    let mut client = Client::connect(&info, ConnectOptions::default())?;
    let requests = [
        Request::Clone { object: "genesis".into(), name: Some("counter".into()) },
        Request::Set { object: "counter".into(), slot: "count".into(), value: 41.into() },
        // A selector nothing understands fails instead of starting a synthesis cycle.
        Request::send_known("counter", "count", vec![]),
    ];
    for request in requests {
        // Every message between the request's `busy` and `idle` that is not its reply
        // (here, the transactions it committed) comes to this closure.
        let answer = client.request(request, &mut |message| {
            if let ServerMessage::Event {
                seq,
                cause,
                event: Event::Transaction { tx, description, changes },
            } = message
            {
                let by = cause.as_ref().map_or("the kernel".to_owned(), |c| format!("request {}", c.id));
                println!("  event {seq}: transaction {tx} `{description}` changed {changes:?}, caused by {by}");
            }
        })?;
        match answer {
            Ok(output) => println!("→ {}", output.text),
            Err(error) => println!("refused ({}): {}", error.kind, error.message),
        }
    }
    client.close();
    if let Some((stop, kernel)) = own_kernel {
        let _ = stop.send(());
        let _ = kernel.join();
    }
    Ok(())
}

/// A kernel of this process on a temporary image and a free port: its `kernel.json`,
/// what stops it, and the thread serving it.
type OwnKernel = (tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>);

fn start_kernel() -> Result<(KernelInfo, OwnKernel), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let kernel =
        batos_kernel::Kernel::open(&dir.path().join("image"), batos::ImageOptions::default())
            .map_err(|f| f.0.message)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready, listening) = std::sync::mpsc::channel();
    let options = batos_kernel::ServeOptions {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Default::default()
    };
    let thread = std::thread::spawn(move || {
        let _keep = dir;
        let until = async {
            let _ = stopped.await;
        };
        let served = batos_kernel::serve_until(
            std::sync::Arc::new(kernel),
            options,
            |info| {
                let _ = ready.send(info.clone());
            },
            until,
        );
        if let Err(f) = served {
            eprintln!("the kernel failed: {}", f.0.message);
        }
    });
    let info = listening.recv().map_err(|_| "the kernel did not start")?;
    Ok((info, (stop, thread)))
}
