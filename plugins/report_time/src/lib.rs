//! `reportTime` — answers the current wall-clock time in seconds since the Unix epoch.
//! It needs the `clock` grant: without it the audit refuses the component.

use batos_guest_sdk::prelude::*;

#[capability]
fn report_time() -> Result<i64, Error> {
    let (seconds, _nanos) = batos_guest_sdk::now();
    // Past the year 292277026596 the answer would not fit; `?` says so.
    Ok(i64::try_from(seconds)?)
}
