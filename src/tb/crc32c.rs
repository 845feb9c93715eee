//! CRC-32C (Castagnoli) and the TFRecord "masked" CRC.
//!
//! TFRecord framing uses CRC-32C (reflected polynomial `0x82F63B78`), not the
//! IEEE CRC-32 used by zlib / `crc32fast`. The 256-entry lookup table is built
//! by a `const fn`, so it is computed at compile time.

/// Reflected CRC-32C (Castagnoli) polynomial.
const POLY: u32 = 0x82F6_3B78;

/// Constant added when masking a CRC (see [`mask`]).
const MASK_DELTA: u32 = 0xa282_ead8;

/// Byte-wise lookup table, computed at compile time.
static TABLE: [u32; 256] = build_table();

const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Masks a CRC the way TFRecord does: rotate right by 15, add a constant.
pub fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Inverse of [`mask`].
pub fn unmask(masked: u32) -> u32 {
    masked.wrapping_sub(MASK_DELTA).rotate_left(15)
}

/// `mask(crc32c(data))`, the checksum stored in TFRecord framing.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    mask(crc32c(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_vector() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn known_vectors() {
        // RFC 3720 (iSCSI) B.4 test vectors.
        assert_eq!(crc32c(&[]), 0);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
        let descending: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(crc32c(&descending), 0x113F_DB5C);
    }

    #[test]
    fn table_spot_checks() {
        assert_eq!(TABLE[0], 0);
        assert_eq!(TABLE[1], 0xF26B_8303);
        assert_eq!(TABLE[128], POLY);
        assert_eq!(TABLE[255], 0xAD7D_5351);
    }

    #[test]
    fn masked_crc() {
        let c = crc32c(b"123456789");
        // The formula as TensorFlow's crc32c.h spells it.
        #[allow(clippy::manual_rotate)]
        let expected = ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8);
        assert_eq!(mask(c), expected);
        assert_eq!(masked_crc32c(b"123456789"), expected);
        assert_eq!(unmask(mask(c)), c);
        // Fixed value, so a change in the formula is caught even if both
        // sides above change together.
        assert_eq!(mask(0), 0xa282_ead8);
        assert_eq!(mask(0xE306_9283), 0xc78a_b0e5);
        for x in [0u32, 1, 0x8000_0000, 0xdead_beef, u32::MAX] {
            assert_eq!(unmask(mask(x)), x);
        }
    }
}
