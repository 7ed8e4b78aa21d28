#!/usr/bin/env node
// Prints the Elastic Common Schema field definitions the ECS output is checked against, as one
// JSON object on standard output:
//
//   {"version": "9.4.0", "fields": {"<flat name>": {"type", "normalize", "allowed_values",
//    "object_type"}, ...}}
//
// The definitions are the npm package @elastic/ecs (Apache-2.0, generated from elastic/ecs's
// generated/ecs/ecs_flat.yml), which scripts/setup.sh installs into .tools/ecs. Only the
// package's main export `EcsFlat` is read: the package also ships a stale
// generated/ecs_flat module (about ECS 8.11) that must not be used.
//
// Run by services/mfagap/tests/filter.rs; by hand: node tests/ecs_fields.js [FIELD...] prints
// only the named fields.
'use strict';

const path = require('path');

const EXPECTED_VERSION = '9.4.0';
const root = path.resolve(__dirname, '..');
const pkg = path.join(root, '.tools', 'ecs', 'node_modules', '@elastic', 'ecs');

let ecs;
try {
  ecs = require(pkg);
} catch (e) {
  process.stderr.write(`cannot load @elastic/ecs from ${pkg} (${e.code || e.message}): run scripts/setup.sh\n`);
  process.exit(2);
}

const { EcsFlat, EcsVersion } = ecs;
if (EcsVersion !== EXPECTED_VERSION || typeof EcsFlat !== 'object' || EcsFlat === null) {
  process.stderr.write(`expected @elastic/ecs ${EXPECTED_VERSION} with EcsFlat, found ${EcsVersion}: run scripts/setup.sh\n`);
  process.exit(2);
}
// The stale module has about 1700 fields, the main export of 9.4.0 has 2605.
if (Object.keys(EcsFlat).length < 2500 || !('event.type' in EcsFlat)) {
  process.stderr.write('EcsFlat is not the full ECS 9.4.0 field set\n');
  process.exit(2);
}

const wanted = process.argv.slice(2);
const names = wanted.length > 0 ? wanted : Object.keys(EcsFlat).sort();
const fields = {};
for (const name of names) {
  const f = EcsFlat[name];
  if (f === undefined) {
    continue;
  }
  const out = { type: f.type, normalize: f.normalize || [] };
  if (Array.isArray(f.allowed_values) && f.allowed_values.length > 0) {
    out.allowed_values = f.allowed_values.map((v) => v.name);
  }
  if (f.object_type) {
    out.object_type = f.object_type;
  }
  fields[name] = out;
}
process.stdout.write(JSON.stringify({ version: EcsVersion, fields }) + '\n');
