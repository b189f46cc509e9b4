#!/usr/bin/env bash
# Checks that pola's `noise` netlayer interoperates with Endo's OCapN Noise
# implementation (@endo/ocapn-noise: JavaScript bindings over a Rust/Wasm
# core), in both directions, over TCP on 127.0.0.1.
#
#   scripts/endo-noise-interop.sh ENDO_REPO [--build]
#
# ENDO_REPO is a git checkout (or bare clone) of github.com/endojs/endo; the
# script takes packages/ocapn-noise/src/bindings.js and the checked-in
# packages/ocapn-noise/gen/ocapn-noise.wasm from its HEAD. With --build it
# instead builds the Wasm from rust/ocapn_noise (needs the
# wasm32-unknown-unknown target; crates come from crates.io). Needs Node >= 18.
# The run is by hand (CI has neither Endo nor Node); its latest result is in
# the README. Endo publishes no TCP framing, so the driver below frames each
# Noise message with a 2-byte big-endian length, as pola does.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 ENDO_REPO [--build]" >&2
    exit 2
fi
endo=$1
build=${2:-}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/pola-endo-noise.XXXXXX")
trap 'rm -rf "$work"' EXIT

git -C "$endo" show HEAD:packages/ocapn-noise/src/bindings.js > "$work/bindings.js"
if [[ "$build" == "--build" ]]; then
    mkdir -p "$work/ocapn_noise"
    git -C "$endo" archive HEAD rust/ocapn_noise | tar -x -C "$work/ocapn_noise" --strip-components=2
    (cd "$work/ocapn_noise" && cargo build -q --target wasm32-unknown-unknown --lib --release \
        --target-dir "$work/ocapn_noise/target")
    cp "$work/ocapn_noise/target/wasm32-unknown-unknown/release/ocapn_noise_protocol_facilities.wasm" \
        "$work/ocapn-noise.wasm"
    echo "== Endo wasm built from rust/ocapn_noise" >&2
else
    git -C "$endo" show HEAD:packages/ocapn-noise/gen/ocapn-noise.wasm > "$work/ocapn-noise.wasm"
    echo "== Endo wasm: checked-in packages/ocapn-noise/gen/ocapn-noise.wasm" >&2
fi
echo "== Endo commit $(git -C "$endo" rev-parse HEAD)" >&2
echo '{"type":"module","private":true}' > "$work/package.json"
cat > "$work/interop.mjs" <<'JS'
// Drives Endo's @endo/ocapn-noise (bindings.js + its checked-in wasm) over
// TCP with pola's framing: every Noise message is preceded by a 2-byte
// big-endian length. Usage:
//   node interop.mjs respond            -> prints "LISTEN <port> <designator>"
//   node interop.mjs dial <port> <designator>
// After the handshake it reads one application message (4-byte BE length +
// body, spread over as many Noise frames as needed), prints "GOT <len> <sha256>",
// replies with "endo:" + sha256 + 100000 patterned bytes (same length-prefixed
// form), sends the empty end-of-stream frame, and prints "CLOSED clean" when the
// peer's empty end-of-stream frame arrives.
import net from 'node:net';
import fs from 'node:fs';
import { getRandomValues, createHash } from 'node:crypto';
import {
  makeOcapnSessionCryptography,
  PREFIXED_SYN_LENGTH,
  SYNACK_LENGTH,
  ACK_LENGTH,
} from './bindings.js';

const wasmModule = new WebAssembly.Module(
  fs.readFileSync(new URL('./ocapn-noise.wasm', import.meta.url)),
);
const ALPHA = 'abcdefghijklmnopqrstuvwxyz234567';
const b32 = bytes => {
  let bits = 0, acc = 0, out = '';
  for (const b of bytes) {
    acc = (acc << 8) | b; bits += 8;
    while (bits >= 5) { bits -= 5; out += ALPHA[(acc >> bits) & 31]; }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHA[(acc << (5 - bits)) & 31];
  return out;
};
const unb32 = s => {
  const out = []; let bits = 0, acc = 0;
  for (const c of s) {
    const v = ALPHA.indexOf(c); if (v < 0) throw Error('bad base32');
    acc = (acc << 5) | v; bits += 5;
    if (bits >= 8) { bits -= 8; out.push((acc >> bits) & 255); acc &= (1 << bits) - 1; }
  }
  return new Uint8Array(out);
};
const say = line => process.stdout.write(line + '\n');

const frames = sock => {
  let buf = Buffer.alloc(0); const waiting = []; let ended = false;
  const pump = () => {
    while (waiting.length) {
      if (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length >= 2 + len) {
          const f = new Uint8Array(buf.subarray(2, 2 + len));
          buf = buf.subarray(2 + len);
          waiting.shift().resolve(f);
          continue;
        }
      }
      if (ended) { waiting.shift().reject(Error('eof')); continue; }
      break;
    }
  };
  sock.on('data', d => { buf = Buffer.concat([buf, d]); pump(); });
  sock.on('end', () => { ended = true; pump(); });
  return () => new Promise((resolve, reject) => { waiting.push({ resolve, reject }); pump(); });
};
const frame = body => {
  const h = Buffer.alloc(2); h.writeUInt16BE(body.length, 0);
  return Buffer.concat([h, Buffer.from(body)]);
};

const session = async (sock, next, encrypt, decrypt) => {
  // Read one length-prefixed application message.
  let plain = Buffer.alloc(0);
  const want = () => (plain.length >= 4 ? 4 + plain.readUInt32BE(0) : Infinity);
  while (plain.length < want()) {
    const p = decrypt(await next());
    if (p.length === 0) throw Error('peer closed early');
    plain = Buffer.concat([plain, Buffer.from(p)]);
  }
  const body = plain.subarray(4, want());
  const digest = createHash('sha256').update(body).digest('hex');
  say(`GOT ${body.length} ${digest}`);
  const pattern = Buffer.alloc(100000);
  for (let i = 0; i < pattern.length; i += 1) pattern[i] = (i * 7) & 255;
  const reply = Buffer.concat([Buffer.from(`endo:${digest}`), pattern]);
  const msg = Buffer.concat([Buffer.alloc(4), reply]);
  msg.writeUInt32BE(reply.length, 0);
  for (let at = 0; at < msg.length; at += 65519) {
    sock.write(frame(encrypt(new Uint8Array(msg.subarray(at, at + 65519)))));
  }
  sock.write(frame(encrypt(new Uint8Array(0))));
  const last = decrypt(await next());
  say(last.length === 0 ? 'CLOSED clean' : `CLOSED with ${last.length} more bytes`);
  sock.end();
};

const crypto = makeOcapnSessionCryptography({ wasmModule, getRandomValues });
const [mode, port, designator] = process.argv.slice(2);
if (mode === 'respond') {
  const { signingKeys, responderReadSynWriteSynack } = crypto.asResponder();
  const server = net.createServer(async sock => {
    try {
      const next = frames(sock);
      const syn = await next();
      const synack = new Uint8Array(SYNACK_LENGTH);
      const { initiatorVerifyingKey, responderReadAck } = responderReadSynWriteSynack(syn, synack);
      sock.write(frame(synack));
      const { encoding, encrypt, decrypt } = responderReadAck(await next());
      say(`PEER ${b32(initiatorVerifyingKey)} ENCODING ${encoding}`);
      await session(sock, next, encrypt, decrypt);
    } catch (e) {
      say(`ERROR ${e.message}`);
      sock.destroy();
    }
    server.close();
  });
  server.listen(0, '127.0.0.1', () => say(`LISTEN ${server.address().port} ${b32(signingKeys.publicKey)}`));
} else if (mode === 'dial') {
  const { signingKeys, initiatorWriteSyn } = crypto.asInitiator();
  say(`SELF ${b32(signingKeys.publicKey)}`);
  const sock = net.connect(Number(port), '127.0.0.1');
  const next = frames(sock);
  try {
    const syn = new Uint8Array(PREFIXED_SYN_LENGTH);
    const { initiatorReadSynackWriteAck } = initiatorWriteSyn(unb32(designator), syn);
    sock.write(frame(syn));
    const ack = new Uint8Array(ACK_LENGTH);
    const { encoding, encrypt, decrypt } = initiatorReadSynackWriteAck(await next(), ack);
    sock.write(frame(ack));
    say(`ENCODING ${encoding}`);
    await session(sock, next, encrypt, decrypt);
  } catch (e) {
    say(`ERROR ${e.message}`);
    sock.destroy();
  }
} else {
  say('usage: interop.mjs respond | dial <port> <designator>');
  process.exit(2);
}
JS

cd "$repo"
POLA_ENDO_NOISE_DIR="$work" cargo test -p pola-netlayer --test all noise_endo -- \
    --ignored --nocapture --test-threads 1
