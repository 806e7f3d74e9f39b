//! The runtime NimBLE runs on: MicroPython's one thread, woken by scheduled polls ([`sched`]),
//! with NimBLE's porting layer ([`npl`]) on top of it.

pub mod npl;
pub mod sched;
