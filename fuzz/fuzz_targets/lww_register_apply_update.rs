#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgesync_fuzz::run("lww_register_apply_update", data));
