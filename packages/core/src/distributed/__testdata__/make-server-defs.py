"""Reference ServerDef bytes for server-def.test.ts, made by TensorFlow's own protobuf classes.

Run with a Python that has tensorflow-cpu 2.21 (pip from the local index):
    python make-server-defs.py > server-defs.json
Each case is a TF_CONFIG and the ServerDef that vrepa's initDistributed must send to TFE_EnableCollectiveOps:
the cluster from TF_CONFIG, this task's job and index, protocol grpc, this task's port, and the session config
MultiWorkerMirroredStrategy sets for collectives (collective_group_leader; device_filters to this task).
"""
import json

import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, tensorflow_server_pb2
from tensorflow.python.distribute import multi_worker_util

CASES = [
    {"cluster": {"worker": ["localhost:23456", "localhost:23457"]}, "task": {"type": "worker", "index": 0}},
    {"cluster": {"worker": ["localhost:23456", "localhost:23457"]}, "task": {"type": "worker", "index": 1}},
    {"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222", "10.0.0.3:2222"]}, "task": {"type": "worker", "index": 2}},
    {"cluster": {"chief": ["host-a.example:3000"], "worker": ["host-b.example:3001", "host-c.example:3002"]},
     "task": {"type": "worker", "index": 0}},
    {"cluster": {"chief": ["host-a.example:3000"], "worker": ["host-b.example:3001"]}, "task": {"type": "chief", "index": 0}},
    {"cluster": {"worker": ["[::1]:40000"]}, "task": {"type": "worker", "index": 0}},
]

out = []
for case in CASES:
    spec = tf.train.ClusterSpec(case["cluster"])
    task_type, task_id = case["task"]["type"], case["task"]["index"]
    config = config_pb2.ConfigProto()
    config.experimental.collective_group_leader = multi_worker_util.collective_leader(spec, task_type, task_id)
    config.device_filters.append("/job:%s/task:%d" % (task_type, task_id))
    port = int(case["cluster"][task_type][task_id].rsplit(":", 1)[1])
    server_def = tensorflow_server_pb2.ServerDef(
        cluster=spec.as_cluster_def(), default_session_config=config, job_name=task_type,
        task_index=task_id, protocol="grpc", port=port)
    out.append({"tfConfig": case, "hex": server_def.SerializeToString(deterministic=True).hex(),
                "text": str(server_def)})
print(json.dumps({"tensorflow": tf.__version__, "cases": out}, indent=1))
