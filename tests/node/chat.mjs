// Drives the mock with the official Node SDK. Usage:
//   node chat.mjs '{"baseURL": "...", "apiKey": "...", "content": "...", "stream": true, "maxRetries": 0}'
// Prints one JSON line: what the SDK returned or threw.
import OpenAI from 'openai';

const options = JSON.parse(process.argv[2]);
const client = new OpenAI({
  baseURL: options.baseURL,
  apiKey: options.apiKey,
  maxRetries: options.maxRetries ?? 2,
  defaultHeaders: options.session ? { 'X-Mock-Session': options.session } : {},
});
const request = {
  model: 'gpt-4o',
  messages: [{ role: 'user', content: options.content }],
  stream: Boolean(options.stream),
};

const result = { chunks: [], content: '' };
try {
  if (request.stream) {
    const stream = await client.chat.completions.create(request);
    for await (const chunk of stream) {
      result.chunks.push(chunk);
      result.content += chunk.choices[0]?.delta?.content || '';
    }
  } else {
    const completion = await client.chat.completions.create(request);
    result.completion = completion;
    result.content = completion.choices[0].message.content;
  }
} catch (error) {
  result.error = {
    class: error.constructor.name,
    name: error.name,
    message: String(error.message),
    status: error.status ?? null,
    code: error.code ?? null,
    type: error.type ?? null,
    requestID: error.requestID ?? null,
    cause: error.cause ? String(error.cause.code || error.cause.message || error.cause) : null,
  };
}
console.log(JSON.stringify(result));
