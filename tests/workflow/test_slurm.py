"""The workflow on a real Slurm cluster, through ``--profile profiles/slurm``.

Runs only with ``CORONALIGN_SLURM=1`` and a running cluster whose default partition is the
profile's (``debug``), e.g. the one-node cluster of the CI::

    sudo .ci/slurm/start-cluster.sh
    CORONALIGN_SLURM=1 .venv/bin/python -m pytest tests/workflow/test_slurm.py
    sudo .ci/slurm/stop-cluster.sh

With ``CORONALIGN_SLURM=1`` a missing or broken cluster FAILS the test (CI must not pass
without having run it); without it the test is skipped.

One small association (2 science, 2 PSF exposures) is run twice: on the cluster and locally
(``--cores 2``). The test checks that every job except the local rules went through
``sbatch``, alone or in the profile's group jobs (one submission per science exposure for its
align; one for the PSF stack and its check; one for the validation and figures of the stack's
products; one for summary and manifest: the submissions grow with the exposures, not five
times them), with Snakemake's "submitted with
SLURM jobid" lines, the jobs' state, CPUs and memory in ``squeue`` and the kept Slurm logs;
that ``psfmask`` ran locally, that every product passed validation, and that the products
and shift tables of both runs are bit-identical.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table

from coronalign import simulation
from tests.helpers.paths import REPOSITORY
from tests.helpers.workflow import exposure_figure, snakemake_command, validation_report

pytestmark = pytest.mark.slurm

PROFILE = REPOSITORY / "profiles" / "slurm"
# The partition the profile submits to ("'debug'" in profiles/slurm: the CI cluster's).
PARTITION = yaml.safe_load((PROFILE / "config.v8+.yaml").read_text())["default-resources"][
    "slurm_partition"
].strip("'\"")
RUN_TIMEOUT = 600  # seconds for one Snakemake run (killed 30 s later if it ignores SIGTERM)
SLURM_RULES = {"stack_refs", "check_psfstack", "align", "validate", "plot", "summary", "manifest"}
#: The group jobs of profiles/slurm: the rules each submission runs.
GROUPS = {
    "stack": {"check_psfstack", "stack_refs"},
    "report": {"plot", "validate"},
    "run": {"manifest", "summary"},
}
#: The rules submitted alone, one submission per job (align: one per science exposure).
ALONE = {"align"}
N_SCIENCE = 2
HOW_TO = (
    "start a cluster (sudo .ci/slurm/start-cluster.sh) and run "
    "CORONALIGN_SLURM=1 .venv/bin/python -m pytest tests/workflow/test_slurm.py"
)


def _cluster_command(*args, timeout=30):
    """Run a Slurm client command under a timeout; return (returncode, output)."""
    try:
        done = subprocess.run(
            ["timeout", "-k", "5", str(timeout), *args],
            capture_output=True,
            text=True,
            timeout=timeout + 15,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return 1, str(error)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def cluster():
    """Fail (not skip) when the Slurm test is switched on and no usable cluster answers."""
    if os.environ.get("CORONALIGN_SLURM") != "1":
        pytest.skip(f"Slurm test not requested (CORONALIGN_SLURM is not 1): {HOW_TO}")
    missing = [name for name in ("sinfo", "sbatch", "squeue", "scontrol") if not shutil.which(name)]
    if missing:
        pytest.fail(
            f"CORONALIGN_SLURM=1 but the Slurm commands {', '.join(missing)} are not on PATH: "
            f"install Slurm or {HOW_TO}",
            pytrace=False,
        )
    code, output = _cluster_command("scontrol", "ping")
    if code != 0 or "is UP" not in output:
        pytest.fail(
            f"CORONALIGN_SLURM=1 but slurmctld does not answer `scontrol ping` "
            f"({output.strip() or f'exit status {code}'}): {HOW_TO}",
            pytrace=False,
        )
    code, output = _cluster_command("sinfo", "-h", "-p", PARTITION, "-o", "%a|%T")
    in_service = {"up|idle", "up|mixed", "up|allocated", "up|completing"}
    if code != 0 or not in_service & set(output.split()):
        pytest.fail(
            f"CORONALIGN_SLURM=1 but partition {PARTITION!r} of profiles/slurm has no node "
            f"in service (sinfo: {output.strip() or f'exit status {code}'}): {HOW_TO}",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return simulation.write_association(
        folder, n_science=N_SCIENCE, n_psf=2, nints=2, psf_nints=2, shape=(64, 64)
    )


def _start(workdir, config, *args):
    """Start snakemake on `config` in `workdir` (under timeout); return (Popen, output path)."""
    command = ["timeout", "-k", "30", str(RUN_TIMEOUT), *snakemake_command(workdir, config, *args)]
    # The jobs inherit this environment (sbatch --export=ALL). Nothing of the project is on
    # PATH: the rules' scripts run with Snakemake's own interpreter (this .venv's), on the node.
    environment = {"HOME": os.environ.get("HOME", str(workdir)), "PATH": "/usr/bin:/bin"}
    log = workdir / "snakemake.out"
    with log.open("w") as stream:
        process = subprocess.Popen(
            command,
            cwd=REPOSITORY,
            env=environment,
            stdout=stream,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return process, log


def _finish(process, log):
    """Wait for a run started by `_start`; return (returncode, output)."""
    try:
        code = process.wait(timeout=RUN_TIMEOUT + 60)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    return code, log.read_text()


SUBMITTED = re.compile(
    r"^Job (?P<job>[\w-]+) has been submitted with SLURM jobid (?P<slurm>\d+) "
    r"\(log: (?P<log>.+)\)\.$",
    re.MULTILINE,
)


def _job_blocks(output):
    """{snakemake job id: (rule, is local, mem_mb)} from the job descriptions of a run
    (top-level jobs and the jobs listed under a group job, indented)."""
    blocks = {}
    pattern = (
        r"^(?P<indent> *)(?P<local>local)?rule (?P<rule>\w+):\n(?P<body>(?:(?P=indent)    .*\n)+)"
    )
    for match in re.finditer(pattern, output, re.MULTILINE):
        body = match["body"]
        job = re.search(r"^\s+jobid: (\d+)$", body, re.MULTILINE)
        mem = re.search(r"^\s+resources: .*\bmem_mb=(\d+)", body, re.MULTILINE)
        if job:
            blocks[int(job[1])] = (
                match["rule"],
                bool(match["local"]),
                int(mem[1]) if mem else None,
            )
    return blocks


def _finished_rules(log):
    """The rules a submitted job ran, from its kept Slurm log, in order."""
    log = Path(log)
    if not log.parent.name.startswith("group_"):  # a job alone: rule_<rule>/<name>/<id>.log
        return [log.parent.parent.name.removeprefix("rule_")]
    text = log.read_text()
    done = re.findall(r"^Finished jobid: \d+ \(Rule: (\w+)\)\n(\d+) of (\d+) steps", text, re.M)
    # each job of a group runs in a Snakemake of its own ("1 of 1 steps"); the group's
    # Snakemake counts "k of n steps" over the n jobs of the group (every group has 2 or 3)
    return [rule for rule, _, total in done if int(total) > 1]


@pytest.fixture(scope="module")
def runs(cluster, data, tmp_path_factory):
    """The same configuration run on Slurm and locally (at the same time: Slurm mostly waits)."""
    config = {"asn": str(data["asn"]), "psfmask": str(data["psfmask"]), "mode": "quad"}
    local_dir = tmp_path_factory.mktemp("local")
    slurm_dir = tmp_path_factory.mktemp("slurm")
    local = _start(local_dir, config, "--cores", "2")
    slurm = _start(
        slurm_dir,
        config,
        "--profile",
        PROFILE,
        "--slurm-keep-successful-logs",
        # first status check 8 s after a submission (a job takes 5-7 s here)
        "--slurm-init-seconds-before-status-checks",
        "8",
    )
    slurm_code, slurm_output = _finish(*slurm)
    local_code, local_output = _finish(*local)
    submitted = {int(m["slurm"]): m.groupdict() for m in SUBMITTED.finditer(slurm_output)}
    if slurm_code != 0:
        # do not leave jobs of a failed or killed run in the queue
        for jobid in submitted:
            _cluster_command("scancel", str(jobid))
    assert slurm_code == 0, f"Slurm run failed ({slurm_code}):\n{slurm_output[-4000:]}"
    assert local_code == 0, f"local run failed ({local_code}):\n{local_output[-4000:]}"
    return {
        "slurm": slurm_dir,
        "local": local_dir,
        "output": slurm_output,
        "submitted": submitted,
        "blocks": _job_blocks(slurm_output),
    }


def _squeue(jobids):
    """{slurm job id: (comment, state, cpus, min memory)} of finished and running jobs."""
    code, output = _cluster_command(
        "squeue", "-h", "-t", "all", "-j", ",".join(map(str, jobids)), "-o", "%i|%k|%T|%C|%m"
    )
    assert code == 0, f"squeue failed: {output}"
    jobs = {}
    for line in output.splitlines():
        jobid, comment, state, cpus, memory = line.split("|")
        jobs[int(jobid)] = (comment, state, int(cpus), memory)
    return jobs


def test_every_rule_but_the_local_ones_went_through_sbatch_in_group_jobs(runs):
    submitted, blocks = runs["submitted"], runs["blocks"]
    # one submission per science exposure (align), one for the PSF stack and its check, one
    # for the validation and figures of the stack's products, one for summary and manifest:
    # not one per job (N + 6 of them)
    assert len(submitted) == N_SCIENCE + 3
    ran = {}
    for jobid, job in submitted.items():
        log = Path(job["log"])
        assert log.name == f"{jobid}.log"
        assert log.is_relative_to(runs["slurm"] / ".snakemake" / "slurm_logs")
        rules = _finished_rules(log)
        ran[jobid] = rules
        if log.parent.name.startswith("group_"):
            assert f"{len(rules)} of {len(rules)} steps (100%) done" in log.read_text(), log
        else:
            assert set(rules) <= ALONE, log
    groups = sorted(sorted(rules) for rules in ran.values())
    expected = sorted([["align"]] * N_SCIENCE + [sorted(members) for members in GROUPS.values()])
    assert groups == expected
    # in each group the jobs ran in the order of their dependencies
    for rules in ran.values():
        if "validate" in rules:
            assert rules.index("validate") < rules.index("plot")
        if "stack_refs" in rules:
            assert rules.index("stack_refs") < rules.index("check_psfstack")
    # every job Snakemake did not run itself ran in one of those submissions, once
    remote = [rule for rule, is_local, _ in blocks.values() if not is_local]
    assert sorted(remote) == sorted(rule for rules in ran.values() for rule in rules)
    assert set(remote) == SLURM_RULES
    # psfmask is a local rule: run by Snakemake itself, once per science exposure, never sbatch
    local = [rule for rule, is_local, _ in blocks.values() if is_local]
    assert local.count("psfmask") == N_SCIENCE
    assert not any("psfmask" in rules for rules in ran.values())
    assert not list((runs["slurm"] / ".snakemake" / "slurm_logs").glob("*psfmask*"))
    # each submitted job ran its own commands: no warm-start server on a cluster
    for log in (runs["slurm"] / "logs").rglob("*.log"):
        assert "warm start" not in log.read_text(), log


def test_slurm_ran_the_jobs_with_the_requested_cpus_and_memory(runs):
    submitted, blocks = runs["submitted"], runs["blocks"]
    jobs = _squeue(submitted)
    assert set(jobs) == set(submitted), "squeue does not show every submitted job"
    memory_of = {}
    for rule, is_local, mem_mb in blocks.values():
        if not is_local:
            memory_of.setdefault(rule, set()).add(mem_mb)
    for jobid, (comment, state, cpus, memory) in jobs.items():
        rules = set(_finished_rules(submitted[jobid]["log"]))
        name = next(
            (group for group, members in GROUPS.items() if members == rules), "+".join(rules)
        )
        assert state == "COMPLETED", (jobid, name, state)
        assert comment.startswith(f"rule_{name}"), (jobid, name, comment)
        asked = {rule: max(memory_of[rule]) for rule in rules}
        if name == "run":
            # summary and manifest do not depend on each other: they run side by side,
            # so the group asks for the sum of their CPUs and memory
            assert cpus == len(rules), (jobid, name, cpus)
            assert int(memory.removesuffix("M")) == sum(asked.values()), (jobid, name, memory)
        else:
            # a job alone asks for its own CPUs (align: 2) and memory; the jobs of a group
            # that run one after the other (stack, report) for the most of their jobs
            assert cpus == (2 if name == "align" else 1), (jobid, name, cpus)
            assert int(memory.removesuffix("M")) == max(asked.values()), (jobid, name, memory)


def _products(workdir):
    return sorted((workdir / "results" / "psfalign").glob("*_psfalign.fits"))


def test_every_product_exists_and_passed_validation(runs):
    products = _products(runs["slurm"])
    assert len(products) == N_SCIENCE
    results = runs["slurm"] / "results"
    for product in products:
        stem = product.name.removesuffix("_psfalign.fits")
        report = json.loads(validation_report(results, stem).read_text())
        assert report["status"] == "passed"
        assert (results / "shifts" / f"{stem}_psfshifts.ecsv").is_file()
        assert exposure_figure(results, stem).is_file()
    summary = (results / "summary" / "summary.tsv").read_text().splitlines()
    assert len(summary) == 1 + N_SCIENCE
    assert all("\tpassed\t" in line for line in summary[1:])


def test_products_are_bit_identical_to_a_local_run(runs):
    slurm_products, local_products = _products(runs["slurm"]), _products(runs["local"])
    assert [p.name for p in slurm_products] == [p.name for p in local_products]
    for slurm_product, local_product in zip(slurm_products, local_products, strict=True):
        with (
            fits.open(slurm_product, memmap=False) as on_slurm,
            fits.open(local_product, memmap=False) as on_local,
        ):
            for extension in ("SCI", "ERR", "DQ"):
                a, b = on_slurm[extension].data, on_local[extension].data
                assert a.dtype == b.dtype
                assert a.shape == b.shape
                assert a.tobytes() == b.tobytes(), f"{slurm_product.name} {extension} differs"
                assert np.isfinite(a).all() or extension == "DQ"
        stem = slurm_product.name.removesuffix("_psfalign.fits")
        shifts = f"results/shifts/{stem}_psfshifts.ecsv"
        on_slurm, on_local = Table.read(runs["slurm"] / shifts), Table.read(runs["local"] / shifts)
        assert on_slurm.colnames == on_local.colnames
        for name in on_slurm.colnames:
            assert np.array_equal(on_slurm[name], on_local[name]), f"{shifts} column {name}"
