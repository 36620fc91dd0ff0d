#!/usr/bin/python3
"""A demo task: works a few steps on one item, sends its result and exits 0.
The item "poison" cannot be parsed: the task declares the failure permanent
(it is not retried: a dead letter) unless the operator has fixed the cause
by creating $DEMO_FIXED; `agentsupctl replay tasks/poison` then
runs it again with the same inputs.

    task_agent.py --item b1-item3
"""
import argparse
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import agentsup  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--item", required=True)
    args = ap.parse_args()
    fixed = os.environ.get("DEMO_FIXED", "/tmp/agentsup-demo-fixed")
    with agentsup.Agent() as agent:
        agent.restored
        if args.item == "poison" and not os.path.exists(fixed):
            print(f"task {args.item}: cannot parse the input (touch {fixed} "
                  "to fix it)", file=sys.stderr)
            agent.exit_reason("permanent", detail="cannot parse the input")
            sys.exit(3)
        for step in range(random.randint(2, 5)):
            agent.wait(0.5)
            agent.beat(steps=step + 1)
        agent.result(f"{args.item}: {random.randint(1, 100)} facts found".encode())
        agent.flush(2)


if __name__ == "__main__":
    main()
