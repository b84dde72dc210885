//! `hatchery certs DIR --host NAME...`: a private CA and a master certificate signed by it, so
//! TLS between master and workers takes one command: the master serves `master.pem` and
//! `master.key`, every worker trusts `ca.pem`. The CA's key is never written: it signs this one
//! certificate and is gone, so nothing else can ever be issued in its name.

use std::io::Write;
use std::path::Path;

use hatchery_core::certs::{issue, Issued};

use crate::args::CertsArgs;
use crate::{exit, setup};

/// Files written into DIR.
const CA: &str = "ca.pem";
const CERT: &str = "master.pem";
const KEY: &str = "master.key";

pub fn run(args: &CertsArgs) -> i32 {
    let Some(first) = args.host.first() else {
        return setup::config_error("certs: give at least one --host NAME");
    };
    let files = match issue(&args.host) {
        Ok(f) => f,
        Err(e) => return setup::config_error(format!("cannot make the certificates: {e}")),
    };
    if let Err(e) = write(&args.dir, &files) {
        return setup::config_error(e);
    }
    let dir = args.dir.display();
    println!(
        "wrote {dir}/{CA}, {dir}/{CERT} and {dir}/{KEY} for {}\n\
         master:  hatchery --master --tls-cert {dir}/{CERT} --tls-key {dir}/{KEY} ...\n\
         workers: hatchery --worker --tls-ca {dir}/{CA} --master-host {} ...",
        args.host.join(", "),
        first
    );
    exit::OK
}

/// Writes the files, never over existing ones; the key is readable by its owner only.
fn write(dir: &Path, files: &Issued) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for name in [CA, CERT, KEY] {
        if dir.join(name).exists() {
            return Err(format!(
                "{} exists: remove the old files first (or choose another folder)",
                dir.join(name).display()
            ));
        }
    }
    for (name, text, private) in [
        (CA, &files.ca, false),
        (CERT, &files.cert, false),
        (KEY, &files.key, true),
    ] {
        let path = dir.join(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        options
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
