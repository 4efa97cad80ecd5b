// The peer baseline of bench/run: graphile-worker doing the observer's job.
// A row trigger adds one `post_event` job per inserted row (see PEER_SQL in
// bench/run.py); this task POSTs the row's id and capture time to the sink.
//
//   node worker.js --migrate     install graphile-worker's schema, exit
//   node worker.js               run until SIGTERM/SIGINT
//
// Environment: DATABASE_URL, SINK_URL, CONCURRENCY (default 10),
// POLL_INTERVAL_MS (default graphile-worker's 2000; new jobs wake workers by
// LISTEN/NOTIFY, the poll only covers future/retried jobs).
"use strict";
const { run, runMigrations } = require("graphile-worker");

const connectionString = process.env.DATABASE_URL;
const sinkUrl = process.env.SINK_URL;
const concurrency = parseInt(process.env.CONCURRENCY || "10", 10);
const pollInterval = parseInt(process.env.POLL_INTERVAL_MS || "2000", 10);

// Quiet: errors only (graphile-worker logs every job at info level otherwise).
const logFactory = (scope) => (level, message) => {
  if (level === "error") console.error(`[graphile-worker] ${message}`);
};
const { Logger } = require("graphile-worker");
const logger = new Logger(logFactory);

const taskList = {
  post_event: async (payload) => {
    const body = JSON.stringify({
      id: payload.id,
      event_type: "INSERT",
      entity_type: "Item",
      entity_id: String(payload.entity_id),
      timestamp: payload.created_at,
      data: payload.data ?? null,
    });
    // Node's fetch keeps connections alive (undici's global pool).
    const res = await fetch(sinkUrl, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "Idempotency-Key": `${payload.id}:graphile:0`,
      },
      body,
    });
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`sink answered HTTP ${res.status}`);
  },
};

async function main() {
  if (!connectionString) throw new Error("DATABASE_URL is not set");
  if (process.argv.includes("--migrate")) {
    await runMigrations({ connectionString, logger });
    return;
  }
  if (!sinkUrl) throw new Error("SINK_URL is not set");
  const runner = await run({
    connectionString,
    concurrency,
    pollInterval,
    logger,
    taskList,
  });
  await runner.promise;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
