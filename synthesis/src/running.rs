//! One cycle as it runs, as the parts of the state machine see it.

use crate::image::Oid;
use crate::request::{Event, Request};

/// One cycle as it runs: what it answers, where it is kept, and who watches it.
pub(crate) struct Running<'a> {
    pub(crate) request: &'a Request,
    pub(crate) id: &'a str,
    pub(crate) oid: Oid,
    pub(crate) purpose: String,
    pub(crate) observe: &'a (dyn Fn(&Event) + Sync),
}
