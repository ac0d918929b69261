// The custom resources of deploy/k8s (Strimzi's Kafka, KafkaNodePool, KafkaTopic; the
// Prometheus operator's PrometheusRule) validated against their CRDs' schemas, as packaged by
// kubernetes-models (installed from the npm registry by deploy/local/setup.sh). Usage:
//   node deploy/check/validate-crds.mjs FILE.yaml ...     (exit 1 on any failure or unknown kind)
import { readFileSync } from "node:fs";
import yaml from "js-yaml";
import * as strimzi from "@kubernetes-models/strimzi-kafka-operator";
import * as prom from "@kubernetes-models/prometheus-operator";
const groups = { "kafka.strimzi.io": strimzi.kafkaStrimziIo, "monitoring.coreos.com": prom.monitoringCoreosCom };
let failed = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(readFileSync(file, "utf8"))) {
    if (!doc) continue;
    const [group, version] = doc.apiVersion.split("/");
    const Model = groups[group]?.[version]?.[doc.kind];
    if (!Model) { console.log(`${file}: ${doc.kind} ${doc.apiVersion}: no schema`); failed++; continue; }
    try { new Model(doc).validate(); console.log(`ok ${file}: ${doc.kind}/${doc.metadata?.name}`); }
    catch (e) { failed++; console.log(`FAILED ${file}: ${doc.kind}/${doc.metadata?.name}: ${e.message}`); }
  }
}
process.exit(failed ? 1 : 0);

