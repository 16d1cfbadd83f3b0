// Reads a chat response from the server the way useChat does in a browser: the `ai`
// package's DefaultChatTransport sends the request and parses the UI message stream, and
// readUIMessageStream rebuilds the assistant message from its chunks. Prints one JSON
// document on stdout:
// {"message": UIMessage | null, "chunks": [{"type", "atMs"}], "error": string | null}
// where atMs counts milliseconds from the start of the request. An `error` chunk, a failed
// request or an invalid chunk sets "error", and "message" still contains the partial message
// (null if no chunk changed it). The exit code is 0 in all these cases.
//
// Usage: node read-chat.mjs URL OPTIONS_FILE
// OPTIONS_FILE contains JSON with these keys, all optional:
//   headers    request headers, e.g. {"Authorization": "Bearer ..."}
//   body       extra request body fields, e.g. {"workspaceId": "...", "model": "..."}
//   messages   the UIMessage history to send (default [])
//   chatId     the chat id that the transport sends as `id` (default body.chatId, else random)
//   timeoutMs  aborts the request after this many milliseconds (default: no timeout)
//
// NOTE: ai 7.0.185 declares Node >= 22 in `engines`, so npm warns on older Node versions.
import { readFile } from 'node:fs/promises'
import { DefaultChatTransport, generateId, readUIMessageStream } from 'ai'

const [url, optionsPath] = process.argv.slice(2)
if (!url || !optionsPath) {
  console.error('usage: node read-chat.mjs URL OPTIONS_FILE')
  process.exit(2)
}

let options
try {
  options = JSON.parse(await readFile(optionsPath, 'utf8'))
} catch (error) {
  console.error(`failed to read the options file ${optionsPath}: ${error.message}`)
  process.exit(2)
}
if (options === null || typeof options !== 'object' || Array.isArray(options)) {
  console.error(`the options file ${optionsPath} must contain a JSON object`)
  process.exit(2)
}

const messages = options.messages ?? []
const chatId = options.chatId ?? options.body?.chatId ?? generateId()
const abortController = new AbortController()
if (options.timeoutMs != null) {
  const timeout = setTimeout(() => {
    abortController.abort(new Error(`the request timed out after ${options.timeoutMs} ms`))
  }, options.timeoutMs)
  timeout.unref()
}

const startedAt = performance.now()
const chunks = []
let message = null
let error = null

// Records each chunk's type and arrival time, then passes it on unchanged.
const recordChunks = new TransformStream({
  transform(chunk, controller) {
    chunks.push({ type: chunk.type, atMs: Math.round(performance.now() - startedAt) })
    controller.enqueue(chunk)
  },
})

try {
  const transport = new DefaultChatTransport({ api: url })
  const stream = await transport.sendMessages({
    chatId,
    messages,
    trigger: 'submit-message',
    messageId: undefined,
    abortSignal: abortController.signal,
    headers: options.headers,
    body: options.body,
  })
  // useChat continues the last message when it is an assistant message (for example after a
  // tool output), and stops at the first `error` chunk.
  // NOTE: unlike useChat, readUIMessageStream starts a new message when a `start` chunk
  // carries a messageId different from the continued message's id.
  const lastMessage = messages.at(-1)
  const snapshots = readUIMessageStream({
    message: lastMessage?.role === 'assistant' ? structuredClone(lastMessage) : undefined,
    stream: stream.pipeThrough(recordChunks),
    terminateOnError: true,
  })
  for await (const snapshot of snapshots) {
    message = snapshot
  }
} catch (caught) {
  error = caught instanceof Error ? caught.message : String(caught)
}

process.stdout.write(JSON.stringify({ message, chunks, error }))
