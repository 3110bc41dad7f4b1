#!/usr/bin/env node
// A Node.js client of the budget ledger: @grpc/grpc-js, with the repository's .proto files loaded
// at run time by @grpc/proto-loader (no generated code).
//
//   (cd examples/node && npm ci)
//   node examples/node/client.js 127.0.0.1:50051
//
// It creates an envelope of 1 M EUR (ids new at every run), awards 300,000 and 200,000 EUR from
// it, releases 50,000 EUR of the first award, reads the envelope, and asks for more than is left:
// the refusal's google.rpc.ErrorInfo is decoded, with protobufjs, from the grpc-status-details-bin
// trailer. It exits 1 when anything differs from what the API promises.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { randomUUID } = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const root = path.resolve(__dirname, '..', '..');
const includeDirs = [
  path.join(root, 'proto'), // budgetledger/v1/*.proto
  path.join(root, 'third_party'), // buf/validate/validate.proto and google/api/*.proto, which they import
  path.join(root, 'examples', 'protos'), // google/rpc/status.proto and error_details.proto
  // The well-known types (google/protobuf/timestamp.proto, descriptor.proto, any.proto...) are
  // built into protobufjs, which proto-loader uses; its package folder also holds the .proto files
  // of some of them, named here so that an import of one always resolves to protobufjs's copy.
  path.dirname(require.resolve('protobufjs/package.json')),
];

const TIMEOUT_MS = 10_000;
const EUR = 100; // cents
const ALLOCATION = 1_000_000 * EUR;
const AWARD_1 = 300_000 * EUR;
const AWARD_2 = 200_000 * EUR;
const RELEASE = 50_000 * EUR;
const LEFT = ALLOCATION - AWARD_1 - AWARD_2 + RELEASE; // 550,000 EUR
const TOO_MUCH = LEFT + 50_000 * EUR;

class Unexpected extends Error {}

function expect(cond, what) {
  if (!cond) throw new Unexpected(what);
}

// The API, as plain JS objects: int64 fields as decimal strings (they pass 2^53 in general),
// enums as names, and unset fields with their defaults, so that e.g. `committed` reads "0".
const packageDefinition = protoLoader.loadSync(
  ['budgetledger/v1/envelope.proto', 'budgetledger/v1/commitment.proto'],
  { includeDirs, keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
);
const v1 = grpc.loadPackageDefinition(packageDefinition).budgetledger.v1;

// google.rpc.Status and ErrorInfo, to decode the error details.
const rpcTypes = new protobuf.Root();
rpcTypes.resolvePath = (origin, target) => {
  for (const dir of includeDirs) {
    const candidate = path.join(dir, target);
    if (fs.existsSync(candidate)) return candidate;
  }
  return protobuf.util.path.resolve(origin, target);
};
rpcTypes.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
const Status = rpcTypes.lookupType('google.rpc.Status');
const ErrorInfo = rpcTypes.lookupType('google.rpc.ErrorInfo');

// errorDetails returns the google.rpc.Status that a failed call carries, serialized, in its
// grpc-status-details-bin trailer (grpc-js gives "-bin" metadata as Buffers, base64 undone).
function errorDetails(err) {
  const [bin] = err.metadata ? err.metadata.get('grpc-status-details-bin') : [];
  if (!bin) throw new Unexpected(`no grpc-status-details-bin in the trailers of ${err.code}: ${err.details}`);
  return Status.decode(bin);
}

// errorInfo returns the google.rpc.ErrorInfo among the details (google.protobuf.Any) of a Status.
function errorInfo(status) {
  for (const any of status.details) {
    if (any.type_url === 'type.googleapis.com/google.rpc.ErrorInfo') {
      return ErrorInfo.toObject(ErrorInfo.decode(any.value), { defaults: true });
    }
  }
  throw new Unexpected(`no google.rpc.ErrorInfo in the details: ${status.details.map((d) => d.type_url)}`);
}

// call makes a unary call as a promise, with a deadline.
function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + TIMEOUT_MS }, (err, response) =>
      err ? reject(err) : resolve(response),
    );
  });
}

async function run(target) {
  const envelopeId = `js-${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  const name = `envelopes/${envelopeId}`;
  const creds = grpc.credentials.createInsecure();
  const envelopes = new v1.EnvelopeService(target, creds);
  const commitments = new v1.CommitmentService(target, creds);
  try {
    const created = await call(envelopes, 'CreateEnvelope', {
      envelope_id: envelopeId,
      display_name: 'Node.js example fund',
      allocation: ALLOCATION,
      request_id: randomUUID(),
    });
    let env = created.envelope;
    console.log(`created ${env.name}: ${env.allocation} ${env.currency_code} cents`);
    expect(env.name === name && env.available === String(ALLOCATION) && env.currency_code === 'EUR',
      `created envelope ${JSON.stringify(env)}`);

    // Two awards. The first is sent twice with one request_id: the retry returns the first answer
    // and awards nothing more.
    const award1 = {
      envelope: name, beneficiary: 'siren:200054781', project: 'guichet-numerique',
      amount: AWARD_1, request_id: randomUUID(),
    };
    const first = await call(commitments, 'Commit', award1);
    const retry = await call(commitments, 'Commit', award1);
    expect(retry.commitment.name === first.commitment.name && retry.journal_entry === first.journal_entry,
      'a retry with the same request_id made another award');
    console.log(`awarded ${first.commitment.amount} to ${first.commitment.project}: ${first.commitment.name}` +
      ' (a retry with the same request_id returned the same commitment)');

    const second = await call(commitments, 'Commit', {
      envelope: name, beneficiary: 'siren:217500016', project: 'gestion-relation-usagers',
      amount: AWARD_2, request_id: randomUUID(),
    });
    console.log(`awarded ${second.commitment.amount} to ${second.commitment.project}: ${second.commitment.name};` +
      ` ${second.envelope.available} left`);
    expect(second.envelope.available === String(ALLOCATION - AWARD_1 - AWARD_2),
      `available after two awards: ${second.envelope.available}`);

    const released = await call(commitments, 'Release', {
      commitment: first.commitment.name, amount: RELEASE,
      reason: 'final cost lower than planned', request_id: randomUUID(),
    });
    const c = released.commitment;
    console.log(`released ${c.released} of ${c.name}: ${c.remaining} remains committed`);
    expect(c.released === String(RELEASE) && c.remaining === String(AWARD_1 - RELEASE),
      `commitment after release: ${JSON.stringify(c)}`);

    env = (await call(envelopes, 'GetEnvelope', { name })).envelope;
    console.log(`${env.name}: allocation ${env.allocation}, committed ${env.committed}, available ${env.available},` +
      ` released ${env.released}, ${env.commitment_count} commitments`);
    expect(env.available === String(LEFT) && env.committed === String(AWARD_1 + AWARD_2 - RELEASE) &&
      env.released === String(RELEASE) && env.commitment_count === '2' &&
      BigInt(env.allocation) === BigInt(env.committed) + BigInt(env.allocated_to_children) + BigInt(env.available),
    `envelope after the release: ${JSON.stringify(env)}`);

    let refused;
    try {
      await call(commitments, 'Commit', {
        envelope: name, beneficiary: 'siren:200054781', project: 'too-big',
        amount: TOO_MUCH, request_id: randomUUID(),
      });
    } catch (err) {
      if (err instanceof Unexpected || err.code === undefined) throw err;
      refused = err;
    }
    expect(refused, `an award of ${TOO_MUCH} with ${LEFT} available was accepted`);
    const status = errorDetails(refused);
    const info = errorInfo(status);
    console.log(`over-commit refused: ${grpc.status[refused.code]}: ${refused.details}`);
    console.log(`  ErrorInfo reason=${info.reason} domain=${info.domain}`);
    for (const key of Object.keys(info.metadata).sort()) console.log(`    ${key} = ${info.metadata[key]}`);
    expect(refused.code === grpc.status.FAILED_PRECONDITION, `code ${grpc.status[refused.code]}`);
    expect(status.code === grpc.status.FAILED_PRECONDITION && status.message === refused.details,
      `google.rpc.Status ${status.code} ${JSON.stringify(status.message)} differs from the call's status`);
    expect(info.reason === 'INSUFFICIENT_FUNDS', `reason ${info.reason}`);
    expect(info.domain === 'budgetledger.github.io', `domain ${info.domain}`);
    expect(info.metadata.available === String(LEFT), `available ${info.metadata.available}`);
    expect(info.metadata.requested === String(TOO_MUCH), `requested ${info.metadata.requested}`);
    expect(info.metadata.envelope === name, `envelope ${info.metadata.envelope}`);

    env = (await call(envelopes, 'GetEnvelope', { name })).envelope;
    expect(env.available === String(LEFT) && env.commitment_count === '2',
      `the refused award changed the envelope: ${JSON.stringify(env)}`);
  } finally {
    envelopes.close();
    commitments.close();
  }
}

async function main() {
  const target = process.argv[2] || process.env.LEDGER_ADDRESS || '127.0.0.1:50051';
  try {
    await run(target);
  } catch (err) {
    if (err instanceof Unexpected) {
      console.error(`client.js: unexpected: ${err.message}`);
    } else if (err.code !== undefined && err.details !== undefined) {
      console.error(`client.js: call failed: ${grpc.status[err.code]}: ${err.details}`);
    } else {
      console.error(err);
    }
    process.exitCode = 1;
    return;
  }
  console.log('node example: OK');
}

main();
