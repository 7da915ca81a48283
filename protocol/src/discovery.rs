//! `<image>/kernel.json`: how a client on the same machine finds the kernel serving an
//! image, and proves it may talk to it (the token). Written by the kernel with mode
//! 0600 when it starts listening, removed when it stops.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file's name inside the image folder.
pub const KERNEL_FILE: &str = "kernel.json";

/// What `kernel.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelInfo {
    /// The address it listens on, e.g. `127.0.0.1:7777`.
    pub address: String,
    /// Its process id.
    pub pid: u32,
    /// The protocol it speaks ([`crate::PROTOCOL`]).
    pub protocol: String,
    /// The access token every `hello` must carry.
    pub token: String,
}

impl KernelInfo {
    /// The WebSocket URL of its bridge.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.address)
    }

    /// The browser UI's address with the token in its fragment: a fragment never
    /// leaves the browser (no request, log or referrer carries it), and the page moves
    /// it into its session storage and off the address bar.
    pub fn login_url(&self) -> String {
        format!("http://{}/#token={}", self.address, self.token)
    }

    /// Writes it to `<image>/kernel.json`, readable by its owner only (the token is a
    /// password), by rename so a reader never sees half of it.
    pub fn write(&self, image: &Path) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let partial = image.join(format!("{KERNEL_FILE}.partial"));
        let _ = std::fs::remove_file(&partial);
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial)?;
        file.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&partial, image.join(KERNEL_FILE))
    }

    /// Whether its process is still alive (a kernel killed with `kill -9` leaves its
    /// file behind).
    pub fn alive(&self) -> bool {
        // Linux keeps a folder per live process (a zombie's goes with its reaping).
        self.pid > 0 && Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// The kernel serving `image`, if `kernel.json` is there, readable, and names a live
/// process. A file left by a dead kernel reads as none.
pub fn read_kernel_info(image: &Path) -> Option<KernelInfo> {
    let bytes = std::fs::read(image.join(KERNEL_FILE)).ok()?;
    let info: KernelInfo = serde_json::from_slice(&bytes).ok()?;
    info.alive().then_some(info)
}
