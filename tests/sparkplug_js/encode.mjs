// Encodes Sparkplug B payloads with Eclipse Tahu's sparkplug-payload, for the andon tests.
// stdin: a JSON list of payload objects (Tahu's form: {timestamp, seq, metrics: [{name,
// alias, type, value}]}); a payload with "compress": "DEFLATE" | "GZIP" is wrapped as
// sparkplug-client does (uuid SPBV1.0_COMPRESSED, body, an "algorithm" metric).
// stdout: a JSON list of the payloads' bytes in hex.
import { createRequire } from "node:module";
import { deflateSync, gzipSync } from "node:zlib";

const require = createRequire(import.meta.url);
const sparkplug = require("sparkplug-payload").get("spBv1.0");

let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map((p) => {
  const { compress, ...payload } = p;
  let bytes = sparkplug.encodePayload(payload);
  if (compress) {
    const body = compress === "GZIP" ? gzipSync(bytes) : deflateSync(bytes);
    bytes = sparkplug.encodePayload({
      uuid: "SPBV1.0_COMPRESSED",
      body,
      metrics: [{ name: "algorithm", type: "String", value: compress }],
    });
  }
  return Buffer.from(bytes).toString("hex");
});
process.stdout.write(JSON.stringify(out));
