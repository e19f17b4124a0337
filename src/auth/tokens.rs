//! The bearer-token file: one `<role> <token>` per line, `#` comments and
//! blank lines ignored. Token text never appears in an error, a log line or
//! Debug output.

use std::fmt;

/// Shortest token accepted (characters).
pub const MIN_TOKEN_LEN: usize = 16;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The checkout service: every reservation call, and reads
    /// (`Get*`/`List*`/`Watch*`) of any `inventory.v1` service.
    Checkout,
    /// Operators: everything, including stock adjustments and catalog writes.
    Admin,
}

impl Role {
    /// The name used in the token file and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Checkout => "checkout",
            Role::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "checkout" => Some(Role::Checkout),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token file that cannot be used. Names the line, never the token (nor
/// the unknown role: a line written `<token> <role>` would put the token there).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFileError {
    #[error("line {line}: expected `<role> <token>`")]
    Malformed { line: usize },
    #[error("line {line}: unknown role (expected checkout or admin)")]
    UnknownRole { line: usize },
    #[error("line {line}: token is shorter than {MIN_TOKEN_LEN} characters")]
    ShortToken { line: usize },
    #[error("line {line}: token has characters other than printable ASCII")]
    BadCharacters { line: usize },
    #[error("line {line}: token already given on line {first}")]
    DuplicateToken { line: usize, first: usize },
    #[error("no tokens (every line is blank or a comment)")]
    Empty,
}

struct Entry {
    role: Role,
    token: Box<[u8]>,
}

/// The tokens of a file and their roles. Debug shows only counts.
pub struct Tokens {
    entries: Vec<Entry>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("checkout", &self.count(Role::Checkout))
            .field("admin", &self.count(Role::Admin))
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Parses the text of a token file.
    pub fn parse(text: &str) -> Result<Tokens, TokenFileError> {
        let mut entries: Vec<(usize, Entry)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let mut fields = content.split_whitespace();
            let (Some(role), Some(token), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(TokenFileError::Malformed { line });
            };
            let role = Role::parse(role).ok_or(TokenFileError::UnknownRole { line })?;
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(TokenFileError::BadCharacters { line });
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(TokenFileError::ShortToken { line });
            }
            // Start-up only: an ordinary comparison is fine here.
            if let Some((first, _)) = entries.iter().find(|(_, e)| *e.token == *token.as_bytes()) {
                return Err(TokenFileError::DuplicateToken { line, first: *first });
            }
            entries.push((line, Entry { role, token: token.as_bytes().into() }));
        }
        if entries.is_empty() {
            return Err(TokenFileError::Empty);
        }
        Ok(Tokens { entries: entries.into_iter().map(|(_, e)| e).collect() })
    }

    /// The role of `presented`, if it is one of the tokens. Every stored token
    /// is compared, each in constant time, so the time taken does not tell
    /// which token (or how much of one) matched.
    pub fn role_of(&self, presented: &[u8]) -> Option<Role> {
        let mut found = None;
        for e in &self.entries {
            let hit = constant_time_eq(presented, &e.token);
            if hit && found.is_none() {
                found = Some(e.role);
            }
        }
        found
    }

    /// How many tokens have `role`.
    pub fn count(&self, role: Role) -> usize {
        self.entries.iter().filter(|e| e.role == role).count()
    }
}

/// Whether `a == b`, in time that depends only on the length of `b` (the
/// secret), not on where the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, &y) in b.iter().enumerate() {
        let x = a.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKOUT: &str = "ck_0123456789abcdef";
    const ADMIN: &str = "ad_0123456789abcdef";

    #[test]
    fn a_good_file_gives_each_token_its_role() {
        let t = Tokens::parse(&format!("checkout {CHECKOUT}\nadmin {ADMIN}\n")).expect("parses");
        assert_eq!(t.role_of(CHECKOUT.as_bytes()), Some(Role::Checkout));
        assert_eq!(t.role_of(ADMIN.as_bytes()), Some(Role::Admin));
        assert_eq!(t.role_of(b"ck_0123456789abcdeX"), None);
        assert_eq!(t.role_of(b""), None);
        assert_eq!((t.count(Role::Checkout), t.count(Role::Admin)), (1, 1));
    }

    #[test]
    fn comments_blank_lines_and_extra_spaces_are_ignored() {
        let text = format!(
            "# tokens for stockd\n\n   \n  # indented comment\ncheckout\t{CHECKOUT}\r\n  admin   {ADMIN}  \n# checkout old_token_that_is_commented_out\n"
        );
        let t = Tokens::parse(&text).expect("parses");
        assert_eq!(t.role_of(CHECKOUT.as_bytes()), Some(Role::Checkout));
        assert_eq!(t.role_of(ADMIN.as_bytes()), Some(Role::Admin));
        assert_eq!(t.role_of(b"old_token_that_is_commented_out"), None);
    }

    #[test]
    fn several_tokens_may_share_a_role() {
        let t = Tokens::parse(&format!("checkout {CHECKOUT}\ncheckout {CHECKOUT}-next\n")).expect("parses");
        assert_eq!(t.count(Role::Checkout), 2);
        assert_eq!(t.role_of(format!("{CHECKOUT}-next").as_bytes()), Some(Role::Checkout));
    }

    #[test]
    fn an_unknown_role_is_refused_naming_the_line_but_not_the_text() {
        let secret = "sw_0123456789abcdef";
        let e = Tokens::parse(&format!("# c\nchecko {CHECKOUT}\n{secret} admin\n")).expect_err("bad role");
        assert_eq!(e, TokenFileError::UnknownRole { line: 2 });
        let e = Tokens::parse(&format!("{secret} admin\n")).expect_err("swapped columns");
        assert_eq!(e, TokenFileError::UnknownRole { line: 1 });
        assert!(!e.to_string().contains(secret), "{e}");
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn a_short_token_is_refused_naming_the_line_but_not_the_token() {
        let e = Tokens::parse(&format!("admin {ADMIN}\ncheckout short-secret\n")).expect_err("short");
        assert_eq!(e, TokenFileError::ShortToken { line: 2 });
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(!e.to_string().contains("short-secret"), "{e}");
        Tokens::parse(&format!("admin {}\n", "x".repeat(MIN_TOKEN_LEN))).expect("exactly the minimum is enough");
    }

    #[test]
    fn a_file_without_tokens_is_refused() {
        assert_eq!(Tokens::parse("").expect_err("empty"), TokenFileError::Empty);
        assert_eq!(Tokens::parse("# only\n\n  # comments\n").expect_err("comments"), TokenFileError::Empty);
    }

    #[test]
    fn a_duplicate_token_is_refused_naming_both_lines() {
        let e = Tokens::parse(&format!("checkout {CHECKOUT}\nadmin {ADMIN}\nadmin {CHECKOUT}\n")).expect_err("dup");
        assert_eq!(e, TokenFileError::DuplicateToken { line: 3, first: 1 });
        assert!(!e.to_string().contains(CHECKOUT), "{e}");
    }

    #[test]
    fn a_line_without_exactly_two_fields_is_refused() {
        assert_eq!(Tokens::parse("admin\n").expect_err("one"), TokenFileError::Malformed { line: 1 });
        let e = Tokens::parse(&format!("admin {ADMIN} # note\n")).expect_err("trailing text");
        assert_eq!(e, TokenFileError::Malformed { line: 1 });
    }

    #[test]
    fn a_token_that_cannot_travel_in_a_header_is_refused() {
        let e = Tokens::parse("admin ad_0123456789abcdé\n").expect_err("non-ascii");
        assert_eq!(e, TokenFileError::BadCharacters { line: 1 });
    }

    #[test]
    fn debug_output_shows_counts_and_never_a_token() {
        let t = Tokens::parse(&format!("checkout {CHECKOUT}\nadmin {ADMIN}\n")).expect("parses");
        let shown = format!("{t:?}");
        assert!(!shown.contains(CHECKOUT) && !shown.contains(ADMIN), "{shown}");
        assert!(shown.contains("checkout: 1"), "{shown}");
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abcdefgh", b"abcdefgh"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abcdefgh", b"abcdefgX"));
        assert!(!constant_time_eq(b"Xbcdefgh", b"abcdefgh"));
        assert!(!constant_time_eq(b"abcdefg", b"abcdefgh"), "a prefix is not equal");
        assert!(!constant_time_eq(b"abcdefgh", b"abcdefg"), "a longer value is not equal");
        assert!(!constant_time_eq(b"abcdefg\0", b"abcdefg"), "padding with zero is not equal");
        assert!(!constant_time_eq(b"", b"a"));
    }
}
