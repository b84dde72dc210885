//! The plan parser and validator on arbitrary input: no panic, and a refused plan always says
//! why. The input is the plan's YAML, optionally followed by a NUL byte and the text that every
//! file the plan names (a feeder's CSV, a body file) reads as.

#![no_main]

use hatchery_core::plan::FileSource;
use hatchery_core::Plan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (yaml, csv) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(src) = std::str::from_utf8(yaml) else {
        return;
    };
    let files = AnyFile(String::from_utf8_lossy(csv).into_owned());
    match Plan::parse(src, "fuzz.yaml", &files) {
        Ok(mut plan) => {
            plan.filter_tags(&["a".to_string()], &["b".to_string()]);
        }
        Err(diagnostics) => {
            assert!(!diagnostics.items.is_empty(), "a refused plan says why");
            let _ = diagnostics.to_string();
        }
    }
});

/// Every path reads as the same text.
struct AnyFile(String);

impl FileSource for AnyFile {
    fn read(&self, _path: &str) -> std::io::Result<String> {
        Ok(self.0.clone())
    }
}
