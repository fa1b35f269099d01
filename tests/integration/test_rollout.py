"""Issue 4 must-shows 2 and 3 against the real releasectl daemon: its supervisor
runs releasectl-demo-app releases in the blue / green slots, a keep-alive load
generator goes through the proxy and remembers every answer (status, X-Release,
when the request started and ended), and the CLI drives the rollouts.

  a) a good release walks 10 -> 50 -> 100 and `current` names it
  b) 10 % 5xx: rolled back at the first step within check_interval x
     failure_threshold + 1 s, and the live release never answered 5xx
  c) +3 s latency: rolled back on p95
  d) `releasectl rollback` under load: no request that started more than 10 ms
     after the command returned reached the candidate; zero failed requests
  e) kill -9 of the daemon mid-step, restart: same step, history kept, first 2xx
     within 1 s of spawning the new daemon, and the rollout then completes
  f) `releasectl demo --once`: one promotion, one automatic rollback with its numbers
plus the CLI's refusals and exit codes (1 refused, 2 unknown release, 3 unreachable)."""
import json
import os
import re
import signal
import subprocess
import tempfile
import time

from harness import (RELEASECTL, Checks, KeepAliveLoad, RolloutDaemon, expect, free_port, pid_gone, port_closed,
                     spawn, stop, write_demo_release)

CHECK_INTERVAL = 0.5
FAILURE_THRESHOLD = 2
ROLLBACK_BOUND = CHECK_INTERVAL * FAILURE_THRESHOLD + 1.0  # issue 4: check_interval x failure_threshold + 1 s
FLIP_BOUND = 0.010      # issue 4: new requests on live within 10 ms of `rollback` returning
RESTART_BOUND = 1.0     # issue 4: traffic flows again within 1 s of restart

checks = Checks()
work = tempfile.mkdtemp(prefix="releasectl-rollout-")
sources = {
    "v1": write_demo_release(os.path.join(work, "src/v1")),
    "v2": write_demo_release(os.path.join(work, "src/v2")),
    "v3-errors": write_demo_release(os.path.join(work, "src/v3-errors"), error_rate=0.1),
    "v4-slow": write_demo_release(os.path.join(work, "src/v4-slow"), extra_latency_ms=3000),
    "v5": write_demo_release(os.path.join(work, "src/v5")),
    "v6": write_demo_release(os.path.join(work, "src/v6")),
}
daemon = RolloutDaemon(rollout={
    "strategy": '"canary"',
    "steps": "[10, 50, 100]",
    "step_duration": '"1s"',
    "check_interval": f'"{int(CHECK_INTERVAL * 1000)}ms"',
    "min_requests": 10,
    "max_error_rate": 0.05,
    "max_p95": '"1s"',
    "failure_threshold": FAILURE_THRESHOLD,
    "rollback_window": '"1m"',
    "max_step_duration": '"1m"',
}, workers=2).start()
# 4 x 100 requests/s: the candidate sees ~40/s at 10 %, i.e. ~20 per check
# window, comfortably above min_requests.
load = None


def note(text):
    print(f"     {text}", flush=True)


def deploy(release, *extra, timeout=120):
    return daemon.cli("deploy", sources[release], "--release", release, *extra, timeout=timeout)


def rollout_of(state):
    return state.get("rollout") or {}


def slot_of(state, release):
    for slot in state["slots"]:
        if slot["release"] == release:
            return slot
    return None


def current_link():
    return os.readlink(os.path.join(daemon.root, "current"))


def check_lines(release):
    """The daemon's analysis log for one release (for failure messages)."""
    return [line.split("] ", 2)[-1] for line in daemon.log_text().splitlines() if f"check {release} " in line]


def answers_between(start, end=None):
    return [a for a in load.snapshot() if a.started >= start and (end is None or a.started <= end)]


def failures(answers):
    return [a for a in answers if not 200 <= a.status < 300]


def describe(answers, limit=5):
    by = {}
    for a in answers:
        by.setdefault((a.release or "-", a.status), 0)
        by[(a.release or "-", a.status)] += 1
    return ", ".join(f"{r}:{s}x{n}" for (r, s), n in sorted(by.items()))[:400] + \
        (f" e.g. {answers[:limit]}" if answers and limit else "")


# ------------------------------------------------------------------ refusals, first release

def test_refusals_before_any_release():
    code, _, err, _ = daemon.cli("promote")
    expect(code == 1, f"promote with no rollout: exit {code}, want 1 ({err.strip()})")
    expect("nothing to promote" in err, f"promote refusal message: {err.strip()}")
    code, _, err, _ = daemon.cli("deploy", "--release", "no-such-release")
    expect(code == 2, f"deploy of an unknown release id: exit {code}, want 2 ({err.strip()})")
    expect("unknown release" in err and "no-such-release" in err, f"unknown release message: {err.strip()}")
    proc = subprocess.run([RELEASECTL, "status", "--socket", os.path.join(work, "nobody-listens.sock")],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    expect(proc.returncode == 3, f"status with no daemon: exit {proc.returncode}, want 3")
    expect(b"serve" in proc.stderr, f"unreachable message should point at `releasectl serve`: {proc.stderr!r}")


def test_first_release_goes_live():
    global load
    code, out, err, _ = deploy("v1")
    expect(code == 0, f"first deploy exited {code}: {out} {err}")
    state = daemon.status()
    expect(state["current"] == "v1" and state["live_slot"], f"status after first deploy: {state}")
    expect(current_link() == "releases/v1", f"current -> {current_link()}")
    load = KeepAliveLoad(daemon.port, threads=4, per_thread_rps=100)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(a.release == "v1" for a in load.snapshot()):
        time.sleep(0.05)
    got = load.snapshot()
    expect(got and not failures(got), f"load on v1: {describe(got)}")


# ------------------------------------------------------------------ a) good release to 100 %

def test_a_good_release_reaches_100():
    start = time.monotonic()
    code, out, err, _ = deploy("v2")
    expect(code == 0, f"deploy v2 exited {code}:\n{out}\n{err}")
    expect("v2 promoted" in out, f"deploy output lacks the promotion: {out}")
    link = current_link()
    expect(link == "releases/v2", f"current -> {link}, want releases/v2")
    previous = os.readlink(os.path.join(daemon.root, "previous"))
    expect(previous == "releases/v1", f"previous -> {previous}, want releases/v1")
    state = daemon.status()
    ro = rollout_of(state)
    expect(state["current"] == "v2" and state["previous"] == "v1", f"status current/previous: {state}")
    expect(ro.get("release") == "v2" and ro.get("outcome") == "promoted", f"status rollout: {ro}")
    live = next(s for s in state["slots"] if s["name"] == state["live_slot"])
    expect(live["release"] == "v2" and live["weight"] == 100, f"live slot: {live}")
    percents = [r["percent"] for r in ro.get("step_records", [])]
    expect(percents == [10, 50, 100], f"steps walked: {percents}")
    time.sleep(0.3)
    seen = answers_between(start)
    expect(any(a.release == "v2" for a in seen), "the load never reached v2")
    expect(not failures(seen), f"failed requests during the good rollout: {describe(failures(seen))}")
    after = answers_between(time.monotonic() - 0.25)
    expect(after and all(a.release == "v2" for a in after), f"after promotion: {describe(after)}")
    note(f"{len(seen)} requests during the rollout, none failed; "
         f"{sum(a.release == 'v2' for a in seen)} answered by v2")


# ------------------------------------------------------------------ b) 10 % 5xx

def test_b_error_release_rolled_back_at_first_step():
    start = time.monotonic()
    code, out, err, _ = deploy("v3-errors")
    expect(code == 1, f"deploy v3-errors exited {code}, want 1 (rolled back):\n{out}\n{err}")
    expect("rolled back" in out and "error rate" in out, f"deploy output should say why: {out}")
    time.sleep(0.3)
    seen = answers_between(start)
    bad = [a for a in seen if a.release == "v3-errors"]
    rest = [a for a in seen if a.release != "v3-errors"]
    expect(bad, "the load never reached the candidate")
    exposure = max(a.started for a in bad) - min(a.started for a in bad)
    state = daemon.status()
    ro = rollout_of(state)
    records = ro.get("step_records", [])
    expect(ro.get("outcome") == "rolled_back" and state["phase"] == "rolled_back", f"status: {ro}")
    expect(len(records) == 1 and records[0]["percent"] == 10, f"rolled back at {records}, want the first step")
    expect("error rate" in ro.get("reason", ""), f"reason: {ro.get('reason')}")
    daemon_measured = (ro["finished_at"] - records[0]["started_at"]) / 1000.0
    note(f"candidate traffic from first to last request: {exposure * 1000:.0f} ms; daemon's step start -> "
         f"rollback: {daemon_measured * 1000:.0f} ms (bound {ROLLBACK_BOUND * 1000:.0f} ms); reason: {ro['reason']}")
    checks_seen = "\n".join(check_lines("v3-errors"))
    expect(exposure <= ROLLBACK_BOUND, f"candidate took traffic for {exposure:.3f}s > {ROLLBACK_BOUND}s; "
                                       f"checks:\n{checks_seen}")
    expect(daemon_measured <= ROLLBACK_BOUND, f"step start to rollback {daemon_measured:.3f}s > {ROLLBACK_BOUND}s; "
                                              f"checks:\n{checks_seen}")
    live_5xx = [a for a in rest if a.status >= 500 or a.status == 0]
    expect(not live_5xx, f"the live release failed requests: {describe(live_5xx)}")
    expect(all(a.release == "v2" for a in rest), f"non-candidate answers not from v2: {describe(rest)}")
    expect(current_link() == "releases/v2", f"current -> {current_link()}")
    releases = json.loads(daemon.cli("releases", "--json")[1])
    marked = [r for r in releases if r["id"] == "v3-errors"]
    expect(marked and "bad" in marked[0], f"v3-errors not marked bad: {marked}")
    note(f"candidate answered {len(bad)} requests ({sum(a.status >= 500 for a in bad)} x 5xx); "
         f"live answered {len(rest)}, all 2xx")


# ------------------------------------------------------------------ c) +3 s latency

def test_c_slow_release_rolled_back_on_p95():
    # Closed-loop clients each get stuck 3 s on the slow candidate, so more of
    # them are needed for a check window to reach min_requests.
    extra = KeepAliveLoad(daemon.port, threads=32, per_thread_rps=20)
    start = time.monotonic()
    try:
        code, out, err, _ = deploy("v4-slow", timeout=90)
    finally:
        extra_answers = extra.stop()
    expect(code == 1, f"deploy v4-slow exited {code}, want 1:\n{out}\n{err}")
    state = daemon.status()
    ro = rollout_of(state)
    expect(ro.get("outcome") == "rolled_back", f"outcome: {ro}")
    expect("p95" in ro.get("reason", ""), f"rollback reason should be p95: {ro.get('reason')}")
    expect(len(ro.get("step_records", [])) == 1, f"step records: {ro.get('step_records')}")
    took = (ro["finished_at"] - ro["step_records"][0]["started_at"]) / 1000.0
    note(f"rolled back {took:.1f}s after the step began: {ro['reason']}")
    time.sleep(0.5)
    seen = answers_between(start) + [a for a in extra_answers if a.started >= start]
    slow = [a for a in seen if a.release == "v4-slow"]
    expect(slow, "the load never reached the slow candidate")
    expect(not failures(seen), f"failed requests: {describe(failures(seen))}")
    expect(current_link() == "releases/v2", f"current -> {current_link()}")


# ------------------------------------------------------------------ d) manual rollback under load

def test_d_rollback_under_load_flips_within_10ms():
    start = time.monotonic()
    code, out, err, _ = deploy("v5", "--steps", "50,100", "--step-duration", "60s", "--detach")
    expect(code == 0, f"deploy --detach exited {code}: {out} {err}")
    daemon.wait_status(lambda s: s["phase"] == "running" and rollout_of(s).get("percent") == 50,
                       timeout=20, what="v5 at 50 %")
    # Refusals while it runs.
    code, _, err, _ = daemon.cli("deploy", "--release", "v1")
    expect(code == 1, f"deploy --release while a rollout runs: exit {code}, want 1 ({err.strip()})")
    expect("already in progress" in err, f"refusal message: {err.strip()}")
    code, _, err, _ = deploy("v6")
    expect(code == 1, f"deploy PATH while a rollout runs: exit {code}, want 1 ({err.strip()})")
    expect("already in progress" in err, f"refusal message: {err.strip()}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(a.release == "v5" for a in answers_between(start)) < 50:
        time.sleep(0.05)
    code, out, err, returned = daemon.cli("rollback")
    expect(code == 0, f"rollback exited {code}: {out} {err}")
    time.sleep(1.0)
    seen = answers_between(start)
    late = [a for a in seen if a.release == "v5" and a.started > returned + FLIP_BOUND]
    on_candidate = [a for a in seen if a.release == "v5"]
    last = max(a.started for a in on_candidate) - returned
    after = [a for a in seen if a.started > returned]
    note(f"{len(on_candidate)} requests on v5 before the rollback; last one started {last * 1000:+.1f} ms "
         f"relative to the CLI's return; {len(after)} requests after it, all on "
         f"{sorted(set(a.release for a in after))}")
    expect(not late, f"{len(late)} requests that started > 10 ms after `rollback` returned reached v5: {late[:5]}")
    expect(not failures(seen), f"failed requests around the rollback: {describe(failures(seen))}")
    expect(after and all(a.release == "v2" for a in after), f"after rollback: {describe(after)}")
    state = daemon.status()
    expect(state["phase"] == "rolled_back" and state["current"] == "v2", f"status after rollback: {state}")
    code, _, err, _ = daemon.cli("promote")
    expect(code == 1 and "nothing to promote" in err, f"promote after rollback: exit {code}: {err.strip()}")


# ------------------------------------------------------------------ e) kill -9 mid-step, restart

def test_e_kill9_mid_step_resumes():
    code, out, err, _ = deploy("v6", "--steps", "10,50,100", "--step-duration", "4s", "--detach")
    expect(code == 0, f"deploy --detach exited {code}: {out} {err}")
    daemon.wait_status(lambda s: s["phase"] == "running" and rollout_of(s).get("step") == 1,
                       timeout=30, what="v6 at step 2 (50 %)")
    time.sleep(1.5)  # in the middle of the 4 s step
    before = daemon.status()
    history_before = json.loads(daemon.cli("history", "--json")[1])
    app_pids = [s["pid"] for s in before["slots"] if s.get("pid")]
    expect(rollout_of(before).get("step") == 1 and before["phase"] == "running", f"before kill: {rollout_of(before)}")
    code = daemon.kill9()
    killed_at = time.monotonic()
    expect(code == -signal.SIGKILL, f"daemon exit status {code}")
    # PDEATHSIG takes the apps along. Wait for them to be gone, so that the
    # first 2xx below can only come from apps the new daemon started (the demo
    # app binds with SO_REUSEPORT: a dying old app could otherwise still answer).
    for pid in app_pids:
        expect(pid_gone(pid, timeout=15), f"app pid {pid} of the killed daemon still runs 15 s after kill -9")
    apps_gone_after = time.monotonic() - killed_at
    spawned_at = time.monotonic()
    daemon.start()
    listening_at = time.monotonic()
    deadline = spawned_at + 15
    first_ok = None
    while time.monotonic() < deadline and first_ok is None:
        ok = [a for a in answers_between(spawned_at) if 200 <= a.status < 300]
        first_ok = min(ok, key=lambda a: a.finished) if ok else None
        time.sleep(0.02)
    expect(first_ok is not None, "no 2xx through the proxy within 15 s of the restart")
    flowing = first_ok.finished - spawned_at
    # The admin socket left behind by the killed daemon: wait for the new one.
    deadline = time.monotonic() + 15
    while True:
        code, out, _, _ = daemon.cli("status", "--json", timeout=20)
        if code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    after = json.loads(out)
    ro = rollout_of(after)
    down = [a for a in answers_between(killed_at - 0.5) if a.started < spawned_at + flowing and a.status != 200]
    note(f"old apps gone {apps_gone_after * 1000:.0f} ms after kill -9; proxy listening {(listening_at - spawned_at) * 1000:.0f} ms after spawn; first 2xx "
         f"{flowing * 1000:.0f} ms after spawn (bound {RESTART_BOUND * 1000:.0f} ms; answered by "
         f"{first_ok.release}); {len(down)} failed attempts while the daemon was down/restarting")
    expect(ro.get("release") == "v6" and ro.get("step") == 1, f"after restart: step {ro.get('step')} of {ro.get('release')}")
    expect(after["phase"] == "running", f"phase after restart: {after['phase']}")
    history_after = json.loads(daemon.cli("history", "--json")[1])
    expect([h["release"] for h in history_after] == [h["release"] for h in history_before],
           f"history changed across the restart: {[h['release'] for h in history_before]} -> "
           f"{[h['release'] for h in history_after]}")
    expect(flowing <= RESTART_BOUND, f"first 2xx {flowing:.3f}s after spawning the new daemon (> {RESTART_BOUND}s)")
    # ... and the rollout continues from that step to 100 %.
    done = daemon.wait_status(lambda s: rollout_of(s).get("outcome") != "in_progress", timeout=30,
                              what="v6 to finish")
    expect(rollout_of(done).get("outcome") == "promoted", f"v6 after the restart: {rollout_of(done)}")
    expect(current_link() == "releases/v6", f"current -> {current_link()}")
    percents = [r["percent"] for r in rollout_of(done).get("step_records", [])]
    expect(percents == [10, 50, 100], f"steps: {percents}")


def test_load_totals_and_shutdown():
    answers = load.stop()
    note(f"load: {describe(answers, limit=0)}")
    state = daemon.status()
    pids = [s["pid"] for s in state["slots"] if s.get("pid")]
    code = daemon.stop()
    expect(code == 0, f"daemon exit status after SIGTERM: {code}")
    for port in (daemon.port, daemon.blue_port, daemon.green_port):
        expect(port_closed(port, timeout=15), f"port {port} still accepts after the daemon stopped")
    for pid in pids:
        expect(pid_gone(pid, timeout=15), f"app pid {pid} outlived the daemon")


# ------------------------------------------------------------------ f) the demo

def demo_children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def test_f_demo_once():
    demo_dir = os.path.join(work, "demo")
    port = free_port()
    proc = spawn([RELEASECTL, "demo", "--once", "--dir", demo_dir, "--port", str(port)],
                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        for child in demo_children(proc.pid):  # its daemon: ours too, by PID
            os.kill(child, signal.SIGKILL)
        stop(proc, signal.SIGKILL)
        raise AssertionError("releasectl demo --once did not finish within 240 s")
    stop(proc)
    text = out.decode("utf-8", "replace")
    code = proc.returncode
    promoted = re.findall(r"^v2 promoted.*$", text, re.M)
    rolled = re.findall(r"^v3-bad rolled back: .*$", text, re.M)
    numbers = re.search(r"error rate (\d+(?:\.\d+)?)% > 5\.0%", rolled[0]) if rolled else None
    note(f"exit {code}; {promoted[:1]} {rolled[:1]}")
    expect(code == 0, f"demo exited {code}:\n{text[-3000:]}")
    expect(len(promoted) == 1, f"want one promotion of v2, got {promoted}:\n{text[-3000:]}")
    expect(len(rolled) == 1, f"want one automatic rollback of v3-bad, got {rolled}:\n{text[-3000:]}")
    expect(numbers and 5.0 < float(numbers.group(1)) <= 20.0,
           f"the rollback line should carry the numbers that caused it: {rolled}")
    expect("consecutive failing check" in rolled[0], f"automatic rollback reason: {rolled[0]}")
    expect("result: as expected" in text, f"demo summary:\n{text[-2000:]}")
    expect(port_closed(port, timeout=10), "the demo's proxy port still accepts after it exited")


checks.run("refusals before any release (promote 1, unknown release 2, unreachable 3)",
           test_refusals_before_any_release)
checks.run("first release goes live at 100 %", test_first_release_goes_live)
checks.run("a) good release walks 10 -> 50 -> 100, current names it", test_a_good_release_reaches_100)
checks.run("b) 10 % 5xx rolled back at the first step within bound, live saw no 5xx",
           test_b_error_release_rolled_back_at_first_step)
checks.run("c) +3 s latency rolled back on p95", test_c_slow_release_rolled_back_on_p95)
checks.run("d) rollback under load: new requests on live within 10 ms, zero failures",
           test_d_rollback_under_load_flips_within_10ms)
checks.run("e) kill -9 mid-step: resumes the same step, traffic within 1 s", test_e_kill9_mid_step_resumes)
checks.run("load totals; SIGTERM stops the daemon and its apps", test_load_totals_and_shutdown)
checks.run("f) releasectl demo --once", test_f_demo_once)
if load is not None:
    load.stop()
if daemon.proc is not None and daemon.proc.poll() is None:
    daemon.stop()
checks.finish()
