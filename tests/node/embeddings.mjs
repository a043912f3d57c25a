// Embeddings through the official Node SDK. Usage:
//   node embeddings.mjs BASE_URL [API_KEY]      (or OPENAI_BASE_URL / OPENAI_API_KEY in the environment)
// Prints one JSON line: what the SDK returned for the default call (the SDK asks for base64 and
// decodes it; Node SDK 6.x returns [] if floats come back instead), an explicit float call and
// a shortened one, or what it threw.
import OpenAI from 'openai';

const baseURL = process.argv[2] || process.env.OPENAI_BASE_URL;
const apiKey = process.argv[3] || process.env.OPENAI_API_KEY || 'test-key';
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const model = 'text-embedding-3-small';
const inputs = ['The food was delicious', 'The waiter was rude', 'The food was delicious'];

const summary = (response) => ({
  model: response.model,
  usage: response.usage,
  data: response.data.map((item) => ({
    index: item.index,
    isArray: Array.isArray(item.embedding),
    length: item.embedding.length,
    norm: Math.sqrt(item.embedding.reduce((sum, v) => sum + v * v, 0)),
    head: Array.from(item.embedding.slice(0, 4)),
  })),
});

const result = {};
try {
  const byDefault = await client.embeddings.create({ model, input: inputs });
  result.default = summary(byDefault);
  result.sameTextSameVector = JSON.stringify(byDefault.data[0].embedding) === JSON.stringify(byDefault.data[2].embedding);
  result.differentTextDifferentVector = JSON.stringify(byDefault.data[0].embedding) !== JSON.stringify(byDefault.data[1].embedding);
  const asFloats = await client.embeddings.create({ model, input: inputs[0], encoding_format: 'float' });
  result.float = summary(asFloats);
  result.floatMatchesDefault = JSON.stringify(asFloats.data[0].embedding) === JSON.stringify(byDefault.data[0].embedding);
  result.short = summary(await client.embeddings.create({ model, input: inputs[0], dimensions: 256 }));
} catch (error) {
  result.error = { class: error.constructor.name, message: String(error.message), status: error.status ?? null };
}
console.log(JSON.stringify(result));
