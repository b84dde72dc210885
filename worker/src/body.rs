//! Form and multipart bodies, encoded as python-requests encodes them (`data=` and `files=`):
//! `application/x-www-form-urlencoded` with `+` for spaces, and `multipart/form-data` with the
//! parts' names escaped as browsers escape them.

use hatchery_core::plan::FilePart;

pub const FORM_TYPE: &str = "application/x-www-form-urlencoded";

/// Appends `k=v&k2=v2` to `out`, each key and value encoded as requests' `urlencode` does
/// (Python's `quote_plus`: letters, digits and `_.-~` as they are, a space as `+`, every other
/// byte of the UTF-8 as `%XX`).
pub fn form<'a>(out: &mut Vec<u8>, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        quote_plus(out, k);
        out.push(b'=');
        quote_plus(out, v);
    }
}

fn quote_plus(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b' ' => out.push(b'+'),
            _ if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') => out.push(b),
            _ => out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]),
        }
    }
}

/// A boundary for a plan's multipart request: 32 random hex digits, as requests' `uuid4().hex`.
pub fn boundary() -> String {
    let mut rng = fastrand::Rng::new();
    (0..32)
        .map(|_| char::from_digit(rng.u32(0..16), 16).unwrap_or('0'))
        .collect()
}

/// The `content-type` of a multipart body with `boundary`.
pub fn multipart_type(boundary: &str) -> String {
    format!("multipart/form-data; boundary={boundary}")
}

/// Appends a `multipart/form-data` body to `out`: the text `fields`, then the `files`.
pub fn multipart<'a>(
    out: &mut Vec<u8>,
    boundary: &str,
    fields: impl Iterator<Item = (&'a str, &'a str)>,
    files: &[FilePart],
) {
    for (name, value) in fields {
        part_head(out, boundary, name, None, None);
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for f in files {
        let content_type = f.content_type.as_deref();
        part_head(out, boundary, &f.name, Some(&f.filename), content_type);
        out.extend_from_slice(&f.content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
}

fn part_head(
    out: &mut Vec<u8>,
    boundary: &str,
    name: &str,
    filename: Option<&str>,
    content_type: Option<&str>,
) {
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"\r\ncontent-disposition: form-data; name=\"");
    quoted(out, name);
    out.push(b'"');
    if let Some(filename) = filename {
        out.extend_from_slice(b"; filename=\"");
        quoted(out, filename);
        out.push(b'"');
    }
    if let Some(t) = content_type {
        out.extend_from_slice(b"\r\ncontent-type: ");
        out.extend_from_slice(t.as_bytes());
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// A name inside a quoted parameter, escaped as the HTML standard (and urllib3) escapes it: `"`
/// and control characters as `%XX`, so a name cannot end the quote or the header line.
fn quoted(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b == b'"' || b < 0x20 || b == 0x7f {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_encoded_as_python_quote_plus_encodes_them() {
        let mut out = Vec::new();
        form(
            &mut out,
            [
                ("user name", "a&b=c"),
                ("q", "caf\u{e9} ~x_y.z-"),
                ("empty", ""),
            ]
            .into_iter(),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "user+name=a%26b%3Dc&q=caf%C3%A9+~x_y.z-&empty="
        );
    }

    #[test]
    fn a_multipart_body_holds_fields_then_files_between_boundaries() {
        let files = [FilePart {
            name: "upload".into(),
            filename: "a.bin".into(),
            content_type: Some("application/octet-stream".into()),
            content: (&[0u8, 255, b'\r', b'\n'][..]).into(),
        }];
        let mut out = Vec::new();
        multipart(&mut out, "XYZ", [("title", "hi")].into_iter(), &files);
        let mut expected = b"--XYZ\r\ncontent-disposition: form-data; name=\"title\"\r\n\r\nhi\r\n\
            --XYZ\r\ncontent-disposition: form-data; name=\"upload\"; filename=\"a.bin\"\r\n\
            content-type: application/octet-stream\r\n\r\n"
            .to_vec();
        expected.extend_from_slice(&[0, 255, b'\r', b'\n']);
        expected.extend_from_slice(b"\r\n--XYZ--\r\n");
        assert_eq!(out, expected);
    }

    #[test]
    fn a_part_name_cannot_end_its_quote_or_its_line() {
        let mut out = Vec::new();
        multipart(&mut out, "B", [("a\"\r\nX: 1", "v")].into_iter(), &[]);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("name=\"a%22%0D%0AX: 1\""), "{text}");
        assert_eq!(boundary().len(), 32);
        assert_ne!(boundary(), boundary());
    }
}
