//! `reportTime` — answers the current wall-clock time in seconds since the Unix epoch.
//! It needs the `clock` grant: without it the audit refuses the component.

use batos_guest_sdk::prelude::*;

fn report_time(_call: Call) -> Result<Value, Error> {
    let (seconds, _nanos) = batos_guest_sdk::now();
    let seconds = i64::try_from(seconds).map_err(|_| error(ErrorKind::Failed, "the clock is past the year 292277026596"))?;
    Ok(Value::Int(seconds))
}

capability!(report_time);
