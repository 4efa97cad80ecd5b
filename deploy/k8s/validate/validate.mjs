// Validates rendered manifests (kubectl kustomize output on stdin) offline:
// every object against its Kubernetes schema (kubernetes-models: types,
// required fields, formats, enums), then what deploy/k8s promises: probes on
// /healthz and /readyz, resources, a non-root security context, a PDB per
// workload, the worker HPA, Secret references, config files that exist.
// Usage: node validate.mjs OVERLAY_NAME < rendered.yaml
import { parseAllDocuments } from "yaml";

const overlay = process.argv[2];
const input = await new Promise((resolve) => {
  let s = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (c) => (s += c));
  process.stdin.on("end", () => resolve(s));
});
const errors = [];
const fail = (what, msg) => errors.push(`${overlay}: ${what}: ${msg}`);
const docs = parseAllDocuments(input).map((d) => d.toJS()).filter(Boolean);
const id = (o) => `${o.kind}/${o.metadata?.name}`;

for (const o of docs) {
  const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : [null, o.apiVersion];
  const path = group ? `kubernetes-models/${group}/${version}/${o.kind}` : `kubernetes-models/${version}/${o.kind}`;
  let Model;
  try {
    Model = (await import(path))[o.kind];
  } catch (e) {
    fail(id(o), `no schema for ${o.apiVersion} ${o.kind}`);
    continue;
  }
  try {
    new Model(o).validate();
  } catch (e) {
    fail(id(o), e.message);
  }
}

const byKind = (k) => docs.filter((o) => o.kind === k);
const configMaps = Object.fromEntries(byKind("ConfigMap").map((c) => [c.metadata.name, c]));
const selects = (sel, labels) => Object.entries(sel || {}).every(([k, v]) => labels?.[k] === v);

for (const o of [...byKind("Deployment"), ...byKind("StatefulSet"), ...byKind("Job")]) {
  const pod = o.spec.template.spec;
  const ps = pod.securityContext || {};
  if (ps.runAsNonRoot !== true || !(ps.runAsUser > 0)) fail(id(o), "pod securityContext lacks runAsNonRoot / a non-zero runAsUser");
  for (const c of pod.containers) {
    const cs = c.securityContext || {};
    if (cs.allowPrivilegeEscalation !== false || !cs.capabilities?.drop?.includes("ALL"))
      fail(id(o), `container ${c.name}: allowPrivilegeEscalation must be false, capabilities drop ALL`);
    if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory || !c.resources?.limits?.memory)
      fail(id(o), `container ${c.name}: resources.requests cpu/memory and limits.memory required`);
    for (const e of c.env || []) {
      const ref = e.valueFrom?.secretKeyRef;
      if (ref && ref.name !== "fraiseql-observer") fail(id(o), `env ${e.name}: Secret ${ref.name}, expected fraiseql-observer`);
    }
    for (const m of c.volumeMounts || []) {
      const v = (pod.volumes || []).find((x) => x.name === m.name);
      if (!v && !(o.spec.volumeClaimTemplates || []).some((t) => t.metadata.name === m.name))
        fail(id(o), `mount ${m.name} has no volume`);
      if (v?.configMap) {
        const cm = configMaps[v.configMap.name];
        if (!cm) fail(id(o), `ConfigMap ${v.configMap.name} is not in the output`);
        else if (m.subPath && !(m.subPath in cm.data)) fail(id(o), `ConfigMap ${cm.metadata.name} has no ${m.subPath}`);
      }
    }
  }
  if (o.kind === "Deployment") {
    const c = pod.containers[0];
    if (c.livenessProbe?.httpGet?.path !== "/healthz") fail(id(o), "liveness probe is not /healthz");
    if (c.readinessProbe?.httpGet?.path !== "/readyz") fail(id(o), "readiness probe is not /readyz");
    if (!byKind("PodDisruptionBudget").some((p) => selects(p.spec.selector.matchLabels, o.spec.template.metadata.labels)))
      fail(id(o), "no PodDisruptionBudget selects its pods");
    if (!selects(o.spec.selector.matchLabels, o.spec.template.metadata.labels)) fail(id(o), "selector does not match its template");
  }
}
// Selectors must not overlap between workloads (one PDB, one Deployment each).
const workloads = [...byKind("Deployment"), ...byKind("StatefulSet")];
for (const a of workloads)
  for (const b of workloads)
    if (a !== b && selects(a.spec.selector.matchLabels, b.spec.template.metadata.labels))
      fail(id(a), `its selector also selects the pods of ${id(b)}`);

const deployments = byKind("Deployment").map((d) => d.metadata.name).sort();
const role = (d) => d.spec.template.spec.containers[0].args[1];
const want = {
  "postgres-only": { all: 1, bridge: 0, worker: 0, sts: [] },
  "postgres-redis": { all: 1, bridge: 0, worker: 0, sts: ["fraiseql-redis"] },
  "nats-distributed": { all: 0, bridge: 1, worker: 1, sts: ["fraiseql-nats", "fraiseql-redis"] },
  "multi-database": { all: 0, bridge: 3, worker: 1, sts: ["fraiseql-nats", "fraiseql-redis"] },
}[overlay];
if (!want) fail("overlay", "unknown overlay name");
else {
  for (const r of ["all", "bridge", "worker"]) {
    const n = byKind("Deployment").filter((d) => role(d) === r).length;
    if (n !== want[r]) fail("topology", `${n} Deployments with --role ${r}, expected ${want[r]}`);
  }
  for (const d of byKind("Deployment").filter((d) => role(d) !== "worker"))
    if (d.spec.replicas < 2) fail(id(d), "needs a standby (replicas >= 2)");
  const sts = byKind("StatefulSet").map((s) => s.metadata.name).sort();
  if (JSON.stringify(sts) !== JSON.stringify(want.sts)) fail("topology", `StatefulSets ${sts}, expected ${want.sts}`);
  if (want.worker) {
    const hpa = byKind("HorizontalPodAutoscaler").find((h) => h.spec.scaleTargetRef.name === "fraiseql-worker");
    if (!hpa) fail("topology", "no HPA for fraiseql-worker");
  }
  const jobs = byKind("Job").length;
  if (jobs !== Math.max(want.bridge, want.all)) fail("topology", `${jobs} migration Jobs`);
}

if (errors.length) {
  for (const e of errors) console.error(e);
  process.exit(1);
}
console.log(`${overlay}: ${docs.length} objects valid (${deployments.join(", ")})`);
