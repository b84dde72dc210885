//! Luau names places `CHUNK:LINE:`; these put them where the script is written: an inline
//! script's line 3 is some line of the plan, a script file's line 3 is line 3 of that file.

use hatchery_core::plan::Script;

/// The chunk name a script is loaded under, so that Luau's messages say `ORIGIN:LINE:`.
pub(crate) fn chunk_name(script: &Script) -> String {
    format!("={}", script.origin)
}

/// `message` with every `ORIGIN:LINE:` (Luau's, in script lines) moved to the line the script
/// line is written on.
pub(crate) fn relocate(message: &str, script: &Script) -> String {
    let prefix = format!("{}:", script.origin);
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(&prefix) {
        let after = &rest[at + prefix.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(&rest[..at + prefix.len()]);
        match after[..digits].parse::<u32>() {
            Ok(line) if after[digits..].starts_with(':') => {
                out.push_str(&script.position(line).0.to_string());
            }
            _ => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// The script line a message names at its start (the compiler's `LINE:`, or Luau's
/// `ORIGIN:LINE:`), and the message without it.
pub(crate) fn split_line<'m>(message: &'m str, script: &Script) -> (Option<u32>, &'m str) {
    let rest = message
        .strip_prefix(script.origin.as_str())
        .unwrap_or(message);
    let rest = rest.strip_prefix(':').unwrap_or(rest);
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    match (
        rest[..digits].parse().ok(),
        rest[digits..].strip_prefix(':'),
    ) {
        (Some(line), Some(text)) => (Some(line), text.trim_start()),
        _ => (None, message),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn script(origin: &str, first_line: u32, column: u32) -> Script {
        Script {
            source: String::new(),
            origin: origin.to_string(),
            plan: "plan.yaml".to_string(),
            first_line,
            column,
            timeout: Duration::from_secs(1),
            memory: 1 << 20,
        }
    }

    #[test]
    fn an_inline_scripts_lines_move_to_the_plan_lines_they_are_written_on() {
        let inline = script("plan.yaml", 5, 7);
        assert_eq!(
            relocate(
                "plan.yaml:3: boom\nstack: plan.yaml:1: in function 'f'",
                &inline
            ),
            "plan.yaml:7: boom\nstack: plan.yaml:5: in function 'f'"
        );
    }

    #[test]
    fn a_script_files_lines_stay_and_other_names_are_left_alone() {
        let file = script("shop.luau", 1, 1);
        assert_eq!(relocate("shop.luau:3: x", &file), "shop.luau:3: x");
        assert_eq!(
            relocate("other.luau:3: shop.luau:x shop.luau:", &file),
            "other.luau:3: shop.luau:x shop.luau:"
        );
    }

    #[test]
    fn a_compiler_message_gives_its_line_and_text() {
        let s = script("plan.yaml", 5, 7);
        assert_eq!(
            split_line(":2: Expected 'end'", &s),
            (Some(2), "Expected 'end'")
        );
        assert_eq!(split_line("plan.yaml:4: oops", &s), (Some(4), "oops"));
        assert_eq!(split_line("no position", &s), (None, "no position"));
        assert_eq!(split_line(":x: y", &s), (None, ":x: y"));
    }
}
