//! COMPLETE: the method, its skill record and the cycle's state, in one transaction.

use std::collections::BTreeMap;

use crate::candidate::Signature;
use crate::cycle::{self, State};
use crate::error::Result;
use crate::image::{Method, Value};
use crate::running::Running;
use crate::runtime::Runtime;
use crate::sandbox::Sandbox;
use crate::{journal, skills};

/// A candidate that passed: what is installed and recorded.
pub(crate) struct Proven<'a> {
    /// Its signature, as adapted to what the model declared.
    pub(crate) signature: &'a Signature,
    /// Its source, as finally built.
    pub(crate) code: &'a str,
    /// The component.
    pub(crate) bytes: &'a [u8],
    /// The mind's proposed cases it does not meet.
    pub(crate) unconfirmed: &'a [String],
    /// Whether the caller gave examples it meets; if not, the method is installed
    /// marked unconfirmed.
    pub(crate) confirmed: bool,
    /// Which candidate it was (`round 1 candidate 2`).
    pub(crate) chosen: &'a str,
    /// How many passing candidates answered as it did.
    pub(crate) agreeing: usize,
    /// The clusters of passing candidates, largest first.
    pub(crate) clusters: Value,
}

/// What installing needs of a synthesizer: the image, the sandbox that audits once
/// more, the mind's name for the record.
pub(crate) struct Installer<'a> {
    pub(crate) rt: &'a Runtime,
    pub(crate) sandbox: &'a Sandbox,
    pub(crate) model: String,
}

impl Installer<'_> {
    /// One short transaction: the method on the receiver, the skill in the library, the
    /// cycle COMPLETE.
    pub(crate) fn install(&self, run: &Running<'_>, proven: &Proven<'_>) -> Result<()> {
        let (request, id, oid, purpose) = (run.request, run.id, run.oid, run.purpose.as_str());
        let Proven { signature, code, bytes, unconfirmed, confirmed, chosen, agreeing, .. } =
            *proven;
        let grants = crate::sandbox::gate::parse_grants(&request.grants).map_err(|reason| {
            crate::error::Error::AuditRefused { what: request.selector.clone(), reason }
        })?;
        self.sandbox.audit(bytes, &grants, &format!("method `{}`", request.selector))?;
        let model = self.model.clone();
        self.rt.transact(
            &format!("install synthesised {} on {}", request.selector, request.receiver),
            |cx| {
                let tx = cx.tx_mut("record synthesis")?;
                let component = tx.put_blob(bytes)?;
                let source = tx.put_blob(code.as_bytes())?;
                let method = Method::Component {
                    component,
                    grants: request.grants.clone(),
                    deadline_ms: None,
                };
                let method = if confirmed {
                    method
                } else {
                    Method::Unconfirmed {
                        method: Box::new(method),
                        reason: format!("installed because {agreeing} independent candidates agreed, with no example from the caller; give one (`--example`) to confirm it"),
                    }
                };
                tx.set_slot(request.receiver, &request.selector, &Value::Method(method))?;
                let entry = BTreeMap::from([
                    ("selector".to_owned(), Value::Text(request.selector.clone())),
                    ("description".to_owned(), Value::Text(purpose.to_owned())),
                    ("signature".to_owned(), Value::Text(signature.rust())),
                    ("source".to_owned(), Value::Text(code.to_owned())),
                    ("sourceBlob".to_owned(), Value::Blob(source)),
                    ("component".to_owned(), Value::Blob(component)),
                    ("receiver".to_owned(), Value::Object(request.receiver)),
                    ("cycle".to_owned(), Value::Text(id.to_owned())),
                    ("model".to_owned(), Value::Text(model.clone())),
                    ("promptHash".to_owned(), Value::Text(journal::brief_hash(purpose))),
                    ("confirmed".to_owned(), Value::Bool(confirmed)),
                ]);
                skills::record(tx, request.receiver, entry)?;
                tx.set_slot(oid, "method", &Value::Text(request.selector.clone()))?;
                tx.set_slot(
                    oid,
                    "unconfirmed",
                    &Value::List(unconfirmed.iter().map(|u| Value::Text(u.clone())).collect()),
                )?;
                tx.set_slot(oid, "chosen", &Value::Text(chosen.to_owned()))?;
                tx.set_slot(oid, "agreeing", &Value::Int(agreeing as i64))?;
                tx.set_slot(oid, "clusters", &proven.clusters)?;
                tx.set_slot(oid, "confirmed", &Value::Bool(confirmed))?;
                cycle::set_state(tx, oid, State::Complete)
            },
        )?;
        Ok(())
    }
}
