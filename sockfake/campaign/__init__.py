"""Campaigns: many seeds of every simulated test, over shards, with a failure corpus.

Pytest-free: what a shard owns (``shards``), how long a campaign runs and which seeds
it draws (``budget``), and the file of failures that fleets append to and every desk
replays (``corpus``). The pytest face is ``sockfake.plugin_campaigns``.
"""

from __future__ import annotations

from sockfake.campaign.budget import (
    MAX_CAMPAIGN_SECONDS,
    MAX_CAMPAIGN_SEEDS,
    Budget,
    campaign_seed,
    parse_budget,
)
from sockfake.campaign.corpus import (
    CorpusEntry,
    append_entry,
    check_corpus_path,
    git_commit,
    read_corpus,
)
from sockfake.campaign.shards import (
    SHARD_COUNT_VARIABLE,
    WHOLE_RUN,
    Shard,
    parse_shard,
    shard_from_environment,
)

__all__ = [
    "MAX_CAMPAIGN_SECONDS",
    "MAX_CAMPAIGN_SEEDS",
    "SHARD_COUNT_VARIABLE",
    "WHOLE_RUN",
    "Budget",
    "CorpusEntry",
    "Shard",
    "append_entry",
    "campaign_seed",
    "check_corpus_path",
    "git_commit",
    "parse_budget",
    "parse_shard",
    "read_corpus",
    "shard_from_environment",
]
