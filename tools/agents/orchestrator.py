#!/usr/bin/python3
"""A demo orchestrator agent: fans work out as tasks of the `tasks` pool
(a dynamic supervisor), one spawn per item with the item as the idempotency
key, so a restarted orchestrator asking again gets the same children back
(created: false) instead of duplicates. One item is poison: its task fails
for good and becomes a dead letter, for an operator to replay.

    orchestrator.py --batch 6 --every 20
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import agentsup  # noqa: E402


def fan_out(agent, batch, n):
    items = [f"b{batch}-item{i}" for i in range(1, n + 1)]
    if batch == 1:
        items.append("poison")
    for item in items:
        s = agent.spawn("tasks", key=item, args=["--item", item])
        if s is None:
            continue
        what = "spawned" if s.ok and s.created else (
            "already there" if s.ok else f"refused: {s.error} {s.count or ''}")
        print(f"orchestrator: {item}: {what}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=6, help="tasks per batch")
    ap.add_argument("--every", type=float, default=20.0, help="seconds between batches")
    args = ap.parse_args()
    with agentsup.Agent() as agent:
        agent.restored
        agent.ready()
        batch = 1
        fan_out(agent, batch, args.batch)
        waited = 0.0
        while not agent.draining:
            agent.wait(1.0)
            agent.beat(steps=batch, status=f"fanned out {batch} batches")
            waited += 1.0
            if waited >= args.every:
                batch, waited = batch + 1, 0.0
                fan_out(agent, batch, args.batch)


if __name__ == "__main__":
    main()
