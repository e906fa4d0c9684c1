#!/usr/bin/env bash
# Checks the checker: each mutation below breaks a copy of the deploy files the way a careless
# edit would, and check_deploy.py must fail on it with the given text. Not in ctest (each run
# asks every binary for its flags, ~6 s, x24); run it after changing check_deploy.py:
#   tests/unit/deploy/mutations.sh [BIN_DIR]      (default build/bin; exit 1 if any survives)
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
BIN=${1:-build/bin}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILED=0
run() {  # DESC FILE PYTHON-EXPR-ON-s EXPECTED
  rm -rf "$WORK/root" && mkdir -p "$WORK/root" && cp -r fraud deploy docker-compose.yml CMakeLists.txt "$WORK/root/"
  python3 -c "
p='$WORK/root/$2'; s=open(p).read(); s2=$3
assert s2!=s, 'mutation did not apply'; open(p,'w').write(s2)" || { echo "BAD MUTATION: $1"; FAILED=1; return; }
  out=$(python3 tests/unit/deploy/check_deploy.py "$WORK/root" "$BIN" 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -qF -- "$4" <<<"$out"; then echo "ok   (exit $rc) $1: $(grep -F -- "$4" <<<"$out" | head -1 | cut -c1-150)"; else echo "FAIL (exit $rc) $1"; echo "$out" | tail -3; FAILED=1; fi
}
R=deploy/render/render.yaml
run "fromService to an unknown service" $R "s.replace('name: fraud-storage, type: pserv','name: fraud-storag, type: pserv',1)" "refers to unknown service fraud-storag"
run "fromService with the wrong type" $R "s.replace('name: fraud-inference, type: pserv','name: fraud-inference, type: web',1)" "as type web, but it is pserv"
run "fromService property host for a target" $R "s.replace('name: fraud-training, type: pserv, property: hostport','name: fraud-training, type: pserv, property: host',1)" "needs property hostport"
run "target pointing at the wrong service" $R "s.replace('FRAUD_INGEST_TARGET\n        fromService: { name: fraud-ingest','FRAUD_INGEST_TARGET\n        fromService: { name: fraud-storage',1)" "which runs 'fraud-storage'"
run "env var that is no flag" $R "s.replace('key: FRAUD_MODEL_DIR','key: FRAUD_MODEL_DIRECTORY',1)" "sets --model_directory, which fraud-inference does not have"
run "disk on training" $R "s.replace('    dockerCommand: fraud-training\n    plan: starter\n','    dockerCommand: fraud-training\n    plan: starter\n    disk: { name: models, mountPath: /tmp/fraud-models, sizeGB: 1 }\n',1)" "only inference may keep"
run "inference disk not at its model dir" $R "s.replace('    dockerCommand: fraud-inference\n    plan: starter\n','    dockerCommand: fraud-inference\n    plan: starter\n    disk: { name: models, mountPath: /models, sizeGB: 1 }\n',1)" "not at FRAUD_MODEL_DIR"
run "model dir neither disk nor /tmp" $R "s.replace('value: /tmp/fraud-models','value: /models',1)" "neither on a disk nor under /tmp"
run "healthCheckPath the gateway does not serve" $R "s.replace('healthCheckPath: /healthz','healthCheckPath: /health',1)" "healthCheckPath /health is not a GET route"
run "healthCheckPath on a private service" $R "s.replace('    dockerCommand: fraud-ingest\n','    dockerCommand: fraud-ingest\n    healthCheckPath: /healthz\n',1)" "healthCheckPath is for web services only"
run "gRPC service as web" $R "s.replace('type: pserv\n    name: fraud-storage','type: web\n    name: fraud-storage',1)" "expected pserv"
run "training on starter with a 624 MiB peak" $R "s.replace('|  390 | starter  |','|  624 | starter  |',1)" "the measured peak 624 MiB needs >= 780 MB"
run "plan differs from the memory table" $R "s.replace('    dockerCommand: fraud-training\n    plan: starter\n','    dockerCommand: fraud-training\n    plan: pro\n',1)" "differs from the memory table"
run "PORT not the gRPC port" $R "s.replace('key: PORT\n        value: \"50053\"','key: PORT\n        value: \"9103\"',1)" "is not FRAUD_PORT"
run "memory table row missing" $R "s.replace('#| fraud-ingest ','#  fraud-ingest ',1)" "no measured RSS row"
K=deploy/k8s
run "k8s RWX claim back" $K/00-config.yaml "s+'---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: fraud-models\nspec:\n  accessModes: [ReadWriteMany]\n  resources:\n    requests:\n      storage: 2Gi\n'" "is ReadWriteMany"
run "k8s inference model dir on a PVC" $K/inference.yaml "s.replace('emptyDir: { sizeLimit: 1Gi }','persistentVolumeClaim: { claimName: fraud-models }')" "uses unknown claim fraud-models"
run "k8s training without its emptyDir mount" $K/training.yaml "s.replace('mountPath: /models','mountPath: /scratch')" "nothing is mounted at FRAUD_MODEL_DIR"
run "k8s removed API version (kubectl)" $K/autoscaling.yaml "s.replace('apiVersion: autoscaling/v2\n','apiVersion: autoscaling/v2beta2\n',1)" "no matches for kind \"HorizontalPodAutoscaler\" in version \"autoscaling/v2beta2\""
run "k8s no PDB" $K/autoscaling.yaml "s[:s.index('---\napiVersion: policy/v1')]" "no PodDisruptionBudget for inference"
run "k8s no HPA for inference" $K/autoscaling.yaml "s.replace('name: fraud-inference }','name: fraud-ingest }',1)" "no HorizontalPodAutoscaler for fraud-inference"
run "private service on free" $R "s.replace('    dockerCommand: fraud-ingest\n    plan: starter','    dockerCommand: fraud-ingest\n    plan: free',1).replace('#| fraud-ingest     |   22 |    113 |  113 | starter  |','#| fraud-ingest     |   22 |    113 |  113 | free     |')" "private services have no free plan"
run "inference loses its storage target" $R "s.replace('      - key: FRAUD_ADMIN_TOKEN\n        sync: false\n      - key: FRAUD_STORAGE_TARGET\n        fromService: { name: fraud-storage, type: pserv, property: hostport }\n\n  # No disk: FRAUD_MODEL_DIR is scratch','      - key: FRAUD_ADMIN_TOKEN\n        sync: false\n\n  # No disk: FRAUD_MODEL_DIR is scratch',1)" "render.yaml:fraud-inference: targets [] differ"
run "k8s training limit below its peak" $K/training.yaml "s.replace('limits: { memory: 512Mi }','limits: { memory: 384Mi }')" "memory limit 384Mi is below the measured peak 390 MiB"
C=docker-compose.yml
run "compose volume shared by inference and training" $C "s.replace('      FRAUD_STORAGE_TARGET: storage:50052\n    # No volume','      FRAUD_STORAGE_TARGET: storage:50052\n    volumes: [\"models:/models\"]\n    # No volume',1).replace('FRAUD_AUTO_TRAIN: \"true\"\n','FRAUD_AUTO_TRAIN: \"true\"\n    volumes: [\"models:/models\"]\n',1).replace('  pgdata:\n','  pgdata:\n  models:\n')" "volume models is shared by ['inference', 'training']"
run "compose model cache read-only" $C "s.replace('      FRAUD_STORAGE_TARGET: storage:50052\n    # No volume','      FRAUD_STORAGE_TARGET: storage:50052\n    volumes: [\"icache:/models:ro\"]\n    # No volume',1).replace('  pgdata:\n','  pgdata:\n  icache:\n')" "model cache /models is mounted read-only"
exit $FAILED
