//! Progress of the long steps (download, hashing, export): the command line shows
//! bars, tests stay quiet.

/// Reports progress of the long steps; the CLI shows bars, tests stay quiet.
pub trait Progress {
    /// A step starts, with its total in bytes when known.
    fn start(&mut self, step: &str, total: Option<u64>);
    /// `n` more bytes of the current step are done.
    fn advance(&mut self, n: u64);
    /// The current step is done.
    fn finish(&mut self);
}

/// Progress that shows nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _: &str, _: Option<u64>) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
}
