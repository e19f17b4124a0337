//! Identifiers, parsed once at the edge ("parse, don't validate"): a value of
//! these types is always 1-128 characters of `[A-Za-z0-9._:/-]`.

use std::fmt;

/// Longest identifier accepted anywhere.
pub const MAX_ID_LEN: usize = 128;

/// Why a string is not an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_ID_LEN} characters, got {0}")]
    TooLong(usize),
    #[error("may only contain A-Z a-z 0-9 . _ : / - (found {0:?})")]
    BadChar(char),
}

fn check(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    // Counted in chars for the message; the alphabet is ASCII so bytes == chars
    // whenever the check passes.
    let len = s.chars().count();
    if len > MAX_ID_LEN {
        return Err(IdError::TooLong(len));
    }
    match s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-'))) {
        Some(c) => Err(IdError::BadChar(c)),
        None => Ok(()),
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses an identifier, rejecting anything outside the alphabet.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check(&s)?;
                Ok(Self(s))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The identifier, consumed.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A stock keeping unit.
    Sku
);
id_type!(
    /// A warehouse or store room.
    LocationId
);
id_type!(
    /// The order a reservation belongs to; the reservation's idempotency key.
    OrderId
);
id_type!(
    /// A sales channel (shopify, amazon, wholesale, ...).
    Channel
);
id_type!(
    /// The idempotency key of a stock mutation other than a reservation.
    OperationId
);
id_type!(
    /// A supplier.
    SupplierId
);
id_type!(
    /// A purchase order.
    PoId
);

impl OperationId {
    /// A fresh random operation id, for callers that did not give one.
    pub fn generate() -> Self {
        Self(format!("op:{}", uuid::Uuid::new_v4()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_whole_alphabet() {
        assert!(Sku::parse("Ab9._:/-").is_ok());
        assert_eq!(Sku::parse("TEE-BLK-M").map(|s| s.into_string()), Ok("TEE-BLK-M".into()));
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(Sku::parse(""), Err(IdError::Empty));
    }

    #[test]
    fn accepts_128_and_rejects_129_characters() {
        assert!(OrderId::parse("a".repeat(128)).is_ok());
        assert_eq!(OrderId::parse("a".repeat(129)), Err(IdError::TooLong(129)));
    }

    #[test]
    fn rejects_characters_outside_the_alphabet() {
        for bad in ["a b", "a|b", "a{b", "é", "a\0b", "a*", "a\n"] {
            assert!(matches!(LocationId::parse(bad), Err(IdError::BadChar(_))), "{bad:?}");
        }
    }

    #[test]
    fn generated_operation_ids_are_valid_and_distinct() {
        let (a, b) = (OperationId::generate(), OperationId::generate());
        assert_ne!(a, b);
        assert!(OperationId::parse(a.as_str()).is_ok());
    }
}
