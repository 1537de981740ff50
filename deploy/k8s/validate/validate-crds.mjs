// Validate custom resources (KEDA, Prometheus Operator) read as a JSON array from stdin
// against the OpenAPI schemas of their CRDs, as packaged by kubernetes-models. Prints a
// JSON array with one {kind, name, errors} per resource; exits 0 (the caller judges).
//   node validate-crds.mjs < resources.json
import { ScaledObject, ScaledJob, TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import { PodMonitor, ServiceMonitor, PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const MODELS = {
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "keda.sh/v1alpha1/ScaledJob": ScaledJob,
  "keda.sh/v1alpha1/TriggerAuthentication": TriggerAuthentication,
  "monitoring.coreos.com/v1/PodMonitor": PodMonitor,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
};

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const resources = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = resources.map((resource) => {
  const key = `${resource.apiVersion}/${resource.kind}`;
  const name = resource.metadata?.name ?? "";
  const Model = MODELS[key];
  if (!Model) return { kind: resource.kind, name, errors: [`no schema for ${key}`] };
  try {
    new Model(resource).validate();
    return { kind: resource.kind, name, errors: [] };
  } catch (error) {
    return { kind: resource.kind, name, errors: [String(error.message ?? error)] };
  }
});
process.stdout.write(JSON.stringify(results) + "\n");
