//! The TOML config loader from text: any input is a checked config or a
//! list of problems that each point into the text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nftjail::config::{Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Path::new("fuzz.toml");
    match Config::parse(text, origin) {
        Ok(cfg) => {
            assert!(
                cfg.jails.windows(2).all(|w| w[0].name < w[1].name),
                "jails not unique and in name order"
            );
            for jail in &cfg.jails {
                assert!(jail.maxretry >= 1, "jail {} maxretry 0", jail.name);
            }
        }
        Err(ConfigError::Invalid(problems)) => {
            assert!(!problems.is_empty());
            let lines = text.split('\n').count();
            for p in &problems {
                assert_eq!(p.file, origin);
                assert!(
                    (1..=lines).contains(&p.line) && p.col >= 1,
                    "{p} points outside the text ({lines} lines)"
                );
            }
        }
        Err(e) => panic!("parsing text gave {e}"),
    }
});
