"""The names of the files in a lab directory, spelled once (lab/labdir.py builds paths from them).

    <lab>/state.json            what `up` made (plan, pids): for every other verb and `down`
    <lab>/lab.json              for people and scripts: every node's role, addresses, REST URL
    <lab>/token                 the REST API's bearer token (owner-only)
    <lab>/progress.log          `up`'s steps as it takes them (followed from the host on the VM route)
    <lab>/vm.json, vm.log       the VM of the VM route, if any, and its console
    <lab>/medium.json           what the medium simulates (positions, ranges, isolation, impairments)
    <lab>/medium-stats.json     the medium's counters, rewritten every STATS_INTERVAL_S
    <lab>/medium.log            the medium process's log
    <lab>/capture.json          a capture request the medium acts on
    <lab>/transfers.jsonl       one line per transfer the `transfer` verb ran
    <lab>/nodes/<node>/         node.json (NODE_JSON, owner-only), state.db, node.log
"""

STATE = "state.json"
LAB = "lab.json"
TOKEN = "token"
PROGRESS = "progress.log"
VM_RECORD = "vm.json"
VM_LOG = "vm.log"
MEDIUM_CONFIG = "medium.json"
MEDIUM_STATS = "medium-stats.json"
MEDIUM_LOG = "medium.log"
CAPTURE_REQUEST = "capture.json"
TRANSFER_LOG = "transfers.jsonl"
NODES_DIR = "nodes"
NODE_CONFIG = "node.json"
NODE_DB = "state.db"
NODE_LOG = "node.log"
