// Make one small trace with the OpenTelemetry JS SDK and export it over OTLP.
//
// Usage: node send_spans.mjs ENDPOINT PROTOCOL SERVICE [TOKEN]
//
//   ENDPOINT  base URL of the receiver, e.g. http://127.0.0.1:4318 (the HTTP
//             exporters post to ENDPOINT/v1/traces) or http://127.0.0.1:4317 (gRPC);
//             for the file protocols, the file to append to
//   PROTOCOL  http/protobuf, http/json or grpc (the values of OTEL_EXPORTER_OTLP_PROTOCOL),
//             or file/json or file/protobuf: each export request serialized by the
//             SDK's own serializers (@opentelemetry/otlp-transformer, what its OTLP/HTTP
//             exporters send) and appended to the file: JSON one request per line,
//             protobuf as is (requests appended are one request: their fields add up)
//   SERVICE   the resource's service.name
//   TOKEN     sent as "Authorization: Bearer TOKEN" (an HTTP header, or gRPC metadata)
//
// The SDK is used as an application would use it: a BasicTracerProvider with a
// BatchSpanProcessor and the stock exporter, configured only through the
// exporter's documented options (the OTEL_EXPORTER_OTLP_* variables, such as
// OTEL_EXPORTER_OTLP_COMPRESSION, apply as usual). The trace:
//
//   GET /orders/{id}   SERVER, attributes of each type, a link to another trace
//   └─ SELECT orders   CLIENT, an event, status ERROR
//      └─ decode rows  INTERNAL
//
// Prints one JSON line {traceId, spans: {root, client, internal}, link: {traceId,
// spanId}, startMs} describing the trace it made, then exits 0 when the export
// succeeded; when it failed, the SDK's error is on stderr ("export failed: NAME
// code=CODE MESSAGE", CODE being the HTTP status or the gRPC status code) and the
// exit code is 1.

import { context, diag, DiagConsoleLogger, DiagLogLevel, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import {
  ATTR_DB_QUERY_TEXT,
  ATTR_DB_SYSTEM_NAME,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
} from "@opentelemetry/semantic-conventions";

const USAGE = "usage: node send_spans.mjs ENDPOINT PROTOCOL SERVICE [TOKEN]";
const PROTOCOLS = ["http/protobuf", "http/json", "grpc", "file/json", "file/protobuf"];

/** An exporter that appends each request, serialized as the OTLP exporters do, to a file. */
async function makeFileExporter(path, protocol) {
  const { appendFileSync } = await import("node:fs");
  const { JsonTraceSerializer, ProtobufTraceSerializer } = await import("@opentelemetry/otlp-transformer");
  return {
    export(spans, resultCallback) {
      try {
        if (protocol === "file/json") {
          const body = JsonTraceSerializer.serializeRequest(spans);
          appendFileSync(path, Buffer.concat([Buffer.from(body), Buffer.from("\n")]));
        } else {
          appendFileSync(path, ProtobufTraceSerializer.serializeRequest(spans));
        }
        resultCallback({ code: 0 });
      } catch (error) {
        resultCallback({ code: 1, error });
      }
    },
    shutdown() {
      return Promise.resolve();
    },
    forceFlush() {
      return Promise.resolve();
    },
  };
}

/** Return the stock exporter of a PROTOCOL (one of PROTOCOLS). */
async function makeExporter(endpoint, protocol, token) {
  if (protocol.startsWith("file/")) {
    return makeFileExporter(endpoint, protocol);
  }
  const base = endpoint.replace(/\/+$/, "");
  if (protocol === "http/protobuf" || protocol === "http/json") {
    const module =
      protocol === "http/protobuf"
        ? await import("@opentelemetry/exporter-trace-otlp-proto")
        : await import("@opentelemetry/exporter-trace-otlp-http");
    return new module.OTLPTraceExporter({
      url: `${base}/v1/traces`,
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      timeoutMillis: 10000,
    });
  }
  const { Metadata } = await import("@grpc/grpc-js");
  const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-grpc");
  const metadata = new Metadata();
  if (token) {
    metadata.set("authorization", `Bearer ${token}`);
  }
  return new OTLPTraceExporter({ url: base, metadata, timeoutMillis: 10000 });
}

function randomHex(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function makeTrace(tracer) {
  // explicit times (epoch milliseconds), so the receiver's durations can be checked
  const t0 = Date.now() - 1000;
  const link = { traceId: randomHex(16), spanId: randomHex(8) };
  const root = tracer.startSpan("GET /orders/{id}", {
    kind: SpanKind.SERVER,
    startTime: t0,
    attributes: {
      [ATTR_HTTP_REQUEST_METHOD]: "GET",
      [ATTR_HTTP_ROUTE]: "/orders/{id}",
      [ATTR_HTTP_RESPONSE_STATUS_CODE]: 200,
      "app.cache_hit": true,
      "app.load_ratio": 0.75,
      "app.big_count": Number.MAX_SAFE_INTEGER,
      "app.tags": ["red", "green", "blue"],
      "app.ports": [8080, 8443],
    },
    links: [
      {
        context: { traceId: link.traceId, spanId: link.spanId, traceFlags: 1, isRemote: true },
        attributes: { "messaging.message.id": "msg-42" },
      },
    ],
  });
  const client = tracer.startSpan(
    "SELECT orders",
    {
      kind: SpanKind.CLIENT,
      startTime: t0 + 5,
      attributes: { [ATTR_DB_SYSTEM_NAME]: "postgresql", [ATTR_DB_QUERY_TEXT]: "SELECT * FROM orders WHERE id = $1" },
    },
    trace.setSpan(context.active(), root),
  );
  client.addEvent("retry", { "retry.attempt": 2, "retry.reason": "connection reset" }, t0 + 7);
  const internal = tracer.startSpan(
    "decode rows",
    { kind: SpanKind.INTERNAL, startTime: t0 + 10, attributes: { "rows.count": 3 } },
    trace.setSpan(context.active(), client),
  );
  internal.end(t0 + 12);
  client.setStatus({ code: SpanStatusCode.ERROR, message: "connection reset by peer" });
  client.end(t0 + 15);
  root.end(t0 + 25);
  return {
    traceId: root.spanContext().traceId,
    spans: {
      root: root.spanContext().spanId,
      client: client.spanContext().spanId,
      internal: internal.spanContext().spanId,
    },
    link,
    startMs: t0,
  };
}

async function main(argv) {
  if (argv.length < 3 || argv.length > 4) {
    console.error(USAGE);
    return 2;
  }
  const [endpoint, protocol, service, token] = argv;
  diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN);
  if (!PROTOCOLS.includes(protocol)) {
    console.error(`unknown protocol ${JSON.stringify(protocol)}: use ${PROTOCOLS.join(", ")}\n${USAGE}`);
    return 2;
  }
  const exporter = await makeExporter(endpoint, protocol, token);
  const provider = new BasicTracerProvider({
    resource: defaultResource().merge(
      resourceFromAttributes({ [ATTR_SERVICE_NAME]: service, [ATTR_SERVICE_VERSION]: "1.2.3" }),
    ),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const made = makeTrace(provider.getTracer("cvtrace-interop", "0.1.0"));
  let failed = false;
  try {
    await provider.forceFlush();
  } catch (errors) {
    failed = true;
    for (const error of [errors].flat()) {
      console.error(`export failed: ${error?.name ?? "Error"} code=${error?.code} ${error?.message ?? error}`);
    }
  }
  await provider.shutdown();
  console.log(JSON.stringify(made));
  return failed ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
