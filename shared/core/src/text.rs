//! Checks on human-readable text that people type: display names, workspace names, key names.

/// Returns whether `c` is an invisible format character: Unicode general category Cf, such
/// as zero-width spaces, byte-order marks and bidirectional overrides, which can make one
/// string look like another. The ranges are those of Unicode 15.1.
pub fn is_format_char(c: char) -> bool {
    matches!(
        c as u32,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Trims a name and checks it: 1 to `max_chars` characters, no control or invisible format
/// characters. The error message names `what`.
pub fn clean_name(what: &str, text: &str, max_chars: usize) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() {
        return Err(format!("The {what} is missing."));
    }
    if name.chars().count() > max_chars {
        return Err(format!("The {what} must be at most {max_chars} characters long."));
    }
    if name.chars().any(|c| c.is_control() || is_format_char(c)) {
        return Err(format!(
            "The {what} must not contain control characters or invisible formatting characters."
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(
            clean_name("name", "  Ada Lovelace ", 100),
            Ok("Ada Lovelace".to_owned())
        );
        assert!(clean_name("name", "   ", 100).is_err());
        assert!(clean_name("name", "\u{200B}", 100).is_err(), "a zero-width space alone");
        assert!(
            clean_name("name", "\u{202E}evil", 100).is_err(),
            "a right-to-left override"
        );
        assert!(clean_name("name", "a\u{FEFF}b", 100).is_err(), "a byte-order mark");
        assert!(clean_name("name", "tab\there", 100).is_err());
        assert!(clean_name("name", &"x".repeat(101), 100).is_err());
        assert_eq!(
            clean_name("name", "Données 2026 — 東京", 100),
            Ok("Données 2026 — 東京".to_owned())
        );
    }
}
