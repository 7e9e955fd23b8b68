#!/usr/bin/env python3
"""The Kafka ACLs of Prompt2Pic's two roles, as ``kafka-acls.sh`` commands: one SASL user for the
bots, one for the workers, each allowed only what its role does (adapters/kafka).

    python tools/kafka_acls.py                       # the commands for the default names
    python tools/kafka_acls.py --bot-user p2p-bot --worker-user p2p-worker \\
        --requests-topic p2p.requests --results-topic p2p.results \\
        --dead-letter-topic p2p.dead-letters --bot-group p2p-bots --worker-group p2p-workers

What each role's clients do on the broker (every one checked by tests/kafka/test_acls.py on a broker
with authorization on and nothing allowed without an ACL):

- both, at start: list and describe the four topics (``ensure_topics``; READ and WRITE imply
  DESCRIBE), the idempotent producer's InitProducerId (allowed by WRITE on any topic since Kafka
  3.0, KIP-679: no cluster ACL), dead letters of what they cannot decode (WRITE dead letters);
- bot: publishes jobs and cancellations (WRITE requests, both lanes), consumes results and progress in its
  group (READ results, READ bot group), and reads the workers' committed offsets for the backlog
  (DESCRIBE worker group);
- worker: consumes jobs in its group, committing delivery counts (READ requests, READ worker
  group; the backlog of its own group is covered by READ), publishes results (WRITE results).

Nobody gets CREATE or ALTER: the topics are created by the administrator beforehand (the app only
creates topics that are missing, and none are when they exist). The same commands are in
docs/deploy-kubernetes.md (a test compares them) and are applied by the ACL test.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    bot_user: str = "p2p-bot"
    worker_user: str = "p2p-worker"
    requests_topic: str = "p2p.requests"
    results_topic: str = "p2p.results"
    dead_letter_topic: str = "p2p.dead-letters"
    bot_group: str = "p2p-bots"
    worker_group: str = "p2p-workers"

    @property
    def relaxed_topic(self) -> str:
        """The relaxed lane's topic beside the requests topic (``adapters.kafka.lanes``)."""
        return f"{self.requests_topic}.relaxed"


@dataclass(frozen=True)
class Grant:
    """One kafka-acls.sh --add: ``operation`` for ``user`` on the topics and groups named."""

    user: str
    operation: str  # Read, Write, Describe
    topics: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def args(self) -> list[str]:
        """The arguments after the connection options of kafka-acls.sh."""
        out = ["--add", "--allow-principal", f"User:{self.user}", "--operation", self.operation]
        for topic in self.topics:
            out += ["--topic", topic]
        for group in self.groups:
            out += ["--group", group]
        return out


def grants(n: Names = Names()) -> list[Grant]:
    """Everything the two roles need, and nothing more."""
    return [
        # bot: jobs out, results in, its own group, the workers' backlog, dead letters
        Grant(n.bot_user, "Write", topics=(n.requests_topic, n.relaxed_topic, n.dead_letter_topic)),
        Grant(n.bot_user, "Read", topics=(n.results_topic,), groups=(n.bot_group,)),
        Grant(n.bot_user, "Describe", groups=(n.worker_group,)),
        # worker: jobs in (its group), results out, dead letters
        Grant(n.worker_user, "Read", topics=(n.requests_topic, n.relaxed_topic), groups=(n.worker_group,)),
        Grant(n.worker_user, "Write", topics=(n.results_topic, n.dead_letter_topic)),
    ]


PREFIX = 'kafka-acls.sh --bootstrap-server "$KAFKA" --command-config admin.properties'


def commands(n: Names = Names()) -> list[str]:
    """The shell commands, one per grant (an administrator's connection in admin.properties)."""
    return [f"{PREFIX} {shlex.join(g.args())}" for g in grants(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for field, default in vars(Names()).items():
        parser.add_argument(f"--{field.replace('_', '-')}", default=default, help=f"default {default}")
    args = parser.parse_args(argv)
    for line in commands(Names(**vars(args))):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
