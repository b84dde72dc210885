//! A plan with the files it refers to, as a master ships it to its workers, and its hash.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::{Diagnostic, Diagnostics, Dir, FileSource, Plan};

/// The plan text and the contents of every file it reads (feeder CSVs, multipart files), keyed
/// by the path as written in the plan; a file that is not UTF-8 (an image to upload) is held in
/// base64 under [`binary_key`], so the protocol's map of strings carries it unchanged. Everything a worker needs: it parses the bundle, never the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub yaml: String,
    /// Names the plan in messages (the master's path to it).
    pub origin: String,
    pub files: BTreeMap<String, String>,
}

/// Remembers what a parse read, so the files shipped are exactly the ones the plan used.
struct Recording<'a> {
    inner: &'a dyn FileSource,
    read: RefCell<BTreeMap<String, String>>,
}

impl FileSource for Recording<'_> {
    fn read(&self, path: &str) -> io::Result<String> {
        let text = self.inner.read(path)?;
        self.read
            .borrow_mut()
            .insert(path.to_string(), text.clone());
        Ok(text)
    }

    fn read_bytes(&self, path: &str) -> io::Result<Vec<u8>> {
        let bytes = self.inner.read_bytes(path)?;
        let (key, value) = match std::str::from_utf8(&bytes) {
            Ok(text) => (path.to_string(), text.to_string()),
            Err(_) => (binary_key(path), BASE64.encode(&bytes)),
        };
        self.read.borrow_mut().insert(key, value);
        Ok(bytes)
    }
}

/// The key of a file held in base64: NUL cannot be part of a path, so it names no other file.
pub(super) fn binary_key(path: &str) -> String {
    format!("\0base64\0{path}")
}

pub(super) fn decode_binary(encoded: &str) -> io::Result<Vec<u8>> {
    BASE64
        .decode(encoded)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

impl Bundle {
    /// Reads and validates a plan file and the files it refers to.
    pub fn load(path: &Path) -> Result<(Bundle, Plan), Diagnostics> {
        let origin = path.display().to_string();
        let yaml = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics::single(
                &origin,
                Diagnostic::new(0, 0, format!("cannot read the plan: {e}"))
                    .with_hint("check the path given to -f/--plan"),
            )
        })?;
        let dir = Dir(path.parent().map(Path::to_path_buf).unwrap_or_default());
        let recording = Recording {
            inner: &dir,
            read: RefCell::default(),
        };
        let plan = Plan::parse(&yaml, &origin, &recording)?;
        let files = recording.read.into_inner();
        Ok((
            Bundle {
                yaml,
                origin,
                files,
            },
            plan,
        ))
    }

    /// Parses the bundle, reading files from it alone.
    pub fn parse(&self) -> Result<Plan, Diagnostics> {
        let files: HashMap<String, String> = self.files.clone().into_iter().collect();
        Plan::parse(&self.yaml, &self.origin, &files)
    }

    /// SHA-256 (hex) of the plan text and every file with its path: equal bundles, equal hashes.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            // Length-prefixed, so moving bytes between fields changes the hash.
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(self.yaml.as_bytes());
        for (path, text) in &self.files {
            field(path.as_bytes());
            field(text.as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_plan(csv: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "hatchery-bundle-{}-{}",
            std::process::id(),
            csv.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("people.csv"), csv).unwrap();
        let plan = dir.join("plan.yaml");
        std::fs::write(
            &plan,
            "host: http://127.0.0.1:1\ndata: {people: {csv: people.csv}}\nusers: [{name: U, tasks: [{get: \"/{{ row.people.name }}\"}]}]\n",
        )
        .unwrap();
        (dir, plan)
    }

    #[test]
    fn a_bundle_carries_the_files_its_plan_read_and_parses_without_the_disk() {
        let (dir, path) = temp_plan("name\nann\nbob\n");
        let (bundle, plan) = Bundle::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(bundle.files.keys().collect::<Vec<_>>(), vec!["people.csv"]);
        let again = bundle.parse().unwrap();
        assert_eq!(again.feeders[0].rows, plan.feeders[0].rows);
    }

    #[test]
    fn a_binary_multipart_file_travels_in_the_bundle_unchanged() {
        // A CSV length no other test uses: it names the folder.
        let (dir, path) = temp_plan("name\nbinary\n");
        let bytes = [0u8, 159, 146, 150, 255, b'\n'];
        std::fs::write(dir.join("blob.bin"), bytes).unwrap();
        std::fs::write(
            &path,
            "host: http://127.0.0.1:1\nusers: [{name: U, tasks: [{post: /u, multipart: {files: {f: blob.bin}}}]}]\n",
        )
        .unwrap();
        let (bundle, _) = Bundle::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let plan = bundle.parse().unwrap();
        let super::super::Body::Multipart(m) =
            &plan.users[0].tasks[0].steps[0].request().unwrap().body
        else {
            panic!("not multipart");
        };
        assert_eq!(&*m.files[0].content, &bytes[..]);
    }

    #[test]
    fn the_hash_changes_with_any_file_and_not_otherwise() {
        let (dir, path) = temp_plan("name\nann\n");
        let (a, _) = Bundle::load(&path).unwrap();
        let (b, _) = Bundle::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.hash().len(), 64);
        let mut c = a.clone();
        c.files.insert("people.csv".into(), "name\nbob\n".into());
        assert_ne!(a.hash(), c.hash());
    }
}
