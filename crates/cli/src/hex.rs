//! Lowercase hex, for Swiss numbers, hashes and root names.

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of hex text (`None` unless it is even-length hex of at most
/// 128 bytes).
pub fn decode(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || hex.len() > 256 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_refuses_what_is_not_hex() {
        assert_eq!(
            super::decode(&super::encode(&[0, 1, 254, 255])),
            Some(vec![0, 1, 254, 255])
        );
        for bad in ["0", "zz", "0g", "é0"] {
            assert_eq!(super::decode(bad), None, "{bad}");
        }
        assert_eq!(super::decode(&"00".repeat(129)), None);
    }
}
