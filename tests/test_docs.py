"""The README and docs/ name only options, config keys, make targets and files that exist."""

import argparse
import re
from pathlib import Path

import pytest
import yaml

from coronalign.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "config" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE = re.compile(r"```[a-z]*\n(.*?)```|`([^`\n]+)`", re.S)
# Names of the crds library written like config keys.
LIBRARY_NAMES = {"crds.getreferences"}
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _code(page):
    return [a or b for a, b in CODE.findall(page.read_text())]


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        name: {opt for a in sub._actions for opt in a.option_strings}
        for name, sub in action.choices.items()
    }


def _schema_keys():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    keys = set()

    def walk(node, prefix):
        for key, value in node.get("properties", {}).items():
            keys.add(prefix + key)
            walk(value, prefix + key + ".")

    walk(schema, "")
    return keys


def _make_targets():
    return set(re.findall(r"(?m)^([a-z][\w-]*):", (ROOT / "Makefile").read_text()))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_point_at_existing_files(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name}: link to missing {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_coronalign_options_exist(page):
    commands = _subcommands()
    for code in _code(page):
        for line in re.split(r"\n(?!\s)", code):
            match = re.search(r"\bcoronalign (\w[\w-]*)", line)
            if not match or match.group(1) not in commands:
                continue
            options = commands[match.group(1)]
            for option in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", line):
                assert option in options, f"{page.name}: coronalign {match.group(1)} {option}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_make_targets_exist(page):
    targets = _make_targets()
    for code in _code(page):
        for target in re.findall(r"(?<![\w-])make ([a-z][\w-]*)", code):
            assert target in targets, f"{page.name}: make {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_keys_exist(page):
    keys = _schema_keys()
    top = {key for key in keys if "." not in key}
    text = page.read_text()
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        config = yaml.safe_load(block)
        if not isinstance(config, dict) or not set(config) & top:
            continue  # a profile, not a workflow configuration
        for key, value in config.items():
            assert key in keys, f"{page.name}: config key {key}"
            for sub in value if isinstance(value, dict) else ():
                assert f"{key}.{sub}" in keys, f"{page.name}: config key {key}.{sub}"
    for key in re.findall(r"`((?:crds|mast)\.[a-z_]+)`", text):
        if key in LIBRARY_NAMES:
            continue
        assert key in keys, f"{page.name}: config key {key}"


def test_the_checks_see_something():
    assert {"align", "verify", "download"} <= set(_subcommands())
    assert {"crds.path", "max_shift", "mast.lock"} <= _schema_keys()
    assert {"env", "test", "docs"} <= _make_targets()
