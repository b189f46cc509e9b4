//! Package checks at install: decoding and checking a 1 MiB package (a
//! caplet with a 1 MiB data segment, a 512×512 icon and eight requests),
//! the icon alone, and Granma's rules against 50 installed apps.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use pola_powerbox::{Icon, InstalledApp, Package, pack, warnings};

fn wasm_of(data_bytes: usize) -> Vec<u8> {
    let data: String = (0..data_bytes)
        .map(|i| format!("\\{:02x}", i % 251))
        .collect();
    wat::parse_str(format!(
        r#"(module (memory (export "memory") 17)
             (data (i32.const 0) "{data}")
             (func (export "pola_deliver") (param i32 i64) (result i32) i32.const 0))"#
    ))
    .unwrap()
}

fn icon_png(side: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(side, side, |x, y| {
        image::Rgba([(x / 2) as u8, (y / 2) as u8, 128, 255])
    });
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        img.as_raw(),
        side,
        side,
        image::ExtendedColorType::Rgba8,
    )
    .unwrap();
    out
}

const TOML: &str = r#"
name = "Big app"
description = "A package of about one mebibyte."
[[request]]
name = "doc"
kind = "file"
access = "read-write"
path = "notes.txt"
reason = "to edit your notes"
[[request]]
name = "pics"
kind = "folder"
access = "read"
reason = "to show your pictures"
[[request]]
name = "net"
kind = "web"
sites = ["https://a.example", "https://b.example", "https://c.example"]
reason = "to sync"
[[request]]
name = "time"
kind = "clock"
reason = "to date things"
[[request]]
name = "dice"
kind = "random"
reason = "to shuffle"
[[request]]
name = "data"
kind = "storage"
reason = "to remember"
[[request]]
name = "peer"
kind = "object"
interface = "spell.check"
reason = "to check spelling"
[[request]]
name = "any"
kind = "web"
sites = ["*"]
reason = "to browse"
"#;

fn benches(c: &mut Criterion) {
    let png = icon_png(512);
    let bytes = pack(TOML, wasm_of(1 << 20), Some(png.clone())).unwrap();
    eprintln!("package: {} bytes (icon {} bytes)", bytes.len(), png.len());
    let mut group = c.benchmark_group("package");
    group.sample_size(20);
    group.bench_function("decode_1mib_with_512px_icon", |b| {
        b.iter(|| Package::decode(black_box(&bytes)).unwrap())
    });
    group.bench_function("icon_512px", |b| {
        b.iter(|| Icon::from_png(black_box(&png)).unwrap())
    });
    let package = Package::decode(&bytes).unwrap();
    let installed: Vec<InstalledApp> = (0..50)
        .map(|i| InstalledApp {
            pet: format!("App number {i}"),
            calls_itself: format!("Application {i}"),
            icon_hash: Some(u64::from(i as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        })
        .collect();
    group.bench_function("rules_50_installed", |b| {
        b.iter(|| {
            warnings(
                black_box(&package.manifest),
                package.icon.as_ref(),
                &installed,
                Path::new("/home/u/Documents"),
                Path::new("/home/u"),
            )
        })
    });
    group.finish();
}

criterion_group!(group, benches);
criterion_main!(group);
