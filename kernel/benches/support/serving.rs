//! A kernel serving a fresh image on a loopback port from a thread of its own, for the
//! kernel's benchmarks.
#![allow(dead_code)] // each benchmark takes its own part

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use batos_kernel::{Kernel, ServeOptions};
use batos_protocol::KernelInfo;

/// The served kernel: stopped (and its thread joined) by [`Serving::stop`].
pub struct Serving {
    /// The kernel itself, for in-process work beside the bridge.
    pub kernel: Arc<Kernel>,
    /// Where it listens and its token.
    pub info: KernelInfo,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Serving {
    /// Opens a fresh image and serves it once it listens.
    pub fn start() -> Serving {
        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = Arc::new(
            Kernel::open(&dir.path().join("image"), batos::ImageOptions::default()).expect("opens"),
        );
        let (ready_tx, ready) = std::sync::mpsc::channel::<KernelInfo>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = kernel.clone();
        let thread = std::thread::spawn(move || {
            let options = ServeOptions {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                ..Default::default()
            };
            let until = async {
                let _ = stopped.await;
            };
            batos_kernel::serve_until(
                served,
                options,
                |i| ready_tx.send(i.clone()).expect("told"),
                until,
            )
            .expect("serves");
        });
        let info = ready.recv().expect("the kernel listens");
        Serving { kernel, info, stop, thread, _dir: dir }
    }

    /// Stops the kernel and waits for it.
    pub fn stop(self) {
        let _ = self.stop.send(());
        self.thread.join().expect("the kernel stopped");
    }
}
