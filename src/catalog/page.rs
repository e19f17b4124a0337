//! List paging (AIP-158): page sizes and opaque page tokens.

/// Page size when the request gives 0.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page served.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// A page size within 1..=1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    /// 0 means the default (100); negative is an error; above 1000 is capped.
    pub fn parse(n: i32) -> Result<Self, String> {
        match n {
            n if n < 0 => Err("must not be negative".into()),
            0 => Ok(Self(DEFAULT_PAGE_SIZE)),
            n => Ok(Self(u32::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE))),
        }
    }

    /// The size.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Where the next page starts: the last key served, hex-encoded so callers
/// treat it as opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken(String);

impl PageToken {
    /// The token that resumes after `key`.
    pub fn after(key: &str) -> Self {
        Self(key.bytes().map(|b| format!("{b:02x}")).collect())
    }

    /// Decodes a token given back by a caller; empty means the first page.
    pub fn decode(token: &str) -> Result<Option<String>, String> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || "is not a token this server issued".to_string();
        if !token.len().is_multiple_of(2) || token.len() > 512 {
            return Err(bad());
        }
        let bytes = (0..token.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&token[i..i + 2], 16).map_err(|_| bad()))
            .collect::<Result<Vec<u8>, _>>()?;
        String::from_utf8(bytes).map(Some).map_err(|_| bad())
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let t = PageToken::after("SKU-1/a");
        assert_eq!(PageToken::decode(t.as_str()), Ok(Some("SKU-1/a".into())));
        assert_eq!(PageToken::decode(""), Ok(None));
    }

    #[test]
    fn foreign_tokens_are_rejected() {
        for bad in ["xyz", "abc", "zz", "ff"] {
            assert!(PageToken::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(PageSize::parse(0).map(PageSize::get), Ok(100));
        assert_eq!(PageSize::parse(5000).map(PageSize::get), Ok(1000));
        assert!(PageSize::parse(-1).is_err());
    }
}
