// Reads a Parquet file from the stream route with hyparquet, as a browser would: a HEAD
// request for the length, then byte ranges only. Prints one JSON document on stdout:
// {"requests": [...], "schema": [...], "rows": [[...], ...]} with values written so that
// nothing is lost: 64-bit integers as strings, dates as YYYY-MM-DD, timestamps as
// microseconds since the epoch (a string), decimals with their scale, binary as base64.
//
// Usage: node read-parquet.mjs URL BEARER_TOKEN
import { asyncBufferFromUrl, parquetMetadataAsync, parquetReadObjects } from 'hyparquet'
import { compressors } from 'hyparquet-compressors'

const [url, token] = process.argv.slice(2)
if (!url || !token) {
  console.error('usage: node read-parquet.mjs URL BEARER_TOKEN')
  process.exit(2)
}

const requests = []
async function recordingFetch(input, init = {}) {
  const headers = new Headers(init.headers)
  headers.set('Authorization', `Bearer ${token}`)
  const response = await fetch(input, { ...init, headers })
  requests.push({
    method: init.method ?? 'GET',
    range: headers.get('Range'),
    status: response.status,
    contentRange: response.headers.get('Content-Range'),
  })
  return response
}

const file = await asyncBufferFromUrl({ url, fetch: recordingFetch })
const metadata = await parquetMetadataAsync(file)
const leaves = metadata.schema.slice(1)
const schema = leaves.map(element => ({
  name: element.name,
  type: element.type,
  logicalType: element.logical_type ?? null,
  scale: element.scale ?? null,
}))

const parsers = {
  timestampFromMilliseconds: millis => (BigInt(millis) * 1000n).toString(),
  timestampFromMicroseconds: micros => BigInt(micros).toString(),
  timestampFromNanoseconds: nanos => (BigInt(nanos) / 1000n).toString(),
  dateFromDays: days => new Date(days * 86400000).toISOString().slice(0, 10),
  stringFromBytes: bytes => bytes && new TextDecoder().decode(bytes),
  jsonFromBytes: bytes => bytes && new TextDecoder().decode(bytes),
}

// utf8: false keeps BYTE_ARRAY columns without a STRING annotation as bytes.
const objects = await parquetReadObjects({ file, metadata, compressors, parsers, utf8: false, rowFormat: 'object' })
const rows = objects.map(object =>
  leaves.map((element, index) => {
    const value = object[element.name] ?? Object.values(object)[index]
    if (value === null || value === undefined) return null
    if (typeof value === 'bigint') return value.toString()
    if (value instanceof Uint8Array) return Buffer.from(value).toString('base64')
    if (element.logical_type?.type === 'DECIMAL' || element.converted_type === 'DECIMAL') {
      return Number(value).toFixed(element.scale ?? 0)
    }
    if (typeof value === 'number' && !Number.isFinite(value)) return String(value)
    return value
  }),
)
process.stdout.write(JSON.stringify({ requests, schema, rows }))
