#!/usr/bin/python3
"""A demo AI-agent worker: works in steps, beats with progress, drains when
asked, and misbehaves on purpose (crash, die by a signal, hang) with the
chances given, so the demo shows agentsupd handling each failure live.
After each step it stores a checkpoint (its counts, as JSON) and, restarted,
resumes from the one agentsupd hands back; a crash is declared `transient`
before exiting. (A real agent would wrap a long model call in
`with agent.busy(seconds):`; this one does not, so that its simulated hangs
are caught at once.)

    demo_agent.py --role fetcher --step 0.5 --crash 0.05 --hang 0 --signal 0
"""
import argparse
import json
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import agentsup  # noqa: E402


def misbehave(agent, args):
    """The progress demos (DESIGN §10), one per flag: --stall-after N keeps
    beating but stops advancing after N steps; --loop-after N repeats the
    same tool call after N steps; --burn T spends T tokens a step until its
    budget is spent. Progress is reported per incarnation (from 0), as the
    protocol wants, so budgets add incarnations up correctly."""
    steps = tokens = 0
    agent.wait(args.warmup)
    agent.ready()
    while not agent.draining:
        agent.wait(args.step)
        if agent.draining:
            break
        while agent.nudges:
            n = agent.nudges.popleft()
            print(f"{args.role}: nudged ({n.reason}"
                  f"{', state ' + repr(n.state) if n.state else ''}); carrying on",
                  file=sys.stderr)
        if args.stall_after and steps >= args.stall_after:
            agent.beat(steps=steps, tokens=tokens, state="waiting for a lock",
                       status=f"{args.role} stuck at step {steps}")
            continue
        steps += 1
        tokens += args.burn or random.randint(50, 500)
        state = f"step {steps}"
        if args.loop_after and steps > args.loop_after:
            state = "search('flights to Lisbon')"
        agent.beat(steps=steps, tokens=tokens, cost=tokens * 2e-6, state=state,
                   status=f"{args.role} step {steps}")
    print(f"{args.role}: drained after {steps} steps", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="agent")
    ap.add_argument("--step", type=float, default=0.5, help="seconds per step")
    ap.add_argument("--crash", type=float, default=0.0, help="chance per step of exit 1")
    ap.add_argument("--signal", type=float, default=0.0, help="chance per step of SIGSEGV")
    ap.add_argument("--hang", type=float, default=0.0, help="chance per step of hanging")
    ap.add_argument("--crash-every", type=int, default=0,
                    help="exit 1 after every N steps (it resumes from its checkpoint)")
    ap.add_argument("--warmup", type=float, default=0.3, help="seconds before ready")
    ap.add_argument("--outage", type=float, default=0.0,
                    help="seconds of every --every its provider is down (exit 1 at start)")
    ap.add_argument("--every", type=float, default=90.0)
    ap.add_argument("--rate-limited-every", type=int, default=0,
                    help="after every N steps the provider says 429: declare "
                         "rate_limited with its Retry-After and exit")
    ap.add_argument("--retry-after", type=float, default=4.0)
    ap.add_argument("--stall-after", type=int, default=0, help="steps, then beats without progress")
    ap.add_argument("--loop-after", type=int, default=0, help="steps, then the same state each step")
    ap.add_argument("--burn", type=int, default=0, help="tokens spent per step")
    args = ap.parse_args()
    if args.stall_after or args.loop_after or args.burn:
        with agentsup.Agent() as agent:
            misbehave(agent, args)
        return

    steps = tokens = 0
    with agentsup.Agent() as agent:
        restored = agent.restored
        if restored.checkpoint:
            saved = json.loads(restored.checkpoint)
            steps, tokens = saved["steps"], saved["tokens"]
            print(f"{args.role}: resuming at step {steps} (restart {restored.restarts}, "
                  f"after {restored.last_reason or 'nothing'})", file=sys.stderr)
        agent.wait(args.warmup)  # "loading the model"
        if args.outage and time.time() % args.every < args.outage:
            print(f"{args.role}: provider answered 503, giving up (exit 1)", file=sys.stderr)
            agent.exit_reason("transient", detail="provider down")
            sys.exit(1)
        agent.ready()
        while not agent.draining:
            agent.wait(args.step)
            if agent.draining:
                break
            roll = random.random()
            if roll < args.crash:
                print(f"{args.role}: tool call failed, giving up (exit 1)", file=sys.stderr)
                agent.exit_reason("transient", detail="tool call failed")
                sys.exit(1)
            roll -= args.crash
            if roll < args.signal:
                print(f"{args.role}: native extension crashed", file=sys.stderr)
                os.kill(os.getpid(), signal.SIGSEGV)
            roll -= args.signal
            if roll < args.hang:
                print(f"{args.role}: stuck waiting on a model call", file=sys.stderr)
                while True:  # no more beats: agentsupd will call it hung
                    time.sleep(3600)
            steps += 1
            tokens += random.randint(50, 500)
            agent.beat(steps=steps, tokens=tokens, cost=tokens * 2e-6,
                       state="thinking", status=f"{args.role} step {steps}")
            agent.checkpoint(json.dumps({"steps": steps, "tokens": tokens}).encode())
            if args.rate_limited_every and steps % args.rate_limited_every == 0:
                print(f"{args.role}: provider said 429, retry after "
                      f"{args.retry_after:g}s (exit 1)", file=sys.stderr)
                agent.exit_reason("rate_limited", retry_after=args.retry_after,
                                  detail="429 Too Many Requests")
                sys.exit(1)
            if args.crash_every and steps % args.crash_every == 0:
                agent.flush(1.0)  # the checkpoint is out before the crash
                print(f"{args.role}: out of memory at step {steps} (exit 1)", file=sys.stderr)
                sys.exit(1)
        print(f"{args.role}: drained after {steps} steps", file=sys.stderr)


if __name__ == "__main__":
    main()
