"""FastPay on loopback: latency, confirmed transfers per second, one authority's orders per
second as 1 and as 2 shards (meshpay/shards.py) against the ed25519 verify+sign rate of the same
run, and how fast an authority killed with SIGKILL under load catches up after its restart.

    python bench/bench_fastpay.py [--transfers 200] [--orders 20000] [--repeats 3]
    python bench/bench_fastpay.py --only shards      # just the shard runs
    python bench/bench_fastpay.py --only catchup     # just the SIGKILL + restart run

Starts local networks with meshpay.localnet, prints figures and writes bench/results/fastpay.json
(or --out). Not a test: numbers depend on the machine and on what else runs on it (the load
average is recorded with each run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from meshpay import wire as codec
from meshpay.crypto import KeyPair
from meshpay.localnet import LocalNet
from meshpay.shards import shard_of
from meshpay.messages import Vote, sign_order


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def post_transfer(net: LocalNet, sender: str, to: str) -> tuple[float, dict]:
    start = time.perf_counter()
    status, body = net.request(sender, "POST", "/transfers", {"to": to, "amount": 1})
    elapsed = (time.perf_counter() - start) * 1000
    if status != 200 or body.get("outcome") != "confirmed":
        raise RuntimeError(f"transfer failed: {status} {body}")
    return elapsed, body


def latency_and_one_client(net: LocalNet, count: int) -> dict:
    http_ms, total_ms, cert_ms = [], [], []
    start = time.perf_counter()
    for i in range(count):
        elapsed, body = post_transfer(net, "client1", "client2")
        http_ms.append(elapsed)
        total_ms.append(body["latency_ms"]["total"])
        cert_ms.append(body["latency_ms"]["certificate"])
    seconds = time.perf_counter() - start
    return {
        "transfers": count,
        "transfers_per_second": round(count / seconds, 1),
        "latency_ms": {
            "http_round_trip": {"p50": round(percentile(http_ms, 50), 2), "p99": round(percentile(http_ms, 99), 2)},
            "order_to_confirmed": {"p50": round(percentile(total_ms, 50), 2), "p99": round(percentile(total_ms, 99), 2)},
            "order_to_certificate": {"p50": round(percentile(cert_ms, 50), 2), "p99": round(percentile(cert_ms, 99), 2)},
        },
    }


def many_clients(net: LocalNet, per_client: int, in_flight: int) -> dict:
    names = [c.name for c in net.clients]
    jobs = [(names[i % len(names)], names[(i + 1) % len(names)]) for i in range(per_client * len(names))]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        results = list(pool.map(lambda j: post_transfer(net, *j), jobs))
    seconds = time.perf_counter() - start
    totals = [b["latency_ms"]["total"] for _, b in results]
    return {
        "clients": len(names),
        "requests_in_flight": in_flight,
        "transfers": len(jobs),
        "transfers_per_second": round(len(jobs) / seconds, 1),
        "order_to_confirmed_ms": {"p50": round(percentile(totals, 50), 2), "p99": round(percentile(totals, 99), 2)},
    }


async def _drive_shard(host: str, port: int, frames: list[bytes], window: int, sample: set[int]) -> dict:
    """Send pre-encoded order frames to one shard over one connection, `window` in flight, and
    count the replies by their message type; replies whose request id is in `sample` are kept
    whole, to be decoded and checked after the timed run."""
    reader, writer = await asyncio.open_connection(host, port)
    votes = refused = 0
    kept: list[bytes] = []
    sent = 0
    try:
        writer.write(b"".join(frames[:window]))
        sent = min(window, len(frames))
        for _ in range(len(frames)):
            head = await reader.readexactly(4)
            payload = await reader.readexactly(int.from_bytes(head, "big"))
            # payload: version u8 | type u8 | request id u32 | body (meshpay/wire.py)
            if payload[1] == codec.T_VOTE:
                votes += 1
            else:
                refused += 1
            if int.from_bytes(payload[2:6], "big") in sample:
                kept.append(payload)
            if sent < len(frames):
                writer.write(frames[sent])
                sent += 1
    finally:
        writer.close()
    return {"votes": votes, "refused": refused, "kept": kept}


def shard_throughput(tmp: str, shards: int, orders: int, window: int = 256, connections_per_shard: int = 2) -> dict:
    """One authority of `shards` shard processes (meshpay/shards.py) on loopback, sent `orders`
    transfer orders from distinct funded accounts, pipelined over its binary wire; the load
    generator is this process, on the same two cores.

    Orders are signed and encoded before the clock starts, so the generator spends its CPU on
    the sockets only. Each reply is counted by its type byte (a vote, or a refusal); 1 % of the
    votes, chosen in advance, are decoded after the run and their signatures checked, so what
    was counted as a vote is one. Figures per shard: orders per second of wall clock and per CPU
    second of that shard's process (from /proc)."""
    keys = [KeyPair.generate() for _ in range(orders)]
    net = LocalNet(tmp, authorities=4, clients=1, balance=10, shards=shards)
    for k in keys:
        net.genesis[k.public_key.hex()] = 10
    net.write_configs()
    procs = net.shards_of("auth1")
    auth = procs[0]
    authority_key = auth.keypair.public_key
    recipient = net.nodes["client1"].keypair.public_key
    per_shard: list[list[bytes]] = [[] for _ in range(shards)]
    signed = []
    for i, k in enumerate(keys):
        order = sign_order(k, recipient, 1, 0)
        signed.append(order)
        per_shard[shard_of(k.public_key, shards)].append(codec.encode_frame(i, order))
    sample = set(range(0, orders, 100))
    for node in procs:
        net.start(node.name)
    try:
        net.wait_ready([n.name for n in procs], timeout=180)
        cpu_before = [process_cpu_seconds(n.process.pid) for n in procs]
        gen_before = time.process_time()

        async def run() -> list[dict]:
            jobs = []
            for shard, frames in enumerate(per_shard):
                for c in range(connections_per_shard):
                    jobs.append(_drive_shard(auth.host, auth.wire_port + shard, frames[c::connections_per_shard], window, sample))
            return await asyncio.gather(*jobs)

        start = time.perf_counter()
        results = asyncio.run(run())
        seconds = time.perf_counter() - start
        generator_cpu = time.process_time() - gen_before
        cpu = [process_cpu_seconds(n.process.pid) - b for n, b in zip(procs, cpu_before)]
    finally:
        for node in procs:
            net.stop(node.name)
    checked = 0
    by_sender = {o.sender: o for o in signed}
    for payload in (p for r in results for p in r["kept"]):
        _, vote = codec.decode_payload(payload)
        if (not isinstance(vote, Vote) or vote.authority != authority_key or by_sender.get(vote.order.sender) != vote.order
                or not vote.has_valid_signature()):
            raise RuntimeError(f"a reply counted as a vote is not auth1's valid vote on an order sent: {vote!r}")
        checked += 1
    votes = sum(r["votes"] for r in results)
    shard_rows = []
    for shard in range(shards):
        shard_votes = sum(r["votes"] for i, r in enumerate(results) if i // connections_per_shard == shard)
        shard_rows.append({"shard": shard, "orders": len(per_shard[shard]), "votes": shard_votes,
                           "cpu_seconds": round(cpu[shard], 3),
                           "orders_per_cpu_second": round(shard_votes / cpu[shard], 1) if cpu[shard] else None})
    return {
        "shards": shards,
        "orders": orders,
        "connections_per_shard": connections_per_shard,
        "window_per_connection": window,
        "votes": votes,
        "refused": sum(r["refused"] for r in results),
        "votes_decoded_and_verified": checked,
        "seconds": round(seconds, 3),
        "orders_per_second_wall_clock": round(votes / seconds, 1),
        "authority_cpu_seconds": round(sum(cpu), 3),
        # Cores the shard processes got over the run: below `shards`, something else on the
        # machine (or the load generator) held the rest.
        "authority_cores_used": round(sum(cpu) / seconds, 2),
        "orders_per_authority_cpu_second": round(votes / sum(cpu), 1) if sum(cpu) else None,
        "load_generator_cpu_seconds": round(generator_cpu, 3),
        "per_shard": shard_rows,
    }


def shard_scaling(orders: int, repeats: int) -> dict:
    """One authority as 1 shard and as 2 shards, `repeats` runs each, interleaved (1, 2, 1, 2,
    ...) so that other load on the machine falls on both alike; around every run the ed25519
    verify+sign rate of this machine is measured (`verify_sign_rate`, same library and calls as
    the authority). Per shard: orders per CPU second of the shard's process / that rate (issue
    17: >= 0.6), and by wall clock orders per second per shard / that rate; scaling: the median
    wall-clock rate of 2 shards over that of 1 shard (issue 17: >= 1.6)."""
    runs = []
    for _ in range(repeats):
        for shards in (1, 2):
            rate_before = verify_sign_rate()
            with tempfile.TemporaryDirectory(prefix=f"meshpay-shards{shards}-") as tmp:
                run = shard_throughput(tmp, shards, orders)
            rate = (rate_before + verify_sign_rate()) / 2
            run["verify_sign_per_cpu_second_same_run"] = round(rate, 1)
            run["load_average_after"] = os.getloadavg()[0]
            for row in run["per_shard"]:
                row["ratio_to_verify_sign_per_cpu_second"] = round(row["orders_per_cpu_second"] / rate, 3)
            run["ratio_to_verify_sign_wall_clock_per_shard"] = round(run["orders_per_second_wall_clock"] / shards / rate, 3)
            runs.append(run)
            print(f"  {shards} shard(s): {run['orders_per_second_wall_clock']} orders/s wall clock, per shard "
                  f"{[r['orders_per_cpu_second'] for r in run['per_shard']]} orders per CPU second; verify+sign {rate:.0f}/s; "
                  f"ratios {[r['ratio_to_verify_sign_per_cpu_second'] for r in run['per_shard']]} per CPU second, "
                  f"{run['ratio_to_verify_sign_wall_clock_per_shard']} by wall clock; the shards got {run['authority_cores_used']} "
                  f"cores; load {run['load_average_after']:.2f}", flush=True)

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    one = [r for r in runs if r["shards"] == 1]
    two = [r for r in runs if r["shards"] == 2]
    return {
        "orders_per_run": orders,
        "repeats": repeats,
        "runs": runs,
        "median": {
            "verify_sign_per_cpu_second": median([r["verify_sign_per_cpu_second_same_run"] for r in runs]),
            "one_shard_orders_per_second_wall_clock": median([r["orders_per_second_wall_clock"] for r in one]),
            "two_shards_orders_per_second_wall_clock": median([r["orders_per_second_wall_clock"] for r in two]),
            "ratio_per_cpu_second_one_shard": median([r["per_shard"][0]["ratio_to_verify_sign_per_cpu_second"] for r in one]),
            "ratio_per_cpu_second_two_shards_each": median([x["ratio_to_verify_sign_per_cpu_second"] for r in two for x in r["per_shard"]]),
            "ratio_wall_clock_one_shard": median([r["ratio_to_verify_sign_wall_clock_per_shard"] for r in one]),
            "ratio_wall_clock_two_shards_each": median([r["ratio_to_verify_sign_wall_clock_per_shard"] for r in two]),
            "scaling_two_shards_wall_clock": round(statistics.median([r["orders_per_second_wall_clock"] for r in two])
                                                   / statistics.median([r["orders_per_second_wall_clock"] for r in one]), 3),
        },
        "targets": {"ratio_per_shard": 0.6, "scaling_two_shards": 1.6},
    }


def _sequences(net: LocalNet, auth: str) -> dict[str, int]:
    status, body = net.request(auth, "GET", "/accounts", timeout=30)
    if status != 200:
        raise RuntimeError(f"GET /accounts on {auth}: {status} {body}")
    return {a["id"]: a["next_sequence"] for a in body}


def _lacking(mine: dict[str, int], peers: list[dict[str, int]]) -> int:
    """Certificates held by some peer and not by `mine`. An authority applies a sender's
    certificates in sequence order, so it holds (sender, n) exactly when next_sequence > n."""
    held: dict[str, int] = {}
    for view in peers:
        for key, seq in view.items():
            held[key] = max(held.get(key, 0), seq)
    return sum(max(0, seq - mine.get(key, 0)) for key, seq in held.items())


def catch_up_after_sigkill(tmp: str, clients: int, warmup: float, down: float, loaded: float, bound: float) -> dict:
    """SIGKILL one authority under load from `clients` clients, restart it `down` s later and
    measure (a) while the load goes on for `loaded` s: the first time it holds every certificate
    its peers held 1 s before (a certificate younger than 1 s may still be on its way to
    everyone); (b) after the load stops: the time until it holds every certificate its peers hold."""
    net = LocalNet(tmp, authorities=4, clients=clients, balance=10**9)
    net.start_all(timeout=180)
    victim, peers = "auth4", ["auth1", "auth2", "auth3"]
    stop = threading.Event()
    confirmed = [0]

    def load(sender: str, to: str) -> None:
        while not stop.is_set():
            status, _ = net.request(sender, "POST", "/transfers", {"to": to, "amount": 1}, timeout=60)
            confirmed[0] += status == 200

    names = [c.name for c in net.clients]
    # Two requests in flight per client: a client takes one transfer at a time, the next queues.
    threads = [threading.Thread(target=load, args=(n, names[(i + 1) % len(names)]), daemon=True)
               for i, n in enumerate(names) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        time.sleep(warmup)
        at_kill = _lacking({}, [_sequences(net, p) for p in peers])
        net.kill(victim)
        time.sleep(down)
        before_restart = _lacking({}, [_sequences(net, p) for p in peers])
        net.start(victim)
        restarted = time.monotonic()
        net.wait_ready([victim], timeout=60)
        ready_s = time.monotonic() - restarted
        history: list[tuple[float, list[dict[str, int]]]] = []
        under_load_s = None
        lacking_trace = []
        while time.monotonic() - restarted < loaded:
            now = time.monotonic()
            history.append((now, [_sequences(net, p) for p in peers]))
            mine = _sequences(net, victim)
            old = [views for t, views in history if t <= now - 1.0]
            if old:
                missing = _lacking(mine, old[-1])
                lacking_trace.append((round(now - restarted, 2), missing))
                if under_load_s is None and missing == 0:
                    under_load_s = now - restarted
            time.sleep(0.25)
        confirmed_under_load = confirmed[0]
        stop.set()
        for t in threads:
            t.join(timeout=120)
        stopped = time.monotonic()
        after_stop_s = None
        while time.monotonic() - stopped < bound:
            missing = _lacking(_sequences(net, victim), [_sequences(net, p) for p in peers])
            if missing == 0:
                after_stop_s = time.monotonic() - stopped
                break
            time.sleep(0.1)
        metrics = net.request(victim, "GET", "/metrics")[1]
        wanted = ("meshpay_catchup_total", "meshpay_lag_waits_total", "meshpay_replays_total", "meshpay_confirmations_applied_total")
        counters = {line.split(" ")[0]: float(line.split(" ")[1]) for line in metrics.splitlines()
                    if line.startswith(wanted)}
        certificates = sum(_sequences(net, "auth1").values())
    finally:
        stop.set()
        net.stop_all()
    return {
        "clients": clients,
        "load_before_kill_s": warmup,
        "down_s": down,
        "peer_certificates_at_kill": at_kill,
        "peer_certificates_at_restart": before_restart,
        "restart_to_healthy_s": round(ready_s, 2),
        "load_after_restart_s": loaded,
        "confirmed_transfers_during_run": confirmed_under_load,
        "caught_up_under_load_s": None if under_load_s is None else round(under_load_s, 2),
        "caught_up_after_load_stopped_s": None if after_stop_s is None else round(after_stop_s, 2),
        "certificates_at_end": certificates,
        "lacking_trace_s_count": lacking_trace[:40],
        "victim_counters": counters,
        "targets": {"under_load_s": 30, "after_load_stopped_s": 10},
    }


def verify_sign_rate(count: int = 3000) -> float:
    """ed25519 verifications of an order plus signatures of a vote per second, one core, in
    process: the ceiling an authority's order rate is compared with (issue 17's ratio)."""
    keys = [KeyPair.generate() for _ in range(64)]
    signer = KeyPair.generate()
    orders = [sign_order(keys[i % 64], signer.public_key, 1, i) for i in range(count)]
    start = time.process_time()
    for order in orders:
        order.has_valid_signature()
        signer.sign(order.vote_signing_bytes())
    return count / (time.process_time() - start)


def authority_profile(count: int) -> dict:
    """Cost of each step of voting on one order, in process, to explain the wire figure."""
    from meshpay.authority import Account, Authority
    from meshpay.committee import AuthorityInfo, Committee
    from meshpay.store import Store
    from meshpay import wire as codec

    keys = [KeyPair.generate() for _ in range(count)]
    authority_key = KeyPair.generate()
    authority = Authority(authority_key, Committee([AuthorityInfo("a", authority_key.public_key, 1, "h", 1)]))
    orders = [sign_order(k, authority_key.public_key, 1, 0) for k in keys]
    payloads = [codec.encode_frame(i, o)[4:] for i, o in enumerate(orders)]
    steps: dict[str, float] = {}

    def timed(name: str, fn) -> list:
        start = time.perf_counter()
        out = [fn(i) for i in range(count)]
        steps[name] = round((time.perf_counter() - start) / count * 1e6, 1)
        return out

    with tempfile.TemporaryDirectory(prefix="meshpay-profile-") as tmp:
        store = Store(Path(tmp) / "state.db")
        store.ensure_genesis({k.public_key: 10 for k in keys})
        timed("decode_order", lambda i: codec.decode_payload(payloads[i]))
        timed("verify_client_signature", lambda i: orders[i].has_valid_signature())
        timed("read_account", lambda i: store.account(orders[i].sender))
        timed("sign_vote", lambda i: authority_key.sign(orders[i].vote_signing_bytes()))
        results = timed("handle_order_total_pure", lambda i: authority.handle_order(Account(10), orders[i]))
        timed("commit_lock", lambda i: store.commit({orders[i].sender: results[i][0]}))
        timed("encode_vote", lambda i: codec.encode_frame(1, results[i][1]))
        store.close()
    per_order = steps["decode_order"] + steps["read_account"] + steps["handle_order_total_pure"] + steps["commit_lock"] + steps["encode_vote"]
    return {"microseconds_per_step": steps, "microseconds_per_order": round(per_order, 1), "ceiling_orders_per_second_one_core": round(1e6 / per_order, 1)}


def _machine() -> dict:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
            "load_average_at_end": os.getloadavg()}


def _write(path: str, result: dict) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


def _report_shards(orders: int, repeats: int) -> dict:
    print(f"one authority over its wire, 1 shard and 2 shards, {orders} orders per run, {repeats} runs each:", flush=True)
    scaling = shard_scaling(orders, repeats)
    m = scaling["median"]
    print(f"  median per shard: {m['ratio_per_cpu_second_one_shard']} (1 shard) and {m['ratio_per_cpu_second_two_shards_each']} "
          f"(2 shards) of the verify+sign rate {m['verify_sign_per_cpu_second']:.0f}/s per CPU second (target 0.6); by wall "
          f"clock {m['ratio_wall_clock_one_shard']} and {m['ratio_wall_clock_two_shards_each']}")
    print(f"  two shards over one, wall clock: {m['scaling_two_shards_wall_clock']}x ({m['two_shards_orders_per_second_wall_clock']:.0f} "
          f"vs {m['one_shard_orders_per_second_wall_clock']:.0f} orders/s; target 1.6x)")
    return scaling


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=200, help="sequential transfers for latency")
    parser.add_argument("--per-client", type=int, default=60, help="transfers per client in the many-client run")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--orders", type=int, default=20000, help="orders per run of the shard throughput runs")
    parser.add_argument("--repeats", type=int, default=3, help="runs of 1 shard and of 2 shards each (interleaved)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "fastpay.json"))
    parser.add_argument("--only", choices=["catchup", "shards"], help="run one part only (its JSON goes to --out)")
    parser.add_argument("--catchup-load", type=float, default=40.0, help="seconds of load after the restart")
    args = parser.parse_args()

    if args.only == "shards":
        scaling = _report_shards(args.orders, args.repeats)
        _write(args.out, {"shards": scaling, "machine": _machine()})
        return 0
    with tempfile.TemporaryDirectory(prefix="meshpay-catchup-") as tmp:
        catchup = catch_up_after_sigkill(tmp, clients=3, warmup=15.0, down=1.0, loaded=args.catchup_load, bound=120.0)
    print(f"catch-up after SIGKILL + restart under load ({catchup['clients']} clients, "
          f"peers held {catchup['peer_certificates_at_kill']} certificates at the kill, {catchup['peer_certificates_at_restart']} at the restart):")
    print(f"  holds every certificate its peers held 1 s earlier, load still running: {catchup['caught_up_under_load_s']} s after restart (target 30 s)")
    print(f"  holds every certificate its peers hold after the load stopped:          {catchup['caught_up_after_load_stopped_s']} s after the stop (target 10 s)")
    print(f"  victim counters: {catchup['victim_counters']}")
    if args.only == "catchup":
        _write(args.out, {"catch_up": catchup, "machine": _machine()})
        return 0

    with tempfile.TemporaryDirectory(prefix="meshpay-bench-") as tmp:
        net = LocalNet(tmp, authorities=4, clients=args.clients, balance=10**9)
        start = time.perf_counter()
        net.start_all(timeout=180)
        startup = time.perf_counter() - start
        try:
            for _ in range(5):  # warm connections and caches
                post_transfer(net, "client1", "client2")
            one = latency_and_one_client(net, args.transfers)
            many = many_clients(net, args.per_client, in_flight=2 * args.clients)
        finally:
            net.stop_all()
    scaling = _report_shards(args.orders, args.repeats)
    profile = authority_profile(min(args.orders, 3000))
    result = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
        "network": {"authorities": 4, "clients": args.clients, "transport": "loopback 127.0.0.x"},
        "startup_seconds_all_nodes": round(startup, 2),
        "one_client": one,
        "many_clients": many,
        "shards": scaling,
        "authority_profile_in_process": profile,
        "catch_up": catchup,
        "load_average_at_end": os.getloadavg(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    lat = one["latency_ms"]
    print(f"latency (order -> quorum confirmed, inside client): p50 {lat['order_to_confirmed']['p50']} ms  p99 {lat['order_to_confirmed']['p99']} ms")
    print(f"latency (HTTP POST /transfers round trip):          p50 {lat['http_round_trip']['p50']} ms  p99 {lat['http_round_trip']['p99']} ms")
    print(f"latency (order -> certificate):                     p50 {lat['order_to_certificate']['p50']} ms  p99 {lat['order_to_certificate']['p99']} ms")
    print(f"one client, sequential:   {one['transfers_per_second']} confirmed transfers/s")
    print(f"{args.clients} clients, concurrent:   {many['transfers_per_second']} confirmed transfers/s")
    print(f"in-process profile (us per order step): {profile['microseconds_per_step']}")
    print(f"  -> pure-Python ceiling on one core: {profile['ceiling_orders_per_second_one_core']} orders/s")
    print(f"load average: {result['load_average_at_end']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
