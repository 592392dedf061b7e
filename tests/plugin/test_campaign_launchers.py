"""The launchers under examples/ci agree with the plugin: the variables they set are
the ones it reads, with values it accepts, and the shard counts match.

actionlint and kubernetes-validate (the ``ci-examples`` extra, run by CI's lint step)
check the files against GitHub's and Kubernetes' schemas; these tests check what those
cannot know: that the files drive sockfake as intended.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sockfake.campaign import (
    SHARD_COUNT_VARIABLE,
    parse_budget,
    parse_shard,
    shard_from_environment,
)

yaml = pytest.importorskip("yaml")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"
WORKFLOW = EXAMPLES / "github-actions-campaign.yml"
JOB = EXAMPLES / "kubernetes-campaign-job.yaml"


def test_the_workflow_runs_every_shard_and_merges_their_corpora():
    workflow: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    campaign, merge = workflow["jobs"]["campaign"], workflow["jobs"]["merge"]
    shards = campaign["strategy"]["matrix"]["shard"]
    count = int(workflow["env"]["SHARDS"])
    assert shards == list(range(count))
    assert campaign["strategy"]["fail-fast"] is False
    env = campaign["env"]
    for shard in shards:  # each matrix entry names a valid shard of the whole
        text = env["SOCKFAKE_SHARD"].replace("${{ matrix.shard }}", str(shard))
        assert parse_shard(text, "SOCKFAKE_SHARD") == parse_shard(f"{shard}/{count}", "x")
    default_budget = re.search(r"\|\| '([^']+)'", env["SOCKFAKE_CAMPAIGN"])
    assert default_budget is not None
    parse_budget(default_budget.group(1), "SOCKFAKE_CAMPAIGN")
    assert workflow[True]["workflow_dispatch"]["inputs"]["budget"]["default"] == \
        default_budget.group(1)
    assert env["SOCKFAKE_CORPUS"] == "corpus-${{ matrix.shard }}.jsonl"
    uploads = [step for step in campaign["steps"] if "upload-artifact" in step.get("uses", "")]
    assert len(uploads) == 1 and uploads[0]["if"] == "always()"
    assert uploads[0]["with"]["path"] == env["SOCKFAKE_CORPUS"]
    assert merge["needs"] == "campaign" and merge["if"] == "always()"
    download = next(step for step in merge["steps"] if "download-artifact" in step.get("uses", ""))
    assert download["with"]["pattern"] == "corpus-*"
    assert any("cat {} + > corpus.jsonl" in step.get("run", "") for step in merge["steps"])


def test_the_indexed_job_gives_each_pod_its_shard_and_corpus():
    claim, job = list(yaml.safe_load_all(JOB.read_text()))
    spec = job["spec"]
    assert job["kind"] == "Job" and spec["completionMode"] == "Indexed"
    container = spec["template"]["spec"]["containers"][0]
    env = {var["name"]: var for var in container["env"]}
    count = int(env[SHARD_COUNT_VARIABLE]["value"])
    assert spec["completions"] == spec["parallelism"] == count
    for index in range(count):  # what each pod's sockfake reads
        found = shard_from_environment(
            {"JOB_COMPLETION_INDEX": str(index), SHARD_COUNT_VARIABLE: str(count)}
        )
        assert found is not None and str(found[0]) == f"{index}/{count}"
    parse_budget(env["SOCKFAKE_CAMPAIGN"]["value"], "SOCKFAKE_CAMPAIGN")
    assert int(env["SOCKFAKE_SEED"]["value"]) >= 0
    # One corpus file per pod, on the shared claim.
    assert env["SOCKFAKE_CORPUS"]["value"] == "/corpus/corpus-$(SHARD_INDEX).jsonl"
    index_field = env["SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert "job-completion-index" in index_field
    assert container["volumeMounts"][0]["mountPath"] == "/corpus"
    volume = spec["template"]["spec"]["volumes"][0]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize(
    ("tool", "args", "path"),
    [("actionlint", [], WORKFLOW), ("kubernetes-validate", ["--strict"], JOB)],
)
def test_the_launchers_pass_their_schema_checks(tool, args, path):
    """Where the ci-examples extra is installed (CI's lint step runs them anyway)."""
    # The interpreter's own bin directory first: a venv's tools without activating it.
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(tool, path=search)
    if found is None:
        pytest.skip(f"{tool} not installed (pip install -e '.[ci-examples]')")
    done = subprocess.run([found, *args, str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
