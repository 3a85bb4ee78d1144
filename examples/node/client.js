// PmemService from Node.js: the generated-at-runtime client of proto/pmem/v1/pmem_service.proto
// (@grpc/proto-loader) over the Unix socket (@grpc/grpc-js). Maps (creating) a region, writes and
// reads it with unary calls, streams a buffer in with StreamWriteRegion and back out with
// StreamReadRegion (checking the server's CRC-64), persists, unmaps and deletes it.
//
//   npm ci && node client.js unix:///run/pmem/pmem.sock     (or PMEM_ADDRESS=unix:///run/pmem/pmem.sock)
//
// Exits 0 when every step checked out, 1 otherwise (the repository's tests run it against a real server).
'use strict';

const path = require('node:path');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const address = process.argv[2] || process.env.PMEM_ADDRESS || 'unix:data/pmem.sock';
const region = process.argv[3] || `node-example-${process.pid}`;

const definition = protoLoader.loadSync(path.join(__dirname, '..', '..', 'proto', 'pmem', 'v1', 'pmem_service.proto'), {
  keepCase: false,      // camelCase fields: createIfMissing, totalLength, ...
  longs: String,        // uint64 as decimal strings (no precision loss)
  enums: String,
  defaults: true,
  oneofs: true,
});
const pmem = grpc.loadPackageDefinition(definition).pmem.v1;

// grpc-js understands unix:///abs/path and unix:relative/path targets.
const client = new pmem.PmemService(address, grpc.credentials.createInsecure(), {
  'grpc.max_receive_message_length': 8 << 20,
});

const deadline = () => new Date(Date.now() + 30_000);
const unary = (method, request) => new Promise((resolve, reject) =>
  client[method](request, { deadline: deadline() }, (error, response) => (error ? reject(error) : resolve(response))));

// CRC-64/ECMA-182 as the server computes it (System.IO.Hashing.Crc64): polynomial 0x42F0E1EBA9EA3693,
// no reflection, init 0, no final xor.
const CRC_TABLE = (() => {
  const poly = 0x42F0E1EBA9EA3693n;
  const table = new Array(256);
  for (let i = 0n; i < 256n; i++) {
    let crc = i << 56n;
    for (let bit = 0; bit < 8; bit++) {
      crc = (crc & (1n << 63n)) ? ((crc << 1n) ^ poly) & 0xFFFFFFFFFFFFFFFFn : (crc << 1n) & 0xFFFFFFFFFFFFFFFFn;
    }
    table[i] = crc;
  }
  return table;
})();
function crc64(buffer) {
  let crc = 0n;
  for (const byte of buffer) {
    crc = (CRC_TABLE[Number(((crc >> 56n) ^ BigInt(byte)) & 0xFFn)] ^ (crc << 8n)) & 0xFFFFFFFFFFFFFFFFn;
  }
  return crc;
}

function streamWrite(name, offset, data, chunkSize) {
  return new Promise((resolve, reject) => {
    const call = client.streamWriteRegion({ deadline: deadline() }, (error, response) => (error ? reject(error) : resolve(response)));
    call.write({ header: { name, offset: String(offset), totalLength: String(data.length) } });
    for (let at = 0; at < data.length; at += chunkSize) {
      call.write({ data: data.subarray(at, at + chunkSize) });
    }
    call.end();
  });
}

function streamRead(name, offset, length, chunkSize) {
  return new Promise((resolve, reject) => {
    const parts = [];
    let expected = BigInt(offset);
    const call = client.streamReadRegion({ name, offset: String(offset), length: String(length), chunkSize }, { deadline: deadline() });
    call.on('data', (message) => {
      if (BigInt(message.offset) !== expected) {
        call.cancel();
        reject(new Error(`chunk at offset ${message.offset}, expected ${expected}`));
        return;
      }
      parts.push(message.data);
      expected += BigInt(message.data.length);
    });
    call.on('error', reject);
    call.on('end', () => resolve(Buffer.concat(parts)));
  });
}

async function main() {
  const size = 4 << 20;
  const mapped = await unary('mapRegion', { name: region, size: String(size), requiredGranularity: 'GRANULARITY_PAGE', createIfMissing: true });
  console.log(`map ${region}: created=${mapped.region.created} granularity=${mapped.region.effectiveGranularity} references=${mapped.region.mapReferences}`);

  const hello = Buffer.from('hello from node');
  const written = await unary('writeRegion', { name: region, offset: '100', data: hello });
  assert.equal(written.bytesWritten, String(hello.length));
  assert.equal(written.persisted, true);
  const read = await unary('readRegion', { name: region, offset: '100', length: String(hello.length) });
  assert.deepEqual(read.data, hello);
  console.log(`write/read: ${read.data.toString()}`);

  const bulk = crypto.randomBytes(3 << 20);
  const streamed = await streamWrite(region, 4096, bulk, 256 << 10);
  assert.equal(streamed.bytesPersisted, String(bulk.length));
  assert.equal(streamed.persistedOffset, String(4096 + bulk.length));
  const crc = crc64(bulk);
  assert.equal(BigInt(streamed.crc64), crc, 'server CRC-64 differs from ours');
  assert.equal(streamed.crc64Hex, `0x${crc.toString(16).padStart(16, '0')}`);
  console.log(`stream write: ${streamed.bytesPersisted} bytes persisted, crc64 ${streamed.crc64Hex}`);

  const back = await streamRead(region, 4096, bulk.length, 512 << 10);
  assert.ok(back.equals(bulk), 'streamed read differs from what was written');
  console.log(`stream read: ${back.length} bytes, identical`);

  const persisted = await unary('persistRegion', { name: region, offset: '0', length: '0' });
  console.log(`persist: ${persisted.bytesPersisted} bytes`);

  const info = await unary('getRegion', { name: region });
  assert.equal(info.region.mapped, true);
  await unary('unmapRegion', { name: region });
  await unary('deleteRegion', { name: region, force: false });
  console.log('unmap + delete: ok');
}

main().then(() => {
  client.close();
  console.log('node example: OK');
}, (error) => {
  client.close();
  console.error(`node example FAILED: ${error.code !== undefined ? `${grpc.status[error.code]} ${error.details}` : error.stack}`);
  process.exit(1);
});
