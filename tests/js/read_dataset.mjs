// Independent reader for matbert datasets: opens every Arrow shard of DIR/train with the
// apache-arrow npm package, checks what the Arrow and HuggingFace formats require, and
// writes all rows as raw arrays PREFIX.input_ids.i32 / PREFIX.values.f64 for comparison.
// Prints a JSON report on stdout; exits 1 with the reason on stderr if a check fails.
// Usage: node read_dataset.mjs DIR PREFIX
import fs from 'node:fs';
import path from 'node:path';
import { RecordBatchStreamReader, Type } from 'apache-arrow';

const [dir, prefix] = process.argv.slice(2);
const fail = (msg) => { process.stderr.write(`read_dataset: ${msg}\n`); process.exit(1); };
const check = (cond, msg) => { if (!cond) fail(msg); };

const state = JSON.parse(fs.readFileSync(path.join(dir, 'train', 'state.json'), 'utf8'));
const info = JSON.parse(fs.readFileSync(path.join(dir, 'train', 'dataset_info.json'), 'utf8'));
const idsOut = fs.openSync(`${prefix}.input_ids.i32`, 'w');
const valuesOut = fs.openSync(`${prefix}.values.f64`, 'w');

const report = { rows: 0, batches: 0, max_batch_rows: 0, shards: [], fields: null, metadata_keys: null };
for (const { filename } of state._data_files) {
  const bytes = fs.readFileSync(path.join(dir, 'train', filename));
  check(bytes.subarray(0, 6).toString('latin1') !== 'ARROW1', `${filename}: file format, not stream`);
  check(bytes.subarray(bytes.length - 8).equals(Buffer.from([255, 255, 255, 255, 0, 0, 0, 0])),
        `${filename}: no end-of-stream marker`);
  const reader = RecordBatchStreamReader.from(bytes);
  reader.open();
  const schema = reader.schema;
  report.fields = schema.fields.map((f) => ({
    name: f.name,
    nullable: f.nullable,
    type: Type[f.type.typeId],
    child_name: f.type.children?.[0]?.name,
    child_nullable: f.type.children?.[0]?.nullable,
    child_type: f.type.children?.[0] ? `${Type[f.type.children[0].type.typeId]}${f.type.children[0].type.bitWidth ?? ''}${f.type.children[0].type.precision ?? ''}` : null,
  }));
  report.metadata_keys = [...schema.metadata.keys()];
  const hf = JSON.parse(schema.metadata.get('huggingface'));
  check(JSON.stringify(hf.info.features) === JSON.stringify(info.features),
        `${filename}: huggingface metadata features differ from dataset_info.json`);
  let shardRows = 0;
  for (const batch of reader) {
    report.batches += 1;
    report.max_batch_rows = Math.max(report.max_batch_rows, batch.numRows);
    const ids = batch.getChild('input_ids');
    const values = batch.getChild('values');
    for (let i = 0; i < batch.numRows; i++) {
      const rowIds = ids.get(i).toArray();
      const rowValues = values.get(i).toArray();
      check(rowIds instanceof Int32Array && rowValues instanceof Float64Array, 'wrong array types');
      check(rowIds.length === rowValues.length, `row ${report.rows + i}: lengths differ`);
      fs.writeSync(idsOut, Buffer.from(rowIds.buffer, rowIds.byteOffset, rowIds.byteLength));
      fs.writeSync(valuesOut, Buffer.from(rowValues.buffer, rowValues.byteOffset, rowValues.byteLength));
    }
    shardRows += batch.numRows;
  }
  report.rows += shardRows;
  report.shards.push({ filename, rows: shardRows, metadata_version: schema.metadataVersion });
}
fs.closeSync(idsOut);
fs.closeSync(valuesOut);
process.stdout.write(JSON.stringify(report) + '\n');
