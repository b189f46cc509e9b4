//! Parse + capability tree throughput: a generated realistic 1 MB page
//! (text, links, images, a table, a form) and a 100 KB page with 300 links
//! and 20 images (issue 13's navigate-to-painted page).

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pola_browser::{Limits, parse};
use pola_syrup::Value;
use url::Url;

const WORDS: &[&str] = &[
    "the",
    "capability",
    "browser",
    "renders",
    "a",
    "page",
    "without",
    "ever",
    "seeing",
    "its",
    "address",
    "and",
    "every",
    "link",
    "is",
    "an",
    "object",
    "minted",
    "for",
    "this",
    "view",
];

/// A page of about `size` bytes: sections of headings, paragraphs with
/// inline links and emphasis, lists, images, one table and one form.
fn page(size: usize, links: usize, images: usize) -> String {
    let mut s = String::from(
        "<!DOCTYPE html><html><head><meta charset=utf-8><title>Bench page</title>\
         <style>body{font:16px sans-serif}</style><script>var x = 1;</script></head><body>\
         <header><nav><a href=/>Home</a> <a href=/about>About</a></nav></header><main>",
    );
    s.push_str("<table><tr><th>Item</th><th>Price</th><th>Note</th></tr>");
    for i in 0..20 {
        let _ = write!(
            s,
            "<tr><td>item {i}</td><td>{}</td><td><em>fine</em></td></tr>",
            i * 3
        );
    }
    s.push_str("</table><form action=/search method=post><input type=hidden name=t value=abc>\
        <input name=q placeholder=Search><select name=s><option>a</option><option selected>b</option></select>\
        <textarea name=n>note</textarea><input type=checkbox name=c checked><button>Go</button></form>");
    let (mut l, mut im, mut w, mut section) = (0, 0, 0usize, 0);
    // Spread links and images over the expected number of paragraphs.
    let paragraphs = size / 700;
    let links_per = links.div_ceil(paragraphs.max(1));
    let image_every = (paragraphs / images.max(1)).max(1);
    let mut p = 0;
    while s.len() < size {
        if p % 10 == 0 {
            section += 1;
            let _ = write!(s, "<section><h2>Section {section}</h2>");
        }
        s.push_str("<p>");
        for k in 0..100 {
            s.push_str(WORDS[w % WORDS.len()]);
            w += 1;
            if k % 20 == 7 && l < links && k / 20 < links_per {
                let _ = write!(s, " <a href=\"/articles/{l}.html\">link {l}</a>");
                l += 1;
            } else if k % 30 == 11 {
                s.push_str(" <b>bold</b>");
            }
            s.push(' ');
        }
        s.push_str("</p>");
        if p % image_every == 0 && im < images {
            let _ = write!(s, "<img src=\"/img/{im}.png\" alt=\"picture {im}\">");
            im += 1;
        }
        if p % 7 == 3 {
            s.push_str("<ul><li>one <code>x</code></li><li>two</li><li>three</li></ul>");
        }
        if p % 10 == 9 {
            s.push_str("</section>");
        }
        p += 1;
    }
    s.push_str("</main><footer>end</footer></body></html>");
    s
}

fn bench(c: &mut Criterion) {
    let base = Url::parse("https://bench.example/dir/page.html").expect("a URL");
    // The whole 1 MB page as a tree too (default limits stop the tree at
    // 4 000 nodes, though the whole page is still parsed).
    let whole = Limits {
        max_nodes: usize::MAX,
        max_text: usize::MAX,
        max_links: usize::MAX,
        max_images: usize::MAX,
        ..Limits::default()
    };
    for (name, size, links, images, limits) in [
        ("1MB", 1_000_000, 400, 60, Limits::default()),
        ("1MB-whole-tree", 1_000_000, 400, 60, whole),
        ("100KB-300links-20img", 100_000, 300, 20, Limits::default()),
    ] {
        let html = page(size, links, images);
        let p = parse(html.as_bytes(), &base, &limits);
        eprintln!(
            "{name}: {} bytes, {} links, {} images, {} forms, {} nodes, {} text bytes, truncated {}",
            html.len(),
            p.links.len(),
            p.images.len(),
            p.forms.len(),
            p.node_count(),
            p.text_len(),
            p.truncated
        );
        let mut g = c.benchmark_group("parse+tree");
        g.throughput(Throughput::Bytes(html.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let p = parse(black_box(html.as_bytes()), &base, &limits);
                let tree: Value = p.tree(&mut |_, i| Value::int(i as i64));
                black_box(tree)
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
