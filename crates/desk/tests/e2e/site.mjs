// A real web site on loopback for the browser's tests and bench: Node's
// http server answering from a function, logging every request it gets
// (so a test can show what never reached it), and PNG pictures drawn
// here (a small encoder: zlib's deflate for the pixel data, a CRC-32
// table for the chunk checksums).
import http from 'node:http';
import zlib from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** A `width`×`height` RGB PNG; `pixel(x, y)` gives `[r, g, b]` (0–255). */
export function png(width, height, pixel) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  let o = 0;
  for (let y = 0; y < height; y++) {
    raw[o++] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      raw[o++] = r;
      raw[o++] = g;
      raw[o++] = b;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A small deterministic pseudo-random generator (xorshift32): pictures
 * with texture, so they do not compress to nothing. */
export function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** A harbour at dusk: sky, sun, sea with waves. */
export function harbourPng(width = 240, height = 140) {
  const r = rng(7);
  return png(width, height, (x, y) => {
    const sea = height * 0.58;
    const dx = x - width * 0.7;
    const dy = y - height * 0.42;
    if (y < sea) {
      if (dx * dx + dy * dy < (height * 0.13) ** 2) return [255, 214, 102];
      const t = y / sea;
      return [Math.round(250 - 120 * t), Math.round(170 - 60 * t), Math.round(120 + 80 * t)];
    }
    const wave = Math.sin(x / 7 + y * 1.3) > 0.85 ? 40 : 0;
    const n = Math.round(r() * 12);
    return [20 + wave + n, 70 + wave + n, 120 + wave + n];
  });
}

/** A town map: blocks, streets and a river. */
export function mapPng(width = 180, height = 180) {
  return png(width, height, (x, y) => {
    if (Math.abs(y - (height * 0.3 + 18 * Math.sin(x / 25))) < 7) return [110, 170, 220];
    if (x % 36 < 4 || y % 36 < 4) return [250, 250, 245];
    const block = ((x / 36) | 0) * 7 + ((y / 36) | 0) * 3;
    return block % 5 === 0 ? [150, 200, 140] : [225, 215, 195];
  });
}

/** Escapes text for HTML. */
export function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

/** Starts a site on 127.0.0.1 (a free port). `handle(req, url, body)`
 * answers `{status, type, body, delay?}` or null (404). Resolves with
 * `{origin, hits, close}`; `hits` lists `{method, target, body, ua}`. */
export async function serve(handle) {
  const hits = [];
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', async () => {
      const body = Buffer.concat(parts).toString('utf8');
      hits.push({ method: req.method, target: req.url, body, ua: String(req.headers['user-agent'] || '') });
      let a;
      try {
        a = await handle(req, new URL(req.url, 'http://site.invalid'), body);
      } catch (e) {
        a = { status: 500, type: 'text/plain', body: `site error: ${e.message}` };
      }
      if (!a) a = { status: 404, type: 'text/plain; charset=utf-8', body: 'no such page' };
      if (a.delay) await new Promise((r) => setTimeout(r, a.delay));
      res.writeHead(a.status || 200, { 'Content-Type': a.type, 'Cache-Control': 'no-store' });
      res.end(a.body);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    hits,
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
  };
}
