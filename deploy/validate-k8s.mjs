/* global console, process -- Node.js globals; this file runs under plain node. */
// Validates Kubernetes manifests against the API schemas that the kubernetes-models package ships.
// It checks types, enums and required fields. Unknown fields pass, because the schemas allow them.
// Reads a multi-document YAML stream on stdin, such as the output of `kubectl kustomize`.
// deploy/validate.sh copies this file next to its node_modules, so the bare imports resolve there.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

const source = readFileSync(0, 'utf8');
const documents = parseAllDocuments(source);
let failures = 0;
let validated = 0;

for (const document of documents) {
  if (document.errors.length > 0) {
    for (const error of document.errors) console.error(`invalid YAML: ${error.message}`);
    failures += 1;
    continue;
  }

  const manifest = document.toJS();
  if (manifest === null || manifest === undefined) continue;

  const { apiVersion, kind } = manifest;
  const name = manifest.metadata?.name ?? '(no metadata.name)';
  const label = `${kind ?? '(no kind)'}/${name}`;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
    console.error(`${label}: apiVersion and kind must be strings`);
    failures += 1;
    continue;
  }

  // kubernetes-models/<group>/<version>/<Kind>, where the core group has no group segment (v1/Service).
  let Model;
  try {
    ({ [kind]: Model } = await import(`kubernetes-models/${apiVersion}/${kind}`));
  } catch {
    console.error(`${label}: no schema for apiVersion ${apiVersion} kind ${kind}`);
    failures += 1;
    continue;
  }

  try {
    new Model(manifest).validate();
    validated += 1;
  } catch (error) {
    const details = Array.isArray(error.errors)
      ? error.errors.map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ')
      : error.message;
    console.error(`${label}: ${details}`);
    failures += 1;
  }
}

if (validated + failures === 0) {
  console.error('no manifests on stdin');
  process.exit(1);
}
console.log(`kubernetes schemas: ${validated} valid, ${failures} invalid`);
process.exit(failures === 0 ? 0 : 1);
