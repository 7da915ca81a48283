//! COMPLETE: the method, its skill record and the cycle's state, in one transaction.

use std::collections::BTreeMap;

use crate::candidate::Signature;
use crate::cycle::{self, State};
use crate::error::Result;
use crate::image::{Method, Value};
use crate::sandbox::Grants;
use crate::{journal, skills, Running, Synthesizer};

impl Synthesizer {
    /// One short transaction: the method on the receiver, the skill in the library, the
    /// cycle COMPLETE.
    pub(crate) fn install(
        &self,
        run: &Running<'_>,
        signature: &Signature,
        code: &str,
        bytes: &[u8],
        unconfirmed: &[String],
    ) -> Result<()> {
        let (request, id, oid, purpose) = (run.request, run.id, run.oid, run.purpose.as_str());
        self.sandbox.audit(bytes, &Grants::default(), &format!("method `{}`", request.selector))?;
        let model = self.mind.describe();
        self.rt.transact(
            &format!("install synthesised {} on {}", request.selector, request.receiver),
            |cx| {
                let tx = cx.tx_mut("record synthesis")?;
                let component = tx.put_blob(bytes)?;
                let source = tx.put_blob(code.as_bytes())?;
                tx.set_slot(
                    request.receiver,
                    &request.selector,
                    &Value::Method(Method::Component {
                        component,
                        grants: vec![],
                        deadline_ms: None,
                    }),
                )?;
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
                ]);
                skills::record(tx, request.receiver, entry)?;
                tx.set_slot(oid, "method", &Value::Text(request.selector.clone()))?;
                tx.set_slot(
                    oid,
                    "unconfirmed",
                    &Value::List(unconfirmed.iter().map(|u| Value::Text(u.clone())).collect()),
                )?;
                cycle::set_state(tx, oid, State::Complete)
            },
        )?;
        Ok(())
    }
}
