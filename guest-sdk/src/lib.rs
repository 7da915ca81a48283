//! The batos guest SDK. The sandbox work gives it the `batos:uvm` bindings; today it is an empty crate so the workspace layout is in place.
